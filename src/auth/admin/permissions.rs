//! `directus_permissions` through the admin API (`/permissions`): rows for any collection,
//! created, read, updated and deleted by admins, in Directus's shapes (Directus:
//! `api/src/controllers/permissions.ts`, `api/src/services/permissions.ts`, and the
//! `cast-csv`/`cast-json` fields of `directus_permissions` in `@directus/system-data`).
//!
//! The key is the database's integer (`id integer autoincrement`): a create gets the id the
//! database assigned (`ItemStore::items_write_keys`), an array of them in one transaction. A
//! key that is not an integer is 403 `FORBIDDEN`, as Directus's `validateKeys` answers, before
//! the caller's access is looked at.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use uuid::Uuid;

use super::super::permissions::collection_forbidden;
use super::super::{Accountability, Auth, Error};
use super::{as_object, check_kind, has_nul, Fields, Resource};
use crate::error::{ApiError, Invalid};
use crate::store::{Filter, Item, ListQuery, WriteOp, PERMISSIONS, POLICIES};

/// The actions a permission row can grant (Directus: `PermissionsAction` in
/// `packages/types/src/permissions.ts`). Directus stores any text here; gatehouse refuses
/// the rest, which would grant nothing.
const ACTIONS: &[&str] = &["create", "read", "update", "delete", "share"];

/// The columns a create must set (`NOT NULL` without a default), in Directus's order.
const REQUIRED: &[&str] = &["collection", "action", "policy"];

/// The JSON columns: an object (a filter, or preset values) or null.
const JSON_FIELDS: &[&str] = &["permissions", "validation", "presets"];

/// SECURITY: bounds on what one row may hold, so a payload cannot grow a row (and every
/// permission check that reads it) without limit. `collection` is `varchar(64)` in
/// Directus's schema; a longer value would fail on PostgreSQL as a 500.
const MAX_COLLECTION: usize = 64;
const MAX_JSON: usize = 65_535;
const MAX_FIELDS_CSV: usize = 65_535;

/// The refusal for a caller without admin access, with Directus's reason: gatehouse opens
/// `directus_permissions` to admins only.
fn refused() -> Error {
    collection_forbidden("", PERMISSIONS.name).into()
}

/// A key from a URL or a `keys` list: an integer, else 403 (Directus's `validateKeys`).
fn key_of(id: &str) -> Result<i64, Error> {
    id.parse::<i64>().map_err(|_| ApiError::Forbidden.into())
}

/// A key from a JSON body: an integer, or a string holding one.
fn key_in(v: &Value) -> Result<i64, Error> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| ApiError::Forbidden.into()),
        Value::String(s) => key_of(s),
        _ => Err(ApiError::payload("\"keys\" must be a list of keys").into()),
    }
}

fn failed(field: &str, kind: &str, valid: Option<Value>) -> Invalid {
    Invalid {
        field: field.to_string(),
        path: Vec::new(),
        kind: kind.to_string(),
        valid,
        invalid: None,
        substring: None,
    }
}

/// How a row reads back: `fields` (a comma-separated list) as an array, as Directus's
/// `cast-csv` reads it: split on commas without trimming, `""` is `[]`, null stays null.
pub(super) fn present(mut item: Item) -> Item {
    if let Some(Value::String(csv)) = item.get("fields") {
        let list: Vec<Value> = if csv.is_empty() {
            Vec::new()
        } else {
            csv.split(',').map(Value::from).collect()
        };
        item.insert("fields".into(), Value::Array(list));
    }
    item
}

