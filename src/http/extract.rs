//! Request inputs: the token check that runs before every route (Directus: `api/src/middleware/authenticate.ts`, `api/src/middleware/extract-token.ts`),
//! the JSON body as Directus's parser reads it, query parameters and item ids in the path.

mod json_error;

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

/// The JSON body as Directus reads it (`api/src/app.ts`: Express 4's `express.json`, which is
/// body-parser 1.20 with type-is 1.6 and media-typer 0.3): parsed only when the media type is
/// `application/json` (else `{}`, unread), refused when the charset is not `utf-*`, an empty
/// body is `{}`, and the text must start with `{` or `[`. Every refusal is 400
/// `INVALID_PAYLOAD` with body-parser's message as the reason, as Directus answers it. A body
/// that does not arrive whole within `GATEHOUSE_REQUEST_BODY_TIMEOUT` is 408 `REQUEST_TIMEOUT`.
pub struct JsonBody(pub Value);

/// How a request's `Content-Type` reads to body-parser's JSON parser.
#[derive(Debug, PartialEq, Eq)]
enum Media {
    /// Not `application/json` (or no valid media type): the body is not read.
    Other,
    /// `application/json` with this charset parameter (lower case), if any.
    Json(Option<String>),
}

/// A token of media-typer's parameter grammar.
fn param_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// media-typer's `parse` then `format` without parameters, as type-is normalises a request's
/// type before comparing it: `type/subtype[+suffix]` of its characters, lower-cased, spaces
/// around it allowed, and parameters `; name=value` (a token or a quoted string) that must
/// cover the rest exactly. An empty `+suffix` is dropped, so `application/json+` is JSON.
fn media(header: &[u8]) -> Media {
    let text: String = header.iter().map(|&b| char::from(b)).collect();
    let (ty, params) = match text.find(';') {
        Some(i) => (&text[..i], Some(&text[i..])),
        None => (text.as_str(), None),
    };
    let ty = ty.trim_matches(' ').to_ascii_lowercase();
    let Some((main, sub)) = ty.split_once('/') else {
        return Media::Other;
    };
    let name = |s: &str, extra: &[u8]| {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 127
            && b[0].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"!#$&^_-".contains(c) || extra.contains(c))
    };
    if !name(main, b"") || !name(sub, b".+") {
        return Media::Other;
    }
    // `format` checks the subtype without its suffix again (no `+`), and the suffix itself.
    let (base, suffix) = match sub.rfind('+') {
        Some(i) => (&sub[..i], &sub[i + 1..]),
        None => (sub, ""),
    };
    if !name(base, b".") || (!suffix.is_empty() && !name(suffix, b"")) {
        return Media::Other;
    }
    let Some(charset) = params.map_or(Some(None), parameters) else {
        return Media::Other;
    };
    let normalised = if suffix.is_empty() {
        format!("{main}/{base}")
    } else {
        format!("{main}/{base}+{suffix}")
    };
    if normalised == "application/json" {
        Media::Json(charset)
    } else {
        Media::Other
    }
}

/// media-typer's parameter list (`; *name *= *value *`, repeated to the end); the charset
/// parameter lower-cased (the last one wins), or None when the list is malformed.
fn parameters(list: &str) -> Option<Option<String>> {
    let b = list.as_bytes();
    let mut i = 0;
    let mut charset = None;
    let spaces = |i: &mut usize| {
        while b.get(*i) == Some(&b' ') {
            *i += 1;
        }
    };
    while i < b.len() {
        if b[i] != b';' {
            return None;
        }
        i += 1;
        spaces(&mut i);
        let start = i;
        while b.get(i).is_some_and(|c| param_token(*c)) {
            i += 1;
        }
        let key = list[start..i].to_ascii_lowercase();
        if key.is_empty() {
            return None;
        }
        spaces(&mut i);
        if b.get(i) != Some(&b'=') {
            return None;
        }
        i += 1;
        spaces(&mut i);
        let value = if b.get(i) == Some(&b'"') {
            i += 1;
            let mut v = String::new();
            loop {
                match b.get(i) {
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if b.get(i + 1).is_some_and(|c| (0x20..=0x7e).contains(c)) => {
                        v.push(char::from(b[i + 1]));
                        i += 2;
                    }
                    Some(&c)
                        if c == b' '
                            || c == b'!'
                            || ((0x23..=0x7e).contains(&c) && c != b'\\')
                            || c >= 0x80 =>
                    {
                        v.push(char::from(c));
                        i += 1;
                    }
                    _ => return None,
                }
            }
            v
        } else {
            let start = i;
            while b.get(i).is_some_and(|c| param_token(*c)) {
                i += 1;
            }
            if start == i {
                return None;
            }
            list[start..i].to_string()
        };
        spaces(&mut i);
        if key == "charset" {
            charset = Some(value.to_lowercase());
        }
    }
    Some(charset)
}

