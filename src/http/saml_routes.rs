//! The routes of a `saml` provider (Directus: `api/src/auth/drivers/saml.ts`,
//! `createSAMLAuthRouter`): `GET /auth/login/<name>/metadata`, the start of a login
//! (`start`, called by `GET /auth/login/<name>`), `POST .../acs` and `POST .../logout`.
//!
//! Directus keeps nothing between the start and the ACS. gatehouse keeps the AuthnRequest's
//! id in a signed cookie (`saml.<name>`, five minutes) so the response must answer a request
//! this browser started, and records each assertion id once in the database so a replay
//! fails on every node (docs/compatibility.md).

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::extract::JsonBody;
use super::{cookies, AppState};
use crate::auth::{Issued, Mode, RequestMeta};
use crate::error::ApiError;
use crate::providers::saml::sp::{Rejected, MAX_ATTRIBUTE_VALUE, MAX_SAML_RESPONSE};
use crate::providers::saml::SamlProvider;
use crate::providers::Identity;

/// The scope of the request-id cookie's JWT.
const SCOPE: &str = "saml-request";
/// How long a started login may take at the IdP (Directus's SSO state cookies live 5m).
const REQUEST_TTL: std::time::Duration = std::time::Duration::from_secs(300);
/// Largest ACS body: the response and a RelayState, form-encoded.
const MAX_ACS_BODY: usize = MAX_SAML_RESPONSE + 16 * 1024;
/// `directus_users.first_name` / `last_name` are varchar(50).
const MAX_NAME: usize = 50;

/// The SAML routes, with a body limit that fits a signed response (the other `/auth` routes
/// keep their small one).
pub fn routes(state: &AppState) -> Router<AppState> {
    let limit = MAX_ACS_BODY.min(state.auth.config.max_payload_size);
    Router::new()
        .route("/auth/login/{provider}/metadata", get(metadata))
        .route("/auth/login/{provider}/acs", post(acs))
        .route("/auth/login/{provider}/logout", post(logout))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
}

/// The saml provider of a route, or Directus's 404 for the path (its SAML router exists
/// only for saml providers).
fn provider<'a>(state: &'a AppState, name: &str, uri: &Uri) -> Result<&'a SamlProvider, ApiError> {
    state
        .auth
        .providers
        .get(name)
        .and_then(|p| p.as_any().downcast_ref::<SamlProvider>())
        .ok_or_else(|| ApiError::RouteNotFound(uri.path().to_string()))
}

/// Validates a redirect as every SSO start does (`crate::urls::resolve_login_redirect`,
/// Directus's `resolveLoginRedirect`): 400 `INVALID_PAYLOAD` naming it when it is refused.
fn resolve_redirect(
    state: &AppState,
    p: &SamlProvider,
    redirect: &str,
) -> Result<String, ApiError> {
    crate::urls::resolve_login_redirect(
        redirect,
        &state.auth.config.public_url,
        p.common.redirect_allow_list.as_deref(),
    )
    .ok_or_else(|| {
        ApiError::payload(format!(
            "URL \"{}\" can't be used to redirect after login",
            redirect.replace('\0', "")
        ))
    })
}

fn cookie_name(p: &SamlProvider) -> String {
    format!("saml.{}", p.common.name)
}

/// SECURITY: the IdP posts the response from its own site. A `SameSite=Lax` cookie is not sent
/// on a cross-site POST, so behind https (or with `AUTH_<NAME>_COOKIE_SECURE`) the cookie is
/// `Secure; SameSite=None`; over plain http (local use) it is `Lax`, which works when the IdP
/// is on the same site.
fn cookie_attributes(state: &AppState, p: &SamlProvider) -> &'static str {
    if p.common.cookie_secure || state.auth.config.public_url.starts_with("https:") {
        "; Path=/; HttpOnly; Secure; SameSite=None"
    } else {
        "; Path=/; HttpOnly; SameSite=Lax"
    }
}

