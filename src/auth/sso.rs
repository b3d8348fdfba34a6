//! Signing in through an SSO provider, once the driver has proven an `Identity`: find the
//! user by provider and external identifier, create it where registration is allowed, apply
//! roles, profile sync and `auth_data`, check the second factor and start the session
//! (Directus: the drivers' `getUserID` in `api/src/auth/drivers/{oauth2,openid,ldap,saml}.ts`,
//! then `login` in `api/src/services/authentication.ts`).

use std::time::Instant;

use serde_json::Value;
use uuid::Uuid;

use super::user::User;
use super::{Auth, Error, Issued, Mode, RequestMeta};
use crate::error::ApiError;
use crate::providers::Identity;
use crate::store::{Item, ListQuery, StoreError, ROLES, USERS};

/// How a provider's users get their role.
#[derive(Debug, Clone, PartialEq)]
pub enum RoleRule {
    /// Existing users keep their role (saml; oauth2/openid without ROLE_MAPPING).
    Keep,
    /// oauth2/openid ROLE_MAPPING: first key (insertion order) among the identity's groups wins,
    /// else default_role; applied at creation and on every login.
    Mapping(Vec<(String, Uuid)>),
    /// ldap with GROUP_DN: the first directus_roles row whose LOWER(name) is among the groups,
    /// else default_role; applied at creation and on every login.
    GroupNames,
}

/// What a provider's configuration allows for its users.
#[derive(Debug, Clone)]
pub struct Provisioning {
    /// ldap: always true (Directus creates every found user).
    pub allow_registration: bool,
    pub default_role: Option<Uuid>,
    pub roles: RoleRule,
    /// Update email/first/last name on every login.
    pub sync_user_info: bool,
    /// saml stores external_identifier lower-cased at creation.
    pub lower_identifier: bool,
}

impl Provisioning {
    /// The role for `groups` under `RoleRule::Mapping` (Directus walks ROLE_MAPPING's keys in
    /// order; the first one among the groups wins).
    fn mapped_role(&self, mapping: &[(String, Uuid)], groups: &[String]) -> Option<Uuid> {
        mapping
            .iter()
            .find(|(g, _)| groups.iter().any(|x| x == g))
            .map(|(_, r)| *r)
            .or(self.default_role)
    }
}

/// The log detail of a refusal because registration is off (drivers may name a finer cause).
pub const REGISTRATION_OFF: &str = "unknown user and registration is off";

/// The longest external identifier kept (`directus_users.external_identifier` is varchar(255)).
const MAX_IDENTIFIER: usize = 255;

