//! The current user and the admin API over Directus's tables: users, roles and policies
//! (Directus: `api/src/services/users.ts`, `roles.ts`, `policies.ts`; settings are in `settings`). Inputs are validated here against each collection's
//! known columns; passwords are hashed here; session side effects happen here.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::last_admin::Change;
use super::{str_of, uuid_of, Accountability, Auth};
use crate::error::ApiError;
use crate::store::{
    Collection, Filter, Item, Kind, ListQuery, WriteOp, ACCESS, POLICIES, ROLES, USERS,
};

pub const STATUSES: &[&str] = &[
    "draft",
    "invited",
    "unverified",
    "active",
    "suspended",
    "archived",
    "inactive-license",
];
const CONCEALED: &[&str] = &["password", "token", "tfa_secret"];
/// What a concealed field reads back as (Directus: `api/src/services/payload.ts`, `conceal`).
/// Written back, it means "unchanged"; no password or static token may equal it.
pub const MASK: &str = "**********";
/// No real password is this long; the cap keeps a login or a profile write from carrying
/// megabytes into the hasher (docs/compatibility.md).
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// What Directus's minimal app-access permissions let a user read of its own row.
const APP_READABLE: &[&str] = &[
    "id",
    "first_name",
    "last_name",
    "last_page",
    "email",
    "password",
    "location",
    "title",
    "description",
    "tags",
    "provider",
    "avatar",
    "language",
    "appearance",
    "theme_light",
    "theme_dark",
    "tfa_secret",
    "status",
    "role",
];
/// What a user may change on their own profile without admin rights.
const SELF_EDITABLE: &[&str] = &[
    "first_name",
    "last_name",
    "email",
    "password",
    "location",
    "title",
    "description",
    "tags",
    "avatar",
    "language",
    "last_page",
    "email_notifications",
    "appearance",
    "theme_dark",
    "theme_light",
    "theme_light_overrides",
    "theme_dark_overrides",
    "text_direction",
];

/// Which fields a read returns (`fields` query parameter); none means `*`.
///
/// As Directus's `api/src/utils/get-ast-from-query.ts` reads them: `*` is every field, and a
/// wildcard segment stands for every relation at that level, so `*.*` is every field with each
/// relation expanded (`role` on users, the only relation gatehouse expands) and `*,role.name`
/// every field with the role's name.
#[derive(Debug, Clone, Default)]
pub struct Fields(pub Vec<String>);

impl Fields {
    fn wants_all(&self) -> bool {
        self.0.is_empty() || self.0.iter().any(|f| f.split('.').next() == Some("*"))
    }

    /// Applies the selection; `role.<x>` asks for the role object, which `expand` fills.
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

/// Hides secret columns as Directus does: `**********` when set, null otherwise.
pub fn conceal(mut item: Item) -> Item {
    for f in CONCEALED {
        if let Some(v) = item.get_mut(*f) {
            if !v.is_null() {
                *v = Value::from(MASK);
            }
        }
    }
    item
}

/// Validates a JSON value against a column kind, with Directus-like messages.
fn check_kind(c: &Collection, field: &str, v: &Value) -> Result<(), ApiError> {
    let Some(kind) = c.kind(field) else {
        return Err(ApiError::payload(format!(
            "\"{field}\" is not a field of {}",
            c.name
        )));
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
        Err(ApiError::payload(format!("\"{field}\" must be {want}")))
    }
}

pub fn valid_email(s: &str) -> bool {
    crate::email::valid(s)
}

/// The password rule every write and login shares: not longer than `MAX_PASSWORD_CHARS`.
pub fn check_password_length(password: &str) -> Result<(), ApiError> {
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(ApiError::payload(format!(
            "\"password\" length must be less than or equal to {MAX_PASSWORD_CHARS} characters long"
        )));
    }
    Ok(())
}

/// Whether a JSON value holds a NUL character in any key or string, at any depth.
fn has_nul(v: &Value) -> bool {
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
pub(super) fn as_object(body: Value) -> Result<Map<String, Value>, ApiError> {
    if has_nul(&body) {
        return Err(ApiError::payload("Payload must not contain NUL characters"));
    }
    match body {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::payload("Payload must be an object")),
    }
}

