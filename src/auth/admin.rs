//! The admin API over Directus's tables (`/users`, `/roles`, `/policies`, `/permissions`) and
//! the current user: the generic list, read, create, update and delete, with each
//! collection's own rules (what a payload may hold, how a row reads back, what a change must
//! check or end) in `users`, `roles`, `policies` and `permissions` (integer keys, its own
//! create, read, update and delete); settings are in `super::settings`. Directus:
//! `api/src/services/items.ts` and the services named in each module.

mod aliases;
mod permissions;
mod policies;
mod roles;
mod scoped;
mod users;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::last_admin::Change;
use super::permissions::collection_forbidden;
use super::Error;
use super::{uuid_of, Accountability, Auth};
use crate::error::ApiError;
use crate::store::{
    Collection, Item, Kind, ListQuery, WriteOp, PERMISSIONS, POLICIES, ROLES, USERS,
};

pub use policies::PUBLIC_POLICY;
pub use users::{check_password_length, conceal, MASK, MAX_PASSWORD_CHARS, STATUSES};

/// The collections the admin API serves; each has rules of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Users,
    Roles,
    Policies,
    /// Integer keys: served by `permissions`, dispatched to from each operation.
    Permissions,
}

impl Resource {
    /// The URL segment: `/users`, `/roles`, `/policies`, `/permissions`.
    pub fn from_path(segment: &str) -> Option<Resource> {
        match segment {
            "users" => Some(Resource::Users),
            "roles" => Some(Resource::Roles),
            "policies" => Some(Resource::Policies),
            "permissions" => Some(Resource::Permissions),
            _ => None,
        }
    }

    pub fn collection(self) -> &'static Collection {
        match self {
            Resource::Users => &USERS,
            Resource::Roles => &ROLES,
            Resource::Policies => &POLICIES,
            Resource::Permissions => &PERMISSIONS,
        }
    }
}

/// `/permissions` has integer keys and its own operations (`permissions`), which each uuid
/// operation dispatches to before it reads a uuid; reaching a uuid step with it is a bug.
fn integer_keyed() -> Error {
    ApiError::internal(anyhow::anyhow!(
        "BUG: directus_permissions reached an operation on uuid keys"
    ))
    .into()
}

/// Which fields a read returns (`fields` query parameter); none means `*`.
///
/// An admin's items read it as Directus does, relations and wildcard segments included
/// (`aliases`); reads through permissions use `apply` and `nested` (`scoped`), and so does
/// `/settings`.
#[derive(Debug, Clone, Default)]
pub struct Fields(pub Vec<String>);

impl Fields {
    fn wants_all(&self) -> bool {
        self.0.is_empty() || self.0.iter().any(|f| f.split('.').next() == Some("*"))
    }

    /// Keeps the fields asked for (a dotted path keeps its first field).
    pub(super) fn apply(&self, item: Item) -> Item {
        if self.wants_all() {
            return item;
        }
        item.into_iter()
            .filter(|(k, _)| {
                self.0
                    .iter()
                    .any(|f| f.split('.').next() == Some(k.as_str()))
            })
            .collect()
    }

    /// The selection inside the relation `field`: from `field.<x>` and from `*.<x>`.
    fn nested(&self, field: &str) -> Option<Fields> {
        let prefix = format!("{field}.");
        let subs: Vec<String> = self
            .0
            .iter()
            .filter_map(|f| f.strip_prefix(&prefix).or_else(|| f.strip_prefix("*.")))
            .map(str::to_string)
            .collect();
        (!subs.is_empty()).then_some(Fields(subs))
    }
}

/// Validates a JSON value against a column kind, with Directus-like messages.
fn check_kind(c: &Collection, field: &str, v: &Value) -> Result<(), Error> {
    let Some(kind) = c.kind(field) else {
        return Err(ApiError::payload(format!("\"{field}\" is not a field of {}", c.name)).into());
    };
    let ok = match (kind, v) {
        (_, Value::Null) => true,
        (Kind::Text, Value::String(s)) => s.len() <= 65_535,
        (Kind::Uuid, Value::String(s)) => Uuid::parse_str(s).is_ok(),
        (Kind::Json, _) => v.to_string().len() <= 65_535,
        (Kind::Bool, Value::Bool(_)) => true,
        (Kind::Int, Value::Number(n)) => n.is_i64(),
        (Kind::Timestamp, v) => crate::store::parse_ts(v).is_some(),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        let want = match kind {
            Kind::Uuid => "a UUID",
            Kind::Bool => "a boolean",
            Kind::Int => "an integer",
            Kind::Timestamp => "a date",
            _ => "a string",
        };
        Err(ApiError::payload(format!("\"{field}\" must be {want}")).into())
    }
}

