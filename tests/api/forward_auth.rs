//! Forward-auth (`GET|HEAD /auth/verify`, src/http/forward_auth.rs): what a reverse proxy asks
//! about each request it is about to pass on, and the identity headers it passes on.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

/// `/auth/verify` as a proxy calls it: the client's headers, plus the forwarded URI.
async fn verify(app: &TestApp, headers: &[(&str, &str)]) -> Resp {
    verify_with(app, Method::GET, headers).await
}

async fn verify_with(app: &TestApp, method: Method, headers: &[(&str, &str)]) -> Resp {
    let mut req = app.client.request(method, app.url("/auth/verify"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    read(req.send().await.expect("verify")).await
}

fn header<'a>(r: &'a Resp, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

#[track_caller]
fn assert_identity(r: &Resp, id: &str, email: &str, admin: bool) {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(header(r, "x-gatehouse-user-id"), Some(id));
    assert_eq!(header(r, "x-gatehouse-email"), Some(email));
    assert_eq!(
        header(r, "x-gatehouse-admin-access"),
        Some(if admin { "true" } else { "false" })
    );
    assert_eq!(header(r, "x-gatehouse-app-access"), Some("true"));
    assert!(header(r, "x-gatehouse-role").is_some_and(|r| r.len() == 36));
    assert!(r.text.is_empty(), "empty body: {}", r.text);
}

async fn user_id(app: &TestApp, email: &str) -> String {
    app.auth.find_user_by_email(email).await.unwrap().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn every_way_of_carrying_a_token_gets_the_identity_headers() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let admin_id = user_id(&app, ADMIN_EMAIL).await;

    let bearer = format!("Bearer {admin}");
    assert_identity(
        &verify(&app, &[("authorization", &bearer)]).await,
        &admin_id,
        ADMIN_EMAIL,
        true,
    );
    // HEAD (Caddy and Traefik may use it): the same headers, no body.
    let head = verify_with(&app, Method::HEAD, &[("authorization", &bearer)]).await;
    assert_identity(&head, &admin_id, ADMIN_EMAIL, true);

    // The access_token query parameter of the forwarded URI, as Traefik/Caddy and nginx send it.
    let uri = format!("/app/page?x=1&access_token={admin}");
    for name in ["x-forwarded-uri", "x-original-uri"] {
        assert_identity(
            &verify(&app, &[(name, &uri)]).await,
            &admin_id,
            ADMIN_EMAIL,
            true,
        );
    }
    // Both a query token and a header: the 400 every route answers.
    verify(
        &app,
        &[("x-forwarded-uri", &uri), ("authorization", &bearer)],
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");

    // A session cookie; after a logout it fails at once.
    let id = app.app_user("fa@example.com", "user-password").await;
    let login = app
        .login("fa@example.com", "user-password", "session")
        .await;
    let cookie = format!(
        "directus_session_token={}",
        login.cookie_value("directus_session_token").unwrap()
    );
    assert_identity(
        &verify(&app, &[("cookie", &cookie)]).await,
        &id,
        "fa@example.com",
        false,
    );
    let out = app
        .request(
            Method::POST,
            "/auth/logout",
            None,
            Some(json!({"mode": "session"})),
            Some(&cookie),
        )
        .await;
    assert_eq!(out.status, 204, "{}", out.text);
    verify(&app, &[("cookie", &cookie)])
        .await
        .assert_error(401, "INVALID_CREDENTIALS");

    // A static token.
    app.patch(
        &format!("/users/{id}"),
        Some(&admin),
        json!({"token": "forward-auth-static-token"}),
    )
    .await;
    assert_identity(
        &verify(
            &app,
            &[("authorization", "Bearer forward-auth-static-token")],
        )
        .await,
        &id,
        "fa@example.com",
        false,
    );
}

#[tokio::test]
async fn missing_expired_and_forged_tokens_are_refused_without_identity() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let none = verify(&app, &[("x-forwarded-uri", "/app")]).await;
    none.assert_error(401, "INVALID_CREDENTIALS");
    assert!(header(&none, "x-gatehouse-user-id").is_none());

    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[2] = "AAAA".into();
    verify(
        &app,
        &[("authorization", &format!("Bearer {}", parts.join(".")))],
    )
    .await
    .assert_error(403, "INVALID_TOKEN");
    verify(
        &app,
        &[("authorization", "Bearer not-a-known-static-token")],
    )
    .await
    .assert_error(401, "INVALID_CREDENTIALS");
    // NUL bytes and an over-long forwarded URI.
    verify(&app, &[("x-forwarded-uri", "/a?access_token=ab%00cd")])
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    let long = format!("/{}", "a".repeat(9000));
    verify(&app, &[("x-forwarded-uri", &long)])
        .await
        .assert_error(400, "INVALID_PAYLOAD");

    app.advance(Duration::from_secs(900));
    verify(&app, &[("authorization", &format!("Bearer {token}"))])
        .await
        .assert_error(401, "TOKEN_EXPIRED");
}

#[tokio::test]
async fn public_paths_pass_without_identity_and_cannot_be_escaped() {
    let app = spawn_with(&[("FORWARD_AUTH_PUBLIC_PATHS", "/public,/assets/")]).await;
    let token = app.admin_token().await;
    for path in ["/public", "/public/page?x=1", "/assets/site.css"] {
        let r = verify(&app, &[("x-forwarded-uri", path)]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(header(&r, "x-gatehouse-role"), Some("public"), "{path}");
        // Present and empty, so a proxy copying them overwrites what a client sent.
        assert_eq!(header(&r, "x-gatehouse-user-id"), Some(""), "{path}");
        assert_eq!(header(&r, "x-gatehouse-email"), Some(""), "{path}");
        assert_eq!(
            header(&r, "x-gatehouse-admin-access"),
            Some("false"),
            "{path}"
        );
    }
    // A bad token on a public path is still the public.
    let r = verify(
        &app,
        &[
            ("x-forwarded-uri", "/public"),
            ("authorization", "Bearer nope"),
        ],
    )
    .await;
    assert_eq!(header(&r, "x-gatehouse-role"), Some("public"));
    // A good one is the user.
    let r = verify(
        &app,
        &[
            ("x-forwarded-uri", "/public"),
            ("authorization", &format!("Bearer {token}")),
        ],
    )
    .await;
    assert_eq!(header(&r, "x-gatehouse-admin-access"), Some("true"));
    for path in [
        "/publicity",
        "/assets",
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public%2f..%2fadmin",
        "/public/..%5cadmin",
        "/public;/../admin",
    ] {
        verify(&app, &[("x-forwarded-uri", path)])
            .await
            .assert_error(401, "INVALID_CREDENTIALS");
    }
}

#[tokio::test]
async fn a_suspension_and_a_demotion_reach_forward_auth() {
    let app = spawn_with(&[("FORWARD_AUTH_HEADER_PREFIX", "Remote-")]).await;
    let admin = app.admin_token().await;
    let id = app.app_user("demoted@example.com", "user-password").await;
    let login = app
        .login("demoted@example.com", "user-password", "json")
        .await;
    let bearer = format!("Bearer {}", login.data()["access_token"].as_str().unwrap());
    let r = verify(&app, &[("authorization", &bearer)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(header(&r, "remote-user-id"), Some(id.as_str()));
    assert_eq!(header(&r, "remote-app-access"), Some("true"));
    assert!(header(&r, "x-gatehouse-user-id").is_none());

    let plain = app.create_role(&admin, "no-app", false, false).await;
    let p = app
        .patch(
            &format!("/users/{id}"),
            Some(&admin),
            json!({"role": plain}),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    let r = verify(&app, &[("authorization", &bearer)]).await;
    assert_eq!(header(&r, "remote-role"), Some(plain.as_str()));
    assert_eq!(header(&r, "remote-app-access"), Some("false"));

    let s = app
        .patch(
            &format!("/users/{id}"),
            Some(&admin),
            json!({"status": "suspended"}),
        )
        .await;
    assert_eq!(s.status, 200, "{}", s.text);
    verify(&app, &[("authorization", &bearer)])
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn a_logout_on_one_node_reaches_the_others_within_the_cache_ttl() {
    let nodes = spawn_nodes(2, &[("GATEHOUSE_USER_CACHE_TTL", "300ms")]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    a.app_user("nodes@example.com", "user-password").await;
    let login = a
        .login("nodes@example.com", "user-password", "session")
        .await;
    let cookie = format!(
        "directus_session_token={}",
        login.cookie_value("directus_session_token").unwrap()
    );
    // Node b reads (and caches) the session row.
    assert_eq!(verify(b, &[("cookie", &cookie)]).await.status, 200);
    let out = a
        .request(
            Method::POST,
            "/auth/logout",
            None,
            Some(json!({"mode": "session"})),
            Some(&cookie),
        )
        .await;
    assert_eq!(out.status, 204, "{}", out.text);
    verify(a, &[("cookie", &cookie)])
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    // Past the TTL, b reads the database again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    verify(b, &[("cookie", &cookie)])
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
}

/// Found by e2e/forward-auth.mjs behind nginx: nginx sets `X-Original-URI` and passes the
/// client's other headers on, so a client's own `X-Forwarded-Uri: /public/x` (read first) made
/// a protected path pass as public. Headers that disagree are now refused, whoever sent which.
#[tokio::test]
async fn forwarded_uri_headers_that_disagree_are_refused() {
    let app = spawn_with(&[("FORWARD_AUTH_PUBLIC_PATHS", "/public")]).await;
    let token = app.admin_token().await;
    // The proxy's header names a protected path; the client's own copy of the other, a public one.
    for (proxy, client) in [
        ("x-original-uri", "x-forwarded-uri"),
        ("x-forwarded-uri", "x-original-uri"),
    ] {
        let r = verify(&app, &[(proxy, "/app/secret"), (client, "/public/x")]).await;
        r.assert_error(400, "INVALID_PAYLOAD");
        assert_eq!(header(&r, "x-gatehouse-role"), None);
        // Nor can a client's copy bring in a token the real URI does not carry.
        let uri = format!("/app?access_token={token}");
        verify(&app, &[(proxy, "/app"), (client, &uri)])
            .await
            .assert_error(400, "INVALID_PAYLOAD");
    }
    // The same header twice with two values: refused too.
    let mut req = app.client.get(app.url("/auth/verify"));
    req = req
        .header("x-original-uri", "/app/secret")
        .header("x-original-uri", "/public/x");
    read(req.send().await.unwrap())
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    // Both present and equal (the nginx example sets both): as one.
    let r = verify(
        &app,
        &[
            ("x-original-uri", "/public/x"),
            ("x-forwarded-uri", "/public/x"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(header(&r, "x-gatehouse-role"), Some("public"));
    let uri = format!("/app?access_token={token}");
    let r = verify(&app, &[("x-original-uri", &uri), ("x-forwarded-uri", &uri)]).await;
    assert_eq!(header(&r, "x-gatehouse-admin-access"), Some("true"));
    verify(
        &app,
        &[
            ("x-original-uri", "/app/secret"),
            ("x-forwarded-uri", "/app/secret"),
        ],
    )
    .await
    .assert_error(401, "INVALID_CREDENTIALS");
}
