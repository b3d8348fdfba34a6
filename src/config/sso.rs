//! SSO providers from configuration: `AUTH_PROVIDERS`, each provider's `AUTH_<NAME>_DRIVER` and
//! the options every driver shares (Directus: `api/src/auth.ts`, `api/src/utils/get-config-from-env.ts`,
//! `api/src/utils/get-auth-providers.ts`). Driver-specific options are read by the driver's
//! module (`providers::oauth`, `providers::ldap`, `providers::saml`).
//!
//! Values are read raw: only Directus's list options (`AUTH_<NAME>_REDIRECT_ALLOW_LIST`,
//! `AUTH_ALLOWED_PUBLIC_URLS`) are split on commas, so DNs, URLs and JSON keep theirs.

use uuid::Uuid;

use super::{bad, cors::list, ConfigError, Vars};
use crate::auth::Mode;
use crate::providers::oauth::OAuthConfig;
use crate::providers::Driver;

/// The options of one provider that every driver reads.
#[derive(Debug, Clone)]
pub struct SsoCommon {
    /// Lower-cased: the route segment `/auth/login/<name>` and the `provider` column.
    pub name: String,
    pub driver: Driver,
    /// `AUTH_<NAME>_LABEL`, `AUTH_<NAME>_ICON`: shown by `GET /auth`.
    pub label: Option<String>,
    pub icon: Option<String>,
    /// `AUTH_<NAME>_MODE`: `session` (the default) or anything else, which Directus treats
    /// as the refresh cookie (`Mode::Cookie`).
    pub mode: Mode,
    /// `AUTH_<NAME>_REDIRECT_ALLOW_LIST`: `Some` when the variable is set at all (Directus
    /// then adds `PUBLIC_URL` to it), `None` when unset.
    pub redirect_allow_list: Option<Vec<String>>,
    /// `AUTH_<NAME>_DEFAULT_ROLE_ID`.
    pub default_role: Option<Uuid>,
    /// `AUTH_<NAME>_ALLOW_PUBLIC_REGISTRATION` (false).
    pub allow_public_registration: bool,
    /// `AUTH_<NAME>_SYNC_USER_INFO` (false).
    pub sync_user_info: bool,
    /// `AUTH_<NAME>_COOKIE_SECURE` (false): the oauth2/openid state cookie gets `Secure`.
    pub cookie_secure: bool,
}

impl SsoCommon {
    /// `AUTH_<NAME>_<suffix>`.
    pub fn var(&self, suffix: &str) -> String {
        var(&self.name, suffix)
    }
}

/// `AUTH_<NAME>_<suffix>` for a provider name.
pub fn var(name: &str, suffix: &str) -> String {
    format!("AUTH_{}_{suffix}", name.to_ascii_uppercase())
}

/// What a driver module parsed from its own options. One arm per driver; the ldap and saml
/// arms are filled in by their drivers.
#[derive(Debug, Clone)]
pub enum DriverConfig {
    /// `oauth2` and `openid` (src/providers/oauth.rs).
    OAuth(Box<OAuthConfig>),
    /// `ldap` (src/providers/ldap.rs).
    Ldap(Box<crate::providers::ldap::LdapConfig>),
    /// `saml` (src/providers/saml.rs); built only with the cargo feature `saml`.
    Saml(Box<crate::providers::saml::SamlConfig>),
}

/// One provider of `AUTH_PROVIDERS`.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub common: SsoCommon,
    pub driver: DriverConfig,
}

/// Every configured provider, in `AUTH_PROVIDERS` order, and the public bases callbacks may use.
#[derive(Debug, Clone, Default)]
pub struct SsoConfig {
    pub providers: Vec<ProviderConfig>,
    /// `AUTH_ALLOWED_PUBLIC_URLS`: other public bases a callback URL may be built on, chosen by
    /// the request's protocol and host (Directus: `api/src/auth/utils/generate-callback-url.ts`).
    pub allowed_public_urls: Vec<String>,
}