fn request_cookie(state: &AppState, p: &SamlProvider, id: &str) -> Result<String, ApiError> {
    let mut claims = Map::new();
    claims.insert("request".into(), Value::from(id));
    claims.insert("provider".into(), Value::from(p.common.name.as_str()));
    let jwt = state
        .auth
        .tokens
        .sign_scoped(SCOPE, claims, REQUEST_TTL, state.auth.now())?;
    Ok(format!(
        "{}={jwt}{}",
        cookie_name(p),
        cookie_attributes(state, p)
    ))
}

fn clear_request_cookie(state: &AppState, p: &SamlProvider) -> String {
    format!(
        "{}=; Expires=Thu, 01 Jan 1970 00:00:00 GMT{}",
        cookie_name(p),
        cookie_attributes(state, p)
    )
}

/// The AuthnRequest id this browser's cookie names, if it is valid and for this provider.
fn started_request(state: &AppState, p: &SamlProvider, headers: &HeaderMap) -> Option<String> {
    let jwt = cookies::read(headers, &cookie_name(p))?;
    let claims = state
        .auth
        .tokens
        .verify_scoped(&jwt, SCOPE, state.auth.now())
        .ok()?;
    if claims.get("provider").and_then(Value::as_str) != Some(p.common.name.as_str()) {
        return None;
    }
    claims
        .get("request")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn redirect_to(location: &str) -> Response {
    let mut res = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

fn append_cookie(res: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// `GET /auth/login/<name>/metadata`: the SP metadata as configured, as samlify's
/// `sp.getMetadata()` returns it (`Content-Type: text/xml`, charset added as Express does).
async fn metadata(
    State(state): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let p = provider(&state, &name, &uri)?;
    Ok((
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        p.sp.sp_metadata.clone(),
    )
        .into_response())
}

/// `GET /auth/login/<name>` of a saml provider: a redirect to the IdP with an HTTP-Redirect
/// AuthnRequest; a given `redirect` is validated and sent as `RelayState` (a missing one is
/// not defaulted, as in Directus).
pub async fn start(
    state: &AppState,
    p: &SamlProvider,
    redirect: Option<&str>,
) -> Result<Response, ApiError> {
    let relay = match redirect.filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => Some(resolve_redirect(state, p, r)?),
    };
    let (id, url) =
        p.sp.login_request(relay.as_deref(), state.auth.now())
            .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    let mut res = redirect_to(url.as_str());
    append_cookie(&mut res, &request_cookie(state, p, &id)?);
    Ok(res)
}

/// Why an ACS post failed: a refused SAML message (Directus: samlify throws, the reason is
/// `UNKNOWN_EXCEPTION`) or the login itself.
enum AcsError {
    Protocol(String),
    Auth(crate::auth::Error),
}

impl From<crate::auth::Error> for AcsError {
    fn from(e: crate::auth::Error) -> Self {
        AcsError::Auth(e)
    }
}

impl From<crate::store::StoreError> for AcsError {
    fn from(e: crate::store::StoreError) -> Self {
        AcsError::Auth(e.into())
    }
}

/// The form fields of an ACS body (`express.urlencoded({ extended: false })`); any other
/// content type leaves the body empty, as Express does.
fn form_fields(headers: &HeaderMap, body: &[u8]) -> Vec<(String, String)> {
    if !super::sso_routes::is_form(headers) {
        return Vec::new();
    }
    url::form_urlencoded::parse(body)
        .take(100)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The one value of a form field; a repeated field is an error (`Err(())`), as Express's
/// array would fail Directus's string checks.
fn single<'a>(fields: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, ()> {
    let mut values = fields
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str());
    let first = values.next();
    if values.next().is_some() {
        return Err(());
    }
    Ok(first)
}

/// At most `max` characters of an attribute value.
fn bounded(value: Option<&str>, max: usize) -> Option<String> {
    value
        .filter(|v| !v.is_empty() && !v.contains('\0'))
        .map(|v| v.chars().take(max).collect())
}

/// `POST /auth/login/<name>/acs`.
async fn acs(
    State(state): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
    meta: RequestMeta,
    req: Request,
) -> Result<Response, ApiError> {
    let p = provider(&state, &name, &uri)?;
    let headers = req.headers().clone();
    // SECURITY: a client that stops sending mid-body must not hold the request.
    let body = tokio::time::timeout(
        state.auth.config.server.request_body_timeout,
        Bytes::from_request(req, &state),
    )
    .await
    .map_err(|_| ApiError::RequestTimeout)?
    .map_err(|_| ApiError::payload("request entity too large"))?;
    let fields = form_fields(&headers, &body);
    let relay_raw = single(&fields, "RelayState")
        .map_err(|_| ApiError::payload("\"RelayState\" must be a string"))?
        .filter(|r| !r.is_empty());
    let relay = match relay_raw {
        None => None,
        Some(r) => Some(resolve_redirect(&state, p, r)?),
    };
    let outcome = acs_login(&state, p, &headers, &fields, &meta).await;
    let mut res = match (outcome, &relay) {
        (Ok(issued), Some(to)) => {
            let cfg = &state.auth.config;
            let cookie = match issued.mode {
                Mode::Session => {
                    cookies::set(&cfg.session_cookie, &issued.access_token, state.auth.now())
                }
                _ => cookies::set(&cfg.refresh_cookie, &issued.refresh_token, state.auth.now()),
            };
            let mut res = redirect_to(to);
            append_cookie(&mut res, &cookie);
            res
        }
        (Ok(issued), None) => Json(json!({"data": {
            "access_token": issued.access_token,
            "refresh_token": issued.refresh_token,
            "expires": issued.expires_ms,
        }}))
        .into_response(),
        (Err(e), Some(to)) => {
            let reason = match &e {
                AcsError::Protocol(why) => {
                    tracing::warn!(provider = %p.common.name, reason = %why, "SAML response refused");
                    "UNKNOWN_EXCEPTION"
                }
                AcsError::Auth(e) => {
                    if let Some(d) = e.detail() {
                        tracing::info!(provider = %p.common.name, code = e.code(), reason = %d, "SAML login refused");
                    }
                    e.code()
                }
            };
            let base = to.split('?').next().unwrap_or(to);
            redirect_to(&format!("{base}?reason={reason}"))
        }
        (Err(AcsError::Protocol(why)), None) => {
            tracing::warn!(provider = %p.common.name, reason = %why, "SAML response refused");
            ApiError::InvalidCredentials.into_response()
        }
        (Err(AcsError::Auth(e)), None) => ApiError::from(e).into_response(),
    };
    // The request id is used up, whatever the outcome.
    if cookies::read(&headers, &cookie_name(p)).is_some() {
        append_cookie(&mut res, &clear_request_cookie(&state, p));
    }
    Ok(res)
}

/// Checks the posted response, records its assertion once, and signs the user in.
async fn acs_login(
    state: &AppState,
    p: &SamlProvider,
    headers: &HeaderMap,
    fields: &[(String, String)],
    meta: &RequestMeta,
) -> Result<Issued, AcsError> {
    let response = single(fields, "SAMLResponse")
        .map_err(|_| AcsError::Protocol("more than one SAMLResponse".into()))?
        .filter(|r| !r.is_empty())
        .ok_or_else(|| AcsError::Protocol("the post has no SAMLResponse".into()))?;
    let request_id = started_request(state, p, headers);
    let verified = match p.sp.verify(response, request_id.as_deref()) {
        Ok(v) => v,
        Err(Rejected::Protocol(why)) => return Err(AcsError::Protocol(why)),
        Err(e @ Rejected::NoIdentifier(_)) => {
            return Err(
                crate::auth::Error::because(ApiError::InvalidCredentials, e.to_string()).into(),
            )
        }
    };
    // SECURITY: one use per assertion, on every node: the first to record the assertion's
    // key wins (Directus has no replay check). `gatehouse_meta.key` holds 64 characters.
    let digest =
        crate::tokens::token_hash(&format!("{}\n{}", verified.issuer, verified.assertion_id));
    let key = format!("saml:{}", digest.get(..56).unwrap_or(&digest));
    let claim = uuid::Uuid::new_v4().to_string();
    if state
        .auth
        .store
        .meta
        .meta_get_or_insert(&key, &claim)
        .await?
        != claim
    {
        return Err(AcsError::Protocol(format!(
            "assertion {} was already used (replay)",
            verified.assertion_id
        )));
    }
    let c = &p.config;
    // Directus: a missing identifier is INVALID_CREDENTIALS (before #19379's fix it crashed).
    let Some(identifier) = verified.first(&c.identifier_key).filter(|v| !v.is_empty()) else {
        return Err(crate::auth::Error::because(
            ApiError::InvalidCredentials,
            Rejected::NoIdentifier(c.identifier_key.clone()).to_string(),
        )
        .into());
    };
    if identifier.chars().count() > MAX_ATTRIBUTE_VALUE {
        return Err(crate::auth::Error::because(
            ApiError::InvalidCredentials,
            "the identifier attribute is longer than 255 characters",
        )
        .into());
    }
    let email = verified.first(&c.email_key).filter(|v| !v.is_empty());
    if email.is_some_and(|e| e.chars().count() > MAX_ATTRIBUTE_VALUE) {
        return Err(crate::auth::Error::because(
            ApiError::InvalidCredentials,
            "the email attribute is longer than 255 characters",
        )
        .into());
    }
    let identity = Identity {
        external_id: identifier.to_string(),
        email: bounded(email, MAX_ATTRIBUTE_VALUE),
        first_name: bounded(verified.first(&c.given_name_key), MAX_NAME),
        last_name: bounded(verified.first(&c.family_name_key), MAX_NAME),
        groups: Vec::new(),
        auth_data: None,
    };
    Ok(state
        .auth
        .sso_login(
            &p.common.name,
            identity,
            &p.provisioning(),
            p.common.mode,
            None,
            meta,
        )
        .await?)
}

/// `POST /auth/login/<name>/logout`: a redirect to the IdP with a LogoutRequest (samlify's
/// `createLogoutRequest(idp, 'redirect', req.body)`: `logoutNameID`, `sessionIndex`). The
/// session cookie is cleared when present; gatehouse also ends that session, which Directus
/// means to do but does not (it passes the session JWT where a refresh token belongs).
async fn logout(
    State(state): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
    meta: RequestMeta,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let p = provider(&state, &name, &uri)?;
    let field = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .filter(|v| v.len() <= MAX_ATTRIBUTE_VALUE)
    };
    let url =
        p.sp.logout_request(
            field("logoutNameID"),
            field("sessionIndex"),
            state.auth.now(),
        )
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "AUTH_{}_IDP_metadata has no SingleLogoutService with the HTTP-Redirect binding",
                p.common.name.to_ascii_uppercase()
            ))
        })?;
    let mut res = redirect_to(url.as_str());
    let cfg = &state.auth.config;
    if let Some(jwt) = cookies::read(&headers, &cfg.session_cookie.name) {
        if crate::tokens::is_directus_jwt(&jwt) {
            if let Ok(Some(session)) = state
                .auth
                .tokens
                .verify(&jwt, state.auth.now())
                .map(|c| c.session)
            {
                if let Err(e) = state.auth.logout(&session, meta).await {
                    tracing::info!(code = e.code(), "SAML logout: the session was already gone");
                }
            }
        }
        append_cookie(&mut res, &cookies::clear(&cfg.session_cookie));
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_form_fields_are_refused() {
        let f = vec![
            ("a".to_string(), "1".to_string()),
            ("a".to_string(), "2".to_string()),
        ];
        assert!(single(&f, "a").is_err());
        assert_eq!(single(&f, "b"), Ok(None));
    }
}
