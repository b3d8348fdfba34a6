//! `POST /auth/password/request` and `/auth/password/reset`.

use std::time::Duration;

use serde_json::json;

use super::{link_of, mailed_token, set_settings, settled_mail_count, spawn_accounts};
use crate::helpers::{spawn_with, ADMIN_EMAIL};

#[tokio::test]
async fn requests_answer_204_alike_and_only_active_local_users_get_mail() {
    let app = spawn_accounts(&[]).await;
    let admin = app.admin_token().await;
    app.create_user(&admin, "known@example.com", "old-password-1", None)
        .await;
    let r = app
        .post(
            "/users",
            Some(&admin),
            json!({"email": "off@example.com", "password": "pw-123456", "status": "suspended"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .post(
            "/users",
            Some(&admin),
            json!({"email": "sso@example.com", "provider": "openid", "external_identifier": "x1"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut answers = Vec::new();
    for email in [
        "KNOWN@example.com",
        "nobody@example.com",
        "off@example.com",
        "sso@example.com",
        "not an email",
    ] {
        let r = app
            .post("/auth/password/request", None, json!({"email": email}))
            .await;
        answers.push((r.status, r.text.clone()));
    }
    assert!(
        answers.iter().all(|a| *a == (204, String::new())),
        "{answers:?}"
    );
    let mails = app.mails(1).await;
    assert_eq!(
        settled_mail_count(&app).await,
        1,
        "only the active local user gets mail"
    );
    assert_eq!(mails[0].to, "known@example.com");
    assert_eq!(mails[0].subject, "Password Reset Request");
    // PUBLIC_URL is `/`: the link is root-relative, as in Directus.
    let link = link_of(&mails[0]);
    assert!(link.starts_with("/admin/reset-password?token="), "{link}");
}

#[tokio::test]
async fn the_request_stalls_from_the_start() {
    // The default stall (500 ms) for an unknown email; measured, not asserted as an upper bound.
    let app = spawn_with(&[]).await;
    let start = std::time::Instant::now();
    let r = app
        .post(
            "/auth/password/request",
            None,
            json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_eq!(r.status, 204);
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn reset_urls_must_be_on_the_allow_list() {
    let app = spawn_accounts(&[]).await;
    let r = app
        .post(
            "/auth/password/request",
            None,
            json!({"email": ADMIN_EMAIL, "reset_url": "https://app.example/reset"}),
        )
        .await;
    r.assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(
        r.body["errors"][0]["extensions"]["reason"],
        "URL \"https://app.example/reset\" can't be used to reset passwords"
    );
    assert_eq!(
        r.body["errors"][0]["message"],
        "Invalid payload. URL \"https://app.example/reset\" can't be used to reset passwords."
    );
    let r = app
        .post(
            "/auth/password/request",
            None,
            json!({"email": ADMIN_EMAIL, "reset_url": 7}),
        )
        .await;
    r.assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(settled_mail_count(&app).await, 0);

    let app = spawn_accounts(&[(
        "PASSWORD_RESET_URL_ALLOW_LIST",
        "https://app.example/reset,https://spa.example/",
    )])
    .await;
    for bad in [
        "https://evil.example/reset",
        "https://app.example/reset/x",
        "http://app.example/reset",
    ] {
        let r = app
            .post(
                "/auth/password/request",
                None,
                json!({"email": ADMIN_EMAIL, "reset_url": bad}),
            )
            .await;
        r.assert_error(400, "INVALID_PAYLOAD");
    }
    let r = app
        .post("/auth/password/request", None, json!({"email": ADMIN_EMAIL, "reset_url": "https://app.example/reset?lang=de&token=stale"}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let link = link_of(&app.mails(1).await[0]);
    assert!(
        link.starts_with("https://app.example/reset?lang=de&token=ey"),
        "{link}"
    );
    assert_eq!(link.matches("token=").count(), 1, "{link}");
    // A hash-routed client: the token goes into the query, before the fragment.
    let r = app
        .post(
            "/auth/password/request",
            None,
            json!({"email": ADMIN_EMAIL, "reset_url": "https://spa.example/#/reset-password"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let link = link_of(&app.mails(2).await[1]);
    assert!(link.starts_with("https://spa.example/?token=ey"), "{link}");
    assert!(link.ends_with("#/reset-password"), "{link}");
}

#[tokio::test]
async fn links_keep_a_public_url_sub_path() {
    let app = spawn_accounts(&[("PUBLIC_URL", "https://x.example/cms/")]).await;
    let r = app
        .post(
            "/auth/password/request",
            None,
            json!({"email": ADMIN_EMAIL}),
        )
        .await;
    assert_eq!(r.status, 204);
    let link = link_of(&app.mails(1).await[0]);
    assert!(
        link.starts_with("https://x.example/cms/admin/reset-password?token=ey"),
        "{link}"
    );
}

#[tokio::test]
async fn a_reset_sets_the_password_once_and_ends_every_session() {
    let app = spawn_accounts(&[]).await;
    let admin = app.admin_token().await;
    let id = app
        .create_user(&admin, "ann@example.com", "old-password-1", None)
        .await;
    let before = app.login("ann@example.com", "old-password-1", "json").await;
    let refresh = before.data()["refresh_token"].as_str().unwrap().to_string();
    app.login("ann@example.com", "old-password-1", "session")
        .await;
    assert_eq!(app.session_count(&id).await, 2);

    app.post(
        "/auth/password/request",
        None,
        json!({"email": "ann@example.com"}),
    )
    .await;
    let token = mailed_token(&app, 1).await;
    let r = app
        .post(
            "/auth/password/reset",
            None,
            json!({"token": token, "password": "new-password-2"}),
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (204, ""));
    assert_eq!(app.session_count(&id).await, 0, "every session ended");
    let r = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": refresh, "mode": "json"}),
        )
        .await;
    r.assert_error(401, "INVALID_CREDENTIALS");
    app.login("ann@example.com", "old-password-1", "json")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    assert_eq!(
        app.login("ann@example.com", "new-password-2", "json")
            .await
            .status,
        200
    );
    // Single use: the token is bound to the password it was issued for.
    let r = app
        .post(
            "/auth/password/reset",
            None,
            json!({"token": token, "password": "third-password-3"}),
        )
        .await;
    r.assert_error(403, "FORBIDDEN");
    assert_eq!(
        app.login("ann@example.com", "new-password-2", "json")
            .await
            .status,
        200
    );
}

/// Two resets with one token at the same moment: exactly one sets its password, on two nodes.
#[tokio::test]
async fn concurrent_resets_with_one_token_let_exactly_one_through() {
    let nodes = crate::helpers::spawn_nodes(
        2,
        &[
            ("GATEHOUSE_PASSWORD_RESET_STALL_TIME", "0"),
            ("REGISTER_STALL_TIME", "0"),
        ],
    )
    .await;
    let app = &nodes[0];
    let admin = app.admin_token().await;
    app.create_user(&admin, "race@example.com", "old-password-1", None)
        .await;
    app.post(
        "/auth/password/request",
        None,
        json!({"email": "race@example.com"}),
    )
    .await;
    let token = mailed_token(app, 1).await;
    let attempts = (0..6).map(|i| {
        let token = token.clone();
        let node = &nodes[i % 2];
        async move {
            node.post(
                "/auth/password/reset",
                None,
                json!({"token": token, "password": format!("new-password-{i}")}),
            )
            .await
        }
    });
    let answers = futures::future::join_all(attempts).await;
    let won: Vec<usize> = (0..answers.len())
        .filter(|i| answers[*i].status == 204)
        .collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    for (i, r) in answers.iter().enumerate() {
        if i != won[0] {
            r.assert_error(403, "FORBIDDEN");
        }
    }
    let winner = format!("new-password-{}", won[0]);
    assert_eq!(
        app.login("race@example.com", &winner, "json").await.status,
        200
    );
}

#[tokio::test]
async fn expired_foreign_and_stale_tokens_are_refused() {
    let app = spawn_accounts(&[]).await;
    let admin = app.admin_token().await;
    let id = app
        .create_user(&admin, "bob@example.com", "old-password-1", None)
        .await;
    app.post(
        "/auth/password/request",
        None,
        json!({"email": "bob@example.com"}),
    )
    .await;
    let token = mailed_token(&app, 1).await;
    // An access token is no reset token.
    let access = app
        .login("bob@example.com", "old-password-1", "json")
        .await
        .data()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    app.post(
        "/auth/password/reset",
        None,
        json!({"token": access, "password": "new-password-2"}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    // Nor is a token of another scope signed with the same secret.
    let invite = app
        .auth
        .tokens
        .sign_scoped(
            "invite",
            serde_json::Map::from_iter([("email".into(), json!("bob@example.com"))]),
            Duration::from_secs(60),
            app.auth.now(),
        )
        .unwrap();
    app.post(
        "/auth/password/reset",
        None,
        json!({"token": invite, "password": "new-password-2"}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    // A suspended user cannot reset.
    app.patch(
        &format!("/users/{id}"),
        Some(&admin),
        json!({"status": "suspended"}),
    )
    .await;
    app.post(
        "/auth/password/reset",
        None,
        json!({"token": token, "password": "new-password-2"}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    app.patch(
        &format!("/users/{id}"),
        Some(&admin),
        json!({"status": "active"}),
    )
    .await;
    // One day later the token has expired.
    app.advance(Duration::from_secs(24 * 3600 + 1));
    app.post(
        "/auth/password/reset",
        None,
        json!({"token": token, "password": "new-password-2"}),
    )
    .await
    .assert_error(401, "TOKEN_EXPIRED");
    app.post(
        "/auth/password/reset",
        None,
        json!({"token": "not.a.jwt", "password": "new-password-2"}),
    )
    .await
    .assert_error(403, "INVALID_TOKEN");
    // A password change since the token was issued makes it stale.
    let app = spawn_accounts(&[]).await;
    let admin = app.admin_token().await;
    let id = app
        .create_user(&admin, "cy@example.com", "old-password-1", None)
        .await;
    app.post(
        "/auth/password/request",
        None,
        json!({"email": "cy@example.com"}),
    )
    .await;
    let token = mailed_token(&app, 1).await;
    app.patch(
        &format!("/users/{id}"),
        Some(&admin),
        json!({"password": "changed-by-admin"}),
    )
    .await;
    app.post(
        "/auth/password/reset",
        None,
        json!({"token": token, "password": "new-password-2"}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
}

#[tokio::test]
async fn the_password_policy_applies_and_the_password_is_never_echoed() {
    let app = spawn_accounts(&[]).await;
    let admin = app.admin_token().await;
    app.create_user(&admin, "dee@example.com", "old-password-1", None)
        .await;
    set_settings(&app, &admin, json!({"auth_password_policy": "/^.{16,}$/"})).await;
    app.post(
        "/auth/password/request",
        None,
        json!({"email": "dee@example.com"}),
    )
    .await;
    let token = mailed_token(&app, 1).await;
    let r = app
        .post(
            "/auth/password/reset",
            None,
            json!({"token": token, "password": "Qz7-weak"}),
        )
        .await;
    r.assert_error(400, "FAILED_VALIDATION");
    assert_eq!(r.body["errors"][0]["extensions"]["field"], "password");
    assert!(!r.text.contains("Qz7-weak"), "{}", r.text);
    // The token still works for a password the policy accepts.
    let r = app
        .post(
            "/auth/password/reset",
            None,
            json!({"token": token, "password": "a-long-enough-password"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // Empty and oversized passwords are refused before the token is looked at.
    let r = app
        .post(
            "/auth/password/reset",
            None,
            json!({"token": token, "password": ""}),
        )
        .await;
    r.assert_error(400, "INVALID_PAYLOAD");
    let r = app
        .post(
            "/auth/password/reset",
            None,
            json!({"token": token, "password": "x".repeat(1025)}),
        )
        .await;
    r.assert_error(400, "INVALID_PAYLOAD");
}

#[tokio::test]
async fn bodies_are_checked_as_directus_checks_them() {
    let app = spawn_accounts(&[]).await;
    for (path, body, reason) in [
        (
            "/auth/password/request",
            json!({}),
            "\"email\" field is required",
        ),
        (
            "/auth/password/request",
            json!({"email": ["a@example.com"]}),
            "\"email\" field is required",
        ),
        (
            "/auth/password/reset",
            json!({"password": "x"}),
            "\"token\" field is required",
        ),
        (
            "/auth/password/reset",
            json!({"token": 5, "password": "x"}),
            "\"token\" field is required",
        ),
        (
            "/auth/password/reset",
            json!({"token": "x"}),
            "\"password\" field is required",
        ),
    ] {
        let r = app.post(path, None, body).await;
        r.assert_error(400, "INVALID_PAYLOAD");
        assert_eq!(
            r.body["errors"][0]["extensions"]["reason"], reason,
            "{path}"
        );
    }
}
