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
use crate::store::MetaStore;

/// A probe result younger than this is shared: health is public, and each probe is a write.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A probe that takes longer counts as failed, so health answers even when the database hangs.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Directus's `responseTime` threshold for the datastore check, in milliseconds.
const THRESHOLD_MS: u32 = 150;

/// The database check of `/server/health`: at most one probe at a time, its result shared
/// for `PROBE_EVERY` by every request (public or admin), so a flood of health requests makes
/// about one write a second.
#[derive(Clone, Default)]
pub struct HealthProbe(Arc<Mutex<Option<Probed>>>);

#[derive(Clone, Copy, Debug)]
struct Probed {
    at: Instant,
    ok: bool,
    elapsed_ms: f64,
}

impl HealthProbe {
    async fn check(&self, store: &dyn MetaStore) -> Probed {
        // Held across the probe: concurrent requests wait for it and then share its result.
        let mut last = self.0.lock().await;
        if let Some(p) = *last {
            if p.at.elapsed() < PROBE_EVERY {
                return p;
            }
        }
        let start = Instant::now();
        let ok = match tokio::time::timeout(PROBE_TIMEOUT, store.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "health check: the database cannot take writes");
                false
            }
            Err(_) => {
                tracing::error!(timeout = ?PROBE_TIMEOUT, "health check: the database probe timed out");
                false
            }
        };
        let p = Probed {
            at: Instant::now(),
            ok,
            elapsed_ms: start.elapsed().as_secs_f64() * 1000.0,
        };
        *last = Some(p);
        p
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

/// Public callers get `{"status"}`; admins also get the datastore check. The check writes
/// (`MetaStore::ping`), so `error` and 503 mean that writes cannot land, as Directus answers
/// when a datastore check fails.
pub async fn health(State(state): State<AppState>, acc: Accountability) -> Response {
    let db = state.health.check(state.auth.store.meta.as_ref()).await;
    let status = if !db.ok {
        "error"
    } else if db.elapsed_ms > f64::from(THRESHOLD_MS) {
        "warn"
    } else {
        "ok"
    };
    let admin = state.auth.is_admin(&acc).await.unwrap_or(false);
    let body = if admin {
        let client = match state.auth.config.db {
            crate::config::DbConfig::Sqlite { .. } => "sqlite3",
            crate::config::DbConfig::Postgres { .. } => "pg",
        };
        json!({
            "status": status,
            "releaseId": env!("CARGO_PKG_VERSION"),
            "serviceId": state.auth.config.public_url,
            "checks": {
                format!("{client}:responseTime"): [{
                    "status": status,
                    "componentType": "datastore",
                    "observedValue": (db.elapsed_ms * 1000.0).round() / 1000.0,
                    "observedUnit": "ms",
                    "threshold": THRESHOLD_MS,
                }],
            },
        })
    } else {
        json!({ "status": status })
    };
    let code = if db.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    health_json(code, body)
}

/// `GET /server/health/live`: the process answers (no database, nothing shared), for an
/// orchestrator's liveness probe. gatehouse's own; Directus has `/server/ping` for this.
pub async fn live() -> Response {
    health_json(StatusCode::OK, json!({ "status": "ok" }))
}

/// `GET /server/health/ready`: the database takes writes (the probe `/server/health` shares),
/// for a readiness probe: 200 `ok`, or 503 `error` while it cannot.
pub async fn ready(State(state): State<AppState>) -> Response {
    let db = state.health.check(state.auth.store.meta.as_ref()).await;
    if db.ok {
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
