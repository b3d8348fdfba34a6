//! The request rate limiters (`RATE_LIMITER_*`): per client IP on every request, one global
//! bucket, and `POST /users/register` (on by default), in memory or in Redis shared by every
//! node; 429 `REQUESTS_EXCEEDED` with `Retry-After`, 503 while Redis cannot be reached. Also:
//! a database failure during a login answers an error without counting a failed attempt.
//!
//! The Redis tests need a Redis server at `TEST_REDIS_URL` (used under a fresh key prefix) and
//! the `redis-server` binary for the outage test; they are marked ignored, like the
//! PostgreSQL-only tests, so a plain `cargo test` needs no services, and they fail rather than
//! pass empty when run with `--include-ignored` without the URL (`.ci/run` sets it).

use std::time::{Duration, Instant};

use gatehouse::config::{Config, Vars};
use serde_json::json;

use crate::helpers::*;

const NEEDS_REDIS: &str =
    "this test needs TEST_REDIS_URL (e.g. redis://127.0.0.1:6379; scripts/redis.sh url)";

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect(NEEDS_REDIS)
}

/// A Redis key prefix no other test uses; its keys are deleted on drop.
struct Prefix(String);

impl Prefix {
    fn new() -> Self {
        Prefix(format!("gh-test-{}", uuid::Uuid::new_v4().simple()))
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let Some(url) = std::env::var("TEST_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            return;
        };
        let Ok(client) = redis::Client::open(url) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.0))
            .query(&mut conn)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
        }
    }
}

/// A request from `ip` (through `X-Forwarded-For`).
async fn from(app: &TestApp, method: reqwest::Method, path: &str, ip: &str) -> Resp {
    let req = app
        .client
        .request(method, app.url(path))
        .header("x-forwarded-for", ip);
    read(req.send().await.unwrap()).await
}

async fn ping(app: &TestApp, ip: &str) -> Resp {
    from(app, reqwest::Method::GET, "/server/ping", ip).await
}

/// Asserts Directus's 429 and returns `Retry-After` in seconds.
#[track_caller]
fn assert_refused(r: &Resp, limit: u64) -> u64 {
    r.assert_error(429, "REQUESTS_EXCEEDED");
    let e = &r.body["errors"][0];
    let message = e["message"].as_str().unwrap();
    assert!(
        message.starts_with("Too many requests, retry after ") && message.ends_with('.'),
        "{message}"
    );
    assert_eq!(e["extensions"]["limit"], limit, "{}", r.text);
    let reset = e["extensions"]["reset"].as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(reset).unwrap();
    r.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse::<u64>()
        .unwrap()
}

