//! `GET /metrics` (Directus: `api/src/controllers/metrics.ts`): served only with
//! `METRICS_ENABLED=true` (else Directus's 404), to admins or to `Authorization: Metrics
//! <token>` with a token of `METRICS_TOKENS`; anyone else gets 403 `FORBIDDEN`. The body is
//! the Prometheus text exposition of src/metrics.rs.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AppState;
use crate::auth::Accountability;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Whether `Authorization: Metrics <token>` names one of `tokens` (compared in constant time).
fn token_allowed(headers: &HeaderMap, tokens: &[String]) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let parts: Vec<&str> = value.split(' ').collect();
    if parts.len() != 2 || !parts[0].eq_ignore_ascii_case("metrics") {
        return false;
    }
    let given = parts[1].as_bytes();
    // Every token is compared, so the time does not tell which one matched.
    tokens
        .iter()
        .fold(false, |hit, t| hit | bool::from(t.as_bytes().ct_eq(given)))
}

pub async fn metrics(
    State(state): State<AppState>,
    acc: Accountability,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    let cfg = &state.auth.config;
    if !cfg.metrics_enabled {
        // The route Directus does not mount: its 404 names the path as asked.
        return Err(ApiError::RouteNotFound(uri.path().to_string()));
    }
    if !acc.admin && !token_allowed(&headers, &cfg.metrics_tokens) {
        return Err(ApiError::Forbidden);
    }
    let body = state
        .auth
        .metrics
        .render(state.auth.store.meta.pool_stats());
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::VARY,
        HeaderValue::from_static("Origin, Cache-Control"),
    );
    Ok(res)
}

/// Times every answer by its matched route (never the raw URI, which may carry a token).
pub async fn record(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let start = Instant::now();
    let res = next.run(req).await;
    metrics.request(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        method.as_str(),
        res.status().as_u16(),
        start.elapsed(),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_tokens_are_read_as_directus_reads_them() {
        let tokens = vec!["abc".to_string(), "longer-token".to_string()];
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            token_allowed(&h, &tokens)
        };
        assert!(with("Metrics abc"));
        assert!(with("metrics longer-token"));
        assert!(!with("Metrics ab"));
        assert!(!with("Metrics abcd"));
        assert!(!with("Bearer abc"));
        assert!(!with("Metrics  abc"));
        assert!(!with("Metrics abc extra"));
        assert!(!token_allowed(&HeaderMap::new(), &tokens));
        assert!(!token_allowed(&HeaderMap::new(), &[]));
    }
}
