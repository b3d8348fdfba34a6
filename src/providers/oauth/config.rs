//! The `oauth2` and `openid` drivers' own options (Directus: `api/src/auth/drivers/oauth2.ts`,
//! `api/src/auth/drivers/openid.ts`), read once at start with errors that name the variable.

use std::time::Duration;

use uuid::Uuid;

use crate::config::sso::SsoCommon;
use crate::config::{bad, ConfigError, Vars};
use crate::providers::Driver;

/// Where the endpoints come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoints {
    /// `oauth2`: `AUTHORIZE_URL`, `ACCESS_URL`, `PROFILE_URL`.
    Manual {
        authorize_url: url::Url,
        access_url: url::Url,
        profile_url: url::Url,
    },
    /// `openid`: `ISSUER_URL` with discovery.
    Discovery {
        issuer_url: url::Url,
        /// `ISSUER_DISCOVERY_MUST_SUCCEED` (true): a failed discovery stops the start.
        must_succeed: bool,
    },
}

/// `CLIENT_TOKEN_ENDPOINT_AUTH_METHOD`: how the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic` (openid-client's default).
    Basic,
    /// `client_secret_post`.
    Post,
}

/// The options of an `oauth2` or `openid` provider.
#[derive(Clone)]
pub struct OAuthConfig {
    pub endpoints: Endpoints,
    pub client_id: String,
    pub client_secret: String,
    pub client_auth: ClientAuth,
    /// `SCOPE`: space-separated, sent as written (`email` / `openid profile email`).
    pub scope: String,
    /// `IDENTIFIER_KEY` (`sub` for openid; unset for oauth2): falls back to the email.
    pub identifier_key: Option<String>,
    /// `EMAIL_KEY` (`email`); openid always reads `email`.
    pub email_key: String,
    /// `FIRST_NAME_KEY`, `LAST_NAME_KEY`; openid always reads `given_name`, `family_name`.
    pub first_name_key: Option<String>,
    pub last_name_key: Option<String>,
    /// `ROLE_MAPPING` (a JSON object, group → role id), in the order written.
    pub role_mapping: Option<Vec<(String, Uuid)>>,
    /// `GROUP_CLAIM_NAME` (`groups`).
    pub group_claim: String,
    /// `PARAMS`: extra authorize parameters (a JSON object), in the order written.
    pub params: Vec<(String, String)>,
    /// `PLAIN_CODE_CHALLENGE` (false): PKCE `plain` instead of `S256`.
    pub plain_code_challenge: bool,
    /// `REQUIRE_VERIFIED_EMAIL` (openid, false): new users need `email_verified`.
    pub require_verified_email: bool,
    /// `LOGIN_TIMEOUT` (5m): the state cookie's lifetime.
    pub login_timeout: Duration,
    /// `CLIENT_HTTP_TIMEOUT` (3500 ms, openid-client's default): every outbound call's limit.
    pub http_timeout: Duration,
    /// `GATEHOUSE_SSO_MAX_RESPONSE_SIZE` (1mb): the largest answer read from the provider.
    pub max_response: usize,
}

impl std::fmt::Debug for OAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthConfig")
            .field("endpoints", &self.endpoints)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[set]")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

fn absolute_url(v: &Vars, name: &str) -> Result<url::Url, ConfigError> {
    let raw = v
        .get(name)
        .ok_or_else(|| ConfigError(format!("{name} is not set: the provider needs it")))?;
    let u = url::Url::parse(raw.trim())
        .map_err(|_| bad(name, raw, "use an absolute http or https URL"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(bad(name, raw, "use an absolute http or https URL"));
    }
    Ok(u)
}

fn json_object(
    v: &Vars,
    name: &str,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, ConfigError> {
    let Some(raw) = v.get(name) else {
        return Ok(None);
    };
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(m)) => Ok(Some(m)),
        _ => Err(bad(
            name,
            raw,
            "use a JSON object, written with the json: prefix (json:{\"key\": \"value\"})",
        )),
    }
}

