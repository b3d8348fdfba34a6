//! The `/users` admin API, the session side effects of user updates, static tokens and filters.

use super::*;

// ----- /users (admin) -----

#[tokio::test]
async fn admins_list_users_with_filter_limit_offset_and_fields() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let u1 = app
        .create_user(&admin, "u1@example.com", "user-password", None)
        .await;
    app.create_user(&admin, "u2@example.com", "user-password", None)
        .await;

    let all = app.get("/users", Some(&admin)).await;
    assert_eq!(all.status, 200, "{}", all.text);
    let list = all.data().as_array().expect("array");
    assert_eq!(list.len(), 3);
    assert!(
        list.iter().all(|u| u["password"] == "**********"),
        "{}",
        all.text
    );
    let mut emails: Vec<&str> = list.iter().map(|u| u["email"].as_str().unwrap()).collect();
    emails.sort();
    assert_eq!(emails, [ADMIN_EMAIL, "u1@example.com", "u2@example.com"]);

    let r = app
        .get("/users?filter[email][_eq]=u1@example.com", Some(&admin))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let found = r.data().as_array().unwrap();
    assert_eq!(found.len(), 1, "{}", r.text);
    assert_eq!(found[0]["id"], u1);
    let r = app
        .get("/users?filter[email][_eq]=nobody@example.com", Some(&admin))
        .await;
    assert_eq!(r.data(), &json!([]));

    let r = app.get("/users?limit=1", Some(&admin)).await;
    assert_eq!(r.data().as_array().unwrap().len(), 1, "{}", r.text);
    let r = app.get("/users?limit=1&offset=1", Some(&admin)).await;
    assert_eq!(r.data().as_array().unwrap().len(), 1, "{}", r.text);
    assert_eq!(
        r.data()[0]["id"],
        list[1]["id"],
        "offset follows the list order"
    );
    let r = app.get("/users?offset=2", Some(&admin)).await;
    assert_eq!(r.data().as_array().unwrap().len(), 1, "{}", r.text);
    assert_eq!(r.data()[0]["id"], list[2]["id"]);
    let r = app.get("/users?limit=-1", Some(&admin)).await;
    assert_eq!(
        r.data().as_array().unwrap().len(),
        3,
        "-1 means no limit: {}",
        r.text
    );
    app.get("/users?limit=many", Some(&admin))
        .await
        .assert_error(400, "INVALID_PAYLOAD");

    let r = app
        .get(
            "/users?fields=id,email&filter[email][_eq]=u1@example.com",
            Some(&admin),
        )
        .await;
    assert_eq!(r.data(), &json!([{"id": u1, "email": "u1@example.com"}]));
}

