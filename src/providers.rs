//! Outside parties that vouch for a user or carry mail: the SSO driver seam and the mailer.
//!
//! Every way to sign in ends in `Auth::start_session`. Password login is the built-in local
//! provider (`default`, Directus's name for it), handled by `auth::session`. Each provider named
//! in `AUTH_PROVIDERS` becomes one `Provider` here, with the driver its `AUTH_<NAME>_DRIVER`
//! names (Directus: `api/src/auth.ts`, `api/src/auth/drivers/`). `GET /auth` lists them.

pub mod ldap;
pub mod mail;
pub mod oauth;
pub mod saml;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

/// The drivers Directus knows (`AUTH_<NAME>_DRIVER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    OAuth2,
    OpenId,
    Ldap,
    Saml,
}

impl Driver {
    pub fn parse(s: &str) -> Option<Driver> {
        match s {
            "oauth2" => Some(Driver::OAuth2),
            "openid" => Some(Driver::OpenId),
            "ldap" => Some(Driver::Ldap),
            "saml" => Some(Driver::Saml),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Driver::OAuth2 => "oauth2",
            Driver::OpenId => "openid",
            Driver::Ldap => "ldap",
            Driver::Saml => "saml",
        }
    }
}

/// What a provider proved about a user, for finding or creating its `directus_users` row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Identity {
    /// `directus_users.external_identifier`, compared case-insensitively (Directus lowers it).
    pub external_id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Group names for `ROLE_MAPPING` / `GROUP_DN`.
    pub groups: Vec<String>,
    /// Kept in `directus_users.auth_data` (an OAuth refresh token, say).
    pub auth_data: Option<Value>,
}

/// One configured SSO provider: its driver does the protocol; `Auth` does the rest.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// The name in `AUTH_PROVIDERS`, lower-cased, as in `/auth/login/<name>`.
    fn name(&self) -> &str;
    fn driver(&self) -> Driver;
    /// `AUTH_<NAME>_LABEL` and `_ICON`, shown by `GET /auth`.
    fn label(&self) -> Option<&str> {
        None
    }
    fn icon(&self) -> Option<&str> {
        None
    }
    /// `AUTH_<NAME>_MODE`: how its logins hand out credentials (session by default).
    fn mode(&self) -> crate::auth::Mode {
        crate::auth::Mode::Session
    }
    /// The driver's own type, for its routes (`downcast_ref::<OAuthProvider>()`).
    fn as_any(&self) -> &dyn std::any::Any;
    /// `/server/health`'s check of this provider (`auth:<name>:responseTime`): an `openid`
    /// provider's discovery, an `ldap` provider's service bind; None for a driver with
    /// nothing to reach before a login (`oauth2`, `saml` with its metadata in the settings).
    async fn health(&self) -> Option<Result<(), String>> {
        None
    }
    /// `POST /auth/refresh` of a session of this provider's user runs this first (Directus:
    /// `api/src/services/authentication.ts`, `refresh`, the provider's `refresh(user)`): an
    /// error refuses the refresh; `Ok(Some(v))` is the user's new `auth_data`.
    async fn refresh(
        &self,
        _user: &crate::auth::user::User,
    ) -> Result<Option<Value>, crate::auth::Error> {
        Ok(None)
    }
}

/// The configured providers, by name, in `AUTH_PROVIDERS` order.
#[derive(Clone, Default)]
pub struct Providers {
    by_name: BTreeMap<String, Arc<dyn Provider>>,
    order: Vec<String>,
}

impl Providers {
    pub fn new(providers: impl IntoIterator<Item = Arc<dyn Provider>>) -> Self {
        let mut by_name = BTreeMap::new();
        let mut order = Vec::new();
        for p in providers {
            order.push(p.name().to_string());
            by_name.insert(p.name().to_string(), p);
        }
        Self { by_name, order }
    }

