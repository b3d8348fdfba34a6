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

#[tokio::test]
async fn login_bodies_have_a_smaller_limit_than_other_routes() {
    let app = spawn_app().await;
    let big = "x".repeat(100 << 10);
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
    // The general MAX_PAYLOAD_SIZE (1mb) still applies elsewhere: a 100 KiB profile update
    // (each text field holds at most 64 KiB).
    let token = app.admin_token().await;
    let (description, tag) = ("d".repeat(60_000), "t".repeat(45_000));
    let body = json!({"description": description, "tags": [tag]});
    assert!(body.to_string().len() > 100 << 10);
    let r = app.patch("/users/me", Some(&token), body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data()["description"], description);
    assert_eq!(r.data()["tags"], json!([tag]));
}

#[tokio::test]
async fn undecodable_item_ids_answer_in_the_envelope() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    for (method, path) in [
        (reqwest::Method::GET, "/users/%FF"),
        (reqwest::Method::PATCH, "/roles/%C3%28"),
        (reqwest::Method::DELETE, "/policies/%FF%FE"),
    ] {
        let r = app
            .request(method.clone(), path, Some(&token), Some(json!({})), None)
            .await;
        r.assert_error(403, "FORBIDDEN");
        assert_eq!(
            r.headers["content-type"], "application/json; charset=utf-8",
            "{method} {path}"
        );
        // As an unknown id is answered.
        let unknown = path.split('%').next().unwrap().to_string() + "nope";
        let u = app
            .request(method, &unknown, Some(&token), Some(json!({})), None)
            .await;
        assert_eq!((u.status, u.code()), (r.status, r.code()), "{unknown}");
    }
    app.get("/users/%FF", None)
        .await
        .assert_error(403, "FORBIDDEN");
}

#[tokio::test]
async fn request_ids_are_echoed_only_when_short_and_safe() {
    let app = spawn_app().await;
    let send = |id: Vec<u8>| {
        let req = app.client.get(app.url("/server/ping")).header(
            "x-request-id",
            reqwest::header::HeaderValue::from_bytes(&id).unwrap(),
        );
        async move { req.send().await.unwrap().headers()["x-request-id"].clone() }
    };
    let safe = "Trace-1.a:b_c-0123456789abcdef0123456789abcdef0123456789abcdef01";
    assert_eq!(safe.len(), 64);
    assert_eq!(send(safe.into()).await, safe);
    for bad in [
        "x".repeat(65).into_bytes(),
        b"id with spaces".to_vec(),
        b"id\"}{injected".to_vec(),
        b"caf\xc3\xa9".to_vec(),
        b"a/b".to_vec(),
    ] {
        let echoed = send(bad.clone()).await;
        assert_ne!(echoed.as_bytes(), bad.as_slice());
        // A fresh id instead (a UUID).
        let fresh = echoed.to_str().unwrap();
        assert!(uuid::Uuid::parse_str(fresh).is_ok(), "{fresh}");
    }
}

#[tokio::test]
async fn private_answers_are_not_stored_or_sniffed() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let assert_private = |r: &Resp, what: &str| {
        assert_eq!(r.headers["cache-control"], "no-store", "{what}");
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{what}");
    };
    // /auth*: also Directus's Vary, on answers and errors alike.
    let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD, "json").await;
    let failed = app.login(ADMIN_EMAIL, "wrong-password", "json").await;
    let providers = app.get("/auth", None).await;
    for (r, what) in [
        (&login, "login"),
        (&failed, "failed login"),
        (&providers, "GET /auth"),
    ] {
        assert_private(r, what);
        assert_eq!(r.headers["vary"], "Origin, Cache-Control", "{what}");
    }
    // /users*, including the token check's own error.
    assert_private(&app.get("/users/me", Some(&token)).await, "/users/me");
    assert_private(&app.get("/users", Some(&token)).await, "/users");
    let bad = app.get("/users/me", Some("not-a-token")).await;
    bad.assert_error(401, "INVALID_CREDENTIALS");
    assert_private(&bad, "/users/me with a bad token");
    // The admin routes.
    for path in ["/roles", "/policies", "/settings"] {
        let r = app.get(path, Some(&token)).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_private(&r, path);
    }
    let r = app.post("/permissions", Some(&token), json!({})).await;
    assert_private(&r, "/permissions");
    // Public operational routes keep their own headers.
    let ping = app.get("/server/ping", None).await;
    assert!(ping.headers.get("x-content-type-options").is_none());
    assert!(ping.headers.get("cache-control").is_none());
}
