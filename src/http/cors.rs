//! CORS as Directus answers it (`api/src/middleware/cors.ts`: `CORS_*` handed to the `cors`
//! package, mounted before every route in `api/src/app.ts`), and the answer to `OPTIONS` on a
//! route that exists when CORS is off (Express's automatic one).
//!
//! tower-http's `CorsLayer` decides what is allowed; [`shape`] around it makes the answer the
//! `cors` package's where the two differ (status, `Vary`, header spelling), and
//! [`options_answers`] around the whole router finishes what only the router knows (`Allow`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_EXPOSE_HEADERS, ALLOW, CONTENT_LENGTH,
    CONTENT_TYPE, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer, ExposeHeaders, MaxAge, Vary};

use crate::config::{CorsConfig, CorsOrigin};

/// Marks the answer to `OPTIONS` on an existing route with CORS off, for [`options_answers`].
#[derive(Clone, Copy)]
struct RouteOptions;

/// What [`shape`] adds to the layer's answers.
#[derive(Clone)]
pub struct Shape {
    /// `Vary: Origin` on every answer: the `cors` package adds it unless the origin is `*`.
    vary_origin: bool,
    /// `CORS_ALLOWED_HEADERS=false`: the preflight's requested headers are sent back, and the
    /// answer varies on them.
    reflect_headers: bool,
    /// The header lists as configured: tower-http's `HeaderName` lowercases them, the `cors`
    /// package sends them as written.
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
}

/// The CORS layer and its [`Shape`], built once at start.
pub fn layers(cfg: &CorsConfig) -> (CorsLayer, Arc<Shape>) {
    let origin = match &cfg.origin {
        CorsOrigin::Reflect => {
            if cfg.credentials {
                tracing::warn!(
                    "CORS_ORIGIN=true with CORS_CREDENTIALS=true: every website may send \
                     credentialed requests; list the origins instead where you can"
                );
            }
            AllowOrigin::mirror_request()
        }
        CorsOrigin::Any => AllowOrigin::any(),
        CorsOrigin::List(rules) => {
            let rules = Arc::new(rules.clone());
            AllowOrigin::predicate(move |origin: &HeaderValue, _| {
                origin
                    .to_str()
                    .is_ok_and(|o| rules.iter().any(|r| r.matches(o)))
            })
        }
    };
    // The names were checked at start (src/config/cors.rs); nothing is dropped here.
    let methods: Vec<Method> = cfg
        .methods
        .iter()
        .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
        .collect();
    let names = |list: &[String]| -> Vec<axum::http::HeaderName> {
        list.iter().filter_map(|n| n.parse().ok()).collect()
    };
    let joined = |list: &[String]| HeaderValue::from_str(&list.join(",")).ok();
    // SECURITY: tower-http panics on credentials with a `*` origin, method or header list
    // (its `ensure_usable_cors_rules`); the config refuses those at start.
    let mut layer = CorsLayer::new()
        .allow_origin(origin)
        .allow_credentials(cfg.credentials)
        .allow_methods(methods)
        .allow_headers(match &cfg.allowed_headers {
            Some(list) => AllowHeaders::list(names(list)),
            None => AllowHeaders::mirror_request(),
        })
        .expose_headers(ExposeHeaders::list(names(&cfg.exposed_headers)))
        // `Vary` is merged by `shape`, the `vary` package's way, into what the route set.
        .vary(Vary::list(std::iter::empty()));
    if let Some(secs) = cfg.max_age {
        layer = layer.max_age(MaxAge::exact(Duration::from_secs(secs)));
    }
    let shape = Shape {
        vary_origin: !matches!(cfg.origin, CorsOrigin::Any),
        reflect_headers: cfg.allowed_headers.is_none(),
        allow_headers: cfg
            .allowed_headers
            .as_deref()
            .filter(|l| !l.is_empty())
            .and_then(joined),
        expose_headers: Some(&cfg.exposed_headers[..])
            .filter(|l| !l.is_empty())
            .and_then(joined),
    };
    (layer, Arc::new(shape))
}

