//! `POST /users/invite` and `/users/invite/accept` (Directus: `api/src/services/users.ts`,
//! `inviteUser`, `acceptInvite`).

use serde_json::{json, Map};
use uuid::Uuid;

use super::{check_client_url, status_of, Auth, Error};
use crate::auth::{str_of, Accountability};
use crate::error::ApiError;
use crate::providers::mail::Template;

const SCOPE: &str = "invite";

impl Auth {
    /// Invites each email with `role`: an unknown email becomes an `invited` user, a user
    /// still invited gets the new role, and both are mailed an accept link. Users past the
    /// invite (active, suspended, ...) are left alone and get no mail.
    ///
    /// Only admins invite: creating users is admin-only in gatehouse (src/auth/admin.rs), and
    /// a caller who may not gets 403 where Directus answers 204 and does nothing
    /// (docs/compatibility.md). A disallowed `invite_url` is refused before any write.
    pub async fn invite_users(
        &self,
        acc: &Accountability,
        emails: &[String],
        role: Uuid,
        invite_url: Option<&str>,
    ) -> Result<(), Error> {
        self.require_admin(acc).await?;
        check_client_url(
            invite_url,
            &self.config.accounts.user_invite_url_allow_list,
            "invite users",
        )?;
        let mut seen = std::collections::BTreeSet::new();
        for email in emails {
            // One mail per address, however often it is listed.
            if !seen.insert(crate::email::key(email)) {
                continue;
            }
            let to = match self.account_by_email(email).await? {
                None => {
                    self.create_user_as_system(
                        json!({"email": email, "role": role.to_string(), "status": "invited"}),
                    )
                    .await?;
                    crate::email::normalize(email)
                }
                Some(user) if status_of(&user) == "invited" => {
                    if str_of(&user, "role") != Some(role.to_string().as_str()) {
                        self.update_account(&user, json!({"role": role.to_string()}))
                            .await?;
                    }
                    str_of(&user, "email").unwrap_or(email).to_string()
                }
                Some(_) => continue,
            };
            let token = self.email_token(
                SCOPE,
                &to,
                Map::new(),
                self.config.accounts.user_invite_token_ttl,
            )?;
            let base = match invite_url {
                Some(u) => u.to_string(),
                None => crate::urls::below(&self.config.public_url, "admin/accept-invite"),
            };
            let url = crate::urls::with_token(&base, &token);
            self.mail_link(&to, Template::UserInvitation, url, Map::new())
                .await;
        }
        Ok(())
    }

    /// Accepts an invite: the token's user must still be `invited`; it gets the password
    /// (policy and length checked) and becomes active.
    pub async fn accept_invite(&self, token: &str, password: &str) -> Result<(), Error> {
        let claims = self.tokens.verify_scoped(token, SCOPE, self.now())?;
        let user = match Self::email_claim(&claims) {
            Some(email) => self.account_by_email(email).await?,
            None => None,
        };
        let Some(user) = user.filter(|u| status_of(u) == "invited") else {
            return Err(ApiError::InvalidInvite.into());
        };
        self.update_account(&user, json!({"password": password, "status": "active"}))
            .await
    }
}
