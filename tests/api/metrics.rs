//! `GET /metrics` (Directus: `api/src/controllers/metrics.ts`): who may read it, and the auth
//! counters gatehouse adds moving as logins, refreshes, lockouts and mail happen.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

const TOKEN: &str = "scrape-token-1";

/// `name{labels}` → value, from the text exposition (comments skipped).
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("a sample line");
            (k.to_string(), v.parse().expect("a number"))
        })
        .collect()
}

async fn scrape(app: &TestApp) -> BTreeMap<String, f64> {
    let r = read(
        app.client
            .get(app.url("/metrics"))
            .header("authorization", format!("Metrics {TOKEN}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    parse(&r.text)
}

fn value(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_are_off_by_default_as_in_directus() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    app.get("/metrics", Some(&admin))
        .await
        .assert_error(404, "ROUTE_NOT_FOUND");
    // Express's 404 names the path as asked (e2e/interop.mjs compares it with Directus).
    let r = app.get("/metrics/", None).await;
    r.assert_error(404, "ROUTE_NOT_FOUND");
    assert_eq!(
        r.body["errors"][0]["message"],
        "Route /metrics/ doesn't exist."
    );
}

#[tokio::test]
async fn only_admins_and_metrics_tokens_may_read() {
    let app = spawn_with(&[
        ("METRICS_ENABLED", "true"),
        ("METRICS_TOKENS", "scrape-token-1,other-token"),
    ])
    .await;
    app.get("/metrics", None)
        .await
        .assert_error(403, "FORBIDDEN");
    for bad in [
        "Metrics wrong",
        "Metrics scrape-token",
        "Metrics",
        "Basic c2NyYXBl",
    ] {
        let r = read(
            app.client
                .get(app.url("/metrics"))
                .header("authorization", bad)
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.assert_error(403, "FORBIDDEN");
    }
    // A bearer token is read as an access or static token first, as on every route.
    app.get("/metrics", Some(TOKEN))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    let user = app.app_user("notadmin@example.com", "user-password").await;
    let login = app
        .login("notadmin@example.com", "user-password", "json")
        .await;
    let token = login.data()["access_token"].as_str().unwrap().to_string();
    assert!(!user.is_empty());
    app.get("/metrics", Some(&token))
        .await
        .assert_error(403, "FORBIDDEN");

    let admin = app.admin_token().await;
    let r = app.get("/metrics", Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "text/plain; charset=utf-8"
    );
    assert_eq!(r.headers.get("cache-control").unwrap(), "no-cache");
    let m = scrape(&app).await;
    assert!(value(&m, "gatehouse_db_pool_connections{state=\"max\"}") >= 1.0);
}

#[tokio::test]
async fn the_auth_counters_move() {
    let app = spawn_with(&[
        ("METRICS_ENABLED", "true"),
        ("METRICS_TOKENS", TOKEN),
        ("SESSION_REFRESH_GRACE_PERIOD", "0"),
    ])
    .await;
    let before = scrape(&app).await;
    let admin = app.admin_token().await;
    app.login(ADMIN_EMAIL, "wrong-password", "json").await;
    app.login("nobody@example.com", "wrong-password", "json")
        .await;

    // A refresh, then its token used again after the grace period: reuse.
    let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD, "json").await;
    let rt = login.data()["refresh_token"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/auth/refresh",
            None,
            json!({"refresh_token": rt, "mode": "json"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.advance(Duration::from_secs(1));
    app.post(
        "/auth/refresh",
        None,
        json!({"refresh_token": rt, "mode": "json"}),
    )
    .await
    .assert_error(401, "INVALID_CREDENTIALS");

    // A lockout after the login-attempt limit.
    app.patch("/settings", Some(&admin), json!({"auth_login_attempts": 1}))
        .await;
    app.app_user("locked@example.com", "user-password").await;
    for _ in 0..3 {
        app.login("locked@example.com", "wrong-password", "json")
            .await;
    }

    // A wrong second factor.
    app.patch(
        "/settings",
        Some(&admin),
        json!({"auth_login_attempts": 25}),
    )
    .await;
    let id = app.app_user("otp@example.com", "user-password").await;
    let mut tfa = gatehouse::store::Item::new();
    tfa.insert("tfa_secret".into(), json!("JBSWY3DPEHPK3PXP"));
    app.auth
        .store
        .items
        .item_update(&gatehouse::store::USERS, &json!(id), &tfa)
        .await
        .unwrap();
    let wrong = gatehouse::totp::generate(
        "JBSWY3DPEHPK3PXP",
        app.auth.now() + chrono::Duration::seconds(600),
    )
    .unwrap();
    app.post(
        "/auth/login",
        None,
        json!({"email": "otp@example.com", "password": "user-password", "otp": wrong}),
    )
    .await
    .assert_error(401, "INVALID_OTP");

    // A mail (the test server records what it sends).
    let r = app
        .post(
            "/auth/password/request",
            None,
            json!({"email": ADMIN_EMAIL}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.mails(1).await;
    app.get("/users/me", Some(&admin)).await;

    let after = scrape(&app).await;
    let moved = |key: &str| value(&after, key) - value(&before, key);
    assert_eq!(
        moved("gatehouse_logins_total{outcome=\"invalid_credentials\",provider=\"default\"}"),
        // Two bad passwords, three for the locked user.
        5.0
    );
    assert!(moved("gatehouse_logins_total{outcome=\"success\",provider=\"default\"}") >= 2.0);
    assert_eq!(
        moved("gatehouse_logins_total{outcome=\"invalid_otp\",provider=\"default\"}"),
        1.0
    );
    assert_eq!(moved("gatehouse_refreshes_total{outcome=\"success\"}"), 1.0);
    assert_eq!(
        moved("gatehouse_refreshes_total{outcome=\"invalid_credentials\"}"),
        1.0
    );
    assert_eq!(moved("gatehouse_refresh_reuse_detected_total"), 1.0);
    assert_eq!(moved("gatehouse_lockouts_total{kind=\"login\"}"), 1.0);
    assert_eq!(moved("gatehouse_otp_failures_total"), 1.0);
    assert_eq!(moved("gatehouse_mails_total{outcome=\"sent\"}"), 1.0);
    assert!(moved("gatehouse_password_hash_wait_seconds_count") >= 7.0);
    assert_eq!(value(&after, "gatehouse_password_hash_running"), 0.0);
    assert!(
        moved(
            "gatehouse_http_request_duration_seconds_count{method=\"GET\",route=\"/users/me\",status=\"2xx\"}"
        ) >= 1.0
    );
    // The route label is the pattern, never a raw path with ids or tokens.
    assert!(after.keys().all(|k| !k.contains(&id)), "an id in a label");
}

#[tokio::test]
async fn rate_limit_refusals_are_counted() {
    let app = spawn_with(&[
        ("METRICS_ENABLED", "true"),
        ("METRICS_TOKENS", TOKEN),
        ("RATE_LIMITER_ENABLED", "true"),
        ("RATE_LIMITER_POINTS", "3"),
        ("RATE_LIMITER_DURATION", "60"),
    ])
    .await;
    for _ in 0..5 {
        app.get("/server/info", None).await;
    }
    // The scrape itself is limited too; a refused scrape is a 429.
    let r = read(
        app.client
            .get(app.url("/metrics"))
            .header("authorization", format!("Metrics {TOKEN}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    r.assert_error(429, "REQUESTS_EXCEEDED");
    let text = app.auth.metrics.render(Default::default());
    let m = parse(&text);
    assert!(value(&m, "gatehouse_rate_limited_total{limiter=\"ip\"}") >= 3.0);
    assert!(
        value(
            &m,
            "gatehouse_http_request_duration_seconds_count{method=\"GET\",route=\"/server/info\",status=\"4xx\"}"
        ) >= 2.0
    );
}