/// Around the CORS layer: the `cors` package's answer.
pub async fn shape(State(s): State<Arc<Shape>>, req: Request, next: Next) -> Response {
    // tower-http, like the `cors` package, answers every `OPTIONS` itself.
    let preflight = req.method() == Method::OPTIONS;
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if h.contains_key(ACCESS_CONTROL_ALLOW_HEADERS) {
        if let Some(v) = &s.allow_headers {
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
        }
    }
    if let Some(v) = &s.expose_headers {
        // The `cors` package sends it on preflights too.
        if preflight || h.contains_key(ACCESS_CONTROL_EXPOSE_HEADERS) {
            h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
    }
    if s.vary_origin {
        vary(h, "Origin");
    }
    if preflight {
        if s.reflect_headers {
            vary(h, "Access-Control-Request-Headers");
        }
        // The `cors` package's `optionsSuccessStatus`, 204. It also sets `Content-Length: 0`,
        // which hyper leaves out of a 204 (RFC 9110 §8.6: a server must not send it there).
        *res.status_mut() = StatusCode::NO_CONTENT;
    }
    res
}

/// Adds `field` to `Vary` as the `vary` package does: once, after what is there, and never
/// next to `*`.
fn vary(h: &mut HeaderMap, field: &str) {
    let current: Vec<String> = h
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty())
        .collect();
    if current
        .iter()
        .any(|f| f == "*" || f.eq_ignore_ascii_case(field))
    {
        return;
    }
    let value = current
        .into_iter()
        .chain([field.to_string()])
        .collect::<Vec<_>>()
        .join(", ");
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(VARY, v);
    }
}

/// `OPTIONS` on a route that exists, with CORS off (`method_not_served` in src/http.rs):
/// Express's automatic answer (its router's `sendOptionsResponse`: 200, `Allow`, the same list
/// as an HTML body), which [`options_answers`] completes once axum has added `Allow`.
pub fn route_options() -> Response {
    (
        StatusCode::OK,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        axum::Extension(RouteOptions),
    )
        .into_response()
}

/// Around the whole router: axum adds `Allow` to a route's answers for methods it does not
/// serve, outside every route layer, so those answers are finished here. Express sends `Allow`
/// only on its own `OPTIONS` answer, with the list as the body; a preflight (the `cors`
/// package), a 404 for a method a route does not serve, or a token error carry none.
pub async fn options_answers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    if res.extensions().get::<RouteOptions>().is_some() {
        let allow = res
            .headers()
            .get(ALLOW)
            .cloned()
            .unwrap_or(HeaderValue::from_static(""));
        res.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(allow.len()));
        *res.body_mut() = Body::from(allow.as_bytes().to_vec());
    } else if res.status() != StatusCode::METHOD_NOT_ALLOWED {
        res.headers_mut().remove(ALLOW);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vary_of(existing: &[&str], field: &str) -> Vec<String> {
        let mut h = HeaderMap::new();
        for e in existing {
            h.append(
                VARY,
                HeaderValue::from_str(e).unwrap_or(HeaderValue::from_static("")),
            );
        }
        vary(&mut h, field);
        h.get_all(VARY)
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect()
    }

    #[test]
    fn vary_is_merged_as_the_vary_package_does() {
        assert_eq!(vary_of(&[], "Origin"), ["Origin"]);
        assert_eq!(
            vary_of(&["Origin, Cache-Control"], "Origin"),
            ["Origin, Cache-Control"]
        );
        assert_eq!(
            vary_of(&["Cache-Control"], "Origin"),
            ["Cache-Control, Origin"]
        );
        assert_eq!(vary_of(&["origin"], "Origin"), ["origin"]);
        assert_eq!(vary_of(&["*"], "Origin"), ["*"]);
        assert_eq!(vary_of(&["A", "B"], "Origin"), ["A, B, Origin"]);
    }
}
