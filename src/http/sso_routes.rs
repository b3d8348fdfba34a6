//! The browser side of OAuth 2.0 / OpenID Connect sign-in: `GET /auth/login/<provider>` (the
//! state cookie and the redirect to the provider) and `GET|POST /auth/login/<provider>/callback`
//! (Directus: `api/src/auth/drivers/oauth2.ts`, `api/src/auth/drivers/openid.ts`,
//! `createOAuth2AuthRouter` / `createOpenIDAuthRouter`).
//!
//! Every failure answers what Directus answers (a redirect with `?reason=<CODE>`, or the
//! `invalid_grant` restart with `prompt=true`), and writes one log line naming the provider
//! and the check that failed, in the request's span (so with its request id); never a code,
//! token or secret.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::extract::QueryPairs;
use super::{cookies, AppState};
use crate::auth::{Mode, RequestMeta};
use crate::error::ApiError;
use crate::providers::oauth::{Callback, OAuthProvider};
use crate::providers::Driver;

/// The longest `otp` kept in the state cookie.
const MAX_OTP: usize = 64;

/// The oauth2/openid provider of a route; any other name (an unknown one, an ldap provider,
/// whose router has no GET) is Directus's 404. A saml provider's start is dispatched by its
/// driver's routes (src/http/saml_routes.rs) before this is asked.
fn find<'a>(state: &'a AppState, name: &str) -> Result<&'a OAuthProvider, ApiError> {
    state
        .auth
        .providers
        .get(name)
        .and_then(|p| p.as_any().downcast_ref::<OAuthProvider>())
        .ok_or_else(|| ApiError::RouteNotFound(format!("/auth/login/{name}")))
}

/// `oauth2.<name>` / `openid.<name>`.
fn cookie_name(p: &OAuthProvider) -> String {
    format!("{}.{}", p.common.driver.as_str(), p.common.name)
}

/// The state cookie's JWT `scope`: the provider it was issued for.
fn scope(p: &OAuthProvider) -> String {
    format!("sso-state:{}", p.common.name)
}

/// Express's `clearCookie(name)`: no options, so an expired cookie at `/`.
fn clear_state(p: &OAuthProvider) -> String {
    format!(
        "{}=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
        cookie_name(p)
    )
}

