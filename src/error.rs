//! The one error type that reaches clients: Directus's codes, statuses and messages
//! (Directus: `api/src/middleware/error-handler.ts`, `packages/errors/src/`). Only `http::error` turns it into a response; a 5xx never carries
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
    #[error("Invalid query. {0}.")]
    InvalidQuery(String),
    /// `value`, `field` and `collection` are each left out of the message when unknown, as in
    /// Directus's `packages/errors/src/errors/invalid-foreign-key.ts`.
    #[error("{}", not_null_message(.collection, .field))]
    NotNullViolation {
        collection: Option<String>,
        field: Option<String>,
    },
    #[error("{}", foreign_key_message(.collection, .field, .value))]
    InvalidForeignKey {
        collection: Option<String>,
        field: Option<String>,
        value: Option<String>,
    },
    #[error("You don't have permission to access this.")]
    Forbidden,
    /// Directus's `ForbiddenError` with a `reason`: the reason is the message and is in
    /// `extensions.reason` (`packages/errors/src/errors/forbidden.ts`).
    #[error("{0}")]
    ForbiddenBecause(String),
    /// v12: accepting an invite of a user who is no longer `invited` (`packages/errors`).
    #[error("This invite is no longer valid.")]
    InvalidInvite,
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
    /// Failed permission validations: one `FAILED_VALIDATION` error per failure in one
    /// envelope, as Directus throws them together (`api/src/permissions/modules/process-payload/process-payload.ts`).
    #[error("{}", .0.first().map(Invalid::message).unwrap_or_default())]
    Invalid(Vec<Invalid>),
    /// Directus's `UnprocessableContentError` (422), e.g. removing the last admin.
    #[error("Can't process content. {0}.")]
    UnprocessableContent(String),
    #[error("Service \"{service}\" is unavailable. {reason}.")]
    ServiceUnavailable { service: String, reason: String },
    /// Directus's `HitRateLimitError` (`packages/errors/src/errors/hit-rate-limit.ts`): a request
    /// limiter refused. `retry` is `reset - now` in the `ms` package's short form; `reset` is an
    /// ISO date. The `Retry-After` header is added by src/http/rate_limit.rs.
    #[error("Too many requests, retry after {retry}.")]
    RequestsExceeded {
        limit: u32,
        reset: String,
        retry: String,
    },
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

    pub fn query(reason: impl Into<String>) -> Self {
        ApiError::InvalidQuery(reason.into())
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
            ApiError::InvalidToken | ApiError::Forbidden | ApiError::ForbiddenBecause(_) => 403,
            ApiError::InvalidPayload(_)
            | ApiError::InvalidQuery(_)
            | ApiError::InvalidForeignKey { .. }
            | ApiError::NotNullViolation { .. }
            | ApiError::RecordNotUnique { .. }
            | ApiError::FailedValidation { .. }
            | ApiError::InvalidInvite
            | ApiError::Invalid(_) => 400,
            ApiError::RouteNotFound(_) => 404,
            ApiError::RequestTimeout => 408,
            ApiError::UnprocessableContent(_) => 422,
            ApiError::RequestsExceeded { .. } => 429,
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
            ApiError::InvalidQuery(_) => "INVALID_QUERY",
            ApiError::InvalidForeignKey { .. } => "INVALID_FOREIGN_KEY",
            ApiError::NotNullViolation { .. } => "NOT_NULL_VIOLATION",
            ApiError::Forbidden | ApiError::ForbiddenBecause(_) => "FORBIDDEN",
            ApiError::InvalidInvite => "INVALID_INVITE",
            ApiError::RouteNotFound(_) => "ROUTE_NOT_FOUND",
            ApiError::RecordNotUnique { .. } => "RECORD_NOT_UNIQUE",
            ApiError::FailedValidation { .. } | ApiError::Invalid(_) => "FAILED_VALIDATION",
            ApiError::UnprocessableContent(_) => "UNPROCESSABLE_CONTENT",
            ApiError::RequestsExceeded { .. } => "REQUESTS_EXCEEDED",
            ApiError::ServiceUnavailable { .. } => "SERVICE_UNAVAILABLE",
            ApiError::RequestTimeout => "REQUEST_TIMEOUT",
            ApiError::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// Directus's envelope: `{"errors":[{"message", "extensions": {..., "code"}}]}`.
    pub fn body(&self) -> Value {
        if let ApiError::Invalid(all) = self {
            let errors: Vec<Value> = all.iter().map(Invalid::error).collect();
            return json!({ "errors": errors });
        }
        let mut ext = Map::new();
        match self {
            ApiError::ForbiddenBecause(reason) => {
                ext.insert("reason".into(), json!(reason));
            }
            ApiError::InvalidPayload(reason)
            | ApiError::InvalidQuery(reason)
            | ApiError::UnprocessableContent(reason) => {
                ext.insert("reason".into(), json!(reason));
            }
            ApiError::NotNullViolation { collection, field } => {
                ext.insert("collection".into(), json!(collection));
                ext.insert("field".into(), json!(field));
            }
            ApiError::InvalidForeignKey {
                collection,
                field,
                value,
            } => {
                ext.insert("collection".into(), json!(collection));
                ext.insert("field".into(), json!(field));
                ext.insert("value".into(), json!(value));
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
            ApiError::RequestsExceeded { limit, reset, .. } => {
                ext.insert("limit".into(), json!(limit));
                ext.insert("reset".into(), json!(reset));
            }
            _ => {}
        }
        ext.insert("code".into(), json!(self.code()));
        json!({"errors": [{"message": self.to_string(), "extensions": ext}]})
    }
}

/// One failed validation rule, with Directus's extensions
/// (`packages/validation/src/utils/joi-to-error-extensions.ts`) and message
/// (`packages/validation/src/errors/failed-validation.ts`).
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub field: String,
    pub path: Vec<String>,
    /// `eq`, `neq`, `in`, `nin`, `lt`, `contains`, `null`, `nnull`, `required`, ...
    pub kind: String,
    pub valid: Option<Value>,
    pub invalid: Option<Value>,
    pub substring: Option<String>,
}