/// The columns a payload sets, checked: `creating` requires `collection`, `action` and
/// `policy`. Missing and null values are reported together, as Directus's validation
/// reports them (400 `FAILED_VALIDATION`, one error each); the rest one at a time.
fn payload(body: Map<String, Value>, creating: bool) -> Result<Item, Error> {
    let mut missing = Vec::new();
    for field in REQUIRED {
        match body.get(*field) {
            None if creating => missing.push(failed(field, "required", None)),
            Some(Value::Null) => missing.push(failed(field, "nnull", None)),
            _ => {}
        }
    }
    if !missing.is_empty() {
        return Err(ApiError::Invalid(missing).into());
    }
    let mut item = Item::new();
    for (k, v) in body {
        if k == "id" {
            if creating && !v.is_null() {
                return Err(ApiError::payload("\"id\" is assigned by the database").into());
            }
            // A key does not change, as in Directus.
            continue;
        }
        let v = match k.as_str() {
            "fields" => fields_in(v)?,
            _ => v,
        };
        check_kind(&PERMISSIONS, &k, &v)?;
        match (k.as_str(), &v) {
            ("collection", Value::String(s)) if s.chars().count() > MAX_COLLECTION => {
                return Err(ApiError::payload(format!(
                    "\"collection\" must be at most {MAX_COLLECTION} characters"
                ))
                .into());
            }
            ("action", Value::String(a)) if !ACTIONS.contains(&a.as_str()) => {
                let valid = Value::from(ACTIONS.to_vec());
                return Err(ApiError::Invalid(vec![failed("action", "in", Some(valid))]).into());
            }
            (f, v) if JSON_FIELDS.contains(&f) => {
                if !(v.is_object() || v.is_null()) {
                    return Err(
                        ApiError::payload(format!("\"{f}\" must be an object or null")).into(),
                    );
                }
                if v.to_string().len() > MAX_JSON {
                    return Err(ApiError::payload(format!(
                        "\"{f}\" must be at most {MAX_JSON} bytes of JSON"
                    ))
                    .into());
                }
            }
            _ => {}
        }
        item.insert(k, v);
    }
    Ok(item)
}

/// `fields` as the column stores it: an array of field names joined with commas, or a
/// comma-separated string as given (Directus's `cast-csv` on write), or null.
fn fields_in(v: Value) -> Result<Value, Error> {
    let csv = match v {
        Value::Null => return Ok(Value::Null),
        Value::String(s) => s,
        Value::Array(list) => {
            let names: Option<Vec<&str>> = list.iter().map(Value::as_str).collect();
            names
                .ok_or_else(|| ApiError::payload("\"fields\" must be a list of field names"))?
                .join(",")
        }
        _ => {
            return Err(ApiError::payload(
                "\"fields\" must be a list of field names or a comma-separated string",
            )
            .into())
        }
    };
    if csv.len() > MAX_FIELDS_CSV {
        return Err(ApiError::payload(format!(
            "\"fields\" must be at most {MAX_FIELDS_CSV} characters as a comma-separated list"
        ))
        .into());
    }
    Ok(Value::String(csv))
}

impl Auth {
    /// A permission's `policy` must name a policy: 400 `INVALID_FOREIGN_KEY` otherwise, as
    /// gatehouse answers for a user's `role` (the database's foreign key would refuse it too;
    /// checking first names the column on both backends). `known` spares a policy checked
    /// for an earlier item of the same request.
    async fn check_policy(&self, item: &Item, known: &mut HashSet<Uuid>) -> Result<(), Error> {
        let Some(policy) = item
            .get("policy")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
        else {
            return Ok(());
        };
        if known.contains(&policy) {
            return Ok(());
        }
        let found = self
            .store
            .items
            .item_get(&POLICIES, &policy.to_string().into())
            .await?;
        if found.is_none() {
            return Err(ApiError::InvalidForeignKey {
                collection: Some(PERMISSIONS.name.into()),
                field: Some("policy".into()),
                value: Some(policy.to_string()),
            }
            .into());
        }
        known.insert(policy);
        Ok(())
    }

    /// One row as the API shows it; a missing row is 403, as for the other collections.
    async fn read_permission(&self, key: i64, fields: &Fields) -> Result<Value, Error> {
        let row = self
            .store
            .items
            .item_get(&PERMISSIONS, &Value::from(key))
            .await?
            .ok_or(ApiError::Forbidden)?;
        let mut out = self
            .render(Resource::Permissions, vec![row], fields)
            .await?;
        out.pop().ok_or_else(|| ApiError::Forbidden.into())
    }

