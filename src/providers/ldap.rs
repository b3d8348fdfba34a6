//! The `ldap` driver's directory side (Directus: `api/src/auth/drivers/ldap.ts`): the service
//! account finds the user, a bind as the user's DN checks the password, and the user's groups
//! are read for the role. `Auth` does the rest (`auth::sso`).
//!
//! Beyond Directus: every value placed in a filter is escaped (RFC 4515) and DNs are used
//! whole, never split on commas; an empty password is refused before any bind (RFC 4513
//! §5.1.2: an "unauthenticated bind" succeeds without a password); an identifier matching
//! more than one entry is refused rather than taking the first; every operation has a timeout
//! and connections are pooled and replaced when stale (`pool`).

pub mod config;
mod pool;
mod provider;
pub mod tls;

use std::panic::AssertUnwindSafe;

use ldap3::{Ldap, LdapError, ResultEntry, SearchEntry, SearchOptions};

pub use config::{LdapConfig, Scope};
use pool::{Failure, Login, Pool};
pub use provider::LdapProvider;

/// Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: membership through nested groups.
pub const MATCHING_RULE_IN_CHAIN: &str = "1.2.840.113556.1.4.1941";

/// `userAccountControl` bits that end access: ACCOUNTDISABLE, LOCKOUT, PASSWORD_EXPIRED
/// (Directus's `INVALID_ACCOUNT_FLAGS`, 0x800012).
pub const INVALID_ACCOUNT_FLAGS: u64 = 0x0080_0012;

/// Longest identifier looked up (longer ones cannot be a user and are refused unsent).
const MAX_IDENTIFIER: usize = 1024;
/// Most groups read for one user.
const MAX_GROUPS: i32 = 1000;

/// Why a directory login did not succeed; the detail is for the log only.
#[derive(Debug)]
pub enum DirectoryError {
    /// No such user, an ambiguous identifier, a wrong or empty password, a disabled account:
    /// Directus's 401 `INVALID_CREDENTIALS`.
    InvalidCredentials(String),
    /// The service account's bind was refused: Directus's 503 `INVALID_PROVIDER_CONFIG`.
    ServiceAccount(String),
    /// Unreachable, timed out, or answered with an unexpected result: Directus's 503
    /// `SERVICE_UNAVAILABLE` (`service: "ldap"`).
    Unavailable(String),
}

impl std::fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DirectoryError::InvalidCredentials(d) => write!(f, "invalid credentials: {d}"),
            DirectoryError::ServiceAccount(d) => write!(f, "service account refused: {d}"),
            DirectoryError::Unavailable(d) => write!(f, "directory unavailable: {d}"),
        }
    }
}

/// A user as the directory describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectoryUser {
    /// The entry's DN as the server wrote it: `external_identifier`.
    pub dn: String,
    pub uid: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The `cn` values of the user's groups (empty without `GROUP_DN`).
    pub groups: Vec<String>,
}

/// RFC 4515 §3 escaping of an assertion value (`\2a` for `*`, `\28` `\29` for parentheses,
/// `\5c` for `\`, `\00` for NUL), so no input can add filter syntax.
pub fn escape_filter_value(value: &str) -> String {
    ldap3::ldap_escape(value).into_owned()
}

/// `(<attribute>=<value>)` with the value escaped; the attribute was checked at start.
pub fn equality_filter(attribute: &str, value: &str) -> String {
    format!("({attribute}={})", escape_filter_value(value))
}

/// The group filter: `(member=<user DN>)`, `(memberUid=<uid>)`, or with nested groups
/// `(member:1.2.840.113556.1.4.1941:=<user DN>)`.
pub fn group_filter(config: &LdapConfig, user: &DirectoryUser) -> String {
    let value = match (&user.uid, config.groups_by_uid()) {
        (Some(uid), true) => uid.as_str(),
        _ => user.dn.as_str(),
    };
    if config.group_nested {
        format!(
            "({}:{MATCHING_RULE_IN_CHAIN}:={})",
            config.group_attribute,
            escape_filter_value(value)
        )
    } else {
        equality_filter(&config.group_attribute, value)
    }
}

/// The first value of an attribute, matched case-insensitively as LDAP names are.
fn first_value(entry: &SearchEntry, attribute: &str) -> Option<String> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attribute))
        .and_then(|(_, v)| v.first().cloned())
        .filter(|v| !v.is_empty())
}

/// ldap3's entry parser panics on a malformed entry: a hostile or broken server must not
/// take a request down with it.
fn parse_entry(entry: ResultEntry) -> Option<SearchEntry> {
    std::panic::catch_unwind(AssertUnwindSafe(|| SearchEntry::construct(entry))).ok()
}

