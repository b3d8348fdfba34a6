//! The account flows' routes: `/auth/password/request` and `/reset` (Directus:
//! `api/src/controllers/auth.ts`), `/users/invite`, `/users/invite/accept`, `/users/register`
//! and `/users/register/verify-email` (`api/src/controllers/users.ts`). Bodies are checked
//! here as Directus's controllers check them (its Joi schemas' rules and messages); the use
//! cases are in src/auth/accounts.rs.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::extract::{JsonBody, QueryPairs};
use super::AppState;
use crate::auth::accounts::Registration;
use crate::auth::Accountability;
use crate::error::ApiError;

/// The most addresses one invite request may name (docs/compatibility.md).
pub const MAX_INVITES: usize = 100;
/// `first_name` and `last_name` are `varchar(50)` in Directus's schema.
const MAX_NAME_CHARS: usize = 50;

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn object(body: &Value) -> Result<&Map<String, Value>, ApiError> {
    if crate::auth::admin::has_nul(body) {
        return Err(ApiError::payload("Payload must not contain NUL characters"));
    }
    body.as_object()
        .ok_or_else(|| ApiError::payload("\"value\" must be of type object"))
}

/// A Joi object schema's checks on one body: known keys only, in the schema's order.
struct Joi<'a> {
    obj: &'a Map<String, Value>,
}

impl<'a> Joi<'a> {
    fn new(body: &'a Value) -> Result<Self, ApiError> {
        Ok(Joi { obj: object(body)? })
    }

    /// Joi refuses keys the schema does not name (`"x" is not allowed`), after the
    /// schema's own keys.
    fn unknown(&self, keys: &[&str]) -> Result<(), ApiError> {
        match self.obj.keys().find(|k| !keys.contains(&k.as_str())) {
            Some(k) => Err(ApiError::payload(format!("\"{k}\" is not allowed"))),
            None => Ok(()),
        }
    }

    /// `Joi.string()` (`.required()` when `required`): a non-empty string.
    fn string(&self, key: &str, required: bool) -> Result<Option<&'a str>, ApiError> {
        match self.obj.get(key) {
            None if required => Err(ApiError::payload(format!("\"{key}\" is required"))),
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Err(ApiError::payload(format!(
                "\"{key}\" is not allowed to be empty"
            ))),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::payload(format!("\"{key}\" must be a string"))),
        }
    }

    /// `Joi.string().uri()`: an absolute URI.
    fn uri(&self, key: &str) -> Result<Option<&'a str>, ApiError> {
        let s = self.string(key, false)?;
        if let Some(s) = s {
            if url::Url::parse(s).is_err() {
                return Err(ApiError::payload(format!("\"{key}\" must be a valid uri")));
            }
        }
        Ok(s)
    }
}

fn email_ok(key: &str, s: &str) -> Result<(), ApiError> {
    if crate::email::valid(s) {
        Ok(())
    } else {
        Err(ApiError::payload(format!(
            "\"{key}\" must be a valid email"
        )))
    }
}

/// `POST /auth/password/request`: 204 whatever the account, after the stall; 400 only for a
/// body Directus refuses and a `reset_url` outside `PASSWORD_RESET_URL_ALLOW_LIST`.
pub async fn password_request(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let email = match body.get("email") {
        Some(Value::String(s)) => s.as_str(),
        _ => return Err(ApiError::payload("\"email\" field is required")),
    };
    // Directus reads `reset_url || null`: an empty one is no `reset_url`.
    let reset_url = match body.get("reset_url") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(ApiError::payload("\"reset_url\" must be a string")),
    };
    state.auth.request_password_reset(email, reset_url).await?;
    Ok(no_content())
}

/// `POST /auth/password/reset`.
pub async fn password_reset(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (token, password) = match (body.get("token"), body.get("password")) {
        (Some(Value::String(t)), Some(Value::String(p))) => (t.as_str(), p.as_str()),
        (Some(Value::String(_)), _) => {
            return Err(ApiError::payload("\"password\" field is required"))
        }
        _ => return Err(ApiError::payload("\"token\" field is required")),
    };
    // SECURITY: an empty password would leave the old one (and the token) in place.
    if password.is_empty() {
        return Err(ApiError::payload("\"password\" is not allowed to be empty"));
    }
    crate::auth::admin::check_password_length(password)?;
    state.auth.reset_password(token, password).await?;
    Ok(no_content())
}

