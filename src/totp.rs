//! TOTP as Directus uses it (`api/src/services/tfa.ts`, otplib's authenticator): base32 secret, SHA-1,
//! 6 digits, 30-second step, window 0.

use chrono::{DateTime, Utc};
use totp_rs::{Algorithm, Secret, TOTP};

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
    }
}
