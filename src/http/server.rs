//! `/server/ping` and `/server/health` (contract §1 step 6, §15.1).

use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::auth::Accountability;

pub async fn ping() -> Response {
    let mut res = "pong".into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res
}

/// Public callers get `{"status"}`; admins also get the datastore check.
pub async fn health(State(state): State<AppState>, acc: Accountability) -> Response {
    let start = Instant::now();
    let db = state.auth.store.ping().await;
    let elapsed = start.elapsed().as_secs_f64() * 1000.0;
    if let Err(e) = &db {
        tracing::error!(error = %e, "health check: database unreachable");
    }
    let status = if db.is_err() {
        "error"
    } else if elapsed > 150.0 {
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
                    "status": if db.is_err() { "error" } else { status },
                    "componentType": "datastore",
                    "observedValue": (elapsed * 1000.0).round() / 1000.0,
                    "observedUnit": "ms",
                    "threshold": 150,
                }],
            },
        })
    } else {
        json!({ "status": status })
    };
    let code = if db.is_err() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let mut res = (code, axum::Json(body)).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/health+json; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}
