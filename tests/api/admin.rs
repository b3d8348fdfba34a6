//! `/users/me`, the admin API (`/users`, `/roles`, `/policies`, `/settings`, `/permissions`),
//! static tokens and the session side effects of user updates (contract §2.11, §5.4, §5.6,
//! §9, §10, §13).

use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

const PUBLIC_POLICY: &str = "abf8a154-5b1c-4a46-ac9c-7300570f4f17";
const RANDOM_ID: &str = "3f2c9d1e-7b4a-4c8e-9a61-0d5e2f7b8c90";

/// The claims of a JWT, read from its payload without verifying it.
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("jwt payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("json payload")
}

/// Sorted keys of a JSON object.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    k.sort();
    k
}

/// Number of items in a list answer.
fn count(r: &Resp) -> usize {
    r.data()
        .as_array()
        .map(Vec::len)
        .unwrap_or_else(|| panic!("not a list: {}", r.text))
}

/// json-mode login: (access token, refresh token).
async fn tokens(app: &TestApp, email: &str, password: &str) -> (String, String) {
    let r = app.login(email, password, "json").await;
    assert_eq!(r.status, 200, "login {email}: {}", r.text);
    (
        r.data()["access_token"]
            .as_str()
            .expect("access")
            .to_string(),
        r.data()["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_string(),
    )
}

async fn refresh(app: &TestApp, token: &str) -> Resp {
    app.post(
        "/auth/refresh",
        None,
        json!({"refresh_token": token, "mode": "json"}),
    )
    .await
}

/// Sets columns of a user through the store, bypassing the API's side effects.
async fn store_set_user(app: &TestApp, id: &str, patch: Value) {
    let Value::Object(patch) = patch else {
        panic!("patch must be an object")
    };
    let found = app
        .auth
        .store
        .item_update(&gatehouse::store::USERS, &json!(id), &patch)
        .await
        .expect("store update");
    assert!(found, "user {id} exists");
}

async fn admin_id(app: &TestApp, admin: &str) -> String {
    let me = app.get("/users/me", Some(admin)).await;
    me.data()["id"].as_str().expect("admin id").to_string()
}

const USER_COLUMNS: &[&str] = &[
    "id",
    "first_name",
    "last_name",
    "email",
    "password",
    "location",
    "title",
    "description",
    "tags",
    "avatar",
    "language",
    "tfa_secret",
    "status",
    "role",
    "token",
    "last_access",
    "last_page",
    "provider",
    "external_identifier",
    "auth_data",
    "email_notifications",
    "appearance",
    "theme_dark",
    "theme_light",
    "theme_light_overrides",
    "theme_dark_overrides",
    "text_direction",
];

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
    app.get("/users", Some(&token))
        .await
        .assert_error(403, "FORBIDDEN");
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
    // json mode: every session ends, the caller's own refresh token included (contract §2.11).
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
    assert_eq!(keys(d), sorted(USER_COLUMNS));
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

#[tokio::test]
async fn suspending_a_user_ends_its_sessions() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app.app_user("u@example.com", "user-password").await;
    let (_, rt) = tokens(&app, "u@example.com", "user-password").await;
    assert_eq!(app.session_count(&id).await, 1);
    let r = app
        .patch(
            &format!("/users/{id}"),
            Some(&admin),
            json!({"status": "suspended"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.session_count(&id).await, 0);
    refresh(&app, &rt)
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
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
async fn changing_a_role_ends_the_sessions() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app.app_user("u@example.com", "user-password").await;
    let role = app.create_role(&admin, "Other", false, true).await;
    let (_, rt) = tokens(&app, "u@example.com", "user-password").await;
    tokens(&app, "u@example.com", "user-password").await;
    assert_eq!(app.session_count(&id).await, 2);
    let r = app
        .patch(&format!("/users/{id}"), Some(&admin), json!({"role": role}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.session_count(&id).await, 0);
    refresh(&app, &rt)
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn an_admin_password_change_ends_the_sessions() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app.app_user("u@example.com", "user-password").await;
    let (_, rt) = tokens(&app, "u@example.com", "user-password").await;
    tokens(&app, "u@example.com", "user-password").await;
    assert_eq!(app.session_count(&id).await, 2);
    let r = app
        .patch(
            &format!("/users/{id}"),
            Some(&admin),
            json!({"password": "changed-by-admin"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.session_count(&id).await, 0);
    refresh(&app, &rt)
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
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
    // The token carries the user's own rights: not an admin.
    app.get("/users", Some(token))
        .await
        .assert_error(403, "FORBIDDEN");

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

// ----- /roles -----

async fn role_user_token(app: &TestApp, admin: &str, role: &str, email: &str) -> String {
    app.create_user(admin, email, "user-password", Some(role))
        .await;
    tokens(app, email, "user-password").await.0
}

#[tokio::test]
async fn roles_created_with_nested_policies_grant_their_flags() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;

    // Array form.
    let r = app
        .post("/roles", Some(&admin), json!({"name": "Admins 2", "policies": [{"policy": {"name": "Admin 2", "admin_access": true, "app_access": true}}]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["name"], "Admins 2");
    let admins = r.data()["id"].as_str().unwrap().to_string();
    let t = role_user_token(&app, &admin, &admins, "a2@example.com").await;
    let c = claims(&t);
    assert_eq!(
        (
            c["admin_access"].clone(),
            c["app_access"].clone(),
            c["role"].clone()
        ),
        (json!(true), json!(true), json!(admins))
    );
    assert!(c.get("enforce_tfa").is_none(), "{c}");
    assert_eq!(app.get("/users", Some(&t)).await.status, 200);

    // `{create: [...]}` form.
    let r = app
        .post("/roles", Some(&admin), json!({"name": "App only", "policies": {"create": [{"policy": {"name": "App", "app_access": true}}]}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let app_only = r.data()["id"].as_str().unwrap().to_string();
    let t = role_user_token(&app, &admin, &app_only, "app@example.com").await;
    let c = claims(&t);
    assert_eq!(
        (c["admin_access"].clone(), c["app_access"].clone()),
        (json!(false), json!(true))
    );
    app.get("/users", Some(&t))
        .await
        .assert_error(403, "FORBIDDEN");

    // An existing policy by id.
    let p = app
        .post(
            "/policies",
            Some(&admin),
            json!({"name": "Shared admin", "admin_access": true}),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    let pid = p.data()["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "By id", "policies": [{"policy": pid}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let by_id = r.data()["id"].as_str().unwrap().to_string();
    let t = role_user_token(&app, &admin, &by_id, "byid@example.com").await;
    let c = claims(&t);
    // app = admin || app_access.
    assert_eq!(
        (c["admin_access"].clone(), c["app_access"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(app.get("/users", Some(&t)).await.status, 200);

    // No policies: neither flag.
    let r = app
        .post("/roles", Some(&admin), json!({"name": "Bare"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let bare = r.data()["id"].as_str().unwrap().to_string();
    let t = role_user_token(&app, &admin, &bare, "bare@example.com").await;
    let c = claims(&t);
    assert_eq!(
        (c["admin_access"].clone(), c["app_access"].clone()),
        (json!(false), json!(false))
    );
}

#[tokio::test]
async fn role_payloads_are_validated() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.post("/roles", Some(&admin), json!({"icon": "x"}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "Bad", "policies": [{"policy": RANDOM_ID}]}),
        )
        .await;
    assert_eq!(r.status, 400, "unknown policy: {}", r.text);
    app.post(
        "/roles",
        Some(&admin),
        json!({"name": "Bad", "parent": "nope"}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    let r = app
        .post("/roles", Some(&admin), json!({"name": "Self"}))
        .await;
    let id = r.data()["id"].as_str().unwrap().to_string();
    app.patch(&format!("/roles/{id}"), Some(&admin), json!({"parent": id}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
}

#[tokio::test]
async fn a_parent_role_policy_gives_admin_to_child_role_users() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let parent = app.create_role(&admin, "Parent", true, true).await;
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "Child", "parent": parent}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["parent"], parent);
    let child = r.data()["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "Grandchild", "parent": child}),
        )
        .await;
    let grandchild = r.data()["id"].as_str().unwrap().to_string();

    let t = role_user_token(&app, &admin, &child, "child@example.com").await;
    assert_eq!(claims(&t)["admin_access"], true);
    assert_eq!(claims(&t)["role"], child);
    assert_eq!(app.get("/users", Some(&t)).await.status, 200);
    let t = role_user_token(&app, &admin, &grandchild, "grandchild@example.com").await;
    assert_eq!(claims(&t)["admin_access"], true);
    assert_eq!(app.get("/roles", Some(&t)).await.status, 200);

    // Detaching the child from the parent removes the rights, at once (flags are recomputed).
    let r = app
        .patch(
            &format!("/roles/{child}"),
            Some(&admin),
            json!({"parent": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.get("/users", Some(&t))
        .await
        .assert_error(403, "FORBIDDEN");
}

#[tokio::test]
async fn roles_are_read_renamed_and_deleted() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let role = app.create_role(&admin, "Temp", true, true).await;
    let path = format!("/roles/{role}");

    let g = app.get(&path, Some(&admin)).await;
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(g.data()["name"], "Temp");
    assert_eq!(g.data()["id"], role);
    let list = app.get("/roles", Some(&admin)).await;
    assert_eq!(list.data().as_array().unwrap().len(), 2, "{}", list.text);
    let r = app
        .get("/roles?filter[name][_eq]=Temp&fields=id", Some(&admin))
        .await;
    assert_eq!(r.data(), &json!([{"id": role}]));

    let r = app
        .patch(
            &path,
            Some(&admin),
            json!({"name": "Renamed", "description": "d"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["name"], "Renamed");
    assert_eq!(r.data()["description"], "d");
    assert_eq!(app.get(&path, Some(&admin)).await.data()["name"], "Renamed");

    let uid = app
        .create_user(&admin, "member@example.com", "user-password", Some(&role))
        .await;
    let (t, _) = tokens(&app, "member@example.com", "user-password").await;
    assert_eq!(app.get("/users", Some(&t)).await.status, 200);

    let r = app.delete(&path, Some(&admin)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    app.get(&path, Some(&admin))
        .await
        .assert_error(403, "FORBIDDEN");
    app.delete(&path, Some(&admin))
        .await
        .assert_error(403, "FORBIDDEN");
    app.patch(&path, Some(&admin), json!({"name": "x"}))
        .await
        .assert_error(403, "FORBIDDEN");
    // Its users lose the role (and its rights).
    assert!(app.get(&format!("/users/{uid}"), Some(&admin)).await.data()["role"].is_null());
    app.get("/users", Some(&t))
        .await
        .assert_error(403, "FORBIDDEN");
    app.get(&format!("/roles/{RANDOM_ID}"), Some(&admin))
        .await
        .assert_error(403, "FORBIDDEN");
}

// ----- /policies -----

#[tokio::test]
async fn policies_crud() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r = app
        .post(
            "/policies",
            Some(&admin),
            json!({"name": "Readers", "app_access": true, "description": "read things"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = r.data();
    let id = d["id"].as_str().expect("id").to_string();
    assert_eq!(d["name"], "Readers");
    assert_eq!(d["app_access"], true);
    assert_eq!(d["admin_access"], false);
    assert_eq!(d["enforce_tfa"], false);
    assert_eq!(d["icon"], "badge");
    assert!(d["ip_access"].is_null());
    let path = format!("/policies/{id}");

    assert_eq!(app.get(&path, Some(&admin)).await.data(), d);
    let list = app.get("/policies", Some(&admin)).await;
    assert_eq!(list.status, 200, "{}", list.text);
    // Public, Administrator, Readers.
    assert_eq!(list.data().as_array().unwrap().len(), 3, "{}", list.text);
    assert!(list
        .data()
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == PUBLIC_POLICY));

    let r = app
        .patch(
            &path,
            Some(&admin),
            json!({"name": "Writers", "admin_access": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["name"], "Writers");
    assert_eq!(r.data()["admin_access"], true);
    app.patch(&path, Some(&admin), json!({"admin_access": "yes"}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    app.post("/policies", Some(&admin), json!({"app_access": true}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");

    let r = app.delete(&path, Some(&admin)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.get(&path, Some(&admin))
        .await
        .assert_error(403, "FORBIDDEN");
    app.delete(&path, Some(&admin))
        .await
        .assert_error(403, "FORBIDDEN");
}

#[tokio::test]
async fn deleting_a_policy_removes_its_rights() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let p = app
        .post(
            "/policies",
            Some(&admin),
            json!({"name": "Grant", "admin_access": true}),
        )
        .await;
    let pid = p.data()["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "Granted", "policies": [{"policy": pid}]}),
        )
        .await;
    let role = r.data()["id"].as_str().unwrap().to_string();
    let t = role_user_token(&app, &admin, &role, "g@example.com").await;
    assert_eq!(app.get("/users", Some(&t)).await.status, 200);
    assert_eq!(
        app.delete(&format!("/policies/{pid}"), Some(&admin))
            .await
            .status,
        204
    );
    app.get("/users", Some(&t))
        .await
        .assert_error(403, "FORBIDDEN");
    // The role stays.
    assert_eq!(
        app.get(&format!("/roles/{role}"), Some(&admin))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn ip_access_restricts_a_policy_to_its_networks() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "Office", "policies": [{"policy": {"name": "Office admin", "admin_access": true, "app_access": true, "ip_access": "10.0.0.0/8"}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let role = r.data()["id"].as_str().unwrap().to_string();
    let t = role_user_token(&app, &admin, &role, "office@example.com").await;
    let c = claims(&t);
    assert_eq!(
        (c["admin_access"].clone(), c["app_access"].clone()),
        (json!(false), json!(false)),
        "{c}"
    );
    app.get("/users", Some(&t))
        .await
        .assert_error(403, "FORBIDDEN");

    let pid = app
        .get("/policies?filter[name][_eq]=Office admin", Some(&admin))
        .await
        .data()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .patch(
            &format!("/policies/{pid}"),
            Some(&admin),
            json!({"ip_access": ["127.0.0.1"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A CSV column: read back as an array, as Directus's API shows it.
    assert_eq!(r.data()["ip_access"], json!(["127.0.0.1"]));
    // Rights are recomputed per request: the same token now has admin.
    assert_eq!(app.get("/users", Some(&t)).await.status, 200);
    let t = tokens(&app, "office@example.com", "user-password").await.0;
    assert_eq!(claims(&t)["admin_access"], true);

    app.patch(
        &format!("/policies/{pid}"),
        Some(&admin),
        json!({"ip_access": "10.0.0.0/8, 127.0.0.0/8"}),
    )
    .await;
    assert_eq!(app.get("/users", Some(&t)).await.status, 200);
    app.patch(
        &format!("/policies/{pid}"),
        Some(&admin),
        json!({"ip_access": "192.168.0.1,::2"}),
    )
    .await;
    app.get("/users", Some(&t))
        .await
        .assert_error(403, "FORBIDDEN");
}

#[tokio::test]
async fn ip_access_uses_the_ip_custom_header() {
    let app = spawn_with(&[("IP_CUSTOM_HEADER", "X-Real-IP")]).await;
    let admin = app.admin_token().await;
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "Office", "policies": [{"policy": {"name": "Office admin", "admin_access": true, "ip_access": "10.0.0.0/8"}}]}),
        )
        .await;
    let role = r.data()["id"].as_str().unwrap().to_string();
    app.create_user(&admin, "office@example.com", "user-password", Some(&role))
        .await;
    let send =
        |method: Method, path: &str, ip: Option<&str>, token: Option<&str>, body: Option<Value>| {
            let mut req = app.client.request(method, app.url(path));
            if let Some(ip) = ip {
                req = req.header("x-real-ip", ip);
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = body {
                req = req.json(&b);
            }
            async move { read(req.send().await.expect("request")).await }
        };
    let login = send(
        Method::POST,
        "/auth/login",
        Some("10.1.2.3"),
        None,
        Some(json!({"email": "office@example.com", "password": "user-password"})),
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.text);
    let t = login.data()["access_token"].as_str().unwrap().to_string();
    assert_eq!(claims(&t)["admin_access"], true);
    assert_eq!(
        send(Method::GET, "/users", Some("10.1.2.3"), Some(&t), None)
            .await
            .status,
        200
    );
    send(Method::GET, "/users", Some("11.1.2.3"), Some(&t), None)
        .await
        .assert_error(403, "FORBIDDEN");
    send(Method::GET, "/users", None, Some(&t), None)
        .await
        .assert_error(403, "FORBIDDEN");
}

#[tokio::test]
async fn enforce_tfa_on_the_direct_role_adds_the_claim() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r = app
        .post("/roles", Some(&admin), json!({"name": "Strict", "policies": [{"policy": {"name": "Strict", "app_access": true, "enforce_tfa": true}}]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let strict = r.data()["id"].as_str().unwrap().to_string();
    let id = app
        .create_user(&admin, "strict@example.com", "user-password", Some(&strict))
        .await;

    let t = tokens(&app, "strict@example.com", "user-password").await.0;
    let c = claims(&t);
    assert_eq!(c["enforce_tfa"], true, "{c}");
    let names: Vec<&String> = c.as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        [
            "id",
            "role",
            "app_access",
            "admin_access",
            "enforce_tfa",
            "iat",
            "exp",
            "iss"
        ],
        "claim order"
    );
    // The claim does not block requests.
    assert_eq!(app.get("/users/me", Some(&t)).await.status, 200);

    // The refresh carries it too.
    let (_, rt) = tokens(&app, "strict@example.com", "user-password").await;
    let r = refresh(&app, &rt).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        claims(r.data()["access_token"].as_str().unwrap())["enforce_tfa"],
        true
    );

    // A user with TFA set up does not get it.
    let secret = "JBSWY3DPEHPK3PXP";
    store_set_user(&app, &id, json!({"tfa_secret": secret})).await;
    let otp = gatehouse::totp::generate(secret, app.auth.now()).unwrap();
    let r = app
        .post(
            "/auth/login",
            None,
            json!({"email": "strict@example.com", "password": "user-password", "otp": otp}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(claims(r.data()["access_token"].as_str().unwrap())
        .get("enforce_tfa")
        .is_none());

    // Only the direct role counts, not a parent's.
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"name": "Strict child", "parent": strict}),
        )
        .await;
    let child = r.data()["id"].as_str().unwrap().to_string();
    app.create_user(&admin, "child@example.com", "user-password", Some(&child))
        .await;
    let c = claims(&tokens(&app, "child@example.com", "user-password").await.0);
    assert!(c.get("enforce_tfa").is_none(), "{c}");
    assert_eq!(
        c["app_access"], true,
        "the parent's app access still applies: {c}"
    );
}

#[tokio::test]
async fn the_public_policy_cannot_be_deleted() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.delete(&format!("/policies/{PUBLIC_POLICY}"), Some(&admin))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    let r = app
        .get(&format!("/policies/{PUBLIC_POLICY}"), Some(&admin))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["name"], "$t:public_label");
    assert_eq!(r.data()["admin_access"], false);
}

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

// ----- /permissions -----

#[tokio::test]
async fn permissions_are_not_managed_here() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r = app
        .post(
            "/permissions",
            Some(&admin),
            json!({"collection": "articles", "action": "read", "policy": PUBLIC_POLICY}),
        )
        .await;
    r.assert_error(400, "INVALID_PAYLOAD");
    let err = &r.body["errors"][0];
    let reason = err["extensions"]["reason"].as_str().expect("reason");
    assert_eq!(err["message"], format!("Invalid payload. {reason}."));
    assert_eq!(keys(&r.body), ["errors"]);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
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
    for bad in [
        "/users?filter[role][_null]=false",
        "/users?filter[email][_contains]=f1",
        r#"/users?filter={"email":{"_neq":"x"}}"#,
        "/users?filter=notjson",
    ] {
        app.get(bad, Some(&admin))
            .await
            .assert_error(400, "INVALID_PAYLOAD");
    }
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