impl OAuthConfig {
    /// Reads `AUTH_<NAME>_*` for an `oauth2` or `openid` provider.
    pub fn from_env(common: &SsoCommon, v: &Vars) -> Result<OAuthConfig, ConfigError> {
        let n = |suffix: &str| common.var(suffix);
        let openid = common.driver == Driver::OpenId;
        let required = |suffix: &str| -> Result<String, ConfigError> {
            v.get(&n(suffix)).map(str::to_string).ok_or_else(|| {
                ConfigError(format!(
                    "{} is not set: the {} provider `{}` needs it",
                    n(suffix),
                    common.driver.as_str(),
                    common.name
                ))
            })
        };
        let endpoints = if openid {
            Endpoints::Discovery {
                issuer_url: absolute_url(v, &n("ISSUER_URL"))?,
                must_succeed: v.bool(&n("ISSUER_DISCOVERY_MUST_SUCCEED"), true)?,
            }
        } else {
            Endpoints::Manual {
                authorize_url: absolute_url(v, &n("AUTHORIZE_URL"))?,
                access_url: absolute_url(v, &n("ACCESS_URL"))?,
                profile_url: absolute_url(v, &n("PROFILE_URL"))?,
            }
        };
        let client_id = required("CLIENT_ID")?;
        let method_var = n("CLIENT_TOKEN_ENDPOINT_AUTH_METHOD");
        let client_auth = match v.get(&method_var) {
            None | Some("client_secret_basic") => ClientAuth::Basic,
            Some("client_secret_post") => ClientAuth::Post,
            Some(other) => {
                return Err(bad(
                    &method_var,
                    other,
                    "use client_secret_basic (the default) or client_secret_post (private_key_jwt is not supported)",
                ))
            }
        };
        let client_secret = required("CLIENT_SECRET")?;
        let role_var = n("ROLE_MAPPING");
        let role_mapping = match json_object(v, &role_var)? {
            None => None,
            Some(m) => Some(
                m.into_iter()
                    .map(|(group, role)| {
                        role.as_str()
                            .and_then(|r| Uuid::parse_str(r).ok())
                            .map(|r| (group.clone(), r))
                            .ok_or_else(|| {
                                ConfigError(format!(
                                    "{role_var}: the role for group {group:?} is not a role id (a UUID)"
                                ))
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let params = json_object(v, &n("PARAMS"))?
            .unwrap_or_default()
            .into_iter()
            .map(|(k, val)| {
                let val = match val {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, val)
            })
            .collect();
        let text = |suffix: &str| v.get(&n(suffix)).map(str::to_string);
        let max_response = {
            let raw = v.get("GATEHOUSE_SSO_MAX_RESPONSE_SIZE").unwrap_or("1mb");
            crate::config::parse_size(raw)
                .filter(|s| *s > 0)
                .ok_or_else(|| {
                    bad(
                        "GATEHOUSE_SSO_MAX_RESPONSE_SIZE",
                        raw,
                        "use a size such as 1mb or 256kb",
                    )
                })?
        };
        Ok(OAuthConfig {
            endpoints,
            client_id,
            client_secret,
            client_auth,
            scope: text("SCOPE").unwrap_or_else(|| {
                if openid {
                    "openid profile email".into()
                } else {
                    "email".into()
                }
            }),
            identifier_key: text("IDENTIFIER_KEY").or_else(|| openid.then(|| "sub".into())),
            email_key: if openid {
                "email".into()
            } else {
                text("EMAIL_KEY").unwrap_or_else(|| "email".into())
            },
            first_name_key: if openid {
                Some("given_name".into())
            } else {
                text("FIRST_NAME_KEY")
            },
            last_name_key: if openid {
                Some("family_name".into())
            } else {
                text("LAST_NAME_KEY")
            },
            role_mapping,
            group_claim: text("GROUP_CLAIM_NAME").unwrap_or_else(|| "groups".into()),
            params,
            plain_code_challenge: v.bool(&n("PLAIN_CODE_CHALLENGE"), false)?,
            require_verified_email: openid && v.bool(&n("REQUIRE_VERIFIED_EMAIL"), false)?,
            // Directus's oauth2 driver signs its state cookie for a fixed 5m.
            login_timeout: if openid {
                v.positive_duration(&n("LOGIN_TIMEOUT"), "5m")?
            } else {
                Duration::from_secs(300)
            },
            http_timeout: v.positive_duration(&n("CLIENT_HTTP_TIMEOUT"), "3500")?,
            max_response,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::sso;

    fn read(pairs: &[(&str, &str)]) -> Result<OAuthConfig, String> {
        let v = Vars::from_pairs(pairs.iter().copied()).unwrap();
        let c = sso::read(&v).map_err(|e| e.to_string())?;
        #[allow(irrefutable_let_patterns)]
        let sso::DriverConfig::OAuth(o) = &c.providers[0].driver
        else {
            panic!("not an oauth provider")
        };
        Ok((**o).clone())
    }

    const GH: &[(&str, &str)] = &[
        ("AUTH_PROVIDERS", "github"),
        ("AUTH_GITHUB_DRIVER", "oauth2"),
        ("AUTH_GITHUB_CLIENT_ID", "cid"),
        ("AUTH_GITHUB_CLIENT_SECRET", "csecret"),
        (
            "AUTH_GITHUB_AUTHORIZE_URL",
            "https://github.com/login/oauth/authorize",
        ),
        (
            "AUTH_GITHUB_ACCESS_URL",
            "https://github.com/login/oauth/access_token",
        ),
        ("AUTH_GITHUB_PROFILE_URL", "https://api.github.com/user"),
    ];

    fn gh(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = GH.to_vec();
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn oauth2_defaults() {
        let c = read(GH).unwrap();
        assert_eq!(c.scope, "email");
        assert_eq!(c.identifier_key, None);
        assert_eq!(c.email_key, "email");
        assert_eq!(c.group_claim, "groups");
        assert_eq!(c.client_auth, ClientAuth::Basic);
        assert!(!c.plain_code_challenge && !c.require_verified_email);
        assert_eq!(c.login_timeout, Duration::from_secs(300));
        assert_eq!(c.http_timeout, Duration::from_millis(3500));
        assert!(c.params.is_empty() && c.role_mapping.is_none());
        assert!(!format!("{c:?}").contains("csecret"));
    }

    #[test]
    fn openid_defaults_and_fixed_claims() {
        let c = read(&[
            ("AUTH_PROVIDERS", "kc"),
            ("AUTH_KC_DRIVER", "openid"),
            ("AUTH_KC_CLIENT_ID", "cid"),
            ("AUTH_KC_CLIENT_SECRET", "s"),
            ("AUTH_KC_ISSUER_URL", "http://127.0.0.1:8080/realms/a"),
            ("AUTH_KC_EMAIL_KEY", "mail"),
            ("AUTH_KC_REQUIRE_VERIFIED_EMAIL", "true"),
        ])
        .unwrap();
        assert_eq!(c.scope, "openid profile email");
        assert_eq!(c.identifier_key.as_deref(), Some("sub"));
        assert_eq!(c.email_key, "email");
        assert_eq!(c.first_name_key.as_deref(), Some("given_name"));
        assert!(c.require_verified_email);
        assert!(matches!(
            c.endpoints,
            Endpoints::Discovery {
                must_succeed: true,
                ..
            }
        ));
    }

    #[test]
    fn values_keep_their_commas_and_json_keeps_its_order() {
        let c = read(&gh(&[
            ("AUTH_GITHUB_SCOPE", "read:user,user:email"),
            ("AUTH_GITHUB_IDENTIFIER_KEY", "data.login"),
            (
                "AUTH_GITHUB_ROLE_MAPPING",
                "json:{\"z,admins\":\"6f1d0c3e-2a3b-4c5d-8e9f-0a1b2c3d4e5f\",\"a\":\"7f1d0c3e-2a3b-4c5d-8e9f-0a1b2c3d4e5f\"}",
            ),
            (
                "AUTH_GITHUB_PARAMS",
                "json:{\"hd\":\"a.example,b.example\",\"max_age\":60}",
            ),
            ("AUTH_GITHUB_CLIENT_TOKEN_ENDPOINT_AUTH_METHOD", "client_secret_post"),
        ]))
        .unwrap();
        assert_eq!(c.scope, "read:user,user:email");
        assert_eq!(c.identifier_key.as_deref(), Some("data.login"));
        let m = c.role_mapping.unwrap();
        assert_eq!(m[0].0, "z,admins");
        assert_eq!(m[1].0, "a");
        assert_eq!(
            c.params,
            [
                ("hd".to_string(), "a.example,b.example".to_string()),
                ("max_age".to_string(), "60".to_string())
            ]
        );
        assert_eq!(c.client_auth, ClientAuth::Post);
    }

    #[test]
    fn errors_name_the_variable_and_the_fix() {
        let e = read(&GH[..5]).unwrap_err();
        assert!(e.contains("AUTH_GITHUB_ACCESS_URL is not set"), "{e}");
        let e = read(&gh(&[("AUTH_GITHUB_CLIENT_SECRET", "")])).unwrap_err();
        assert!(e.contains("AUTH_GITHUB_CLIENT_SECRET is not set"), "{e}");
        let e = read(&gh(&[("AUTH_GITHUB_PROFILE_URL", "ftp://x.example/u")])).unwrap_err();
        assert!(e.contains("AUTH_GITHUB_PROFILE_URL"), "{e}");
        let e = read(&gh(&[("AUTH_GITHUB_PROFILE_URL", "/relative")])).unwrap_err();
        assert!(e.contains("absolute"), "{e}");
        let e = read(&gh(&[("AUTH_GITHUB_ROLE_MAPPING", "json:[\"a\"]")])).unwrap_err();
        assert!(
            e.contains("AUTH_GITHUB_ROLE_MAPPING") && e.contains("json:"),
            "{e}"
        );
        let e = read(&gh(&[(
            "AUTH_GITHUB_ROLE_MAPPING",
            "json:{\"a\":\"admin\"}",
        )]))
        .unwrap_err();
        assert!(e.contains("not a role id"), "{e}");
        let e = read(&gh(&[("AUTH_GITHUB_PARAMS", "a=b")])).unwrap_err();
        assert!(e.contains("AUTH_GITHUB_PARAMS"), "{e}");
        let e = read(&gh(&[(
            "AUTH_GITHUB_CLIENT_TOKEN_ENDPOINT_AUTH_METHOD",
            "private_key_jwt",
        )]))
        .unwrap_err();
        assert!(e.contains("not supported"), "{e}");
        let e = read(&gh(&[("AUTH_GITHUB_CLIENT_HTTP_TIMEOUT", "0")])).unwrap_err();
        assert!(e.contains("AUTH_GITHUB_CLIENT_HTTP_TIMEOUT"), "{e}");
        let e = read(&[
            ("AUTH_PROVIDERS", "kc"),
            ("AUTH_KC_DRIVER", "openid"),
            ("AUTH_KC_CLIENT_ID", "cid"),
            ("AUTH_KC_CLIENT_SECRET", "s"),
        ])
        .unwrap_err();
        assert!(e.contains("AUTH_KC_ISSUER_URL is not set"), "{e}");
    }
}
