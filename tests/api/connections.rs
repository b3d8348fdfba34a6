//! Client connections: the header and idle timeouts, the request-body timeout, the connection
//! bound, and the shutdown deadline (src/http/serve.rs). Timeouts are configured at 1–2 s and
//! checked against bounds of 10 s or more, so a slow machine does not fail them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// How long a test waits for something the server must do within 1–2 s.
const BOUND: Duration = Duration::from_secs(15);

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

/// True when the peer closes (EOF or reset) within `bound`; bytes read meanwhile are dropped.
async fn closed_within(r: &mut (impl AsyncRead + Unpin), bound: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(bound, async {
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Reads one HTTP/1.1 answer with a `Content-Length`: (status, head, body).
async fn read_answer(r: &mut (impl AsyncRead + Unpin)) -> (u16, String, String) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = r.read(&mut buf).await.expect("read");
        assert!(
            n > 0,
            "closed before an answer: {:?}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let status = head[9..12].parse().expect("status");
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + len {
        let n = r.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed mid-body");
        data.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&data[head_end..head_end + len]).to_string();
    (status, head, body)
}

const PING: &[u8] = b"GET /server/ping HTTP/1.1\r\nHost: gatehouse\r\n\r\n";

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_dropped() {
    let app = spawn_with(&[
        ("SERVER_HEADERS_TIMEOUT", "1s"),
        ("SERVER_KEEP_ALIVE_TIMEOUT", "600s"),
    ])
    .await;
    let slow = TcpStream::connect(addr(&app)).await.unwrap();
    let (mut rd, mut wr) = slow.into_split();
    wr.write_all(b"GET /server/ping HTTP/1.1\r\nHost: gatehouse\r\nX-Slow")
        .await
        .unwrap();
    // A byte every 100 ms: the connection is never idle, its headers are just never done.
    let trickle = tokio::spawn(async move {
        for _ in 0..600 {
            if wr.write_all(b"w").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // Other clients are served meanwhile.
    for _ in 0..3 {
        let r = app.get("/server/ping", None).await;
        assert_eq!((r.status, r.text.as_str()), (200, "pong"));
    }
    assert!(
        closed_within(&mut rd, BOUND).await,
        "a client trickling its headers was still connected after {BOUND:?}"
    );
    trickle.abort();
}

#[tokio::test]
async fn idle_keep_alive_and_silent_connections_are_closed() {
    let app = spawn_with(&[
        ("SERVER_KEEP_ALIVE_TIMEOUT", "1s"),
        ("SERVER_HEADERS_TIMEOUT", "600s"),
    ])
    .await;
    let mut kept = TcpStream::connect(addr(&app)).await.unwrap();
    for _ in 0..2 {
        kept.write_all(PING).await.unwrap();
        let (status, _, body) = read_answer(&mut kept).await;
        assert_eq!((status, body.as_str()), (200, "pong"));
    }
    let mut silent = TcpStream::connect(addr(&app)).await.unwrap();
    assert!(
        closed_within(&mut kept, BOUND).await,
        "an idle keep-alive connection was still open after {BOUND:?}"
    );
    assert!(
        closed_within(&mut silent, BOUND).await,
        "a connection that never sent a byte was still open after {BOUND:?}"
    );
}

#[tokio::test]
async fn a_body_that_stalls_ends_with_the_envelope() {
    let app = spawn_with(&[("GATEHOUSE_REQUEST_BODY_TIMEOUT", "1s")]).await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    s.write_all(
        b"POST /auth/login HTTP/1.1\r\nHost: gatehouse\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"email\":\"admin@",
    )
    .await
    .unwrap();
    let (status, head, body) = tokio::time::timeout(BOUND, read_answer(&mut s))
        .await
        .expect("no answer to a stalled body");
    assert_eq!(status, 408, "{head}{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json; charset=utf-8"),
        "{head}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "REQUEST_TIMEOUT");
    assert_eq!(
        body["errors"][0]["message"],
        "The request body was not received in time."
    );
    // The server is fine afterwards.
    assert_eq!(
        app.login(ADMIN_EMAIL, ADMIN_PASSWORD, "json").await.status,
        200
    );
}

#[tokio::test]
async fn silent_connections_at_the_bound_give_way_to_real_requests() {
    let app = spawn_with(&[
        ("GATEHOUSE_MAX_CONNECTIONS", "2"),
        ("SERVER_HEADERS_TIMEOUT", "2s"),
        ("SERVER_KEEP_ALIVE_TIMEOUT", "600s"),
    ])
    .await;
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(TcpStream::connect(addr(&app)).await.unwrap());
    }
    let start = Instant::now();
    let mut real = TcpStream::connect(addr(&app)).await.unwrap();
    real.write_all(PING).await.unwrap();
    let (status, _, body) = tokio::time::timeout(BOUND, read_answer(&mut real))
        .await
        .expect("the real request was never served");
    assert_eq!((status, body.as_str()), (200, "pong"));
    // It waited for a slot: the bound held until the header timeout (2 s) freed one.
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "served after {:?}: the connection bound was not applied",
        start.elapsed()
    );
    for s in &mut silent {
        assert!(closed_within(s, BOUND).await);
    }
}

#[tokio::test]
async fn shutdown_returns_within_its_deadline_with_slow_clients_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = base_vars(dir.path());
    vars.extend(
        [
            ("SERVER_SHUTDOWN_TIMEOUT", "1s"),
            ("SERVER_HEADERS_TIMEOUT", "600s"),
            ("SERVER_KEEP_ALIVE_TIMEOUT", "600s"),
            ("GATEHOUSE_REQUEST_BODY_TIMEOUT", "600s"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let config =
        gatehouse::config::Config::from_vars(&gatehouse::config::Vars::from_pairs(vars).unwrap())
            .unwrap();
    let app = gatehouse::App::build(config, Arc::new(gatehouse::clock::OffsetClock::default()))
        .await
        .unwrap();
    let addr = app.addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(async move {
        let _ = rx.await;
    }));
    // One request in flight whose body never comes, one client stuck in its headers, and one
    // idle keep-alive connection.
    let mut in_flight = TcpStream::connect(addr).await.unwrap();
    in_flight
        .write_all(
            b"POST /auth/login HTTP/1.1\r\nHost: gatehouse\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
    let mut in_headers = TcpStream::connect(addr).await.unwrap();
    in_headers
        .write_all(b"GET /server/ping HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(PING).await.unwrap();
    let (status, _, _) = read_answer(&mut idle).await;
    assert_eq!(status, 200);

    tx.send(()).unwrap();
    let ended = tokio::time::timeout(BOUND, server).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "serve did not return within {BOUND:?}: {ended:?}"
    );
    for (name, s) in [
        ("in flight", &mut in_flight),
        ("in headers", &mut in_headers),
        ("idle", &mut idle),
    ] {
        assert!(
            closed_within(s, BOUND).await,
            "the {name} connection outlived the shutdown"
        );
    }
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}