impl Auth {
    /// `auth_password_policy` as a regex (slashes stripped; Directus: `api/src/services/users.ts`, `checkPasswordPolicy`).
    async fn check_password_policy(&self, password: &str) -> Result<(), ApiError> {
        let settings = self.settings().await?;
        let Some(policy) = str_of(&settings, "auth_password_policy").filter(|p| !p.is_empty())
        else {
            return Ok(());
        };
        let pattern = policy
            .strip_prefix('/')
            .and_then(|p| p.strip_suffix('/'))
            .unwrap_or(policy);
        let re = regex::Regex::new(pattern).map_err(ApiError::internal)?;
        if re.is_match(password) {
            Ok(())
        } else {
            Err(ApiError::FailedValidation {
                field: "password".into(),
            })
        }
    }

    /// Checks and normalises a user create/update payload; hashes `password`.
    async fn user_payload(
        &self,
        body: Map<String, Value>,
        creating: bool,
    ) -> Result<Item, ApiError> {
        let self_id = uuid_of(&body, "id");
        let mut body = body;
        // SECURITY: a concealed value written back (an admin UI saving the object it read)
        // means "unchanged", as Directus treats it; it must never become the password, the
        // static token or the TFA secret.
        body.retain(|k, v| !(CONCEALED.contains(&k.as_str()) && v.as_str() == Some(MASK)));
        let mut item = Item::new();
        for (k, v) in body {
            if k == "id" && !creating {
                continue;
            }
            check_kind(&USERS, &k, &v)?;
            item.insert(k, v);
        }
        if let Some(email) = item.get("email") {
            match email {
                Value::String(s) if valid_email(s) => {
                    let stored = crate::email::normalize(s);
                    item.insert("email".into(), Value::from(stored));
                }
                Value::Null if !creating => {}
                _ => return Err(ApiError::payload("\"email\" must be a valid email")),
            }
        }
        if let Some(status) = item.get("status") {
            if !status.as_str().is_some_and(|s| STATUSES.contains(&s)) {
                return Err(ApiError::payload(format!(
                    "\"status\" must be one of [{}]",
                    STATUSES.join(", ")
                )));
            }
        }
        if let Some(role) = uuid_of(&item, "role") {
            if self
                .store
                .item_get(&ROLES, &role.to_string().into())
                .await?
                .is_none()
            {
                return Err(ApiError::InvalidForeignKey {
                    collection: Some("directus_users".into()),
                    field: Some("role".into()),
                    value: Some(role.to_string()),
                });
            }
        }
        if let Some(tfa) = item.get("tfa_secret") {
            if !tfa.is_null() {
                return Err(ApiError::payload(
                    "\"tfa_secret\" can only be cleared (null); use the TFA endpoints to set it",
                ));
            }
        }
        match item.get("password").cloned() {
            Some(Value::String(pw)) if !pw.is_empty() => {
                check_password_length(&pw)?;
                self.check_password_policy(&pw).await?;
                item.insert("password".into(), Value::from(self.hasher.hash(&pw).await?));
            }
            Some(Value::String(_)) => {
                item.remove("password");
            }
            _ => {}
        }
        if let Some(token) = str_of(&item, "token") {
            crate::tokens::check_static_token(token)
                .map_err(|rule| ApiError::payload(format!("\"token\" {rule}")))?;
        }
        if let Some(email) = str_of(&item, "email").map(str::to_string) {
            // Case-insensitive uniqueness, as Directus's API enforces.
            let existing = self.find_user_by_email(&email).await?;
            if existing.is_some_and(|u| creating || uuid_of(&u, "id") != self_id) {
                return Err(ApiError::RecordNotUnique {
                    collection: "directus_users".into(),
                    field: "email".into(),
                    value: email,
                });
            }
        }
        Ok(item)
    }

    /// `GET /users/me` as Directus answers it without custom collection permissions:
    /// admins read every column plus the `policies` alias, app users the fields of Directus's
    /// minimal app permissions, everyone else `{"id"}` (docs/compatibility.md).
    pub async fn me(&self, acc: &Accountability, fields: &Fields) -> Result<Value, ApiError> {
        let id = acc.user.ok_or(ApiError::InvalidCredentials)?;
        let only_id = || serde_json::json!({ "id": id });
        let Some((mut user, access_ids)) = self.store.user_with_access(id).await? else {
            return Ok(only_id());
        };
        if acc.admin {
            let ids = access_ids
                .iter()
                .map(|a| Value::from(a.to_string()))
                .collect();
            user.insert("policies".into(), Value::Array(ids));
        } else if acc.app {
            user.retain(|k, _| APP_READABLE.contains(&k.as_str()));
        } else {
            return Ok(only_id());
        }
        self.render_user(user, fields).await
    }

