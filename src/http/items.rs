//! `/users`, `/users/me`, `/roles`, `/policies`, `/settings`, `/permissions`: Directus's
//! item shapes (`{"data": …}`), admin only except the caller's own profile.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::extract::{ItemId, JsonBody, QueryPairs};
use super::AppState;
use crate::auth::Accountability;
use crate::error::ApiError;
use crate::store::{Collection, POLICIES, ROLES, USERS};

fn data(v: Value) -> Json<Value> {
    Json(json!({ "data": v }))
}

/// One filter condition: `_eq` (a `null` value means IS NULL) or `_null: true`.
fn condition(field: &str, op: &str, value: Value) -> Result<(String, Value), ApiError> {
    let unsupported = || {
        ApiError::payload(format!("Invalid query. Unsupported filter \"{op}\" on \"{field}\"; gatehouse supports _eq and _null: true"))
    };
    match op {
        "_eq" => Ok((
            field.to_string(),
            if value == "null" { Value::Null } else { value },
        )),
        "_null" if value == true || value == "true" => Ok((field.to_string(), Value::Null)),
        _ => Err(unsupported()),
    }
}

/// `filter[<field>][<op>]=<value>` pairs and the JSON form `filter={"<field>":{"<op>":<value>}}`
/// (what @directus/sdk sends). Anything else is refused rather than silently ignored.
fn filters(q: &QueryPairs) -> Result<Vec<(String, Value)>, ApiError> {
    let mut out = Vec::new();
    for (k, v) in &q.0 {
        if k == "filter" {
            let parsed: Value = serde_json::from_str(v)
                .map_err(|_| ApiError::payload("Invalid query. \"filter\" must be valid JSON"))?;
            let Value::Object(fields) = parsed else {
                return Err(ApiError::payload(
                    "Invalid query. \"filter\" must be an object",
                ));
            };
            for (field, ops) in fields {
                let Value::Object(ops) = ops else {
                    return Err(ApiError::payload(format!(
                        "Invalid query. Unsupported filter on \"{field}\""
                    )));
                };
                for (op, value) in ops {
                    out.push(condition(&field, &op, value)?);
                }
            }
            continue;
        }
        let Some(rest) = k.strip_prefix("filter[") else {
            continue;
        };
        let Some((field, op)) = rest.split_once("][") else {
            return Err(ApiError::payload(format!(
                "Invalid query. Unsupported filter \"{k}\""
            )));
        };
        out.push(condition(
            field,
            op.trim_end_matches(']'),
            Value::from(v.clone()),
        )?);
    }
    Ok(out)
}

fn number(q: &QueryPairs, key: &str) -> Result<Option<i64>, ApiError> {
    q.get(key)
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                ApiError::payload(format!("Invalid query. \"{key}\" must be a number"))
            })
        })
        .transpose()
}

fn collection(name: &str) -> &'static Collection {
    match name {
        "roles" => &ROLES,
        "policies" => &POLICIES,
        _ => &USERS,
    }
}

pub async fn me(
    State(state): State<AppState>,
    acc: Accountability,
    q: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    Ok(data(state.auth.me(&acc, &q.fields()).await?))
}

pub async fn update_me(
    State(state): State<AppState>,
    acc: Accountability,
    q: QueryPairs,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    Ok(data(state.auth.update_me(&acc, body, &q.fields()).await?))
}

macro_rules! item_routes {
    ($name:literal, $list:ident, $get:ident, $create:ident, $update:ident, $delete:ident) => {
        pub async fn $list(
            State(state): State<AppState>,
            acc: Accountability,
            q: QueryPairs,
        ) -> Result<Json<Value>, ApiError> {
            let c = collection($name);
            Ok(data(
                state
                    .auth
                    .list(
                        &acc,
                        c,
                        filters(&q)?,
                        number(&q, "limit")?,
                        number(&q, "offset")?,
                        &q.fields(),
                    )
                    .await?,
            ))
        }
        pub async fn $get(
            State(state): State<AppState>,
            acc: Accountability,
            q: QueryPairs,
            ItemId(id): ItemId,
        ) -> Result<Json<Value>, ApiError> {
            Ok(data(
                state
                    .auth
                    .get(&acc, collection($name), &id, &q.fields())
                    .await?,
            ))
        }
        pub async fn $create(
            State(state): State<AppState>,
            acc: Accountability,
            q: QueryPairs,
            JsonBody(body): JsonBody,
        ) -> Result<Json<Value>, ApiError> {
            Ok(data(
                state
                    .auth
                    .create(&acc, collection($name), body, &q.fields())
                    .await?,
            ))
        }
        pub async fn $update(
            State(state): State<AppState>,
            acc: Accountability,
            q: QueryPairs,
            ItemId(id): ItemId,
            JsonBody(body): JsonBody,
        ) -> Result<Json<Value>, ApiError> {
            Ok(data(
                state
                    .auth
                    .update(&acc, collection($name), &id, body, &q.fields())
                    .await?,
            ))
        }
        pub async fn $delete(
            State(state): State<AppState>,
            acc: Accountability,
            ItemId(id): ItemId,
        ) -> Result<Response, ApiError> {
            state.auth.delete(&acc, collection($name), &id).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
    };
}

item_routes!(
    "users",
    list_users,
    get_user,
    create_user,
    update_user,
    delete_user
);
item_routes!(
    "roles",
    list_roles,
    get_role,
    create_role,
    update_role,
    delete_role
);
item_routes!(
    "policies",
    list_policies,
    get_policy,
    create_policy,
    update_policy,
    delete_policy
);

pub async fn read_settings(
    State(state): State<AppState>,
    acc: Accountability,
    q: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    Ok(data(state.auth.read_settings(&acc, &q.fields()).await?))
}

pub async fn update_settings(
    State(state): State<AppState>,
    acc: Accountability,
    q: QueryPairs,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    Ok(data(
        state.auth.update_settings(&acc, body, &q.fields()).await?,
    ))
}

/// Collection permissions live in Directus, not here; say so in Directus's envelope.
pub async fn permissions(
    State(state): State<AppState>,
    acc: Accountability,
) -> Result<Response, ApiError> {
    state.auth.require_admin(&acc).await?;
    Err(ApiError::payload(
        "Collection permissions are not managed by gatehouse; manage them in Directus",
    ))
}