/// `POST /users/invite`: `email` (an email or an array of them), `role` (a v4 UUID),
/// `invite_url` (a URI in `USER_INVITE_URL_ALLOW_LIST`).
pub async fn invite(
    State(state): State<AppState>,
    acc: Accountability,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    const KEYS: &[&str] = &["email", "role", "invite_url"];
    let joi = Joi::new(&body)?;
    let emails: Vec<String> = match joi.obj.get("email") {
        None => return Err(ApiError::payload("\"email\" is required")),
        Some(Value::String(s)) => {
            email_ok("email", s)?;
            vec![s.clone()]
        }
        Some(Value::Array(items)) => {
            if items.len() > MAX_INVITES {
                return Err(ApiError::payload(format!(
                    "\"email\" must contain less than or equal to {MAX_INVITES} items"
                )));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let key = format!("email[{i}]");
                match item {
                    Value::String(s) => email_ok(&key, s)?,
                    _ => return Err(ApiError::payload(format!("\"{key}\" must be a string"))),
                }
                out.push(item.as_str().unwrap_or_default().to_string());
            }
            out
        }
        Some(_) => {
            return Err(ApiError::payload(
                "\"email\" must be one of [string, array]",
            ))
        }
    };
    let role = match joi.string("role", true)? {
        Some(r) => match Uuid::parse_str(r) {
            Ok(u) if u.get_version_num() == 4 && r.len() == 36 => u,
            _ => return Err(ApiError::payload("\"role\" must be a valid GUID")),
        },
        None => return Err(ApiError::payload("\"role\" is required")),
    };
    let invite_url = joi.uri("invite_url")?;
    joi.unknown(KEYS)?;
    state
        .auth
        .invite_users(&acc, &emails, role, invite_url)
        .await?;
    Ok(no_content())
}

/// `POST /users/invite/accept`: `token`, `password`.
pub async fn accept_invite(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    const KEYS: &[&str] = &["token", "password"];
    let joi = Joi::new(&body)?;
    let token = joi.string("token", true)?.unwrap_or_default();
    let password = joi.string("password", true)?.unwrap_or_default();
    joi.unknown(KEYS)?;
    crate::auth::admin::check_password_length(password)?;
    state.auth.accept_invite(token, password).await?;
    Ok(no_content())
}

/// `POST /users/register`: `email`, `password`, `verification_url`, `first_name`,
/// `last_name`. (The per-IP limit of `RATE_LIMITER_REGISTRATION_*` is a layer of its own.)
pub async fn register(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    const KEYS: &[&str] = &[
        "email",
        "password",
        "verification_url",
        "first_name",
        "last_name",
    ];
    let joi = Joi::new(&body)?;
    let email = joi.string("email", true)?.unwrap_or_default();
    email_ok("email", email)?;
    let password = joi.string("password", true)?.unwrap_or_default();
    let verification_url = joi.uri("verification_url")?;
    let mut names = [None, None];
    for (slot, key) in names.iter_mut().zip(["first_name", "last_name"]) {
        let v = joi.string(key, false)?;
        if v.is_some_and(|v| v.chars().count() > MAX_NAME_CHARS) {
            return Err(ApiError::payload(format!(
                "\"{key}\" length must be less than or equal to {MAX_NAME_CHARS} characters long"
            )));
        }
        *slot = v.map(str::to_string);
    }
    joi.unknown(KEYS)?;
    let [first_name, last_name] = names;
    state
        .auth
        .register(Registration {
            email: email.to_string(),
            password: password.to_string(),
            verification_url: verification_url.map(str::to_string),
            first_name,
            last_name,
        })
        .await?;
    Ok(no_content())
}

fn found(location: &str) -> Response {
    let mut res = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// `GET /users/register/verify-email?token=`: 302 to the user in the app once verified, 302
/// to the login page when `token` is not one string. Locations are below `PUBLIC_URL`'s path
/// (Directus writes them root-relative, losing a sub-path; docs/compatibility.md).
pub async fn verify_email(
    State(state): State<AppState>,
    q: QueryPairs,
) -> Result<Response, ApiError> {
    let public = &state.auth.config.public_url;
    let mut tokens =
        q.0.iter()
            .filter(|(k, _)| k == "token" || k.starts_with("token["));
    let token = match (tokens.next(), tokens.next()) {
        (None, _) => "",
        (Some((k, v)), None) if k == "token" && !v.is_empty() => v.as_str(),
        _ => return Ok(found(&crate::urls::below(public, "admin/login"))),
    };
    let id = state.auth.verify_registration(token).await?;
    Ok(found(&crate::urls::below(
        public,
        &format!("admin/users/{id}"),
    )))
}
