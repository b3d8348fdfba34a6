//! Forward-auth for reverse proxies: nginx `auth_request`, Traefik `ForwardAuth` and Caddy
//! `forward_auth` ask `GET` (or `HEAD`) `/auth/verify` about each request they are about to pass
//! on. Directus has no such endpoint; the shape is gatehouse's own (README, "Behind a reverse
//! proxy"; example configurations in `config/`).
//!
//! The token is read the way every route reads it (src/http/extract.rs, `find_token`): a
//! bearer header or the session cookie as forwarded, or the `access_token` query parameter of
//! the forwarded URI (`X-Forwarded-Uri` from Traefik and Caddy, `X-Original-URI` as the nginx
//! example sets it; when both come, or one twice, they must agree). It is checked by `Auth::authenticate`, so a valid access JWT costs no
//! database round trip beyond the short-lived cache of user and policy lookups, and a
//! suspension, a demotion or a logout reaches it within that cache's TTL.
//!
//! A valid token: 200, empty body, with the identity headers. No token or a bad one: the error
//! every route gives it (401, or 403 `INVALID_TOKEN` for a JWT with a bad signature), except
//! under `FORWARD_AUTH_PUBLIC_PATHS`, which pass with the role `public`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::extract::{find_token, request_meta};
use super::AppState;
use crate::auth::Accountability;
use crate::config::IdentityHeaders;
use crate::error::ApiError;

/// Longest forwarded URI read; a longer one is refused (no proxy sends more than it accepts).
const MAX_FORWARDED_URI: usize = 8 * 1024;

/// `GET|HEAD /auth/verify`.
pub async fn verify(State(state): State<AppState>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let (headers, uri) = (req.headers(), req.uri());
    let cfg = &state.auth.config;
    // SECURITY: a proxy sets one of these and passes the client's other headers on, so a
    // client may send its own copy of the other (or a second value) to have another URI
    // checked, say a public path. Every value present must be the same URI, or none is taken.
    let mut values = ["x-forwarded-uri", "x-original-uri"]
        .iter()
        .flat_map(|name| headers.get_all(*name));
    let forwarded = values.next();
    if let Some(first) = forwarded {
        if values.any(|v| v != first) {
            return ApiError::payload("the forwarded URI headers disagree").into_response();
        }
    }
    let forwarded = match forwarded {
        None => None,
        Some(v) if v.len() > MAX_FORWARDED_URI => {
            return ApiError::payload("the forwarded URI is too long").into_response()
        }
        Some(v) => match v.to_str() {
            Ok(s) => Some(s),
            Err(_) => return ApiError::payload("the forwarded URI is not text").into_response(),
        },
    };
    // Without a forwarded URI (a proxy that sends the original request itself), this request's
    // own path and query are the ones asked about.
    let (path, query) = match forwarded {
        Some(u) => match u.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (u, None),
        },
        None => (uri.path(), uri.query()),
    };
    let public = is_public(&cfg.forward_auth.public_paths, path);
    let meta = request_meta(&state, headers, peer);
    let token = match find_token(headers, query, &cfg.session_cookie.name) {
        Ok(t) => t.map(|(t, _)| t),
        Err(e) if public => {
            tracing::debug!(error = %e, "forward-auth: unreadable token on a public path");
            None
        }
        Err(e) => return e.into_response(),
    };
    match state.auth.authenticate(token.as_deref(), meta).await {
        Ok(acc) if acc.user.is_some() => identity(&cfg.forward_auth.headers, &acc),
        Ok(_) if public => public_answer(&cfg.forward_auth.headers),
        Ok(_) => ApiError::InvalidCredentials.into_response(),
        Err(_) if public => public_answer(&cfg.forward_auth.headers),
        Err(e) => ApiError::from(e).into_response(),
    }
}

fn header_value(s: &str) -> HeaderValue {
    // Emails and ids are ASCII in practice; anything a header cannot carry is left empty.
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn flag(b: bool) -> HeaderValue {
    HeaderValue::from_static(if b { "true" } else { "false" })
}

fn identity(names: &IdentityHeaders, acc: &Accountability) -> Response {
    let mut res = StatusCode::OK.into_response();
    let h = res.headers_mut();
    let id = acc.user.map(|u| u.to_string()).unwrap_or_default();
    h.insert(names.user_id.clone(), header_value(&id));
    let role = acc.role.map(|r| r.to_string()).unwrap_or_default();
    h.insert(names.role.clone(), header_value(&role));
    h.insert(
        names.email.clone(),
        header_value(acc.email.as_deref().unwrap_or("")),
    );
    h.insert(names.admin_access.clone(), flag(acc.admin));
    h.insert(names.app_access.clone(), flag(acc.app));
    res
}

/// The public: role `public` and every other identity header present but empty (or
/// `false`). SECURITY: a proxy that copies the answer's identity headers onto the request
/// (Traefik's `authResponseHeaders`, Caddy's `copy_headers`) then overwrites any the client
/// sent itself, instead of letting them through because the answer had none.
fn public_answer(names: &IdentityHeaders) -> Response {
    let mut res = StatusCode::OK.into_response();
    let h = res.headers_mut();
    h.insert(names.user_id.clone(), HeaderValue::from_static(""));
    h.insert(names.role.clone(), HeaderValue::from_static("public"));
    h.insert(names.email.clone(), HeaderValue::from_static(""));
    h.insert(names.admin_access.clone(), flag(false));
    h.insert(names.app_access.clone(), flag(false));
    res
}

/// Whether the forwarded path is under one of the public prefixes, by whole segments
/// (`/public` covers `/public` and `/public/x`, not `/publicity`).
///
/// SECURITY: the proxy passes the raw path on, and the upstream may resolve it differently
/// from a plain prefix test: `/public/../admin` reaches `/admin`. A path with a dot segment,
/// a backslash, an encoded `/`, `\`, `.` or `%`, a `;` or a NUL is never public, so it needs a
/// token.
fn is_public(prefixes: &[String], path: &str) -> bool {
    if prefixes.is_empty() || !path.starts_with('/') {
        return false;
    }
    let lower = path.to_ascii_lowercase();
    if ["%2f", "%5c", "%2e", "%25", "%00", "\\", ";", "\0"]
        .iter()
        .any(|bad| lower.contains(bad))
    {
        return false;
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return false;
    }
    prefixes.iter().any(|p| {
        path.strip_prefix(p.as_str())
            .is_some_and(|rest| p.ends_with('/') || rest.is_empty() || rest.starts_with('/'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_prefixes_match_whole_segments_only() {
        let p = vec!["/public".to_string(), "/assets/".to_string()];
        for (path, want) in [
            ("/public", true),
            ("/public/", true),
            ("/public/a/b", true),
            ("/publicity", false),
            ("/assets/x.css", true),
            ("/assets", false),
            ("/private", false),
            ("/", false),
            ("", false),
            ("public", false),
            // Paths an upstream may resolve outside the prefix.
            ("/public/../admin", false),
            ("/public/./x", false),
            ("/public/%2e%2e/admin", false),
            ("/public/%2E%2E/admin", false),
            ("/public%2f..%2fadmin", false),
            ("/public/..%5cadmin", false),
            ("/public\\..\\admin", false),
            ("/public;/../admin", false),
            ("/public/%252e%252e/admin", false),
            ("/public/\0", false),
        ] {
            assert_eq!(is_public(&p, path), want, "{path:?}");
        }
        assert!(!is_public(&[], "/public"));
    }
}
