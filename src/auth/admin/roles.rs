//! `directus_roles` through the admin API: nesting rules and nested policies
//! (Directus: `api/src/services/roles.ts`).

use serde_json::Value;
use uuid::Uuid;

use super::super::Error;
use super::super::{uuid_of, Auth};
use crate::error::ApiError;
use crate::store::{Filter, Item, ListQuery, WriteOp, ACCESS, POLICIES, ROLES};

impl Auth {
    /// A role's `parent` must name a role (else 400 `INVALID_FOREIGN_KEY`, as Directus's
    /// foreign key answers) and must not be the role itself or one of its descendants, with
    /// the reasons of Directus's `validateRoleNesting` (`api/src/services/roles.ts`): the role
    /// tree is read up through the parents (`role_chain`), so a cycle would break every login
    /// of those roles' users.
    pub(super) async fn check_role_parent(&self, id: Uuid, item: &Item) -> Result<(), Error> {
        let Some(parent) = uuid_of(item, "parent") else {
            return Ok(());
        };
        if parent == id {
            return Err(ApiError::payload("A role cannot be a parent of itself").into());
        }
        let mut seen = Vec::new();
        let mut next = Some(parent);
        while let Some(role) = next {
            if role == id {
                return Err(ApiError::payload(
                    "A role cannot have a parent that is already a descendant of itself",
                )
                .into());
            }
            if seen.contains(&role) || seen.len() > 64 {
                return Err(ApiError::payload(format!(
                    "the ancestors of \"parent\" already form a cycle at {role}"
                ))
                .into());
            }
            seen.push(role);
            match self
                .store
                .items
                .item_get(&ROLES, &role.to_string().into())
                .await?
            {
                Some(row) => next = uuid_of(&row, "parent"),
                None if role == parent => {
                    return Err(ApiError::InvalidForeignKey {
                        collection: Some(ROLES.name.into()),
                        field: Some("parent".into()),
                        value: Some(parent.to_string()),
                    }
                    .into())
                }
                None => next = None,
            }
        }
        Ok(())
    }

    /// Directus 11+ role payloads: `policies: [{policy: <id or object>}]` or `{create: [...]}`.
    /// Checks every entry (a policy id must exist) and returns the rows that attach them:
    /// new policies and the `directus_access` rows, written by the caller with the role.
    pub(super) async fn attach_policies(
        &self,
        role: Uuid,
        policies: Value,
    ) -> Result<Vec<WriteOp>, Error> {
        let entries = match policies {
            Value::Array(a) => a,
            Value::Object(mut o) => match o.remove("create") {
                Some(Value::Array(a)) => a,
                _ => {
                    return Err(ApiError::payload(
                        "\"policies\" must be an array or {\"create\": [...]}",
                    )
                    .into())
                }
            },
            Value::Null => return Ok(Vec::new()),
            _ => return Err(ApiError::payload("\"policies\" must be an array").into()),
        };
        let mut ops = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            let policy = match entry.get("policy").cloned().unwrap_or(entry) {
                Value::String(id) => {
                    let id = Uuid::parse_str(&id)
                        .map_err(|_| ApiError::payload("\"policy\" must be a UUID"))?;
                    if self
                        .store
                        .items
                        .item_get(&POLICIES, &id.to_string().into())
                        .await?
                        .is_none()
                    {
                        return Err(ApiError::InvalidForeignKey {
                            collection: Some("directus_access".into()),
                            field: Some("policy".into()),
                            value: Some(id.to_string()),
                        }
                        .into());
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
                    return Err(
                        ApiError::payload("each entry of \"policies\" needs a \"policy\"").into(),
                    )
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

    /// The writes that detach a role's children before it is deleted, as Directus's
    /// `deleteMany` does.
    pub(super) async fn detach_children(&self, role: Uuid) -> Result<Vec<WriteOp>, Error> {
        let children = ListQuery {
            filters: vec![Filter {
                field: "parent",
                value: Value::from(role.to_string()),
            }],
            ..Default::default()
        };
        let mut ops = Vec::new();
        for child in self.store.items.items_list(&ROLES, &children).await? {
            let mut patch = Item::new();
            patch.insert("parent".into(), Value::Null);
            ops.push(WriteOp::Update {
                c: &ROLES,
                id: child.get("id").cloned().unwrap_or(Value::Null),
                patch,
            });
        }
        Ok(ops)
    }
}
