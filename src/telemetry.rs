//! Logging: tracing with Directus's `LOG_LEVEL` names; `LOG_STYLE=raw` writes JSON lines.
//! `RUST_LOG`, when set, overrides the filter.

use tracing_subscriber::EnvFilter;

pub fn init(level: &str, style: &str) {
    let level = match level {
        "fatal" => "error",
        "silent" => "off",
        other => other,
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},sqlx=warn,hyper=warn")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber.
    let _ = if style == "raw" {
        builder.json().try_init()
    } else {
        builder.compact().try_init()
    };
}
