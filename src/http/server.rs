//! `/server/ping`, `/server/health` (and gatehouse's `/server/health/live` and `/ready`) and `/server/info` (Directus: `api/src/controllers/server.ts`, `api/src/services/server.ts`), and the shared database
//! probe behind health.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::Mutex;

use super::AppState;
use crate::auth::Accountability;

/// Database and rate limiter checks younger than this are shared: health is public, and the
/// database probe is a write.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// Checks that reach another server (SMTP, identity providers) are shared longer, so a flood
/// of health requests is not a flood of connections to them.
const REMOTE_PROBE_EVERY: Duration = Duration::from_secs(10);
/// A check that takes longer counts as failed, so health answers even when a service hangs.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Directus's `responseTime` threshold for the datastore and rate limiter checks, in ms.
const THRESHOLD_MS: u32 = 150;
/// The threshold of an identity provider's check (gatehouse's own: a discovery is two
/// HTTPS reads, an LDAP check a bind and a search).
const PROVIDER_THRESHOLD_MS: u32 = 1000;

/// The checks of `/server/health` (Directus: `api/src/services/server.ts`, `health`): the
/// database, the rate limiters when on, SMTP when it is the transport, and each identity
/// provider with something to reach. Each group runs at most once at a time and its result is
/// shared by every request (public or admin) for `PROBE_EVERY` or `REMOTE_PROBE_EVERY`.
#[derive(Clone, Default)]
pub struct HealthProbe {
    local: Shared<Arc<Local>>,
    remote: Shared<Arc<Vec<Check>>>,
}

/// The last result of a probe and when it was taken.
struct Shared<T>(Arc<Mutex<Option<(Instant, T)>>>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Shared(Arc::default())
    }
}

impl<T: Clone> Shared<T> {
    async fn get<F: std::future::Future<Output = T>>(
        &self,
        every: Duration,
        probe: impl FnOnce() -> F,
    ) -> T {
        // Held across the probe: concurrent requests wait for it and then share its result.
        let mut last = self.0.lock().await;
        if let Some((at, v)) = &*last {
            if at.elapsed() < every {
                return v.clone();
            }
        }
        let v = probe().await;
        *last = Some((Instant::now(), v.clone()));
        v
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Error,
}

/// One entry of `checks`: `{status, componentType, observedValue, observedUnit, threshold,
/// output}` under `<component>:<measure>`.
#[derive(Clone, Debug)]
struct Check {
    key: String,
    component: &'static str,
    status: Status,
    /// Milliseconds taken and the threshold; None for a check without a measure (email).
    timed: Option<(f64, u32)>,
    /// Why it failed (admins only).
    output: Option<String>,
    /// A failure here leaves the other logins working: it makes the answer `warn`, not
    /// `error` and 503 (docs/compatibility.md).
    degrades_only: bool,
}

impl Check {
    fn timed(
        key: String,
        component: &'static str,
        threshold: u32,
        elapsed: Duration,
        result: Result<(), String>,
    ) -> Check {
        let ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0;
        let (status, output) = match result {
            Err(e) => (Status::Error, Some(e)),
            Ok(()) if ms > f64::from(threshold) => (Status::Warn, None),
            Ok(()) => (Status::Ok, None),
        };
        Check {
            key,
            component,
            status,
            timed: Some((ms, threshold)),
            output,
            degrades_only: false,
        }
    }

    /// What this check does to the overall status.
    fn weight(&self) -> Status {
        if self.degrades_only {
            self.status.min(Status::Warn)
        } else {
            self.status
        }
    }

