//! Forward-auth for reverse proxies (src/http/forward_auth.rs): the identity headers' prefix
//! and the paths that pass without a token. gatehouse's own variables; Directus has no such
//! endpoint.

use axum::http::HeaderName;

use super::{bad, cors::list, ConfigError, Vars};

/// The identity headers a valid token gets, in the order `/auth/verify` writes them.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    pub user_id: HeaderName,
    pub role: HeaderName,
    pub email: HeaderName,
    pub admin_access: HeaderName,
    pub app_access: HeaderName,
}

#[derive(Debug, Clone)]
pub struct ForwardAuthConfig {
    /// `FORWARD_AUTH_HEADER_PREFIX` (`X-Gatehouse-`) with each header's name appended.
    pub headers: IdentityHeaders,
    /// `FORWARD_AUTH_PUBLIC_PATHS`: path prefixes of the forwarded URI that pass without a
    /// token (each starts with `/`; a prefix matches whole segments only).
    pub public_paths: Vec<String>,
}

pub fn read(v: &Vars) -> Result<ForwardAuthConfig, ConfigError> {
    let prefix = v
        .get("FORWARD_AUTH_HEADER_PREFIX")
        .unwrap_or("X-Gatehouse-");
    let name = |suffix: &str| {
        HeaderName::from_bytes(format!("{prefix}{suffix}").as_bytes()).map_err(|_| {
            bad(
                "FORWARD_AUTH_HEADER_PREFIX",
                prefix,
                "use letters, digits and dashes, such as X-Gatehouse-",
            )
        })
    };
    let headers = IdentityHeaders {
        user_id: name("User-Id")?,
        role: name("Role")?,
        email: name("Email")?,
        admin_access: name("Admin-Access")?,
        app_access: name("App-Access")?,
    };
    let public_paths = list(v, "FORWARD_AUTH_PUBLIC_PATHS", "")?;
    if let Some(p) = public_paths.iter().find(|p| !p.starts_with('/')) {
        return Err(bad(
            "FORWARD_AUTH_PUBLIC_PATHS",
            p,
            "use path prefixes that start with /, such as /public,/assets",
        ));
    }
    Ok(ForwardAuthConfig {
        headers,
        public_paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars::from_pairs(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn defaults_and_custom_prefix() {
        let c = read(&vars(&[])).unwrap();
        assert_eq!(c.headers.user_id.as_str(), "x-gatehouse-user-id");
        assert_eq!(c.headers.app_access.as_str(), "x-gatehouse-app-access");
        assert!(c.public_paths.is_empty());
        let c = read(&vars(&[
            ("FORWARD_AUTH_HEADER_PREFIX", "Remote-"),
            ("FORWARD_AUTH_PUBLIC_PATHS", "/public, /assets/"),
        ]))
        .unwrap();
        assert_eq!(c.headers.email.as_str(), "remote-email");
        assert_eq!(c.public_paths, ["/public", "/assets/"]);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (k, val) in [
            ("FORWARD_AUTH_HEADER_PREFIX", "X Bad:"),
            ("FORWARD_AUTH_PUBLIC_PATHS", "public"),
        ] {
            let e = read(&vars(&[(k, val)])).unwrap_err();
            assert!(e.0.contains(k), "{e}");
        }
    }
}
