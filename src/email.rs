//! Email addresses: what gatehouse accepts, the form it stores, and the key it compares by.
//!
//! Directus compares emails with `LOWER(email) = lower(input)` (`api/src/services/users.ts`,
//! `checkUniqueEmails`; `api/src/auth/drivers/local.ts`), which on SQLite lowers ASCII only, and
//! it stores whatever Unicode form the client sent, so `jörg@`, its decomposed form and `JÖRG@`
//! can be three accounts. gatehouse stores the composed form (NFC) of what was sent, keeping its
//! case, and compares by [`key`]: Unicode lower case of the NFC form (docs/compatibility.md).

use unicode_normalization::UnicodeNormalization;

/// The form an email is stored in: Unicode NFC, case kept.
pub fn normalize(email: &str) -> String {
    email.nfc().collect()
}

/// The form two emails are compared in: Unicode lower case of the NFC form, composed again
/// (lower-casing can decompose).
pub fn key(email: &str) -> String {
    normalize(email).to_lowercase().nfc().collect()
}

/// Characters no address may carry: controls (Cc, NUL included) and invisible format
/// characters (Cf: zero-width spaces and joiners, bidirectional overrides such as U+202E,
/// the BOM, tags), which make two addresses look alike or reorder what an admin reads.
pub fn is_forbidden_char(c: char) -> bool {
    c.is_control() || is_format(c)
}

/// Unicode general category Cf (Unicode 15.1).
fn is_format(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// A syntax check in place of Joi's `string().email()` (docs/compatibility.md): a local part
/// of 1–64 characters without spaces, at least two domain labels of letters, digits and `-`,
/// an alphabetic top-level label of at least two characters, and no control or format
/// character anywhere.
pub fn valid(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let labels: Vec<&str> = domain.split('.').collect();
    !local.is_empty()
        && local.chars().count() <= 64
        && s.chars().count() <= 254
        && !s.chars().any(is_forbidden_char)
        && !local.chars().any(|c| c.is_whitespace() || c == '@')
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.chars().count() <= 63
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax() {
        assert!(valid("admin@example.com"));
        assert!(valid("jörg@exämple.de"));
        assert!(!valid("a@localhost"));
        assert!(!valid("no-at.example.com"));
        assert!(!valid("a@b.c"));
        assert!(!valid("a b@example.com"));
    }

    #[test]
    fn controls_and_format_characters_are_refused() {
        for bad in [
            "a\u{0}b@example.com",
            "ab@example.com\u{0}",
            "a\u{200B}b@example.com",
            "a\u{202E}b@example.com",
            "\u{FEFF}ab@example.com",
            "a\u{7}b@example.com",
            "ab@exa\u{200D}mple.com",
        ] {
            assert!(!valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn one_key_for_case_and_composition() {
        let composed = "j\u{F6}rg@example.com";
        let decomposed = "jo\u{308}rg@example.com";
        let upper = "J\u{D6}RG@EXAMPLE.COM";
        assert_ne!(composed, decomposed);
        assert_eq!(key(composed), key(decomposed));
        assert_eq!(key(composed), key(upper));
        assert_eq!(normalize(decomposed), composed);
        assert_eq!(normalize("A@Example.com"), "A@Example.com");
        assert_ne!(key("a@example.com"), key("b@example.com"));
    }
}
