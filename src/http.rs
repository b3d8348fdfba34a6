//! The HTTP surface (axum): routes by URL area, the token check before every route, request
//! spans and ids, body limits, caching headers, CORS and `OPTIONS`, panics as 500s and
//! Directus's 404.

pub mod account_routes;
pub mod auth_routes;
pub mod cookies;
pub mod cors;
pub mod error;
pub mod extract;
pub mod forward_auth;
pub mod items;
pub mod ldap_routes;
pub mod metrics_route;
pub mod rate_limit;
#[cfg(feature = "saml")]
pub mod saml_routes;
pub mod serve;
pub mod server;
pub mod sso_routes;
pub mod tfa_routes;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderValue, Method, Uri};
use axum::middleware::{from_fn, from_fn_with_state, map_request, map_response, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::Auth;
use crate::error::ApiError;

/// What every handler and middleware gets, behind one `Arc`: axum clones the state for
/// every layer of every request, so a clone is one reference count.
#[derive(Clone)]
pub struct AppState(std::sync::Arc<Shared>);

pub struct Shared {
    /// Behind an `Arc` of its own: handlers hand it to spawned work.
    pub auth: std::sync::Arc<Auth>,
    /// The last probes of `/server/health`, shared by every health request.
    pub health: server::HealthProbe,
    /// The request rate limiters (src/http/rate_limit.rs), which health also checks.
    pub limits: rate_limit::RateLimits,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(auth: Auth) -> Self {
        let limits = rate_limit::RateLimits::new(&auth.config.rate_limit)
            .expect("BUG: the rate limiter settings were checked at start");
        Self(std::sync::Arc::new(Shared {
            auth: std::sync::Arc::new(auth),
            health: server::HealthProbe::default(),
            limits,
        }))
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::RouteNotFound(uri.path().to_string())
}

/// A method a route does not serve: 404 as in Directus, except `OPTIONS`, which Express
/// answers itself for a route that exists (src/http/cors.rs).
async fn method_not_served(method: Method, uri: Uri) -> Response {
    if method == Method::OPTIONS {
        cors::route_options()
    } else {
        not_found(uri).await.into_response()
    }
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

/// `path` is `area` or below it.
fn under(path: &str, area: &str) -> bool {
    path.strip_prefix(area)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Answers that carry tokens or account data are never stored by a cache or a browser, and are
/// never content-sniffed: `/auth*` (where Directus sends `no-cache`, `api/src/app.ts`; see
/// docs/compatibility.md), `/users*` and the admin routes. Set here, around everything, so that
/// errors from the token check and the body limit carry them too.
async fn private_answers(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let auth = under(path, "/auth");
    let private = auth
        || ["/users", "/roles", "/policies", "/settings", "/permissions"]
            .iter()
            .any(|area| under(path, area));
    let mut res = next.run(req).await;
    if private {
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if auth {
            h.insert(
                header::VARY,
                HeaderValue::from_static("Origin, Cache-Control"),
            );
        }
    }
    res
}

/// Longest `X-Request-Id` kept from a client.
const MAX_REQUEST_ID: usize = 64;

/// SECURITY: a client's `X-Request-Id` is logged and echoed, so only a short token of safe
/// characters is kept; anything else is dropped and `SetRequestIdLayer` makes a new id.
async fn screen_request_id(mut req: Request) -> Request {
    let keep = req
        .headers()
        .get_all("x-request-id")
        .iter()
        .map(|v| {
            let b = v.as_bytes();
            !b.is_empty()
                && b.len() <= MAX_REQUEST_ID
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(c))
        })
        // Exactly one acceptable value.
        .fold(None, |acc, ok| match acc {
            None => Some(ok),
            Some(_) => Some(false),
        })
        .unwrap_or(true);
    if !keep {
        req.headers_mut().remove("x-request-id");
    }
    req
}

/// A panicking handler answers the generic 500 envelope; `ApiError` logs the panic once, in the
/// request's span.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    ApiError::internal(anyhow::anyhow!("handler panicked: {message}")).into_response()
}

pub fn router(state: AppState) -> Router {
    let auth = Router::new()
        .route("/auth", get(auth_routes::providers))
        .route("/auth/login", post(auth_routes::login))
        .route("/auth/login/{provider}", post(ldap_routes::login_route))
        .route("/auth/refresh", post(auth_routes::refresh))
        .route("/auth/logout", post(auth_routes::logout))
        .route(
            "/auth/password/request",
            post(account_routes::password_request),
        )
        .route("/auth/password/reset", post(account_routes::password_reset))
        // SSO (src/http/sso_routes.rs); Express also matches the start with a trailing slash,
        // which the `invalid_grant` restart (`./?prompt=true`) lands on.
        .route("/auth/login/{provider}", get(sso_routes::start))
        .route("/auth/login/{provider}/", get(sso_routes::start))
        .route(
            "/auth/login/{provider}/callback",
            get(sso_routes::callback).post(sso_routes::callback_post),
        )
        // Logins carry a few short strings; a large body only costs memory (inner limit wins).
        .layer(DefaultBodyLimit::max(
            state.auth.config.auth_max_payload_size,
        ));
    let authenticated = Router::new()
        .merge(auth)
        .route("/users/me", get(items::me).patch(items::update_me))
        .route("/users/invite", post(account_routes::invite))
        .route("/users/invite/accept", post(account_routes::accept_invite))
        .route("/users/register", post(account_routes::register))
        .route(
            "/users/register/verify-email",
            get(account_routes::verify_email),
        )
        .merge(tfa_routes())
        .merge(sso_driver_routes(&state))
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
        .route(
            "/permissions",
            get(items::list_permissions)
                .post(items::create_permission)
                .patch(items::update_permissions)
                .delete(items::delete_permissions),
        )
        .route(
            "/permissions/{id}",
            get(items::get_permission)
                .patch(items::update_permission)
                .delete(items::delete_permission),
        )
        .route("/metrics", get(metrics_route::metrics))
        .route("/metrics/", get(metrics_route::metrics))
        .route("/server/health", get(server::health))
        .route("/server/info", get(server::info))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_served)
        .layer(from_fn_with_state(state.clone(), extract::authenticate));
    let max_body = state.auth.config.max_payload_size;
    let cors = state.auth.config.cors.clone();
    let limits_off = state.limits.is_empty();
    let limiter_state = state.clone();
    let metrics = state.auth.metrics.clone();
    let metrics_enabled = state.auth.config.metrics_enabled;
    let routes = Router::new()
        // Ping answers before the token check, as in Directus.
        .route("/server/ping", get(server::ping))
        // Forward-auth reads the forwarded request's token itself (src/http/forward_auth.rs).
        .route("/auth/verify", get(forward_auth::verify))
        // Probes for orchestrators, before the token check: they carry none.
        .route("/server/health/live", get(server::live))
        .route("/server/health/ready", get(server::ready))
        // Directus serves ping on the app, not a router: other methods, `OPTIONS` included,
        // are its 404.
        .method_not_allowed_fallback(not_found)
        .merge(authenticated)
        .with_state(state);
    // Inside CORS and before the token check, ping and health included (src/http/rate_limit.rs).
    let routes = if limits_off {
        routes
    } else {
        routes.layer(from_fn_with_state(limiter_state, rate_limit::check))
    };
    // Outside the limiter, so refused requests are timed too; only when `/metrics` is served
    // (a histogram lookup on every request is a cost forward-auth feels).
    let routes = if metrics_enabled {
        routes.layer(from_fn_with_state(metrics, metrics_route::record))
    } else {
        routes
    };
    // `Allow` is added by each route's method router, outside the route layers: `OPTIONS`
    // answers are finished around the whole router.
    Router::new()
        .fallback_service(with_layers(routes, max_body, cors.as_ref()))
        .layer(from_fn(cors::options_answers))
}

/// The routes of SSO drivers built into this binary (`saml` is a cargo feature).
fn sso_driver_routes(_state: &AppState) -> Router<AppState> {
    #[cfg(feature = "saml")]
    return saml_routes::routes(_state);
    #[cfg(not(feature = "saml"))]
    Router::new()
}

/// The TFA routes, each with and without a trailing slash (src/http/tfa_routes.rs).
fn tfa_routes() -> Router<AppState> {
    let mut r = Router::new();
    for (path, handler) in [
        ("/users/me/tfa/generate", post(tfa_routes::generate)),
        ("/users/me/tfa/enable", post(tfa_routes::enable)),
        ("/users/me/tfa/disable", post(tfa_routes::disable)),
        (
            "/users/me/tfa/recovery-codes",
            post(tfa_routes::recovery_codes),
        ),
        ("/users/{id}/tfa/disable", post(tfa_routes::admin_disable)),
    ] {
        r = r
            .route(path, handler.clone())
            .route(&format!("{path}/"), handler);
    }
    r
}

/// The layers around the whole router, outermost first. They wrap the router once, as one
/// service, instead of every route (`Router::layer`): axum clones a route's whole layer stack
/// for each request, and a dozen boxed layers cloned and dropped twice per request were a
/// measurable share of a forward-auth answer. Only the route's name for the request span is
/// known inside routing alone; `record_route` puts it there from inside.
fn with_layers(
    routes: Router,
    max_body: usize,
    cors: Option<&crate::config::CorsConfig>,
) -> Router {
    let routes = routes.layer(from_fn(record_route));
    // CORS before the token check and the body limit, as in Directus (`api/src/app.ts`), so
    // preflights need no token and errors carry the CORS headers; inside the request span.
    let (cors_layer, cors_shape) = match cors {
        Some(cfg) => {
            let (layer, shape) = cors::layers(cfg);
            (Some(layer), Some(from_fn_with_state(shape, cors::shape)))
        }
        None => (None, None),
    };
    let service = tower::ServiceBuilder::new()
        .layer(map_request(screen_request_id))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    // SECURITY: the matched route (recorded by `record_route`), never the raw
                    // URI (it may carry access_token).
                    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), route = tracing::field::Empty, request_id = %request_id, status = tracing::field::Empty, latency_ms = tracing::field::Empty)
                })
                .on_request(())
                .on_response(|res: &Response, latency: std::time::Duration, span: &tracing::Span| {
                    span.record("status", res.status().as_u16());
                    span.record("latency_ms", latency.as_secs_f64() * 1000.0);
                    tracing::info!("response");
                })
                .on_failure(()),
        )
        .option_layer(cors_shape)
        .option_layer(cors_layer)
        .layer(from_fn(private_answers))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(map_response(json_charset))
        .service(routes);
    Router::new().fallback_service(service)
}

/// The matched route (or `unmatched`) into the request span, from inside routing.
async fn record_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    tracing::Span::current().record("route", route);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_the_500_envelope() {
        let app = with_layers(
            Router::new().route(
                "/users/boom",
                get(|| async {
                    if true {
                        panic!("boom");
                    }
                    "unreachable"
                }),
            ),
            1024,
            None,
        );
        let res = app
            .oneshot(
                Request::get("/users/boom")
                    .header("x-request-id", "trace-1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let h = res.headers().clone();
        assert_eq!(h["content-type"], "application/json; charset=utf-8");
        assert_eq!(h["x-request-id"], "trace-1");
        assert_eq!(h["cache-control"], "no-store");
        let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        // The panic's text stays in the log.
        assert_eq!(
            body,
            serde_json::json!({"errors": [{"message": "An unexpected error occurred.",
                "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]})
        );
    }

    #[test]
    fn areas_match_whole_path_segments() {
        assert!(under("/auth", "/auth"));
        assert!(under("/auth/login", "/auth"));
        assert!(!under("/authors", "/auth"));
        assert!(under("/users/me", "/users"));
        assert!(!under("/usersx", "/users"));
    }
}
