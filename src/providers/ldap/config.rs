//! `AUTH_<NAME>_*` for `AUTH_<NAME>_DRIVER=ldap` (Directus: `api/src/auth/drivers/ldap.ts`, its
//! constructor and `getUserID`; the `CLIENT__*` keys are ldapts client options there,
//! `packages/env`'s `getConfigFromEnv` turning `__` into nesting).
//!
//! Values are read raw: a DN such as `cn=Smith\, John,ou=people,dc=example,dc=org` is one string,
//! never split on commas (Directus 11 casts a value with a comma into an array and breaks it).

use std::time::Duration;

use crate::config::{parse_duration, ConfigError};

/// A search scope (`USER_SCOPE`, `GROUP_SCOPE`): ldapts's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Base,
    One,
    Sub,
}

impl Scope {
    fn parse(s: &str) -> Option<Scope> {
        match s {
            "base" => Some(Scope::Base),
            "one" => Some(Scope::One),
            "sub" => Some(Scope::Sub),
            _ => None,
        }
    }

    pub fn ldap3(self) -> ldap3::Scope {
        match self {
            Scope::Base => ldap3::Scope::Base,
            Scope::One => ldap3::Scope::OneLevel,
            Scope::Sub => ldap3::Scope::Subtree,
        }
    }
}

/// How the connection is protected.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// `ldap://` upgraded with the StartTLS extended operation before any bind
    /// (`AUTH_<NAME>_CLIENT__START_TLS`; Directus has no such option).
    pub start_tls: bool,
    /// PEM certificates that replace the system's trust store, as node's `tls` `ca` option does
    /// (`AUTH_<NAME>_CLIENT__TLS_OPTIONS__CA`, or `..._CA_FILE` naming a file).
    pub ca_pem: Option<String>,
    /// Certificates and host names are checked unless
    /// `AUTH_<NAME>_CLIENT__TLS_OPTIONS__REJECT_UNAUTHORIZED=false` (node's name).
    pub verify: bool,
}

/// One LDAP provider's directory settings (the common SSO options live in `config::sso`).
#[derive(Clone, PartialEq, Eq)]
pub struct LdapConfig {
    /// `AUTH_<NAME>_CLIENT_URL`: `ldap://host[:port]` or `ldaps://host[:port]`.
    pub url: String,
    pub bind_dn: String,
    pub bind_password: String,
    /// Search base for users.
    pub user_dn: String,
    pub user_attribute: String,
    pub user_scope: Scope,
    pub mail_attribute: String,
    pub first_name_attribute: String,
    pub last_name_attribute: String,
    /// With a group base, groups are looked up and decide the role on every login.
    pub group_dn: Option<String>,
    pub group_attribute: String,
    pub group_scope: Scope,
    /// Active Directory nested groups: the group filter uses LDAP_MATCHING_RULE_IN_CHAIN
    /// (`AUTH_<NAME>_GROUP_NESTED`, gatehouse's own).
    pub group_nested: bool,
    pub tls: TlsConfig,
    /// How long one directory operation may take (`CLIENT__TIMEOUT`, ldapts's name, in ms).
    pub timeout: Duration,
    /// How long connecting (TCP, TLS, StartTLS) may take (`CLIENT__CONNECT_TIMEOUT`).
    pub connect_timeout: Duration,
    /// Connections kept per purpose (service searches, password binds): `CLIENT__POOL_SIZE`.
    pub pool_size: usize,
    /// A pooled connection unused this long is closed instead of reused, so a connection a
    /// firewall or the server dropped in silence is never handed out (`CLIENT__IDLE_TIMEOUT`).
    pub idle_timeout: Duration,
}

impl std::fmt::Debug for LdapConfig {
    // SECURITY: the service account's password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapConfig")
            .field("url", &self.url)
            .field("bind_dn", &self.bind_dn)
            .field("user_dn", &self.user_dn)
            .field("user_attribute", &self.user_attribute)
            .field("group_dn", &self.group_dn)
            .field("start_tls", &self.tls.start_tls)
            .field("verify", &self.tls.verify)
            .finish_non_exhaustive()
    }
}

