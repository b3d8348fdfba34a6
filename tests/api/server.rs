//! /server/*, unknown routes and request limits.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn ping_is_public_and_runs_before_the_token_check() {
    let app = spawn_app().await;
    let r = app.get("/server/ping", Some("definitely-not-valid")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text, "pong");
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}

#[tokio::test]
async fn health_short_for_the_public_detailed_for_admins() {
    let app = spawn_app().await;
    let r = app.get("/server/health", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"status": "ok"}));
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/health+json"));
    let token = app.admin_token().await;
    let r = app.get("/server/health", Some(&token)).await;
    assert_eq!(r.body["status"], "ok");
    let checks = r.body["checks"].as_object().unwrap();
    let (name, check) = checks.iter().next().unwrap();
    assert!(name.ends_with(":responseTime"), "{name}");
    assert_eq!(check[0]["componentType"], "datastore");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_route_not_found() {
    let app = spawn_app().await;
    let r = app.get("/nope/here", None).await;
    r.assert_error(404, "ROUTE_NOT_FOUND");
    assert_eq!(
        r.body["errors"][0]["message"],
        "Route /nope/here doesn't exist."
    );
    app.get("/auth/login", None)
        .await
        .assert_error(404, "ROUTE_NOT_FOUND");
    // A bad token is checked before the 404, as in Directus.
    app.get("/nope", Some("bad-static"))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn bodies_over_the_limit_are_rejected() {
    let app = spawn_with(&[("MAX_PAYLOAD_SIZE", "1kb")]).await;
    let big = "x".repeat(4096);
    let r = app
        .post(
            "/auth/login",
            None,
            json!({"email": ADMIN_EMAIL, "password": big}),
        )
        .await;
    r.assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(
        r.body["errors"][0]["extensions"]["reason"],
        "request entity too large"
    );
    // Under the limit still works.
    assert_eq!(
        app.login(ADMIN_EMAIL, ADMIN_PASSWORD, "json").await.status,
        200
    );
}

#[tokio::test]
async fn a_generated_secret_is_kept_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut vars = base_vars(dir.path());
    vars.retain(|(k, _)| k != "SECRET");
    let build = |vars: Vec<(String, String)>| async move {
        let config = gatehouse::config::Config::from_vars(
            &gatehouse::config::Vars::from_pairs(vars).unwrap(),
        )
        .unwrap();
        gatehouse::app::init(config, std::sync::Arc::new(gatehouse::clock::SystemClock))
            .await
            .unwrap()
    };
    let a = build(vars.clone()).await;
    a.bootstrap().await.unwrap();
    let user = a.find_user_by_email(ADMIN_EMAIL).await.unwrap().unwrap();
    let claims = gatehouse::tokens::AccessClaims {
        id: user["id"].as_str().unwrap().parse().unwrap(),
        role: None,
        app_access: false,
        admin_access: false,
        enforce_tfa: None,
        session: None,
        iat: chrono::Utc::now().timestamp(),
        exp: chrono::Utc::now().timestamp() + 60,
        iss: "directus".into(),
    };
    let jwt = a.tokens.sign(&claims).unwrap();
    // A second process on the same database (a restart, another node) verifies it.
    let b = build(vars).await;
    assert_eq!(
        b.tokens.verify(&jwt, chrono::Utc::now()).unwrap().id,
        claims.id
    );
}
