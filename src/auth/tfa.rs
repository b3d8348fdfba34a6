//! Two-factor authentication: enrolment and removal (`/users/me/tfa/*`, `/users/:id/tfa/disable`;
//! Directus: `api/src/controllers/users.ts`, `api/src/services/tfa.ts`) and the second-factor
//! check that login and these routes share.
//!
//! Beyond Directus (docs/compatibility.md, "Two-factor authentication"): a TOTP code works
//! once (the last used step is kept in the database, so every node agrees), ten one-time
//! recovery codes come with enabling, and a run of wrong codes makes the user wait.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::admin::MAX_PASSWORD_CHARS;
use super::user::{User, LOCAL_PROVIDER};
use super::{str_of, Accountability, Auth, Error};
use crate::error::ApiError;
use crate::store::{Item, USERS};
use crate::totp;

/// Wrong codes in a row a user may enter before waiting.
pub const FREE_FAILURES: i64 = 5;
/// The first wait; it doubles with each further wrong code, up to `MAX_DELAY_SECONDS`.
pub const BASE_DELAY_SECONDS: i64 = 30;
pub const MAX_DELAY_SECONDS: i64 = 15 * 60;

/// The wait after the `failures`-th wrong code in a row, if any.
pub fn delay_after(failures: i64) -> Option<Duration> {
    if failures < FREE_FAILURES {
        return None;
    }
    let extra = failures - FREE_FAILURES;
    let secs = if extra >= 10 {
        MAX_DELAY_SECONDS
    } else {
        (BASE_DELAY_SECONDS << extra).min(MAX_DELAY_SECONDS)
    };
    Some(Duration::seconds(secs))
}

/// What `/users/me/tfa/generate` answers.
#[derive(Clone)]
pub struct Generated {
    pub secret: String,
    pub otpauth_url: String,
}

/// Whether a recovery code may stand in for the TOTP code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    Accepted,
    Refused,
}

/// The outcome of a second-factor check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Wrong,
    /// Too many wrong codes: nothing is checked until the wait is over.
    Waiting,
}

/// JavaScript truthiness of a body field (Directus tests `!req.body.<field>`).
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

fn required(body: &Map<String, Value>, field: &str) -> Result<(), Error> {
    if truthy(body.get(field)) {
        Ok(())
    } else {
        Err(ApiError::payload(format!("\"{field}\" is required")).into())
    }
}

fn otp_invalid(detail: &str) -> Error {
    Error::because(ApiError::payload("\"otp\" is invalid"), detail.to_string())
}

