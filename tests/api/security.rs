//! Defects found by attacking the server as an outsider would: concealed values written back,
//! revoked admins, concurrent correct logins, NUL bytes, the last admin, email look-alikes.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

const MASK: &str = "**********";

async fn json_login(app: &TestApp, email: &str, password: &str) -> String {
    let r = app.login(email, password, "json").await;
    assert_eq!(r.status, 200, "login {email}: {}", r.text);
    r.data()["access_token"]
        .as_str()
        .expect("access")
        .to_string()
}

async fn id_of(app: &TestApp, email: &str) -> String {
    let user = app
        .auth
        .find_user_by_email(email)
        .await
        .expect("lookup")
        .unwrap_or_else(|| panic!("no user {email}"));
    user["id"].as_str().expect("id").to_string()
}

/// The Administrator role made by bootstrap.
async fn admin_role(app: &TestApp) -> String {
    let admin = id_of(app, ADMIN_EMAIL).await;
    let user = app
        .auth
        .store
        .items
        .item_get(&gatehouse::store::USERS, &json!(admin))
        .await
        .expect("read")
        .expect("admin row");
    user["role"].as_str().expect("role").to_string()
}

// ----- 1. the concealed value ----------------------------------------------------------

#[tokio::test]
async fn a_concealed_value_written_back_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app.app_user("u@example.com", "user-password").await;
    let r = app
        .patch(
            &format!("/users/{id}"),
            Some(&admin),
            json!({"token": "the-real-static-token"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // An admin UI reads the user and saves the whole object back.
    let read = app.get(&format!("/users/{id}"), Some(&admin)).await;
    assert_eq!(read.data()["password"], MASK);
    assert_eq!(read.data()["token"], MASK);
    let mut object = read.data().clone();
    object.as_object_mut().unwrap().remove("id");
    let r = app
        .patch(&format!("/users/{id}"), Some(&admin), object)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The mask is neither the static token nor the password...
    app.get("/users/me", Some(MASK))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    app.login("u@example.com", MASK, "json")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    // ...and the real ones still work.
    let me = app.get("/users/me", Some("the-real-static-token")).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.data()["id"], id.as_str());
    json_login(&app, "u@example.com", "user-password").await;

    // The same through PATCH /users/me, for the admin itself.
    let mine = app.get("/users/me", Some(&admin)).await;
    let mut object = mine.data().clone();
    for k in ["id", "policies", "last_access"] {
        object.as_object_mut().unwrap().remove(k);
    }
    let r = app.patch("/users/me", Some(&admin), object).await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.login(ADMIN_EMAIL, MASK, "json")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    json_login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
}

#[tokio::test]
async fn a_stored_mask_never_authenticates() {
    let app = spawn_app().await;
    let id = app.app_user("m@example.com", "user-password").await;
    // A row written before the fix, or by another tool.
    let mut patch = serde_json::Map::new();
    patch.insert("token".into(), Value::from(MASK));
    app.auth
        .store
        .items
        .item_update(&gatehouse::store::USERS, &json!(id), &patch)
        .await
        .unwrap();
    app.get("/users/me", Some(MASK))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
}

// ----- 2. revocation reaches live tokens ---------------------------------------------

#[tokio::test]
async fn suspended_deleted_or_demoted_admins_lose_admin_rights_at_once() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let role = admin_role(&app).await;
    let plain = app.create_role(&admin, "plain", false, true).await;
    for (email, action) in [
        ("suspend@example.com", "suspend"),
        ("delete@example.com", "delete"),
        ("demote@example.com", "demote"),
    ] {
        let id = app
            .create_user(&admin, email, "user-password", Some(&role))
            .await;
        let token = json_login(&app, email, "user-password").await;
        let r = app.get("/users", Some(&token)).await;
        assert_eq!(r.status, 200, "{email} is an admin: {}", r.text);
        let r = match action {
            "suspend" => {
                app.patch(
                    &format!("/users/{id}"),
                    Some(&admin),
                    json!({"status": "suspended"}),
                )
                .await
            }
            "delete" => app.delete(&format!("/users/{id}"), Some(&admin)).await,
            _ => {
                app.patch(
                    &format!("/users/{id}"),
                    Some(&admin),
                    json!({"role": plain}),
                )
                .await
            }
        };
        assert!(r.status == 200 || r.status == 204, "{action}: {}", r.text);
        // The old access JWT is still within its 15 minutes.
        let list = app.get("/users", Some(&token)).await;
        let create = app
            .post(
                "/users",
                Some(&token),
                json!({"email": format!("new-{email}"), "password": "x-password", "role": role}),
            )
            .await;
        match action {
            "demote" => {
                // No admin rights left: the list is the user's own row only (Directus's app
                // permissions), where an admin's holds every user.
                assert_eq!(list.status, 200, "{}", list.text);
                assert_eq!(
                    list.data().as_array().expect("list").len(),
                    1,
                    "{}",
                    list.text
                );
                create.assert_error(403, "FORBIDDEN");
                // Still a valid user, with the new role's access.
                let me = app.get("/users/me", Some(&token)).await;
                assert_eq!(me.status, 200, "{}", me.text);
                assert_eq!(me.data()["role"], plain.as_str());
            }
            _ => {
                list.assert_error(401, "INVALID_CREDENTIALS");
                create.assert_error(401, "INVALID_CREDENTIALS");
            }
        }
    }
}

