//! Account flows that send mail: password reset, invites, public registration, and the public
//! part of `/server/info`. Each test reads the mail the server sent and follows its link.

mod attacks;
mod invites;
mod registration;
mod reset;
mod server_info;

use serde_json::{json, Value};

use crate::helpers::{spawn_with, TestApp};

/// A server without the account stalls (Directus's 500 and 750 ms), so the suite stays fast,
/// and without the per-IP registration limit (5 a minute; tests/api/rate_limit.rs covers it);
/// the stall itself is covered by `reset::the_request_stalls_from_the_start`.
pub async fn spawn_accounts(extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![
        ("GATEHOUSE_PASSWORD_RESET_STALL_TIME", "0"),
        ("REGISTER_STALL_TIME", "0"),
        ("RATE_LIMITER_REGISTRATION_ENABLED", "false"),
    ];
    vars.extend_from_slice(extra);
    spawn_with(&vars).await
}

/// The link of a mail: the first `href` of its html that carries a token.
pub fn link_of(mail: &gatehouse::providers::mail::Mail) -> String {
    let re = regex::Regex::new(r#"href="([^"]*token=[^"]*)""#).unwrap();
    let link = re
        .captures(&mail.html)
        .map(|c| c[1].to_string())
        .unwrap_or_else(|| panic!("a link in the mail: {}", mail.html));
    link.replace("&amp;", "&")
}

/// The `token` query parameter of a link.
pub fn token_of(link: &str) -> String {
    let re = regex::Regex::new(r"[?&]token=([A-Za-z0-9_\-.]+)").unwrap();
    re.captures(link)
        .map(|c| c[1].to_string())
        .unwrap_or_else(|| panic!("a token in {link}"))
}

/// The token of the `n`th mail (1-based), waiting for it.
pub async fn mailed_token(app: &TestApp, n: usize) -> String {
    let mails = app.mails(n).await;
    assert!(mails.len() >= n, "{n} mails expected, got {}", mails.len());
    token_of(&link_of(&mails[n - 1]))
}

/// Waits a little for mail that should not come, then returns how many were sent.
pub async fn settled_mail_count(app: &TestApp) -> usize {
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    app.mailbox.sent().len()
}

pub async fn set_settings(app: &TestApp, admin: &str, patch: Value) {
    let r = app.patch("/settings", Some(admin), patch).await;
    assert_eq!(r.status, 200, "settings: {}", r.text);
}

/// A user's row as the admin API shows it.
pub async fn user_by_email(app: &TestApp, admin: &str, email: &str) -> Option<Value> {
    let filter = json!({"email": {"_eq": email}}).to_string();
    let path = format!(
        "/users?filter={}",
        percent_encoding::utf8_percent_encode(&filter, percent_encoding::NON_ALPHANUMERIC)
    );
    let r = app.get(&path, Some(admin)).await;
    assert_eq!(r.status, 200, "users: {}", r.text);
    r.data().as_array().and_then(|a| a.first().cloned())
}
