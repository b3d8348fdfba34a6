//! An `openid` provider's metadata and signing keys: discovered from `ISSUER_URL`, cached,
//! refreshed in the background, and refetched once (rate-limited) when an ID token names a key
//! the cache does not hold, so a provider can rotate its keys (OpenID Connect Core 1.0 §10.1.1).
//! A provider that is down makes only its own logins fail, and only for as long as it is down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::CoreJsonWebKeySet;
use openidconnect::JsonWebKey;
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use super::http::ProviderHttp;

/// How often metadata and keys are read again while all is well.
pub const REFRESH_EVERY: Duration = Duration::from_secs(600);
/// The least time between two refetches caused by an unknown `kid` (so a stream of forged
/// tokens cannot make gatehouse hammer the provider), and between two lazy discoveries while
/// the provider is down.
pub const MIN_REFETCH: Duration = Duration::from_secs(30);

/// The parts of the discovery document gatehouse uses (OpenID Connect Discovery 1.0 §3).
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: url::Url,
    pub token_endpoint: url::Url,
    #[serde(default)]
    pub userinfo_endpoint: Option<url::Url>,
    pub jwks_uri: url::Url,
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    /// RFC 9207: the provider adds `iss` to its authorization responses.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

/// Metadata with the keys it points at.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub metadata: Metadata,
    pub jwks: CoreJsonWebKeySet,
}

impl Discovered {
    pub fn has_kid(&self, kid: &str) -> bool {
        self.jwks
            .keys()
            .iter()
            .any(|k| k.key_id().is_some_and(|id| id.as_str() == kid))
    }
}

/// The discovery URL openid-client derives from an issuer: the URL itself when it already is
/// a `/.well-known/` document, else `<issuer>/.well-known/openid-configuration`.
pub fn discovery_url(issuer: &url::Url) -> url::Url {
    if issuer.path().contains("/.well-known/") {
        return issuer.clone();
    }
    let mut u = issuer.clone();
    let path = format!(
        "{}/.well-known/openid-configuration",
        issuer.path().trim_end_matches('/')
    );
    u.set_path(&path);
    u
}

pub struct Discovery {
    issuer_url: url::Url,
    http: ProviderHttp,
    current: RwLock<Option<Arc<Discovered>>>,
    /// Held while fetching, so concurrent logins share one fetch; holds the time of the last
    /// lazy attempt and of the last `kid`-triggered key refetch.
    fetching: Mutex<(Option<Instant>, Option<Instant>)>,
}

impl Discovery {
    pub fn new(issuer_url: url::Url, http: ProviderHttp) -> Self {
        Self {
            issuer_url,
            http,
            current: RwLock::new(None),
            fetching: Mutex::new((None, None)),
        }
    }

    /// Reads the discovery document and its JWKS.
    pub async fn fetch(&self) -> Result<Discovered, String> {
        let url = discovery_url(&self.issuer_url);
        let (status, body) = self
            .http
            .get_json(&url, None)
            .await
            .map_err(|e| format!("discovery at {url}: {e}"))?;
        if status != 200 {
            return Err(format!("discovery at {url}: status {status}"));
        }
        let metadata: Metadata = body
            .and_then(|b| serde_json::from_value(b).ok())
            .ok_or_else(|| format!("discovery at {url}: not an OpenID provider configuration"))?;
        if !metadata
            .response_types_supported
            .iter()
            .any(|t| t == "code")
        {
            return Err(format!(
                "discovery at {url}: the provider does not list `code` in response_types_supported"
            ));
        }
        let jwks = self.fetch_jwks(&metadata.jwks_uri).await?;
        Ok(Discovered { metadata, jwks })
    }

    async fn fetch_jwks(&self, uri: &url::Url) -> Result<CoreJsonWebKeySet, String> {
        let (status, body) = self
            .http
            .get_json(uri, None)
            .await
            .map_err(|e| format!("JWKS at {uri}: {e}"))?;
        if status != 200 {
            return Err(format!("JWKS at {uri}: status {status}"));
        }
        body.and_then(|b| serde_json::from_value(b).ok())
            .ok_or_else(|| format!("JWKS at {uri}: not a JSON Web Key Set"))
    }

    pub async fn set(&self, d: Discovered) {
        *self.current.write().await = Some(Arc::new(d));
    }

    /// The cached metadata, or a discovery now when there is none yet (at most one every
    /// `MIN_REFETCH` while the provider stays down).
    pub async fn current(&self) -> Result<Arc<Discovered>, String> {
        if let Some(d) = self.current.read().await.clone() {
            return Ok(d);
        }
        let mut guard = self.fetching.lock().await;
        if let Some(d) = self.current.read().await.clone() {
            return Ok(d);
        }
        if guard.0.is_some_and(|t| t.elapsed() < MIN_REFETCH) {
            return Err("discovery failed moments ago; not retried yet".into());
        }
        guard.0 = Some(Instant::now());
        let d = Arc::new(self.fetch().await?);
        *self.current.write().await = Some(d.clone());
        Ok(d)
    }

    /// The keys again, because a token names `kid` that the cache lacks; None when a refetch
    /// ran less than `MIN_REFETCH` ago or failed.
    pub async fn refetch_for_kid(&self, kid: &str) -> Option<Arc<Discovered>> {
        let mut guard = self.fetching.lock().await;
        let now = self.current.read().await.clone()?;
        if now.has_kid(kid) {
            return Some(now); // another login refetched meanwhile
        }
        if guard.1.is_some_and(|t| t.elapsed() < MIN_REFETCH) {
            return None;
        }
        guard.1 = Some(Instant::now());
        match self.fetch_jwks(&now.metadata.jwks_uri).await {
            Ok(jwks) => {
                let d = Arc::new(Discovered {
                    metadata: now.metadata.clone(),
                    jwks,
                });
                *self.current.write().await = Some(d.clone());
                Some(d)
            }
            Err(e) => {
                tracing::warn!(error = %e, "refetching the provider's keys failed");
                None
            }
        }
    }

    /// Reads metadata and keys every `REFRESH_EVERY`; a failure keeps what was cached.
    pub fn spawn_refresher(self: Arc<Self>, provider: String) {
        let weak = Arc::downgrade(&self);
        drop(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH_EVERY).await;
                let Some(me) = weak.upgrade() else { return };
                match me.fetch().await {
                    Ok(d) => me.set(d).await,
                    Err(e) => {
                        tracing::warn!(provider, error = %e, "refreshing the provider's metadata failed; keeping the cached copy")
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn discovery_urls_follow_openid_client() {
        let u = |s: &str| discovery_url(&url::Url::parse(s).unwrap()).to_string();
        assert_eq!(
            u("https://id.example/realms/a"),
            "https://id.example/realms/a/.well-known/openid-configuration"
        );
        assert_eq!(
            u("https://id.example/"),
            "https://id.example/.well-known/openid-configuration"
        );
        assert_eq!(
            u("https://id.example/.well-known/openid-configuration"),
            "https://id.example/.well-known/openid-configuration"
        );
    }
}
