//! Login, refresh and logout (Directus: `api/src/services/authentication.ts`,
//! `login`, `refresh`, `logout`; `api/src/auth/drivers/local.ts`).
//!
//! Refresh rotates in every mode the way Directus rotates session mode: the old row keeps a
//! `next_token` pointer for `SESSION_REFRESH_GRACE_PERIOD`, so concurrent refreshes all get
//! the same successor, and the database decides the race. Every token's login ("family") is
//! kept by hash in `gatehouse_session_lineage`; a rotated token seen after its grace window
//! is treated as stolen and ends the whole family.

use std::time::Instant;

use serde_json::Value;
use uuid::Uuid;

use super::user::{User, LOCAL_PROVIDER};
use super::Error;
use super::{Auth, Issued, Mode, RequestMeta};
use crate::error::ApiError;
use crate::store::{Activity, Item, Lineage, Rotation, Session, USERS};
use crate::tokens::{refresh_token, token_hash, AccessClaims};

/// A `directus_activity` row about a user (`item`), by `by` (None: the public), as Directus
/// writes one for a login, a logout or an update.
fn user_activity(
    action: &'static str,
    by: Option<Uuid>,
    item: Uuid,
    meta: &RequestMeta,
) -> Activity {
    Activity {
        action,
        user: by,
        ip: meta.ip_string(),
        user_agent: meta.user_agent.clone(),
        origin: meta.origin.clone(),
        collection: "directus_users",
        item: item.to_string(),
    }
}

pub struct LoginInput {
    pub email: String,
    pub password: String,
    pub otp: Option<String>,
    pub mode: Mode,
}

impl Auth {
    /// `directus_settings.auth_login_attempts` (default 25; null means unlimited).
    async fn login_attempt_limit(&self) -> Result<Option<i64>, Error> {
        Ok(self
            .settings()
            .await?
            .get("auth_login_attempts")
            .and_then(Value::as_i64))
    }

    /// The user with this email, compared case-insensitively in Unicode and in any
    /// normalisation form (`crate::email`).
    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<Item>, Error> {
        Ok(self
            .store
            .access
            .user_by_email(&crate::email::key(email))
            .await?)
    }

    pub async fn login(&self, input: LoginInput, meta: RequestMeta) -> Result<Issued, Error> {
        let start = Instant::now();
        let result = self.login_inner(input, &meta).await;
        self.stall(start, self.config.login_stall_time).await;
        result
    }

