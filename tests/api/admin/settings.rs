//! `/settings` (`/permissions` is in `permissions_admin`).

use super::*;

// ----- /settings -----

#[tokio::test]
async fn settings_have_directus_defaults() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r = app.get("/settings", Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = r.data();
    assert_eq!(d["auth_login_attempts"], 25);
    assert!(
        d.get("auth_password_policy").is_some_and(Value::is_null),
        "{}",
        r.text
    );
    assert_eq!(d["public_registration"], false);
    assert_eq!(d["project_name"], "Directus");
    let r = app
        .get("/settings?fields=auth_login_attempts", Some(&admin))
        .await;
    assert_eq!(r.data(), &json!({"auth_login_attempts": 25}));
}

#[tokio::test]
async fn settings_updates_are_read_back() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r = app
        .patch(
            "/settings",
            Some(&admin),
            json!({"auth_password_policy": "/^.{8,}$/", "auth_login_attempts": 5}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["auth_password_policy"], "/^.{8,}$/");
    assert_eq!(r.data()["auth_login_attempts"], 5);
    let g = app.get("/settings", Some(&admin)).await;
    assert_eq!(g.data()["auth_password_policy"], "/^.{8,}$/");
    assert_eq!(g.data()["auth_login_attempts"], 5);
    assert_eq!(
        g.data()["project_name"],
        "Directus",
        "untouched columns keep their values"
    );

    let r = app
        .patch(
            "/settings",
            Some(&admin),
            json!({"auth_password_policy": null, "auth_login_attempts": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let g = app.get("/settings", Some(&admin)).await;
    assert!(g.data()["auth_password_policy"].is_null());
    assert!(
        g.data()["auth_login_attempts"].is_null(),
        "null means unlimited: {}",
        g.text
    );
}

#[tokio::test]
async fn settings_refuse_bad_values() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for policy in ["/([a-z/", "(unclosed", "[z-a]"] {
        let r = app
            .patch(
                "/settings",
                Some(&admin),
                json!({"auth_password_policy": policy}),
            )
            .await;
        r.assert_error(400, "INVALID_PAYLOAD");
    }
    let long = format!("/^{}$/", "a".repeat(120));
    app.patch(
        "/settings",
        Some(&admin),
        json!({"auth_password_policy": long}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    app.patch(
        "/settings",
        Some(&admin),
        json!({"auth_login_attempts": -1}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    app.patch(
        "/settings",
        Some(&admin),
        json!({"auth_login_attempts": "ten"}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    let g = app.get("/settings", Some(&admin)).await;
    assert!(g.data()["auth_password_policy"].is_null(), "{}", g.text);
    assert_eq!(g.data()["auth_login_attempts"], 25);
}

#[tokio::test]
async fn settings_are_admin_only() {
    let app = spawn_app().await;
    app.app_user("u@example.com", "user-password").await;
    let (t, _) = tokens(&app, "u@example.com", "user-password").await;
    app.get("/settings", Some(&t))
        .await
        .assert_error(403, "FORBIDDEN");
    app.patch("/settings", Some(&t), json!({"auth_login_attempts": 1}))
        .await
        .assert_error(403, "FORBIDDEN");
    app.get("/settings", None)
        .await
        .assert_error(403, "FORBIDDEN");
}

/// A NOT NULL column written as null is Directus's 400 `NOT_NULL_VIOLATION`, naming the field,
/// on both backends, before and after the settings row exists; nothing is written.
#[tokio::test]
async fn a_null_for_a_required_setting_is_a_not_null_violation() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for round in ["no settings row yet", "with a settings row"] {
        let r = app
            .patch("/settings", Some(&admin), json!({"project_name": null}))
            .await;
        r.assert_error(400, "NOT_NULL_VIOLATION");
        assert_eq!(
            r.body["errors"][0]["message"],
            "Value for field \"project_name\" in collection \"directus_settings\" can't be null.",
            "{round}: {}",
            r.text
        );
        assert_eq!(r.body["errors"][0]["extensions"]["field"], "project_name");
        let r = app
            .patch("/settings", Some(&admin), json!({"project_name": "Acme"}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let g = app.get("/settings", Some(&admin)).await;
    assert_eq!(g.data()["project_name"], "Acme");
}