/// Whether a JSON value holds a NUL character in any key or string, at any depth.
pub fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// A write payload: an object without NUL characters. SECURITY: PostgreSQL refuses NUL in
/// text (`invalid byte sequence`), which would turn any such payload into a 500; it is
/// refused here, before the database, on both backends.
pub(super) fn as_object(body: Value) -> Result<Map<String, Value>, Error> {
    if has_nul(&body) {
        return Err(ApiError::payload("Payload must not contain NUL characters").into());
    }
    match body {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::payload("Payload must be an object").into()),
    }
}

impl Auth {
    /// `require_admin` for a collection of the admin API. A caller without admin access is
    /// refused as Directus refuses a collection it has no permission on, with its reason
    /// (`api/src/permissions/modules/process-ast/utils/validate-path/create-error.ts`); users
    /// keep the plain `FORBIDDEN` (their own reads and updates go through `scoped`).
    pub async fn require_admin_of(&self, acc: &Accountability, r: Resource) -> Result<(), Error> {
        match r {
            Resource::Users => self.require_admin(acc).await,
            _ if self.is_admin(acc).await? => Ok(()),
            _ => Err(collection_forbidden("", r.collection().name).into()),
        }
    }

    /// `GET /users`, `/roles`, `/policies`. Admins read everything; other callers read users
    /// and roles through their permissions (`scoped`), and nothing else. A filter is
    /// evaluated in memory over the rows (a plain `_eq` on a text column narrows them in SQL).
    pub async fn list(
        &self,
        acc: &Accountability,
        r: Resource,
        filter: Option<Value>,
        limit: Option<i64>,
        offset: Option<i64>,
        fields: &Fields,
    ) -> Result<Value, Error> {
        let admin = self.is_admin(acc).await?;
        if !admin && r == Resource::Permissions {
            return Err(super::permissions::collection_forbidden("", PERMISSIONS.name).into());
        }
        if !admin && !matches!(r, Resource::Users | Resource::Roles) {
            return Err(collection_forbidden("", r.collection().name).into());
        }
        let c = r.collection();
        // No `limit` is Directus's `QUERY_LIMIT_DEFAULT` (100), `-1` every row
        // (`api/src/database/run-ast/lib/get-db-query.ts`).
        let limit = match limit {
            None => Some(aliases::NESTED_LIMIT as i64),
            Some(l) => Some(l).filter(|l| *l >= 0),
        };
        let offset = offset.unwrap_or(0).max(0);
        let rule = match &filter {
            Some(f) => Some(self.query_rule(acc, c, f).await?),
            None => None,
        };
        let plan = if admin {
            None
        } else {
            Some(self.read_plan(acc, r, fields, rule.as_ref()).await?)
        };
        if rule.is_none() && plan.is_none() {
            let q = ListQuery {
                limit,
                offset: Some(offset),
                ..Default::default()
            };
            let rows = self.store.items.items_list(c, &q).await?;
            return Ok(Value::Array(self.render(r, rows, fields).await?));
        }
        let narrow = scoped::narrowing(c, filter.as_ref());
        let q = scoped::Listing {
            rule,
            narrow,
            offset,
            limit,
        };
        let out = self.list_filtered(r, q, plan, fields).await?;
        Ok(Value::Array(out))
    }

    pub async fn get(
        &self,
        acc: &Accountability,
        r: Resource,
        id: &str,
        fields: &Fields,
    ) -> Result<Value, Error> {
        if r == Resource::Permissions {
            return self.get_permission(acc, id, fields).await;
        }
        if self.is_admin(acc).await? {
            let key = Uuid::parse_str(id).map_err(|_| ApiError::Forbidden)?;
            return self.get_unchecked(r, key, fields).await;
        }
        if !matches!(r, Resource::Users | Resource::Roles) {
            return Err(collection_forbidden("", r.collection().name).into());
        }
        let plan = self.read_plan(acc, r, fields, None).await?;
        let key = Uuid::parse_str(id).map_err(|_| ApiError::Forbidden)?;
        let row = self
            .store
            .items
            .item_get(r.collection(), &key.to_string().into())
            .await?;
        self.get_scoped(r.collection(), &plan, row).await
    }

