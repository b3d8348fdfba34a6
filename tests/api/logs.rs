//! The binary's log output: plain text (no ANSI colour codes) when stderr is not a terminal.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::helpers::*;

#[test]
fn log_lines_have_no_colour_codes_when_stderr_is_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gatehouse.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .env_clear()
        .current_dir(dir.path())
        .envs([
            ("HOST", "127.0.0.1"),
            ("PORT", "0"),
            ("SECRET", SECRET),
            ("ADMIN_EMAIL", ADMIN_EMAIL),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("HASH_MEMORY_COST", "1024"),
            ("HASH_TIME_COST", "1"),
            ("HASH_PARALLELISM", "1"),
            ("DB_CLIENT", "sqlite3"),
            ("DB_FILENAME", db.to_str().unwrap()),
            ("LOG_LEVEL", "info"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the gatehouse binary starts");
    let stderr = child.stderr.take().unwrap();
    // Read until the server says it listens (or exits, which ends the stream).
    let mut lines = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let done = line.contains("gatehouse listening");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = lines.join("\n");
    assert!(text.contains("gatehouse listening"), "stderr: {text}");
    assert!(text.contains("INFO"), "the level is written: {text}");
    assert!(!text.contains('\x1b'), "escape codes in a pipe: {text:?}");
}
