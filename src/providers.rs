//! Outside parties that vouch for a user or carry mail: the SSO driver seam and the mailer.
//!
//! Every way to sign in ends in `Auth::start_session`. Password login is the built-in local
//! provider (`default`, Directus's name for it), handled by `auth::session`. Each provider named
//! in `AUTH_PROVIDERS` becomes one `Provider` here, with the driver its `AUTH_<NAME>_DRIVER`
//! names (Directus: `api/src/auth.ts`, `api/src/auth/drivers/`). `GET /auth` lists them.

pub mod mail;
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
}

/// The configured providers, by name.
#[derive(Clone, Default)]
pub struct Providers {
    by_name: BTreeMap<String, Arc<dyn Provider>>,
}

impl Providers {
    pub fn new(providers: impl IntoIterator<Item = Arc<dyn Provider>>) -> Self {
        Self {
            by_name: providers
                .into_iter()
                .map(|p| (p.name().to_string(), p))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.by_name.get(name)
    }

    /// `GET /auth`'s `data`: `{name, driver, icon, label}` per provider (Directus:
    /// `api/src/controllers/auth.ts`), in `AUTH_PROVIDERS` order being alphabetical here.
    pub fn listing(&self) -> Vec<Value> {
        self.by_name
            .values()
            .map(|p| {
                json!({
                    "name": p.name(),
                    "driver": p.driver().as_str(),
                    "icon": p.icon(),
                    "label": p.label(),
                })
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
    }

    #[test]
    fn providers_are_found_by_name_and_listed() {
        let p = Providers::new([
            Arc::new(Fake("okta", Driver::OpenId)) as Arc<dyn Provider>,
            Arc::new(Fake("ldap", Driver::Ldap)),
        ]);
        assert_eq!(p.get("okta").map(|p| p.driver()), Some(Driver::OpenId));
        assert!(p.get("github").is_none());
        let list = p.listing();
        assert_eq!(list.len(), 2);
        assert_eq!(
            list[1],
            json!({"name": "okta", "driver": "openid", "icon": null, "label": "Company SSO"})
        );
        for d in ["oauth2", "openid", "ldap", "saml"] {
            assert_eq!(Driver::parse(d).map(Driver::as_str), Some(d));
        }
        assert_eq!(Driver::parse("local"), None);
        assert!(Providers::default().listing().is_empty());
    }
}