    /// `POST /users`, `/roles`, `/policies`: one item or an array of them, all or nothing
    /// (Directus creates an array in one transaction, `api/src/services/items.ts`
    /// `createMany`). Every item is checked first, then every row is written in one
    /// store transaction.
    pub async fn create(
        &self,
        acc: &Accountability,
        r: Resource,
        body: Value,
        fields: &Fields,
    ) -> Result<Value, Error> {
        if r == Resource::Permissions {
            return self.create_permissions(acc, body, fields).await;
        }
        self.require_admin_of(acc, r).await?;
        match body {
            Value::Array(items) => {
                let mut ids = Vec::with_capacity(items.len());
                let mut ops = Vec::new();
                for item in items {
                    let (id, item_ops) = self.create_ops(r, item).await?;
                    ids.push(id);
                    ops.extend(item_ops);
                }
                if !ops.is_empty() {
                    self.store.items.items_write(&ops).await?;
                }
                // The created rows in the order sent, read and rendered together.
                let keys: Vec<String> = ids.iter().map(Uuid::to_string).collect();
                let mut rows = self
                    .rows_in(r.collection(), r.collection().pk, keys, None)
                    .await?;
                rows.sort_by_key(|row| {
                    let id = uuid_of(row, r.collection().pk);
                    ids.iter().position(|i| Some(*i) == id)
                });
                Ok(Value::Array(self.render(r, rows, fields).await?))
            }
            other => self.create_one(r, other, fields).await,
        }
    }

    /// Creates one item (and a role's nested policies) in one store transaction.
    async fn create_one(&self, r: Resource, body: Value, fields: &Fields) -> Result<Value, Error> {
        let (id, ops) = self.create_ops(r, body).await?;
        self.store.items.items_write(&ops).await?;
        self.get_unchecked(r, id, fields).await
    }

    /// Checks one item to create and returns its key and the rows to write: the item, then
    /// for a role the nested policies and their `directus_access` rows.
    async fn create_ops(&self, r: Resource, body: Value) -> Result<(Uuid, Vec<WriteOp>), Error> {
        let mut body = as_object(body)?;
        self.strip_unchanged_aliases(r.collection(), None, &mut body)
            .await?;
        let id = match body.get("id") {
            Some(Value::String(s)) => {
                Uuid::parse_str(s).map_err(|_| ApiError::payload("\"id\" must be a UUID"))?
            }
            _ => Uuid::new_v4(),
        };
        body.insert("id".into(), Value::from(id.to_string()));
        let c = r.collection();
        let mut nested = Vec::new();
        let item = match r {
            Resource::Users => {
                let mut item = self.user_payload(body, true).await?;
                item.entry("status").or_insert(Value::from("active"));
                item.entry("provider").or_insert(Value::from("default"));
                item
            }
            Resource::Roles => {
                let policies = body.remove("policies");
                let item = self.generic_payload(c, body, true)?;
                self.check_role_parent(id, &item).await?;
                if let Some(policies) = policies {
                    nested = self.attach_policies(id, policies).await?;
                }
                item
            }
            Resource::Policies => self.generic_payload(c, body, true)?,
            Resource::Permissions => return Err(integer_keyed()),
        };
        let mut ops = vec![WriteOp::Insert { c, item }];
        ops.extend(nested);
        Ok((id, ops))
    }

    /// Reads one item as the API shows it; a missing item is 403, as Directus answers, so
    /// ids cannot be probed.
    async fn get_unchecked(&self, r: Resource, id: Uuid, fields: &Fields) -> Result<Value, Error> {
        let item = self
            .store
            .items
            .item_get(r.collection(), &id.to_string().into())
            .await?
            .ok_or(ApiError::Forbidden)?;
        let mut rendered = self.render(r, vec![item], fields).await?;
        rendered.pop().ok_or_else(|| ApiError::Forbidden.into())
    }

    /// Items as the admin API shows them, as Directus 12.4.0 does: the `fields` selection
    /// (every column and alias by default) with relations expanded, users concealed and CSV
    /// columns as arrays (`aliases`). All rows are rendered together, so a list costs a few
    /// reads per relation of the selection, not per row.
    async fn render(
        &self,
        r: Resource,
        rows: Vec<Item>,
        fields: &Fields,
    ) -> Result<Vec<Value>, Error> {
        self.render_items(r.collection(), rows, fields, aliases::View::ADMIN)
            .await
    }

    pub(super) fn generic_payload(
        &self,
        c: &'static Collection,
        body: Map<String, Value>,
        creating: bool,
    ) -> Result<Item, Error> {
        let mut body = body;
        if c.name == POLICIES.name {
            policies::ip_access_in(&mut body)?;
        }
        let mut item = Item::new();
        for (k, v) in body {
            if k == "id" && !creating {
                continue;
            }
            check_kind(c, &k, &v)?;
            item.insert(k, v);
        }
        if creating && c.kind("name").is_some() && !item.get("name").is_some_and(Value::is_string) {
            return Err(ApiError::payload("\"name\" is required").into());
        }
        Ok(item)
    }

