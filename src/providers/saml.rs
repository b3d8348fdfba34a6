//! The `saml` driver's options (Directus: `api/src/auth/drivers/saml.ts`) and, with the cargo
//! feature `saml`, the service provider itself (`sp`, samael over libxml2 and xmlsec1).
//!
//! Directus hands `AUTH_<NAME>_SP_*` and `AUTH_<NAME>_IDP_*` to samlify; the options that
//! matter are the two metadata documents, `AUTH_<NAME>_SP_metadata` and
//! `AUTH_<NAME>_IDP_metadata`, XML strings read as they are (never split on commas).

#[cfg(feature = "saml")]
pub mod sp;

use crate::config::sso::SsoCommon;
use crate::config::{ConfigError, Vars};

/// Directus's default attribute names (`api/src/auth/drivers/saml.ts`, the WS-Federation
/// claim URIs).
pub const DEFAULT_IDENTIFIER_KEY: &str =
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier";
pub const DEFAULT_EMAIL_KEY: &str =
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress";
pub const DEFAULT_GIVEN_NAME_KEY: &str =
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname";
pub const DEFAULT_FAMILY_NAME_KEY: &str =
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname";

/// Largest metadata document taken from the configuration.
const MAX_METADATA: usize = 1024 * 1024;

/// What `AUTH_<NAME>_*` says about one SAML provider, beyond the options every driver shares.
#[derive(Clone)]
pub struct SamlConfig {
    pub sp_metadata: String,
    pub idp_metadata: String,
    pub identifier_key: String,
    pub email_key: String,
    pub given_name_key: String,
    pub family_name_key: String,
}

impl std::fmt::Debug for SamlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamlConfig")
            .field("identifier_key", &self.identifier_key)
            .field("email_key", &self.email_key)
            .finish_non_exhaustive()
    }
}

impl SamlConfig {
    /// Reads the options of provider `name` (lower-cased). Directus camel-cases what follows
    /// `AUTH_<NAME>_SP_` (`packages/env`, `getConfigFromEnv`), so `AUTH_X_SP_metadata` and
    /// `AUTH_X_SP_METADATA` are the same option; both spellings are read.
    pub fn from_env(common: &SsoCommon, v: &Vars) -> Result<SamlConfig, ConfigError> {
        let prefix = format!("AUTH_{}_", common.name.to_ascii_uppercase());
        let metadata = |side: &str| -> Result<String, ConfigError> {
            let lower = format!("{prefix}{side}_metadata");
            let upper = format!("{prefix}{side}_METADATA");
            let value = v.get(&lower).or_else(|| v.get(&upper)).ok_or_else(|| {
                ConfigError(format!(
                    "{lower} is not set: a saml provider needs the {} metadata XML",
                    if side == "SP" {
                        "service provider's (gatehouse's)"
                    } else {
                        "identity provider's"
                    }
                ))
            })?;
            if value.len() > MAX_METADATA {
                return Err(ConfigError(format!("{lower} is larger than 1 MiB")));
            }
            Ok(value.to_string())
        };
        let key = |suffix: &str, default: &str| {
            v.get(&format!("{prefix}{suffix}"))
                .unwrap_or(default)
                .to_string()
        };
        Ok(SamlConfig {
            sp_metadata: metadata("SP")?,
            idp_metadata: metadata("IDP")?,
            identifier_key: key("IDENTIFIER_KEY", DEFAULT_IDENTIFIER_KEY),
            email_key: key("EMAIL_KEY", DEFAULT_EMAIL_KEY),
            given_name_key: key("GIVEN_NAME_KEY", DEFAULT_GIVEN_NAME_KEY),
            family_name_key: key("FAMILY_NAME_KEY", DEFAULT_FAMILY_NAME_KEY),
        })
    }
}

/// A configured `saml` provider: the options every driver shares, the attribute names, and
/// the service provider that checks the IdP's responses.
#[cfg(feature = "saml")]
pub struct SamlProvider {
    pub common: crate::config::sso::SsoCommon,
    pub config: SamlConfig,
    pub sp: sp::Sp,
}

#[cfg(feature = "saml")]
impl SamlProvider {
    /// Builds the provider; bad metadata is a start-up error naming the variable.
    pub fn new(
        common: crate::config::sso::SsoCommon,
        config: SamlConfig,
    ) -> Result<SamlProvider, ConfigError> {
        let sp = sp::Sp::new(&common.name, &config).map_err(|e| ConfigError(e.0))?;
        Ok(SamlProvider { common, config, sp })
    }

    /// What registration and roles are for this provider's users (Directus's saml driver:
    /// no role mapping and no profile sync for existing users; new users get
    /// `external_identifier` lower-cased and `DEFAULT_ROLE_ID`).
    pub fn provisioning(&self) -> crate::auth::sso::Provisioning {
        crate::auth::sso::Provisioning {
            allow_registration: self.common.allow_public_registration,
            default_role: self.common.default_role,
            roles: crate::auth::sso::RoleRule::Keep,
            sync_user_info: false,
            lower_identifier: true,
        }
    }
}

#[cfg(feature = "saml")]
#[async_trait::async_trait]
impl super::Provider for SamlProvider {
    fn name(&self) -> &str {
        &self.common.name
    }
    fn driver(&self) -> super::Driver {
        super::Driver::Saml
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn corp() -> SsoCommon {
        SsoCommon {
            name: "corp".into(),
            driver: crate::providers::Driver::Saml,
            label: None,
            icon: None,
            mode: crate::auth::Mode::Session,
            redirect_allow_list: None,
            default_role: None,
            allow_public_registration: false,
            sync_user_info: false,
            cookie_secure: false,
        }
    }

    #[test]
    fn metadata_is_read_raw_in_either_spelling_and_keys_default_to_directus_s() {
        let v = Vars::from_pairs([
            ("AUTH_CORP_SP_metadata", "<a x=\"1,2\"/>"),
            ("AUTH_CORP_IDP_METADATA", "string:<b/>"),
            ("AUTH_CORP_EMAIL_KEY", "mail"),
        ])
        .unwrap();
        let c = SamlConfig::from_env(&corp(), &v).unwrap();
        assert_eq!(c.sp_metadata, "<a x=\"1,2\"/>");
        assert_eq!(c.idp_metadata, "<b/>");
        assert_eq!(c.email_key, "mail");
        assert_eq!(c.identifier_key, DEFAULT_IDENTIFIER_KEY);
        assert_eq!(c.family_name_key, DEFAULT_FAMILY_NAME_KEY);
        let missing = SamlConfig::from_env(
            &corp(),
            &Vars::from_pairs([("AUTH_CORP_SP_metadata", "<a/>")]).unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(missing.contains("AUTH_CORP_IDP_metadata"), "{missing}");
    }
}
