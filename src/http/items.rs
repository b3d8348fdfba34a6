//! `/users`, `/users/me`, `/roles`, `/policies`, `/settings`, `/permissions`: Directus's
//! item shapes (`{"data": …}`), admin only except the caller's own profile.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::extract::{ItemId, JsonBody, QueryPairs};
use super::AppState;
use crate::auth::admin::Resource;
use crate::auth::Accountability;
use crate::error::ApiError;
use crate::store::{format_ts, parse_ts, Collection, Kind};

fn data(v: Value) -> Json<Value> {
    Json(json!({ "data": v }))
}

/// One filter condition: `_eq` (a `null` value means IS NULL) or `_null: true`, its value
/// coerced to the column's kind.
fn condition(
    c: &Collection,
    field: &str,
    op: &str,
    value: Value,
) -> Result<(String, Value), ApiError> {
    let unsupported = || {
        ApiError::payload(format!("Invalid query. Unsupported filter \"{op}\" on \"{field}\"; gatehouse supports _eq and _null: true"))
    };
    match op {
        "_eq" if value == "null" => Ok((field.to_string(), Value::Null)),
        "_eq" => Ok((field.to_string(), coerce(c, field, value)?)),
        "_null" if value == true || value == "true" => Ok((field.to_string(), Value::Null)),
        _ => Err(unsupported()),
    }
}

/// A filter value as the column compares it. Query strings carry only text, so, as Directus's
/// filter parsing and the database do, `true`/`false` (and `1`/`0`) compare with a boolean,
/// digits with an integer and a date with a timestamp; numbers and booleans sent in the JSON
/// form to a text column compare as their text. What the column cannot hold is 400
/// `INVALID_QUERY`, never a database error. Values reach the store only in these shapes.
fn coerce(c: &Collection, field: &str, value: Value) -> Result<Value, ApiError> {
    let Some(kind) = c.kind(field) else {
        // `Auth::list` refuses the unknown field.
        return Ok(value);
    };
    let wrong =
        |want: &str| ApiError::query(format!("The filter value for \"{field}\" has to be {want}"));
    match (kind, value) {
        (_, Value::Null) => Ok(Value::Null),
        // Directus's `api/src/utils/validate-query.ts` (validateFilterPrimitive).
        (_, Value::Array(_) | Value::Object(_)) => Err(ApiError::query(
            "The filter value for \"_eq\" has to be a string, number, or boolean",
        )),
        (Kind::Json, v) => Ok(v),
        (Kind::Text | Kind::Uuid, Value::String(s)) => Ok(Value::String(s)),
        (Kind::Text | Kind::Uuid, v) => Ok(Value::String(v.to_string())),
        (Kind::Bool, Value::Bool(b)) => Ok(Value::Bool(b)),
        (Kind::Bool, v) => match v
            .as_str()
            .map_or_else(|| v.to_string(), str::to_string)
            .as_str()
        {
            "true" | "1" => Ok(Value::Bool(true)),
            "false" | "0" => Ok(Value::Bool(false)),
            _ => Err(wrong("a boolean")),
        },
        (Kind::Int, Value::Number(n)) if n.is_i64() => Ok(Value::Number(n)),
        (Kind::Int, Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| wrong("an integer")),
        (Kind::Int, _) => Err(wrong("an integer")),
        (Kind::Timestamp, v) => parse_date(&v).map(format_ts).ok_or_else(|| wrong("a date")),
    }
}

/// A timestamp as the store reads one, or a bare date (midnight UTC).
fn parse_date(v: &Value) -> Option<DateTime<Utc>> {
    parse_ts(v).or_else(|| {
        let day = chrono::NaiveDate::parse_from_str(v.as_str()?.trim(), "%Y-%m-%d").ok()?;
        Some(day.and_time(chrono::NaiveTime::MIN).and_utc())
    })
}

/// `filter[<field>][<op>]=<value>` pairs and the JSON form `filter={"<field>":{"<op>":<value>}}`
/// (what @directus/sdk sends). Anything else is refused rather than silently ignored.
fn filters(c: &Collection, q: &QueryPairs) -> Result<Vec<(String, Value)>, ApiError> {
    let mut out = Vec::new();
    for (k, v) in &q.0 {
        // SECURITY: a NUL reaches no column (PostgreSQL would fail the whole query).
        if (k == "filter" || k.starts_with("filter[")) && (k.contains('\0') || v.contains('\0')) {
            return Err(ApiError::payload(
                "Invalid query. NUL characters are not allowed",
            ));
        }
        if k == "filter" {
            let parsed: Value = serde_json::from_str(v)
                .map_err(|_| ApiError::payload("Invalid query. \"filter\" must be valid JSON"))?;
            // The JSON form can also spell a NUL as an escape.
            if crate::auth::admin::has_nul(&parsed) {
                return Err(ApiError::payload(
                    "Invalid query. NUL characters are not allowed",
                ));
            }
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
                    out.push(condition(c, &field, &op, value)?);
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
            c,
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

/// `limit` (`-1`: no limit) and `offset`, bounded as Directus's `api/src/utils/validate-query.ts`
/// bounds them (PostgreSQL refuses a negative offset; SQLite would read it as 0).
fn limit_offset(q: &QueryPairs) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let (limit, offset) = (number(q, "limit")?, number(q, "offset")?);
    if limit.is_some_and(|l| l < -1) {
        return Err(ApiError::query(
            "\"limit\" must be greater than or equal to -1",
        ));
    }
    if offset.is_some_and(|o| o < 0) {
        return Err(ApiError::query(
            "\"offset\" must be greater than or equal to 0",
        ));
    }
    Ok((limit, offset))
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
    ($r:expr, $list:ident, $get:ident, $create:ident, $update:ident, $delete:ident) => {
        pub async fn $list(
            State(state): State<AppState>,
            acc: Accountability,
            q: QueryPairs,
        ) -> Result<Json<Value>, ApiError> {
            let (limit, offset) = limit_offset(&q)?;
            let filters = filters($r.collection(), &q)?;
            Ok(data(
                state
                    .auth
                    .list(&acc, $r, filters, limit, offset, &q.fields())
                    .await?,
            ))
        }
        pub async fn $get(
            State(state): State<AppState>,
            acc: Accountability,
            q: QueryPairs,
            ItemId(id): ItemId,
        ) -> Result<Json<Value>, ApiError> {
            Ok(data(state.auth.get(&acc, $r, &id, &q.fields()).await?))
        }
        pub async fn $create(
            State(state): State<AppState>,
            acc: Accountability,
            q: QueryPairs,
            JsonBody(body): JsonBody,
        ) -> Result<Json<Value>, ApiError> {
            Ok(data(state.auth.create(&acc, $r, body, &q.fields()).await?))
        }
        pub async fn $update(
            State(state): State<AppState>,
            acc: Accountability,
            q: QueryPairs,
            ItemId(id): ItemId,
            JsonBody(body): JsonBody,
        ) -> Result<Json<Value>, ApiError> {
            Ok(data(
                state.auth.update(&acc, $r, &id, body, &q.fields()).await?,
            ))
        }
        pub async fn $delete(
            State(state): State<AppState>,
            acc: Accountability,
            ItemId(id): ItemId,
        ) -> Result<Response, ApiError> {
            state.auth.delete(&acc, $r, &id).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
    };
}

item_routes!(
    Resource::Users,
    list_users,
    get_user,
    create_user,
    update_user,
    delete_user
);
item_routes!(
    Resource::Roles,
    list_roles,
    get_role,
    create_role,
    update_role,
    delete_role
);
item_routes!(
    Resource::Policies,
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
