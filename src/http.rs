//! The HTTP surface (axum): routes by URL area, the token check before every route, request
//! spans, body limits and Directus's 404.

pub mod auth_routes;
pub mod cookies;
pub mod error;
pub mod extract;
pub mod items;
pub mod server;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderValue, Uri};
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::Auth;
use crate::error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub auth: Auth,
    /// The last database probe of `/server/health`, shared by every health request.
    pub health: server::HealthProbe,
}

impl AppState {
    pub fn new(auth: Auth) -> Self {
        Self {
            auth,
            health: server::HealthProbe::default(),
        }
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound(uri.path().to_string())
}

/// Directus answers JSON as `application/json; charset=utf-8`.
async fn json_charset(mut res: Response) -> Response {
    if res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/json")
    {
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    res
}

/// `/auth*` answers are never cached (contract §1).
async fn no_cache(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::VARY,
        HeaderValue::from_static("Origin, Cache-Control"),
    );
    res
}

pub fn router(state: AppState) -> Router {
    let auth = Router::new()
        .route("/auth", get(auth_routes::providers))
        .route("/auth/login", post(auth_routes::login))
        .route("/auth/refresh", post(auth_routes::refresh))
        .route("/auth/logout", post(auth_routes::logout))
        .layer(map_response(no_cache));
    let authenticated = Router::new()
        .merge(auth)
        .route("/users/me", get(items::me).patch(items::update_me))
        .route("/users", get(items::list_users).post(items::create_user))
        .route(
            "/users/{id}",
            get(items::get_user)
                .patch(items::update_user)
                .delete(items::delete_user),
        )
        .route("/roles", get(items::list_roles).post(items::create_role))
        .route(
            "/roles/{id}",
            get(items::get_role)
                .patch(items::update_role)
                .delete(items::delete_role),
        )
        .route(
            "/policies",
            get(items::list_policies).post(items::create_policy),
        )
        .route(
            "/policies/{id}",
            get(items::get_policy)
                .patch(items::update_policy)
                .delete(items::delete_policy),
        )
        .route(
            "/settings",
            get(items::read_settings).patch(items::update_settings),
        )
        .route("/permissions", post(items::permissions))
        .route("/server/health", get(server::health))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(from_fn_with_state(state.clone(), extract::authenticate));
    let max_body = state.auth.config.max_payload_size;
    Router::new()
        // Ping answers before the token check, as in Directus.
        .route("/server/ping", get(server::ping))
        .merge(authenticated)
        .layer(map_response(json_charset))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    // SECURITY: the matched route, never the raw URI (it may carry access_token).
                    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
                    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), route = %route, request_id = %request_id, status = tracing::field::Empty, latency_ms = tracing::field::Empty)
                })
                .on_request(())
                .on_response(|res: &Response, latency: std::time::Duration, span: &tracing::Span| {
                    span.record("status", res.status().as_u16());
                    span.record("latency_ms", latency.as_secs_f64() * 1000.0);
                    tracing::info!("response");
                })
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}
