//! `GET` and `PATCH /users/me`: what a user sees of itself, the fields it may change, and the
//! short per-node cache.

use super::*;

// ----- GET /users/me -----

#[tokio::test]
async fn me_shows_the_admin_profile_with_concealed_secrets() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r = app.get("/users/me", Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = r.data();
    // Every column plus Directus's `policies` alias (the admin's own access rows: none).
    let mut with_alias = USER_COLUMNS.to_vec();
    with_alias.push("policies");
    assert_eq!(keys(d), sorted(&with_alias), "{}", r.text);
    assert_eq!(d["policies"], json!([]));
    assert_eq!(d["email"], ADMIN_EMAIL);
    assert_eq!(d["password"], "**********");
    assert!(
        d["token"].is_null() || d["token"] == "**********",
        "{}",
        r.text
    );
    assert!(d["tfa_secret"].is_null());
    assert_eq!(d["status"], "active");
    assert_eq!(d["provider"], "default");
    assert_eq!(d["text_direction"], "auto");
    assert_eq!(d["id"], claims(&admin)["id"]);
    assert_eq!(d["role"], claims(&admin)["role"]);
    assert!(
        d["last_access"].is_string(),
        "login sets last_access: {}",
        r.text
    );
    assert!(
        !r.text.contains("$argon2"),
        "no hash on the wire: {}",
        r.text
    );
}

#[tokio::test]
async fn me_with_an_admin_token_env_conceals_the_token() {
    let app = spawn_with(&[("ADMIN_TOKEN", "bootstrap-static-token")]).await;
    let r = app.get("/users/me", Some("bootstrap-static-token")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["email"], ADMIN_EMAIL);
    assert_eq!(r.data()["token"], "**********");
}

#[tokio::test]
async fn me_fields_select_the_returned_keys() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r = app.get("/users/me?fields=id,email", Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(keys(r.data()), sorted(&["id", "email"]));
    assert_eq!(r.data()["email"], ADMIN_EMAIL);

    let r = app.get("/users/me?fields[]=email", Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data(), &json!({"email": ADMIN_EMAIL}));

    let r = app
        .get("/users/me?fields[]=email&fields[]=status", Some(&admin))
        .await;
    assert_eq!(r.data(), &json!({"email": ADMIN_EMAIL, "status": "active"}));
}

#[tokio::test]
async fn me_fields_expand_the_role() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let role = claims(&admin)["role"].clone();

    let r = app.get("/users/me?fields=role.name", Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data(), &json!({"role": {"name": "Administrator"}}));

    let r = app.get("/users/me?fields=*,role.*", Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = r.data();
    let mut with_alias = USER_COLUMNS.to_vec();
    with_alias.push("policies");
    assert_eq!(keys(d), sorted(&with_alias));
    assert_eq!(d["email"], ADMIN_EMAIL);
    assert_eq!(d["password"], "**********");
    assert!(d["role"].is_object(), "{}", r.text);
    assert_eq!(d["role"]["id"], role);
    assert_eq!(d["role"]["name"], "Administrator");
    assert!(
        d["role"].get("icon").is_some(),
        "all role fields: {}",
        r.text
    );
}

#[tokio::test]
async fn me_without_role_or_own_policy_is_the_id_only() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app
        .create_user(&admin, "norole@example.com", "user-password", None)
        .await;
    let (token, _) = tokens(&app, "norole@example.com", "user-password").await;
    let r = app.get("/users/me", Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({"data": {"id": id}}));
    let r = app.get("/users/me?fields=email", Some(&token)).await;
    assert_eq!(r.body, json!({"data": {"id": id}}));
}

