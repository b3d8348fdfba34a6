//! `/server/health` checks that writes land: it fails while the database refuses writes
//! (a full disk, simulated by triggers that raise) even though reads still work, recovers
//! by itself, and shares one probe among concurrent requests.

use std::time::{Duration, Instant};

use gatehouse::config::DbConfig;
use serde_json::json;
use sqlx::{Connection, Executor};

use crate::helpers::*;

/// A connection of the test's own to the app's database, for DDL behind the app's back.
enum Db {
    Sqlite(std::path::PathBuf),
    Postgres(sqlx::PgConnection),
}

impl Db {
    async fn of(app: &TestApp) -> Db {
        match &app.auth.config.db {
            DbConfig::Sqlite { filename } => Db::Sqlite(filename.clone()),
            DbConfig::Postgres { url } => {
                // The harness puts each test in a schema of its own (`gh_schema=`).
                let (base, query) = url.split_once('?').expect("gh_schema in the URL");
                let mut kept = Vec::new();
                let mut schema = None;
                for pair in query.split('&') {
                    match pair.strip_prefix("gh_schema=") {
                        Some(s) => schema = Some(s.to_string()),
                        None => kept.push(pair),
                    }
                }
                let url = if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                };
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                let schema = schema.expect("gh_schema");
                conn.execute(format!("SET search_path TO \"{schema}\"").as_str())
                    .await
                    .unwrap();
                Db::Postgres(conn)
            }
        }
    }

    fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    async fn run(&mut self, sqlite: &'static str, postgres: &'static str) {
        match self {
            Db::Sqlite(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let conn = rusqlite::Connection::open(path).unwrap();
                    conn.busy_timeout(Duration::from_secs(10)).unwrap();
                    conn.execute_batch(sqlite).unwrap();
                })
                .await
                .unwrap();
            }
            Db::Postgres(conn) => {
                conn.execute(sqlx::raw_sql(postgres)).await.unwrap();
            }
        }
    }

    async fn count(&mut self, table: &'static str) -> i64 {
        let sql = format!("SELECT count(*) FROM {table}");
        match self {
            Db::Sqlite(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let conn = rusqlite::Connection::open(path).unwrap();
                    conn.busy_timeout(Duration::from_secs(10)).unwrap();
                    conn.query_row(&sql, [], |r| r.get(0)).unwrap()
                })
                .await
                .unwrap()
            }
            Db::Postgres(conn) => sqlx::query_scalar(&sql).fetch_one(conn).await.unwrap(),
        }
    }
}

/// Makes every write to `gatehouse_meta` and `directus_sessions` fail, as a full disk would
/// (on PostgreSQL with the `disk_full` SQLSTATE).
const BREAK_SQLITE: &str = "
    CREATE TRIGGER gh_full_meta_i BEFORE INSERT ON gatehouse_meta BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;
    CREATE TRIGGER gh_full_meta_u BEFORE UPDATE ON gatehouse_meta BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;
    CREATE TRIGGER gh_full_sessions BEFORE INSERT ON directus_sessions BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;";
const BREAK_POSTGRES: &str = "
    CREATE FUNCTION gh_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$;
    CREATE TRIGGER gh_full_meta BEFORE INSERT OR UPDATE ON gatehouse_meta FOR EACH ROW EXECUTE FUNCTION gh_disk_full();
    CREATE TRIGGER gh_full_sessions BEFORE INSERT ON directus_sessions FOR EACH ROW EXECUTE FUNCTION gh_disk_full();";
const MEND_SQLITE: &str = "
    DROP TRIGGER gh_full_meta_i; DROP TRIGGER gh_full_meta_u; DROP TRIGGER gh_full_sessions;";
const MEND_POSTGRES: &str = "
    DROP TRIGGER gh_full_meta ON gatehouse_meta; DROP TRIGGER gh_full_sessions ON directus_sessions;";

