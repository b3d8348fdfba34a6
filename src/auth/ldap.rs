//! Signing in with an `ldap` provider: the directory proves the identity
//! (`providers::ldap`), then `Auth::sso_login` finds or creates the user, applies the role
//! from the groups, checks TFA and starts the session (Directus: `api/src/auth/drivers/ldap.ts`,
//! `getUserID` and `login`, inside `api/src/services/authentication.ts` `login`).

use std::time::Instant;

use super::{Auth, Error, Issued, Mode, RequestMeta};
use crate::error::ApiError;
use crate::providers::ldap::LdapProvider;
use crate::providers::Provider;

/// A validated `POST /auth/login/<provider>` body.
pub struct LdapLogin {
    pub identifier: String,
    pub password: String,
    pub otp: Option<String>,
    pub mode: Mode,
}

impl Auth {
    pub async fn ldap_login(
        &self,
        provider: &LdapProvider,
        input: LdapLogin,
        meta: &RequestMeta,
    ) -> Result<Issued, Error> {
        let start = Instant::now();
        // Unlike Directus, which creates or updates the user row before it checks the
        // password, nothing is written until the directory has accepted the bind.
        match provider
            .directory
            .authenticate(&input.identifier, &input.password)
            .await
        {
            Ok(user) => {
                let identity = LdapProvider::identity(user);
                let rules = provider.provisioning();
                let otp = input.otp.as_deref();
                let first = self
                    .sso_login(
                        provider.name(),
                        identity.clone(),
                        &rules,
                        input.mode,
                        otp,
                        meta,
                    )
                    .await;
                match first {
                    // Two first logins of one new user at once: the one that lost the insert
                    // sees the winner's email as taken. Once more finds the row by its DN; a
                    // real clash with another account's email is refused again.
                    Err(e) if matches!(e.api(), ApiError::InvalidProvider) => {
                        self.sso_login(provider.name(), identity, &rules, input.mode, otp, meta)
                            .await
                    }
                    other => other,
                }
            }
            Err(e) => {
                // Every Directus login takes at least LOGIN_STALL_TIME, failures included.
                self.stall(start, self.config.login_stall_time).await;
                Err(provider.error(e))
            }
        }
    }
}