/// A body that is not an object has no fields, as `req.body.<field>` reads one.
fn fields(body: Value) -> Map<String, Value> {
    match body {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Auth {
    /// The caller's own row, as the TFA routes read it.
    async fn tfa_user(&self, acc: &Accountability) -> Result<User, Error> {
        let id = acc.user.ok_or(ApiError::InvalidCredentials)?;
        let row = self
            .store
            .items
            .item_get(&USERS, &id.to_string().into())
            .await?
            .ok_or(ApiError::InvalidCredentials)?;
        User::from_item(&row)
    }

    /// `POST /users/me/tfa/generate`: a new secret and its `otpauth://` URL; nothing is stored.
    pub async fn tfa_generate(
        &self,
        acc: &Accountability,
        body: Value,
    ) -> Result<Generated, Error> {
        let body = fields(body);
        let user = self.tfa_user(acc).await?;
        let local = user.provider == LOCAL_PROVIDER;
        if local {
            required(&body, "password")?;
            // Directus: `AuthenticationService.verifyPassword`. A password that is not a
            // string, or longer than any password, cannot be the right one.
            let password = body
                .get("password")
                .and_then(Value::as_str)
                .filter(|p| p.chars().count() <= MAX_PASSWORD_CHARS);
            let ok = match password {
                Some(p) => self.hasher.verify(user.password_hash.as_deref(), p).await?,
                None => false,
            };
            if !ok {
                return Err(Error::because(
                    ApiError::InvalidCredentials,
                    "wrong password at tfa/generate",
                ));
            }
        }
        if user.has_tfa() {
            return Err(ApiError::payload("TFA Secret is already set for this user").into());
        }
        if local && user.email.is_none() {
            return Err(ApiError::payload("User must have a valid email to enable TFA").into());
        }
        let settings = self.settings().await?;
        let issuer = str_of(&settings, "project_name")
            .filter(|s| !s.is_empty())
            .unwrap_or("Directus")
            .to_string();
        let account = user
            .email
            .clone()
            .or_else(|| user.external_identifier.clone())
            .unwrap_or_else(|| format!("user_{}", user.id));
        let secret = totp::new_secret();
        Ok(Generated {
            otpauth_url: totp::otpauth_url(&issuer, &account, &secret),
            secret,
        })
    }

    /// `POST /users/me/tfa/enable`: stores the secret once a code for it verifies, with the
    /// caller's permissions (Directus writes it through `ItemsService`), and returns ten new
    /// recovery codes.
    pub async fn tfa_enable(
        &self,
        acc: &Accountability,
        body: Value,
    ) -> Result<Vec<String>, Error> {
        let body = fields(body);
        acc.user.ok_or(ApiError::InvalidCredentials)?;
        required(&body, "secret")?;
        required(&body, "otp")?;
        let user = self.tfa_user(acc).await?;
        if user.has_tfa() {
            return Err(ApiError::payload("TFA Secret is already set for this user").into());
        }
        let Some(secret) = body
            .get("secret")
            .and_then(Value::as_str)
            .filter(|s| totp::valid_secret(s))
        else {
            return Err(ApiError::payload("\"secret\" is invalid").into());
        };
        let now = self.now();
        let otp = body.get("otp").and_then(Value::as_str).unwrap_or("");
        if !totp::verify(secret, otp, now) {
            return Err(otp_invalid(
                "the otp does not verify against the new secret",
            ));
        }
        self.write_tfa_secret(acc, user.id, Value::from(secret))
            .await?;
        // A fresh state: the enabling code's step is used, no wrong codes, new recovery codes.
        self.store.tfa.tfa_forget(user.id).await?;
        self.store
            .tfa
            .tfa_use_step(user.id, totp::step(now))
            .await?;
        let codes = self.replace_recovery_codes(user.id, secret, now).await?;
        tracing::info!(user = %user.id, "two-factor authentication enabled");
        Ok(codes)
    }

    /// `POST /users/me/tfa/disable`: needs a current code (or a recovery code).
    pub async fn tfa_disable(&self, acc: &Accountability, body: Value) -> Result<(), Error> {
        let (user, _) = self
            .tfa_user_passing(acc, body, Recovery::Accepted, "tfa/disable")
            .await?;
        self.write_tfa_secret(acc, user.id, Value::Null).await?;
        self.store.tfa.tfa_forget(user.id).await?;
        tracing::info!(user = %user.id, "two-factor authentication disabled");
        Ok(())
    }

    /// `POST /users/:id/tfa/disable`: admins only; an unknown user is nothing to do.
    pub async fn tfa_admin_disable(&self, acc: &Accountability, id: &str) -> Result<(), Error> {
        acc.user.ok_or(ApiError::InvalidCredentials)?;
        if !self.is_admin(acc).await? {
            return Err(ApiError::Forbidden.into());
        }
        // Directus's `validateKeys`: a key that is not a uuid is FORBIDDEN.
        let id = Uuid::parse_str(id).map_err(|_| ApiError::Forbidden)?;
        let exists = self
            .store
            .items
            .item_get(&USERS, &id.to_string().into())
            .await?
            .is_some();
        if exists {
            self.write_tfa_secret(acc, id, Value::Null).await?;
            self.store.tfa.tfa_forget(id).await?;
            tracing::info!(user = %id, "two-factor authentication disabled by an admin");
        }
        Ok(())
    }

    /// `POST /users/me/tfa/recovery-codes` (gatehouse's): ten new recovery codes for a
    /// current TOTP code; the old ones stop working.
    pub async fn tfa_recovery_codes(
        &self,
        acc: &Accountability,
        body: Value,
    ) -> Result<Vec<String>, Error> {
        let (user, secret) = self
            .tfa_user_passing(acc, body, Recovery::Refused, "tfa/recovery-codes")
            .await?;
        self.replace_recovery_codes(user.id, &secret, self.now())
            .await
    }

    /// The caller, who has TFA on, once the `otp` of `body` passes the second factor; a wrong
    /// code and one sent during the wait are alike `"otp" is invalid`. Also its secret.
    async fn tfa_user_passing(
        &self,
        acc: &Accountability,
        body: Value,
        recovery: Recovery,
        route: &str,
    ) -> Result<(User, String), Error> {
        let body = fields(body);
        acc.user.ok_or(ApiError::InvalidCredentials)?;
        required(&body, "otp")?;
        let user = self.tfa_user(acc).await?;
        let secret = self.tfa_secret_of(&user)?.to_string();
        let otp = body.get("otp").and_then(Value::as_str).unwrap_or("");
        match self.second_factor(user.id, &secret, otp, recovery).await? {
            Verdict::Passed => Ok((user, secret)),
            refused => Err(otp_invalid(&format!("{route}: second factor {refused:?}"))),
        }
    }

    fn tfa_secret_of<'a>(&self, user: &'a User) -> Result<&'a str, Error> {
        user.tfa_secret.as_deref().ok_or_else(|| {
            ApiError::payload(format!("User \"{}\" doesn't have TFA enabled", user.id)).into()
        })
    }

    /// Writes `tfa_secret` as Directus's `ItemsService` would for this caller: admins
    /// directly, everyone else through their update permissions on `directus_users`.
    async fn write_tfa_secret(
        &self,
        acc: &Accountability,
        id: Uuid,
        value: Value,
    ) -> Result<(), Error> {
        let mut patch = Item::new();
        patch.insert("tfa_secret".into(), value);
        if !self.is_admin(acc).await? {
            patch = self.check_item_update_as_caller(acc, id, patch).await?;
        }
        self.store
            .items
            .item_update(&USERS, &id.to_string().into(), &patch)
            .await?;
        Ok(())
    }

    async fn replace_recovery_codes(
        &self,
        user: Uuid,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, Error> {
        let codes = totp::new_recovery_codes();
        let hashes: Vec<String> = codes
            .iter()
            .filter_map(|c| totp::recovery_code_hash(secret, c))
            .collect();
        if hashes.len() != codes.len() {
            return Err(ApiError::internal(anyhow::anyhow!(
                "BUG: a generated recovery code does not read back"
            ))
            .into());
        }
        self.store
            .tfa
            .recovery_codes_replace(user, &hashes, now)
            .await?;
        Ok(codes)
    }

    /// The second-factor check of login and the TFA routes: refused outright while the user
    /// waits after too many wrong codes; a TOTP code passes once (its step, or a newer one,
    /// must not have been used); a recovery code, where accepted, passes once. A wrong code
    /// counts towards the wait; a right one clears the count.
    pub async fn second_factor(
        &self,
        user: Uuid,
        secret: &str,
        code: &str,
        recovery: Recovery,
    ) -> Result<Verdict, Error> {
        let now = self.now();
        if let Some(until) = self.store.tfa.tfa_locked_until(user).await? {
            if until > now {
                self.metrics.otp_failure();
                return Ok(Verdict::Waiting);
            }
        }
        let passed = if totp::verify(secret, code, now) {
            // SECURITY: one conditional update decides, so a code works once on every node.
            self.store.tfa.tfa_use_step(user, totp::step(now)).await?
        } else if recovery == Recovery::Accepted {
            match totp::recovery_code_hash(secret, code) {
                Some(hash) => self.store.tfa.recovery_code_use(user, &hash).await?,
                None => false,
            }
        } else {
            false
        };
        if passed {
            self.store.tfa.tfa_failures_reset(user).await?;
            return Ok(Verdict::Passed);
        }
        self.metrics.otp_failure();
        let failures = self.store.tfa.tfa_failure(user).await?;
        if let Some(wait) = delay_after(failures) {
            self.store.tfa.tfa_lock(user, now + wait).await?;
            self.metrics.lockout("otp");
            tracing::warn!(
                target: "security",
                user = %user,
                failures,
                wait_seconds = wait.num_seconds(),
                "wrong second-factor codes in a row; codes refused for a while"
            );
        }
        Ok(Verdict::Wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_wait_starts_after_five_and_doubles_to_a_cap() {
        assert_eq!(delay_after(4), None);
        assert_eq!(delay_after(5), Some(Duration::seconds(30)));
        assert_eq!(delay_after(6), Some(Duration::seconds(60)));
        assert_eq!(delay_after(9), Some(Duration::seconds(480)));
        assert_eq!(delay_after(10), Some(Duration::seconds(900)));
        assert_eq!(delay_after(i64::MAX), Some(Duration::seconds(900)));
    }

    #[test]
    fn truthiness_as_javascript_reads_it() {
        for v in [json!(null), json!(""), json!(0), json!(false)] {
            assert!(!truthy(Some(&v)), "{v}");
        }
        assert!(!truthy(None));
        for v in [json!("x"), json!(1), json!(true), json!({}), json!([])] {
            assert!(truthy(Some(&v)), "{v}");
        }
    }
}