/// RFC 4512 §1.4 `descr` (what Directus's `validateLDAPAttribute` accepts), or a numeric OID.
pub fn valid_attribute(name: &str) -> bool {
    let mut bytes = name.bytes();
    let descr = matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let oid = !name.is_empty()
        && name
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    (descr || oid) && name.len() <= 128
}

impl LdapConfig {
    /// Reads provider `name`'s variables through `env` (a value, or `None` when unset or
    /// empty). Every error names the variable and what to set.
    pub fn from_env(
        name: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<LdapConfig, ConfigError> {
        let prefix = format!("AUTH_{}_", name.to_uppercase());
        let var = |key: &str| format!("{prefix}{key}");
        let get = |key: &str| env(&var(key));
        let required = |key: &str, what: &str| {
            get(key).ok_or_else(|| {
                ConfigError(format!(
                    "{} is required for the ldap provider {name:?}: set it to {what}",
                    var(key)
                ))
            })
        };
        let bad = |key: &str, value: &str, want: &str| {
            ConfigError(format!("{}={value:?} is not valid: {want}", var(key)))
        };
        let attribute = |key: &str, default: &str| -> Result<String, ConfigError> {
            let v = get(key).unwrap_or_else(|| default.to_string());
            if valid_attribute(&v) {
                Ok(v)
            } else {
                Err(bad(
                    key,
                    &v,
                    "use an attribute name (a letter, then letters, digits or '-') or an OID",
                ))
            }
        };
        let scope = |key: &str| -> Result<Scope, ConfigError> {
            match get(key) {
                None => Ok(Scope::One),
                Some(v) => Scope::parse(&v).ok_or_else(|| bad(key, &v, "use base, one or sub")),
            }
        };
        let boolean = |key: &str, default: bool| -> Result<bool, ConfigError> {
            match get(key).map(|v| v.to_ascii_lowercase()).as_deref() {
                None => Ok(default),
                Some("true" | "1" | "yes" | "on") => Ok(true),
                Some("false" | "0" | "no" | "off") => Ok(false),
                Some(v) => Err(bad(key, v, "use true or false")),
            }
        };
        let duration = |key: &str, default: Duration| -> Result<Duration, ConfigError> {
            match get(key) {
                None => Ok(default),
                Some(v) => parse_duration(&v)
                    .filter(|d| !d.is_zero() && *d <= Duration::from_secs(600))
                    .ok_or_else(|| {
                        bad(
                            key,
                            &v,
                            "use milliseconds (e.g. 5000) or a duration such as 5s, at most 10m",
                        )
                    }),
            }
        };

        if get("CLIENT__SOCKET_PATH").is_some() && get("CLIENT_URL").is_none() {
            return Err(ConfigError(format!(
                "{} is not supported: set {} to ldap://, ldaps:// or ldapi://<percent-encoded socket path>",
                var("CLIENT__SOCKET_PATH"),
                var("CLIENT_URL")
            )));
        }
        let url = required(
            "CLIENT_URL",
            "the directory's URL, e.g. ldaps://ldap.example.com",
        )?;
        let parsed = url::Url::parse(&url).map_err(|_| {
            bad(
                "CLIENT_URL",
                &url,
                "use ldap://host[:port], ldaps://host[:port] or ldapi://path",
            )
        })?;
        let scheme = parsed.scheme().to_string();
        if !matches!(scheme.as_str(), "ldap" | "ldaps" | "ldapi")
            || parsed.host_str().is_none_or(str::is_empty)
            || !matches!(parsed.path(), "" | "/")
            || parsed.query().is_some()
        {
            return Err(bad(
                "CLIENT_URL",
                &url,
                "use ldap://host[:port], ldaps://host[:port] or ldapi://path (no DN, no query)",
            ));
        }
        // SECURITY: an empty bind DN or password is an anonymous or "unauthenticated" bind
        // (RFC 4513 §5.1.2), which some servers accept as anonymous: gatehouse wants a real
        // service account. Directus accepts defined-but-empty values.
        let bind_dn = required("BIND_DN", "the service account's DN")?;
        let bind_password = required("BIND_PASSWORD", "the service account's password")?;
        let user_dn = required(
            "USER_DN",
            "the search base for users, e.g. ou=people,dc=example,dc=org",
        )?;

        let group_attribute = attribute("GROUP_ATTRIBUTE", "member")?;
        let group_nested = boolean("GROUP_NESTED", false)?;
        if group_nested && group_attribute.eq_ignore_ascii_case("memberuid") {
            return Err(bad(
                "GROUP_NESTED",
                "true",
                "nested groups follow DNs: use GROUP_ATTRIBUTE=member (not memberUid) or drop GROUP_NESTED",
            ));
        }

        let start_tls = boolean("CLIENT__START_TLS", false)?;
        if start_tls && scheme != "ldap" {
            return Err(bad(
                "CLIENT__START_TLS",
                "true",
                "StartTLS upgrades ldap:// connections: use an ldap:// CLIENT_URL, or drop it for ldaps://",
            ));
        }
        let ca_pem = get("CLIENT__TLS_OPTIONS__CA");
        if let Some(pem) = &ca_pem {
            if super::tls::certificates(pem).is_err() {
                return Err(ConfigError(format!(
                    "{} holds no PEM certificate: give the CA's PEM text, or set {}_FILE to its file",
                    var("CLIENT__TLS_OPTIONS__CA"),
                    var("CLIENT__TLS_OPTIONS__CA")
                )));
            }
        }
        let verify = boolean("CLIENT__TLS_OPTIONS__REJECT_UNAUTHORIZED", true)?;

        let pool_size = match get("CLIENT__POOL_SIZE") {
            None => 4,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| bad("CLIENT__POOL_SIZE", &v, "use a number from 1 to 64"))?,
        };

        Ok(LdapConfig {
            url,
            bind_dn,
            bind_password,
            user_dn,
            user_attribute: attribute("USER_ATTRIBUTE", "cn")?,
            user_scope: scope("USER_SCOPE")?,
            mail_attribute: attribute("MAIL_ATTRIBUTE", "mail")?,
            first_name_attribute: attribute("FIRST_NAME_ATTRIBUTE", "givenName")?,
            last_name_attribute: attribute("LAST_NAME_ATTRIBUTE", "sn")?,
            group_dn: get("GROUP_DN"),
            group_attribute,
            group_scope: scope("GROUP_SCOPE")?,
            group_nested,
            tls: TlsConfig {
                start_tls,
                ca_pem,
                verify,
            },
            timeout: duration("CLIENT__TIMEOUT", Duration::from_secs(10))?,
            connect_timeout: duration("CLIENT__CONNECT_TIMEOUT", Duration::from_secs(5))?,
            pool_size,
            idle_timeout: duration("CLIENT__IDLE_TIMEOUT", Duration::from_secs(30))?,
        })
    }