    fn json(&self) -> serde_json::Value {
        let mut c = serde_json::Map::new();
        c.insert("status".into(), json!(self.status));
        c.insert("componentType".into(), json!(self.component));
        if let Some((ms, threshold)) = self.timed {
            c.insert("observedValue".into(), json!(ms));
            c.insert("observedUnit".into(), json!("ms"));
            c.insert("threshold".into(), json!(threshold));
        }
        if let Some(output) = &self.output {
            c.insert("output".into(), json!(output));
        }
        serde_json::Value::Array(vec![serde_json::Value::Object(c)])
    }
}

/// The database probe and the rate limiter checks.
#[derive(Debug)]
struct Local {
    db_ok: bool,
    db: Check,
    limiters: Vec<Check>,
}

/// A check under `PROBE_TIMEOUT`, timed; None when it has nothing to check (no SMTP
/// transport, an `oauth2` provider).
async fn timed<F>(what: &str, f: F) -> Option<(Duration, Result<(), String>)>
where
    F: std::future::Future<Output = Option<Result<(), String>>>,
{
    let start = Instant::now();
    let r = match tokio::time::timeout(PROBE_TIMEOUT, f).await {
        Ok(None) => return None,
        Ok(Some(r)) => r,
        Err(_) => Err(format!("{what} did not answer within {PROBE_TIMEOUT:?}")),
    };
    Some((start.elapsed(), r))
}

impl HealthProbe {
    async fn local(&self, state: &AppState) -> Arc<Local> {
        self.local
            .get(PROBE_EVERY, || async {
                let client = db_client(state);
                let store = state.auth.store.meta.clone();
                let db = timed("the database", async move {
                    Some(store.ping().await.map_err(|e| e.to_string()))
                });
                let (db, limiters) = tokio::join!(db, state.limits.health());
                let (elapsed, result) = db.unwrap_or((PROBE_TIMEOUT, Err("no probe".into())));
                if let Err(e) = &result {
                    tracing::error!(error = %e, "health check: the database cannot take writes");
                }
                let db_ok = result.is_ok();
                let db = Check::timed(
                    format!("{client}:responseTime"),
                    "datastore",
                    THRESHOLD_MS,
                    elapsed,
                    // Directus's words; the cause is in the log.
                    result.map_err(|_| "Can't connect to the database.".to_string()),
                );
                let limiters = limiters
                    .into_iter()
                    .map(|(name, elapsed, result)| {
                        if let Err(e) = &result {
                            tracing::error!(error = %e, limiter = name, "health check: the rate limiter's store does not answer");
                        }
                        Check::timed(
                            format!("{name}:responseTime"),
                            "ratelimiter",
                            THRESHOLD_MS,
                            elapsed,
                            result,
                        )
                    })
                    .collect();
                Arc::new(Local {
                    db_ok,
                    db,
                    limiters,
                })
            })
            .await
    }

    async fn remote(&self, state: &AppState) -> Arc<Vec<Check>> {
        self.remote
            .get(REMOTE_PROBE_EVERY, || async {
                // Each probe answers None when it has nothing to check (no SMTP transport, an
                // `oauth2` provider); the index keeps the answer in `AUTH_PROVIDERS` order.
                let mut probes = tokio::task::JoinSet::new();
                let mail = state.auth.mail.clone();
                probes.spawn(async move {
                    let check = timed("the SMTP server", mail.verify())
                        .await
                        .map(|(_, r)| email_check(r));
                    (0, check)
                });
                for (i, p) in state.auth.providers.all().enumerate() {
                    let p = p.clone();
                    probes.spawn(async move {
                        let what = format!("provider `{}`", p.name());
                        let check = timed(&what, p.health())
                            .await
                            .map(|(elapsed, r)| provider_check(p.name(), elapsed, r));
                        (i + 1, check)
                    });
                }
                let mut out = Vec::new();
                while let Some(done) = probes.join_next().await {
                    if let Ok((i, Some(check))) = done {
                        out.push((i, check));
                    }
                }
                out.sort_by_key(|(i, _)| *i);
                Arc::new(out.into_iter().map(|(_, c)| c).collect())
            })
            .await
    }
}

fn email_check(result: Result<(), String>) -> Check {
    if let Err(e) = &result {
        tracing::error!(error = %e, "health check: the SMTP server cannot be reached");
    }
    Check {
        key: "email:connection".into(),
        component: "email",
        status: if result.is_ok() {
            Status::Ok
        } else {
            Status::Error
        },
        timed: None,
        output: result.err(),
        // Only mail fails: Directus 12.4.0 answers `ok` with its SMTP server down.
        degrades_only: true,
    }
}

fn provider_check(name: &str, elapsed: Duration, result: Result<(), String>) -> Check {
    if let Err(e) = &result {
        tracing::warn!(provider = %name, error = %e, "health check: the identity provider cannot be reached");
    }
    Check {
        degrades_only: true,
        ..Check::timed(
            format!("auth:{name}:responseTime"),
            "component",
            PROVIDER_THRESHOLD_MS,
            elapsed,
            result,
        )
    }
}

fn db_client(state: &AppState) -> &'static str {
    match state.auth.config.db {
        crate::config::DbConfig::Sqlite { .. } => "sqlite3",
        crate::config::DbConfig::Postgres { .. } => "pg",
    }
}

pub async fn ping() -> Response {
    let mut res = "pong".into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res
}

