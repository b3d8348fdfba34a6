//! First start: the shared SECRET and the first administrator (Directus: `api/src/utils/create-admin.ts`).

use serde_json::{json, Value};
use uuid::Uuid;

use super::Auth;
use super::Error;
use crate::store::{Item, MetaStore, StoreError, WriteOp, ACCESS, POLICIES, ROLES, USERS};

/// An explicit SECRET wins; otherwise one is generated once and kept in `gatehouse_meta`,
/// so restarts and every node on the database sign with the same key.
pub async fn resolve_secret(
    explicit: Option<&str>,
    store: &dyn MetaStore,
) -> Result<String, StoreError> {
    match explicit {
        Some(s) => Ok(s.to_string()),
        None => {
            store
                .meta_get_or_insert("secret", &crate::tokens::random_secret())
                .await
        }
    }
}

/// What bootstrap did, for the one-time message on the console.
#[derive(Debug)]
pub struct Bootstrapped {
    pub email: String,
    /// Present only when the password was generated (printed once, never logged).
    pub generated_password: Option<String>,
}

fn obj(v: Value) -> Item {
    match v {
        Value::Object(m) => m,
        _ => Item::new(),
    }
}

impl Auth {
    /// Creates the Administrator role, an admin policy and the first user when there are none.
    ///
    /// Nodes starting together on an empty database all get here: the rows are written in
    /// one transaction under the migration lock, only if there are still no users, so exactly
    /// one node creates them and the others find users and go on.
    pub async fn bootstrap(&self) -> Result<Option<Bootstrapped>, Error> {
        // The usual start on a database that has users, without hashing a password.
        if self.store.items.items_count(&USERS).await? > 0 {
            return Ok(None);
        }
        let email = self
            .config
            .admin_email
            .clone()
            .unwrap_or_else(|| "admin@example.com".into());
        let (password, generated) = match &self.config.admin_password {
            Some(p) => (p.clone(), None),
            None => {
                let p = crate::tokens::refresh_token()[..24].to_string();
                (p.clone(), Some(p))
            }
        };
        // Hashed before the transaction, which holds the lock other nodes wait on.
        let hash = self.hasher.hash(&password).await?;
        let role = Uuid::new_v4();
        let policy = Uuid::new_v4();
        let mut user = obj(json!({
            "id": Uuid::new_v4().to_string(),
            "email": email,
            "password": hash,
            "status": "active",
            "role": role.to_string(),
            "provider": "default",
        }));
        if let Some(token) = &self.config.admin_token {
            user.insert("token".into(), Value::from(token.clone()));
        }
        let ops = [
            WriteOp::Insert {
                c: &ROLES,
                item: obj(
                    json!({"id": role.to_string(), "name": "Administrator", "icon": "verified", "description": "$t:admin_description"}),
                ),
            },
            WriteOp::Insert {
                c: &POLICIES,
                item: obj(
                    json!({"id": policy.to_string(), "name": "Administrator", "icon": "verified", "description": "$t:admin_description", "admin_access": true, "app_access": true, "enforce_tfa": false}),
                ),
            },
            WriteOp::Insert {
                c: &ACCESS,
                item: obj(
                    json!({"id": Uuid::new_v4().to_string(), "role": role.to_string(), "policy": policy.to_string(), "sort": 1}),
                ),
            },
            WriteOp::Insert {
                c: &USERS,
                item: user,
            },
        ];
        if !self.store.items.items_write_if_no_users(&ops).await? {
            return Ok(None);
        }
        Ok(Some(Bootstrapped {
            email,
            generated_password: generated,
        }))
    }
}
