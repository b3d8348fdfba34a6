//! `POST /users/register` and `GET /users/register/verify-email`.

use std::time::Duration;

use serde_json::json;

use super::{
    link_of, mailed_token, set_settings, settled_mail_count, spawn_accounts, user_by_email,
};

#[tokio::test]
async fn registration_is_off_by_default() {
    let app = spawn_accounts(&[]).await;
    let r = app
        .post(
            "/users/register",
            None,
            json!({"email": "r@example.com", "password": "pw-1234567"}),
        )
        .await;
    r.assert_error(403, "FORBIDDEN");
    assert_eq!(settled_mail_count(&app).await, 0);
}

#[tokio::test]
async fn without_verification_the_user_is_active_at_once() {
    let app = spawn_accounts(&[]).await;
    let admin = app.admin_token().await;
    let role = app.create_role(&admin, "Members", false, true).await;
    set_settings(&app, &admin, json!({"public_registration": true, "public_registration_verify_email": false, "public_registration_role": role})).await;
    let r = app
        .post(
            "/users/register",
            None,
            json!({"email": "r@example.com", "password": "pw-1234567", "first_name": "Rae"}),
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (204, ""));
    let user = user_by_email(&app, &admin, "r@example.com").await.unwrap();
    assert_eq!(user["status"], "active");
    assert_eq!(user["role"], role.as_str());
    assert_eq!(user["first_name"], "Rae");
    assert_eq!(
        app.login("r@example.com", "pw-1234567", "json")
            .await
            .status,
        200
    );
    assert_eq!(settled_mail_count(&app).await, 0);
}

