//! Logging: tracing with Directus's `LOG_LEVEL` names; `LOG_STYLE=raw` writes JSON lines.
//! `RUST_LOG`, when set, overrides the filter. Colours only when stderr is a terminal, so
//! files, pipes and `docker logs` get plain text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

fn filter(level: &str) -> EnvFilter {
    let level = match level {
        "fatal" => "error",
        "silent" => "off",
        other => other,
    };
    EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},sqlx=warn,hyper=warn")))
}

pub fn init(level: &str, style: &str) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber.
    let _ = if style == "raw" {
        builder.json().try_init()
    } else {
        builder.compact().try_init()
    };
}

/// For test harnesses: with `TEST_LOG` set (`1`, or a level such as `debug`), the server's log
/// goes to the test's captured output, which the test runner prints when the test fails.
/// Without it, nothing is logged. The first call in a test binary wins.
pub fn init_for_tests() {
    let Some(value) = std::env::var("TEST_LOG").ok().filter(|v| !v.is_empty()) else {
        return;
    };
    let level = match value.as_str() {
        "1" | "true" | "yes" => "info",
        other => other,
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(level))
        .with_ansi(false)
        .with_test_writer()
        .compact()
        .try_init();
}
