//! `/users/me/tfa/*` and `/users/:id/tfa/disable` (Directus: `api/src/controllers/users.ts`):
//! generate, enable, disable, the admin's disable, and gatehouse's recovery-code regeneration.
//! Each path also answers with a trailing slash, as Express's non-strict routing does.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::extract::{ItemId, JsonBody};
use super::AppState;
use crate::auth::Accountability;
use crate::error::ApiError;

pub async fn generate(
    State(state): State<AppState>,
    acc: Accountability,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let g = state.auth.tfa_generate(&acc, body).await?;
    Ok(Json(
        json!({"data": {"secret": g.secret, "otpauth_url": g.otpauth_url}}),
    ))
}

/// Directus answers 204; gatehouse answers 200 with the recovery codes, which
/// `@directus/sdk`'s `enableTwoFactor` and the Data Studio read past (docs/compatibility.md).
pub async fn enable(
    State(state): State<AppState>,
    acc: Accountability,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let codes = state.auth.tfa_enable(&acc, body).await?;
    Ok(Json(json!({"data": {"recovery_codes": codes}})))
}

pub async fn disable(
    State(state): State<AppState>,
    acc: Accountability,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    state.auth.tfa_disable(&acc, body).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn admin_disable(
    State(state): State<AppState>,
    acc: Accountability,
    ItemId(id): ItemId,
) -> Result<Response, ApiError> {
    state.auth.tfa_admin_disable(&acc, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn recovery_codes(
    State(state): State<AppState>,
    acc: Accountability,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let codes = state.auth.tfa_recovery_codes(&acc, body).await?;
    Ok(Json(json!({"data": {"recovery_codes": codes}})))
}