    /// The provider of a route segment; Express matches routes case-insensitively, and
    /// names are kept lower-cased (src/config/sso.rs).
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.by_name.get(&name.to_ascii_lowercase())
    }

    /// Provider names in `AUTH_PROVIDERS` order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Every provider, in `AUTH_PROVIDERS` order.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.order.iter().filter_map(|n| self.by_name.get(n))
    }

    /// Builds every configured provider; an `openid` provider whose discovery must succeed
    /// fails the start here (src/providers/oauth.rs).
    pub async fn from_config(sso: &crate::config::SsoConfig) -> anyhow::Result<Providers> {
        use crate::config::sso::DriverConfig;
        let mut all: Vec<Arc<dyn Provider>> = Vec::new();
        for p in &sso.providers {
            match &p.driver {
                DriverConfig::OAuth(c) => {
                    all.push(oauth::OAuthProvider::start(p.common.clone(), (**c).clone()).await?)
                }
                DriverConfig::Ldap(c) => all.push(Arc::new(ldap::LdapProvider::new(
                    p.common.clone(),
                    (**c).clone(),
                )?)),
                #[cfg(feature = "saml")]
                DriverConfig::Saml(c) => all.push(Arc::new(saml::SamlProvider::new(
                    p.common.clone(),
                    (**c).clone(),
                )?)),
                // Refused while the configuration is read (src/config/sso.rs).
                #[cfg(not(feature = "saml"))]
                DriverConfig::Saml(_) => {
                    anyhow::bail!(
                        "provider `{}`: built without the `saml` feature",
                        p.common.name
                    )
                }
            }
        }
        Ok(Providers::new(all))
    }

    /// `GET /auth`'s `data`: `{name, label, driver, icon}` per provider in `AUTH_PROVIDERS`
    /// order, `label` and `icon` left out when unset (Directus: `api/src/utils/get-auth-providers.ts`).
    /// `session_only` (`?sessionOnly`) drops oauth2, openid and saml providers whose mode is
    /// not `session`.
    pub fn listing(&self, session_only: bool) -> Vec<Value> {
        self.order
            .iter()
            .filter_map(|n| self.by_name.get(n))
            .filter(|p| {
                !session_only
                    || p.driver() == Driver::Ldap
                    || p.mode() == crate::auth::Mode::Session
            })
            .map(|p| {
                let mut m = serde_json::Map::new();
                m.insert("name".into(), json!(p.name()));
                if let Some(l) = p.label() {
                    m.insert("label".into(), json!(l));
                }
                m.insert("driver".into(), json!(p.driver().as_str()));
                if let Some(i) = p.icon() {
                    m.insert("icon".into(), json!(i));
                }
                Value::Object(m)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(&'static str, Driver);
    impl Provider for Fake {
        fn name(&self) -> &str {
            self.0
        }
        fn driver(&self) -> Driver {
            self.1
        }
        fn label(&self) -> Option<&str> {
            Some("Company SSO")
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    #[test]
    fn providers_are_found_by_name_and_listed() {
        let p = Providers::new([
            Arc::new(Fake("okta", Driver::OpenId)) as Arc<dyn Provider>,
            Arc::new(Fake("ldap", Driver::Ldap)),
        ]);
        assert_eq!(p.get("okta").map(|p| p.driver()), Some(Driver::OpenId));
        assert_eq!(p.get("OKTA").map(|p| p.driver()), Some(Driver::OpenId));
        assert!(p.get("github").is_none());
        let list = p.listing(false);
        assert_eq!(list.len(), 2);
        assert_eq!(
            serde_json::to_string(&list[0]).unwrap(),
            r#"{"name":"okta","label":"Company SSO","driver":"openid"}"#
        );
        assert_eq!(list[1]["name"], "ldap");
        assert_eq!(p.listing(true).len(), 2);
        for d in ["oauth2", "openid", "ldap", "saml"] {
            assert_eq!(Driver::parse(d).map(Driver::as_str), Some(d));
        }
        assert_eq!(Driver::parse("local"), None);
        assert!(Providers::default().listing(false).is_empty());
    }
}