    pub async fn update(
        &self,
        acc: &Accountability,
        r: Resource,
        id: &str,
        body: Value,
        fields: &Fields,
    ) -> Result<Value, Error> {
        if r == Resource::Permissions {
            return self.update_permission(acc, id, body, fields).await;
        }
        if !self.is_admin(acc).await? {
            if r != Resource::Users {
                return Err(collection_forbidden("", r.collection().name).into());
            }
            // A user through the caller's update permissions, read back through its read ones.
            let id = Uuid::parse_str(id).map_err(|_| ApiError::Forbidden)?;
            let body = self
                .check_update_as_caller(acc, id, as_object(body)?)
                .await?;
            self.update_user(id, body, None).await?;
            let plan = self.read_plan(acc, r, fields, None).await?;
            let row = self
                .store
                .items
                .item_get(&USERS, &id.to_string().into())
                .await?;
            return self.get_scoped(&USERS, &plan, row).await;
        }
        let id = Uuid::parse_str(id).map_err(|_| ApiError::Forbidden)?;
        let c = r.collection();
        if self
            .store
            .items
            .item_get(c, &id.to_string().into())
            .await?
            .is_none()
        {
            return Err(ApiError::Forbidden.into());
        }
        let mut body = as_object(body)?;
        if r != Resource::Users {
            // Users: in `update_user`, which `/users/me` shares.
            self.strip_unchanged_aliases(c, Some(&id.to_string()), &mut body)
                .await?;
        }
        let mut nested = None;
        match r {
            Resource::Users => {
                self.update_user(id, body, None).await?;
                return self.get_unchecked(r, id, fields).await;
            }
            Resource::Policies => {
                if body.get("admin_access") == Some(&Value::Bool(false)) {
                    let change = Change::PolicyAdmin {
                        id,
                        admin_access: false,
                    };
                    self.keep_an_admin(&change).await?;
                }
            }
            Resource::Roles => {
                // Before the last-admin check, as Directus validates the nesting first.
                self.check_role_parent(id, &body).await?;
                if body.contains_key("parent") {
                    let change = Change::RoleParent {
                        id,
                        parent: uuid_of(&body, "parent"),
                    };
                    self.keep_an_admin(&change).await?;
                }
                nested = body.remove("policies");
            }
            Resource::Permissions => return Err(integer_keyed()),
        }
        let patch = self.generic_payload(c, body, false)?;
        // The row and its nested policies together, all or nothing.
        let mut ops = vec![WriteOp::Update {
            c,
            id: id.to_string().into(),
            patch,
        }];
        if let Some(p) = nested {
            ops.extend(self.attach_policies(id, p).await?);
        }
        self.store.items.items_write(&ops).await?;
        self.get_unchecked(r, id, fields).await
    }

    pub async fn delete(&self, acc: &Accountability, r: Resource, id: &str) -> Result<(), Error> {
        if r == Resource::Permissions {
            return self.delete_permission(acc, id).await;
        }
        self.require_admin_of(acc, r).await?;
        let id = Uuid::parse_str(id).map_err(|_| ApiError::Forbidden)?;
        let mut ops = Vec::new();
        let change = match r {
            Resource::Users => {
                if acc.user == Some(id) {
                    return Err(ApiError::payload("You cannot delete your own user").into());
                }
                Change::UserDeleted(id)
            }
            Resource::Policies => {
                if id.to_string() == PUBLIC_POLICY {
                    return Err(ApiError::payload("The public policy cannot be deleted").into());
                }
                Change::PolicyDeleted(id)
            }
            Resource::Roles => Change::RoleDeleted(id),
            Resource::Permissions => return Err(integer_keyed()),
        };
        self.keep_an_admin(&change).await?;
        match r {
            Resource::Users => {
                self.store.sessions.sessions_delete_user(id, None).await?;
            }
            // Directus detaches a role's children before deleting it; both in one transaction.
            Resource::Roles => ops.extend(self.detach_children(id).await?),
            Resource::Policies => {}
            Resource::Permissions => return Err(integer_keyed()),
        }
        ops.push(WriteOp::Delete {
            c: r.collection(),
            id: id.to_string().into(),
        });
        let written = self.store.items.items_write(&ops).await?;
        if written.last() != Some(&true) {
            return Err(ApiError::Forbidden.into());
        }
        Ok(())
    }
}