/// Provider names become a URL segment, a cookie name and part of variable names: letters,
/// digits, `_` and `-` only.
fn is_provider_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub fn read(v: &Vars) -> Result<SsoConfig, ConfigError> {
    let mut providers: Vec<ProviderConfig> = Vec::new();
    let names = list(v, "AUTH_PROVIDERS", "")?;
    for raw in names {
        let name = raw.to_ascii_lowercase();
        if name == crate::auth::user::LOCAL_PROVIDER {
            return Err(ConfigError(
                "AUTH_PROVIDERS names `default`, the built-in local provider: choose another name"
                    .into(),
            ));
        }
        if !is_provider_name(&name) {
            return Err(bad(
                "AUTH_PROVIDERS",
                &raw,
                "use provider names of letters, digits, `_` and `-` (at most 64 characters)",
            ));
        }
        if providers.iter().any(|p| p.common.name == name) {
            return Err(bad(
                "AUTH_PROVIDERS",
                &raw,
                "each provider name may appear once",
            ));
        }
        let common = read_common(v, &name)?;
        let driver = match common.driver {
            Driver::OAuth2 | Driver::OpenId => {
                DriverConfig::OAuth(Box::new(OAuthConfig::from_env(&common, v)?))
            }
            Driver::Ldap => DriverConfig::Ldap(Box::new(
                crate::providers::ldap::LdapConfig::from_env(&common.name, |k| {
                    v.get(k).map(str::to_string)
                })?,
            )),
            Driver::Saml => saml_arm(&common, v)?,
        };
        providers.push(ProviderConfig { common, driver });
    }
    Ok(SsoConfig {
        providers,
        allowed_public_urls: list(v, "AUTH_ALLOWED_PUBLIC_URLS", "")?,
    })
}

/// The saml driver needs libxml2 and xmlsec1, so it is a cargo feature (off by default): a
/// binary built without it refuses a saml provider at start, naming the feature.
#[cfg(feature = "saml")]
fn saml_arm(common: &SsoCommon, v: &Vars) -> Result<DriverConfig, ConfigError> {
    Ok(DriverConfig::Saml(Box::new(
        crate::providers::saml::SamlConfig::from_env(common, v)?,
    )))
}

#[cfg(not(feature = "saml"))]
fn saml_arm(common: &SsoCommon, _v: &Vars) -> Result<DriverConfig, ConfigError> {
    Err(ConfigError(format!(
        "{}=saml: this gatehouse was built without SAML support; build it with the `saml` cargo feature (`cargo build --release --features saml`, which needs libxml2, xmlsec1 and libclang: README, \"SAML\")",
        common.var("DRIVER")
    )))
}