/// Search results where rc 4 (sizeLimitExceeded) still hands over the entries it found.
async fn search(
    ldap: &mut Ldap,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: Vec<String>,
    limit: i32,
) -> Result<(Vec<SearchEntry>, u32), LdapError> {
    let res = ldap
        .with_search_options(SearchOptions::new().sizelimit(limit))
        .search(base, scope.ldap3(), filter, attrs)
        .await?;
    let rc = res.1.rc;
    if rc != 0 && rc != 4 && rc != 32 {
        return Err(LdapError::LdapResult { result: res.1 });
    }
    Ok((res.0.into_iter().filter_map(parse_entry).collect(), rc))
}

/// One LDAP provider's directory: configuration and connection pools.
pub struct Directory {
    config: LdapConfig,
    /// Bound as the service account: searches.
    service: Pool,
    /// Password checks: each loan binds as the user being checked.
    verify: Pool,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Directory {
    pub fn new(config: LdapConfig) -> Result<Directory, String> {
        let tls = tls::client_config(&config.tls)?;
        if !config.tls.verify {
            tracing::warn!(target: "security", url = %config.url,
                "LDAP TLS certificates are not verified (CLIENT__TLS_OPTIONS__REJECT_UNAUTHORIZED=false)");
        }
        let pool = |login| {
            Pool::new(
                config.url.clone(),
                tls.clone(),
                config.tls.start_tls,
                login,
                config.pool_size,
                config.timeout,
                config.connect_timeout,
                config.idle_timeout,
            )
        };
        let service = pool(Login::Service(
            config.bind_dn.clone(),
            config.bind_password.clone(),
        ));
        let verify = pool(Login::None);
        Ok(Directory {
            config,
            service,
            verify,
        })
    }

    pub fn config(&self) -> &LdapConfig {
        &self.config
    }

    /// Forgets pooled connections (the next operation connects anew).
    pub fn reset(&self) {
        self.service.clear();
        self.verify.clear();
    }

    fn service_failure(e: Failure) -> DirectoryError {
        match e {
            Failure::Refused(d) => DirectoryError::ServiceAccount(d),
            Failure::Unavailable(d) => DirectoryError::Unavailable(d),
        }
    }

    /// A search as the service account.
    async fn service_search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        limit: i32,
    ) -> Result<(Vec<SearchEntry>, u32), DirectoryError> {
        let attrs: Vec<String> = attrs.iter().map(|a| a.to_string()).collect();
        self.service
            .run(|ldap| {
                let (base, filter, attrs) = (base.to_string(), filter.to_string(), attrs.clone());
                Box::pin(async move { search(ldap, &base, scope, &filter, attrs, limit).await })
            })
            .await
            .map_err(Self::service_failure)
    }

    fn user_attributes(&self) -> Vec<&str> {
        let c = &self.config;
        vec![
            "uid",
            c.first_name_attribute.as_str(),
            c.last_name_attribute.as_str(),
            c.mail_attribute.as_str(),
            "userAccountControl",
        ]
    }

    fn user_from(&self, entry: &SearchEntry) -> Result<DirectoryUser, DirectoryError> {
        let c = &self.config;
        let control = first_value(entry, "userAccountControl")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if control & INVALID_ACCOUNT_FLAGS != 0 {
            return Err(DirectoryError::InvalidCredentials(format!(
                "userAccountControl {control:#x} marks {} disabled, locked or expired",
                entry.dn
            )));
        }
        Ok(DirectoryUser {
            dn: entry.dn.clone(),
            uid: first_value(entry, "uid"),
            email: first_value(entry, &c.mail_attribute),
            first_name: first_value(entry, &c.first_name_attribute),
            last_name: first_value(entry, &c.last_name_attribute),
            groups: Vec::new(),
        })
    }

    /// The entry for a login identifier (Directus's `fetchUserInfo` with
    /// `(<USER_ATTRIBUTE>=<identifier>)` under `USER_DN`).
    pub async fn find_user(&self, identifier: &str) -> Result<DirectoryUser, DirectoryError> {
        if identifier.is_empty() || identifier.len() > MAX_IDENTIFIER {
            return Err(DirectoryError::InvalidCredentials(
                "identifier empty or too long".into(),
            ));
        }
        let c = &self.config;
        let filter = equality_filter(&c.user_attribute, identifier);
        let (entries, _) = self
            .service_search(
                &c.user_dn,
                c.user_scope,
                &filter,
                &self.user_attributes(),
                2,
            )
            .await?;
        match entries.as_slice() {
            [] => Err(DirectoryError::InvalidCredentials(
                "no directory entry matches the identifier".into(),
            )),
            [entry] => self.user_from(entry),
            // SECURITY: Directus takes the first of several; which one that is depends on the
            // server, so one person could sign in as another who shares a cn.
            _ => Err(DirectoryError::InvalidCredentials(
                "the identifier matches more than one directory entry".into(),
            )),
        }
    }