    async fn render_user(&self, user: Item, fields: &Fields) -> Result<Value, ApiError> {
        let mut user = fields.apply(conceal(user));
        if let Some(sub) = fields.nested("role") {
            if let Some(role) = uuid_of(&user, "role") {
                if let Some(r) = self
                    .store
                    .item_get(&ROLES, &role.to_string().into())
                    .await?
                {
                    user.insert("role".into(), Value::Object(sub.apply(r)));
                }
            }
        }
        Ok(Value::Object(user))
    }

    pub async fn update_me(
        &self,
        acc: &Accountability,
        body: Value,
        fields: &Fields,
    ) -> Result<Value, ApiError> {
        let id = acc.user.ok_or(ApiError::InvalidCredentials)?;
        let body = as_object(body)?;
        if !self.is_admin(acc).await? {
            if let Some(k) = body.keys().find(|k| !SELF_EDITABLE.contains(&k.as_str())) {
                tracing::info!(field = %k, "self-update of a protected field refused");
                return Err(ApiError::Forbidden);
            }
        }
        self.update_user(id, body, acc.session.as_deref()).await?;
        self.me(acc, fields).await
    }

    /// Updates a user; a new password, email, role or a non-active status ends its sessions
    /// (all but `keep`, the caller's own session-mode session).
    async fn update_user(
        &self,
        id: Uuid,
        body: Map<String, Value>,
        keep: Option<&str>,
    ) -> Result<(), ApiError> {
        let mut body = body;
        body.insert("id".into(), Value::from(id.to_string()));
        let patch = self.user_payload(body, false).await?;
        let mut patch = patch;
        patch.remove("id");
        let before = self
            .store
            .item_get(&USERS, &id.to_string().into())
            .await?
            .ok_or(ApiError::Forbidden)?;
        let new_status = str_of(&patch, "status").filter(|s| *s != "active");
        let new_role = (patch.contains_key("role") && patch.get("role") != before.get("role"))
            .then(|| uuid_of(&patch, "role"));
        if new_status.is_some() || new_role.is_some() {
            let change = Change::User {
                id,
                status: new_status.map(str::to_string),
                role: new_role,
            };
            self.keep_an_admin(&change).await?;
        }
        self.store
            .item_update(&USERS, &id.to_string().into(), &patch)
            .await?;
        let status_ended = str_of(&patch, "status").is_some_and(|s| s != "active");
        let role_changed = patch.contains_key("role") && patch.get("role") != before.get("role");
        if status_ended || role_changed {
            self.store.sessions_delete_user(id, None).await?;
        } else if patch.contains_key("password") || patch.contains_key("email") {
            self.store.sessions_delete_user(id, keep).await?;
        }
        if status_ended {
            tracing::info!(user = %id, "user deactivated; sessions ended");
        }
        Ok(())
    }

    // ----- generic admin reads and writes -----