#[tokio::test]
async fn a_suspension_on_one_node_reaches_another_within_the_cache_ttl() {
    let nodes = spawn_nodes(2, &[("GATEHOUSE_USER_CACHE_TTL", "200ms")]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let admin = a.admin_token().await;
    let role = admin_role(a).await;
    let id = a
        .create_user(&admin, "other@example.com", "user-password", Some(&role))
        .await;
    let token = json_login(a, "other@example.com", "user-password").await;
    // Node b has the user in its cache now.
    assert_eq!(b.get("/users", Some(&token)).await.status, 200);
    let r = a
        .patch(
            &format!("/users/{id}"),
            Some(&admin),
            json!({"status": "suspended"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Node a wrote it: at once. Node b: once its cache entry is older than the TTL.
    a.get("/users", Some(&token))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    b.get("/users", Some(&token))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn static_tokens_and_session_jwts_follow_the_current_role() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let role = admin_role(&app).await;
    let plain = app.create_role(&admin, "plain", false, true).await;
    let id = app
        .create_user(&admin, "s@example.com", "user-password", Some(&role))
        .await;
    app.patch(
        &format!("/users/{id}"),
        Some(&admin),
        json!({"token": "static-token-of-s"}),
    )
    .await;
    let all = app.get("/users", Some("static-token-of-s")).await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert!(
        all.data().as_array().expect("list").len() >= 2,
        "an admin lists everyone: {}",
        all.text
    );
    app.patch(
        &format!("/users/{id}"),
        Some(&admin),
        json!({"role": plain}),
    )
    .await;
    let own = app.get("/users", Some("static-token-of-s")).await;
    assert_eq!(own.status, 200, "{}", own.text);
    assert_eq!(
        own.data().as_array().expect("list").len(),
        1,
        "no longer an admin: {}",
        own.text
    );

    // A session JWT whose session row still exists: the user's current status decides.
    app.create_user(&admin, "j@example.com", "user-password", Some(&role))
        .await;
    let login = app.login("j@example.com", "user-password", "session").await;
    let cookie = format!(
        "directus_session_token={}",
        login
            .cookie_value("directus_session_token")
            .expect("session cookie")
    );
    let with_cookie = || app.request(reqwest::Method::GET, "/users", None, None, Some(&cookie));
    assert_eq!(with_cookie().await.status, 200);
    let j = id_of(&app, "j@example.com").await;
    let mut suspended = gatehouse::store::Item::new();
    suspended.insert("status".into(), json!("suspended"));
    // Straight through the store: the status changes, the session row stays.
    app.auth
        .store
        .items
        .item_update(&gatehouse::store::USERS, &json!(j), &suspended)
        .await
        .unwrap();
    with_cookie().await.assert_error(401, "INVALID_CREDENTIALS");
}

// ----- 3. correct logins never count --------------------------------------------------

#[tokio::test]
async fn concurrent_correct_logins_never_suspend() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.patch("/settings", Some(&admin), json!({"auth_login_attempts": 2}))
        .await;
    let id = app.app_user("busy@example.com", "user-password").await;
    let logins = (0..60).map(|_| app.login("busy@example.com", "user-password", "json"));
    let results = futures::future::join_all(logins).await;
    let failed: Vec<_> = results.iter().filter(|r| r.status != 200).collect();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        failed.first()
    );
    let user = app.get(&format!("/users/{id}"), Some(&admin)).await;
    assert_eq!(user.data()["status"], "active");
    // Failures still count: two wrong, then the next login suspends.
    for _ in 0..2 {
        app.login("busy@example.com", "wrong", "json")
            .await
            .assert_error(401, "INVALID_CREDENTIALS");
    }
    app.login("busy@example.com", "user-password", "json")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    let user = app.get(&format!("/users/{id}"), Some(&admin)).await;
    assert_eq!(user.data()["status"], "suspended");
}

#[tokio::test]
async fn concurrent_wrong_logins_are_all_counted() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.patch("/settings", Some(&admin), json!({"auth_login_attempts": 5}))
        .await;
    let id = app.app_user("w@example.com", "user-password").await;
    let logins = (0..5).map(|_| app.login("w@example.com", "wrong", "json"));
    for r in futures::future::join_all(logins).await {
        r.assert_error(401, "INVALID_CREDENTIALS");
    }
    let uid: uuid::Uuid = id.parse().unwrap();
    assert_eq!(
        app.auth.store.counters.login_failures(uid).await.unwrap(),
        5
    );
    app.login("w@example.com", "user-password", "json")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    let user = app.get(&format!("/users/{id}"), Some(&admin)).await;
    assert_eq!(user.data()["status"], "suspended");
}

// ----- 4. NUL bytes -------------------------------------------------------------------

#[tokio::test]
async fn nul_bytes_are_refused_before_the_database() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app.app_user("n@example.com", "user-password").await;
    // Bodies and filters: 400.
    app.post(
        "/auth/login",
        None,
        json!({"email": "n\u{0}@example.com", "password": "x"}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    app.patch(
        &format!("/users/{id}"),
        Some(&admin),
        json!({"first_name": "a\u{0}b"}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    app.post(
        "/roles",
        Some(&admin),
        json!({"name": "r", "policies": [{"policy": {"name": "p\u{0}"}}]}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    app.patch("/settings", Some(&admin), json!({"project_name": "\u{0}"}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    app.get("/users?filter[email][_eq]=a%00b", Some(&admin))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    app.get(
        "/users?filter=%7B%22email%22%3A%7B%22_eq%22%3A%22a%5Cu0000%22%7D%7D",
        Some(&admin),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    // Tokens: 401.
    app.post(
        "/auth/refresh",
        None,
        json!({"refresh_token": "abc\u{0}def", "mode": "json"}),
    )
    .await
    .assert_error(401, "INVALID_CREDENTIALS");
    app.post_with_cookie(
        "/auth/refresh",
        "directus_refresh_token=abc%00def",
        json!({"mode": "cookie"}),
    )
    .await
    .assert_error(401, "INVALID_CREDENTIALS");
    app.request(
        reqwest::Method::GET,
        "/users/me",
        None,
        None,
        Some("directus_session_token=a%00b"),
    )
    .await
    .assert_error(401, "INVALID_CREDENTIALS");
    app.get("/users/me?access_token=static%00token", None)
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    let r = app
        .post("/auth/logout", None, json!({"refresh_token": "a\u{0}"}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // Still serving.
    json_login(&app, "n@example.com", "user-password").await;
}

// ----- 7. the last admin --------------------------------------------------------------

#[tokio::test]
async fn the_last_admin_cannot_be_removed() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let admin_id = id_of(&app, ADMIN_EMAIL).await;
    let role = admin_role(&app).await;
    let plain = app.create_role(&admin, "plain", false, true).await;
    let roles = app
        .get(&format!("/roles/{role}?fields=*"), Some(&admin))
        .await;
    assert_eq!(roles.status, 200, "{}", roles.text);
    let policies = app.get("/policies", Some(&admin)).await;
    let admin_policy = policies
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["admin_access"] == true)
        .expect("admin policy")["id"]
        .as_str()
        .unwrap()
        .to_string();

    let refused = [
        app.patch("/users/me", Some(&admin), json!({"status": "suspended"}))
            .await,
        app.patch(
            &format!("/users/{admin_id}"),
            Some(&admin),
            json!({"status": "archived"}),
        )
        .await,
        app.patch(
            &format!("/users/{admin_id}"),
            Some(&admin),
            json!({"role": plain}),
        )
        .await,
        app.patch(
            &format!("/users/{admin_id}"),
            Some(&admin),
            json!({"role": null}),
        )
        .await,
        app.patch(
            &format!("/policies/{admin_policy}"),
            Some(&admin),
            json!({"admin_access": false}),
        )
        .await,
        app.delete(&format!("/policies/{admin_policy}"), Some(&admin))
            .await,
        app.delete(&format!("/roles/{role}"), Some(&admin)).await,
    ];
    for r in &refused {
        r.assert_error(422, "UNPROCESSABLE_CONTENT");
        assert_eq!(
            r.body["errors"][0]["message"],
            "Can't process content. Cannot remove the last admin user from the system."
        );
    }
    // Nothing changed: the admin still is one.
    let me = app.get("/users", Some(&admin)).await;
    assert_eq!(me.status, 200, "{}", me.text);

    // With a second admin, each of these is allowed again.
    app.create_user(&admin, "second@example.com", "user-password", Some(&role))
        .await;
    let r = app
        .patch(
            &format!("/users/{admin_id}"),
            Some(&admin),
            json!({"role": plain}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // ...and now the second is the last one.
    let second = json_login(&app, "second@example.com", "user-password").await;
    app.patch("/users/me", Some(&second), json!({"status": "suspended"}))
        .await
        .assert_error(422, "UNPROCESSABLE_CONTENT");
    // An admin by a policy of its own counts too.
    let direct = app
        .create_user(&second, "direct@example.com", "user-password", None)
        .await;
    let access = gatehouse::store::Item::from_iter([
        ("id".to_string(), json!(uuid::Uuid::new_v4().to_string())),
        ("user".to_string(), json!(direct)),
        ("policy".to_string(), json!(admin_policy)),
    ]);
    app.auth
        .store
        .items
        .item_insert(&gatehouse::store::ACCESS, &access)
        .await
        .unwrap();
    let r = app
        .patch("/users/me", Some(&second), json!({"status": "suspended"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

// ----- 8. emails ---------------------------------------------------------------------

#[tokio::test]
async fn emails_are_one_account_in_any_case_and_composition() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let composed = "j\u{F6}rg@example.com";
    let decomposed = "jo\u{308}rg@example.com";
    let upper = "J\u{D6}RG@example.com";
    let id = app
        .create_user(&admin, composed, "user-password", None)
        .await;
    for other in [decomposed, upper] {
        let r = app
            .post(
                "/users",
                Some(&admin),
                json!({"email": other, "password": "x-password"}),
            )
            .await;
        r.assert_error(400, "RECORD_NOT_UNIQUE");
        let r = app
            .patch(
                &format!("/users/{id}"),
                Some(&admin),
                json!({"email": other}),
            )
            .await;
        assert_eq!(r.status, 200, "its own row does not conflict: {}", r.text);
    }
    // The stored form is composed, whatever was sent; every form logs in.
    let r = app.get(&format!("/users/{id}"), Some(&admin)).await;
    assert_eq!(r.data()["email"], upper);
    for form in [composed, decomposed, upper] {
        json_login(&app, form, "user-password").await;
    }
    let r = app
        .patch(
            &format!("/users/{id}"),
            Some(&admin),
            json!({"email": decomposed}),
        )
        .await;
    assert_eq!(r.data()["email"], composed, "{}", r.text);
}

#[tokio::test]
async fn emails_with_invisible_or_control_characters_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    for bad in [
        "a\u{200B}b@example.com",
        "ab\u{202E}@example.com",
        "a\u{7}@example.com",
    ] {
        app.post(
            "/users",
            Some(&admin),
            json!({"email": bad, "password": "x-password"}),
        )
        .await
        .assert_error(400, "INVALID_PAYLOAD");
        app.post("/auth/login", None, json!({"email": bad, "password": "x"}))
            .await
            .assert_error(400, "INVALID_PAYLOAD");
    }
}

// ----- 10. what a login may carry --------------------------------------------------------

#[tokio::test]
async fn passwords_longer_than_any_real_one_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let long = "p".repeat(1025);
    let r = app
        .post(
            "/auth/login",
            None,
            json!({"email": ADMIN_EMAIL, "password": long}),
        )
        .await;
    r.assert_error(400, "INVALID_PAYLOAD");
    app.post(
        "/users",
        Some(&admin),
        json!({"email": "long@example.com", "password": long}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    let ok = "p".repeat(1024);
    app.create_user(&admin, "long@example.com", &ok, None).await;
    json_login(&app, "long@example.com", &ok).await;
}

#[tokio::test]
async fn one_shape_rule_for_static_tokens_everywhere() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app.app_user("t@example.com", "user-password").await;
    // Refused at start as ADMIN_TOKEN (config tests), and now by the users API too.
    for bad in ["my.static.token", "short"] {
        app.patch(&format!("/users/{id}"), Some(&admin), json!({"token": bad}))
            .await
            .assert_error(400, "INVALID_PAYLOAD");
    }
    let v = gatehouse::config::Vars::from_pairs([("ADMIN_TOKEN", "my.static.token")]).unwrap();
    assert!(gatehouse::config::Config::from_vars(&v)
        .unwrap_err()
        .to_string()
        .contains("ADMIN_TOKEN"));
}
