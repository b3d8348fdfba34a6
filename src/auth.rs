//! Use cases: login, refresh, logout, who a token belongs to, the admin operations and the account
//! flows that send mail (reset, invites, registration).
//! No axum and no sqlx types here: handlers pass plain inputs in and get `ApiError`s out.

pub mod access;
pub mod accounts;
pub mod admin;
pub mod bootstrap;
mod last_admin;
pub mod ldap;
mod notify;
pub mod permissions;
pub mod session;
pub mod settings;
pub mod sso;
pub mod tfa;
pub mod user;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::Config;
use crate::error::ApiError;
use crate::password::Hasher;
use crate::providers::mail::Outbox;
use crate::providers::Providers;
use crate::store::Stores;
use crate::tokens::Tokens;

/// A use case's failure: the answer the client gets (an `ApiError`, Directus's code and
/// message) and, for the log only, why — the detail an SSO or directory failure needs
/// ("the IdP answered invalid_grant") that must never reach the client. It becomes an
/// `ApiError` in one place, `From<Error> for ApiError`, which logs the detail once.
#[derive(Debug, thiserror::Error)]
#[error("{api}")]
pub struct Error {
    api: ApiError,
    detail: Option<String>,
}

impl Error {
    /// A failure with a cause for the log.
    pub fn because(api: ApiError, detail: impl Into<String>) -> Self {
        Self {
            api,
            detail: Some(detail.into()),
        }
    }

    /// What the client will be told.
    pub fn api(&self) -> &ApiError {
        &self.api
    }

    pub fn code(&self) -> &'static str {
        self.api.code()
    }

    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl From<ApiError> for Error {
    fn from(api: ApiError) -> Self {
        Self { api, detail: None }
    }
}

impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        if let Some(detail) = &e.detail {
            // Inside the request's span, so the route and request id come with it.
            tracing::info!(code = e.api.code(), reason = %detail, "request refused");
        }
        e.api
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detail_is_for_the_log_and_never_reaches_the_answer() {
        let e = Error::because(
            ApiError::InvalidCredentials,
            "wrong password for a@example.com",
        );
        assert_eq!(e.code(), "INVALID_CREDENTIALS");
        assert_eq!(e.detail(), Some("wrong password for a@example.com"));
        assert_eq!(e.to_string(), "Invalid user credentials.");
        let api = ApiError::from(e);
        assert!(matches!(api, ApiError::InvalidCredentials));
        assert!(!api.body().to_string().contains("wrong password"));
        let plain = Error::from(ApiError::Forbidden);
        assert_eq!(plain.detail(), None);
    }
}

/// Where a request came from, for session rows and activity records.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub origin: Option<String>,
}

impl RequestMeta {
    pub fn ip_string(&self) -> Option<String> {
        self.ip.map(|ip| ip.to_string())
    }
}

/// The three ways a login or refresh hands out credentials (Directus: `api/src/auth/drivers/local.ts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Json,
    Cookie,
    Session,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "json" => Some(Mode::Json),
            "cookie" => Some(Mode::Cookie),
            "session" => Some(Mode::Session),
            _ => None,
        }
    }
}

/// Credentials issued by login or refresh; the http layer shapes them per mode.
#[derive(Clone)]
pub struct Issued {
    pub mode: Mode,
    pub access_token: String,
    pub refresh_token: String,
    /// `expires` in the body: a TTL in milliseconds, not a timestamp.
    pub expires_ms: u64,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("mode", &self.mode)
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}

/// Who is making a request (Directus's accountability, minus what is computed on demand).
#[derive(Debug, Clone, Default)]
pub struct Accountability {
    pub user: Option<Uuid>,
    pub role: Option<Uuid>,
    /// The user's current email (forward-auth's identity header).
    pub email: Option<String>,
    /// The session token when the request came with a session JWT.
    pub session: Option<String>,
    /// admin/app flags from the user's current role and policies (never from the token's
    /// claims): they decide what `/users/me` shows and who may use the admin routes.
    pub admin: bool,
    pub app: bool,
    pub meta: RequestMeta,
}

/// The use-case service shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct Auth {
    pub store: Stores,
    pub tokens: Tokens,
    pub hasher: Hasher,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<Config>,
    /// The SSO providers of `AUTH_PROVIDERS` (src/providers.rs).
    pub providers: Providers,
    /// Outgoing mail (reset, invitation and verification mails).
    pub mail: Outbox,
    /// What `/metrics` shows (src/metrics.rs).
    pub metrics: crate::metrics::Metrics,
}

impl Auth {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Waits until `min` has passed since `start` (LOGIN_STALL_TIME; Directus: `api/src/utils/stall.ts`).
    pub async fn stall(&self, start: Instant, min: Duration) {
        if let Some(rest) = min.checked_sub(start.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }

    fn expiry(&self, ttl: Duration) -> DateTime<Utc> {
        self.now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(36500))
    }
}

/// Reads a uuid column of an item.
pub(crate) fn uuid_of(item: &crate::store::Item, field: &str) -> Option<Uuid> {
    item.get(field)
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::parse_str(s).ok())
}

pub(crate) fn str_of<'a>(item: &'a crate::store::Item, field: &str) -> Option<&'a str> {
    item.get(field).and_then(|v| v.as_str())
}
