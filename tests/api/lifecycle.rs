//! The process's life cycle, run as the real binary: SIGTERM stops accepting connections,
//! lets the request in flight finish with its answer, then exits 0 (what `docker stop` and
//! an orchestrator's rolling update rely on).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Waits for the `gatehouse listening` line (JSON logs on stderr) and returns the address in
/// it; every line is kept in `log`.
fn listening_addr(
    stderr: std::process::ChildStderr,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log.lock().unwrap().push(line.clone());
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                let addr = v["fields"]["addr"].as_str().or(v["addr"].as_str());
                if let Some(addr) = addr {
                    let _ = tx.send(addr.to_string());
                }
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the server did not say where it listens")
}

#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = base_vars(dir.path());
    vars.retain(|(k, _)| k != "LOG_LEVEL");
    vars.extend(
        [
            ("LOG_LEVEL", "info"),
            ("LOG_STYLE", "raw"),
            ("SERVER_SHUTDOWN_TIMEOUT", "20s"),
            ("GATEHOUSE_REQUEST_BODY_TIMEOUT", "60s"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .env_clear()
        .envs(vars)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let log = std::sync::Arc::default();
    let addr = listening_addr(child.stderr.take().unwrap(), std::sync::Arc::clone(&log));

    // The request log names the matched route, never the raw URI with its query.
    let probe = reqwest::get(format!(
        "http://{addr}/server/info?access_token=token-that-must-not-be-logged"
    ))
    .await
    .unwrap();
    assert!(probe.status().is_client_error(), "{}", probe.status());

    // A login whose body has not all come yet when the signal arrives.
    let body = format!(r#"{{"email":"{ADMIN_EMAIL}","password":"{ADMIN_PASSWORD}"}}"#);
    let (head, rest) = body.split_at(10);
    let mut in_flight = TcpStream::connect(&addr).await.unwrap();
    in_flight
        .write_all(
            format!(
                "POST /auth/login HTTP/1.1\r\nHost: gatehouse\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{head}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // Let the server read the head and start the handler before the signal.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    // It stops accepting: new connections are refused once the listener is closed.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(&addr).await {
            Err(_) => break,
            Ok(_) if Instant::now() > deadline => panic!("still accepting 10 s after SIGTERM"),
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );

    // The request in flight finishes and gets its whole answer; then the server closes the
    // connection (`read_to_end` returns) instead of keeping it alive.
    in_flight.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), in_flight.read_to_end(&mut answer))
        .await
        .expect("the answer did not come")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"access_token\""), "{answer}");

    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit 30 s after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = log.lock().unwrap().join("\n");
    assert_eq!(exit.code(), Some(0), "exit {exit:?}; log: {log}");
    assert!(!log.contains(ADMIN_PASSWORD), "the log holds the password");
    assert!(!log.contains("token-that-must-not-be-logged"), "{log}");
    let answered = |route: &str, status: u64| {
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| {
                v["fields"]["message"] == "response"
                    && v["span"]["route"] == route
                    && v["span"]["status"] == status
            })
    };
    assert!(
        answered("/server/info", 401),
        "no response line for /server/info: {log}"
    );
    assert!(
        answered("/auth/login", 200),
        "no response line for /auth/login: {log}"
    );
}