    /// The rows with these keys that exist, in key order (what Directus's `readMany` returns
    /// after a batch).
    async fn read_permissions(&self, keys: &[i64], fields: &Fields) -> Result<Value, Error> {
        let mut keys = keys.to_vec();
        keys.sort_unstable();
        keys.dedup();
        let mut rows = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(row) = self
                .store
                .items
                .item_get(&PERMISSIONS, &Value::from(key))
                .await?
            {
                rows.push(row);
            }
        }
        Ok(Value::Array(
            self.render(Resource::Permissions, rows, fields).await?,
        ))
    }

    /// `GET /permissions/<id>`.
    pub(super) async fn get_permission(
        &self,
        acc: &Accountability,
        id: &str,
        fields: &Fields,
    ) -> Result<Value, Error> {
        let key = key_of(id)?;
        if !self.is_admin(acc).await? {
            return Err(refused());
        }
        self.read_permission(key, fields).await
    }

    /// `POST /permissions`: one row or an array of them, all or nothing (Directus's
    /// `createMany` runs in one transaction). Every item is checked, then every row is
    /// inserted in one store transaction and read back by the key the database assigned.
    pub(super) async fn create_permissions(
        &self,
        acc: &Accountability,
        body: Value,
        fields: &Fields,
    ) -> Result<Value, Error> {
        if !self.is_admin(acc).await? {
            return Err(refused());
        }
        let (items, many) = match body {
            Value::Array(items) => (items, true),
            one => (vec![one], false),
        };
        let mut known = HashSet::new();
        let mut ops = Vec::with_capacity(items.len());
        for body in items {
            let item = payload(as_object(body)?, true)?;
            self.check_policy(&item, &mut known).await?;
            ops.push(WriteOp::Insert {
                c: &PERMISSIONS,
                item,
            });
        }
        let keys = if ops.is_empty() {
            Vec::new()
        } else {
            self.store.items.items_write_keys(&ops).await?
        };
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let key = key.as_ref().and_then(Value::as_i64).ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!(
                    "directus_permissions insert returned no key"
                ))
            })?;
            out.push(self.read_permission(key, fields).await?);
        }
        if many {
            Ok(Value::Array(out))
        } else {
            out.pop()
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no row created")).into())
        }
    }

    /// `PATCH /permissions/<id>`: a missing row is 403.
    pub(super) async fn update_permission(
        &self,
        acc: &Accountability,
        id: &str,
        body: Value,
        fields: &Fields,
    ) -> Result<Value, Error> {
        let key = key_of(id)?;
        if !self.is_admin(acc).await? {
            return Err(refused());
        }
        let patch = payload(as_object(body)?, false)?;
        self.check_policy(&patch, &mut HashSet::new()).await?;
        let op = WriteOp::Update {
            c: &PERMISSIONS,
            id: Value::from(key),
            patch,
        };
        let written = self.store.items.items_write(&[op]).await?;
        if written.first() != Some(&true) {
            return Err(ApiError::Forbidden.into());
        }
        self.read_permission(key, fields).await
    }

    /// `DELETE /permissions/<id>`: 204 whether or not the row existed, as Directus answers.
    pub(super) async fn delete_permission(
        &self,
        acc: &Accountability,
        id: &str,
    ) -> Result<(), Error> {
        let key = key_of(id)?;
        if !self.is_admin(acc).await? {
            return Err(refused());
        }
        let op = WriteOp::Delete {
            c: &PERMISSIONS,
            id: Value::from(key),
        };
        self.store.items.items_write(&[op]).await?;
        Ok(())
    }

    /// `PATCH /permissions` (Directus's batch update): an array of items that each carry
    /// their `id`, or `{"keys": [...], "data": {...}}`, all or nothing. Answers the updated
    /// rows that exist; keys with no row are skipped, as Directus skips them. The `query`
    /// form is not served.
    pub async fn update_permissions(
        &self,
        acc: &Accountability,
        body: Value,
        fields: &Fields,
    ) -> Result<Value, Error> {
        if has_nul(&body) {
            return Err(ApiError::payload("Payload must not contain NUL characters").into());
        }
        let updates: Vec<(i64, Map<String, Value>)> = match body {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let mut item = as_object(item)?;
                    let Some(id) = item.remove("id").filter(|v| !v.is_null()) else {
                        return Err(ApiError::payload("Item in update misses primary key").into());
                    };
                    out.push((key_in(&id)?, item));
                }
                out
            }
            Value::Object(mut batch) => {
                let keys = batch_keys(&mut batch)?;
                let data = match batch.remove("data") {
                    Some(Value::Object(data)) => data,
                    Some(_) => {
                        return Err(ApiError::payload("\"data\" must be of type object").into())
                    }
                    None => return Err(ApiError::payload("\"data\" is required").into()),
                };
                keys.into_iter().map(|k| (k, data.clone())).collect()
            }
            _ => return Err(ApiError::payload("Payload must be an array or an object").into()),
        };
        if !self.is_admin(acc).await? {
            return Err(refused());
        }
        let mut known = HashSet::new();
        let mut ops = Vec::with_capacity(updates.len());
        let mut keys = Vec::with_capacity(updates.len());
        for (key, body) in updates {
            let patch = payload(body, false)?;
            self.check_policy(&patch, &mut known).await?;
            keys.push(key);
            ops.push(WriteOp::Update {
                c: &PERMISSIONS,
                id: Value::from(key),
                patch,
            });
        }
        if !ops.is_empty() {
            self.store.items.items_write(&ops).await?;
        }
        self.read_permissions(&keys, fields).await
    }

    /// `DELETE /permissions` (Directus's batch delete): an array of keys or `{"keys": [...]}`,
    /// in one transaction. The `query` form is not served.
    pub async fn delete_permissions(&self, acc: &Accountability, body: Value) -> Result<(), Error> {
        if has_nul(&body) {
            return Err(ApiError::payload("Payload must not contain NUL characters").into());
        }
        let keys = match body {
            Value::Array(keys) => keys.iter().map(key_in).collect::<Result<Vec<_>, _>>()?,
            Value::Object(mut batch) => batch_keys(&mut batch)?,
            _ => return Err(ApiError::payload("Payload must be an array or an object").into()),
        };
        if !self.is_admin(acc).await? {
            return Err(refused());
        }
        let ops: Vec<WriteOp> = keys
            .into_iter()
            .map(|key| WriteOp::Delete {
                c: &PERMISSIONS,
                id: Value::from(key),
            })
            .collect();
        if !ops.is_empty() {
            self.store.items.items_write(&ops).await?;
        }
        Ok(())
    }

    /// The ids of each policy's permission rows, in id order (`[]` for a policy without
    /// any): what Directus's `permissions` alias on a policy holds.
    pub async fn permission_ids_of_policies(
        &self,
        policies: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<i64>>, Error> {
        let mut out = HashMap::with_capacity(policies.len());
        for policy in policies {
            let q = ListQuery {
                filters: vec![Filter {
                    field: "policy",
                    value: Value::from(policy.to_string()),
                }],
                ..Default::default()
            };
            let rows = self.store.items.items_list(&PERMISSIONS, &q).await?;
            let ids = rows
                .iter()
                .filter_map(|r| r.get("id").and_then(Value::as_i64))
                .collect();
            out.insert(*policy, ids);
        }
        Ok(out)
    }
}