fn redirect(status: StatusCode, location: &str, cookies: &[String]) -> Response {
    let mut res = status.into_response();
    match HeaderValue::from_str(location) {
        Ok(v) => {
            res.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => {
            return ApiError::internal(anyhow::anyhow!("BUG: unusable Location")).into_response()
        }
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

/// `<base>/auth/login/<name>/callback`, `<base>` the `AUTH_ALLOWED_PUBLIC_URLS` entry with the
/// request's protocol and host, else `PUBLIC_URL`, sub-path kept (Directus:
/// `api/src/auth/utils/generate-callback-url.ts`).
fn callback_url(state: &AppState, headers: &HeaderMap, name: &str) -> String {
    let cfg = &state.auth.config;
    let proto = cfg
        .ip_trust_proxy
        .then(|| headers.get("x-forwarded-proto"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_else(|| "http".into());
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let origin = format!("{proto}://{host}");
    let base = cfg
        .sso
        .allowed_public_urls
        .iter()
        .find(|u| {
            url::Url::parse(u).is_ok_and(|p| {
                let host = match p.port() {
                    Some(port) => format!("{}:{port}", p.host_str().unwrap_or("")),
                    None => p.host_str().unwrap_or("").to_string(),
                };
                format!("{}://{host}", p.scheme()) == origin
            })
        })
        .unwrap_or(&cfg.public_url);
    crate::urls::below(base, &format!("auth/login/{name}/callback"))
}

/// The single value of a query parameter; a repeated one is not a string to Directus either.
fn single<'a>(q: &'a QueryPairs, key: &str) -> Result<Option<&'a str>, ()> {
    let mut values =
        q.0.iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str());
    let first = values.next();
    if values.next().is_some() {
        return Err(());
    }
    Ok(first)
}

/// `GET /auth/login/<provider>`: validate `redirect`, set the state cookie, send the browser to
/// the provider with PKCE, `state` and (openid) `nonce`.
pub async fn start(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    q: QueryPairs,
) -> Result<Response, ApiError> {
    #[cfg(feature = "saml")]
    if let Some(p) = state.auth.providers.get(&name).and_then(|p| {
        p.as_any()
            .downcast_ref::<crate::providers::saml::SamlProvider>()
    }) {
        // A repeated `redirect` is refused as a value that is not a string.
        let redirect = single(&q, "redirect").unwrap_or(Some("\u{0}"));
        return super::saml_routes::start(&state, p, redirect).await;
    }
    let p = find(&state, &name)?;
    let raw_redirect = single(&q, "redirect").unwrap_or(Some("\u{0}"));
    let refuse = |r: &str| {
        tracing::warn!(provider = %p.common.name, check = "redirect not allowed", "sso start refused");
        ApiError::payload(format!(
            "URL \"{}\" can't be used to redirect after login",
            r.replace('\0', "")
        ))
    };
    let redirect = crate::urls::resolve_login_redirect(
        raw_redirect.unwrap_or(""),
        &state.auth.config.public_url,
        p.common.redirect_allow_list.as_deref(),
    )
    .ok_or_else(|| refuse(raw_redirect.unwrap_or("")))?;
    let prompt = single(&q, "prompt")
        .ok()
        .flatten()
        .is_some_and(|v| !v.is_empty());
    let otp = single(&q, "otp")
        .ok()
        .flatten()
        .filter(|o| !o.is_empty())
        .map(|o| o.chars().take(MAX_OTP).collect::<String>());
    let callback = callback_url(&state, &headers, &p.common.name);
    let verifier = OAuthProvider::new_verifier();
    let mut claims = Map::new();
    claims.insert("verifier".into(), Value::from(verifier.as_str()));
    claims.insert("redirect".into(), Value::from(redirect.as_str()));
    claims.insert("prompt".into(), Value::from(prompt));
    if let Some(o) = &otp {
        claims.insert("otp".into(), Value::from(o.as_str()));
    }
    claims.insert("callbackUrl".into(), Value::from(callback.as_str()));
    let jwt = state.auth.tokens.sign_scoped(
        &scope(p),
        claims,
        p.config.login_timeout,
        state.auth.now(),
    )?;
    let mut cookie = format!("{}={jwt}; Path=/; HttpOnly", cookie_name(p));
    if p.common.cookie_secure {
        cookie.push_str("; Secure");
    }
    cookie.push_str("; SameSite=Lax");
    match p.authorize_url(&verifier, prompt, &callback).await {
        Ok(url) => Ok(redirect_found(&url, &[cookie])),
        Err(e) => {
            tracing::warn!(provider = %p.common.name, check = e.detail().unwrap_or("-"), "sso start failed");
            // Directus (openid): the admin app's login page with the reason.
            let to = format!(
                "{}?reason=SERVICE_UNAVAILABLE",
                crate::urls::below(&state.auth.config.public_url, "admin/login")
            );
            Ok(redirect_found(&to, &[cookie]))
        }
    }
}

fn redirect_found(location: &str, cookies: &[String]) -> Response {
    redirect(StatusCode::FOUND, location, cookies)
}

/// `POST /auth/login/<provider>/callback` (`response_mode=form_post`): 303 to the GET callback
/// with the posted fields as its query, as Directus answers.
pub async fn callback_post(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    find(&state, &name)?;
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    if is_form(&headers) {
        for (k, v) in url::form_urlencoded::parse(&body) {
            out.append_pair(&k, &v);
        }
    }
    Ok(redirect(
        StatusCode::SEE_OTHER,
        &format!("./callback?{}", out.finish()),
        &[],
    ))
}

/// Whether the body is `application/x-www-form-urlencoded` (parameters ignored), the only
/// body `express.urlencoded` reads; shared with the SAML ACS (src/http/saml_routes.rs).
pub(super) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The failure answer after the state cookie was read: the `invalid_grant` restart with
/// consent, else `<redirect without its query>?reason=<CODE>`.
fn failed(
    p: &OAuthProvider,
    e: &crate::auth::Error,
    redirect: &str,
    prompt: bool,
    clear: &str,
    check: Option<&str>,
) -> Response {
    let check = check.or(e.detail()).unwrap_or("-");
    tracing::warn!(provider = %p.common.name, code = e.code(), check, "sso login failed");
    if matches!(e.api(), ApiError::InvalidToken) && !prompt {
        // Directus inserts the redirect as it is (already normalised, so URL-safe).
        let to = if redirect.is_empty() {
            "./?prompt=true".to_string()
        } else {
            format!("./?redirect={redirect}&prompt=true")
        };
        return redirect_found(&to, &[clear.to_string()]);
    }
    let reason = match e.api() {
        ApiError::Internal(_) => "UNKNOWN_EXCEPTION",
        other => other.code(),
    };
    let base = redirect.split('?').next().unwrap_or("");
    redirect_found(&format!("{base}?reason={reason}"), &[clear.to_string()])
}

/// `GET /auth/login/<provider>/callback`: check the state cookie and `state`, exchange the
/// code, validate the ID token, sign the user in and send the browser to its redirect with
/// the session (or refresh) cookie.
pub async fn callback(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    meta: RequestMeta,
    q: QueryPairs,
) -> Result<Response, ApiError> {
    let p = find(&state, &name)?;
    let auth = &state.auth;
    let clear = clear_state(p);
    let cookie = cookies::read(&headers, &cookie_name(p));
    let claims = match cookie
        .as_deref()
        .map(|c| auth.tokens.verify_scoped(c, &scope(p), auth.now()))
    {
        Some(Ok(c)) => c,
        other => {
            let check = match other {
                None => "state cookie missing",
                Some(Err(ApiError::TokenExpired)) => "state cookie expired",
                Some(Err(_)) => "state cookie invalid",
                Some(Ok(_)) => "-",
            };
            tracing::warn!(provider = %p.common.name, check, "sso login failed");
            auth.metrics.login(&p.common.name, "invalid_credentials");
            if p.common.driver == Driver::OpenId {
                let to = format!(
                    "{}?reason=INVALID_CREDENTIALS",
                    crate::urls::below(&auth.config.public_url, "admin/login")
                );
                return Ok(redirect_found(&to, &[clear]));
            }
            let mut res = ApiError::InvalidCredentials.into_response();
            if let Ok(v) = HeaderValue::from_str(&clear) {
                res.headers_mut().append(header::SET_COOKIE, v);
            }
            return Ok(res);
        }
    };
    let text = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or("");
    let redirect = text("redirect").to_string();
    let prompt = claims
        .get("prompt")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let otp = claims
        .get("otp")
        .and_then(Value::as_str)
        .map(str::to_string);
    let param = |k: &str| single(&q, k).map_err(|_| ());
    let (Ok(code), Ok(st), Ok(iss)) = (param("code"), param("state"), param("iss")) else {
        let e = crate::auth::Error::because(
            ApiError::InvalidCredentials,
            "repeated callback parameters",
        );
        auth.metrics.login(&p.common.name, e.code());
        return Ok(failed(p, &e, &redirect, prompt, &clear, None));
    };
    let proven = match p
        .callback(Callback {
            code,
            state: st,
            iss: if p.common.driver == Driver::OpenId {
                iss
            } else {
                None
            },
            verifier: text("verifier"),
            callback_url: text("callbackUrl"),
            now: auth.now(),
        })
        .await
    {
        Ok(pr) => pr,
        Err(e) => {
            // Failures after this point are counted by `sso_login`.
            auth.metrics.login(&p.common.name, e.code());
            return Ok(failed(p, &e, &redirect, prompt, &clear, None));
        }
    };
    let rules = p.provisioning(proven.may_register);
    let barred_by_email = !proven.may_register && p.common.allow_public_registration;
    let mode = if p.common.mode == Mode::Session {
        Mode::Session
    } else {
        Mode::Cookie
    };
    let issued = match auth
        .sso_login(
            &p.common.name,
            proven.identity,
            &rules,
            mode,
            otp.as_deref(),
            &meta,
        )
        .await
    {
        Ok(i) => i,
        Err(e) => {
            let check = (barred_by_email && e.detail() == Some(crate::auth::sso::REGISTRATION_OFF))
                .then_some("email unverified (REQUIRE_VERIFIED_EMAIL)");
            return Ok(failed(p, &e, &redirect, prompt, &clear, check));
        }
    };
    let now = auth.now();
    let mut to = redirect.clone();
    if auth
        .tokens
        .verify(&issued.access_token, now)
        .is_ok_and(|c| c.enforce_tfa == Some(true))
    {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("redirect", &redirect);
        q.append_pair("provider", &p.common.name);
        to = format!(
            "{}?{}",
            crate::urls::below(&auth.config.public_url, "admin/tfa-setup"),
            q.finish()
        );
    }
    let session = if mode == Mode::Session {
        cookies::set(&auth.config.session_cookie, &issued.access_token, now)
    } else {
        cookies::set(&auth.config.refresh_cookie, &issued.refresh_token, now)
    };
    tracing::info!(provider = %p.common.name, "sso login");
    Ok(redirect_found(&to, &[clear, session]))
}
