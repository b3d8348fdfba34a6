//! One configured `ldap` provider: its common SSO options, its directory, and the refresh hook.

use async_trait::async_trait;
use serde_json::Value;

use super::{Directory, DirectoryError, DirectoryUser, LdapConfig};
use crate::auth::sso::{Provisioning, RoleRule};
use crate::auth::user::User;
use crate::auth::Error;
use crate::config::sso::SsoCommon;
use crate::error::ApiError;
use crate::providers::{Driver, Identity, Provider};

pub struct LdapProvider {
    common: SsoCommon,
    pub directory: Directory,
}

impl LdapProvider {
    pub fn new(common: SsoCommon, config: LdapConfig) -> anyhow::Result<LdapProvider> {
        let directory = Directory::new(config)
            .map_err(|e| anyhow::anyhow!("{}: {e}", common.var("CLIENT__TLS_OPTIONS__CA")))?;
        Ok(LdapProvider { common, directory })
    }

    /// Directus's LDAP rules: every user found is created (no ALLOW_PUBLIC_REGISTRATION), the
    /// role follows the groups on every login when GROUP_DN is set, the profile is synced with
    /// SYNC_USER_INFO, and the DN is kept as written.
    pub fn provisioning(&self) -> Provisioning {
        Provisioning {
            allow_registration: true,
            default_role: self.common.default_role,
            roles: if self.directory.config().group_dn.is_some() {
                RoleRule::GroupNames
            } else {
                RoleRule::Keep
            },
            sync_user_info: self.common.sync_user_info,
            lower_identifier: false,
        }
    }

    /// What `Auth::sso_login` needs from a directory entry.
    pub fn identity(user: DirectoryUser) -> Identity {
        Identity {
            external_id: user.dn,
            email: user.email,
            first_name: user.first_name,
            last_name: user.last_name,
            groups: user.groups,
            auth_data: None,
        }
    }

    /// The client's answer for a directory failure; the detail goes to the log.
    pub fn error(&self, e: DirectoryError) -> Error {
        match e {
            DirectoryError::InvalidCredentials(d) => {
                Error::because(ApiError::InvalidCredentials, d)
            }
            DirectoryError::ServiceAccount(d) => Error::because(
                ApiError::InvalidProviderConfig {
                    provider: self.common.name.clone(),
                },
                d,
            ),
            // Directus puts ldapts's message in `reason`; gatehouse keeps library text out of
            // 5xx bodies and logs it instead.
            DirectoryError::Unavailable(d) => Error::because(
                ApiError::ServiceUnavailable {
                    service: "ldap".into(),
                    reason: "Service returned unexpected error".into(),
                },
                d,
            ),
        }
    }
}

#[async_trait]
impl Provider for LdapProvider {
    fn name(&self) -> &str {
        &self.common.name
    }
    fn driver(&self) -> Driver {
        Driver::Ldap
    }
    fn label(&self) -> Option<&str> {
        self.common.label.as_deref()
    }
    fn icon(&self) -> Option<&str> {
        self.common.icon.as_deref()
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    async fn health(&self) -> Option<Result<(), String>> {
        Some(self.directory.probe().await.map_err(|e| e.to_string()))
    }

    /// Directus's LDAP `refresh`: the entry must still exist and not be disabled, locked or
    /// expired; otherwise the refresh fails with `INVALID_CREDENTIALS`.
    async fn refresh(&self, user: &User) -> Result<Option<Value>, Error> {
        let dn = user.external_identifier.as_deref().unwrap_or("");
        self.directory
            .still_valid(dn)
            .await
            .map(|()| None)
            .map_err(|e| self.error(e))
    }
}
