//! Typed `directus_users` rows for the auth paths (login, sessions, who a token belongs to).
//! The admin API keeps working on JSON items, since it must carry every column as Directus
//! shows it; the use cases read the columns they decide on through this type.

use std::fmt;

use uuid::Uuid;

use super::Error;
use super::{str_of, uuid_of};
use crate::error::ApiError;
use crate::store::Item;

/// `directus_users.status` (Directus: `packages/constants/src/user.ts`). Only `Active` may
/// log in, refresh or use a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Draft,
    Invited,
    Unverified,
    Active,
    Suspended,
    Archived,
    InactiveLicense,
    /// A value another tool wrote; treated as not active.
    Other(String),
}

impl Status {
    pub fn parse(s: &str) -> Status {
        match s {
            "draft" => Status::Draft,
            "invited" => Status::Invited,
            "unverified" => Status::Unverified,
            "active" => Status::Active,
            "suspended" => Status::Suspended,
            "archived" => Status::Archived,
            "inactive-license" => Status::InactiveLicense,
            other => Status::Other(other.to_string()),
        }
    }
}

/// The provider name of local (email and password) accounts.
pub const LOCAL_PROVIDER: &str = "default";

/// A user as the auth paths see it. Secrets stay inside: `Debug` never shows them.
#[derive(Clone)]
pub struct User {
    pub id: Uuid,
    pub email: Option<String>,
    pub status: Status,
    pub role: Option<Uuid>,
    pub provider: String,
    pub external_identifier: Option<String>,
    /// The argon2 PHC string, if the user has a local password.
    pub password_hash: Option<String>,
    /// The base32 TOTP secret, if TFA is enabled.
    pub tfa_secret: Option<String>,
    /// `auth_data`: what an SSO provider keeps (oauth2/openid: `{"refreshToken": ..}`).
    pub auth_data: Option<serde_json::Value>,
}

impl User {
    /// Reads the columns the auth paths use; a row without a usable id is a data error.
    pub fn from_item(item: &Item) -> Result<User, Error> {
        let id = uuid_of(item, "id").ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("a directus_users row has no usable id"))
        })?;
        let text = |k: &str| {
            str_of(item, k)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        Ok(User {
            id,
            email: text("email"),
            status: Status::parse(str_of(item, "status").unwrap_or("")),
            role: uuid_of(item, "role"),
            provider: text("provider").unwrap_or_else(|| LOCAL_PROVIDER.to_string()),
            external_identifier: text("external_identifier"),
            password_hash: text("password"),
            tfa_secret: text("tfa_secret"),
            auth_data: item.get("auth_data").filter(|v| !v.is_null()).cloned(),
        })
    }

    pub fn is_active(&self) -> bool {
        self.status == Status::Active
    }

    pub fn has_tfa(&self) -> bool {
        self.tfa_secret.is_some()
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("role", &self.role)
            .field("provider", &self.provider)
            .field("has_password", &self.password_hash.is_some())
            .field("has_tfa", &self.has_tfa())
            .finish_non_exhaustive()
    }
}

/// A `directus_roles` row as access needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Role {
    pub id: Uuid,
    pub parent: Option<Uuid>,
}

impl Role {
    pub fn from_item(item: &Item) -> Option<Role> {
        Some(Role {
            id: uuid_of(item, "id")?,
            parent: uuid_of(item, "parent"),
        })
    }
}

/// A `directus_policies` row's global flags (Directus 11+ keeps them on policies).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    pub admin_access: bool,
    pub app_access: bool,
    pub enforce_tfa: bool,
    /// Comma-separated IPs and CIDR ranges; none or empty means everywhere.
    pub ip_access: Option<String>,
}

impl Policy {
    pub fn from_item(item: &Item) -> Policy {
        let flag = |k: &str| item.get(k).and_then(serde_json::Value::as_bool) == Some(true);
        Policy {
            admin_access: flag("admin_access"),
            app_access: flag("app_access"),
            enforce_tfa: flag("enforce_tfa"),
            ip_access: str_of(item, "ip_access")
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_row_and_hides_its_secrets() {
        let id = Uuid::new_v4();
        let row = json!({"id": id.to_string(), "email": "a@example.com", "status": "active",
            "role": null, "provider": null, "password": "$argon2id$secret-hash", "tfa_secret": ""});
        let user = User::from_item(row.as_object().unwrap()).unwrap();
        assert_eq!(user.id, id);
        assert!(user.is_active());
        assert_eq!(user.provider, LOCAL_PROVIDER);
        assert!(!user.has_tfa(), "an empty secret is no secret");
        let shown = format!("{user:?}");
        assert!(!shown.contains("secret-hash"), "{shown}");
        assert_eq!(Status::parse("inactive-license"), Status::InactiveLicense);
        assert_eq!(Status::parse("zzz"), Status::Other("zzz".into()));
        assert!(User::from_item(json!({"id": "nope"}).as_object().unwrap()).is_err());
    }
}