impl Invalid {
    fn list(v: &Value) -> String {
        let items = match v {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        items
            .iter()
            .map(|i| format!("\"{}\"", text(i)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn message(&self) -> String {
        let at = if self.path.is_empty() {
            String::new()
        } else {
            format!(" at \"{}\"", self.path.join("."))
        };
        let mut m = format!("Validation failed for field \"{}\"{at}.", self.field);
        if let Some(v) = &self.valid {
            match self.kind.as_str() {
                "eq" => m += &format!(" Value has to be \"{}\".", text(v)),
                "lt" => m += &format!(" Value has to be less than \"{}\".", text(v)),
                "lte" => m += &format!(" Value has to be less than or equal to \"{}\".", text(v)),
                "gt" => m += &format!(" Value has to be greater than \"{}\".", text(v)),
                "gte" => {
                    m += &format!(" Value has to be greater than or equal to \"{}\".", text(v))
                }
                "in" => m += &format!(" Value has to be one of {}.", Self::list(v)),
                _ => {}
            }
        }
        if let Some(v) = &self.invalid {
            match self.kind.as_str() {
                "neq" => m += &format!(" Value can't be \"{}\".", text(v)),
                "nin" => m += &format!(" Value can't be one of {}.", Self::list(v)),
                _ => {}
            }
        }
        if let Some(s) = &self.substring {
            match self.kind.as_str() {
                "contains" | "icontains" => m += &format!(" Value has to contain \"{s}\"."),
                "ncontains" => m += &format!(" Value can't contain \"{s}\"."),
                _ => {}
            }
        }
        m += match self.kind.as_str() {
            "null" => " Value has to be null.",
            "nnull" => " Value can't be null.",
            "empty" => " Value has to be empty.",
            "nempty" => " Value can't be empty.",
            "required" => " Value is required.",
            "regex" => " Value doesn't have the correct format.",
            "email" => " Value has to be a valid email address.",
            _ => "",
        };
        m
    }

    fn error(&self) -> Value {
        let mut ext = Map::new();
        ext.insert("field".into(), json!(self.field));
        ext.insert("path".into(), json!(self.path));
        ext.insert("type".into(), json!(self.kind));
        if let Some(v) = &self.valid {
            ext.insert("valid".into(), v.clone());
        }
        if let Some(v) = &self.invalid {
            ext.insert("invalid".into(), v.clone());
        }
        if let Some(s) = &self.substring {
            ext.insert("substring".into(), json!(s));
        }
        ext.insert("code".into(), json!("FAILED_VALIDATION"));
        json!({"message": self.message(), "extensions": ext})
    }
}

/// A value as JavaScript's template strings print it.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
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
            crate::store::StoreError::ForeignKey {
                collection,
                field,
                value,
            } => ApiError::InvalidForeignKey {
                collection,
                field,
                value,
            },
            crate::store::StoreError::NotNull { collection, field } => {
                ApiError::NotNullViolation { collection, field }
            }
            other => match unavailable(&other) {
                // The cause is logged here, once; the client gets only the reason.
                Some(reason) => {
                    tracing::error!(error = %other, reason, "database unavailable");
                    ApiError::ServiceUnavailable {
                        service: "database".into(),
                        reason: reason.into(),
                    }
                }
                None => ApiError::Internal(other.into()),
            },
        }
    }
}

/// Whether a store error says the database is unreachable or overloaded for now (start-up
/// waits for it; requests answer 503).
pub(crate) fn store_unavailable(e: &crate::store::StoreError) -> bool {
    unavailable(e).is_some()
}

/// Why the database cannot serve right now, for the store errors that say it is unreachable
/// or overloaded and that pass without a restart (503 `SERVICE_UNAVAILABLE`, as Directus
/// answers for a store it cannot reach). Every other error stays a 500.
fn unavailable(e: &crate::store::StoreError) -> Option<&'static str> {
    use crate::store::StoreError;
    const UNREACHABLE: &str = "Cannot reach the database";
    match e {
        StoreError::Database(e) => match e {
            sqlx::Error::PoolTimedOut => Some("Timed out waiting for a database connection"),
            sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => Some(UNREACHABLE),
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) => Some(UNREACHABLE),
            sqlx::Error::Database(db) => {
                if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                    postgres_unavailable(pg.code())
                } else {
                    // sqlx reports SQLite's extended result code, in decimal.
                    db.code()
                        .and_then(|c| c.parse::<i32>().ok())
                        .and_then(sqlite_unavailable)
                }
            }
            _ => None,
        },
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
            sqlite_unavailable(f.extended_code)
        }
        StoreError::PoolTimedOut => Some("Timed out waiting for a database connection"),
        _ => None,
    }
}

