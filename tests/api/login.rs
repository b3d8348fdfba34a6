//! POST /auth/login in every mode, its validation, statuses, TFA, stall and attempt limit.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn json_mode_returns_tokens_and_ttl_in_ms() {
    let app = spawn_app().await;
    let r = app.login(ADMIN_EMAIL, ADMIN_PASSWORD, "json").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = r.data();
    assert_eq!(d["expires"], 900_000);
    assert_eq!(d["refresh_token"].as_str().unwrap().len(), 64);
    assert_eq!(d["access_token"].as_str().unwrap().split('.').count(), 3);
    assert!(r.set_cookie("directus_refresh_token").is_none());
    assert_eq!(r.headers["cache-control"], "no-store");
    assert_eq!(r.headers["content-type"], "application/json; charset=utf-8");
    // Keys in Directus's order.
    let keys: Vec<&String> = d.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["expires", "refresh_token", "access_token"]);
}

#[tokio::test]
async fn default_mode_is_json() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/auth/login",
            None,
            json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.data()["refresh_token"].is_string());
}

#[tokio::test]
async fn cookie_mode_sets_the_refresh_cookie() {
    let app = spawn_app().await;
    let r = app.login(ADMIN_EMAIL, ADMIN_PASSWORD, "cookie").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.data()["access_token"].is_string());
    assert!(r.data().get("refresh_token").is_none());
    let c = r
        .set_cookie("directus_refresh_token")
        .expect("refresh cookie");
    assert!(c.contains("Max-Age=604800"), "{c}");
    assert!(
        c.contains("Path=/") && c.contains("HttpOnly") && c.contains("SameSite=Lax"),
        "{c}"
    );
    assert!(!c.contains("Secure"), "{c}");
    assert_eq!(r.cookie_value("directus_refresh_token").unwrap().len(), 64);
}

#[tokio::test]
async fn session_mode_puts_the_jwt_in_the_session_cookie_only() {
    let app = spawn_app().await;
    let browser = app.browser();
    let r = browser.login(ADMIN_EMAIL, ADMIN_PASSWORD, "session").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data(), &json!({"expires": 86_400_000}));
    let c = r
        .set_cookie("directus_session_token")
        .expect("session cookie");
    assert!(c.contains("Max-Age=86400") && c.contains("HttpOnly"), "{c}");
    let jwt = r.cookie_value("directus_session_token").unwrap();
    assert_eq!(browser.cookie("directus_session_token"), Some(jwt));
    let me = app
        .post_with_cookie("/auth/refresh", "x=y", json!({}))
        .await;
    assert_eq!(me.status, 400);
    // The browser sends the session cookie back: that alone authenticates.
    let me = browser.get("/users/me").await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.data()["email"], ADMIN_EMAIL);
}