    pub async fn list(
        &self,
        acc: &Accountability,
        c: &'static Collection,
        filters: Vec<(String, Value)>,
        limit: Option<i64>,
        offset: Option<i64>,
        fields: &Fields,
    ) -> Result<Value, ApiError> {
        self.require_admin(acc).await?;
        let mut q = ListQuery {
            limit: limit.filter(|l| *l >= 0),
            offset,
            ..Default::default()
        };
        for (field, value) in filters {
            let Some((name, _)) = c.fields.iter().find(|(f, _)| *f == field) else {
                return Err(ApiError::payload(format!(
                    "Invalid query. \"{field}\" is not a field of {}",
                    c.name
                )));
            };
            q.filters.push(Filter { field: name, value });
        }
        let rows = self.store.items_list(c, &q).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.render(c, row, fields).await?);
        }
        Ok(Value::Array(out))
    }

    pub async fn get(
        &self,
        acc: &Accountability,
        c: &'static Collection,
        id: &str,
        fields: &Fields,
    ) -> Result<Value, ApiError> {
        self.require_admin(acc).await?;
        let key = Uuid::parse_str(id).map_err(|_| ApiError::Forbidden)?;
        self.get_unchecked(c, key, fields).await
    }

    /// `POST /users`, `/roles`, `/policies`: one item or an array of them, all or nothing
    /// (Directus creates an array in one transaction, `api/src/services/items.ts`
    /// `createMany`). Every item is checked first, then every row is written in one
    /// store transaction.
    pub async fn create(
        &self,
        acc: &Accountability,
        c: &'static Collection,
        body: Value,
        fields: &Fields,
    ) -> Result<Value, ApiError> {
        self.require_admin(acc).await?;
        match body {
            Value::Array(items) => {
                let mut ids = Vec::with_capacity(items.len());
                let mut ops = Vec::new();
                for item in items {
                    let (id, item_ops) = self.create_ops(c, item).await?;
                    ids.push(id);
                    ops.extend(item_ops);
                }
                if !ops.is_empty() {
                    self.store.items_write(&ops).await?;
                }
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    out.push(self.get_unchecked(c, id, fields).await?);
                }
                Ok(Value::Array(out))
            }
            other => self.create_one(c, other, fields).await,
        }
    }

    /// Creates one item (and a role's nested policies) in one store transaction.
    async fn create_one(
        &self,
        c: &'static Collection,
        body: Value,
        fields: &Fields,
    ) -> Result<Value, ApiError> {
        let (id, ops) = self.create_ops(c, body).await?;
        self.store.items_write(&ops).await?;
        self.get_unchecked(c, id, fields).await
    }

    /// Checks one item to create and returns its key and the rows to write: the item, then
    /// for a role the nested policies and their `directus_access` rows.
    async fn create_ops(
        &self,
        c: &'static Collection,
        body: Value,
    ) -> Result<(Uuid, Vec<WriteOp>), ApiError> {
        let mut body = as_object(body)?;
        let id = match body.get("id") {
            Some(Value::String(s)) => {
                Uuid::parse_str(s).map_err(|_| ApiError::payload("\"id\" must be a UUID"))?
            }
            _ => Uuid::new_v4(),
        };
        body.insert("id".into(), Value::from(id.to_string()));
        let nested_policies = if c.name == ROLES.name {
            body.remove("policies")
        } else {
            None
        };
        let item = if c.name == USERS.name {
            let mut item = self.user_payload(body, true).await?;
            item.entry("status").or_insert(Value::from("active"));
            item.entry("provider").or_insert(Value::from("default"));
            item
        } else {
            self.generic_payload(c, body, true)?
        };
        if c.name == ROLES.name {
            self.check_role_parent(id, &item).await?;
        }
        let mut ops = vec![WriteOp::Insert { c, item }];
        if let Some(policies) = nested_policies {
            ops.extend(self.attach_policies(id, policies).await?);
        }
        Ok((id, ops))
    }

    /// Creates an item with no caller (the CLI).
    pub async fn create_as_system(
        &self,
        c: &'static Collection,
        body: Value,
    ) -> Result<Value, ApiError> {
        self.create_one(c, body, &Fields::default()).await
    }

    /// Updates an item with no caller (the CLI); users get the same session side effects.
    pub async fn update_as_system(
        &self,
        c: &'static Collection,
        id: &str,
        body: Value,
    ) -> Result<(), ApiError> {
        let id = Uuid::parse_str(id).map_err(|_| ApiError::Forbidden)?;
        if c.name != USERS.name {
            return Err(ApiError::Forbidden);
        }
        self.update_user(id, as_object(body)?, None).await
    }

    /// Reads one item as the API shows it; a missing item is 403, as Directus answers, so
    /// ids cannot be probed.
    async fn get_unchecked(
        &self,
        c: &'static Collection,
        id: Uuid,
        fields: &Fields,
    ) -> Result<Value, ApiError> {
        let item = self
            .store
            .item_get(c, &id.to_string().into())
            .await?
            .ok_or(ApiError::Forbidden)?;
        self.render(c, item, fields).await
    }

    /// An item as the API shows it: users concealed (and `role.*` expanded), CSV columns as
    /// arrays, then the `fields` selection.
    async fn render(
        &self,
        c: &'static Collection,
        item: Item,
        fields: &Fields,
    ) -> Result<Value, ApiError> {
        if c.name == USERS.name {
            self.render_user(item, fields).await
        } else {
            Ok(Value::Object(fields.apply(present(c, item))))
        }
    }

    pub(super) fn generic_payload(
        &self,
        c: &'static Collection,
        body: Map<String, Value>,
        creating: bool,
    ) -> Result<Item, ApiError> {
        let mut body = body;
        // `ip_access` is a CSV column that Directus's API shows as an array (cast-csv).
        if let Some(Value::Array(list)) = body.get("ip_access") {
            let parts: Option<Vec<&str>> = list.iter().map(Value::as_str).collect();
            let joined = parts
                .ok_or_else(|| ApiError::payload("\"ip_access\" must be a list of strings"))?
                .join(",");
            body.insert("ip_access".into(), Value::from(joined));
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
            return Err(ApiError::payload("\"name\" is required"));
        }
        Ok(item)
    }

    /// A role's `parent` must name a role (else 400 `INVALID_FOREIGN_KEY`, as Directus's
    /// foreign key answers) and must not be the role itself or one of its descendants, with
    /// the reasons of Directus's `validateRoleNesting` (`api/src/services/roles.ts`): the role
    /// tree is read up through the parents (`role_chain`), so a cycle would break every login
    /// of those roles' users.
    async fn check_role_parent(&self, id: Uuid, item: &Item) -> Result<(), ApiError> {
        let Some(parent) = uuid_of(item, "parent") else {
            return Ok(());
        };
        if parent == id {
            return Err(ApiError::payload("A role cannot be a parent of itself"));
        }
        let mut seen = Vec::new();
        let mut next = Some(parent);
        while let Some(role) = next {
            if role == id {
                return Err(ApiError::payload(
                    "A role cannot have a parent that is already a descendant of itself",
                ));
            }
            if seen.contains(&role) || seen.len() > 64 {
                return Err(ApiError::payload(format!(
                    "the ancestors of \"parent\" already form a cycle at {role}"
                )));
            }
            seen.push(role);
            match self
                .store
                .item_get(&ROLES, &role.to_string().into())
                .await?
            {
                Some(row) => next = uuid_of(&row, "parent"),
                None if role == parent => {
                    return Err(ApiError::InvalidForeignKey {
                        collection: Some(ROLES.name.into()),
                        field: Some("parent".into()),
                        value: Some(parent.to_string()),
                    })
                }
                None => next = None,
            }
        }
        Ok(())
    }

    /// Directus 11+ role payloads: `policies: [{policy: <id or object>}]` or `{create: [...]}`.
    /// Checks every entry (a policy id must exist) and returns the rows that attach them:
    /// new policies and the `directus_access` rows, written by the caller with the role.
    async fn attach_policies(&self, role: Uuid, policies: Value) -> Result<Vec<WriteOp>, ApiError> {
        let entries = match policies {
            Value::Array(a) => a,
            Value::Object(mut o) => match o.remove("create") {
                Some(Value::Array(a)) => a,
                _ => {
                    return Err(ApiError::payload(
                        "\"policies\" must be an array or {\"create\": [...]}",
                    ))
                }
            },
            Value::Null => return Ok(Vec::new()),
            _ => return Err(ApiError::payload("\"policies\" must be an array")),
        };
        let mut ops = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let policy = match entry.get("policy").cloned().unwrap_or(entry) {
                Value::String(id) => {
                    let id = Uuid::parse_str(&id)
                        .map_err(|_| ApiError::payload("\"policy\" must be a UUID"))?;
                    if self
                        .store
                        .item_get(&POLICIES, &id.to_string().into())
                        .await?
                        .is_none()
                    {
                        return Err(ApiError::InvalidForeignKey {
                            collection: Some("directus_access".into()),
                            field: Some("policy".into()),
                            value: Some(id.to_string()),
                        });
                    }
                    id
                }
                Value::Object(mut obj) => {
                    let id = Uuid::new_v4();
                    obj.insert("id".into(), Value::from(id.to_string()));
                    let item = self.generic_payload(&POLICIES, obj, true)?;
                    ops.push(WriteOp::Insert { c: &POLICIES, item });
                    id
                }
                _ => {
                    return Err(ApiError::payload(
                        "each entry of \"policies\" needs a \"policy\"",
                    ))
                }
            };
            let mut access = Item::new();
            access.insert("id".into(), Value::from(Uuid::new_v4().to_string()));
            access.insert("role".into(), Value::from(role.to_string()));
            access.insert("policy".into(), Value::from(policy.to_string()));
            access.insert("sort".into(), Value::from(i as i64 + 1));
            ops.push(WriteOp::Insert {
                c: &ACCESS,
                item: access,
            });
        }
        Ok(ops)
    }

    pub async fn update(
        &self,
        acc: &Accountability,
        c: &'static Collection,
        id: &str,
        body: Value,
        fields: &Fields,
    ) -> Result<Value, ApiError> {
        self.require_admin(acc).await?;
        let id = Uuid::parse_str(id).map_err(|_| ApiError::Forbidden)?;
        if self
            .store
            .item_get(c, &id.to_string().into())
            .await?
            .is_none()
        {
            return Err(ApiError::Forbidden);
        }
        let body = as_object(body)?;
        if c.name == POLICIES.name && body.get("admin_access") == Some(&Value::Bool(false)) {
            let change = Change::PolicyAdmin {
                id,
                admin_access: false,
            };
            self.keep_an_admin(&change).await?;
        }
        if c.name == ROLES.name {
            // Before the last-admin check, as Directus validates the nesting first.
            self.check_role_parent(id, &body).await?;
        }
        if c.name == ROLES.name && body.contains_key("parent") {
            let change = Change::RoleParent {
                id,
                parent: uuid_of(&body, "parent"),
            };
            self.keep_an_admin(&change).await?;
        }
        if c.name == USERS.name {
            self.update_user(id, body, None).await?;
        } else {
            let mut body = body;
            let nested = if c.name == ROLES.name {
                body.remove("policies")
            } else {
                None
            };
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
            self.store.items_write(&ops).await?;
        }
        self.get_unchecked(c, id, fields).await
    }

    pub async fn delete(
        &self,
        acc: &Accountability,
        c: &'static Collection,
        id: &str,
    ) -> Result<(), ApiError> {
        self.require_admin(acc).await?;
        let id = Uuid::parse_str(id).map_err(|_| ApiError::Forbidden)?;
        if c.name == POLICIES.name && id.to_string() == "abf8a154-5b1c-4a46-ac9c-7300570f4f17" {
            return Err(ApiError::payload("The public policy cannot be deleted"));
        }
        if c.name == USERS.name && acc.user == Some(id) {
            return Err(ApiError::payload("You cannot delete your own user"));
        }
        let change = match c.name {
            n if n == USERS.name => Some(Change::UserDeleted(id)),
            n if n == POLICIES.name => Some(Change::PolicyDeleted(id)),
            n if n == ROLES.name => Some(Change::RoleDeleted(id)),
            _ => None,
        };
        if let Some(change) = change {
            self.keep_an_admin(&change).await?;
        }
        if c.name == USERS.name {
            self.store.sessions_delete_user(id, None).await?;
        }
        // Directus detaches a role's children before deleting it (`api/src/services/roles.ts`,
        // `deleteMany`); both happen in one transaction here.
        let mut ops = Vec::new();
        if c.name == ROLES.name {
            let children = ListQuery {
                filters: vec![Filter {
                    field: "parent",
                    value: Value::from(id.to_string()),
                }],
                ..Default::default()
            };
            for child in self.store.items_list(&ROLES, &children).await? {
                let mut patch = Item::new();
                patch.insert("parent".into(), Value::Null);
                ops.push(WriteOp::Update {
                    c: &ROLES,
                    id: child.get("id").cloned().unwrap_or(Value::Null),
                    patch,
                });
            }
        }
        ops.push(WriteOp::Delete {
            c,
            id: id.to_string().into(),
        });
        let written = self.store.items_write(&ops).await?;
        if written.last() != Some(&true) {
            return Err(ApiError::Forbidden);
        }
        Ok(())
    }
}

/// How an item reads back through the API: CSV columns become arrays.
fn present(c: &Collection, mut item: Item) -> Item {
    if c.name == POLICIES.name {
        if let Some(Value::String(csv)) = item.get("ip_access") {
            let list: Vec<Value> = csv
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Value::from)
                .collect();
            item.insert("ip_access".into(), Value::Array(list));
        }
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concealment() {
        let mut item = Item::new();
        item.insert("password".into(), Value::from("$argon2id$..."));
        item.insert("token".into(), Value::Null);
        let out = conceal(item);
        assert_eq!(out["password"], "**********");
        assert_eq!(out["token"], Value::Null);
    }
}