/// PostgreSQL SQLSTATEs (appendix A of its manual) that mean "not now" rather than "wrong".
fn postgres_unavailable(sqlstate: &str) -> Option<&'static str> {
    match sqlstate {
        // connection_exception and its subclasses.
        s if s.starts_with("08") => Some("Cannot reach the database"),
        // admin_shutdown, crash_shutdown, cannot_connect_now (starting or in recovery).
        "57P01" | "57P02" | "57P03" => Some("The database is shutting down or starting"),
        // query_canceled (statement_timeout), lock_not_available.
        "57014" | "55P03" => Some("The database is overloaded"),
        // insufficient_resources: disk_full, out_of_memory, too_many_connections, ...
        s if s.starts_with("53") => Some("The database is out of resources"),
        // read_only_sql_transaction: a standby, e.g. the old primary after a failover.
        "25006" => Some("The database does not accept writes"),
        _ => None,
    }
}

/// SQLite result codes (primary code in the low byte) that pass once the disk, the lock or
/// the file is back.
fn sqlite_unavailable(extended_code: i32) -> Option<&'static str> {
    use rusqlite::ffi;
    match extended_code & 0xff {
        ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED => Some("The database is busy"),
        ffi::SQLITE_FULL | ffi::SQLITE_NOMEM => Some("The database is out of resources"),
        ffi::SQLITE_IOERR | ffi::SQLITE_CANTOPEN => Some("Cannot reach the database"),
        ffi::SQLITE_READONLY => Some("The database does not accept writes"),
        _ => None,
    }
}

