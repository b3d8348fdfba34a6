//! Directus's tokens: HS256 access and session JWTs (Directus: `api/src/services/authentication.ts`, `api/src/utils/jwt.ts`), 64-character
//! refresh tokens, scoped single-purpose tokens, and the test that tells a JWT from a static
//! token (`api/src/utils/is-directus-jwt.ts`).
//!
//! SECURITY: stricter than Directus on purpose (docs/compatibility.md): only HS256 is
//! accepted, `exp` is required, and an `iat` in the future is refused.

use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Digest;
use uuid::Uuid;

use crate::error::ApiError;

/// Tolerated clock difference between nodes for `iat`.
const IAT_SKEW_SECS: i64 = 5;

/// Claims of an access or session JWT, in Directus's order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessClaims {
    pub id: Uuid,
    pub role: Option<Uuid>,
    pub app_access: bool,
    pub admin_access: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub enforce_tfa: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub session: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

/// Access JWTs that verified, kept so a token sent on every request is checked once: its
/// expiry is still compared with the clock on each use. Bounded; only valid tokens enter.
const VERIFIED_CAPACITY: u64 = 4096;
const VERIFIED_TTL: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    verified: moka::sync::Cache<String, AccessClaims>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens { .. }")
    }
}

impl Tokens {
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&["directus"]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        // Expiry is checked against the injected clock below.
        validation.validate_exp = false;
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .time_to_live(VERIFIED_TTL)
                .build(),
        }
    }

    pub fn sign(&self, claims: &AccessClaims) -> Result<String, ApiError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(ApiError::internal)
    }

    /// Verifies an access or session JWT: a bad signature or shape is `INVALID_TOKEN` (403),
    /// a valid but expired one `TOKEN_EXPIRED` (401).
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, ApiError> {
        // A token that verified before: the signature, shape, issuer and `iat`/`nbf` rules
        // held then and cannot change; the expiry is checked again.
        if let Some(claims) = self.verified.get(token) {
            if now.timestamp() >= claims.exp {
                return Err(ApiError::TokenExpired);
            }
            return Ok(claims);
        }
        let claims = self.verify_uncached(token, now)?;
        self.verified.insert(token.to_string(), claims.clone());
        Ok(claims)
    }

    fn verify_uncached(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, ApiError> {
        let mut map = self.decode_checked(token, now)?;
        // Directus requires these three claims to be present (role may be null).
        for key in ["role", "app_access", "admin_access"] {
            if !map.contains_key(key) {
                return Err(ApiError::InvalidToken);
            }
        }
        map.entry("iat").or_insert(Value::from(0));
        serde_json::from_value(Value::Object(map)).map_err(|_| ApiError::InvalidToken)
    }

    /// Signs a single-purpose token (password reset, invite, registration, SSO state) as
    /// Directus does (`api/src/services/users.ts`, `api/src/auth/drivers/oauth2.ts`): the given
    /// claims plus `scope`, `iat`, `exp` and issuer `directus`, HS256 with `SECRET`.
    pub fn sign_scoped(
        &self,
        scope: &str,
        mut claims: Map<String, Value>,
        ttl: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<String, ApiError> {
        let iat = now.timestamp();
        claims.insert("scope".into(), Value::from(scope));
        claims.insert("iat".into(), Value::from(iat));
        claims.insert("exp".into(), Value::from(iat + ttl.as_secs() as i64));
        claims.insert("iss".into(), Value::from("directus"));
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)
    }

    /// Verifies a single-purpose token and its `scope`: the same signature, shape and time
    /// rules as access tokens; a valid token of another purpose (an access token, a reset
    /// token used as an invite) is `FORBIDDEN`, as Directus answers a wrong scope.
    pub fn verify_scoped(
        &self,
        token: &str,
        scope: &str,
        now: DateTime<Utc>,
    ) -> Result<Map<String, Value>, ApiError> {
        let map = self.decode_checked(token, now)?;
        if map.get("scope").and_then(Value::as_str) != Some(scope) {
            return Err(ApiError::Forbidden);
        }
        Ok(map)
    }

    /// The one JWT rule: HS256 signed with SECRET, issuer `directus`, no `crit` header, an
    /// `exp` in the future, no `iat` or `nbf` in the future.
    fn decode_checked(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Map<String, Value>, ApiError> {
        // SECURITY: a `crit` header names extensions the verifier must understand; gatehouse
        // understands none, so any `crit` is refused (RFC 7515 §4.1.11). jsonwebtoken's
        // `Header` ignores the field, so the header is read here first.
        if header_has_crit(token) {
            return Err(ApiError::InvalidToken);
        }
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &self.decoding, &self.validation)
                .map_err(|_| ApiError::InvalidToken)?;
        let map = data.claims;
        let exp = map
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(ApiError::InvalidToken)?;
        if now.timestamp() >= exp {
            return Err(ApiError::TokenExpired);
        }
        // A token issued in the future, or not valid yet (RFC 7519 §4.1.5-6), is refused; the
        // skew covers clocks between nodes.
        for claim in ["iat", "nbf"] {
            if let Some(t) = map.get(claim) {
                let t = t.as_i64().ok_or(ApiError::InvalidToken)?;
                if t > now.timestamp() + IAT_SKEW_SECS {
                    return Err(ApiError::InvalidToken);
                }
            }
        }
        Ok(map)
    }
}