    /// `memberUid` groups (posixGroup) list user ids, not DNs (Directus matches the attribute
    /// name case-insensitively).
    pub fn groups_by_uid(&self) -> bool {
        self.group_attribute.eq_ignore_ascii_case("memberuid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn parse(pairs: &[(&str, &str)]) -> Result<LdapConfig, ConfigError> {
        let mut map: BTreeMap<String, String> = [
            ("AUTH_CORP_CLIENT_URL", "ldap://127.0.0.1:3389"),
            ("AUTH_CORP_BIND_DN", "cn=service,dc=example,dc=org"),
            ("AUTH_CORP_BIND_PASSWORD", "servicepw"),
            ("AUTH_CORP_USER_DN", "ou=people,dc=example,dc=org"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            if v.is_empty() {
                map.remove(*k);
            } else {
                map.insert(k.to_string(), v.to_string());
            }
        }
        LdapConfig::from_env("corp", |k| map.get(k).cloned())
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        parse(pairs).expect_err("should be refused").0
    }

    #[test]
    fn defaults_are_directus_s() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.url, "ldap://127.0.0.1:3389");
        assert_eq!(c.user_attribute, "cn");
        assert_eq!(c.user_scope, Scope::One);
        assert_eq!(
            (
                c.mail_attribute.as_str(),
                c.first_name_attribute.as_str(),
                c.last_name_attribute.as_str()
            ),
            ("mail", "givenName", "sn")
        );
        assert_eq!(c.group_dn, None);
        assert_eq!(c.group_attribute, "member");
        assert_eq!(c.group_scope, Scope::One);
        assert!(!c.group_nested && !c.groups_by_uid());
        assert!(c.tls.verify && !c.tls.start_tls && c.tls.ca_pem.is_none());
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
    }

