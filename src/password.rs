//! argon2 password hashing and verification (Directus: `api/src/utils/generate-hash.ts`), off the async workers.
//!
//! Each hash takes `HASH_MEMORY_COST` KiB (64 MiB by default), so hashing runs on the
//! blocking pool behind a semaphore sized to the core count; a login that cannot get a slot
//! within `GATEHOUSE_HASH_WAIT` answers 503 instead of queueing without bound.
//!
//! Verification reuses argon2's working memory while logins keep coming (see `Scratch`):
//! allocating and faulting in 64 MiB costs about a fifth of a verification, and two
//! verifications allocating at once slow each other down.

use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
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
    metrics: crate::metrics::Metrics,
    slots: Semaphore,
    dummy: OnceCell<String>,
    scratch: Mutex<Scratch>,
}

/// Working memory between verifications. Buffers are kept only while another verification
/// is pending (waiting for a slot or running): when the last one ends, all are freed, so an
/// idle server holds none. At most one buffer per slot is kept.
#[derive(Default)]
struct Scratch {
    buffers: Vec<Vec<Block>>,
    pending: usize,
}

/// Counts one pending verification; dropping it (done, or cancelled while waiting) may free
/// the kept buffers.
struct Pending(Arc<Inner>);

impl Pending {
    fn new(inner: &Arc<Inner>) -> Self {
        inner.scratch().pending += 1;
        Self(inner.clone())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut scratch = self.0.scratch();
        scratch.pending -= 1;
        if scratch.pending == 0 {
            scratch.buffers.clear();
        }
    }
}

impl Inner {
    fn scratch(&self) -> std::sync::MutexGuard<'_, Scratch> {
        // A poisoned lock only means a panic elsewhere mid-update: buffers are plain memory.
        self.scratch.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Verifies `password` against a PHC hash as argon2's `verify_password` does (algorithm,
/// version, parameters, salt and output length from the string; constant-time comparison),
/// but in `memory`, which is grown as needed and can be reused.
pub fn verify_phc(hash: &PasswordHash<'_>, password: &[u8], memory: &mut Vec<Block>) -> bool {
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let (Ok(params), Some(salt), Some(expected)) = (Params::try_from(hash), hash.salt, &hash.hash)
    else {
        return false;
    };
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params);
    argon2
        .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks])
        .is_ok()
        && bool::from(expected.as_bytes().ct_eq(&out))
}

impl Hasher {
    pub fn new(config: HashConfig) -> Self {
        Self::observed(config, crate::metrics::Metrics::default())
    }

    /// A hasher whose queue (waiting, running, wait time) shows in `metrics`.
    pub fn observed(config: HashConfig, metrics: crate::metrics::Metrics) -> Self {
        let slots = Semaphore::new(config.concurrency);
        Self {
            inner: Arc::new(Inner {
                config,
                metrics,
                slots,
                dummy: OnceCell::new(),
                scratch: Mutex::default(),
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
        let waiting = self.inner.metrics.hash_waiting();
        let queued = std::time::Instant::now();
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
        drop(waiting);
        self.inner.metrics.hash_waited(queued.elapsed());
        let running = self.inner.metrics.hash_running();
        let out = tokio::task::spawn_blocking(job)
            .await
            .map_err(ApiError::internal);
        drop(permit);
        drop(running);
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
        let pending = Pending::new(&self.inner);
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
                let inner = &pending.0;
                let mut memory = inner.scratch().buffers.pop().unwrap_or_default();
                let ok = verify_phc(&hash, password.as_bytes(), &mut memory);
                let mut scratch = inner.scratch();
                if scratch.buffers.len() < inner.config.concurrency {
                    scratch.buffers.push(memory);
                }
                drop(scratch);
                drop(pending); // frees the buffers if no other verification is pending
                ok
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

    /// `verify_phc` agrees with argon2's own `verify_password` for every variant, version,
    /// cost and output length, reusing one buffer across sizes.
    #[test]
    fn verify_phc_matches_argon2s_verifier() {
        use argon2::PasswordVerifier;
        let mut memory = Vec::new();
        let cases = [
            (Algorithm::Argon2id, Version::V0x13, 1024, 1, 1, 32),
            (Algorithm::Argon2i, Version::V0x13, 256, 2, 2, 16),
            (Algorithm::Argon2d, Version::V0x10, 512, 1, 4, 64),
            (Algorithm::Argon2id, Version::V0x13, 64, 3, 1, 32),
        ];
        for (alg, version, m, t, p, len) in cases {
            let params = Params::new(m, t, p, Some(len)).unwrap();
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            let phc = Argon2::new(alg, version, params)
                .hash_password(b"right", &salt)
                .unwrap()
                .to_string();
            let hash = PasswordHash::new(&phc).unwrap();
            for (password, want) in [(&b"right"[..], true), (b"wrong", false), (b"", false)] {
                let theirs = Argon2::default().verify_password(password, &hash).is_ok();
                assert_eq!(theirs, want, "{phc}");
                assert_eq!(verify_phc(&hash, password, &mut memory), want, "{phc}");
            }
        }
        assert_eq!(
            memory.len(),
            1024,
            "the buffer grew to the largest case and was reused"
        );
    }

    #[tokio::test]
    async fn buffers_are_kept_only_while_logins_are_pending() {
        let h = Hasher::new(cheap());
        let phc = h.hash("s3cret").await.unwrap();
        assert!(h.verify(Some(&phc), "s3cret").await.unwrap());
        assert!(h.inner.scratch().buffers.is_empty(), "idle: nothing kept");

        let other = Pending::new(&h.inner); // another login waiting for a slot
        assert!(h.verify(Some(&phc), "s3cret").await.unwrap());
        assert_eq!(
            h.inner.scratch().buffers.len(),
            1,
            "kept for the next login"
        );
        drop(other);
        let scratch = h.inner.scratch();
        assert!(scratch.buffers.is_empty() && scratch.pending == 0);
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
        let err = h.verify(None, "x").await.unwrap_err();
        assert_eq!(err.status(), 503);
        assert_eq!(
            h.inner.scratch().pending,
            0,
            "a refused login is not left pending"
        );
    }
}