fn read_common(v: &Vars, name: &str) -> Result<SsoCommon, ConfigError> {
    let driver_var = var(name, "DRIVER");
    let driver = match v.get(&driver_var) {
        None => {
            return Err(ConfigError(format!(
                "{driver_var} is not set: provider `{name}` of AUTH_PROVIDERS needs a driver (oauth2, openid, ldap or saml)"
            )))
        }
        Some(d) => Driver::parse(&d.to_ascii_lowercase())
            .ok_or_else(|| bad(&driver_var, d, "use oauth2, openid, ldap or saml"))?,
    };
    let mode = match v.get(&var(name, "MODE")) {
        None | Some("session") => Mode::Session,
        // Directus: anything but `session` sets the refresh cookie.
        Some(_) => Mode::Cookie,
    };
    let role_var = var(name, "DEFAULT_ROLE_ID");
    let default_role = match v.get(&role_var) {
        None => None,
        Some(r) => Some(
            Uuid::parse_str(r.trim())
                .map_err(|_| bad(&role_var, r, "use the id (a UUID) of a directus_roles row"))?,
        ),
    };
    let allow_var = var(name, "REDIRECT_ALLOW_LIST");
    let redirect_allow_list = match v.0.contains_key(&allow_var) {
        true => Some(list(v, &allow_var, "")?),
        false => None,
    };
    let text = |suffix: &str| v.get(&var(name, suffix)).map(str::to_string);
    Ok(SsoCommon {
        name: name.to_string(),
        driver,
        label: text("LABEL"),
        icon: text("ICON"),
        mode,
        redirect_allow_list,
        default_role,
        allow_public_registration: v.bool(&var(name, "ALLOW_PUBLIC_REGISTRATION"), false)?,
        sync_user_info: v.bool(&var(name, "SYNC_USER_INFO"), false)?,
        cookie_secure: v.bool(&var(name, "COOKIE_SECURE"), false)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars::from_pairs(pairs.iter().copied()).unwrap()
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        read(&vars(pairs)).unwrap_err().to_string()
    }

    const OIDC: &[(&str, &str)] = &[
        ("AUTH_OKTA_DRIVER", "openid"),
        ("AUTH_OKTA_CLIENT_ID", "id"),
        ("AUTH_OKTA_CLIENT_SECRET", "s"),
        ("AUTH_OKTA_ISSUER_URL", "http://127.0.0.1:1/"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        OIDC.iter().copied().chain(extra.iter().copied()).collect()
    }

    #[test]
    fn no_providers_by_default() {
        let c = read(&vars(&[])).unwrap();
        assert!(c.providers.is_empty());
        assert!(c.allowed_public_urls.is_empty());
    }

    #[test]
    fn names_are_lower_cased_and_common_options_read() {
        let c = read(&vars(&with(&[
            ("AUTH_PROVIDERS", "Okta"),
            ("AUTH_OKTA_LABEL", "Sign in, with Okta"),
            ("AUTH_OKTA_ICON", "account_circle"),
            ("AUTH_OKTA_MODE", "cookie"),
            (
                "AUTH_OKTA_DEFAULT_ROLE_ID",
                "6f1d0c3e-2a3b-4c5d-8e9f-0a1b2c3d4e5f",
            ),
            ("AUTH_OKTA_ALLOW_PUBLIC_REGISTRATION", "true"),
            ("AUTH_OKTA_SYNC_USER_INFO", "boolean:true"),
            (
                "AUTH_OKTA_REDIRECT_ALLOW_LIST",
                "https://a.example/x,https://b.example",
            ),
            (
                "AUTH_ALLOWED_PUBLIC_URLS",
                "https://one.example,https://two.example/cms",
            ),
        ])))
        .unwrap();
        let p = &c.providers[0].common;
        assert_eq!(p.name, "okta");
        assert_eq!(p.driver, Driver::OpenId);
        assert_eq!(p.label.as_deref(), Some("Sign in, with Okta"));
        assert_eq!(p.icon.as_deref(), Some("account_circle"));
        assert_eq!(p.mode, Mode::Cookie);
        assert!(p.allow_public_registration && p.sync_user_info && !p.cookie_secure);
        assert_eq!(
            p.default_role,
            Some(Uuid::parse_str("6f1d0c3e-2a3b-4c5d-8e9f-0a1b2c3d4e5f").unwrap())
        );
        assert_eq!(
            p.redirect_allow_list.as_deref().unwrap(),
            ["https://a.example/x", "https://b.example"]
        );
        assert_eq!(c.allowed_public_urls.len(), 2);
        let c = read(&vars(&with(&[("AUTH_PROVIDERS", "okta")]))).unwrap();
        let p = &c.providers[0].common;
        assert_eq!(p.mode, Mode::Session);
        assert!(p.redirect_allow_list.is_none());
        assert!(!p.allow_public_registration);
    }

    #[test]
    fn misconfigured_providers_name_the_variable() {
        assert!(err(&[("AUTH_PROVIDERS", "default")]).contains("`default`"));
        assert!(err(&[("AUTH_PROVIDERS", "okta")]).contains("AUTH_OKTA_DRIVER is not set"));
        assert!(
            err(&[("AUTH_PROVIDERS", "okta"), ("AUTH_OKTA_DRIVER", "cas")])
                .contains("AUTH_OKTA_DRIVER=\"cas\"")
        );
        assert!(err(&[("AUTH_PROVIDERS", "ok ta")]).contains("AUTH_PROVIDERS"));
        assert!(err(&[("AUTH_PROVIDERS", "ok;ta")]).contains("AUTH_PROVIDERS"));
        assert!(err(&with(&[("AUTH_PROVIDERS", "okta,OKTA")])).contains("once"));
        assert!(err(&with(&[
            ("AUTH_PROVIDERS", "okta"),
            ("AUTH_OKTA_DEFAULT_ROLE_ID", "admins")
        ]))
        .contains("AUTH_OKTA_DEFAULT_ROLE_ID"));
        assert!(err(&with(&[
            ("AUTH_PROVIDERS", "okta"),
            ("AUTH_OKTA_SYNC_USER_INFO", "sometimes")
        ]))
        .contains("AUTH_OKTA_SYNC_USER_INFO"));
    }
}

#[cfg(all(test, not(feature = "saml")))]
mod without_saml {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_saml_provider_without_the_feature_is_a_start_up_error_naming_it() {
        let v = Vars::from_pairs([
            ("AUTH_PROVIDERS", "corp"),
            ("AUTH_CORP_DRIVER", "saml"),
            ("AUTH_CORP_SP_metadata", "<x/>"),
            ("AUTH_CORP_IDP_metadata", "<y/>"),
        ])
        .unwrap();
        let e = read(&v).unwrap_err().to_string();
        assert!(e.contains("AUTH_CORP_DRIVER=saml"), "{e}");
        assert!(e.contains("`saml` cargo feature"), "{e}");
    }
}