#[tokio::test]
async fn the_ip_limiter_refuses_one_client_and_not_the_others() {
    let app = spawn_with(&[
        ("RATE_LIMITER_ENABLED", "true"),
        ("RATE_LIMITER_POINTS", "3"),
        ("RATE_LIMITER_DURATION", "60"),
        ("IP_TRUST_PROXY", "true"),
    ])
    .await;
    for _ in 0..3 {
        let r = ping(&app, "203.0.113.1").await;
        assert_eq!((r.status, r.text.as_str()), (200, "pong"));
    }
    let r = ping(&app, "203.0.113.1").await;
    let retry = assert_refused(&r, 3);
    // One point comes back every 20 s (docs/compatibility.md).
    assert!((1..=20).contains(&retry), "Retry-After {retry}");
    // Every route counts, before the token check: a bad token is still refused with 429.
    let r = app
        .client
        .get(app.url("/users/me"))
        .header("x-forwarded-for", "203.0.113.1")
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(read(r).await.status, 429);
    // Another client is not affected.
    assert_eq!(ping(&app, "203.0.113.2").await.status, 200);
    assert_eq!(
        from(&app, reqwest::Method::GET, "/nowhere", "203.0.113.2")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn without_trust_a_forwarded_address_does_not_make_a_new_client() {
    let app = spawn_with(&[
        ("RATE_LIMITER_ENABLED", "true"),
        ("RATE_LIMITER_POINTS", "2"),
        ("RATE_LIMITER_DURATION", "60"),
    ])
    .await;
    assert_eq!(ping(&app, "198.51.100.1").await.status, 200);
    assert_eq!(ping(&app, "198.51.100.2").await.status, 200);
    // All three come from 127.0.0.1, whatever the header says.
    assert_refused(&ping(&app, "198.51.100.3").await, 2);
}

#[tokio::test]
async fn a_custom_ip_header_keys_the_limiter() {
    let app = spawn_with(&[
        ("RATE_LIMITER_ENABLED", "true"),
        ("RATE_LIMITER_POINTS", "1"),
        ("RATE_LIMITER_DURATION", "60"),
        ("IP_CUSTOM_HEADER", "CF-Connecting-IP"),
    ])
    .await;
    let get = |ip: &'static str| {
        let req = app
            .client
            .get(app.url("/server/ping"))
            .header("cf-connecting-ip", ip);
        async move { read(req.send().await.unwrap()).await }
    };
    assert_eq!(get("2001:db8::1").await.status, 200);
    assert_eq!(get("2001:db8::1").await.status, 429);
    assert_eq!(get("2001:db8::2").await.status, 200);
}

#[tokio::test]
async fn a_429_carries_cors_headers_and_preflights_are_not_counted() {
    let app = spawn_with(&[
        ("RATE_LIMITER_ENABLED", "true"),
        ("RATE_LIMITER_POINTS", "1"),
        ("RATE_LIMITER_DURATION", "60"),
        ("CORS_ENABLED", "true"),
        ("CORS_ORIGIN", "https://app.example"),
    ])
    .await;
    // The cors package answers preflights before Directus's limiters run.
    for _ in 0..3 {
        let r = app
            .client
            .request(reqwest::Method::OPTIONS, app.url("/auth/login"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    let get = || {
        app.client
            .get(app.url("/server/ping"))
            .header("origin", "https://app.example")
            .send()
    };
    assert_eq!(get().await.unwrap().status(), 200);
    let r = read(get().await.unwrap()).await;
    assert_refused(&r, 1);
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://app.example"
    );
}

#[tokio::test]
async fn the_global_limiter_counts_every_client() {
    let app = spawn_with(&[
        ("RATE_LIMITER_ENABLED", "true"),
        ("RATE_LIMITER_POINTS", "5"),
        ("RATE_LIMITER_DURATION", "60"),
        ("RATE_LIMITER_GLOBAL_ENABLED", "true"),
        ("RATE_LIMITER_GLOBAL_POINTS", "8"),
        ("RATE_LIMITER_GLOBAL_DURATION", "60"),
        ("IP_TRUST_PROXY", "true"),
    ])
    .await;
    for i in 0..8 {
        let r = ping(&app, &format!("192.0.2.{}", i % 3 + 1)).await;
        assert_eq!(r.status, 200, "request {i}");
    }
    // A client that has not used any of its own points is refused by the global bucket.
    assert_refused(&ping(&app, "192.0.2.200").await, 8);
}

#[test]
fn a_global_limit_not_above_the_ip_limit_stops_the_start() {
    for (extra, want) in [
        (
            vec![
                ("RATE_LIMITER_ENABLED", "true"),
                ("RATE_LIMITER_GLOBAL_ENABLED", "true"),
                ("RATE_LIMITER_GLOBAL_POINTS", "50"),
            ],
            "more requests per second",
        ),
        (
            vec![("RATE_LIMITER_GLOBAL_ENABLED", "true")],
            "RATE_LIMITER_ENABLED=true",
        ),
    ] {
        let err = Config::from_vars(&Vars::from_pairs(extra).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err}");
    }
}

#[tokio::test]
async fn registration_is_limited_by_default_per_client() {
    let app = spawn_with(&[("IP_TRUST_PROXY", "true"), ("REGISTER_STALL_TIME", "0")]).await;
    let register = |ip: &'static str| {
        let req = app
            .client
            .post(app.url("/users/register"))
            .header("x-forwarded-for", ip)
            .json(&json!({"email": "new@example.com", "password": "a-long-password"}));
        async move { read(req.send().await.unwrap()).await }
    };
    for i in 0..5 {
        let r = register("192.0.2.10").await;
        assert_ne!(r.status, 429, "attempt {i}: {}", r.text);
    }
    let retry = assert_refused(&register("192.0.2.10").await, 5);
    // 5 per 60 s: a point comes back every 12 s.
    assert!((1..=12).contains(&retry), "Retry-After {retry}");
    assert_ne!(register("192.0.2.11").await.status, 429);
    // Other routes are not drawn from that bucket.
    assert_eq!(ping(&app, "192.0.2.10").await.status, 200);
}

#[tokio::test]
async fn registration_limit_can_be_turned_off() {
    let app = spawn_with(&[("RATE_LIMITER_REGISTRATION_ENABLED", "false")]).await;
    for _ in 0..7 {
        let r = app
            .post(
                "/users/register",
                None,
                json!({"email": "new@example.com", "password": "a-long-password"}),
            )
            .await;
        assert_ne!(r.status, 429, "{}", r.text);
    }
}

fn redis_vars<'a>(prefix: &'a Prefix, url: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("RATE_LIMITER_ENABLED", "true"),
        ("RATE_LIMITER_STORE", "redis"),
        ("REDIS", url),
        ("RATE_LIMITER_KEY_PREFIX", prefix.0.as_str()),
        ("IP_TRUST_PROXY", "true"),
    ]
}

