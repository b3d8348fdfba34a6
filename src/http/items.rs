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

/// A filter value as the column compares it. Query strings carry only text, so, as Directus's
/// filter parsing and the database do, `true`/`false` (and `1`/`0`) compare with a boolean,
/// digits with an integer and a date with a timestamp; numbers and booleans sent in the JSON
/// form to a text column compare as their text. What the column cannot hold is 400
/// `INVALID_QUERY`, never a database error. A dynamic value (`$CURRENT_USER`, `$NOW(-1 day)`)
/// is left for the evaluator.
fn coerce(c: &Collection, field: &str, op: &str, value: Value) -> Result<Value, ApiError> {
    let Some(kind) = c.kind(field) else {
        return Ok(value);
    };
    if value.as_str().is_some_and(|s| s.starts_with('$')) {
        return Ok(value);
    }
    let wrong =
        |want: &str| ApiError::query(format!("The filter value for \"{field}\" has to be {want}"));
    match (kind, value) {
        (_, Value::Null) => Ok(Value::Null),
        (_, Value::String(s)) if op == "_eq" && s == "null" => Ok(Value::Null),
        // Directus's `api/src/utils/validate-query.ts` (validateFilterPrimitive).
        (_, Value::Array(_) | Value::Object(_)) => Err(ApiError::query(format!(
            "The filter value for \"{op}\" has to be a string, number, or boolean"
        ))),
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

/// The operators whose value is one value of the column's kind.
const SCALAR_OPS: &[&str] = &["_eq", "_neq", "_gt", "_gte", "_lt", "_lte"];
/// The operators whose value is a list (or a comma-separated string) of them.
const LIST_OPS: &[&str] = &["_in", "_nin", "_between", "_nbetween"];

/// Coerces the values of a filter object to the kinds of the columns they compare with,
/// through `_and`/`_or` and into the relations gatehouse knows (`role` on users, `parent`
/// on roles). Fields and operators it does not know are left for the evaluator to refuse.
fn coerce_filter(c: &Collection, f: Value, depth: usize) -> Result<Value, ApiError> {
    let Value::Object(top) = f else {
        return Ok(f);
    };
    if depth > 16 {
        return Err(ApiError::query("The filter is nested too deeply"));
    }
    let mut out = serde_json::Map::new();
    for (key, v) in top {
        let v = match (key.as_str(), v) {
            ("_and" | "_or", Value::Array(items)) => Value::Array(
                items
                    .into_iter()
                    .map(|i| coerce_filter(c, i, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            (field, Value::Object(ops)) if c.kind(field).is_some() => {
                let related = match (c.name, field) {
                    ("directus_users", "role") | ("directus_roles", "parent") => {
                        Some(&crate::store::ROLES)
                    }
                    _ => None,
                };
                if related.is_some() && ops.keys().any(|k| !k.starts_with('_')) {
                    coerce_filter(related.unwrap_or(c), Value::Object(ops), depth + 1)?
                } else {
                    let mut m = serde_json::Map::new();
                    for (op, value) in ops {
                        let value = if SCALAR_OPS.contains(&op.as_str()) {
                            coerce(c, field, &op, value)?
                        } else if LIST_OPS.contains(&op.as_str()) {
                            match value {
                                Value::Array(list) => Value::Array(
                                    list.into_iter()
                                        .map(|x| coerce(c, field, "_eq", x))
                                        .collect::<Result<_, _>>()?,
                                ),
                                Value::String(s) if !s.starts_with('$') => Value::Array(
                                    s.split(',')
                                        .map(|x| coerce(c, field, "_eq", Value::from(x)))
                                        .collect::<Result<_, _>>()?,
                                ),
                                other => other,
                            }
                        } else {
                            value
                        };
                        m.insert(op, value);
                    }
                    Value::Object(m)
                }
            }
            (_, v) => v,
        };
        out.insert(key, v);
    }
    Ok(Value::Object(out))
}

/// The `filter` query parameter, in either form (`filter[<field>][<op>]=<value>` or the JSON
/// form that @directus/sdk sends), its values coerced to the columns' kinds.
fn query_filter(c: &Collection, q: &QueryPairs) -> Result<Option<Value>, ApiError> {
    for (k, v) in &q.0 {
        // SECURITY: a NUL reaches no column (PostgreSQL would fail the whole query).
        if (k == "filter" || k.starts_with("filter[")) && (k.contains('\0') || v.contains('\0')) {
            return Err(ApiError::payload(
                "Invalid query. NUL characters are not allowed",
            ));
        }
    }
    let Some(f) =
        crate::auth::permissions::filter::from_query(&q.0).map_err(|e| ApiError::query(e.0))?
    else {
        return Ok(None);
    };
    // The JSON form can also spell a NUL as an escape.
    if crate::auth::admin::has_nul(&f) {
        return Err(ApiError::payload(
            "Invalid query. NUL characters are not allowed",
        ));
    }
    coerce_filter(c, f, 0).map(Some)
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
            let filter = query_filter($r.collection(), &q)?;
            Ok(data(
                state
                    .auth
                    .list(&acc, $r, filter, limit, offset, &q.fields())
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