/// Whether a JWT's protected header carries `crit` (or cannot be read at all).
fn header_has_crit(token: &str) -> bool {
    let Some(header) = token.split('.').next() else {
        return true;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else {
        return true;
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(h)) => h.contains_key("crit"),
        _ => true,
    }
}

/// Whether a bearer value is a JWT issued by Directus, decided as Directus decides between the
/// JWT and static-token paths (`api/src/utils/is-directus-jwt.ts`: jsonwebtoken's `decode`,
/// which is jws 4's): three dot-separated segments of the base64url alphabet only (no `+`, `/`
/// or `=` padding; the signature may be empty), a header that decodes to JSON other than a
/// falsy value, and a payload that decodes to JSON with `iss: "directus"`. Anything else is
/// looked up as a static token, so a malformed JWT is 401 `INVALID_CREDENTIALS` there as here,
/// while a well-formed one that does not verify is 403 `INVALID_TOKEN`.
pub fn is_directus_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let alphabet = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if header.is_empty()
        || payload.is_empty()
        || ![header, payload, signature].iter().all(|s| alphabet(s))
    {
        return false;
    }
    // jws reads the header as latin1 (`toString('binary')`) and needs a truthy JSON value.
    let header: String = base64url_lenient(header)
        .into_iter()
        .map(char::from)
        .collect();
    let truthy = match serde_json::from_str::<Value>(&header) {
        Ok(Value::Null | Value::Bool(false)) | Err(_) => false,
        Ok(Value::String(s)) => !s.is_empty(),
        Ok(Value::Number(n)) => n.as_f64() != Some(0.0),
        Ok(_) => true,
    };
    if !truthy {
        return false;
    }
    let payload = String::from_utf8_lossy(&base64url_lenient(payload)).into_owned();
    serde_json::from_str::<Value>(&payload)
        .ok()
        .and_then(|v| {
            v.get("iss")
                .and_then(Value::as_str)
                .map(|i| i == "directus")
        })
        .unwrap_or(false)
}

/// Node's `Buffer.from(s, 'base64')` on base64url characters: every 6 bits in order, whole
/// bytes kept, leftover bits dropped (a trailing single character yields nothing).
fn base64url_lenient(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// The one rule for static tokens, wherever one is set (`ADMIN_TOKEN`, the users API, the
/// CLI): at least 8 characters, not the concealed mask, and not shaped like a JWT (three
/// dot-separated parts). A value shaped like a JWT would be taken for one by whoever checks it
/// first (`is_directus_jwt` decides only by the payload), so it is refused outright.
pub fn check_static_token(token: &str) -> Result<(), &'static str> {
    if token.len() < 8 || token == crate::auth::admin::MASK || token.split('.').count() == 3 {
        Err("must be at least 8 characters, not \"**********\" and not look like a JWT (three dot-separated parts)")
    } else {
        Ok(())
    }
}

/// A new refresh token: 64 characters of nanoid's URL-safe alphabet from the OS-seeded CSPRNG.
pub fn refresh_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut rng = rand::thread_rng();
    (0..64)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A random secret for `SECRET` when none is configured.
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::thread_rng().gen();
    hex::encode(bytes)
}

