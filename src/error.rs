//! The one error type that reaches clients: Directus's codes, statuses and messages
//! (contract §10). Only `http::error` turns it into a response; a 5xx never carries
//! internal text, the cause is logged once there.

use serde_json::{json, Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Invalid user credentials.")]
    InvalidCredentials,
    #[error("Invalid user OTP.")]
    InvalidOtp,
    #[error("User suspended.")]
    UserSuspended,
    #[error("Token expired.")]
    TokenExpired,
    #[error("Invalid token.")]
    InvalidToken,
    #[error("Invalid payload. {0}.")]
    InvalidPayload(String),
    #[error("You don't have permission to access this.")]
    Forbidden,
    #[error("Route {0} doesn't exist.")]
    RouteNotFound(String),
    #[error(
        "Value \"{value}\" for field \"{field}\" in collection \"{collection}\" has to be unique."
    )]
    RecordNotUnique {
        collection: String,
        field: String,
        value: String,
    },
    #[error("Validation failed for field \"{field}\". Value doesn't have the correct format.")]
    FailedValidation { field: String },
    #[error("Service \"{service}\" is unavailable. {reason}.")]
    ServiceUnavailable { service: String, reason: String },
    /// gatehouse only: the request body did not arrive within GATEHOUSE_REQUEST_BODY_TIMEOUT.
    #[error("The request body was not received in time.")]
    RequestTimeout,
    #[error("An unexpected error occurred.")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn payload(reason: impl Into<String>) -> Self {
        ApiError::InvalidPayload(reason.into())
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(err.into())
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::InvalidCredentials
            | ApiError::InvalidOtp
            | ApiError::UserSuspended
            | ApiError::TokenExpired => 401,
            ApiError::InvalidToken | ApiError::Forbidden => 403,
            ApiError::InvalidPayload(_)
            | ApiError::RecordNotUnique { .. }
            | ApiError::FailedValidation { .. } => 400,
            ApiError::RouteNotFound(_) => 404,
            ApiError::RequestTimeout => 408,
            ApiError::ServiceUnavailable { .. } => 503,
            ApiError::Internal(_) => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidCredentials => "INVALID_CREDENTIALS",
            ApiError::InvalidOtp => "INVALID_OTP",
            ApiError::UserSuspended => "USER_SUSPENDED",
            ApiError::TokenExpired => "TOKEN_EXPIRED",
            ApiError::InvalidToken => "INVALID_TOKEN",
            ApiError::InvalidPayload(_) => "INVALID_PAYLOAD",
            ApiError::Forbidden => "FORBIDDEN",
            ApiError::RouteNotFound(_) => "ROUTE_NOT_FOUND",
            ApiError::RecordNotUnique { .. } => "RECORD_NOT_UNIQUE",
            ApiError::FailedValidation { .. } => "FAILED_VALIDATION",
            ApiError::ServiceUnavailable { .. } => "SERVICE_UNAVAILABLE",
            ApiError::RequestTimeout => "REQUEST_TIMEOUT",
            ApiError::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// Directus's envelope: `{"errors":[{"message", "extensions": {..., "code"}}]}`.
    pub fn body(&self) -> Value {
        let mut ext = Map::new();
        match self {
            ApiError::InvalidPayload(reason) => {
                ext.insert("reason".into(), json!(reason));
            }
            ApiError::RouteNotFound(path) => {
                ext.insert("path".into(), json!(path));
            }
            ApiError::RecordNotUnique {
                collection,
                field,
                value,
            } => {
                ext.insert("collection".into(), json!(collection));
                ext.insert("field".into(), json!(field));
                ext.insert("value".into(), json!(value));
            }
            // SECURITY: Directus echoes the rejected password in `invalid`; gatehouse does not
            // (docs/compatibility.md).
            ApiError::FailedValidation { field } => {
                ext.insert("field".into(), json!(field));
                ext.insert("path".into(), json!([]));
                ext.insert("type".into(), json!("regex"));
            }
            ApiError::ServiceUnavailable { service, reason } => {
                ext.insert("service".into(), json!(service));
                ext.insert("reason".into(), json!(reason));
            }
            _ => {}
        }
        ext.insert("code".into(), json!(self.code()));
        json!({"errors": [{"message": self.to_string(), "extensions": ext}]})
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Conflict {
                collection,
                field,
                value,
            } => ApiError::RecordNotUnique {
                collection,
                field,
                value,
            },
            other => ApiError::Internal(other.into()),
        }
    }
}
