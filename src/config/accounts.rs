//! The account flows' variables (Directus's names, `packages/env/src/constants/defaults.ts`):
//! the URL allow lists of reset, invite and registration links, the invite and verification
//! token lifetimes and the stalls.

use std::time::Duration;

use super::{cors::list, ConfigError, Vars};

#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// `PASSWORD_RESET_URL_ALLOW_LIST`: where a `reset_url` may point (unset: nowhere).
    pub password_reset_url_allow_list: Vec<String>,
    /// `USER_INVITE_URL_ALLOW_LIST`.
    pub user_invite_url_allow_list: Vec<String>,
    /// `USER_REGISTER_URL_ALLOW_LIST`.
    pub user_register_url_allow_list: Vec<String>,
    /// `USER_INVITE_TOKEN_TTL` (7d).
    pub user_invite_token_ttl: Duration,
    /// `EMAIL_VERIFICATION_TOKEN_TTL` (7d).
    pub email_verification_token_ttl: Duration,
    /// `REGISTER_STALL_TIME` (750 ms): the least time a registration answer takes.
    pub register_stall_time: Duration,
    /// `GATEHOUSE_PASSWORD_RESET_STALL_TIME` (500 ms): Directus's fixed stall of a reset
    /// request, settable so test suites need not wait for it.
    pub password_reset_stall_time: Duration,
}

pub fn read(v: &Vars) -> Result<AccountsConfig, ConfigError> {
    Ok(AccountsConfig {
        password_reset_url_allow_list: list(v, "PASSWORD_RESET_URL_ALLOW_LIST", "")?,
        user_invite_url_allow_list: list(v, "USER_INVITE_URL_ALLOW_LIST", "")?,
        user_register_url_allow_list: list(v, "USER_REGISTER_URL_ALLOW_LIST", "")?,
        user_invite_token_ttl: v.positive_duration("USER_INVITE_TOKEN_TTL", "7d")?,
        email_verification_token_ttl: v.positive_duration("EMAIL_VERIFICATION_TOKEN_TTL", "7d")?,
        register_stall_time: v.duration("REGISTER_STALL_TIME", "750")?,
        password_reset_stall_time: v.duration("GATEHOUSE_PASSWORD_RESET_STALL_TIME", "500")?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_and_lists() {
        let c = read(
            &Vars::from_pairs([(
                "USER_INVITE_URL_ALLOW_LIST",
                "https://a.example/x, https://b.example/y",
            )])
            .unwrap(),
        )
        .unwrap();
        assert!(c.password_reset_url_allow_list.is_empty());
        assert_eq!(
            c.user_invite_url_allow_list,
            ["https://a.example/x", "https://b.example/y"]
        );
        assert_eq!(c.user_invite_token_ttl, Duration::from_secs(7 * 86400));
        assert_eq!(c.register_stall_time, Duration::from_millis(750));
        assert_eq!(c.password_reset_stall_time, Duration::from_millis(500));
        assert!(read(&Vars::from_pairs([("USER_INVITE_TOKEN_TTL", "0")]).unwrap()).is_err());
    }
}
