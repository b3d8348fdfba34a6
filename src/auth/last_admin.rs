//! Never leave an installation without an admin. Directus refuses a change that would leave
//! no active user with admin access (`api/src/permissions/modules/validate-remaining-admin/`):
//! 422 `UNPROCESSABLE_CONTENT`, "Cannot remove the last admin user from the system". gatehouse
//! checks the same changes: a user's status or role, deleting a user, a policy's
//! `admin_access`, deleting a policy or a role, and a role's parent.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use uuid::Uuid;

use super::Error;
use super::{str_of, uuid_of, Auth};
use crate::error::ApiError;
use crate::store::{Filter, ListQuery, ACCESS, POLICIES, ROLES, USERS};

/// A change about to be written, as far as admin access is concerned.
#[derive(Debug, Clone)]
pub(super) enum Change {
    /// A user's new status and/or role (`None`: unchanged; `Some(None)`: no role).
    User {
        id: Uuid,
        status: Option<String>,
        role: Option<Option<Uuid>>,
    },
    UserDeleted(Uuid),
    /// A policy's new `admin_access`.
    PolicyAdmin {
        id: Uuid,
        admin_access: bool,
    },
    PolicyDeleted(Uuid),
    RoleDeleted(Uuid),
    RoleParent {
        id: Uuid,
        parent: Option<Uuid>,
    },
}

const LAST_ADMIN: &str = "Cannot remove the last admin user from the system";

/// The policy, access and role rows that decide who is an admin, read once per check.
struct Snapshot {
    /// (policy, admin_access)
    policies: Vec<(Uuid, bool)>,
    /// (role, user, policy) of each `directus_access` row
    access: Vec<(Option<Uuid>, Option<Uuid>, Uuid)>,
    /// (role, parent)
    roles: Vec<(Uuid, Option<Uuid>)>,
}

impl Auth {
    /// Refuses `change` if the installation has an active admin now and would have none after.
    pub(super) async fn keep_an_admin(&self, change: &Change) -> Result<(), Error> {
        let snapshot = self.admin_snapshot().await?;
        if self.admins_remaining(&snapshot, None).await? == 0 {
            // Nothing to protect (a database without admins stays repairable by the CLI).
            return Ok(());
        }
        if self.admins_remaining(&snapshot, Some(change)).await? == 0 {
            return Err(Error::because(
                ApiError::UnprocessableContent(LAST_ADMIN.into()),
                format!("it would remove the last admin: {change:?}"),
            ));
        }
        Ok(())
    }

    async fn admin_snapshot(&self) -> Result<Snapshot, Error> {
        let all = ListQuery::default();
        let items = &self.store.items;
        Ok(Snapshot {
            policies: items
                .items_list(&POLICIES, &all)
                .await?
                .iter()
                .filter_map(|p| {
                    let admin = p.get("admin_access").and_then(Value::as_bool) == Some(true);
                    Some((uuid_of(p, "id")?, admin))
                })
                .collect(),
            access: items
                .items_list(&ACCESS, &all)
                .await?
                .iter()
                .filter_map(|a| {
                    Some((
                        uuid_of(a, "role"),
                        uuid_of(a, "user"),
                        uuid_of(a, "policy")?,
                    ))
                })
                .collect(),
            roles: items
                .items_list(&ROLES, &all)
                .await?
                .iter()
                .filter_map(|r| Some((uuid_of(r, "id")?, uuid_of(r, "parent"))))
                .collect(),
        })
    }

    /// How many active admins there are (at most a few are counted), with `change` applied.
    async fn admins_remaining(
        &self,
        snapshot: &Snapshot,
        change: Option<&Change>,
    ) -> Result<usize, Error> {
        // Policies with admin access, after the change.
        let admin_policies: HashSet<Uuid> = snapshot
            .policies
            .iter()
            .filter(|(id, admin)| match change {
                Some(Change::PolicyAdmin {
                    id: changed,
                    admin_access,
                }) if changed == id => *admin_access,
                Some(Change::PolicyDeleted(gone)) if gone == id => false,
                _ => *admin,
            })
            .map(|(id, _)| *id)
            .collect();
        let deleted_role = match change {
            Some(Change::RoleDeleted(r)) => Some(*r),
            _ => None,
        };
        // Roles (and users) holding an admin policy directly.
        let mut admin_here: HashSet<Uuid> = HashSet::new();
        let mut direct_users: HashSet<Uuid> = HashSet::new();
        for (role, user, policy) in &snapshot.access {
            if !admin_policies.contains(policy) {
                continue;
            }
            match (role, user) {
                (Some(r), _) if Some(*r) != deleted_role => {
                    admin_here.insert(*r);
                }
                (None, Some(u)) => {
                    direct_users.insert(*u);
                }
                _ => {}
            }
        }
        // Roles whose tree (the role and its ancestors) holds an admin policy.
        let parents: HashMap<Uuid, Option<Uuid>> = snapshot
            .roles
            .iter()
            .filter(|(id, _)| Some(*id) != deleted_role)
            .map(|(id, parent)| {
                let parent = match change {
                    Some(Change::RoleParent {
                        id: changed,
                        parent,
                    }) if changed == id => *parent,
                    _ => *parent,
                };
                (*id, parent.filter(|p| Some(*p) != deleted_role))
            })
            .collect();
        let admin_roles: HashSet<Uuid> = parents
            .keys()
            .copied()
            .filter(|r| {
                let mut seen = HashSet::new();
                let mut next = Some(*r);
                while let Some(id) = next {
                    if !seen.insert(id) {
                        return false; // a cycle: its roles cannot log in anyway
                    }
                    if admin_here.contains(&id) {
                        return true;
                    }
                    next = parents.get(&id).copied().flatten();
                }
                false
            })
            .collect();

        let changed_user = match change {
            Some(Change::User { id, .. }) | Some(Change::UserDeleted(id)) => Some(*id),
            _ => None,
        };
        // Candidates: active users of admin roles (two per role are enough to see one left
        // besides the changed user) and users holding an admin policy themselves.
        let mut candidates: HashSet<Uuid> = direct_users.clone();
        for role in &admin_roles {
            let q = ListQuery {
                filters: vec![
                    Filter {
                        field: "role",
                        value: Value::from(role.to_string()),
                    },
                    Filter {
                        field: "status",
                        value: Value::from("active"),
                    },
                ],
                limit: Some(2),
                ..Default::default()
            };
            for u in self.store.items.items_list(&USERS, &q).await? {
                candidates.extend(uuid_of(&u, "id"));
            }
        }
        candidates.extend(changed_user);
        let mut count = 0;
        for id in candidates {
            let Some(user) = self
                .store
                .items
                .item_get(&USERS, &id.to_string().into())
                .await?
            else {
                continue;
            };
            let (mut status, mut role) = (
                str_of(&user, "status").map(str::to_string),
                uuid_of(&user, "role"),
            );
            match change {
                Some(Change::UserDeleted(gone)) if *gone == id => continue,
                Some(Change::User {
                    id: changed,
                    status: new_status,
                    role: new_role,
                }) if *changed == id => {
                    if let Some(s) = new_status {
                        status = Some(s.clone());
                    }
                    if let Some(r) = new_role {
                        role = *r;
                    }
                }
                _ => {}
            }
            if role.is_some() && role == deleted_role {
                role = None; // ON DELETE SET NULL
            }
            let admin =
                role.is_some_and(|r| admin_roles.contains(&r)) || direct_users.contains(&id);
            if status.as_deref() == Some("active") && admin {
                count += 1;
            }
        }
        Ok(count)
    }
}
