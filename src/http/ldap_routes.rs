//! `POST /auth/login/<provider>` for `ldap` providers, and the form `POST /auth/login` with
//! `"mode": "ldap"` (Directus: `api/src/auth/drivers/ldap.ts`, `createLDAPAuthRouter`).

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::{cookies, AppState};
use crate::auth::ldap::LdapLogin;
use crate::auth::{Issued, Mode, RequestMeta};
use crate::error::ApiError;
use crate::providers::ldap::LdapProvider;
use crate::providers::{Driver, Provider};

/// Joi's checks of Directus's LDAP login schema, in its key order (identifier, password,
/// mode, otp; unknown keys allowed). `identifier_key` is `email` for the form route's
/// fallback. Directus answers these without the login stall.
fn login_input(obj: &Map<String, Value>, identifier_key: &str) -> Result<LdapLogin, ApiError> {
    let string = |key: &str, required: bool| -> Result<Option<String>, ApiError> {
        match obj.get(key) {
            None | Some(Value::Null) if required => {
                Err(ApiError::payload(format!("\"{key}\" is required")))
            }
            None => Ok(None),
            // Joi's `string()` refuses "" unless `.allow('')`.
            Some(Value::String(s)) if s.is_empty() => Err(ApiError::payload(format!(
                "\"{key}\" is not allowed to be empty"
            ))),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::payload(format!("\"{key}\" must be a string"))),
        }
    };
    let identifier = string(identifier_key, true)?.unwrap_or_default();
    let password = string("password", true)?.unwrap_or_default();
    let mode = match string("mode", false)? {
        None => Mode::Json,
        Some(m) => Mode::parse(&m)
            .ok_or_else(|| ApiError::payload("\"mode\" must be one of [cookie, json, session]"))?,
    };
    let otp = string("otp", false)?;
    Ok(LdapLogin {
        identifier,
        password,
        otp,
        mode,
    })
}

/// Directus's LDAP answer: `access_token` in the body in every mode (session mode too),
/// `refresh_token` only in json mode, and the mode's cookie.
fn respond(state: &AppState, issued: Issued) -> Response {
    let cfg = &state.auth.config;
    let now = state.auth.now();
    let mut data = Map::new();
    data.insert("access_token".into(), json!(issued.access_token));
    data.insert("expires".into(), json!(issued.expires_ms));
    let cookie = match issued.mode {
        Mode::Json => {
            data.insert("refresh_token".into(), json!(issued.refresh_token));
            None
        }
        Mode::Cookie => Some(cookies::set(
            &cfg.refresh_cookie,
            &issued.refresh_token,
            now,
        )),
        Mode::Session => Some(cookies::set(&cfg.session_cookie, &issued.access_token, now)),
    };
    let mut res = Json(json!({ "data": data })).into_response();
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

fn ldap_provider<'a>(state: &'a AppState, name: &str) -> Option<&'a LdapProvider> {
    state
        .auth
        .providers
        .get(name)
        .filter(|p| p.driver() == Driver::Ldap)
        .and_then(|p| p.as_any().downcast_ref::<LdapProvider>())
}

/// `POST /auth/login/<provider>`: called by the route shared with the other drivers once it
/// knows the provider is an `ldap` one.
pub async fn login(
    state: &AppState,
    name: &str,
    meta: RequestMeta,
    body: Value,
) -> Result<Response, ApiError> {
    let Some(provider) = ldap_provider(state, name) else {
        return Err(ApiError::RouteNotFound(format!("/auth/login/{name}")));
    };
    let Some(obj) = body.as_object() else {
        return Err(ApiError::payload("\"value\" must be of type object"));
    };
    let input = login_input(obj, "identifier")?;
    let issued = state.auth.ldap_login(provider, input, &meta).await?;
    Ok(respond(state, issued))
}

/// The form `POST /auth/login` with `"mode": "ldap"` (gatehouse's own; Directus answers 400
/// `"mode" must be one of [cookie, json, session]`): the LDAP provider named by `provider`, or
/// the only one configured, signs in `identifier` (or `email`) and answers in json mode.
/// `None` when no LDAP provider is configured, so the caller answers as Directus does.
pub async fn form_login(
    state: &AppState,
    meta: RequestMeta,
    obj: &Map<String, Value>,
) -> Option<Result<Response, ApiError>> {
    let ldap: Vec<&LdapProvider> = state
        .auth
        .providers
        .names()
        .filter_map(|n| ldap_provider(state, n))
        .collect();
    if ldap.is_empty() {
        return None;
    }
    let provider = match obj.get("provider") {
        Some(Value::String(name)) => {
            match ldap.iter().find(|p| p.name() == name.to_ascii_lowercase()) {
                Some(p) => *p,
                None => {
                    return Some(Err(ApiError::payload(format!(
                        "\"provider\" must be one of [{}]",
                        ldap.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
                    ))))
                }
            }
        }
        Some(_) => return Some(Err(ApiError::payload("\"provider\" must be a string"))),
        None if ldap.len() == 1 => ldap[0],
        None => {
            return Some(Err(ApiError::payload(
                "\"provider\" is required when several LDAP providers are configured",
            )))
        }
    };
    let key = if obj.contains_key("identifier") {
        "identifier"
    } else {
        "email"
    };
    let mut fields = obj.clone();
    fields.remove("mode");
    let result = async {
        let mut input = login_input(&fields, key)?;
        input.mode = Mode::Json;
        let issued = state.auth.ldap_login(provider, input, &meta).await?;
        Ok(respond(state, issued))
    }
    .await;
    Some(result)
}

/// The axum handler of `POST /auth/login/{provider}`.
pub async fn login_route(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::extract::Path(provider): axum::extract::Path<String>,
    meta: RequestMeta,
    super::extract::JsonBody(body): super::extract::JsonBody,
) -> Result<Response, ApiError> {
    login(&state, &provider, meta, body).await
}