    #[test]
    fn every_option_is_read() {
        let c = parse(&[
            ("AUTH_CORP_USER_ATTRIBUTE", "uid"),
            ("AUTH_CORP_USER_SCOPE", "sub"),
            ("AUTH_CORP_MAIL_ATTRIBUTE", "userPrincipalName"),
            ("AUTH_CORP_FIRST_NAME_ATTRIBUTE", "gn"),
            ("AUTH_CORP_LAST_NAME_ATTRIBUTE", "surname"),
            ("AUTH_CORP_GROUP_DN", "ou=groups,dc=example,dc=org"),
            ("AUTH_CORP_GROUP_ATTRIBUTE", "memberUid"),
            ("AUTH_CORP_GROUP_SCOPE", "base"),
            ("AUTH_CORP_CLIENT__START_TLS", "true"),
            (
                "AUTH_CORP_CLIENT__TLS_OPTIONS__REJECT_UNAUTHORIZED",
                "false",
            ),
            ("AUTH_CORP_CLIENT__TIMEOUT", "2500"),
            ("AUTH_CORP_CLIENT__CONNECT_TIMEOUT", "1s"),
            ("AUTH_CORP_CLIENT__POOL_SIZE", "2"),
            ("AUTH_CORP_CLIENT__IDLE_TIMEOUT", "10s"),
        ])
        .unwrap();
        assert_eq!(c.user_attribute, "uid");
        assert_eq!(c.user_scope, Scope::Sub);
        assert_eq!(c.mail_attribute, "userPrincipalName");
        assert_eq!(c.first_name_attribute, "gn");
        assert_eq!(c.last_name_attribute, "surname");
        assert_eq!(c.group_dn.as_deref(), Some("ou=groups,dc=example,dc=org"));
        assert!(c.groups_by_uid());
        assert_eq!(c.group_scope, Scope::Base);
        assert!(c.tls.start_tls && !c.tls.verify);
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(c.connect_timeout, Duration::from_secs(1));
        assert_eq!(c.pool_size, 2);
        assert_eq!(c.idle_timeout, Duration::from_secs(10));
    }

    #[test]
    fn dns_with_commas_stay_whole() {
        let dn = r"ou=Sales\, EMEA,ou=people,dc=example,dc=org";
        let c = parse(&[
            ("AUTH_CORP_USER_DN", dn),
            ("AUTH_CORP_BIND_DN", r"cn=Service\, LDAP,dc=example,dc=org"),
            ("AUTH_CORP_GROUP_DN", "ou=groups,dc=example,dc=org"),
        ])
        .unwrap();
        assert_eq!(c.user_dn, dn);
        assert_eq!(c.bind_dn, r"cn=Service\, LDAP,dc=example,dc=org");
        assert_eq!(c.group_dn.as_deref(), Some("ou=groups,dc=example,dc=org"));
    }

