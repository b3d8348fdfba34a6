//! The account flows that send mail (Directus: `api/src/services/users.ts`): password reset
//! (`reset`), invites (`invite`) and public registration (`register`). Each mails a link that
//! carries a scoped token (src/tokens.rs `sign_scoped`); the link is built by src/urls.rs.

mod invite;
mod register;
mod reset;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{str_of, uuid_of, Auth, Error};
use crate::error::ApiError;
use crate::providers::mail::{Letter, Template};
use crate::store::Item;

pub use register::Registration;
pub use reset::simple_hash;

/// The longest email a flow looks up; longer input (or input with NUL, which PostgreSQL
/// cannot compare) matches no user.
const MAX_LOOKUP_EMAIL: usize = 1024;

impl Auth {
    /// The user with this email (case-insensitive), if the input can name one at all.
    async fn account_by_email(&self, email: &str) -> Result<Option<Item>, Error> {
        if email.len() > MAX_LOOKUP_EMAIL || email.contains('\0') {
            return Ok(None);
        }
        self.find_user_by_email(email).await
    }

    /// The email claim of a verified scoped token; a token without one names no user.
    fn email_claim(claims: &Map<String, Value>) -> Option<&str> {
        claims.get("email").and_then(Value::as_str)
    }

    /// Mails `url` (and `email`) with `template`; a failure to queue is logged, never
    /// returned, as Directus's flows treat mail (`mailService.send(...).catch(log)`).
    async fn mail_link(
        &self,
        to: &str,
        template: Template,
        url: String,
        extra: Map<String, Value>,
    ) {
        let mut vars = Map::new();
        vars.insert("url".into(), Value::from(url));
        vars.insert("email".into(), Value::from(to));
        vars.extend(extra);
        let letter = Letter {
            to: to.to_string(),
            template,
            vars,
        };
        if let Err(e) = self.send_mail(letter).await {
            tracing::warn!(
                template = template.name(),
                code = e.code(),
                "an account mail could not be queued"
            );
        }
    }

    /// A scoped token for `email`.
    fn email_token(
        &self,
        scope: &str,
        email: &str,
        more: Map<String, Value>,
        ttl: std::time::Duration,
    ) -> Result<String, Error> {
        let mut claims = Map::new();
        claims.insert("email".into(), Value::from(email));
        claims.extend(more);
        Ok(self.tokens.sign_scoped(scope, claims, ttl, self.now())?)
    }

    /// Sets fields of a user with no caller (as Directus's flows update with admin rights):
    /// the payload rules apply (password policy and length, hashing) and a new password ends
    /// every session of the user.
    async fn update_account(&self, user: &Item, patch: Value) -> Result<(), Error> {
        let id: Uuid = uuid_of(user, "id").ok_or(ApiError::Forbidden)?;
        self.update_user_as_system(&id.to_string(), patch).await
    }
}

/// A user's stored status.
fn status_of(user: &Item) -> &str {
    str_of(user, "status").unwrap_or("")
}

/// A URL a client chose for a link: allowed by `list`, or Directus's 400 with `reason`.
fn check_client_url(url: Option<&str>, list: &[String], what: &str) -> Result<(), Error> {
    match url {
        Some(u) if !crate::urls::is_url_allowed(u, list) => {
            Err(ApiError::payload(format!("URL \"{u}\" can't be used to {what}")).into())
        }
        _ => Ok(()),
    }
}
