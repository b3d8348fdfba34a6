//! Where tokens are read from and what each kind of bad token answers (Directus: `api/src/middleware/extract-token.ts`,
//! `api/src/middleware/authenticate.ts`).

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn bearer_scheme_is_case_insensitive_and_query_tokens_work() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = read(
            app.client
                .get(app.url("/users/me"))
                .header("authorization", format!("{scheme} {token}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "{scheme}");
    }
    let r = app
        .get(&format!("/users/me?access_token={token}"), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["email"], ADMIN_EMAIL);
}

#[tokio::test]
async fn header_and_query_together_are_invalid_payload() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let r = app
        .get(&format!("/users/me?access_token={token}"), Some(&token))
        .await;
    r.assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(
        r.body["errors"][0]["extensions"]["reason"],
        "The request uses more than one method for including an access token"
    );
}

#[tokio::test]
async fn other_authorization_schemes_are_ignored() {
    let app = spawn_app().await;
    let r = read(
        app.client
            .get(app.url("/users/me"))
            .header("authorization", "Basic YTpi")
            .send()
            .await
            .unwrap(),
    )
    .await;
    // Public accountability: no user.
    r.assert_error(401, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn expired_and_forged_tokens() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    // Tampered payload: bad signature.
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[2] = "AAAA".into();
    app.get("/users/me", Some(&parts.join(".")))
        .await
        .assert_error(403, "INVALID_TOKEN");
    app.advance(Duration::from_secs(900));
    app.get("/users/me", Some(&token))
        .await
        .assert_error(401, "TOKEN_EXPIRED");
}

#[tokio::test]
async fn only_hs256_tokens_with_exp_are_accepted() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let app = spawn_app().await;
    let id = app
        .auth
        .find_user_by_email(ADMIN_EMAIL)
        .await
        .unwrap()
        .unwrap()["id"]
        .clone();
    let now = chrono::Utc::now().timestamp();
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let claims = json!({"id": id, "role": null, "app_access": true, "admin_access": true, "iat": now, "exp": now + 600, "iss": "directus"});
    let good = encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap();
    assert_eq!(app.get("/users/me", Some(&good)).await.status, 200);
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let t = encode(&Header::new(alg), &claims, &key).unwrap();
        app.get("/users/me", Some(&t))
            .await
            .assert_error(403, "INVALID_TOKEN");
    }
    let mut no_exp = claims.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    let t = encode(&Header::new(Algorithm::HS256), &no_exp, &key).unwrap();
    app.get("/users/me", Some(&t))
        .await
        .assert_error(403, "INVALID_TOKEN");
    let mut future = claims.clone();
    future["iat"] = json!(now + 3600);
    let t = encode(&Header::new(Algorithm::HS256), &future, &key).unwrap();
    app.get("/users/me", Some(&t))
        .await
        .assert_error(403, "INVALID_TOKEN");
    let mut no_role = claims;
    no_role.as_object_mut().unwrap().remove("role");
    let t = encode(&Header::new(Algorithm::HS256), &no_role, &key).unwrap();
    app.get("/users/me", Some(&t))
        .await
        .assert_error(403, "INVALID_TOKEN");
}

#[tokio::test]
async fn static_tokens_of_active_users() {
    let app = spawn_with(&[("ADMIN_TOKEN", "admin-static-token-123")]).await;
    let r = app.get("/users/me", Some("admin-static-token-123")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["email"], ADMIN_EMAIL);
    assert_eq!(r.data()["token"], "**********");
    app.get("/users/me", Some("unknown-static-token"))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn a_bad_session_cookie_is_cleared_and_an_expired_one_is_token_expired() {
    let app = spawn_app().await;
    let r = app
        .request(
            reqwest::Method::GET,
            "/users/me",
            None,
            None,
            Some("directus_session_token=garbage"),
        )
        .await;
    r.assert_error(401, "INVALID_CREDENTIALS");
    assert!(r
        .set_cookie("directus_session_token")
        .unwrap()
        .contains("Max-Age=0"));
    let r = app.login(ADMIN_EMAIL, ADMIN_PASSWORD, "session").await;
    let cookie = format!(
        "directus_session_token={}",
        r.cookie_value("directus_session_token").unwrap()
    );
    app.advance(Duration::from_secs(86_401));
    let r = app
        .request(reqwest::Method::GET, "/users/me", None, None, Some(&cookie))
        .await;
    r.assert_error(401, "TOKEN_EXPIRED");
}

#[tokio::test]
async fn public_requests_have_no_user() {
    let app = spawn_app().await;
    app.get("/users/me", None)
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    app.get("/users", None).await.assert_error(403, "FORBIDDEN");
    let r = app.get("/auth", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"data": [], "disableDefault": false}));
}

#[tokio::test]
async fn access_claims_match_the_users_policies() {
    use base64::Engine;
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["admin_access"], true);
    assert_eq!(claims["app_access"], true);
    assert_eq!(claims["iss"], "directus");
    assert!(claims["role"].is_string());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );

    app.app_user("app@example.com", "user-password").await;
    let t = app
        .login("app@example.com", "user-password", "json")
        .await
        .data()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (
            claims["admin_access"].as_bool(),
            claims["app_access"].as_bool()
        ),
        (Some(false), Some(true))
    );
}
