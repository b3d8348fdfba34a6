//! `/auth`: provider list, login, refresh and logout (Directus: `api/src/controllers/auth.ts`,
//! `api/src/auth/drivers/local.ts`).

use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::extract::{JsonBody, QueryPairs};
use super::{cookies, AppState};
use crate::auth::session::LoginInput;
use crate::auth::{Issued, Mode, RequestMeta};
use crate::error::ApiError;

pub async fn providers(State(state): State<AppState>, q: QueryPairs) -> Json<Value> {
    // `?sessionOnly` is on when present: empty, or any string, which JavaScript's `Boolean`
    // finds truthy, `false` included (Directus: `api/src/controllers/auth.ts`).
    let session_only = q.get("sessionOnly").is_some();
    Json(json!({
        "data": state.auth.providers.listing(session_only),
        "disableDefault": state.auth.config.auth_disable_default,
    }))
}

/// Joi-like checks for the login body, in Directus's key order (email, password, mode, otp).
fn login_input(body: &Value) -> Result<LoginInput, ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::payload("\"value\" must be of type object"));
    };
    let string = |key: &str, required: bool| -> Result<Option<String>, ApiError> {
        match obj.get(key) {
            None | Some(Value::Null) if required => {
                Err(ApiError::payload(format!("\"{key}\" is required")))
            }
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::payload(format!("\"{key}\" must be a string"))),
        }
    };
    let email = string("email", true)?.unwrap_or_default();
    if !crate::email::valid(&email) {
        return Err(ApiError::payload("\"email\" must be a valid email"));
    }
    let password = string("password", true)?.unwrap_or_default();
    if password.is_empty() {
        return Err(ApiError::payload("\"password\" is not allowed to be empty"));
    }
    crate::auth::admin::check_password_length(&password)?;
    let mode = match string("mode", false)? {
        None => Mode::Json,
        Some(m) => Mode::parse(&m)
            .ok_or_else(|| ApiError::payload("\"mode\" must be one of [cookie, json, session]"))?,
    };
    let otp = string("otp", false)?;
    Ok(LoginInput {
        email,
        password,
        otp,
        mode,
    })
}

/// Shapes issued credentials per mode: body fields and cookie (Directus: `api/src/auth/drivers/local.ts`).
fn issued_response(state: &AppState, issued: Issued) -> Response {
    let cfg = &state.auth.config;
    let now = state.auth.now();
    let (data, cookie) = match issued.mode {
        Mode::Json => (
            json!({"expires": issued.expires_ms, "refresh_token": issued.refresh_token, "access_token": issued.access_token}),
            None,
        ),
        Mode::Cookie => (
            json!({"expires": issued.expires_ms, "access_token": issued.access_token}),
            Some(cookies::set(
                &cfg.refresh_cookie,
                &issued.refresh_token,
                now,
            )),
        ),
        Mode::Session => (
            json!({"expires": issued.expires_ms}),
            Some(cookies::set(&cfg.session_cookie, &issued.access_token, now)),
        ),
    };
    let mut res = Json(json!({ "data": data })).into_response();
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

pub async fn login(
    State(state): State<AppState>,
    meta: RequestMeta,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    if state.auth.config.auth_disable_default {
        return Err(ApiError::RouteNotFound("/auth/login".into()));
    }
    let start = Instant::now();
    // gatehouse's own: `"mode": "ldap"` signs in through the configured LDAP provider
    // (src/http/ldap_routes.rs; Directus refuses the mode).
    if let Some(obj) = body
        .as_object()
        .filter(|o| o.get("mode") == Some(&Value::from("ldap")))
    {
        if let Some(answer) = super::ldap_routes::form_login(&state, meta.clone(), obj).await {
            return answer;
        }
    }
    let input = match login_input(&body) {
        Ok(i) => i,
        Err(e) => {
            state
                .auth
                .stall(start, state.auth.config.login_stall_time)
                .await;
            return Err(e);
        }
    };
    let issued = state.auth.login(input, meta).await;
    state.auth.metrics.login(
        crate::auth::user::LOCAL_PROVIDER,
        issued.as_ref().map_or_else(|e| e.code(), |_| "success"),
    );
    Ok(issued_response(&state, issued?))
}

/// The mode and token of a refresh or logout body (Directus: `api/src/controllers/auth.ts`).
async fn mode_and_token(
    state: &AppState,
    headers: &HeaderMap,
    body: &Value,
) -> Result<(Mode, String), ApiError> {
    let body_token = body
        .get("refresh_token")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let mode = match body.get("mode") {
        Some(Value::String(m)) => Mode::parse(m),
        Some(Value::Null) | None => Some(if body_token.is_some() {
            Mode::Json
        } else {
            Mode::Cookie
        }),
        Some(_) => None,
    };
    let cfg = &state.auth.config;
    let token = match mode {
        Some(Mode::Json) => body_token.map(str::to_string),
        Some(Mode::Cookie) => cookies::read(headers, &cfg.refresh_cookie.name),
        Some(Mode::Session) => match cookies::read(headers, &cfg.session_cookie.name) {
            Some(jwt) if crate::tokens::is_directus_jwt(&jwt) => {
                state.auth.tokens.verify(&jwt, state.auth.now())?.session
            }
            _ => None,
        },
        None => None,
    };
    match (mode, token) {
        (Some(mode), Some(token)) if token.len() <= 255 => Ok((mode, token)),
        _ => Err(ApiError::payload(
            "The refresh token is required in either the payload or cookie",
        )),
    }
}

pub async fn refresh(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (mode, token) = mode_and_token(&state, &headers, &body).await?;
    let issued = state.auth.refresh(&token, mode, meta).await;
    state
        .auth
        .metrics
        .refresh(issued.as_ref().map_or_else(|e| e.code(), |_| "success"));
    Ok(issued_response(&state, issued?))
}

pub async fn logout(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (_, token) = mode_and_token(&state, &headers, &body).await?;
    state.auth.logout(&token, meta).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    let cfg = &state.auth.config;
    for c in [&cfg.refresh_cookie, &cfg.session_cookie] {
        if cookies::read(&headers, &c.name).is_some() {
            if let Ok(v) = HeaderValue::from_str(&cookies::clear(c)) {
                res.headers_mut().append(header::SET_COOKIE, v);
            }
        }
    }
    Ok(res)
}
