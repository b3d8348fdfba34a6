//! PostgreSQL outages: while the database cannot be reached, requests answer 503
//! `SERVICE_UNAVAILABLE` after the pool's acquire timeout instead of hanging, and the server
//! recovers by itself once the database is back. A TCP proxy in the test stands between
//! gatehouse and the real PostgreSQL, and the test cuts it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::*;

const NEEDS_PG: &str = "this test needs PostgreSQL: set TEST_DATABASE_URL=postgres://… and run it with `-- --include-ignored`";

/// A loopback TCP proxy to PostgreSQL. `cut` closes every live connection and black-holes
/// new ones (accepted, never answered, as a dead network path behaves); `restore` ends that.
struct Proxy {
    addr: SocketAddr,
    cut: Arc<watch::Sender<bool>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(watch::Sender::new(false));
        let state = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut cut = state.subscribe();
                tokio::spawn(async move {
                    if *cut.borrow_and_update() {
                        // Black hole: hold the socket, silent, until the network is back.
                        let _ = cut.wait_for(|c| !*c).await;
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        // Dropping both streams closes both sides.
                        _ = cut.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Proxy { addr, cut }
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }

    fn restore(&self) {
        self.cut.send_replace(false);
    }
}

/// A server whose PostgreSQL connections all go through `proxy`.
async fn spawn_behind(proxy: &Proxy, base: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut url = reqwest::Url::parse(base).unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();
    let sep = if url.query().is_some() { '&' } else { '?' };
    let url = format!("{url}{sep}gh_schema=gh_{}", uuid::Uuid::new_v4().simple());
    let mut vars = vec![("DB_CONNECTION_STRING", url.as_str())];
    vars.extend_from_slice(extra);
    spawn_with(&vars).await
}

fn upstream(base: &str) -> SocketAddr {
    let url = reqwest::Url::parse(base).unwrap();
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port().unwrap_or(5432);
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .unwrap()
        .next()
        .unwrap()
}

#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL (PostgreSQL)"]
async fn an_unreachable_database_is_503_fast_and_recovers_without_a_restart() {
    let base = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect(NEEDS_PG);
    let proxy = Proxy::start(upstream(&base)).await;
    let app = spawn_behind(&proxy, &base, &[("DB_POOL__ACQUIRE_TIMEOUT_MILLIS", "1s")]).await;
    app.admin_token().await;
    assert_eq!(app.get("/server/health", None).await.status, 200);

    proxy.cut();
    let start = Instant::now();
    let r = app.login(ADMIN_EMAIL, ADMIN_PASSWORD, "json").await;
    let waited = start.elapsed();
    r.assert_error(503, "SERVICE_UNAVAILABLE");
    let error = &r.body["errors"][0];
    assert_eq!(error["extensions"]["service"], "database");
    assert_eq!(
        error["message"],
        format!(
            "Service \"database\" is unavailable. {}.",
            error["extensions"]["reason"].as_str().unwrap()
        )
    );
    // Configured 1 s; the bound only catches the old 30 s wait.
    assert!(waited < Duration::from_secs(15), "503 after {waited:?}");
    let start = Instant::now();
    let r = app.get("/server/health", None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (503, Some("error")));
    assert!(start.elapsed() < Duration::from_secs(15));

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    let r = loop {
        let r = app.login(ADMIN_EMAIL, ADMIN_PASSWORD, "json").await;
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(r.status, 200, "after the database came back: {}", r.text);
    let deadline = Instant::now() + Duration::from_secs(15);
    let r = loop {
        let r = app.get("/server/health", None).await;
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn a_start_waits_for_postgres_within_the_start_timeout_then_names_it() {
    use gatehouse::config::{Config, Vars};
    // A closed port: every try is refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("postgres://postgres@127.0.0.1:{port}/nothing");
    let vars = [
        ("DB_CLIENT", "pg"),
        ("DB_CONNECTION_STRING", url.as_str()),
        ("GATEHOUSE_DB_START_TIMEOUT", "1200ms"),
        ("SECRET", SECRET),
        ("PORT", "0"),
        ("HOST", "127.0.0.1"),
    ];
    let config = Config::from_vars(&Vars::from_pairs(vars).unwrap()).unwrap();
    let started = Instant::now();
    let err = match gatehouse::App::build(config, Arc::new(gatehouse::clock::SystemClock)).await {
        Ok(_) => panic!("started without a database"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        started.elapsed() >= Duration::from_millis(1100),
        "gave up after {:?} instead of waiting",
        started.elapsed()
    );
    assert!(err.contains("GATEHOUSE_DB_START_TIMEOUT"), "{err}");
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
}

#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL (PostgreSQL)"]
async fn a_node_started_before_its_database_comes_up_once_it_answers() {
    let base = std::env::var("TEST_DATABASE_URL").expect(NEEDS_PG);
    let proxy = Proxy::start(upstream(&base)).await;
    proxy.cut();
    let url = {
        let mut u = reqwest::Url::parse(&base).unwrap();
        u.set_host(Some("127.0.0.1")).unwrap();
        u.set_port(Some(proxy.addr.port())).unwrap();
        let sep = if u.query().is_some() { '&' } else { '?' };
        format!("{u}{sep}gh_schema=gh_{}", uuid::Uuid::new_v4().simple())
    };
    let starting = tokio::spawn(async move {
        spawn_with(&[
            ("DB_CONNECTION_STRING", url.as_str()),
            ("DB_POOL__ACQUIRE_TIMEOUT_MILLIS", "300"),
            ("GATEHOUSE_DB_START_TIMEOUT", "60s"),
        ])
        .await
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !starting.is_finished(),
        "started while the database was away"
    );
    proxy.restore();
    let app = tokio::time::timeout(Duration::from_secs(30), starting)
        .await
        .expect("the start went on waiting after the database came back")
        .expect("the start failed");
    assert_eq!(
        app.login(ADMIN_EMAIL, ADMIN_PASSWORD, "json").await.status,
        200
    );
}