#[tokio::test]
async fn with_verification_the_mailed_link_activates_the_user() {
    let app = spawn_accounts(&[]).await;
    let admin = app.admin_token().await;
    set_settings(&app, &admin, json!({"public_registration": true})).await;
    let r = app
        .post(
            "/users/register",
            None,
            json!({"email": "v@example.com", "password": "pw-1234567"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let user = user_by_email(&app, &admin, "v@example.com").await.unwrap();
    assert_eq!(user["status"], "unverified");
    app.login("v@example.com", "pw-1234567", "json")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    let mails = app.mails(1).await;
    assert_eq!(mails[0].subject, "Verify your email address");
    let link = link_of(&mails[0]);
    assert!(
        link.starts_with("/users/register/verify-email?token=ey"),
        "{link}"
    );
    let r = app.get(&link, None).await;
    assert_eq!(r.status, 302, "{}", r.text);
    assert_eq!(
        r.headers["location"],
        format!("/admin/users/{}", user["id"].as_str().unwrap())
    );
    assert_eq!(
        app.login("v@example.com", "pw-1234567", "json")
            .await
            .status,
        200
    );
    // The link is spent.
    let r = app.get(&link, None).await;
    r.assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(
        r.body["errors"][0]["extensions"]["reason"],
        "Invalid verification code"
    );
    // No single token: the login page.
    for path in [
        "/users/register/verify-email?token=",
        "/users/register/verify-email?token=a&token=b",
    ] {
        let r = app.get(path, None).await;
        assert_eq!(r.status, 302, "{path}");
        assert_eq!(r.headers["location"], "/admin/login");
    }
    app.get("/users/register/verify-email?token=nope", None)
        .await
        .assert_error(403, "INVALID_TOKEN");
}

#[tokio::test]
async fn verification_links_follow_public_url_and_the_allow_list_and_expire() {
    let app = spawn_accounts(&[
        ("PUBLIC_URL", "https://x.example/cms/"),
        ("USER_REGISTER_URL_ALLOW_LIST", "https://app.example/verify"),
    ])
    .await;
    let admin = app.admin_token().await;
    set_settings(&app, &admin, json!({"public_registration": true})).await;
    let r = app
        .post("/users/register", None, json!({"email": "v@example.com", "password": "pw-1234567", "verification_url": "https://evil.example/verify"}))
        .await;
    r.assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(
        r.body["errors"][0]["extensions"]["reason"],
        "URL \"https://evil.example/verify\" can't be used to verify registered users"
    );
    app.post(
        "/users/register",
        None,
        json!({"email": "v@example.com", "password": "pw-1234567"}),
    )
    .await;
    let link = link_of(&app.mails(1).await[0]);
    assert!(
        link.starts_with("https://x.example/cms/users/register/verify-email?token=ey"),
        "{link}"
    );
    app.post("/users/register", None, json!({"email": "w@example.com", "password": "pw-1234567", "verification_url": "https://app.example/verify"})).await;
    let link = link_of(&app.mails(2).await[1]);
    assert!(
        link.starts_with("https://app.example/verify?token=ey"),
        "{link}"
    );
    let token = mailed_token(&app, 2).await;
    let r = app
        .get(&format!("/users/register/verify-email?token={token}"), None)
        .await;
    assert_eq!(r.status, 302);
    let id = user_by_email(&app, &admin, "w@example.com").await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        r.headers["location"],
        format!("https://x.example/cms/admin/users/{id}")
    );
    let first = mailed_token(&app, 1).await;
    app.advance(Duration::from_secs(7 * 24 * 3600 + 1));
    app.get(&format!("/users/register/verify-email?token={first}"), None)
        .await
        .assert_error(401, "TOKEN_EXPIRED");
}

#[tokio::test]
async fn the_email_filter_refuses_addresses() {
    let app = spawn_accounts(&[]).await;
    let admin = app.admin_token().await;
    set_settings(&app, &admin, json!({"public_registration": true, "public_registration_verify_email": false,
        "public_registration_email_filter": {"_and": [{"email": {"_ends_with": "@allowed.example"}}]}})).await;
    app.post(
        "/users/register",
        None,
        json!({"email": "a@other.example", "password": "pw-1234567"}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    assert!(user_by_email(&app, &admin, "a@other.example")
        .await
        .is_none());
    let r = app
        .post(
            "/users/register",
            None,
            json!({"email": "a@allowed.example", "password": "pw-1234567"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(user_by_email(&app, &admin, "a@allowed.example")
        .await
        .is_some());
}

#[tokio::test]
async fn an_existing_email_answers_as_a_new_one() {
    let app = spawn_accounts(&[]).await;
    let admin = app.admin_token().await;
    set_settings(
        &app,
        &admin,
        json!({"public_registration": true, "auth_password_policy": "/^.{10,}$/"}),
    )
    .await;
    let id = app
        .create_user(&admin, "taken@example.com", "original-password", None)
        .await;
    let new = app
        .post(
            "/users/register",
            None,
            json!({"email": "fresh@example.com", "password": "pw-1234567"}),
        )
        .await;
    let taken = app
        .post("/users/register", None, json!({"email": "TAKEN@example.com", "password": "pw-1234567", "first_name": "Mallory"}))
        .await;
    assert_eq!((new.status, new.text.as_str()), (204, ""));
    assert_eq!(
        (taken.status, &taken.headers.get("content-type")),
        (new.status, &new.headers.get("content-type"))
    );
    assert_eq!(taken.text, new.text);
    // Nothing changed for the existing account, and it got no mail.
    assert_eq!(app.mails(1).await[0].to, "fresh@example.com");
    assert_eq!(settled_mail_count(&app).await, 1);
    let row = user_by_email(&app, &admin, "taken@example.com")
        .await
        .unwrap();
    assert_eq!(row["id"], id.as_str());
    assert_eq!(row["first_name"], serde_json::Value::Null);
    assert_eq!(
        app.login("taken@example.com", "original-password", "json")
            .await
            .status,
        200
    );
    // A password the policy refuses is refused for both alike.
    let weak_new = app
        .post(
            "/users/register",
            None,
            json!({"email": "other@example.com", "password": "short"}),
        )
        .await;
    let weak_taken = app
        .post(
            "/users/register",
            None,
            json!({"email": "taken@example.com", "password": "short"}),
        )
        .await;
    weak_new.assert_error(400, "FAILED_VALIDATION");
    assert_eq!(
        (weak_taken.status, weak_taken.text.clone()),
        (weak_new.status, weak_new.text.clone())
    );
    // A user still unverified gets the verification mail again.
    let r = app
        .post(
            "/users/register",
            None,
            json!({"email": "fresh@example.com", "password": "pw-1234567"}),
        )
        .await;
    assert_eq!(r.status, 204);
    let mails = app.mails(2).await;
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[1].to, "fresh@example.com");
}

#[tokio::test]
async fn register_bodies_are_checked() {
    let app = spawn_accounts(&[]).await;
    let admin = app.admin_token().await;
    set_settings(&app, &admin, json!({"public_registration": true})).await;
    for (body, reason) in [
        (json!({"password": "pw-1234567"}), "\"email\" is required"),
        (
            json!({"email": "nope", "password": "pw-1234567"}),
            "\"email\" must be a valid email",
        ),
        (
            json!({"email": "a@example.com"}),
            "\"password\" is required",
        ),
        (
            json!({"email": "a@example.com", "password": ""}),
            "\"password\" is not allowed to be empty",
        ),
        (
            json!({"email": "a@example.com", "password": "pw-1234567", "verification_url": "nope"}),
            "\"verification_url\" must be a valid uri",
        ),
        (
            json!({"email": "a@example.com", "password": "pw-1234567", "first_name": 3}),
            "\"first_name\" must be a string",
        ),
        (
            json!({"email": "a@example.com", "password": "pw-1234567", "last_name": "x".repeat(51)}),
            "\"last_name\" length must be less than or equal to 50 characters long",
        ),
        (
            json!({"email": "a@example.com", "password": "pw-1234567", "role": "admin"}),
            "\"role\" is not allowed",
        ),
        (
            json!({"email": "a@example.com", "password": "pw-1234567", "status": "active"}),
            "\"status\" is not allowed",
        ),
    ] {
        let r = app.post("/users/register", None, body.clone()).await;
        r.assert_error(400, "INVALID_PAYLOAD");
        assert_eq!(
            r.body["errors"][0]["extensions"]["reason"], reason,
            "{body}"
        );
    }
    assert_eq!(settled_mail_count(&app).await, 0);
}