#[tokio::test]
#[ignore = "needs TEST_REDIS_URL (Redis)"]
async fn the_redis_store_is_shared_by_every_node() {
    let prefix = Prefix::new();
    let url = redis_url();
    let mut vars = redis_vars(&prefix, &url);
    vars.extend([
        ("RATE_LIMITER_POINTS", "4"),
        ("RATE_LIMITER_DURATION", "60"),
    ]);
    let nodes = spawn_nodes(2, &vars).await;
    for i in 0..4 {
        let r = ping(&nodes[i % 2], "203.0.113.50").await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text);
    }
    for node in &nodes {
        let retry = assert_refused(&ping(node, "203.0.113.50").await, 4);
        // A fixed window: the rest of the 60 s.
        assert!((50..=60).contains(&retry), "Retry-After {retry}");
    }
    assert_eq!(ping(&nodes[1], "203.0.113.51").await.status, 200);
    // rate-limiter-flexible's key, so Directus nodes on the same Redis share it.
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let count: i64 = redis::cmd("GET")
        .arg(format!("{}:203.0.113.50", prefix.0))
        .query(&mut conn)
        .unwrap();
    assert_eq!(count, 6);
}

/// Concurrent requests for one key share Redis calls (src/http/rate_limit.rs): however they
/// are batched, exactly `POINTS` pass and the count in Redis is one per request.
#[tokio::test]
#[ignore = "needs TEST_REDIS_URL (Redis)"]
async fn concurrent_requests_on_one_key_are_counted_exactly_once_each() {
    let prefix = Prefix::new();
    let url = redis_url();
    let mut vars = redis_vars(&prefix, &url);
    vars.extend([
        ("RATE_LIMITER_POINTS", "30"),
        ("RATE_LIMITER_DURATION", "60"),
    ]);
    let nodes = spawn_nodes(2, &vars).await;
    let requests = (0..120).map(|i| ping(&nodes[i % 2], "203.0.113.70"));
    let answers = futures::future::join_all(requests).await;
    let passed = answers.iter().filter(|r| r.status == 200).count();
    let refused = answers.iter().filter(|r| r.status == 429).count();
    assert_eq!((passed, refused), (30, 90));
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let count: i64 = redis::cmd("GET")
        .arg(format!("{}:203.0.113.70", prefix.0))
        .query(&mut conn)
        .unwrap();
    assert_eq!(count, 120);
}