/// SHA-256 of a refresh token, the only form in which gatehouse keeps rotated tokens.
pub fn token_hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Constant-time equality for secrets.
pub fn secure_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: DateTime<Utc>) -> AccessClaims {
        AccessClaims {
            id: Uuid::new_v4(),
            role: None,
            app_access: false,
            admin_access: false,
            enforce_tfa: None,
            session: None,
            iat: now.timestamp(),
            exp: now.timestamp() + 900,
            iss: "directus".into(),
        }
    }

    fn forge(secret: &str, alg: Algorithm, body: &Value) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            body,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn a_token_verified_once_still_expires_and_forgeries_are_never_kept() {
        let t = Tokens::new("0123456789abcdef0123");
        let now = Utc::now();
        let c = claims(now);
        let jwt = t.sign(&c).unwrap();
        assert_eq!(t.verify(&jwt, now).unwrap(), c);
        assert_eq!(t.verify(&jwt, now).unwrap(), c, "answered again");
        assert!(matches!(
            t.verify(&jwt, now + chrono::Duration::seconds(900)),
            Err(ApiError::TokenExpired)
        ));
        // A forgery fails every time: a failure is not kept, so it cannot become a success.
        let mut parts: Vec<&str> = jwt.split('.').collect();
        parts[2] = "AAAA";
        let forged = parts.join(".");
        for _ in 0..2 {
            assert!(matches!(
                t.verify(&forged, now),
                Err(ApiError::InvalidToken)
            ));
        }
        // Another secret's server never accepts this one's verified token.
        let other = Tokens::new("another-secret-0123456789");
        assert!(matches!(
            other.verify(&jwt, now),
            Err(ApiError::InvalidToken)
        ));
    }

    #[test]
    fn round_trip_and_claim_order() {
        let t = Tokens::new("0123456789abcdef0123");
        let now = Utc::now();
        let c = claims(now);
        let jwt = t.sign(&c).unwrap();
        assert_eq!(t.verify(&jwt, now).unwrap(), c);
        let payload = jwt.split('.').nth(1).unwrap();
        let text = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        let keys: Vec<&str> = [
            "\"id\"",
            "\"role\"",
            "\"app_access\"",
            "\"admin_access\"",
            "\"iat\"",
            "\"exp\"",
            "\"iss\"",
        ]
        .into_iter()
        .collect();
        let positions: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(is_directus_jwt(&jwt));
        assert!(!is_directus_jwt("static-token"));
    }

    /// jws 4's shape rules, which decide whether Directus verifies a value as a JWT or looks
    /// it up as a static token.
    #[test]
    fn only_base64url_segments_are_jwts() {
        let t = Tokens::new("0123456789abcdef0123");
        let jwt = t.sign(&claims(Utc::now())).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert!(
            is_directus_jwt(&format!("{}.{}.", parts[0], parts[1])),
            "empty signature"
        );
        assert!(!is_directus_jwt(&format!("{jwt}=")), "padding");
        assert!(!is_directus_jwt(&format!(
            "{}=.{}.{}",
            parts[0], parts[1], parts[2]
        )));
        assert!(!is_directus_jwt(&format!(
            "{}.{}+.{}",
            parts[0], parts[1], parts[2]
        )));
        assert!(!is_directus_jwt(&format!(
            "{}.{}./{}",
            parts[0], parts[1], parts[2]
        )));
        assert!(
            !is_directus_jwt(&format!(".{}.{}", parts[1], parts[2])),
            "empty header"
        );
        // The header must be truthy JSON: `0` and `""` are not, `1` is.
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        for (header, jwt_like) in [("0", false), ("\"\"", false), ("nope", false), ("1", true)] {
            let token = format!("{}.{}.{}", b64(header), parts[1], parts[2]);
            assert_eq!(is_directus_jwt(&token), jwt_like, "header {header}");
        }
        // Node's decoder drops a trailing lone character and keeps going where ours would stop.
        let payload = b64("{\"iss\":\"directus\"}");
        assert_eq!(payload.len() % 4, 0);
        assert!(is_directus_jwt(&format!(
            "{}.{payload}A.{}",
            parts[0], parts[2]
        )));
        assert_eq!(base64url_lenient("QUJD"), b"ABC");
        assert_eq!(base64url_lenient("QUI"), b"AB");
        assert_eq!(base64url_lenient("Q"), b"");
    }

    #[test]
    fn strict_where_directus_is_lax() {
        let secret = "0123456789abcdef0123";
        let t = Tokens::new(secret);
        let now = Utc::now();
        let good = serde_json::to_value(claims(now)).unwrap();
        // HS384 and HS512 are refused.
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            assert!(matches!(
                t.verify(&forge(secret, alg, &good), now),
                Err(ApiError::InvalidToken)
            ));
        }
        // No exp: refused (Directus would accept it forever).
        let mut no_exp = good.clone();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert!(matches!(
            t.verify(&forge(secret, Algorithm::HS256, &no_exp), now),
            Err(ApiError::InvalidToken)
        ));
        // iat an hour ahead: refused.
        let mut future = good.clone();
        future["iat"] = Value::from(now.timestamp() + 3600);
        assert!(matches!(
            t.verify(&forge(secret, Algorithm::HS256, &future), now),
            Err(ApiError::InvalidToken)
        ));
        // Expired: TOKEN_EXPIRED; wrong key: INVALID_TOKEN even when expired.
        let mut old = good.clone();
        old["exp"] = Value::from(now.timestamp() - 1);
        assert!(matches!(
            t.verify(&forge(secret, Algorithm::HS256, &old), now),
            Err(ApiError::TokenExpired)
        ));
        assert!(matches!(
            t.verify(&forge("another-secret-value!", Algorithm::HS256, &old), now),
            Err(ApiError::InvalidToken)
        ));
        // nbf an hour ahead: refused; nbf in the past: fine.
        let mut not_yet = good.clone();
        not_yet["nbf"] = Value::from(now.timestamp() + 3600);
        assert!(matches!(
            t.verify(&forge(secret, Algorithm::HS256, &not_yet), now),
            Err(ApiError::InvalidToken)
        ));
        let mut valid_since = good.clone();
        valid_since["nbf"] = Value::from(now.timestamp() - 60);
        assert!(t
            .verify(&forge(secret, Algorithm::HS256, &valid_since), now)
            .is_ok());
        // An unknown critical header extension: refused (RFC 7515 §4.1.11).
        let crit = {
            let b64 =
                |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            let head = b64(&serde_json::json!({"alg": "HS256", "typ": "JWT", "crit": ["exp"]}));
            let input = format!("{head}.{}", b64(&good));
            let sig = jsonwebtoken::crypto::sign(
                input.as_bytes(),
                &EncodingKey::from_secret(secret.as_bytes()),
                Algorithm::HS256,
            )
            .unwrap();
            format!("{input}.{sig}")
        };
        assert!(matches!(t.verify(&crit, now), Err(ApiError::InvalidToken)));
        // Missing access claims (a reset token, say): INVALID_TOKEN.
        let mut no_role = good;
        no_role.as_object_mut().unwrap().remove("role");
        assert!(matches!(
            t.verify(&forge(secret, Algorithm::HS256, &no_role), now),
            Err(ApiError::InvalidToken)
        ));
    }

    #[test]
    fn scoped_tokens_carry_their_purpose() {
        let t = Tokens::new("0123456789abcdef0123");
        let now = Utc::now();
        let ttl = std::time::Duration::from_secs(600);
        let mut body = Map::new();
        body.insert("email".into(), Value::from("a@example.com"));
        let reset = t.sign_scoped("password-reset", body, ttl, now).unwrap();
        let back = t.verify_scoped(&reset, "password-reset", now).unwrap();
        assert_eq!(back["email"], "a@example.com");
        assert_eq!(back["iss"], "directus");
        // Another purpose, or an access token, is forbidden; an access check refuses it.
        assert!(matches!(
            t.verify_scoped(&reset, "invite", now),
            Err(ApiError::Forbidden)
        ));
        let access = t.sign(&claims(now)).unwrap();
        assert!(matches!(
            t.verify_scoped(&access, "password-reset", now),
            Err(ApiError::Forbidden)
        ));
        assert!(matches!(t.verify(&reset, now), Err(ApiError::InvalidToken)));
        // Time and signature rules are the access tokens' own.
        assert!(matches!(
            t.verify_scoped(
                &reset,
                "password-reset",
                now + chrono::Duration::seconds(601)
            ),
            Err(ApiError::TokenExpired)
        ));
        let other = Tokens::new("another-secret-value!");
        assert!(matches!(
            other.verify_scoped(&reset, "password-reset", now),
            Err(ApiError::InvalidToken)
        ));
    }

    #[test]
    fn one_rule_for_static_tokens() {
        for bad in ["short", "**********", "a.b.c", "my.static.token"] {
            assert!(check_static_token(bad).is_err(), "{bad}");
        }
        assert!(check_static_token("a-long-static-token").is_ok());
    }

    #[test]
    fn refresh_tokens_look_like_nanoid_64() {
        let a = refresh_token();
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        assert_ne!(a, refresh_token());
    }
}
