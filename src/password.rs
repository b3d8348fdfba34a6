//! argon2 password hashing and verification (contract §5.1), off the async workers.
//!
//! Each hash takes `HASH_MEMORY_COST` KiB (64 MiB by default), so hashing runs on the
//! blocking pool behind a semaphore sized to the core count; a login that cannot get a slot
//! within `GATEHOUSE_HASH_WAIT` answers 503 instead of queueing without bound.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params, Version};
use tokio::sync::{OnceCell, Semaphore};

use crate::config::HashConfig;
use crate::error::ApiError;

/// Stored hashes asking for more memory than this are refused rather than run.
const MAX_VERIFY_MEMORY_KIB: u32 = 1024 * 1024;

#[derive(Clone)]
pub struct Hasher {
    inner: Arc<Inner>,
}

struct Inner {
    config: HashConfig,
    slots: Semaphore,
    dummy: OnceCell<String>,
}

impl Hasher {
    pub fn new(config: HashConfig) -> Self {
        let slots = Semaphore::new(config.concurrency);
        Self {
            inner: Arc::new(Inner {
                config,
                slots,
                dummy: OnceCell::new(),
            }),
        }
    }

    fn argon2(c: &HashConfig) -> Result<Argon2<'static>, ApiError> {
        let params = Params::new(
            c.memory_cost,
            c.time_cost,
            c.parallelism,
            Some(c.hash_length),
        )
        .map_err(ApiError::internal)?;
        Ok(Argon2::new(c.variant, Version::V0x13, params))
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(self.inner.config.wait, self.inner.slots.acquire())
            .await
            .map_err(|_| {
                tracing::warn!("password hashing queue full; answering 503");
                ApiError::ServiceUnavailable {
                    service: "authentication".into(),
                    reason: "Too many logins at once, try again shortly".into(),
                }
            })?
            .map_err(ApiError::internal)?;
        let out = tokio::task::spawn_blocking(job)
            .await
            .map_err(ApiError::internal);
        drop(permit);
        out
    }

    /// Hashes a new password with the configured parameters (a PHC string).
    pub async fn hash(&self, password: &str) -> Result<String, ApiError> {
        let config = self.inner.config.clone();
        let password = password.to_string();
        self.run(move || {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            Self::argon2(&config)?
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(ApiError::internal)
        })
        .await?
    }

    /// Verifies against a stored PHC string; with none (unknown user, no password) it runs
    /// the same work against a dummy hash and answers false, so timing does not tell.
    pub async fn verify(&self, stored: Option<&str>, password: &str) -> Result<bool, ApiError> {
        let (phc, real) = match stored {
            Some(s) if !s.is_empty() => (s.to_string(), true),
            _ => (self.dummy().await?.to_string(), false),
        };
        let password = password.to_string();
        let ok = self
            .run(move || {
                let Ok(hash) = PasswordHash::new(&phc) else {
                    return false;
                };
                let too_big = hash
                    .params
                    .get_decimal("m")
                    .is_some_and(|m| m > MAX_VERIFY_MEMORY_KIB);
                if too_big || !hash.algorithm.as_str().starts_with("argon2") {
                    return false;
                }
                Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .is_ok()
            })
            .await?;
        Ok(ok && real)
    }

    /// The dummy hash for unknown users, made once with the configured parameters.
    pub async fn dummy(&self) -> Result<&str, ApiError> {
        let h = self
            .inner
            .dummy
            .get_or_try_init(|| async { self.hash(&crate::tokens::refresh_token()).await })
            .await?;
        Ok(h.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> HashConfig {
        HashConfig {
            memory_cost: 1024,
            time_cost: 1,
            parallelism: 1,
            hash_length: 32,
            variant: argon2::Algorithm::Argon2id,
            concurrency: 2,
            wait: std::time::Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_fail() {
        let h = Hasher::new(cheap());
        let phc = h.hash("s3cret").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{phc}");
        assert!(h.verify(Some(&phc), "s3cret").await.unwrap());
        assert!(!h.verify(Some(&phc), "wrong").await.unwrap());
        assert!(!h.verify(None, "s3cret").await.unwrap());
        assert!(!h.verify(Some("not a hash"), "s3cret").await.unwrap());
    }

    /// A hash written by Directus (Node `argon2` 0.44, its defaults: argon2id, m=65536, t=3, p=4).
    #[tokio::test]
    async fn verifies_a_hash_written_by_node_argon2() {
        let node = include_str!("../tests/fixtures/node-argon2-hash.txt").trim();
        assert!(node.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"));
        let h = Hasher::new(cheap());
        assert!(h.verify(Some(node), "directus-password").await.unwrap());
        assert!(!h.verify(Some(node), "directus-passwore").await.unwrap());
    }

    #[tokio::test]
    async fn a_full_queue_answers_503() {
        let mut c = cheap();
        c.concurrency = 1;
        c.wait = std::time::Duration::from_millis(10);
        let h = Hasher::new(c);
        let _held = h.inner.slots.acquire().await.unwrap();
        let err = h.hash("x").await.unwrap_err();
        assert_eq!(err.status(), 503);
    }
}