    #[test]
    fn missing_and_bad_values_name_the_variable() {
        assert!(err(&[("AUTH_CORP_CLIENT_URL", "")]).contains("AUTH_CORP_CLIENT_URL is required"));
        assert!(err(&[("AUTH_CORP_BIND_DN", "")]).contains("AUTH_CORP_BIND_DN is required"));
        assert!(err(&[("AUTH_CORP_BIND_PASSWORD", "")]).contains("AUTH_CORP_BIND_PASSWORD"));
        assert!(err(&[("AUTH_CORP_USER_DN", "")]).contains("AUTH_CORP_USER_DN is required"));
        for url in [
            "http://x",
            "ldap://",
            "ldap:x",
            "ldap://h/dc=x",
            "ldap://h?x",
            "nonsense",
        ] {
            assert!(
                err(&[("AUTH_CORP_CLIENT_URL", url)]).contains("AUTH_CORP_CLIENT_URL="),
                "{url}"
            );
        }
        assert!(err(&[("AUTH_CORP_USER_SCOPE", "subtree")]).contains("use base, one or sub"));
        assert!(err(&[("AUTH_CORP_GROUP_SCOPE", "children")]).contains("AUTH_CORP_GROUP_SCOPE"));
        for attr in ["uid)(x", "1uid", "u id", "uid=*", "", "a*"] {
            if attr.is_empty() {
                continue;
            }
            assert!(err(&[("AUTH_CORP_USER_ATTRIBUTE", attr)]).contains("AUTH_CORP_USER_ATTRIBUTE"));
        }
        assert!(err(&[("AUTH_CORP_GROUP_ATTRIBUTE", "member)(cn=*")]).contains("GROUP_ATTRIBUTE"));
        assert!(err(&[("AUTH_CORP_CLIENT__TIMEOUT", "0")]).contains("CLIENT__TIMEOUT"));
        assert!(err(&[("AUTH_CORP_CLIENT__TIMEOUT", "soon")]).contains("CLIENT__TIMEOUT"));
        assert!(err(&[("AUTH_CORP_CLIENT__POOL_SIZE", "0")]).contains("CLIENT__POOL_SIZE"));
        assert!(err(&[("AUTH_CORP_CLIENT__START_TLS", "maybe")]).contains("use true or false"));
        assert!(err(&[("AUTH_CORP_CLIENT__TLS_OPTIONS__CA", "not a pem")])
            .contains("no PEM certificate"));
        assert!(err(&[
            ("AUTH_CORP_CLIENT_URL", ""),
            ("AUTH_CORP_CLIENT__SOCKET_PATH", "/run/ldapi")
        ])
        .contains("CLIENT__SOCKET_PATH is not supported"));
    }

    #[test]
    fn contradictory_tls_and_group_options_are_refused() {
        assert!(err(&[
            ("AUTH_CORP_CLIENT_URL", "ldaps://127.0.0.1:6636"),
            ("AUTH_CORP_CLIENT__START_TLS", "true")
        ])
        .contains("StartTLS upgrades ldap://"));
        assert!(err(&[
            ("AUTH_CORP_GROUP_ATTRIBUTE", "memberUid"),
            ("AUTH_CORP_GROUP_NESTED", "true")
        ])
        .contains("nested groups follow DNs"));
        let c = parse(&[("AUTH_CORP_GROUP_NESTED", "true")]).unwrap();
        assert!(c.group_nested);
    }

    #[test]
    fn attribute_names_follow_rfc_4512() {
        for ok in ["cn", "uid", "sAMAccountName", "x-custom-1", "2.5.4.3"] {
            assert!(valid_attribute(ok), "{ok}");
        }
        for no in ["", "-cn", "c n", "cn;binary", "cn)", "2..5", ".2", "é"] {
            assert!(!valid_attribute(no), "{no}");
        }
    }

    #[test]
    fn debug_hides_the_service_password() {
        let c = parse(&[("AUTH_CORP_BIND_PASSWORD", "s3cr3t-value")]).unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t-value"));
    }
}
