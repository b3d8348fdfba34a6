//! `directus_settings`: one row holding the auth settings (Directus: `api/src/services/settings.ts`), with Directus's
//! defaults until Directus or gatehouse writes it.

use serde_json::Value;

use super::admin::{as_object, Fields};
use super::Error;
use super::{str_of, Accountability, Auth};
use crate::error::ApiError;
use crate::store::{Item, ListQuery, SETTINGS};

impl Auth {
    /// The stored settings row, if Directus or gatehouse has written one.
    async fn settings_row(&self) -> Result<Option<Item>, Error> {
        let q = ListQuery {
            limit: Some(1),
            ..Default::default()
        };
        Ok(self
            .store
            .items
            .items_list(&SETTINGS, &q)
            .await?
            .into_iter()
            .next())
    }

    /// The settings in force: the stored row, or Directus's defaults.
    pub async fn settings(&self) -> Result<Item, Error> {
        Ok(self.settings_row().await?.unwrap_or_else(default_settings))
    }

    /// Only admins read or change the settings; anyone else is refused with Directus's reason.
    async fn require_settings_admin(&self, acc: &Accountability) -> Result<(), Error> {
        if self.is_admin(acc).await? {
            Ok(())
        } else {
            Err(super::permissions::collection_forbidden("", SETTINGS.name).into())
        }
    }

    pub async fn read_settings(
        &self,
        acc: &Accountability,
        fields: &Fields,
    ) -> Result<Value, Error> {
        self.require_settings_admin(acc).await?;
        Ok(Value::Object(fields.apply(self.settings().await?)))
    }

    pub async fn update_settings(
        &self,
        acc: &Accountability,
        body: Value,
        fields: &Fields,
    ) -> Result<Value, Error> {
        self.require_settings_admin(acc).await?;
        let mut patch = self.generic_payload(&SETTINGS, as_object(body)?, false)?;
        if let Some(policy) = str_of(&patch, "auth_password_policy") {
            let pattern = policy
                .strip_prefix('/')
                .and_then(|p| p.strip_suffix('/'))
                .unwrap_or(policy);
            if policy.len() > 100 || regex::Regex::new(pattern).is_err() {
                return Err(ApiError::payload("\"auth_password_policy\" must be a regular expression of at most 100 characters").into());
            }
        }
        if patch
            .get("auth_login_attempts")
            .and_then(Value::as_i64)
            .is_some_and(|n| n < 0)
        {
            return Err(
                ApiError::payload("\"auth_login_attempts\" must be 0 or more, or null").into(),
            );
        }
        match self
            .settings_row()
            .await?
            .and_then(|r| r.get("id").cloned())
        {
            Some(id) => {
                self.store.items.item_update(&SETTINGS, &id, &patch).await?;
            }
            None => {
                let mut row = default_settings();
                // Let the database number the row (a PostgreSQL serial would not advance past
                // an explicit id, and Directus's own insert would then collide).
                row.remove("id");
                row.append(&mut patch);
                self.store.items.item_insert(&SETTINGS, &row).await?;
            }
        }
        self.read_settings(acc, fields).await
    }
}

fn default_settings() -> Item {
    let v = serde_json::json!({
        "id": 1,
        "project_name": "Directus",
        "project_url": null,
        "project_color": "#6644FF",
        "project_logo": null,
        "auth_login_attempts": 25,
        "auth_password_policy": null,
        "public_registration": false,
        "public_registration_verify_email": true,
        "public_registration_role": null,
        "public_registration_email_filter": null,
    });
    match v {
        Value::Object(m) => m,
        _ => Item::new(),
    }
}
