//! `POST /users/register` and `GET /users/register/verify-email` (Directus:
//! `api/src/services/users.ts`, `registerUser`, `verifyRegistration`), governed by the
//! `public_registration*` settings.

use std::time::Instant;

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{check_client_url, status_of, Auth, Error};
use crate::auth::admin::check_password_length;
use crate::auth::permissions::filter::{Rule, Vars};
use crate::auth::str_of;
use crate::error::ApiError;
use crate::providers::mail::Template;
use crate::store::Item;

const SCOPE: &str = "pending-registration";

/// A registration as the handler checked it.
#[derive(Clone)]
pub struct Registration {
    pub email: String,
    pub password: String,
    pub verification_url: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// A boolean setting (the item layer reads boolean columns as booleans on both backends).
fn truthy(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool).unwrap_or(false)
}

impl Auth {
    /// Registers a user as the settings say. Off: 403. Otherwise every outcome (a new user,
    /// an email the filter refuses, an email that exists) takes at least `REGISTER_STALL_TIME`
    /// from the start, and an existing email answers exactly as a new one (204), so the answer
    /// does not tell whether an account exists.
    ///
    /// SECURITY: stricter than Directus (docs/compatibility.md): the password policy and length
    /// are checked before the existing-email case, so a weak password is refused for both
    /// alike (Directus refuses it only for a new email, which tells the two apart).
    pub async fn register(&self, input: Registration) -> Result<(), Error> {
        check_client_url(
            input.verification_url.as_deref(),
            &self.config.accounts.user_register_url_allow_list,
            "verify registered users",
        )?;
        let start = Instant::now();
        let settings = self.settings().await?;
        if !truthy(settings.get("public_registration")) {
            return Err(ApiError::Forbidden.into());
        }
        let result = self.register_inner(&settings, &input).await;
        self.stall(start, self.config.accounts.register_stall_time)
            .await;
        result
    }

    async fn register_inner(&self, settings: &Item, input: &Registration) -> Result<(), Error> {
        if !self.email_passes_filter(settings, &input.email) {
            return Err(ApiError::Forbidden.into());
        }
        check_password_length(&input.password)?;
        self.check_password_policy(&input.password).await?;
        let verify = truthy(settings.get("public_registration_verify_email"));
        let existing = self.account_by_email(&input.email).await?;
        if existing.is_some() {
            // SECURITY: the work a new account costs (hashing its password), so the time of the
            // answer does not tell an existing email apart even past the stall.
            let _ = self.hasher.hash(&input.password).await;
        }
        let to = match existing {
            Some(user) if status_of(&user) == "unverified" => {
                str_of(&user, "email").unwrap_or(&input.email).to_string()
            }
            Some(_) => return Ok(()),
            None => {
                let user = json!({
                    "email": input.email,
                    "password": input.password,
                    "role": settings.get("public_registration_role").cloned().unwrap_or(Value::Null),
                    "status": if verify { "unverified" } else { "active" },
                    "first_name": input.first_name,
                    "last_name": input.last_name,
                });
                match self.create_user_as_system(user).await {
                    Ok(_) => {}
                    // Registered at the same moment by another request: an existing email.
                    Err(e) if e.code() == "RECORD_NOT_UNIQUE" => return Ok(()),
                    Err(e) => return Err(e),
                }
                crate::email::normalize(&input.email)
            }
        };
        if !verify {
            return Ok(());
        }
        let token = self.email_token(
            SCOPE,
            &to,
            Map::new(),
            self.config.accounts.email_verification_token_ttl,
        )?;
        let base = match &input.verification_url {
            Some(u) => u.clone(),
            None => crate::urls::below(&self.config.public_url, "users/register/verify-email"),
        };
        let url = crate::urls::with_token(&base, &token);
        let mut extra = Map::new();
        extra.insert("first_name".into(), json!(input.first_name));
        extra.insert("last_name".into(), json!(input.last_name));
        self.mail_link(&to, Template::UserRegistration, url, extra)
            .await;
        Ok(())
    }

    /// `public_registration_email_filter` checked against `{email}` as Directus validates a
    /// payload (`validatePayload`). A filter gatehouse cannot evaluate refuses everyone
    /// (and says so in the log), never admits.
    fn email_passes_filter(&self, settings: &Item, email: &str) -> bool {
        let filter = match settings.get("public_registration_email_filter") {
            None | Some(Value::Null) => return true,
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(v) => v,
                Err(_) => {
                    tracing::warn!(
                        "public_registration_email_filter is not JSON; registration refused"
                    );
                    return false;
                }
            },
            Some(v) => v.clone(),
        };
        if filter.as_object().is_some_and(Map::is_empty) || filter.is_null() {
            return true;
        }
        let vars = Vars {
            now: self.now(),
            ..Vars::default()
        };
        match Rule::parse(&filter, &vars) {
            Ok(rule) => {
                let mut payload = Item::new();
                payload.insert("email".into(), Value::from(email));
                rule.validate(&payload).is_empty()
            }
            Err(e) => {
                tracing::warn!(reason = %e.0, "public_registration_email_filter cannot be evaluated; registration refused");
                false
            }
        }
    }

    /// Activates the token's `unverified` user and returns its id.
    pub async fn verify_registration(&self, token: &str) -> Result<Uuid, Error> {
        let claims = self.tokens.verify_scoped(token, SCOPE, self.now())?;
        let user = match Self::email_claim(&claims) {
            Some(email) => self.account_by_email(email).await?,
            None => None,
        };
        let Some(user) = user.filter(|u| status_of(u) == "unverified") else {
            return Err(ApiError::payload("Invalid verification code").into());
        };
        let id = crate::auth::uuid_of(&user, "id").ok_or(ApiError::Forbidden)?;
        self.update_account(&user, json!({"status": "active"}))
            .await?;
        Ok(id)
    }
}
