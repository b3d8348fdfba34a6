//! TOTP as Directus uses it (`api/src/services/tfa.ts`, otplib's authenticator): base32 secret, SHA-1,
//! 6 digits, 30-second step, window 0; the secret and `otpauth://` URL Directus hands out; and
//! gatehouse's one-time recovery codes.

use chrono::{DateTime, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::Rng;
use totp_rs::{Algorithm, Secret, TOTP};

/// Seconds per TOTP step.
pub const STEP_SECONDS: i64 = 30;
/// Longest secret accepted at enable (Directus's are 16 characters).
pub const MAX_SECRET_CHARS: usize = 128;
/// Shortest secret accepted at enable: 80 bits, what Directus generates.
pub const MIN_SECRET_CHARS: usize = 16;
/// How many recovery codes a user holds.
pub const RECOVERY_CODES: usize = 10;
/// Characters of a recovery code (without its dash); 5 bits each.
const RECOVERY_CHARS: usize = 10;
const RECOVERY_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";

/// What `encodeURIComponent` leaves alone: letters, digits and `-_.!~*'()`.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

fn totp(secret_b32: &str) -> Option<TOTP> {
    let bytes = Secret::Encoded(secret_b32.trim().to_ascii_uppercase())
        .to_bytes()
        .ok()?;
    // new_unchecked: Directus's secrets are 80 bits, below totp-rs's 128-bit floor.
    Some(TOTP::new_unchecked(Algorithm::SHA1, 6, 0, 30, bytes))
}

/// Checks a code against the current 30-second step only, in constant time.
pub fn verify(secret_b32: &str, otp: &str, now: DateTime<Utc>) -> bool {
    if otp.len() != 6 || !otp.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Some(t) = totp(secret_b32) else {
        return false;
    };
    crate::tokens::secure_eq(&t.generate(now.timestamp().max(0) as u64), otp)
}

/// The TOTP step `now` falls in.
pub fn step(now: DateTime<Utc>) -> i64 {
    now.timestamp().max(0) / STEP_SECONDS
}

/// A new secret as otplib's `authenticator.generateSecret()` makes one: 10 random bytes in
/// RFC 4648 base32, 16 characters.
pub fn new_secret() -> String {
    let bytes: [u8; 10] = rand::thread_rng().gen();
    Secret::Raw(bytes.to_vec()).to_encoded().to_string()
}

/// A secret a client may enable: base32 letters only, 16 to 128 of them, that decodes.
pub fn valid_secret(secret: &str) -> bool {
    (MIN_SECRET_CHARS..=MAX_SECRET_CHARS).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || (b'2'..=b'7').contains(&b))
        && totp(secret).is_some()
}

/// otplib's `keyuri`: `otpauth://totp/<issuer>:<account>?secret=…&period=30&digits=6&algorithm=SHA1&issuer=<issuer>`,
/// issuer and account encoded as `encodeURIComponent` does.
pub fn otpauth_url(issuer: &str, account: &str, secret: &str) -> String {
    let enc = |s: &str| utf8_percent_encode(s, URI_COMPONENT).to_string();
    format!(
        "otpauth://totp/{}:{}?secret={secret}&period=30&digits=6&algorithm=SHA1&issuer={}",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

/// Ten new recovery codes, shown as `xxxxx-xxxxx` (50 random bits each).
pub fn new_recovery_codes() -> Vec<String> {
    let mut rng = rand::thread_rng();
    (0..RECOVERY_CODES)
        .map(|_| {
            let c: String = (0..RECOVERY_CHARS)
                .map(|_| RECOVERY_ALPHABET[rng.gen_range(0..RECOVERY_ALPHABET.len())] as char)
                .collect();
            format!("{}-{}", &c[..5], &c[5..])
        })
        .collect()
}

/// The stored form of a recovery code: SHA-256 (hex) of `<secret>:<code>`, the code's
/// characters in lower case without the dash or spaces; None when the input cannot be a
/// recovery code. High-entropy codes need no slow hash; they are found by hash, never
/// compared in clear.
/// SECURITY: the TOTP secret is part of the hash, so codes die with the secret they were made
/// for, even when the secret is cleared or replaced outside gatehouse (by Directus, which does
/// not know these codes) and TFA is enabled again.
pub fn recovery_code_hash(secret: &str, input: &str) -> Option<String> {
    if input.len() > 64 {
        return None;
    }
    let c: String = input
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (c.len() == RECOVERY_CHARS && c.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)))
        .then(|| crate::tokens::token_hash(&format!("{secret}:{c}")))
}

/// The code for `now` (tests and the CLI).
pub fn generate(secret_b32: &str, now: DateTime<Utc>) -> Option<String> {
    totp(secret_b32).map(|t| t.generate(now.timestamp().max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_vector_and_window_zero() {
        // RFC 6238 appendix B, SHA-1 secret "12345678901234567890" (base32 below), T=59 → 94287082 (8 digits);
        // 6 digits are its last six.
        let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let t = DateTime::from_timestamp(59, 0).unwrap();
        assert_eq!(generate(secret, t).unwrap(), "287082");
        assert!(verify(secret, "287082", t));
        assert!(!verify(secret, "287082", t + chrono::Duration::seconds(30)));
        assert!(!verify(secret, "28708", t));
        assert!(!verify(secret, "abcdef", t));
        assert_eq!(step(t), 1);
    }

    #[test]
    fn secrets_urls_and_recovery_codes() {
        let s = new_secret();
        assert_eq!(s.len(), 16);
        assert!(valid_secret(&s), "{s}");
        assert!(!valid_secret("GEZDGNBV"), "too short");
        assert!(!valid_secret("GEZDGNBVGY3TQOJ1"), "1 is not base32");
        assert!(!valid_secret(&"A".repeat(129)));
        assert_eq!(
            otpauth_url("My Project", "a+b@example.com", "ABC"),
            "otpauth://totp/My%20Project:a%2Bb%40example.com?secret=ABC&period=30&digits=6&algorithm=SHA1&issuer=My%20Project"
        );
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), 10);
        let set: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(set.len(), 10);
        let c = &codes[0];
        assert_eq!(c.len(), 11);
        assert_eq!(&c[5..6], "-");
        let h = recovery_code_hash(&s, c).unwrap();
        assert_eq!(
            recovery_code_hash(&s, &c.to_uppercase().replace('-', "")),
            Some(h.clone())
        );
        assert_ne!(recovery_code_hash("OTHERSECRET", c), Some(h));
        assert_eq!(recovery_code_hash(&s, "123456"), None);
        assert_eq!(recovery_code_hash(&s, "abcde-fgh1j"), None);
    }
}
