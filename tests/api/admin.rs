//! `/users/me`, the admin API (`/users`, `/roles`, `/policies`, `/settings`, `/permissions`),
//! static tokens and the session side effects of user updates (Directus: `api/src/services/users.ts`,
//! `roles.ts`, `policies.ts`, `settings.ts`).

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
        .items
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

async fn role_user_token(app: &TestApp, admin: &str, role: &str, email: &str) -> String {
    app.create_user(admin, email, "user-password", Some(role))
        .await;
    tokens(app, email, "user-password").await.0
}

mod me;
mod permissions;
mod policies;
mod queries;
mod roles;
mod settings;
mod users;