/// type-is's `hasBody`: a `Transfer-Encoding` or a `Content-Length` (hyper has already
/// refused one that is not a number).
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING) || headers.contains_key(header::CONTENT_LENGTH)
}

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let empty = || JsonBody(Value::Object(Default::default()));
        if !has_body(req.headers()) {
            return Ok(empty());
        }
        let media = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map_or(Media::Other, |v| media(v.as_bytes()));
        let Media::Json(charset) = media else {
            return Ok(empty());
        };
        // RFC 7159 §8.1, as body-parser asserts it before reading (its 415, Directus's 400).
        let charset = charset
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "utf-8".into());
        // iconv-lite would also decode UTF-16, UTF-32 and UTF-7; gatehouse reads UTF-8 only
        // and refuses the others as body-parser refuses a charset it does not know
        // (docs/compatibility.md).
        if charset != "utf-8" {
            return Err(ApiError::payload(format!(
                "unsupported charset \"{}\"",
                charset.to_uppercase()
            )));
        }
        let encoding = req
            .headers()
            .get(header::CONTENT_ENCODING)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).to_lowercase())
            .filter(|e| !e.is_empty() && e != "identity");
        if let Some(encoding) = encoding {
            // body-parser inflates gzip and deflate; gatehouse does not (docs/compatibility.md).
            return Err(ApiError::payload(format!(
                "unsupported content encoding \"{encoding}\""
            )));
        }
        // SECURITY: a client that stops sending mid-body would otherwise hold the request (and
        // its connection slot) for as long as it keeps the socket open.
        let bytes = tokio::time::timeout(
            state.auth.config.server.request_body_timeout,
            Bytes::from_request(req, state),
        )
        .await
        .map_err(|_| ApiError::RequestTimeout)?
        .map_err(|_| ApiError::payload("request entity too large"))?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// body-parser's `parse` on a UTF-8 body: decoded as iconv-lite decodes it (invalid bytes
/// become U+FFFD, a leading BOM is dropped), empty is `{}`, the first non-blank character
/// must be `{` or `[`, then `JSON.parse` with V8's messages.
fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    if text.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    let first = text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .chars()
        .next();
    if !matches!(first, Some('{' | '[')) {
        return Err(ApiError::payload(json_error::strict_message(text)));
    }
    serde_json::from_str(text).map_err(|e| {
        // serde_json stops where V8 does for every malformed text; it also refuses a few that
        // V8 reads (an unpaired surrogate escape, nesting past 128), answered with its reason.
        ApiError::payload(json_error::v8_message(text).unwrap_or_else(|| e.to_string()))
    })
}

/// Where the token came from: the session cookie is cleared when it turns out bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Query,
    Header,
    Cookie,
}

/// The client's address as Directus reads it (`api/src/utils/get-ip-from-req.ts`): a valid IP
/// in `IP_CUSTOM_HEADER`, else the first `X-Forwarded-For` entry when `IP_TRUST_PROXY`, else
/// the peer. Also the rate limiters' key (src/http/rate_limit.rs).
pub fn client_ip(
    cfg: &crate::config::Config,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Option<IpAddr> {
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
        ip: client_ip(&state.auth.config, headers, peer),
        user_agent: header(header::USER_AGENT),
        origin: header(header::ORIGIN).map(|o| o.chars().take(255).collect()),
    }
}

/// The request's token as Directus's `extract-token` finds it: the `access_token` query
/// parameter or an `Authorization: Bearer` header (both at once is 400), else the session
/// cookie. Also forward-auth's reader, given the forwarded URI's query.
pub(super) fn find_token(
    headers: &HeaderMap,
    query: Option<&str>,
    session_cookie: &str,
) -> Result<Option<(String, Source)>, ApiError> {
    let query_token = QueryPairs::parse(query)
        .get("access_token")
        .map(str::to_string)
        .filter(|t| !t.is_empty());
    let header_token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let parts: Vec<&str> = v.split(' ').collect();
            (parts.len() == 2 && parts[0].eq_ignore_ascii_case("bearer") && !parts[1].is_empty())
                .then(|| parts[1].to_string())
        });
    Ok(match (query_token, header_token) {
        (Some(_), Some(_)) => {
            return Err(ApiError::payload(
                "The request uses more than one method for including an access token",
            ));
        }
        (Some(q), None) => Some((q, Source::Query)),
        (None, Some(h)) => Some((h, Source::Header)),
        (None, None) => cookies::read(headers, session_cookie).map(|c| (c, Source::Cookie)),
    })
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
    let (token, source) = match find_token(
        req.headers(),
        req.uri().query(),
        &state.auth.config.session_cookie.name,
    ) {
        Ok(Some((token, source))) => (Some(token), Some(source)),
        Ok(None) => (None, None),
        Err(e) => return e.into_response(),
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
