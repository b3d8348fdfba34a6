//! `POST /users/invite` and `/users/invite/accept`.

use std::time::Duration;

use serde_json::json;

use super::{link_of, mailed_token, settled_mail_count, spawn_accounts, user_by_email};

#[tokio::test]
async fn an_invite_creates_re_invites_and_is_accepted_once() {
    let app = spawn_accounts(&[("PUBLIC_URL", "https://x.example/cms")]).await;
    let admin = app.admin_token().await;
    let editors = app.create_role(&admin, "Editors", false, true).await;
    let writers = app.create_role(&admin, "Writers", false, true).await;
    let r = app
        .post(
            "/users/invite",
            Some(&admin),
            json!({"email": "new@example.com", "role": editors}),
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (204, ""));
    let user = user_by_email(&app, &admin, "new@example.com")
        .await
        .expect("invited user");
    assert_eq!(user["status"], "invited");
    assert_eq!(user["role"], editors.as_str());
    let mails = app.mails(1).await;
    assert_eq!(mails[0].to, "new@example.com");
    assert_eq!(mails[0].subject, "You've been invited");
    let link = link_of(&mails[0]);
    assert!(
        link.starts_with("https://x.example/cms/admin/accept-invite?token=ey"),
        "{link}"
    );

    // Re-inviting a still-invited user moves it to the new role and mails it again; an
    // active user is left alone.
    let r = app
        .post(
            "/users/invite",
            Some(&admin),
            json!({"email": ["NEW@example.com", "admin@example.com"], "role": writers}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let user = user_by_email(&app, &admin, "new@example.com")
        .await
        .unwrap();
    assert_eq!(user["role"], writers.as_str());
    assert_eq!(app.mails(2).await.len(), 2);
    assert_eq!(
        settled_mail_count(&app).await,
        2,
        "no mail to the active admin"
    );
    let admin_row = user_by_email(&app, &admin, "admin@example.com")
        .await
        .unwrap();
    assert_eq!(admin_row["status"], "active");

    let token = mailed_token(&app, 2).await;
    app.login("new@example.com", "chosen-password-1", "json")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    let r = app
        .post(
            "/users/invite/accept",
            None,
            json!({"token": token, "password": "chosen-password-1"}),
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (204, ""));
    assert_eq!(
        app.login("new@example.com", "chosen-password-1", "json")
            .await
            .status,
        200
    );
    let r = app
        .post(
            "/users/invite/accept",
            None,
            json!({"token": token, "password": "other-password-2"}),
        )
        .await;
    r.assert_error(400, "INVALID_INVITE");
    assert_eq!(
        r.body["errors"][0]["message"],
        "This invite is no longer valid."
    );
    assert_eq!(
        app.login("new@example.com", "chosen-password-1", "json")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn only_admins_invite_and_invite_urls_need_the_allow_list() {
    let app = spawn_accounts(&[("USER_INVITE_URL_ALLOW_LIST", "https://app.example/accept")]).await;
    let admin = app.admin_token().await;
    let role = app.create_role(&admin, "Editors", false, true).await;
    app.app_user("app@example.com", "app-password-1").await;
    let user = app
        .login("app@example.com", "app-password-1", "json")
        .await
        .data()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"email": "x@example.com", "role": role});
    app.post("/users/invite", Some(&user), body.clone())
        .await
        .assert_error(403, "FORBIDDEN");
    app.post("/users/invite", None, body.clone())
        .await
        .assert_error(403, "FORBIDDEN");
    assert!(user_by_email(&app, &admin, "x@example.com").await.is_none());

    let r = app
        .post("/users/invite", Some(&admin), json!({"email": "x@example.com", "role": role, "invite_url": "https://evil.example/accept"}))
        .await;
    r.assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(
        r.body["errors"][0]["extensions"]["reason"],
        "URL \"https://evil.example/accept\" can't be used to invite users"
    );
    assert!(
        user_by_email(&app, &admin, "x@example.com").await.is_none(),
        "nothing written"
    );
    let r = app
        .post("/users/invite", Some(&admin), json!({"email": "x@example.com", "role": role, "invite_url": "https://app.example/accept?from=mail"}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let link = link_of(&app.mails(1).await[0]);
    assert!(
        link.starts_with("https://app.example/accept?from=mail&token=ey"),
        "{link}"
    );
    assert_eq!(settled_mail_count(&app).await, 1);
}

#[tokio::test]
async fn invite_bodies_and_tokens_are_checked() {
    let app = spawn_accounts(&[]).await;
    let admin = app.admin_token().await;
    let role = app.create_role(&admin, "Editors", false, true).await;
    for (body, reason) in [
        (json!({"role": role}), "\"email\" is required"),
        (
            json!({"email": "nope", "role": role}),
            "\"email\" must be a valid email",
        ),
        (
            json!({"email": ["a@example.com", 3], "role": role}),
            "\"email[1]\" must be a string",
        ),
        (
            json!({"email": {"a": 1}, "role": role}),
            "\"email\" must be one of [string, array]",
        ),
        (json!({"email": "a@example.com"}), "\"role\" is required"),
        (
            json!({"email": "a@example.com", "role": "not-a-uuid"}),
            "\"role\" must be a valid GUID",
        ),
        (
            json!({"email": "a@example.com", "role": role, "invite_url": "no uri"}),
            "\"invite_url\" must be a valid uri",
        ),
        (
            json!({"email": "a@example.com", "role": role, "status": "active"}),
            "\"status\" is not allowed",
        ),
    ] {
        let r = app.post("/users/invite", Some(&admin), body.clone()).await;
        r.assert_error(400, "INVALID_PAYLOAD");
        assert_eq!(
            r.body["errors"][0]["extensions"]["reason"], reason,
            "{body}"
        );
    }
    let many: Vec<String> = (0..101).map(|i| format!("u{i}@example.com")).collect();
    app.post(
        "/users/invite",
        Some(&admin),
        json!({"email": many, "role": role}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    // An unknown role is a foreign key error, and nothing is created.
    let r = app
        .post(
            "/users/invite",
            Some(&admin),
            json!({"email": "a@example.com", "role": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);

    app.post(
        "/users/invite",
        Some(&admin),
        json!({"email": "b@example.com", "role": role}),
    )
    .await;
    let token = mailed_token(&app, 1).await;
    for (body, reason) in [
        (json!({"password": "pw-1234567"}), "\"token\" is required"),
        (
            json!({"token": "", "password": "pw-1234567"}),
            "\"token\" is not allowed to be empty",
        ),
        (json!({"token": token}), "\"password\" is required"),
        (
            json!({"token": token, "password": 12}),
            "\"password\" must be a string",
        ),
    ] {
        let r = app.post("/users/invite/accept", None, body.clone()).await;
        r.assert_error(400, "INVALID_PAYLOAD");
        assert_eq!(
            r.body["errors"][0]["extensions"]["reason"], reason,
            "{body}"
        );
    }
    // A reset token is no invite.
    let reset = app
        .auth
        .tokens
        .sign_scoped(
            "password-reset",
            serde_json::Map::from_iter([
                ("email".into(), json!("b@example.com")),
                ("hash".into(), json!("0")),
            ]),
            Duration::from_secs(60),
            app.auth.now(),
        )
        .unwrap();
    app.post(
        "/users/invite/accept",
        None,
        json!({"token": reset, "password": "pw-1234567"}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    app.advance(Duration::from_secs(7 * 24 * 3600 + 1));
    app.post(
        "/users/invite/accept",
        None,
        json!({"token": token, "password": "pw-1234567"}),
    )
    .await
    .assert_error(401, "TOKEN_EXPIRED");
}