#[tokio::test]
async fn me_with_an_own_app_policy_and_no_role_is_the_app_profile() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app
        .create_user(&admin, "ownpolicy@example.com", "user-password", None)
        .await;
    let p = app
        .post(
            "/policies",
            Some(&admin),
            json!({"name": "own", "app_access": true}),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    let Value::Object(access) = json!({"id": uuid::Uuid::new_v4().to_string(), "user": id, "policy": p.data()["id"], "sort": 1})
    else {
        unreachable!()
    };
    app.auth
        .store
        .items
        .item_insert(&gatehouse::store::ACCESS, &access)
        .await
        .expect("access row");
    let (token, _) = tokens(&app, "ownpolicy@example.com", "user-password").await;
    assert_eq!(claims(&token)["app_access"], true);
    assert_eq!(claims(&token)["admin_access"], false);
    let r = app.get("/users/me", Some(&token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["email"], "ownpolicy@example.com");
    assert_eq!(r.data()["password"], "**********");
}

#[tokio::test]
async fn me_without_a_token_is_invalid_credentials() {
    let app = spawn_app().await;
    app.get("/users/me", None)
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    app.patch("/users/me", None, json!({"first_name": "x"}))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    // An unknown static token fails in the token check.
    app.get("/users/me", Some("not-a-known-token"))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
}

// ----- PATCH /users/me -----

#[tokio::test]
async fn a_user_changes_its_own_first_name() {
    let app = spawn_app().await;
    let id = app.app_user("u@example.com", "user-password").await;
    let (token, refresh_token) = tokens(&app, "u@example.com", "user-password").await;
    let r = app
        .patch(
            "/users/me",
            Some(&token),
            json!({"first_name": "Ada", "last_name": "Lovelace"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["id"], id);
    assert_eq!(r.data()["first_name"], "Ada");
    assert_eq!(r.data()["last_name"], "Lovelace");
    assert_eq!(r.data()["password"], "**********");
    let me = app.get("/users/me?fields=first_name", Some(&token)).await;
    assert_eq!(me.data(), &json!({"first_name": "Ada"}));
    // A profile change does not end sessions.
    assert_eq!(app.session_count(&id).await, 1);
    assert_eq!(refresh(&app, &refresh_token).await.status, 200);
}

#[tokio::test]
async fn a_non_admin_cannot_change_its_role_or_status() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app.app_user("u@example.com", "user-password").await;
    let admin_role = claims(&admin)["role"].clone();
    let (token, _) = tokens(&app, "u@example.com", "user-password").await;
    app.patch("/users/me", Some(&token), json!({"role": admin_role}))
        .await
        .assert_error(403, "FORBIDDEN");
    app.patch("/users/me", Some(&token), json!({"status": "suspended"}))
        .await
        .assert_error(403, "FORBIDDEN");
    app.patch(
        "/users/me",
        Some(&token),
        json!({"first_name": "x", "token": "sneaky-static-token"}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    let user = app.get(&format!("/users/{id}"), Some(&admin)).await;
    assert_eq!(user.data()["status"], "active");
    assert_ne!(user.data()["role"], admin_role);
    assert!(user.data()["token"].is_null());
    assert!(
        user.data()["first_name"].is_null(),
        "a refused patch changes nothing: {}",
        user.text
    );
    // Directus's minimal app permissions: the list holds the user's own row only.
    let list = app.get("/users", Some(&token)).await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.data().as_array().unwrap().len(), 1, "{}", list.text);
    assert_eq!(list.data()[0]["id"], id.as_str());
}

#[tokio::test]
async fn a_password_change_replaces_the_password_and_ends_other_sessions() {
    let app = spawn_app().await;
    let id = app.app_user("u@example.com", "user-password").await;
    let (a1, r1) = tokens(&app, "u@example.com", "user-password").await;
    let (_a2, r2) = tokens(&app, "u@example.com", "user-password").await;
    assert_eq!(app.session_count(&id).await, 2);

    let r = app
        .patch(
            "/users/me",
            Some(&a1),
            json!({"password": "brand-new-password"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["password"], "**********");
    // json mode: every session ends, the caller's own refresh token included (Directus: `api/src/services/users.ts`).
    assert_eq!(app.session_count(&id).await, 0);
    refresh(&app, &r1)
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    refresh(&app, &r2)
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    // The access JWT is stateless and keeps working until it expires.
    assert_eq!(app.get("/users/me", Some(&a1)).await.status, 200);

    app.login("u@example.com", "user-password", "json")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    assert_eq!(
        app.login("u@example.com", "brand-new-password", "json")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn an_email_change_ends_the_sessions_too() {
    let app = spawn_app().await;
    let id = app.app_user("u@example.com", "user-password").await;
    let (a1, r1) = tokens(&app, "u@example.com", "user-password").await;
    let r = app
        .patch(
            "/users/me",
            Some(&a1),
            json!({"email": "moved@example.com"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["email"], "moved@example.com");
    assert_eq!(app.session_count(&id).await, 0);
    refresh(&app, &r1)
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    app.login("u@example.com", "user-password", "json")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    assert_eq!(
        app.login("moved@example.com", "user-password", "json")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_password_change_in_session_mode_keeps_the_current_session() {
    let app = spawn_app().await;
    let id = app.app_user("u@example.com", "user-password").await;
    let s = app.login("u@example.com", "user-password", "session").await;
    assert_eq!(s.status, 200, "{}", s.text);
    let cookie = format!(
        "directus_session_token={}",
        s.cookie_value("directus_session_token")
            .expect("session cookie")
    );
    let (_, other) = tokens(&app, "u@example.com", "user-password").await;

    let r = app
        .request(
            Method::PATCH,
            "/users/me",
            None,
            Some(json!({"password": "brand-new-password"})),
            Some(&cookie),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.session_count(&id).await, 1);
    refresh(&app, &other)
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    let me = app
        .request(Method::GET, "/users/me", None, None, Some(&cookie))
        .await;
    assert_eq!(me.status, 200, "the caller's session survives: {}", me.text);
    assert_eq!(me.data()["email"], "u@example.com");
}

#[tokio::test]
async fn an_email_change_to_an_existing_email_is_not_unique() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.app_user("a@example.com", "user-password").await;
    app.create_user(&admin, "b@example.com", "user-password", None)
        .await;
    let (token, _) = tokens(&app, "a@example.com", "user-password").await;
    for email in ["B@Example.COM", "b@example.com"] {
        let r = app
            .patch("/users/me", Some(&token), json!({"email": email}))
            .await;
        r.assert_error(400, "RECORD_NOT_UNIQUE");
        let ext = &r.body["errors"][0]["extensions"];
        assert_eq!(ext["collection"], "directus_users", "{}", r.text);
        assert_eq!(ext["field"], "email", "{}", r.text);
    }
    // Also the admin's email, and through the admin API.
    let r = app
        .patch(
            "/users/me",
            Some(&token),
            json!({"email": "Admin@Example.com"}),
        )
        .await;
    r.assert_error(400, "RECORD_NOT_UNIQUE");
    assert_eq!(
        app.get("/users/me", Some(&token)).await.data()["email"],
        "a@example.com"
    );

    let r = app
        .patch("/users/me", Some(&token), json!({"email": "c@example.com"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["email"], "c@example.com");
    app.patch("/users/me", Some(&token), json!({"email": "not-an-email"}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
}

#[tokio::test]
async fn keeping_or_recasing_the_own_email_is_not_a_conflict() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app.app_user("a@example.com", "user-password").await;
    let (token, _) = tokens(&app, "a@example.com", "user-password").await;
    // Directus excludes the user's own row from the uniqueness check (checkUniqueEmails).
    let r = app
        .patch(
            "/users/me",
            Some(&token),
            json!({"email": "a@example.com", "first_name": "A"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .patch("/users/me", Some(&token), json!({"email": "A@Example.com"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["email"], "A@Example.com");
    let r = app
        .patch(
            &format!("/users/{id}"),
            Some(&admin),
            json!({"email": "A@Example.com", "status": "active"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn a_password_against_the_policy_fails_validation_without_echoing_it() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let s = app
        .patch(
            "/settings",
            Some(&admin),
            json!({"auth_password_policy": "/^.{12,}$/"}),
        )
        .await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert_eq!(s.data()["auth_password_policy"], "/^.{12,}$/");
    app.app_user("u@example.com", "user-password-long").await;
    let (token, _) = tokens(&app, "u@example.com", "user-password-long").await;

    let r = app
        .patch("/users/me", Some(&token), json!({"password": "short-pw"}))
        .await;
    r.assert_error(400, "FAILED_VALIDATION");
    let err = &r.body["errors"][0];
    assert_eq!(
        err["message"],
        "Validation failed for field \"password\". Value doesn't have the correct format."
    );
    assert_eq!(err["extensions"]["field"], "password");
    assert_eq!(err["extensions"]["type"], "regex");
    assert!(
        err["extensions"].get("invalid").is_none(),
        "no echo: {}",
        r.text
    );
    assert!(!r.text.contains("short-pw"), "no echo: {}", r.text);
    // Unchanged.
    assert_eq!(
        app.login("u@example.com", "user-password-long", "json")
            .await
            .status,
        200
    );

    // The admin API applies the policy too, on create and on update.
    let c = app
        .post(
            "/users",
            Some(&admin),
            json!({"email": "v@example.com", "password": "tiny"}),
        )
        .await;
    c.assert_error(400, "FAILED_VALIDATION");
    assert!(!c.text.contains("tiny"), "{}", c.text);

    let r = app
        .patch(
            "/users/me",
            Some(&token),
            json!({"password": "twelve-chars-ok"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        app.login("u@example.com", "twelve-chars-ok", "json")
            .await
            .status,
        200
    );
}

/// Directus 12.4.0 without custom permissions (observed by the e2e suite): admins read every
/// column plus `policies`, app users the 19 fields of the minimal app permissions, others the id.
#[tokio::test]
async fn me_visibility_follows_directus_default_permissions() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let app_role = app.create_role(&admin, "Editors", false, true).await;
    let api_role = app.create_role(&admin, "API only", false, false).await;
    app.create_user(
        &admin,
        "editor@example.com",
        "user-password",
        Some(&app_role),
    )
    .await;
    let api_id = app
        .create_user(&admin, "api@example.com", "user-password", Some(&api_role))
        .await;

    let (editor, _) = tokens(&app, "editor@example.com", "user-password").await;
    let r = app.get("/users/me", Some(&editor)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let app_fields = [
        "id",
        "first_name",
        "last_name",
        "last_page",
        "email",
        "password",
        "location",
        "title",
        "description",
        "tags",
        "provider",
        "avatar",
        "language",
        "appearance",
        "theme_light",
        "theme_dark",
        "tfa_secret",
        "status",
        "role",
    ];
    assert_eq!(keys(r.data()), sorted(&app_fields));
    assert_eq!(r.data()["password"], "**********");

    // A role without app access: the id only, as Directus answers.
    let (api, _) = tokens(&app, "api@example.com", "user-password").await;
    let r = app.get("/users/me", Some(&api)).await;
    assert_eq!(r.body, json!({"data": {"id": api_id}}));

    // An admin's own access rows show in `policies`.
    let admin_id = claims(&admin)["id"].as_str().unwrap().to_string();
    let p = app
        .post("/policies", Some(&admin), json!({"name": "extra"}))
        .await;
    let access_id = uuid::Uuid::new_v4().to_string();
    let Value::Object(access) =
        json!({"id": access_id, "user": admin_id, "policy": p.data()["id"], "sort": 1})
    else {
        unreachable!()
    };
    app.auth
        .store
        .items
        .item_insert(&gatehouse::store::ACCESS, &access)
        .await
        .unwrap();
    let r = app.get("/users/me", Some(&admin)).await;
    assert_eq!(r.data()["policies"], json!([access_id]));
}

/// `/users/me` may come from a node's short-lived cache: a node sees its own writes at once,
/// another node's within GATEHOUSE_USER_CACHE_TTL; with 0 there is no cache.
#[tokio::test]
async fn users_me_cache_reads_own_writes_and_expires() {
    let nodes = spawn_nodes(2, &[("GATEHOUSE_USER_CACHE_TTL", "300ms")]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let admin = a.admin_token().await;
    let name = |r: &Resp| r.data()["first_name"].clone();
    assert_eq!(name(&b.get("/users/me", Some(&admin)).await), Value::Null);
    // Own writes: visible at once on the writing node.
    let r = a
        .patch("/users/me", Some(&admin), json!({"first_name": "Ada"}))
        .await;
    assert_eq!(name(&r), "Ada");
    assert_eq!(name(&a.get("/users/me", Some(&admin)).await), "Ada");
    // The other node: within its TTL at most, then fresh.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(name(&b.get("/users/me", Some(&admin)).await), "Ada");

    let nodes = spawn_nodes(2, &[("GATEHOUSE_USER_CACHE_TTL", "0")]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let admin = a.admin_token().await;
    assert_eq!(name(&b.get("/users/me", Some(&admin)).await), Value::Null);
    a.patch("/users/me", Some(&admin), json!({"first_name": "Grace"}))
        .await;
    assert_eq!(
        name(&b.get("/users/me", Some(&admin)).await),
        "Grace",
        "no cache: fresh at once"
    );
}