/// Public callers get `{"status"}`; admins also get every check. The database check writes
/// (`MetaStore::ping`), so its `error` means that writes cannot land. A database or rate
/// limiter `error` is the answer's `error` and 503; a failed SMTP server or identity provider
/// only makes it `warn`, as does any check over its threshold.
pub async fn health(State(state): State<AppState>, acc: Accountability) -> Response {
    let (local, remote) = tokio::join!(state.health.local(&state), state.health.remote(&state));
    let checks: Vec<&Check> = std::iter::once(&local.db)
        .chain(local.limiters.iter())
        .chain(remote.iter())
        .collect();
    let status = checks
        .iter()
        .map(|c| c.weight())
        .max()
        .unwrap_or(Status::Ok);
    let admin = state.auth.is_admin(&acc).await.unwrap_or(false);
    let body = if admin {
        let mut all = serde_json::Map::new();
        let pool = state.auth.store.meta.pool_stats();
        let client = db_client(&state);
        all.insert(local.db.key.clone(), local.db.json());
        for (measure, value) in [
            ("connectionsAvailable", pool.idle),
            ("connectionsUsed", pool.open.saturating_sub(pool.idle)),
        ] {
            all.insert(
                format!("{client}:{measure}"),
                json!([{"status": "ok", "componentType": "datastore", "observedValue": value}]),
            );
        }
        for c in local.limiters.iter().chain(remote.iter()) {
            all.insert(c.key.clone(), c.json());
        }
        json!({
            "status": status,
            "releaseId": env!("CARGO_PKG_VERSION"),
            "serviceId": state.auth.config.public_url,
            "checks": all,
        })
    } else {
        json!({ "status": status })
    };
    let code = if status == Status::Error {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    health_json(code, body)
}

/// `GET /server/health/live`: the process answers (no database, nothing shared), for an
/// orchestrator's liveness probe. gatehouse's own; Directus has `/server/ping` for this.
pub async fn live() -> Response {
    health_json(StatusCode::OK, json!({ "status": "ok" }))
}

/// `GET /server/health/ready`: the database takes writes (the probe `/server/health` shares),
/// for a readiness probe: 200 `ok`, or 503 `error` while it cannot. Only the database: a node
/// whose SMTP server or identity provider is down still serves every other request.
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.health.local(&state).await.db_ok {
        health_json(StatusCode::OK, json!({ "status": "ok" }))
    } else {
        health_json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "error" }),
        )
    }
}

fn health_json(code: StatusCode, body: serde_json::Value) -> Response {
    let mut res = (code, axum::Json(body)).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/health+json; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// The project fields of `/server/info` in Directus's order, with Directus's defaults for
/// the ones gatehouse's settings do not hold (`api/src/services/server.ts`, `serverInfo`).
const INFO_FIELDS: &[(&str, &str)] = &[
    ("project_name", "\"Directus\""),
    ("project_descriptor", "null"),
    ("project_logo", "null"),
    ("project_color", "\"#6644FF\""),
    ("default_appearance", "\"auto\""),
    ("default_theme_light", "null"),
    ("default_theme_dark", "null"),
    ("theme_light_overrides", "null"),
    ("theme_dark_overrides", "null"),
    ("default_language", "\"en-US\""),
    ("public_foreground", "null"),
    ("public_background", "null"),
    ("public_favicon", "null"),
    ("public_note", "null"),
    ("custom_css", "null"),
    ("public_registration", "false"),
    ("public_registration_verify_email", "true"),
];

/// `GET /server/info`: what a login page reads (the project's name, look and whether it may
/// register), for everyone; logged-in users also get the rate limits in force.
pub async fn info(
    State(state): State<AppState>,
    acc: Accountability,
) -> Result<axum::Json<serde_json::Value>, crate::error::ApiError> {
    let settings = state.auth.settings().await?;
    let mut project = serde_json::Map::new();
    for (field, default) in INFO_FIELDS {
        let value = match settings.get(*field) {
            Some(v) => v.clone(),
            None => serde_json::from_str(default).unwrap_or(serde_json::Value::Null),
        };
        project.insert((*field).into(), value);
    }
    for flag in ["public_registration", "public_registration_verify_email"] {
        if let Some(n) = project.get(flag).and_then(serde_json::Value::as_i64) {
            project.insert(flag.into(), serde_json::Value::Bool(n != 0));
        }
    }
    let mut data = serde_json::Map::new();
    data.insert("project".into(), serde_json::Value::Object(project));
    if acc.user.is_some() {
        // Directus's `RATE_LIMITER_POINTS` and `_DURATION` (seconds), as numbers.
        let limit = |l: &Option<crate::config::Limit>| match l {
            Some(l) => json!({"points": l.points, "duration": l.duration.as_secs()}),
            None => json!(false),
        };
        let cfg = &state.auth.config.rate_limit;
        data.insert("rateLimit".into(), limit(&cfg.ip));
        data.insert("rateLimitGlobal".into(), limit(&cfg.global));
    }
    Ok(axum::Json(json!({ "data": data })))
}
