//! Signing in with an `ldap` provider: the directory proves the identity
//! (`providers::ldap`), then `Auth::sso_login` finds or creates the user, applies the role
//! from the groups, checks TFA and starts the session (Directus: `api/src/auth/drivers/ldap.ts`,
//! `getUserID` and `login`, inside `api/src/services/authentication.ts` `login`).

use std::time::Instant;

use super::{Auth, Error, Issued, Mode, RequestMeta};
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
                // Two first logins of one new user at once: `sso_login` finds the row the
                // winner created.
                self.sso_login(provider.name(), identity, &rules, input.mode, otp, meta)
                    .await
            }
            Err(e) => {
                // Every Directus login takes at least LOGIN_STALL_TIME, failures included.
                self.stall(start, self.config.login_stall_time).await;
                let e = provider.error(e);
                self.metrics.login(provider.name(), e.code());
                Err(e)
            }
        }
    }
}