#[tokio::test]
#[ignore = "needs TEST_REDIS_URL (Redis)"]
async fn a_redis_window_opens_again_after_its_duration() {
    let prefix = Prefix::new();
    let url = redis_url();
    let mut vars = redis_vars(&prefix, &url);
    vars.extend([("RATE_LIMITER_POINTS", "2"), ("RATE_LIMITER_DURATION", "1")]);
    let app = spawn_with(&vars).await;
    // Wait for the start of a fresh window so that all three land in one.
    let mut refused = None;
    for _ in 0..3 {
        for _ in 0..2 {
            ping(&app, "203.0.113.60").await;
        }
        let r = ping(&app, "203.0.113.60").await;
        if r.status == 429 {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("the third request in a window is refused");
    assert_eq!(assert_refused(&refused, 2), 1);
    // Real time: the key's TTL is 1 s.
    let start = Instant::now();
    let r = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = ping(&app, "203.0.113.60").await;
        if r.status == 200 || start.elapsed() > Duration::from_secs(5) {
            break r;
        }
    };
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A `redis-server` of this test's own, on `port`; stopped on drop.
struct PrivateRedis(std::process::Child);

impl PrivateRedis {
    async fn start(port: u16) -> PrivateRedis {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--bind", "127.0.0.1"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        PrivateRedis(child)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
#[ignore = "needs the redis-server binary (run with the Redis tests)"]
async fn an_unreachable_redis_is_503_and_service_returns_with_it() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let prefix = Prefix::new();
    let url = format!("redis://127.0.0.1:{port}");
    let mut vars = redis_vars(&prefix, &url);
    vars.extend([
        ("RATE_LIMITER_POINTS", "100"),
        ("RATE_LIMITER_DURATION", "60"),
    ]);
    // Starts with Redis down.
    let app = spawn_with(&vars).await;
    let start = Instant::now();
    let r = ping(&app, "203.0.113.70").await;
    r.assert_error(503, "SERVICE_UNAVAILABLE");
    assert_eq!(
        r.body["errors"][0]["message"],
        "Service \"rate-limiter\" is unavailable. Rate limiter unreachable."
    );
    assert_eq!(r.body["errors"][0]["extensions"]["service"], "rate-limiter");
    // Bounded by the Redis timeout, not a hang.
    assert!(start.elapsed() < Duration::from_secs(10));

    let redis = PrivateRedis::start(port).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let r = loop {
        let r = ping(&app, "203.0.113.70").await;
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((r.status, r.text.as_str()), (200, "pong"));

    // Down again mid-run, and back.
    drop(redis);
    let r = ping(&app, "203.0.113.70").await;
    r.assert_error(503, "SERVICE_UNAVAILABLE");
    let _redis = PrivateRedis::start(port).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let r = loop {
        let r = ping(&app, "203.0.113.70").await;
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(r.status, 200, "{}", r.text);
}

/// The database refuses the failed-login increment: on PostgreSQL the connection is ended
/// from inside the statement (a real outage at that moment), on SQLite the write fails.
async fn break_the_counter(app: &TestApp, db: &Db) {
    match db {
        Db::Pg { url, schema } => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::raw_sql(&format!(
                r#"CREATE FUNCTION "{schema}".gh_cut() RETURNS trigger LANGUAGE plpgsql AS $$
                   BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$;
                   CREATE TRIGGER gh_cut BEFORE INSERT OR UPDATE ON "{schema}"."gatehouse_login_attempts"
                   FOR EACH ROW EXECUTE FUNCTION "{schema}".gh_cut();"#
            ))
            .execute(&pool)
            .await
            .unwrap();
        }
        Db::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.execute_batch(
                r#"CREATE TRIGGER gh_cut_i BEFORE INSERT ON "gatehouse_login_attempts"
                   BEGIN SELECT RAISE(ABORT, 'cut'); END;
                   CREATE TRIGGER gh_cut_u BEFORE UPDATE ON "gatehouse_login_attempts"
                   BEGIN SELECT RAISE(ABORT, 'cut'); END;"#,
            )
            .unwrap();
        }
    }
    let _ = app;
}

async fn mend_the_counter(db: &Db) {
    match db {
        Db::Pg { url, schema } => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::raw_sql(&format!(
                r#"DROP TRIGGER gh_cut ON "{schema}"."gatehouse_login_attempts""#
            ))
            .execute(&pool)
            .await
            .unwrap();
        }
        Db::Sqlite(path) => {
            rusqlite::Connection::open(path)
                .unwrap()
                .execute_batch("DROP TRIGGER gh_cut_i; DROP TRIGGER gh_cut_u;")
                .unwrap();
        }
    }
}

enum Db {
    Pg { url: String, schema: String },
    Sqlite(std::path::PathBuf),
}

#[tokio::test]
async fn a_database_failure_during_login_does_not_count_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let db = match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Db::Pg {
            url,
            schema: format!("gh_{}", uuid::Uuid::new_v4().simple()),
        },
        _ => Db::Sqlite(dir.path().join("counter.db")),
    };
    let conn;
    let vars: Vec<(&str, &str)> = match &db {
        Db::Pg { url, schema } => {
            let sep = if url.contains('?') { '&' } else { '?' };
            conn = format!("{url}{sep}gh_schema={schema}");
            vec![("DB_CLIENT", "pg"), ("DB_CONNECTION_STRING", conn.as_str())]
        }
        Db::Sqlite(path) => vec![
            ("DB_CLIENT", "sqlite3"),
            ("DB_FILENAME", path.to_str().unwrap()),
        ],
    };
    let app = spawn_with(&vars).await;
    let admin = app.admin_token().await;
    let id = app
        .create_user(&admin, "counted@example.com", "right-password", None)
        .await;
    let uid: uuid::Uuid = id.parse().unwrap();
    let failures = || app.auth.store.counters.login_failures(uid);

    let r = app
        .login("counted@example.com", "wrong-password", "json")
        .await;
    r.assert_error(401, "INVALID_CREDENTIALS");
    assert_eq!(failures().await.unwrap(), 1);

    break_the_counter(&app, &db).await;
    let r = app
        .login("counted@example.com", "wrong-password", "json")
        .await;
    assert!(r.status >= 500, "{} {}", r.status, r.text);
    if matches!(db, Db::Pg { .. }) {
        r.assert_error(503, "SERVICE_UNAVAILABLE");
    } else {
        r.assert_error(500, "INTERNAL_SERVER_ERROR");
    }
    assert_eq!(
        failures().await.unwrap(),
        1,
        "the failed request was counted"
    );

    mend_the_counter(&db).await;
    let r = app
        .login("counted@example.com", "wrong-password", "json")
        .await;
    r.assert_error(401, "INVALID_CREDENTIALS");
    assert_eq!(failures().await.unwrap(), 2);
    let r = app
        .login("counted@example.com", "right-password", "json")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(failures().await.unwrap(), 0);
}

/// `/server/health` asks Redis itself (`rateLimiter:responseTime`, Directus's name), without
/// writing: no key is left under the prefix by the check.
#[tokio::test]
#[ignore = "needs TEST_REDIS_URL (Redis)"]
async fn health_checks_the_limiters_redis() {
    let prefix = Prefix::new();
    let url = redis_url();
    let mut vars = redis_vars(&prefix, &url);
    vars.push(("RATE_LIMITER_POINTS", "1000"));
    let app = spawn_with(&vars).await;
    let token = app.admin_token().await;
    let r = app.get("/server/health", Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = &r.body["checks"]["rateLimiter:responseTime"][0];
    assert_eq!(c["status"], "ok", "{}", r.text);
    assert_eq!(c["componentType"], "ratelimiter");
    assert!(
        c["observedValue"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{c}"
    );
}
