//! Request inputs: the token check that runs before every route (Directus: `api/src/middleware/authenticate.ts`, `api/src/middleware/extract-token.ts`),
//! the JSON body as Directus's parser reads it, query parameters and item ids in the path.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{cookies, AppState};
use crate::auth::{Accountability, RequestMeta};
use crate::error::ApiError;

/// The raw query string as ordered pairs, percent-decoded.
#[derive(Debug, Clone, Default)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl QueryPairs {
    pub fn parse(query: Option<&str>) -> Self {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        Self(
            query
                .unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(p), String::new()),
                })
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `fields=a,b`, `fields[]=a&fields[]=b` or `fields[0]=a`.
    pub fn fields(&self) -> crate::auth::admin::Fields {
        crate::auth::admin::Fields(
            self.0
                .iter()
                .filter(|(k, _)| k == "fields" || k.starts_with("fields["))
                .flat_map(|(_, v)| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .collect::<Vec<_>>()
                })
                .filter(|s| !s.is_empty())
                .collect(),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::parse(parts.uri.query()))
    }
}

/// The `{id}` of an item route. axum's own `Path` answers a bad parameter with a `text/plain`
/// 400; here every rejection is an `ApiError`. An id that does not decode (`/users/%FF`) names
/// no item, so it is answered as an unknown id is: 403 `FORBIDDEN`.
pub struct ItemId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ItemId {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(ItemId(id)),
            Err(PathRejection::FailedToDeserializePathParams(_)) => Err(ApiError::Forbidden),
            Err(other) => Err(ApiError::internal(anyhow::anyhow!(
                "BUG: item route without an id parameter: {other}"
            ))),
        }
    }
}

/// Where the request came from (client IP, user agent, origin); set by `authenticate` for
/// every route behind it, so the client IP is computed once per request.
impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestMeta>()
            .cloned()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("BUG: route outside authenticate")))
    }
}

/// Who is calling; set by `authenticate` for every route behind it.
impl<S: Send + Sync> FromRequestParts<S> for Accountability {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Accountability>()
            .cloned()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("BUG: route outside authenticate")))
    }
}

/// The JSON body as Directus reads it: parsed only when the content type is JSON (else
/// `{}`), parse errors and oversized bodies are 400 `INVALID_PAYLOAD`. A body that does not
/// arrive whole within `GATEHOUSE_REQUEST_BODY_TIMEOUT` is 408 `REQUEST_TIMEOUT`.
pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let ct = ct
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                ct == "application/json"
                    || (ct.starts_with("application/") && ct.ends_with("+json"))
            })
            .unwrap_or(false);
        // SECURITY: a client that stops sending mid-body would otherwise hold the request (and
        // its connection slot) for as long as it keeps the socket open.
        let bytes = tokio::time::timeout(
            state.auth.config.server.request_body_timeout,
            Bytes::from_request(req, state),
        )
        .await
        .map_err(|_| ApiError::RequestTimeout)?
        .map_err(|_| ApiError::payload("request entity too large"))?;
        if !is_json || bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Value::Object(Default::default())));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::payload(format!("Unexpected JSON: {e}")))
    }
}

/// Where the token came from: the session cookie is cleared when it turns out bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Query,
    Header,
    Cookie,
}

fn client_ip(state: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
    let cfg = &state.auth.config;
    let parse = |s: &str| s.trim().parse::<IpAddr>().ok();
    if let Some(name) = &cfg.ip_custom_header {
        if let Some(ip) = headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .and_then(parse)
        {
            return Some(unmap(ip));
        }
    }
    if cfg.ip_trust_proxy {
        if let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(parse)
        {
            return Some(unmap(ip));
        }
    }
    peer.map(|p| unmap(p.ip()))
}

/// An IPv4 client seen through a dual-stack socket (`::ffff:a.b.c.d`) is recorded as IPv4.
fn unmap(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

pub fn request_meta(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> RequestMeta {
    let header = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(1024).collect::<String>())
    };
    RequestMeta {
        ip: client_ip(state, headers, peer),
        user_agent: header(header::USER_AGENT),
        origin: header(header::ORIGIN).map(|o| o.chars().take(255).collect()),
    }
}

/// Resolves the caller before any route runs; a bad token fails the request here, even on
/// `/auth/login`, as Directus's `authenticate` middleware does.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    // Computed once per request; handlers read it as an extractor (`RequestMeta`).
    let meta = request_meta(&state, req.headers(), peer);
    req.extensions_mut().insert(meta.clone());
    let query_token = QueryPairs::parse(req.uri().query())
        .get("access_token")
        .map(str::to_string)
        .filter(|t| !t.is_empty());
    let header_token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let parts: Vec<&str> = v.split(' ').collect();
            (parts.len() == 2 && parts[0].eq_ignore_ascii_case("bearer") && !parts[1].is_empty())
                .then(|| parts[1].to_string())
        });
    let (token, source) = match (query_token, header_token) {
        (Some(_), Some(_)) => {
            return ApiError::payload(
                "The request uses more than one method for including an access token",
            )
            .into_response();
        }
        (Some(q), None) => (Some(q), Some(Source::Query)),
        (None, Some(h)) => (Some(h), Some(Source::Header)),
        (None, None) => {
            match cookies::read(req.headers(), &state.auth.config.session_cookie.name) {
                Some(c) => (Some(c), Some(Source::Cookie)),
                None => (None, None),
            }
        }
    };
    match state.auth.authenticate(token.as_deref(), meta).await {
        Ok(acc) => {
            req.extensions_mut().insert(acc);
            next.run(req).await
        }
        Err(e) => {
            let e = ApiError::from(e);
            let clear = source == Some(Source::Cookie)
                && matches!(e, ApiError::InvalidCredentials | ApiError::InvalidToken);
            let mut res = e.into_response();
            if clear {
                if let Ok(v) =
                    HeaderValue::from_str(&cookies::clear(&state.auth.config.session_cookie))
                {
                    res.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            res
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_is_recorded_as_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(unmap(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(unmap(ip("::1")), ip("::1"));
        assert_eq!(unmap(ip("2001:db8::1")), ip("2001:db8::1"));
        assert_eq!(unmap(ip("192.0.2.1")), ip("192.0.2.1"));
    }
}
