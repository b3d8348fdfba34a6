//! Reading and writing the refresh and session cookies (Directus: `api/src/constants.ts`, `api/src/controllers/auth.ts`).

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};

use crate::config::CookieConfig;

/// The value of a cookie in the request, percent-decoded as cookie-parser does.
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(v.trim().trim_matches('"'))
                .decode_utf8_lossy()
                .into_owned()
        })
        .filter(|v| !v.is_empty())
}

fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn attributes(c: &CookieConfig, max_age: i64, expires: DateTime<Utc>) -> String {
    let mut s = format!("; Max-Age={max_age}");
    if let Some(d) = &c.domain {
        s.push_str(&format!("; Domain={d}"));
    }
    s.push_str(&format!(
        "; Path=/; Expires={}; HttpOnly",
        http_date(expires)
    ));
    if c.secure {
        s.push_str("; Secure");
    }
    s.push_str(&format!("; SameSite={}", c.same_site.as_str()));
    s
}

/// `Set-Cookie` for a value living `c.ttl`, attributes in Express's order.
pub fn set(c: &CookieConfig, value: &str, now: DateTime<Utc>) -> String {
    let secs = c.ttl.as_secs() as i64;
    format!(
        "{}={}{}",
        c.name,
        value,
        attributes(c, secs, now + chrono::Duration::seconds(secs))
    )
}

/// `Set-Cookie` that really removes the cookie (Max-Age=0). Directus's Express 4 sends an
/// empty value with a future expiry instead (docs/compatibility.md).
pub fn clear(c: &CookieConfig) -> String {
    format!("{}={}", c.name, attributes(c, 0, DateTime::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SameSite;

    #[test]
    fn cookie_strings() {
        let c = CookieConfig {
            name: "directus_refresh_token".into(),
            domain: None,
            secure: false,
            same_site: SameSite::Lax,
            ttl: std::time::Duration::from_secs(604800),
        };
        let now = DateTime::from_timestamp(0, 0).unwrap();
        assert_eq!(
            set(&c, "abc", now),
            "directus_refresh_token=abc; Max-Age=604800; Path=/; Expires=Thu, 08 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax"
        );
        assert!(clear(&c)
            .starts_with("directus_refresh_token=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970"));
        let mut h = HeaderMap::new();
        h.insert(
            "cookie",
            "a=1; directus_refresh_token=x%2Dy; b=".parse().unwrap(),
        );
        assert_eq!(read(&h, "directus_refresh_token").as_deref(), Some("x-y"));
        assert_eq!(read(&h, "b"), None);
    }
}
