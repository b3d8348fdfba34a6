//! The `oauth2` and `openid` drivers (Directus: `api/src/auth/drivers/oauth2.ts`,
//! `api/src/auth/drivers/openid.ts`): their options, the authorize redirect, the code exchange,
//! ID token validation and the profile, and the provider refresh behind `POST /auth/refresh`.

pub mod config;

use std::sync::Arc;

pub use config::OAuthConfig;

use crate::config::sso::SsoCommon;
use crate::providers::{Driver, Provider};

/// One `oauth2` or `openid` provider.
pub struct OAuthProvider {
    pub common: SsoCommon,
    pub config: OAuthConfig,
}

impl OAuthProvider {
    pub async fn start(
        common: SsoCommon,
        config: OAuthConfig,
    ) -> anyhow::Result<Arc<OAuthProvider>> {
        Ok(Arc::new(OAuthProvider { common, config }))
    }
}

#[async_trait::async_trait]
impl Provider for OAuthProvider {
    fn name(&self) -> &str {
        &self.common.name
    }
    fn driver(&self) -> Driver {
        self.common.driver
    }
    fn label(&self) -> Option<&str> {
        self.common.label.as_deref()
    }
    fn icon(&self) -> Option<&str> {
        self.common.icon.as_deref()
    }
    fn mode(&self) -> crate::auth::Mode {
        self.common.mode
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