#[tokio::test]
async fn cookie_settings_come_from_the_environment() {
    let app = spawn_with(&[
        ("REFRESH_TOKEN_COOKIE_NAME", "rt"),
        ("REFRESH_TOKEN_COOKIE_DOMAIN", "example.org"),
        ("REFRESH_TOKEN_COOKIE_SECURE", "true"),
        ("REFRESH_TOKEN_COOKIE_SAME_SITE", "strict"),
        ("REFRESH_TOKEN_TTL", "2d"),
        ("ACCESS_TOKEN_TTL", "5m"),
    ])
    .await;
    let r = app.login(ADMIN_EMAIL, ADMIN_PASSWORD, "cookie").await;
    assert_eq!(r.data()["expires"], 300_000);
    let c = r.set_cookie("rt").expect("named cookie");
    for part in [
        "Max-Age=172800",
        "Domain=example.org",
        "Secure",
        "SameSite=Strict",
    ] {
        assert!(c.contains(part), "{part} in {c}");
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_email_are_the_same_error() {
    let app = spawn_app().await;
    app.login(ADMIN_EMAIL, "nope", "json")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    app.login("ghost@example.com", "nope", "json")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    // Email lookup is case-insensitive.
    assert_eq!(
        app.login("ADMIN@Example.com", ADMIN_PASSWORD, "json")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn only_active_users_log_in() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app.app_user("u@example.com", "user-password").await;
    for status in [
        "suspended",
        "invited",
        "draft",
        "archived",
        "unverified",
        "inactive-license",
    ] {
        let r = app
            .patch(
                &format!("/users/{id}"),
                Some(&admin),
                json!({"status": status}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        // Never USER_SUSPENDED at login (Directus: `api/src/services/authentication.ts`).
        app.login("u@example.com", "user-password", "json")
            .await
            .assert_error(401, "INVALID_CREDENTIALS");
    }
    app.patch(
        &format!("/users/{id}"),
        Some(&admin),
        json!({"status": "active"}),
    )
    .await;
    assert_eq!(
        app.login("u@example.com", "user-password", "json")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn validation_errors_follow_joi_messages() {
    let app = spawn_app().await;
    let cases = [
        (json!({}), "\"email\" is required"),
        (
            json!({"email": "admin@example.com"}),
            "\"password\" is required",
        ),
        (
            json!({"email": "not-an-email", "password": "x"}),
            "\"email\" must be a valid email",
        ),
        (
            json!({"email": 5, "password": "x"}),
            "\"email\" must be a string",
        ),
        (
            json!({"email": "admin@example.com", "password": "x", "mode": "jwt"}),
            "\"mode\" must be one of [cookie, json, session]",
        ),
        (
            json!({"email": "admin@example.com", "password": "x", "otp": 123456}),
            "\"otp\" must be a string",
        ),
    ];
    for (body, reason) in cases {
        let r = app.post("/auth/login", None, body).await;
        r.assert_error(400, "INVALID_PAYLOAD");
        assert_eq!(r.body["errors"][0]["extensions"]["reason"], reason);
        assert_eq!(
            r.body["errors"][0]["message"],
            format!("Invalid payload. {reason}.")
        );
    }
}

#[tokio::test]
async fn malformed_json_is_invalid_payload_and_non_json_is_an_empty_body() {
    let app = spawn_app().await;
    let r = read(
        app.client
            .post(app.url("/auth/login"))
            .header("content-type", "application/json")
            .body("{\"email\":")
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(400, "INVALID_PAYLOAD");
    let r = read(
        app.client
            .post(app.url("/auth/login"))
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(
        r.body["errors"][0]["extensions"]["reason"],
        "\"email\" is required"
    );
}

#[tokio::test]
async fn tfa_users_need_a_valid_otp_after_the_password() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app.app_user("tfa@example.com", "user-password").await;
    let secret = "JBSWY3DPEHPK3PXP";
    // The API only clears tfa_secret; set it through the store as the TFA endpoints will.
    let mut patch = serde_json::Map::new();
    patch.insert("tfa_secret".into(), json!(secret));
    app.auth
        .store
        .items
        .item_update(&gatehouse::store::USERS, &json!(id), &patch)
        .await
        .unwrap();

    let login = |otp: Option<String>, pw: &'static str| {
        let mut body = json!({"email": "tfa@example.com", "password": pw});
        if let Some(o) = otp {
            body["otp"] = json!(o);
        }
        app.post("/auth/login", None, body)
    };
    login(None, "user-password")
        .await
        .assert_error(401, "INVALID_OTP");
    login(Some("000000".into()), "user-password")
        .await
        .assert_error(401, "INVALID_OTP");
    // Wrong password and no otp: the password is checked first.
    login(None, "wrong")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    // A code for the step the server's clock stands in (window 0: the step must not change).
    app.freeze_at_totp_step();
    let code = gatehouse::totp::generate(secret, app.auth.now()).unwrap();
    assert_eq!(login(Some(code), "user-password").await.status, 200);

    // An admin can clear it, and then no otp is needed.
    let r = app
        .patch(
            &format!("/users/{id}"),
            Some(&admin),
            json!({"tfa_secret": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(login(None, "user-password").await.status, 200);
}

#[tokio::test]
async fn login_is_padded_to_the_stall_time() {
    let app = spawn_with(&[("LOGIN_STALL_TIME", "400")]).await;
    for (email, pw) in [
        (ADMIN_EMAIL, "wrong"),
        ("ghost@example.com", "x"),
        (ADMIN_EMAIL, ADMIN_PASSWORD),
    ] {
        let t = Instant::now();
        app.login(email, pw, "json").await;
        assert!(
            t.elapsed() >= Duration::from_millis(400),
            "{email}: {:?}",
            t.elapsed()
        );
    }
}

#[tokio::test]
async fn too_many_attempts_suspend_the_user() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let r = app
        .patch("/settings", Some(&admin), json!({"auth_login_attempts": 2}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = app.app_user("a@example.com", "user-password").await;
    app.login("a@example.com", "bad", "json")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    app.login("a@example.com", "bad", "json")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    // The third attempt exceeds the limit: the user is suspended, and that is on record as
    // an update by the (public) request that caused it, as Directus records it.
    app.login("a@example.com", "bad", "json").await;
    let user = app.get(&format!("/users/{id}"), Some(&admin)).await;
    assert_eq!(user.data()["status"], "suspended");
    let rows = app.activity().await;
    let updates: Vec<_> = rows.iter().filter(|r| r["action"] == "update").collect();
    assert_eq!(updates.len(), 1, "{rows:?}");
    assert_eq!(updates[0]["collection"], "directus_users");
    assert_eq!(updates[0]["item"], id.as_str());
    assert_eq!(updates[0]["user"], serde_json::Value::Null);
    assert_eq!(updates[0]["ip"], "127.0.0.1");
    app.login("a@example.com", "user-password", "json")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn a_success_resets_the_attempt_counter() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.patch("/settings", Some(&admin), json!({"auth_login_attempts": 2}))
        .await;
    app.app_user("b@example.com", "user-password").await;
    for _ in 0..3 {
        app.login("b@example.com", "bad", "json").await;
        assert_eq!(
            app.login("b@example.com", "user-password", "json")
                .await
                .status,
            200
        );
    }
}

#[tokio::test]
async fn a_stale_bearer_token_fails_login_before_the_handler() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/auth/login",
            Some("a.b.c"),
            json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(
        r.status, 401,
        "a non-JWT bearer is a static token lookup: {}",
        r.text
    );
    let token = app.admin_token().await;
    app.advance(Duration::from_secs(901));
    let r = app
        .post(
            "/auth/login",
            Some(&token),
            json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
        )
        .await;
    r.assert_error(401, "TOKEN_EXPIRED");
}

#[tokio::test]
async fn each_login_writes_an_activity_row() {
    let app = spawn_app().await;
    app.admin_token().await;
    app.admin_token().await;
    let rows = app.activity().await;
    let logins: Vec<_> = rows.iter().filter(|r| r["action"] == "login").collect();
    assert_eq!(logins.len(), 2);
    assert_eq!(logins[0]["collection"], "directus_users");
    assert_eq!(logins[0]["item"], logins[0]["user"]);
    assert_eq!(logins[0]["ip"], "127.0.0.1");
}

#[tokio::test]
async fn disabled_default_login_is_not_found() {
    let app = spawn_with(&[("AUTH_DISABLE_DEFAULT", "true")]).await;
    app.login(ADMIN_EMAIL, ADMIN_PASSWORD, "json")
        .await
        .assert_error(404, "ROUTE_NOT_FOUND");
    let r = app.get("/auth", None).await;
    assert_eq!(r.body, json!({"data": [], "disableDefault": true}));
}

#[tokio::test]
async fn a_full_hashing_queue_answers_503_not_unbounded_memory() {
    let app = spawn_with(&[
        ("GATEHOUSE_HASH_CONCURRENCY", "1"),
        ("GATEHOUSE_HASH_WAIT", "1"),
        // Slow enough hashes (tens of ms) that twelve logins at once always overlap.
        ("HASH_MEMORY_COST", "32768"),
        ("HASH_TIME_COST", "2"),
    ])
    .await;
    // The start-up dummy hash holds the only slot for a moment; let it finish first.
    app.auth.hasher.dummy().await.unwrap();
    let calls = (0..12).map(|_| app.login(ADMIN_EMAIL, ADMIN_PASSWORD, "json"));
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|r| r.status == 200).count();
    let busy: Vec<_> = results.iter().filter(|r| r.status == 503).collect();
    assert!(ok >= 1, "someone gets through");
    assert!(!busy.is_empty(), "a 1 ms wait for one slot turns some away");
    for r in busy {
        r.assert_error(503, "SERVICE_UNAVAILABLE");
    }
}
