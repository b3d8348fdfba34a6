//! `POST /auth/password/request` and `/auth/password/reset` (Directus: `api/src/services/users.ts`,
//! `requestPasswordReset`, `resetPassword`).

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;

use super::{check_client_url, status_of, Auth, Error};
use crate::auth::str_of;
use crate::error::ApiError;
use crate::providers::mail::Template;

const SCOPE: &str = "password-reset";
/// Directus's reset tokens live one day; it is not configurable there either.
const TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Directus's `getSimpleHash` (`packages/utils/shared/get-simple-hash.ts`): a Java-style 32-bit
/// string hash over UTF-16 code units, its absolute value in lower-case hex. It binds a reset
/// token to the password hash stored when it was issued, so the token dies with that password.
pub fn simple_hash(text: &str) -> String {
    let h = text
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    format!("{:x}", i64::from(h).abs())
}

/// What the reset token's `hash` claim is computed from: `"" + user.password`, so a user
/// without a password hashes the text `null`, as in Directus.
fn password_digest(user: &crate::store::Item) -> String {
    simple_hash(str_of(user, "password").unwrap_or("null"))
}

impl Auth {
    /// Mails a reset link to an active local user. Every other case (unknown, not active,
    /// an SSO user) ends the same way, and every way takes at least the stall (500 ms in
    /// Directus, measured from the start), so the answer tells nothing about the account.
    pub async fn request_password_reset(
        &self,
        email: &str,
        reset_url: Option<&str>,
    ) -> Result<(), Error> {
        let start = Instant::now();
        let accounts = &self.config.accounts;
        check_client_url(
            reset_url,
            &accounts.password_reset_url_allow_list,
            "reset passwords",
        )?;
        let result = self.send_reset_link(email, reset_url).await;
        self.stall(start, accounts.password_reset_stall_time).await;
        result
    }

    async fn send_reset_link(&self, email: &str, reset_url: Option<&str>) -> Result<(), Error> {
        let Some(user) = self.account_by_email(email).await? else {
            return Ok(());
        };
        if status_of(&user) != "active" || str_of(&user, "provider") != Some("default") {
            return Ok(());
        }
        let Some(stored) = str_of(&user, "email").map(str::to_string) else {
            return Ok(());
        };
        let mut more = Map::new();
        more.insert("hash".into(), Value::from(password_digest(&user)));
        let token = self.email_token(SCOPE, &stored, more, TTL)?;
        let base = match reset_url {
            Some(u) => u.to_string(),
            None => crate::urls::below(&self.config.public_url, "admin/reset-password"),
        };
        let url = crate::urls::with_token(&base, &token);
        self.mail_link(&stored, Template::PasswordReset, url, Map::new())
            .await;
        Ok(())
    }

    /// Sets a new password with a reset token. The token must be a valid `password-reset`
    /// token of an active user whose password is still the one the token was issued for
    /// (single use). The policy is checked after the token (Directus raises it at update time);
    /// the new password ends every session of the user.
    ///
    /// SECURITY: the `hash` claim is compared in constant time (docs/compatibility.md).
    pub async fn reset_password(&self, token: &str, password: &str) -> Result<(), Error> {
        let claims = self.tokens.verify_scoped(token, SCOPE, self.now())?;
        let hash = claims
            .get("hash")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
            .ok_or(ApiError::Forbidden)?;
        let email = Self::email_claim(&claims).ok_or(ApiError::Forbidden)?;
        let user = self
            .account_by_email(email)
            .await?
            .ok_or(ApiError::Forbidden)?;
        let current = password_digest(&user);
        let same: bool = current.as_bytes().ct_eq(hash.as_bytes()).into();
        if status_of(&user) != "active" || !same {
            return Err(ApiError::Forbidden.into());
        }
        // SECURITY: the hash binding ends a token once the password changes, but two resets
        // with one token at the same moment would both pass it (Directus has this race). The
        // first to record the token's hash in the database wins, on every node; the others
        // are 403 (docs/compatibility.md).
        // A password the policy refuses must not use the token up, so it is checked first.
        self.check_password_policy(password).await?;
        let claim = uuid::Uuid::new_v4().to_string();
        // `gatehouse_meta.key` holds 64 characters: 224 bits of the token's SHA-256 are plenty.
        let hash = crate::tokens::token_hash(token);
        let key = format!("reset:{}", hash.get(..56).unwrap_or(&hash));
        if self.store.meta.meta_get_or_insert(&key, &claim).await? != claim {
            return Err(Error::because(
                ApiError::Forbidden,
                "this reset token was already used",
            ));
        }
        self.update_account(&user, json!({"password": password, "status": "active"}))
            .await?;
        tracing::info!(user = ?str_of(&user, "id"), "password reset; sessions ended");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_hash_is_directus_s() {
        // Values of `@directus/utils` 13.5.5 getSimpleHash.
        for (text, hash) in [
            ("", "0"),
            ("a", "61"),
            ("null", "33c587"),
            ("hello world", "6aefe2c4"),
            ("$argon2id$v=19$m=65536,t=3,p=4$abc$def", "1022088c"),
            ("é😀", "1e780c"),
        ] {
            assert_eq!(simple_hash(text), hash, "{text}");
        }
        // ToInt32 of -2^31 stays negative; its absolute value is 2^31.
        assert_eq!(format!("{:x}", i64::from(i32::MIN).abs()), "80000000");
    }
}