impl Auth {
    /// Find the user by (provider, external_identifier case-insensitive); refuse if the row's
    /// provider differs (INVALID_CREDENTIALS); create where allowed (email taken -> 403
    /// INVALID_PROVIDER; registration off -> INVALID_CREDENTIALS); apply roles / sync / auth_data;
    /// refuse a non-active user as Directus does; TFA: if tfa_secret is set, `otp` must pass
    /// (same rules as local login, auth/tfa.rs) else INVALID_OTP; then `start_session`.
    ///
    /// Takes at least LOGIN_STALL_TIME, as every Directus login does.
    pub async fn sso_login(
        &self,
        provider: &str,
        identity: Identity,
        rules: &Provisioning,
        mode: Mode,
        otp: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Issued, Error> {
        let start = Instant::now();
        let result = self
            .sso_login_inner(provider, identity, rules, mode, otp, meta)
            .await;
        self.stall(start, self.config.login_stall_time).await;
        self.metrics.login(
            provider,
            result.as_ref().map_or_else(|e| e.code(), |_| "success"),
        );
        if let Err(e) = &result {
            tracing::info!(
                provider,
                code = e.code(),
                check = e.detail().unwrap_or("-"),
                "sso login refused"
            );
        }
        result
    }

    async fn sso_login_inner(
        &self,
        provider: &str,
        identity: Identity,
        rules: &Provisioning,
        mode: Mode,
        otp: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<Issued, Error> {
        let external_id = identity.external_id.trim();
        if external_id.is_empty()
            || external_id.len() > MAX_IDENTIFIER
            || external_id.contains('\0')
        {
            return Err(Error::because(
                ApiError::InvalidCredentials,
                "identifier claim missing or unusable",
            ));
        }
        let role = match &rules.roles {
            RoleRule::Keep => None,
            RoleRule::Mapping(m) => Some(rules.mapped_role(m, &identity.groups)),
            RoleRule::GroupNames => Some(
                self.role_by_group_name(&identity.groups)
                    .await?
                    .or(rules.default_role),
            ),
        };
        let id = match self.user_by_external_id(external_id).await? {
            Some(user) => {
                // SECURITY: the provider is checked before anything is written: Directus
                // updates the row first and refuses after (docs/compatibility.md).
                if user.provider != provider {
                    return Err(Error::because(
                        ApiError::InvalidCredentials,
                        format!("provider mismatch: the user belongs to {:?}", user.provider),
                    ));
                }
                let mut patch = Item::new();
                if let Some(data) = &identity.auth_data {
                    patch.insert("auth_data".into(), data.clone());
                }
                if let Some(role) = role {
                    patch.insert(
                        "role".into(),
                        role.map(|r| Value::from(r.to_string()))
                            .unwrap_or(Value::Null),
                    );
                }
                if rules.sync_user_info {
                    for (k, v) in [
                        ("email", &identity.email),
                        ("first_name", &identity.first_name),
                        ("last_name", &identity.last_name),
                    ] {
                        if let Some(v) = v {
                            patch.insert(k.into(), Value::from(v.as_str()));
                        }
                    }
                }
                if !patch.is_empty() {
                    self.store
                        .items
                        .item_update(&USERS, &Value::from(user.id.to_string()), &patch)
                        .await?;
                }
                user.id
            }
            None => {
                if !rules.allow_registration {
                    return Err(Error::because(
                        ApiError::InvalidCredentials,
                        REGISTRATION_OFF,
                    ));
                }
                let id = Uuid::new_v4();
                let stored_id = if rules.lower_identifier {
                    external_id.to_lowercase()
                } else {
                    external_id.to_string()
                };
                let role = role.unwrap_or(rules.default_role);
                let mut item = Item::new();
                item.insert("id".into(), Value::from(id.to_string()));
                item.insert("provider".into(), Value::from(provider));
                item.insert("external_identifier".into(), Value::from(stored_id));
                item.insert("status".into(), Value::from("active"));
                for (k, v) in [
                    ("email", &identity.email),
                    ("first_name", &identity.first_name),
                    ("last_name", &identity.last_name),
                ] {
                    if let Some(v) = v {
                        item.insert(k.into(), Value::from(v.as_str()));
                    }
                }
                item.insert(
                    "role".into(),
                    role.map(|r| Value::from(r.to_string()))
                        .unwrap_or(Value::Null),
                );
                if let Some(data) = &identity.auth_data {
                    item.insert("auth_data".into(), data.clone());
                }
                match self.store.items.item_insert(&USERS, &item).await {
                    Ok(()) => {}
                    // Directus turns RECORD_NOT_UNIQUE into INVALID_PROVIDER: the email (or the
                    // identifier, raced by a concurrent first login) belongs to another account.
                    Err(StoreError::Conflict { field, .. }) => {
                        return Err(Error::because(
                            ApiError::InvalidProvider,
                            format!("registration refused: {field} is taken"),
                        ));
                    }
                    Err(e) => return Err(e.into()),
                }
                tracing::info!(provider, user = %id, "sso user registered");
                id
            }
        };
        let row = self
            .store
            .items
            .item_get(&USERS, &Value::from(id.to_string()))
            .await?
            .ok_or_else(|| Error::because(ApiError::InvalidCredentials, "user vanished"))?;
        let user = User::from_item(&row)?;
        if !user.is_active() || user.provider != provider {
            return Err(Error::because(
                ApiError::InvalidCredentials,
                "user is not active",
            ));
        }
        if let Some(secret) = &user.tfa_secret {
            let Some(otp) = otp.filter(|o| !o.is_empty()) else {
                return Err(Error::because(ApiError::InvalidOtp, "missing otp"));
            };
            let verdict = self
                .second_factor(user.id, secret, otp, super::tfa::Recovery::Accepted)
                .await?;
            if verdict != super::tfa::Verdict::Passed {
                return Err(Error::because(
                    ApiError::InvalidOtp,
                    format!("second factor refused: {verdict:?}"),
                ));
            }
        }
        self.start_session(&user, mode, meta).await
    }

    /// The user whose `external_identifier` equals `id` case-insensitively (Directus:
    /// `LOWER(external_identifier) = lower(id)`), whatever its provider.
    pub async fn user_by_external_id(&self, id: &str) -> Result<Option<User>, Error> {
        let rows = self
            .store
            .items
            .items_list(
                &USERS,
                &ListQuery {
                    ci_filter: Some(("external_identifier", id.to_string())),
                    limit: Some(1),
                    ..ListQuery::default()
                },
            )
            .await?;
        rows.first().map(User::from_item).transpose()
    }

    /// The first `directus_roles` row whose lower-cased name is among `groups`.
    async fn role_by_group_name(&self, groups: &[String]) -> Result<Option<Uuid>, Error> {
        if groups.is_empty() {
            return Ok(None);
        }
        let wanted: Vec<String> = groups.iter().map(|g| g.to_lowercase()).collect();
        let roles = self
            .store
            .items
            .items_list(&ROLES, &ListQuery::default())
            .await?;
        Ok(roles
            .iter()
            .find(|r| super::str_of(r, "name").is_some_and(|n| wanted.contains(&n.to_lowercase())))
            .and_then(|r| super::uuid_of(r, "id")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_mapped_group_wins_else_the_default_role() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let d = Uuid::new_v4();
        let p = Provisioning {
            allow_registration: true,
            default_role: Some(d),
            roles: RoleRule::Keep,
            sync_user_info: false,
            lower_identifier: false,
        };
        let m = vec![("admins".to_string(), a), ("staff".to_string(), b)];
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(p.mapped_role(&m, &g(&["staff", "admins"])), Some(a));
        assert_eq!(p.mapped_role(&m, &g(&["staff"])), Some(b));
        assert_eq!(p.mapped_role(&m, &g(&["Admins"])), Some(d));
        assert_eq!(p.mapped_role(&m, &[]), Some(d));
    }
}