/// Asks for health until it answers `status` (health shares a probe for about a second, so
/// a change shows after that); gives up after a generous 10 s.
async fn health_becomes(app: &TestApp, status: u16) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = app.get("/server/health", None).await;
        if r.status == status || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn health_is_error_while_writes_cannot_land_and_ok_once_they_can() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let mut db = Db::of(&app).await;
    assert_eq!(app.get("/server/health", None).await.status, 200);

    db.run(BREAK_SQLITE, BREAK_POSTGRES).await;
    // Reads still work (a `SELECT` probe would say ok) while logins cannot store a session.
    assert_eq!(app.get("/users", Some(&token)).await.status, 200);
    let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD, "json").await;
    if db.is_postgres() {
        login.assert_error(503, "SERVICE_UNAVAILABLE");
        assert_eq!(login.body["errors"][0]["extensions"]["service"], "database");
        assert!(!login.text.contains("No space left"), "{}", login.text);
    } else {
        // A trigger's RAISE is a constraint error to SQLite, not a full disk.
        login.assert_error(500, "INTERNAL_SERVER_ERROR");
    }

    let r = health_becomes(&app, 503).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.body, json!({"status": "error"}));
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/health+json"));
    let r = app.get("/server/health", Some(&token)).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["status"], "error");
    let checks = r.body["checks"].as_object().unwrap();
    let (_, check) = checks.iter().next().unwrap();
    assert_eq!(check[0]["status"], "error");
    assert_eq!(check[0]["componentType"], "datastore");

    db.run(MEND_SQLITE, MEND_POSTGRES).await;
    let r = health_becomes(&app, 200).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // `warn` only says the write took longer than the threshold (a loaded machine).
    assert!(
        r.body == json!({"status": "ok"}) || r.body == json!({"status": "warn"}),
        "{}",
        r.text
    );
    assert_eq!(
        app.login(ADMIN_EMAIL, ADMIN_PASSWORD, "json").await.status,
        200
    );
}

#[tokio::test]
async fn concurrent_health_requests_share_one_probe_write() {
    let app = spawn_app().await;
    let mut db = Db::of(&app).await;
    db.run(
        "CREATE TABLE gh_probe_log (n integer);
         CREATE TRIGGER gh_probe_i AFTER INSERT ON gatehouse_meta BEGIN INSERT INTO gh_probe_log VALUES (1); END;
         CREATE TRIGGER gh_probe_u AFTER UPDATE ON gatehouse_meta BEGIN INSERT INTO gh_probe_log VALUES (1); END;",
        "CREATE TABLE gh_probe_log (n integer);
         CREATE FUNCTION gh_probe() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN INSERT INTO gh_probe_log VALUES (1); RETURN NULL; END $$;
         CREATE TRIGGER gh_probe AFTER INSERT OR UPDATE ON gatehouse_meta FOR EACH ROW EXECUTE FUNCTION gh_probe();",
    )
    .await;
    let start = Instant::now();
    let answers = futures::future::join_all((0..40).map(|_| app.get("/server/health", None))).await;
    let elapsed = start.elapsed();
    assert!(answers.iter().all(|r| r.status == 200));
    let writes = db.count("gh_probe_log").await;
    // Probes are at least a second apart, however slow this machine is.
    let most = 1 + elapsed.as_secs() as i64;
    assert!(
        (1..=most).contains(&writes),
        "{writes} probe writes for 40 requests in {elapsed:?}"
    );
}

#[tokio::test]
async fn liveness_does_not_touch_the_database_and_readiness_does() {
    let app = spawn_app().await;
    assert_eq!(app.get("/server/health/live", None).await.status, 200);
    assert_eq!(
        app.get("/server/health/ready", None).await.body,
        json!({"status": "ok"})
    );
    let mut db = Db::of(&app).await;
    db.run(BREAK_SQLITE, BREAK_POSTGRES).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let ready = loop {
        let r = app.get("/server/health/ready", None).await;
        if r.status == 503 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert_eq!(ready.body, json!({"status": "error"}));
    let live = app.get("/server/health/live", None).await;
    assert_eq!(live.status, 200, "{}", live.text);
    assert_eq!(live.body, json!({"status": "ok"}));
    // Probes carry no token, and a bad one does not fail them.
    let r = app.get("/server/health/live", Some("not-a-token")).await;
    assert_eq!(r.status, 200);
    db.run(MEND_SQLITE, MEND_POSTGRES).await;
}