    /// The `cn`s of the groups under `GROUP_DN` that hold the user.
    pub async fn groups(&self, user: &DirectoryUser) -> Result<Vec<String>, DirectoryError> {
        let c = &self.config;
        let Some(base) = &c.group_dn else {
            return Ok(Vec::new());
        };
        let filter = group_filter(c, user);
        let (entries, rc) = self
            .service_search(base, c.group_scope, &filter, &["cn"], MAX_GROUPS)
            .await?;
        if rc == 4 {
            tracing::warn!(target: "ldap", dn = %user.dn, "more than {MAX_GROUPS} groups; the rest are ignored");
        }
        Ok(entries
            .iter()
            .flat_map(|e| {
                e.attrs
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case("cn"))
                    .flat_map(|(_, v)| v.iter().cloned())
                    .collect::<Vec<_>>()
            })
            .collect())
    }

    /// A bind as `dn` with `password` (Directus's `verify`).
    pub async fn check_password(&self, dn: &str, password: &str) -> Result<(), DirectoryError> {
        // SECURITY: a simple bind with a DN and an empty password is an unauthenticated bind,
        // which many servers answer with success (RFC 4513 §5.1.2).
        if password.is_empty() || dn.is_empty() {
            return Err(DirectoryError::InvalidCredentials(
                "empty password or DN: no bind attempted".into(),
            ));
        }
        self.verify
            .run(|ldap| {
                let (dn, password) = (dn.to_string(), password.to_string());
                Box::pin(async move {
                    ldap.simple_bind(&dn, &password)
                        .await?
                        .success()
                        .map(|_| ())
                })
            })
            .await
            .map_err(|e| match e {
                Failure::Refused(d) => {
                    DirectoryError::InvalidCredentials(format!("user bind refused: {d}"))
                }
                Failure::Unavailable(d) => DirectoryError::Unavailable(d),
            })
    }

    /// The whole login: find the user, check the password, read the groups.
    pub async fn authenticate(
        &self,
        identifier: &str,
        password: &str,
    ) -> Result<DirectoryUser, DirectoryError> {
        if password.is_empty() {
            return Err(DirectoryError::InvalidCredentials(
                "empty password: no bind attempted".into(),
            ));
        }
        let mut user = self.find_user(identifier).await?;
        self.check_password(&user.dn, password).await?;
        user.groups = self.groups(&user).await?;
        Ok(user)
    }

    /// Directus's `refresh`: the user's entry must still exist and not be disabled, locked or
    /// expired (AD's `userAccountControl`). Directus answers 503 for a deleted entry; here it
    /// is `INVALID_CREDENTIALS`.
    /// `/server/health`: the service account binds and `USER_DN` can be read (one base-scope
    /// search asking for no attributes).
    pub async fn probe(&self) -> Result<(), DirectoryError> {
        let base = self.config.user_dn.clone();
        let (entries, _) = self
            .service_search(&base, Scope::Base, "(objectClass=*)", &["1.1"], 1)
            .await?;
        if entries.is_empty() {
            return Err(DirectoryError::Unavailable(format!(
                "USER_DN {base} is not in the directory"
            )));
        }
        Ok(())
    }

    pub async fn still_valid(&self, dn: &str) -> Result<(), DirectoryError> {
        if dn.is_empty() {
            return Err(DirectoryError::InvalidCredentials("no DN".into()));
        }
        let (entries, rc) = self
            .service_search(
                dn,
                Scope::Base,
                "(objectClass=*)",
                &self.user_attributes(),
                1,
            )
            .await?;
        match entries.first() {
            Some(entry) if rc != 32 => self.user_from(entry).map(|_| ()),
            _ => Err(DirectoryError::InvalidCredentials(format!(
                "the directory no longer has {dn}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(pairs: &[(&str, &str)]) -> LdapConfig {
        let mut map: std::collections::BTreeMap<String, String> = [
            ("AUTH_X_CLIENT_URL", "ldap://127.0.0.1:3389"),
            ("AUTH_X_BIND_DN", "cn=service,dc=example,dc=org"),
            ("AUTH_X_BIND_PASSWORD", "servicepw"),
            ("AUTH_X_USER_DN", "ou=people,dc=example,dc=org"),
            ("AUTH_X_GROUP_DN", "ou=groups,dc=example,dc=org"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            map.insert(k.to_string(), v.to_string());
        }
        LdapConfig::from_env("x", |k| map.get(k).cloned()).unwrap()
    }

    #[test]
    fn filter_values_are_escaped_per_rfc_4515() {
        assert_eq!(equality_filter("uid", "alice"), "(uid=alice)");
        assert_eq!(equality_filter("uid", "*"), r"(uid=\2a)");
        assert_eq!(
            equality_filter("uid", "*)(uid=*"),
            r"(uid=\2a\29\28uid=\2a)"
        );
        assert_eq!(
            equality_filter("uid", "admin)(|(uid=*"),
            r"(uid=admin\29\28|\28uid=\2a)"
        );
        assert_eq!(equality_filter("cn", r"a\b"), r"(cn=a\5cb)");
        assert_eq!(equality_filter("cn", "a\0b"), r"(cn=a\00b)");
        // Non-ASCII stays as UTF-8 (RFC 4515 allows it unescaped).
        assert_eq!(equality_filter("cn", "Zoë"), "(cn=Zoë)");
    }

    #[test]
    fn group_filters_use_the_dn_the_uid_or_the_matching_rule_in_chain() {
        let user = DirectoryUser {
            dn: r"cn=Smith\, John,ou=people,dc=example,dc=org".into(),
            uid: Some("jsmith".into()),
            ..Default::default()
        };
        assert_eq!(
            group_filter(&config(&[]), &user),
            r"(member=cn=Smith\5c, John,ou=people,dc=example,dc=org)"
        );
        assert_eq!(
            group_filter(&config(&[("AUTH_X_GROUP_ATTRIBUTE", "memberUid")]), &user),
            "(memberUid=jsmith)"
        );
        // Directus falls back to the DN when the entry has no uid.
        let no_uid = DirectoryUser {
            uid: None,
            ..user.clone()
        };
        assert_eq!(
            group_filter(&config(&[("AUTH_X_GROUP_ATTRIBUTE", "memberUid")]), &no_uid),
            r"(memberUid=cn=Smith\5c, John,ou=people,dc=example,dc=org)"
        );
        assert_eq!(
            group_filter(&config(&[("AUTH_X_GROUP_NESTED", "true")]), &user),
            r"(member:1.2.840.113556.1.4.1941:=cn=Smith\5c, John,ou=people,dc=example,dc=org)"
        );
    }

    proptest! {
        /// Whatever the input, the escaped filter is one equality assertion: no unescaped
        /// parenthesis or asterisk survives, and ldap3's parser accepts it.
        #[test]
        fn no_input_adds_filter_syntax(value in "\\PC*") {
            let filter = equality_filter("uid", &value);
            let inner = &filter[5..filter.len() - 1];
            prop_assert!(!inner.contains(['(', ')', '*', '\0']));
            prop_assert!(inner.split('\\').skip(1).all(|s| s.len() >= 2
                && s.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit)));
        }
    }

    #[tokio::test]
    async fn an_empty_password_is_refused_before_any_connection() {
        // Nothing listens on port 9 of loopback: any attempt to connect would be Unavailable.
        let dir = Directory::new(config(&[("AUTH_X_CLIENT_URL", "ldap://127.0.0.1:9")])).unwrap();
        for (id, pw) in [("alice", ""), ("", "")] {
            match dir.authenticate(id, pw).await {
                Err(DirectoryError::InvalidCredentials(d)) => assert!(d.contains("no bind"), "{d}"),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            dir.check_password("uid=alice,ou=people,dc=example,dc=org", "")
                .await,
            Err(DirectoryError::InvalidCredentials(_))
        ));
        assert!(matches!(
            dir.find_user(&"a".repeat(MAX_IDENTIFIER + 1)).await,
            Err(DirectoryError::InvalidCredentials(_))
        ));
    }

    #[tokio::test]
    async fn an_unreachable_directory_is_unavailable_not_a_hang() {
        let dir = Directory::new(config(&[
            ("AUTH_X_CLIENT_URL", "ldap://127.0.0.1:9"),
            ("AUTH_X_CLIENT__CONNECT_TIMEOUT", "500"),
        ]))
        .unwrap();
        assert!(matches!(
            dir.authenticate("alice", "alicepw").await,
            Err(DirectoryError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn a_silent_directory_times_out() {
        // Accepts TCP and never answers, as a hung server or a black-holing firewall would.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let dir = Directory::new(config(&[
            ("AUTH_X_CLIENT_URL", &format!("ldap://{addr}")),
            ("AUTH_X_CLIENT__TIMEOUT", "300"),
        ]))
        .unwrap();
        match dir.authenticate("alice", "alicepw").await {
            Err(DirectoryError::Unavailable(d)) => {
                assert!(d.contains("service bind") || d.contains("no answer"), "{d}")
            }
            other => panic!("{other:?}"),
        }
        hold.abort();
    }
}
