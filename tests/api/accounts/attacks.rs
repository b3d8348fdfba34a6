//! Hostile input to the account routes: NUL bytes, huge strings, other JSON types, malformed
//! and foreign tokens. Each ends in a clean answer in Directus's envelope, never a 500.

use serde_json::{json, Value};

use super::{set_settings, settled_mail_count, spawn_accounts};
use crate::helpers::ADMIN_EMAIL;

#[tokio::test]
async fn hostile_bodies_get_clean_answers() {
    let app = spawn_accounts(&[]).await;
    let admin = app.admin_token().await;
    set_settings(&app, &admin, json!({"public_registration": true})).await;
    let huge = "a".repeat(200_000);
    let cases: Vec<(&str, Value, u16)> = vec![
        (
            "/auth/password/request",
            json!({"email": "admin@example.com\u{0}"}),
            204,
        ),
        (
            "/auth/password/request",
            json!({"email": format!("{}@example.com", "a".repeat(5000))}),
            204,
        ),
        // Past the auth routes' body limit.
        (
            "/auth/password/request",
            json!({"email": huge.clone()}),
            400,
        ),
        (
            "/auth/password/request",
            json!({"email": ADMIN_EMAIL, "reset_url": "https://x\u{0}.example/"}),
            400,
        ),
        (
            "/auth/password/request",
            json!({"email": {"_eq": ADMIN_EMAIL}}),
            400,
        ),
        ("/auth/password/request", json!({"email": true}), 400),
        ("/auth/password/request", json!([ADMIN_EMAIL]), 400),
        (
            "/auth/password/reset",
            json!({"token": "\u{0}", "password": "pw-1234567"}),
            403,
        ),
        (
            "/auth/password/reset",
            json!({"token": "a.b.c", "password": "pw-1234567"}),
            403,
        ),
        (
            "/auth/password/reset",
            json!({"token": "eyJhbGciOiJub25lIn0.eyJlbWFpbCI6ImFkbWluQGV4YW1wbGUuY29tIiwic2NvcGUiOiJwYXNzd29yZC1yZXNldCIsImhhc2giOiIwIiwiaXNzIjoiZGlyZWN0dXMiLCJleHAiOjk5OTk5OTk5OTl9.", "password": "pw-1234567"}),
            403,
        ),
        (
            "/auth/password/reset",
            json!({"token": ["x"], "password": "pw-1234567"}),
            400,
        ),
        (
            "/auth/password/reset",
            json!({"token": "x", "password": {"a": 1}}),
            400,
        ),
        (
            "/users/invite/accept",
            json!({"token": "x\u{0}", "password": "pw"}),
            400,
        ),
        (
            "/users/invite/accept",
            json!({"token": huge.clone(), "password": "pw"}),
            403,
        ),
        (
            "/users/invite/accept",
            json!({"token": "x", "password": huge.clone()}),
            400,
        ),
        ("/users/invite/accept", json!("a string"), 400),
        (
            "/users/register",
            json!({"email": "a\u{0}@example.com", "password": "pw-1234567"}),
            400,
        ),
        (
            "/users/register",
            json!({"email": format!("{huge}@example.com"), "password": "pw-1234567"}),
            400,
        ),
        (
            "/users/register",
            json!({"email": "a@example.com", "password": huge.clone()}),
            400,
        ),
        (
            "/users/register",
            json!({"email": "a@example.com", "password": ["pw"]}),
            400,
        ),
        ("/users/register", json!(null), 400),
    ];
    for (path, body, status) in cases {
        let r = app.post(path, None, body.clone()).await;
        let shown: String = body.to_string().chars().take(120).collect();
        assert_eq!(r.status, status, "{path} {shown}: {}", r.text);
        if status != 204 {
            assert!(
                r.body["errors"][0]["extensions"]["code"].is_string(),
                "{path} {shown}: {}",
                r.text
            );
        }
    }
    for path in [
        "/users/register/verify-email?token=%00",
        "/users/register/verify-email?token=a.b.c",
        "/users/register/verify-email",
    ] {
        let r = app.get(path, None).await;
        r.assert_error(403, "INVALID_TOKEN");
    }
    // An access token as a verification token: a token of another purpose.
    let r = app
        .get(&format!("/users/register/verify-email?token={admin}"), None)
        .await;
    r.assert_error(403, "FORBIDDEN");
    assert_eq!(settled_mail_count(&app).await, 0);
}