/// The `keys` of a batch body (Directus's `validateBatch`): required, a list of keys; the
/// `query` form (a filter instead of keys) is not served.
fn batch_keys(batch: &mut Map<String, Value>) -> Result<Vec<i64>, Error> {
    if batch.contains_key("query") {
        return Err(ApiError::payload(
            "gatehouse takes \"keys\" or an array, not \"query\", for batch changes to permissions",
        )
        .into());
    }
    match batch.remove("keys") {
        Some(Value::Array(keys)) => keys.iter().map(key_in).collect(),
        Some(_) => Err(ApiError::payload("\"keys\" must be an array").into()),
        None => {
            Err(ApiError::payload("\"value\" must contain at least one of [query, keys]").into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn fields_read_back_as_directus_casts_csv() {
        let row = |f: Value| present(obj(json!({ "id": 1, "fields": f })))["fields"].clone();
        assert_eq!(row(json!("*")), json!(["*"]));
        assert_eq!(row(json!("id,email")), json!(["id", "email"]));
        // Split without trimming, as Directus's `value.split(",")`.
        assert_eq!(row(json!("id, email")), json!(["id", " email"]));
        assert_eq!(row(json!("")), json!([]));
        assert_eq!(row(Value::Null), Value::Null);
    }

    #[test]
    fn fields_are_stored_as_csv() {
        assert_eq!(
            fields_in(json!(["id", "email"])).ok(),
            Some(json!("id,email"))
        );
        assert_eq!(fields_in(json!([])).ok(), Some(json!("")));
        assert_eq!(fields_in(json!("id,email")).ok(), Some(json!("id,email")));
        assert_eq!(fields_in(Value::Null).ok(), Some(Value::Null));
        assert!(fields_in(json!([1, "x"])).is_err());
        assert!(fields_in(json!({"x": 1})).is_err());
        assert!(fields_in(json!(5)).is_err());
    }

    #[test]
    fn keys_are_integers() {
        assert_eq!(key_of("17").ok(), Some(17));
        for bad in ["abc", "2.5", "", "1e0", "99999999999999999999"] {
            let e = key_of(bad).err().map(|e| e.code());
            assert_eq!(e, Some("FORBIDDEN"), "{bad}");
        }
        assert_eq!(key_in(&json!(3)).ok(), Some(3));
        assert_eq!(key_in(&json!("4")).ok(), Some(4));
        assert_eq!(
            key_in(&json!(2.5)).err().map(|e| e.code()),
            Some("FORBIDDEN")
        );
        assert_eq!(
            key_in(&json!({})).err().map(|e| e.code()),
            Some("INVALID_PAYLOAD")
        );
    }
}
