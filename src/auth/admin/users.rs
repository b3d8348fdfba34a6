//! `directus_users` through the API: the current user (`/users/me`) and the admin's
//! `/users`: what a payload may hold, how a user reads back, and what a change ends
//! (Directus: `api/src/services/users.ts`, `api/src/controllers/users.ts`).

use serde_json::{Map, Value};
use uuid::Uuid;

use super::super::last_admin::Change;
use super::super::Error;
use super::super::{str_of, uuid_of, Accountability, Auth};
use super::aliases::View;
use super::{as_object, check_kind, Fields};
use crate::error::ApiError;
use crate::store::{Item, ROLES, USERS};

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

/// The password rule every write and login shares: not longer than `MAX_PASSWORD_CHARS`.
pub fn check_password_length(password: &str) -> Result<(), Error> {
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(ApiError::payload(format!(
            "\"password\" length must be less than or equal to {MAX_PASSWORD_CHARS} characters long"
        ))
        .into());
    }
    Ok(())
}

impl Auth {
    /// `auth_password_policy` as a regex (slashes stripped; Directus: `api/src/services/users.ts`, `checkPasswordPolicy`).
    pub(crate) async fn check_password_policy(&self, password: &str) -> Result<(), Error> {
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
            }
            .into())
        }
    }

    /// Checks and normalises a user create/update payload; hashes `password`.
    pub(super) async fn user_payload(
        &self,
        body: Map<String, Value>,
        creating: bool,
    ) -> Result<Item, Error> {
        let self_id = uuid_of(&body, "id");
        let mut body = body;
        // SECURITY: a concealed value written back (an admin UI saving the object it read)
        // means "unchanged" (Directus 12.4.0 stores it); it must never become the
        // password, the static token or the TFA secret.
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
                Value::String(s) if crate::email::valid(s) => {
                    let stored = crate::email::normalize(s);
                    item.insert("email".into(), Value::from(stored));
                }
                Value::Null if !creating => {}
                _ => return Err(ApiError::payload("\"email\" must be a valid email").into()),
            }
        }
        if let Some(status) = item.get("status") {
            if !status.as_str().is_some_and(|s| STATUSES.contains(&s)) {
                return Err(ApiError::payload(format!(
                    "\"status\" must be one of [{}]",
                    STATUSES.join(", ")
                ))
                .into());
            }
        }
        if let Some(role) = uuid_of(&item, "role") {
            if self
                .store
                .items
                .item_get(&ROLES, &role.to_string().into())
                .await?
                .is_none()
            {
                return Err(ApiError::InvalidForeignKey {
                    collection: Some("directus_users".into()),
                    field: Some("role".into()),
                    value: Some(role.to_string()),
                }
                .into());
            }
        }
        if let Some(tfa) = item.get("tfa_secret") {
            if !tfa.is_null() {
                return Err(ApiError::payload(
                    "\"tfa_secret\" can only be cleared (null); use the TFA endpoints to set it",
                )
                .into());
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
                }
                .into());
            }
        }
        Ok(item)
    }

    /// `GET /users/me` (Directus: `api/src/controllers/users.ts`): admins read every column
    /// plus the `policies` alias; everyone else reads their row through their permissions
    /// (app users also through Directus's minimal app permissions), and `{"id"}` when the
    /// read is forbidden.
    pub async fn me(&self, acc: &Accountability, fields: &Fields) -> Result<Value, Error> {
        let id = acc.user.ok_or(ApiError::InvalidCredentials)?;
        let only_id = || serde_json::json!({ "id": id });
        if !acc.admin {
            let forbidden = |e: &Error| e.code() == "FORBIDDEN";
            let plan = match self
                .read_plan(acc, super::Resource::Users, fields, None)
                .await
            {
                Ok(plan) => plan,
                Err(e) if forbidden(&e) => return Ok(only_id()),
                Err(e) => return Err(e),
            };
            let row = self
                .store
                .access
                .user_with_access(id)
                .await?
                .map(|(u, _)| u);
            return match self.get_scoped(&USERS, &plan, row).await {
                Err(e) if forbidden(&e) => Ok(only_id()),
                other => other,
            };
        }
        let Some((user, access_ids)) = self.store.access.user_with_access(id).await? else {
            return Ok(only_id());
        };
        if fields.0.is_empty() {
            // The default selection, on every request of an admin UI: every column and the
            // `policies` alias, from the cached row and its access ids (what the renderer
            // would read again from the database).
            let mut user = conceal(user);
            let ids = access_ids
                .iter()
                .map(|a| Value::from(a.to_string()))
                .collect();
            user.insert("policies".into(), Value::Array(ids));
            return Ok(Value::Object(user));
        }
        // The `policies` alias comes with the rendering (`aliases`); a `fields` it refuses is
        // answered with the id alone, as for everyone.
        match self.render_user(user, fields).await {
            Err(e) if e.code() == "FORBIDDEN" => Ok(only_id()),
            other => other,
        }
    }

    /// What a caller without admin access may change of a user, as Directus checks it
    /// (`api/src/services/items.ts` `updateMany`): an update grant must allow every field
    /// (`validatePathPermissions`), a case covering each field must match the row
    /// (`validateAccess`), then the presets go under the payload and every grant's
    /// `validation` must pass (`processPayload`), then Directus's own rules for users.
    pub(super) async fn check_update_as_caller(
        &self,
        acc: &Accountability,
        id: Uuid,
        body: Map<String, Value>,
    ) -> Result<Map<String, Value>, Error> {
        let payload = self.check_item_update_as_caller(acc, id, body).await?;
        // `api/src/services/users.ts` `updateMany`: what only admins, or no one, may set.
        for f in ["tfa_secret", "provider", "external_identifier"] {
            if payload.contains_key(f) {
                return Err(ApiError::payload(format!(
                    "You can't change the \"{f}\" value manually"
                ))
                .into());
            }
        }
        Ok(payload)
    }

    /// The permission half of `check_update_as_caller`: what Directus's `ItemsService` checks
    /// for a caller without admin access, without the rules only `UsersService` adds (the TFA
    /// routes write `tfa_secret` through `ItemsService`, `api/src/services/tfa.ts`).
    pub(crate) async fn check_item_update_as_caller(
        &self,
        acc: &Accountability,
        id: Uuid,
        body: Map<String, Value>,
    ) -> Result<Map<String, Value>, Error> {
        use super::super::permissions::{action_forbidden, fields_forbidden, Action};
        let fields: Vec<String> = body.keys().cloned().collect();
        let unknown: Vec<String> = fields
            .iter()
            .filter(|f| USERS.kind(f).is_none() && f.as_str() != "policies")
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(fields_forbidden("", USERS.name, &unknown).into());
        }
        let grants = self.grants(acc, "directus_users", Action::Update).await?;
        grants.check_fields("", &fields)?;
        let Some(mut row) = self
            .store
            .items
            .item_get(&USERS, &id.to_string().into())
            .await?
        else {
            return Err(action_forbidden(Action::Update, USERS.name, &fields).into());
        };
        if grants.list.iter().any(|g| g.reads_relation(&USERS)) {
            self.expand_role(&mut row).await?;
        }
        let cases = grants.cases(&fields);
        let matched = cases.matched(&row);
        if !(matched.contains(&true) && fields.iter().all(|f| cases.shows(&matched, f))) {
            return Err(action_forbidden(Action::Update, USERS.name, &fields).into());
        }
        let payload = grants.with_presets(body);
        // The columns that cannot be null, as Directus's schema rules check them.
        let mut nulls = Vec::new();
        for f in ["status", "provider", "text_direction"] {
            if payload.get(f) == Some(&Value::Null) {
                nulls.push(crate::error::Invalid {
                    field: f.into(),
                    path: vec![],
                    kind: "nnull".into(),
                    valid: None,
                    invalid: None,
                    substring: None,
                });
            }
        }
        if !nulls.is_empty() {
            return Err(ApiError::Invalid(nulls).into());
        }
        grants.validate(&payload)?;
        Ok(payload)
    }

    /// A user as an admin reads it: every column and the `policies` alias by default
    /// (`aliases`).
    pub(super) async fn render_user(&self, user: Item, fields: &Fields) -> Result<Value, Error> {
        let mut out = self
            .render_items(&USERS, vec![user], fields, View::ADMIN)
            .await?;
        Ok(out.pop().unwrap_or(Value::Null))
    }

    pub async fn update_me(
        &self,
        acc: &Accountability,
        body: Value,
        fields: &Fields,
    ) -> Result<Value, Error> {
        let id = acc.user.ok_or(ApiError::InvalidCredentials)?;
        let mut body = as_object(body)?;
        if !self.is_admin(acc).await? {
            body = self.check_update_as_caller(acc, id, body).await?;
        }
        self.update_user(id, body, acc.session.as_deref()).await?;
        if acc.admin {
            return self.me(acc, fields).await;
        }
        let plan = self
            .read_plan(acc, super::Resource::Users, fields, None)
            .await?;
        let row = self
            .store
            .access
            .user_with_access(id)
            .await?
            .map(|(u, _)| u);
        self.get_scoped(&USERS, &plan, row).await
    }

    /// Updates a user; a new password, email, role or a non-active status ends its sessions
    /// (all but `keep`, the caller's own session-mode session).
    pub(super) async fn update_user(
        &self,
        id: Uuid,
        body: Map<String, Value>,
        keep: Option<&str>,
    ) -> Result<(), Error> {
        let mut body = body;
        self.strip_unchanged_aliases(&USERS, Some(&id.to_string()), &mut body)
            .await?;
        body.insert("id".into(), Value::from(id.to_string()));
        let mut patch = self.user_payload(body, false).await?;
        patch.remove("id");
        let before = self
            .store
            .items
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
            .items
            .item_update(&USERS, &id.to_string().into(), &patch)
            .await?;
        if new_status.is_some() || new_role.is_some() {
            self.store.sessions.sessions_delete_user(id, None).await?;
        } else if patch.contains_key("password") || patch.contains_key("email") {
            self.store.sessions.sessions_delete_user(id, keep).await?;
        }
        if new_status.is_some() {
            tracing::info!(user = %id, "user deactivated; sessions ended");
        }
        Ok(())
    }

    /// Creates a user with no caller (the CLI).
    pub async fn create_user_as_system(&self, body: Value) -> Result<Value, Error> {
        self.create_one(super::Resource::Users, body, &Fields::default())
            .await
    }

    /// Updates a user with no caller (the CLI), with the same checks and session side effects.
    pub async fn update_user_as_system(&self, id: &str, body: Value) -> Result<(), Error> {
        let id = Uuid::parse_str(id).map_err(|_| ApiError::Forbidden)?;
        self.update_user(id, as_object(body)?, None).await
    }
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