#[tokio::test]
async fn admins_create_and_read_users() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let role = app.create_role(&admin, "Editors", false, true).await;
    let r = app.post("/users", Some(&admin), json!({"email": "new@example.com", "password": "user-password", "role": role, "first_name": "New"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = r.data();
    // Every column plus Directus's `policies` alias (no access rows of its own yet).
    let mut with_alias = USER_COLUMNS.to_vec();
    with_alias.push("policies");
    assert_eq!(keys(d), sorted(&with_alias));
    assert_eq!(d["policies"], json!([]));
    let id = d["id"].as_str().expect("id");
    assert!(uuid::Uuid::parse_str(id).is_ok());
    assert_eq!(d["email"], "new@example.com");
    assert_eq!(d["first_name"], "New");
    assert_eq!(d["role"], role);
    assert_eq!(d["status"], "active");
    assert_eq!(d["provider"], "default");
    assert_eq!(d["password"], "**********");
    assert!(d["token"].is_null());
    assert!(d["tfa_secret"].is_null());

    let g = app.get(&format!("/users/{id}"), Some(&admin)).await;
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(g.data(), d);
    let g = app
        .get(&format!("/users/{id}?fields=email,role.name"), Some(&admin))
        .await;
    assert_eq!(
        g.data(),
        &json!({"email": "new@example.com", "role": {"name": "Editors"}})
    );
    assert_eq!(
        app.login("new@example.com", "user-password", "json")
            .await
            .status,
        200
    );

    // An explicit status is kept; an unusable one means no login.
    let r = app
        .post(
            "/users",
            Some(&admin),
            json!({"email": "draft@example.com", "password": "user-password", "status": "draft"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["status"], "draft");
    app.login("draft@example.com", "user-password", "json")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");

    // Several at once.
    let r = app
        .post(
            "/users",
            Some(&admin),
            json!([{"email": "m1@example.com"}, {"email": "m2@example.com"}]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let many = r.data().as_array().expect("array");
    assert_eq!(many.len(), 2);
    assert_eq!(many[1]["email"], "m2@example.com");
    assert!(many[0]["password"].is_null(), "no password set: {}", r.text);
}

#[tokio::test]
async fn user_creation_is_validated() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.create_user(&admin, "taken@example.com", "user-password", None)
        .await;

    for email in ["taken@example.com", "TAKEN@example.com"] {
        let r = app
            .post(
                "/users",
                Some(&admin),
                json!({"email": email, "password": "x-password"}),
            )
            .await;
        r.assert_error(400, "RECORD_NOT_UNIQUE");
        assert_eq!(
            r.body["errors"][0]["extensions"]["field"], "email",
            "{}",
            r.text
        );
        assert_eq!(
            r.body["errors"][0]["extensions"]["collection"], "directus_users",
            "{}",
            r.text
        );
    }
    for email in [json!("not-an-email"), json!("a@localhost"), json!(42)] {
        app.post("/users", Some(&admin), json!({"email": email}))
            .await
            .assert_error(400, "INVALID_PAYLOAD");
    }
    let r = app
        .post(
            "/users",
            Some(&admin),
            json!({"email": "r@example.com", "role": RANDOM_ID}),
        )
        .await;
    assert_eq!(r.status, 400, "unknown role: {}", r.text);
    assert!(
        ["INVALID_PAYLOAD", "INVALID_FOREIGN_KEY"].contains(&r.code()),
        "{}",
        r.text
    );
    app.post(
        "/users",
        Some(&admin),
        json!({"email": "r@example.com", "role": "not-a-uuid"}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    app.post(
        "/users",
        Some(&admin),
        json!({"email": "s@example.com", "status": "sleeping"}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    app.post(
        "/users",
        Some(&admin),
        json!({"email": "t@example.com", "tfa_secret": "JBSWY3DPEHPK3PXP"}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    app.post("/users", Some(&admin), json!("a string"))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    // None of the refused users exists.
    let list = app.get("/users", Some(&admin)).await;
    assert_eq!(list.data().as_array().unwrap().len(), 2, "{}", list.text);
}

#[tokio::test]
async fn admins_update_users() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app.app_user("u@example.com", "user-password").await;
    let other_role = app.create_role(&admin, "Other", false, true).await;
    let path = format!("/users/{id}");

    let r = app
        .patch(&path, Some(&admin), json!({"status": "suspended"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["status"], "suspended");
    assert_eq!(r.data()["id"], id);
    let r = app
        .patch(
            &path,
            Some(&admin),
            json!({"status": "active", "role": other_role}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["status"], "active");
    assert_eq!(r.data()["role"], other_role);
    let (t, _) = tokens(&app, "u@example.com", "user-password").await;
    assert_eq!(claims(&t)["role"], other_role);

    let r = app
        .patch(&path, Some(&admin), json!({"password": "changed-by-admin"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["password"], "**********");
    app.login("u@example.com", "user-password", "json")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    assert_eq!(
        app.login("u@example.com", "changed-by-admin", "json")
            .await
            .status,
        200
    );

    let r = app
        .patch(&path, Some(&admin), json!({"token": "a-static-token-1234"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["token"], "**********");

    store_set_user(&app, &id, json!({"tfa_secret": "JBSWY3DPEHPK3PXP"})).await;
    assert_eq!(
        app.get(&path, Some(&admin)).await.data()["tfa_secret"],
        "**********"
    );
    let r = app
        .patch(&path, Some(&admin), json!({"tfa_secret": null}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.data()["tfa_secret"].is_null(), "{}", r.text);
    app.patch(
        &path,
        Some(&admin),
        json!({"tfa_secret": "JBSWY3DPEHPK3PXP"}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    assert!(app.get(&path, Some(&admin)).await.data()["tfa_secret"].is_null());

    app.patch(&path, Some(&admin), json!({"status": "sleeping"}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    app.patch(&path, Some(&admin), json!({"email": "nope"}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    let r = app
        .patch(&path, Some(&admin), json!({"role": RANDOM_ID}))
        .await;
    assert_eq!(r.status, 400, "unknown role: {}", r.text);
    let after = app.get(&path, Some(&admin)).await;
    assert_eq!(after.data()["status"], "active");
    assert_eq!(after.data()["role"], other_role);
    assert_eq!(after.data()["email"], "u@example.com");
}

#[tokio::test]
async fn deleted_and_unknown_users_are_forbidden() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app.app_user("u@example.com", "user-password").await;
    let (_, rt) = tokens(&app, "u@example.com", "user-password").await;

    let r = app.delete(&format!("/users/{id}"), Some(&admin)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty(), "204 has no body: {}", r.text);
    app.get(&format!("/users/{id}"), Some(&admin))
        .await
        .assert_error(403, "FORBIDDEN");
    app.delete(&format!("/users/{id}"), Some(&admin))
        .await
        .assert_error(403, "FORBIDDEN");
    assert_eq!(app.session_count(&id).await, 0);
    refresh(&app, &rt)
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    app.login("u@example.com", "user-password", "json")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");

    app.get(&format!("/users/{RANDOM_ID}"), Some(&admin))
        .await
        .assert_error(403, "FORBIDDEN");
    app.patch(
        &format!("/users/{RANDOM_ID}"),
        Some(&admin),
        json!({"first_name": "x"}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    app.delete(&format!("/users/{RANDOM_ID}"), Some(&admin))
        .await
        .assert_error(403, "FORBIDDEN");
    app.get("/users/not-a-uuid", Some(&admin))
        .await
        .assert_error(403, "FORBIDDEN");
}

/// Every admin route, with a body where one is needed.
fn admin_routes(admin_id: &str, role: &str, policy: &str) -> Vec<(Method, String, Option<Value>)> {
    let body = Some(json!({"name": "x", "email": "x@example.com"}));
    vec![
        (Method::GET, "/users".into(), None),
        (
            Method::POST,
            "/users".into(),
            Some(json!({"email": "x@example.com", "password": "pw-pw-pw"})),
        ),
        (Method::GET, format!("/users/{admin_id}"), None),
        (
            Method::PATCH,
            format!("/users/{admin_id}"),
            Some(json!({"first_name": "pwned"})),
        ),
        (Method::DELETE, format!("/users/{admin_id}"), None),
        (Method::GET, "/roles".into(), None),
        (Method::POST, "/roles".into(), body.clone()),
        (Method::GET, format!("/roles/{role}"), None),
        (
            Method::PATCH,
            format!("/roles/{role}"),
            Some(json!({"name": "pwned"})),
        ),
        (Method::DELETE, format!("/roles/{role}"), None),
        (Method::GET, "/policies".into(), None),
        (
            Method::POST,
            "/policies".into(),
            Some(json!({"name": "x", "admin_access": true})),
        ),
        (Method::GET, format!("/policies/{policy}"), None),
        (
            Method::PATCH,
            format!("/policies/{policy}"),
            Some(json!({"name": "pwned"})),
        ),
        (Method::DELETE, format!("/policies/{policy}"), None),
        (Method::GET, "/settings".into(), None),
        (
            Method::PATCH,
            "/settings".into(),
            Some(json!({"auth_login_attempts": 1})),
        ),
        (
            Method::POST,
            "/permissions".into(),
            Some(json!({"collection": "x", "action": "read"})),
        ),
    ]
}

async fn assert_nothing_changed(
    app: &TestApp,
    admin: &str,
    admin_id: &str,
    role: &str,
    policy: &str,
    users: usize,
) {
    let u = app.get(&format!("/users/{admin_id}"), Some(admin)).await;
    assert_eq!(u.status, 200, "{}", u.text);
    assert!(u.data()["first_name"].is_null(), "{}", u.text);
    let r = app.get(&format!("/roles/{role}"), Some(admin)).await;
    assert_eq!(r.data()["name"], "Administrator", "{}", r.text);
    let p = app.get(&format!("/policies/{policy}"), Some(admin)).await;
    assert_eq!(p.data()["name"], "Administrator", "{}", p.text);
    assert_eq!(count(&app.get("/users", Some(admin)).await), users);
    assert_eq!(count(&app.get("/roles", Some(admin)).await), users);
    assert_eq!(count(&app.get("/policies", Some(admin)).await), users + 1);
    assert_eq!(
        app.get("/settings", Some(admin)).await.data()["auth_login_attempts"],
        25
    );
}

async fn admin_policy_id(app: &TestApp, admin: &str) -> String {
    let r = app
        .get("/policies?filter[name][_eq]=Administrator", Some(admin))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.data()[0]["id"]
        .as_str()
        .expect("admin policy")
        .to_string()
}

#[tokio::test]
async fn non_admins_are_forbidden_on_every_admin_route() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let aid = admin_id(&app, &admin).await;
    let role = claims(&admin)["role"].as_str().unwrap().to_string();
    let policy = admin_policy_id(&app, &admin).await;
    app.app_user("u@example.com", "user-password").await;
    let (user, _) = tokens(&app, "u@example.com", "user-password").await;
    assert_eq!(claims(&user)["app_access"], true);
    for (method, path, body) in admin_routes(&aid, &role, &policy) {
        let r = app
            .request(method.clone(), &path, Some(&user), body, None)
            .await;
        // Directus's minimal app permissions let an app user list its own row and roles:
        // the lists answer, without the admin or its role.
        if method == Method::GET && (path == "/users" || path == "/roles") {
            assert_eq!(r.status, 200, "{path}: {}", r.text);
            let rows = r.data().as_array().expect("list");
            assert_eq!(rows.len(), 1, "{path}: {}", r.text);
            assert!(
                rows.iter()
                    .all(|row| row["id"] != aid.as_str() && row["id"] != role.as_str()),
                "{path}: {}",
                r.text
            );
            continue;
        }
        assert_eq!(
            (r.status, r.code()),
            (403, "FORBIDDEN"),
            "{method} {path}: {}",
            r.text
        );
    }
    assert_nothing_changed(&app, &admin, &aid, &role, &policy, 2).await;
}

#[tokio::test]
async fn the_public_is_forbidden_on_every_admin_route() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let aid = admin_id(&app, &admin).await;
    let role = claims(&admin)["role"].as_str().unwrap().to_string();
    let policy = admin_policy_id(&app, &admin).await;
    for (method, path, body) in admin_routes(&aid, &role, &policy) {
        let r = app.request(method.clone(), &path, None, body, None).await;
        assert_eq!(
            (r.status, r.code()),
            (403, "FORBIDDEN"),
            "{method} {path}: {}",
            r.text
        );
    }
    assert_nothing_changed(&app, &admin, &aid, &role, &policy, 1).await;
}

// ----- session side effects -----

/// Suspending a user, changing its role or setting its password (as an admin) ends all its
/// sessions.
#[tokio::test]
async fn status_role_and_password_changes_end_the_sessions() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let other_role = app.create_role(&admin, "Other", false, true).await;
    let changes = [
        ("suspended", json!({"status": "suspended"})),
        ("role", json!({"role": other_role})),
        ("password", json!({"password": "changed-by-admin"})),
    ];
    for (what, patch) in changes {
        let email = format!("{what}@example.com");
        let id = app.app_user(&email, "user-password").await;
        let (_, rt) = tokens(&app, &email, "user-password").await;
        tokens(&app, &email, "user-password").await;
        assert_eq!(app.session_count(&id).await, 2, "{what}");
        let r = app
            .patch(&format!("/users/{id}"), Some(&admin), patch)
            .await;
        assert_eq!(r.status, 200, "{what}: {}", r.text);
        assert_eq!(app.session_count(&id).await, 0, "{what}");
        refresh(&app, &rt)
            .await
            .assert_error(401, "INVALID_CREDENTIALS");
    }
}

#[tokio::test]
async fn refresh_of_a_suspended_user_with_a_live_session_is_user_suspended() {
    let app = spawn_app().await;
    let id = app.app_user("u@example.com", "user-password").await;
    let (_, rt) = tokens(&app, "u@example.com", "user-password").await;
    store_set_user(&app, &id, json!({"status": "suspended"})).await;
    assert_eq!(
        app.session_count(&id).await,
        1,
        "the store update leaves sessions"
    );
    refresh(&app, &rt).await.assert_error(401, "USER_SUSPENDED");
    // The session row is deleted on the way out.
    assert_eq!(app.session_count(&id).await, 0);
    refresh(&app, &rt)
        .await
        .assert_error(401, "INVALID_CREDENTIALS");

    // Any other inactive status is INVALID_CREDENTIALS.
    store_set_user(&app, &id, json!({"status": "active"})).await;
    let (_, rt) = tokens(&app, "u@example.com", "user-password").await;
    store_set_user(&app, &id, json!({"status": "archived"})).await;
    refresh(&app, &rt)
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    assert_eq!(app.session_count(&id).await, 0);
}

#[tokio::test]
async fn unrelated_admin_updates_keep_the_sessions() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app.app_user("u@example.com", "user-password").await;
    let (_, rt) = tokens(&app, "u@example.com", "user-password").await;
    let role = app.get(&format!("/users/{id}"), Some(&admin)).await.data()["role"].clone();
    // The same role and the active status again change nothing that matters.
    let r = app
        .patch(
            &format!("/users/{id}"),
            Some(&admin),
            json!({"first_name": "Kept", "role": role, "status": "active"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.session_count(&id).await, 1);
    assert_eq!(refresh(&app, &rt).await.status, 200);
}

// ----- static tokens -----

#[tokio::test]
async fn static_tokens_work_for_active_users_only() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app.app_user("u@example.com", "user-password").await;
    let path = format!("/users/{id}");
    let token = "u-static-token-0123456789";

    app.get("/users/me", Some(token))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    let r = app
        .patch(&path, Some(&admin), json!({"token": token}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["token"], "**********");
    assert_eq!(
        app.get(&path, Some(&admin)).await.data()["token"],
        "**********"
    );
    assert!(!app.get("/users", Some(&admin)).await.text.contains(token));

    let me = app.get("/users/me", Some(token)).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.data()["id"], id);
    assert_eq!(me.data()["email"], "u@example.com");
    // An app user does not read its own `token` (Directus's minimal app permissions).
    assert!(me.data().get("token").is_none(), "{}", me.text);
    // The token carries the user's own rights: not an admin, so the list is its own row.
    let own = app.get("/users?fields=email", Some(token)).await;
    assert_eq!(
        own.data(),
        &json!([{"email": "u@example.com"}]),
        "{}",
        own.text
    );

    // A second user cannot take the same token.
    let other = app
        .create_user(&admin, "o@example.com", "user-password", None)
        .await;
    let r = app
        .patch(
            &format!("/users/{other}"),
            Some(&admin),
            json!({"token": token}),
        )
        .await;
    r.assert_error(400, "RECORD_NOT_UNIQUE");

    app.patch(&path, Some(&admin), json!({"status": "suspended"}))
        .await;
    app.get("/users/me", Some(token))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    app.patch(&path, Some(&admin), json!({"status": "active"}))
        .await;
    assert_eq!(app.get("/users/me", Some(token)).await.status, 200);

    let r = app.patch(&path, Some(&admin), json!({"token": null})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.data()["token"].is_null(), "{}", r.text);
    app.get("/users/me", Some(token))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn a_static_token_of_an_admin_user_has_admin_rights() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let aid = admin_id(&app, &admin).await;
    let r = app
        .patch(
            &format!("/users/{aid}"),
            Some(&admin),
            json!({"token": "admin-static-token-xyz"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let list = app.get("/users", Some("admin-static-token-xyz")).await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.data().as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn filters_in_both_query_forms_and_unsupported_ones_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.create_user(&admin, "f1@example.com", "user-password", None)
        .await;
    let json_form = app
        .get(
            r#"/users?filter={"email":{"_eq":"f1@example.com"}}&fields=email"#,
            Some(&admin),
        )
        .await;
    assert_eq!(json_form.status, 200, "{}", json_form.text);
    assert_eq!(json_form.data(), &json!([{"email": "f1@example.com"}]));
    let null_role = app
        .get("/users?filter[role][_null]=true&fields=email", Some(&admin))
        .await;
    assert_eq!(null_role.data(), &json!([{"email": "f1@example.com"}]));
    // The other operators work too (`_null: false` is IS NOT NULL).
    let with_role = app
        .get(
            "/users?filter[role][_null]=false&fields=email",
            Some(&admin),
        )
        .await;
    assert_eq!(
        with_role.data(),
        &json!([{"email": ADMIN_EMAIL}]),
        "{}",
        with_role.text
    );
    let contains = app
        .get(
            "/users?filter[email][_contains]=f1&fields=email",
            Some(&admin),
        )
        .await;
    assert_eq!(contains.data(), &json!([{"email": "f1@example.com"}]));
    // What Directus's query validation refuses: 400 INVALID_QUERY.
    for bad in [
        "/users?filter=notjson",
        "/users?filter[email][_regex]=x",
        "/users?filter[role][_contains]=x",
        r#"/users?filter={"email":{"_in":[]}}"#,
    ] {
        app.get(bad, Some(&admin))
            .await
            .assert_error(400, "INVALID_QUERY");
    }
}