    /// The local provider: email and password, then TFA (Directus:
    /// `api/src/services/authentication.ts`, `login`, in its order of checks).
    async fn login_inner(&self, input: LoginInput, meta: &RequestMeta) -> Result<Issued, Error> {
        let user = self
            .find_user_by_email(&input.email)
            .await?
            .map(|row| User::from_item(&row))
            .transpose()?
            .filter(|u| u.is_active() && u.provider == LOCAL_PROVIDER);
        let Some(user) = user else {
            // SECURITY: same work as a real check, so timing does not reveal accounts.
            self.hasher.verify(None, &input.password).await?;
            return Err(Error::because(
                ApiError::InvalidCredentials,
                "no active local user has this email",
            ));
        };

        // Directus's rule as users see it: after `auth_login_attempts` consecutive failures,
        // the next login suspends the user.
        // SECURITY: only failed verifications are counted, each with one atomic increment, so
        // right passwords never count however many arrive at once. Directus uses a point before
        // the check and gives it back only after a success, so a burst of correct logins
        // suspends the account; and it still issues tokens on the attempt that suspends, which
        // gatehouse refuses (docs/compatibility.md).
        let limit = self.login_attempt_limit().await?;
        if let Some(limit) = limit {
            if self.store.counters.login_failures(user.id).await? >= limit {
                self.suspend_for_attempts(user.id, meta).await?;
                self.hasher.verify(None, &input.password).await?;
                return Err(Error::because(
                    ApiError::InvalidCredentials,
                    "the failed-login limit was reached: user suspended",
                ));
            }
        }
        if !self
            .hasher
            .verify(user.password_hash.as_deref(), &input.password)
            .await?
        {
            if limit.is_some() {
                self.store.counters.login_failure(user.id).await?;
            }
            return Err(Error::because(
                ApiError::InvalidCredentials,
                "wrong password",
            ));
        }
        // After the password, as in Directus: a wrong password without otp is
        // INVALID_CREDENTIALS. Each code works once; a recovery code may stand in (auth/tfa.rs).
        if let Some(secret) = &user.tfa_secret {
            let Some(otp) = input.otp.as_deref().filter(|o| !o.is_empty()) else {
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
        self.start_session(&user, input.mode, meta).await
    }

    /// Starts a session for a user whose identity a provider has proven (the password path
    /// now, every SSO driver later): global access for the client's IP, a session row with a
    /// new lineage family, Directus's `login` activity row, `last_access`, the failed-login
    /// count cleared, and the credentials for `mode`.
    pub async fn start_session(
        &self,
        user: &User,
        mode: Mode,
        meta: &RequestMeta,
    ) -> Result<Issued, Error> {
        let id = user.id;
        let access = self.access(Some(id), user.role, meta.ip).await?;
        let now = self.now();
        let token = refresh_token();
        // Directus gives the row REFRESH_TOKEN_TTL at login in every mode; a session-mode
        // refresh then uses SESSION_COOKIE_TTL.
        let session = Session {
            token: token.clone(),
            user: Some(id),
            expires: self.expiry(self.config.refresh_token_ttl),
            ip: meta.ip_string(),
            user_agent: meta.user_agent.clone(),
            origin: meta.origin.clone(),
            share: None,
            next_token: None,
        };
        let lineage = Lineage {
            token_hash: token_hash(&token),
            family: Uuid::new_v4(),
            user: Some(id),
            rotated_at: None,
            expires: self.expiry(self.config.refresh_token_ttl),
        };
        self.store
            .sessions
            .session_insert(&session, &lineage)
            .await?;
        let activity = user_activity("login", Some(id), id, meta);
        self.store.meta.activity_insert(&activity, now).await?;
        self.store.sessions.touch_last_access(id, now).await?;
        self.store.counters.login_attempts_reset(id).await?;
        let enforce_tfa = access.enforce_tfa && !user.has_tfa();
        self.issue(mode, id, user.role, access, enforce_tfa, token)
    }

    /// Suspends a user who used up its login attempts, as Directus records it: an `update`
    /// activity row by the request's (public) accountability.
    async fn suspend_for_attempts(&self, id: Uuid, meta: &RequestMeta) -> Result<(), Error> {
        tracing::warn!(target: "security", user = %id, "too many failed logins; user suspended");
        self.metrics.lockout("login");
        self.set_status(id, "suspended").await?;
        self.store.counters.login_attempts_reset(id).await?;
        let activity = user_activity("update", None, id, meta);
        self.store
            .meta
            .activity_insert(&activity, self.now())
            .await?;
        Ok(())
    }

    fn issue(
        &self,
        mode: Mode,
        id: Uuid,
        role: Option<Uuid>,
        access: super::access::Access,
        enforce_tfa: bool,
        token: String,
    ) -> Result<Issued, Error> {
        let ttl = if mode == Mode::Session {
            self.config.session_cookie.ttl
        } else {
            self.config.access_token_ttl
        };
        let now = self.now().timestamp();
        let claims = AccessClaims {
            id,
            role,
            app_access: access.app,
            admin_access: access.admin,
            enforce_tfa: enforce_tfa.then_some(true),
            session: (mode == Mode::Session).then(|| token.clone()),
            iat: now,
            exp: now + ttl.as_secs() as i64,
            iss: "directus".into(),
        };
        Ok(Issued {
            mode,
            access_token: self.tokens.sign(&claims)?,
            refresh_token: token,
            expires_ms: ttl.as_millis() as u64,
        })
    }

    pub(crate) async fn set_status(&self, id: Uuid, status: &str) -> Result<(), Error> {
        let mut patch = Item::new();
        patch.insert("status".into(), Value::from(status));
        self.store
            .items
            .item_update(&USERS, &Value::from(id.to_string()), &patch)
            .await?;
        if status != "active" {
            self.store.sessions.sessions_delete_user(id, None).await?;
        }
        Ok(())
    }

    /// Ends every session descended from the same login as this token.
    async fn revoke_family(&self, family: Uuid, user: Option<Uuid>) -> Result<u64, Error> {
        let Some(user) = user else { return Ok(0) };
        let hashes: std::collections::HashSet<String> = self
            .store
            .sessions
            .lineage_hashes(family)
            .await?
            .into_iter()
            .collect();
        let doomed: Vec<String> = self
            .store
            .sessions
            .session_tokens_of_user(user)
            .await?
            .into_iter()
            .filter(|t| hashes.contains(&token_hash(t)))
            .collect();
        Ok(self.store.sessions.sessions_delete(&doomed).await?)
    }

    pub async fn refresh(
        &self,
        token: &str,
        mode: Mode,
        meta: RequestMeta,
    ) -> Result<Issued, Error> {
        // No stored token holds a NUL (PostgreSQL would refuse the lookup itself).
        if token.contains('\0') {
            return Err(ApiError::InvalidCredentials.into());
        }
        if !self.providers.is_empty() {
            self.provider_refresh(token).await?;
        }
        let now = self.now();
        let ttl = if mode == Mode::Session {
            self.config.session_cookie.ttl
        } else {
            self.config.refresh_token_ttl
        };
        let new_token = refresh_token();
        // One transaction checks the token and its user and, if all is well, rotates it.
        let rotation = Rotation {
            old_token: token.to_string(),
            old_hash: token_hash(token),
            grace_expires: self.expiry(self.config.session_refresh_grace_period),
            successor: Session {
                token: new_token.clone(),
                user: None,
                expires: self.expiry(ttl),
                ip: meta.ip_string(),
                user_agent: meta.user_agent.clone(),
                origin: meta.origin.clone(),
                share: None,
                next_token: None,
            },
            successor_hash: token_hash(&new_token),
            new_family: Uuid::new_v4(),
            lineage_expires: self.expiry(
                self.config
                    .refresh_token_ttl
                    .max(self.config.session_cookie.ttl),
            ),
            now,
        };
        let state = self.store.sessions.refresh_session(&rotation).await?;

        // The row this call rotated was checked live in the transaction; after it, its expiry
        // is the grace window's end, which with `SESSION_REFRESH_GRACE_PERIOD=0` is `now`
        // (stored to the millisecond, so a little before it).
        let Some(session) = state.session.filter(|s| state.won || s.expires >= now) else {
            if let Some(lineage) = state.lineage.filter(|l| l.rotated_at.is_some()) {
                self.metrics.refresh_reuse();
                let ended = self.revoke_family(lineage.family, lineage.user).await?;
                tracing::warn!(
                    target: "security",
                    family = %lineage.family,
                    user = ?lineage.user,
                    ip = ?meta.ip,
                    sessions_ended = ended,
                    "refresh token reused after its grace window; its session family was ended"
                );
            }
            return Err(ApiError::InvalidCredentials.into());
        };
        // Share sessions are not served by gatehouse.
        let (Some(user_id), None) = (session.user, session.share) else {
            return Err(ApiError::InvalidCredentials.into());
        };
        let user = state
            .user
            .filter(|u| u.id == user_id)
            .ok_or(ApiError::InvalidCredentials)?;
        if user.status != "active" {
            let start = Instant::now();
            self.store
                .sessions
                .sessions_delete(&[token.to_string()])
                .await?;
            self.stall(start, self.config.login_stall_time).await;
            return Err(if user.status == "suspended" {
                ApiError::UserSuspended
            } else {
                ApiError::InvalidCredentials
            }
            .into());
        }
        let successor = match session.next_token {
            _ if state.won => new_token,
            // Rotated moments ago by a concurrent request: same successor, if it still lives.
            Some(next) if state.successor_alive => next,
            _ => return Err(ApiError::InvalidCredentials.into()),
        };
        let access = self.access(Some(user_id), user.role, meta.ip).await?;
        let enforce_tfa = access.enforce_tfa && !user.has_tfa_secret;
        self.issue(mode, user_id, user.role, access, enforce_tfa, successor)
    }

    /// The provider's refresh hook for a session of an SSO user (Directus:
    /// `api/src/services/authentication.ts`, `refresh`): it runs before the token rotates, so a
    /// refusal (the provider answered `invalid_grant`: INVALID_TOKEN) leaves the client's
    /// token as it was. Sessions that are not live are left to the rotation's own checks.
    async fn provider_refresh(&self, token: &str) -> Result<(), Error> {
        let Some(user_id) = self
            .store
            .sessions
            .session_get(token)
            .await?
            .filter(|s| s.expires >= self.now())
            .and_then(|s| s.user)
        else {
            return Ok(());
        };
        let Some(row) = self
            .store
            .items
            .item_get(&USERS, &Value::from(user_id.to_string()))
            .await?
        else {
            return Ok(());
        };
        let user = User::from_item(&row)?;
        if !user.is_active() || user.provider == LOCAL_PROVIDER {
            return Ok(());
        }
        let Some(provider) = self.providers.get(&user.provider).cloned() else {
            return Ok(());
        };
        if let Some(auth_data) = provider.refresh(&user).await? {
            let mut patch = Item::new();
            patch.insert("auth_data".into(), auth_data);
            self.store
                .items
                .item_update(&USERS, &Value::from(user.id.to_string()), &patch)
                .await?;
        }
        Ok(())
    }

    /// Ends the session behind this token and everything rotated from the same login.
    /// Unknown tokens are ignored, as Directus does.
    pub async fn logout(&self, token: &str, meta: RequestMeta) -> Result<(), Error> {
        if token.contains('\0') {
            return Ok(()); // names no session: ignored like any unknown token
        }
        let Some(session) = self.store.sessions.session_get(token).await? else {
            return Ok(());
        };
        let Some(user) = session.user else {
            return Ok(());
        };
        match self.store.sessions.lineage_get(&token_hash(token)).await? {
            Some(l) => {
                self.revoke_family(l.family, Some(user)).await?;
            }
            None => {
                let mut doomed = vec![token.to_string()];
                doomed.extend(session.next_token.clone());
                self.store.sessions.sessions_delete(&doomed).await?;
            }
        }
        let activity = user_activity("logout", Some(user), user, &meta);
        self.store
            .meta
            .activity_insert(&activity, self.now())
            .await?;
        Ok(())
    }
}