/// `@directus/errors`'s NotNullViolationError message.
fn not_null_message(collection: &Option<String>, field: &Option<String>) -> String {
    let mut m = String::from("Value ");
    if let Some(f) = field {
        m.push_str(&format!("for field \"{f}\" "));
    }
    if let Some(c) = collection {
        m.push_str(&format!("in collection \"{c}\" "));
    }
    m.push_str("can't be null.");
    m
}

fn foreign_key_message(
    collection: &Option<String>,
    field: &Option<String>,
    value: &Option<String>,
) -> String {
    let mut message = String::from("Invalid foreign key");
    if let Some(v) = value {
        message.push_str(&format!(" \"{v}\""));
    }
    if let Some(f) = field {
        message.push_str(&format!(" for field \"{f}\""));
    }
    if let Some(c) = collection {
        message.push_str(&format!(" in collection \"{c}\""));
    }
    message.push('.');
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    fn sqlite(code: i32, msg: &str) -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            Some(msg.into()),
        ))
    }

    /// A full disk, a lock held elsewhere, an unreachable server: 503 with a reason and no
    /// library text; other database errors stay 500.
    #[test]
    fn unavailable_databases_are_503_without_their_cause() {
        let cases = [
            (
                sqlite(rusqlite::ffi::SQLITE_FULL, "database or disk is full"),
                "The database is out of resources",
            ),
            (
                sqlite(rusqlite::ffi::SQLITE_BUSY, "database is locked"),
                "The database is busy",
            ),
            (
                sqlite(rusqlite::ffi::SQLITE_IOERR_WRITE, "disk I/O error"),
                "Cannot reach the database",
            ),
            (
                StoreError::Database(sqlx::Error::PoolTimedOut),
                "Timed out waiting for a database connection",
            ),
            (
                StoreError::PoolTimedOut,
                "Timed out waiting for a database connection",
            ),
            (
                StoreError::Database(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "connection refused",
                ))),
                "Cannot reach the database",
            ),
        ];
        for (e, reason) in cases {
            let api = ApiError::from(e);
            assert_eq!((api.status(), api.code()), (503, "SERVICE_UNAVAILABLE"));
            assert_eq!(
                api.body(),
                json!({"errors": [{
                    "message": format!("Service \"database\" is unavailable. {reason}."),
                    "extensions": {"service": "database", "reason": reason, "code": "SERVICE_UNAVAILABLE"},
                }]})
            );
        }
        for e in [
            sqlite(rusqlite::ffi::SQLITE_CONSTRAINT_TRIGGER, "refused"),
            StoreError::Database(sqlx::Error::RowNotFound),
            StoreError::Decode("directus_users.id".into()),
        ] {
            assert_eq!(ApiError::from(e).status(), 500);
        }
        for sqlstate in ["08006", "57P01", "57P03", "53100", "53300", "25006"] {
            assert!(postgres_unavailable(sqlstate).is_some(), "{sqlstate}");
        }
        for sqlstate in ["23505", "42P01", "P0001", "40001"] {
            assert!(postgres_unavailable(sqlstate).is_none(), "{sqlstate}");
        }
    }
}
