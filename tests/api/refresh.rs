//! POST /auth/refresh and /auth/logout: mode inference, rotation with a grace window in
//! every mode, concurrency, reuse detection and cookie clearing.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

async fn json_login(app: &TestApp) -> (String, String) {
    let r = app.login(ADMIN_EMAIL, ADMIN_PASSWORD, "json").await;
    (
        r.data()["access_token"].as_str().unwrap().to_string(),
        r.data()["refresh_token"].as_str().unwrap().to_string(),
    )
}

async fn admin_id(app: &TestApp) -> String {
    let user = app
        .auth
        .find_user_by_email(ADMIN_EMAIL)
        .await
        .unwrap()
        .unwrap();
    user["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn json_refresh_rotates_the_token() {
    let app = spawn_app().await;
    let (_, rt) = json_login(&app).await;
    let r = app
        .post("/auth/refresh", None, json!({"refresh_token": rt}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let next = r.data()["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(next, rt);
    assert_eq!(next.len(), 64);
    assert_eq!(r.data()["expires"], 900_000);
    let me = app
        .get("/users/me", r.data()["access_token"].as_str())
        .await;
    assert_eq!(me.status, 200);
    // The successor refreshes too.
    assert_eq!(
        app.post(
            "/auth/refresh",
            None,
            json!({"refresh_token": next, "mode": "json"})
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn mode_is_inferred_and_a_missing_token_is_invalid_payload() {
    let app = spawn_app().await;
    let r = app.post("/auth/refresh", None, json!({})).await;
    r.assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(
        r.body["errors"][0]["message"],
        "Invalid payload. The refresh token is required in either the payload or cookie."
    );
    app.post("/auth/refresh", None, json!({"mode": "json"}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    app.post(
        "/auth/refresh",
        None,
        json!({"mode": "bogus", "refresh_token": "x"}),
    )
    .await
    .assert_error(400, "INVALID_PAYLOAD");
    app.post(
        "/auth/refresh",
        None,
        json!({"refresh_token": "not-a-session"}),
    )
    .await
    .assert_error(401, "INVALID_CREDENTIALS");
    app.post("/auth/logout", None, json!({}))
        .await
        .assert_error(400, "INVALID_PAYLOAD");
}

#[tokio::test]
async fn cookie_mode_refresh_reads_and_sets_the_cookie() {
    let app = spawn_app().await;
    let browser = app.browser();
    let r = browser.login(ADMIN_EMAIL, ADMIN_PASSWORD, "cookie").await;
    let rt = r.cookie_value("directus_refresh_token").unwrap();
    // No body: the mode is inferred as cookie, which the browser sends back.
    let r = browser.post("/auth/refresh", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.data()["access_token"].is_string());
    assert!(r.data().get("refresh_token").is_none());
    let next = r.cookie_value("directus_refresh_token").unwrap();
    assert_ne!(next, rt);
    assert_eq!(browser.cookie("directus_refresh_token"), Some(next));
}

#[tokio::test]
async fn session_mode_refresh_issues_a_new_session_cookie() {
    let app = spawn_app().await;
    let browser = app.browser();
    let r = browser.login(ADMIN_EMAIL, ADMIN_PASSWORD, "session").await;
    let jwt = r.cookie_value("directus_session_token").unwrap();
    let cookie = format!("directus_session_token={jwt}");
    let r = browser
        .post("/auth/refresh", json!({"mode": "session"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data(), &json!({"expires": 86_400_000}));
    let next = r.cookie_value("directus_session_token").unwrap();
    assert_ne!(next, jwt);
    assert_eq!(browser.cookie("directus_session_token"), Some(next));
    let me = browser.get("/users/me").await;
    assert_eq!(me.status, 200);
    // The old session JWT works during the grace window, then fails and is cleared.
    let me = app
        .request(reqwest::Method::GET, "/users/me", None, None, Some(&cookie))
        .await;
    assert_eq!(me.status, 200);
    app.advance(Duration::from_secs(11));
    let me = app
        .request(reqwest::Method::GET, "/users/me", None, None, Some(&cookie))
        .await;
    me.assert_error(401, "INVALID_CREDENTIALS");
    let cleared = me
        .set_cookie("directus_session_token")
        .expect("cookie cleared");
    assert!(
        cleared.starts_with("directus_session_token=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
}

#[tokio::test]
async fn a_refresh_inside_the_grace_window_gets_the_same_successor() {
    for mode in ["json", "cookie"] {
        let app = spawn_app().await;
        let r = app.login(ADMIN_EMAIL, ADMIN_PASSWORD, mode).await;
        let (rt, send) = match mode {
            "json" => (
                r.data()["refresh_token"].as_str().unwrap().to_string(),
                true,
            ),
            _ => (r.cookie_value("directus_refresh_token").unwrap(), false),
        };
        let refresh = || async {
            let r = if send {
                app.post("/auth/refresh", None, json!({"refresh_token": rt}))
                    .await
            } else {
                app.post_with_cookie(
                    "/auth/refresh",
                    &format!("directus_refresh_token={rt}"),
                    json!({}),
                )
                .await
            };
            assert_eq!(r.status, 200, "{mode}: {}", r.text);
            if send {
                r.data()["refresh_token"].as_str().unwrap().to_string()
            } else {
                r.cookie_value("directus_refresh_token").unwrap()
            }
        };
        let a = refresh().await;
        app.advance(Duration::from_secs(5));
        let b = refresh().await;
        assert_eq!(a, b, "{mode}: same successor inside the grace window");
    }
}

#[tokio::test]
async fn fifty_concurrent_refreshes_produce_one_successor() {
    let app = spawn_app().await;
    let (_, rt) = json_login(&app).await;
    let user = admin_id(&app).await;
    assert_eq!(app.session_count(&user).await, 1);
    let calls = (0..50).map(|_| app.post("/auth/refresh", None, json!({"refresh_token": rt})));
    let results = futures::future::join_all(calls).await;
    let mut successors = std::collections::HashSet::new();
    for r in &results {
        assert_eq!(r.status, 200, "{}", r.text);
        successors.insert(r.data()["refresh_token"].as_str().unwrap().to_string());
    }
    assert_eq!(successors.len(), 1, "exactly one successor");
    // The old row (in its grace window) and the one successor; nothing else.
    assert_eq!(app.session_count(&user).await, 2);
}

#[tokio::test]
async fn a_token_replayed_after_its_grace_window_ends_its_chain() {
    let app = spawn_app().await;
    let (_, first) = json_login(&app).await;
    let (_, other_login) = json_login(&app).await;
    let user = admin_id(&app).await;
    let second = app
        .post("/auth/refresh", None, json!({"refresh_token": first}))
        .await
        .data()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let third = app
        .post("/auth/refresh", None, json!({"refresh_token": second}))
        .await
        .data()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    app.advance(Duration::from_secs(11));
    // The stolen first token comes back after the window: refused, and the chain ends.
    app.post("/auth/refresh", None, json!({"refresh_token": first}))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    app.post("/auth/refresh", None, json!({"refresh_token": third}))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    // Another login of the same user is a different family and survives.
    let r = app
        .post("/auth/refresh", None, json!({"refresh_token": other_login}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        app.session_count(&user).await,
        2,
        "the other family: grace row + successor"
    );
}

#[tokio::test]
async fn logout_ends_the_session_and_clears_cookies() {
    let app = spawn_app().await;
    let (_, rt) = json_login(&app).await;
    let r = app
        .post("/auth/logout", None, json!({"refresh_token": rt}))
        .await;
    assert_eq!(r.status, 204);
    assert!(r.text.is_empty());
    app.post("/auth/refresh", None, json!({"refresh_token": rt}))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    // Unknown tokens are ignored.
    assert_eq!(
        app.post("/auth/logout", None, json!({"refresh_token": "unknown"}))
            .await
            .status,
        204
    );

    let browser = app.browser();
    let r = browser.login(ADMIN_EMAIL, ADMIN_PASSWORD, "cookie").await;
    let rt = r.cookie_value("directus_refresh_token").unwrap();
    let r = browser.post("/auth/logout", json!({})).await;
    assert_eq!(r.status, 204);
    let c = r.set_cookie("directus_refresh_token").expect("cleared");
    assert!(
        c.starts_with("directus_refresh_token=;")
            && c.contains("Max-Age=0")
            && c.contains("Expires=Thu, 01 Jan 1970"),
        "{c}"
    );
    assert_eq!(
        browser.cookie("directus_refresh_token"),
        None,
        "gone from the jar"
    );
    // A client that kept the old value is still refused.
    app.post_with_cookie(
        "/auth/refresh",
        &format!("directus_refresh_token={rt}"),
        json!({}),
    )
    .await
    .assert_error(401, "INVALID_CREDENTIALS");

    let r = browser.login(ADMIN_EMAIL, ADMIN_PASSWORD, "session").await;
    let cookie = format!(
        "directus_session_token={}",
        r.cookie_value("directus_session_token").unwrap()
    );
    let r = browser
        .post("/auth/logout", json!({"mode": "session"}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r
        .set_cookie("directus_session_token")
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(browser.cookie("directus_session_token"), None);
    let me = app
        .request(reqwest::Method::GET, "/users/me", None, None, Some(&cookie))
        .await;
    me.assert_error(401, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn logout_inside_the_grace_window_also_ends_the_successor() {
    let app = spawn_app().await;
    let (_, rt) = json_login(&app).await;
    let next = app
        .post("/auth/refresh", None, json!({"refresh_token": rt}))
        .await
        .data()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        app.post("/auth/logout", None, json!({"refresh_token": rt}))
            .await
            .status,
        204
    );
    app.post("/auth/refresh", None, json!({"refresh_token": next}))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn refresh_of_a_suspended_user_is_user_suspended() {
    let app = spawn_app().await;
    let id = app.app_user("s@example.com", "user-password").await;
    let rt = app
        .login("s@example.com", "user-password", "json")
        .await
        .data()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut patch = serde_json::Map::new();
    patch.insert("status".into(), json!("suspended"));
    app.auth
        .store
        .items
        .item_update(&gatehouse::store::USERS, &json!(id), &patch)
        .await
        .unwrap();
    app.post("/auth/refresh", None, json!({"refresh_token": rt}))
        .await
        .assert_error(401, "USER_SUSPENDED");
    // The session row was deleted on the way.
    assert_eq!(app.session_count(&id).await, 0);
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused() {
    let app = spawn_with(&[("REFRESH_TOKEN_TTL", "1h")]).await;
    let (_, rt) = json_login(&app).await;
    app.advance(Duration::from_secs(3601));
    app.post("/auth/refresh", None, json!({"refresh_token": rt}))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn concurrent_refreshes_across_two_nodes_agree() {
    let nodes = spawn_nodes(2, &[]).await;
    let (_, rt) = json_login(&nodes[0]).await;
    let user = admin_id(&nodes[0]).await;
    let calls =
        (0..40).map(|i| nodes[i % 2].post("/auth/refresh", None, json!({"refresh_token": rt})));
    let results = futures::future::join_all(calls).await;
    let successors: std::collections::HashSet<String> = results
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.text);
            r.data()["refresh_token"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        successors.len(),
        1,
        "both nodes hand out the same successor"
    );
    assert_eq!(nodes[1].session_count(&user).await, 2);
}

#[tokio::test]
async fn request_text_in_a_rotation_is_stored_verbatim() {
    let app = spawn_app().await;
    let (_, rt) = json_login(&app).await;
    let ua = r#"it's '); DROP TABLE "directus_users"; -- ''"#;
    let r = read(
        app.client
            .post(app.url("/auth/refresh"))
            .header("user-agent", ua)
            .header("origin", "https://o'rigin.example")
            .json(&json!({"refresh_token": rt}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let next = r.data()["refresh_token"].as_str().unwrap();
    let row = app
        .auth
        .store
        .sessions
        .session_get(next)
        .await
        .unwrap()
        .expect("successor row");
    assert_eq!(row.user_agent.as_deref(), Some(ua));
    assert_eq!(row.origin.as_deref(), Some("https://o'rigin.example"));
    // The users table is, of course, still there.
    assert_eq!(
        app.login(ADMIN_EMAIL, ADMIN_PASSWORD, "json").await.status,
        200
    );
}

#[tokio::test]
async fn a_zero_grace_period_still_refreshes_once() {
    let app = spawn_with(&[("SESSION_REFRESH_GRACE_PERIOD", "0")]).await;
    for mode in ["json", "session"] {
        let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD, mode).await;
        let (body, cookie) = if mode == "json" {
            let rt = login.data()["refresh_token"].as_str().unwrap().to_string();
            (json!({"refresh_token": rt, "mode": "json"}), None)
        } else {
            let c = login.cookie_value("directus_session_token").unwrap();
            (
                json!({"mode": "session"}),
                Some(format!("directus_session_token={c}")),
            )
        };
        let first = app
            .request(
                reqwest::Method::POST,
                "/auth/refresh",
                None,
                Some(body.clone()),
                cookie.as_deref(),
            )
            .await;
        assert_eq!(first.status, 200, "{mode}: {}", first.text);
        app.advance(Duration::from_millis(5));
        app.request(
            reqwest::Method::POST,
            "/auth/refresh",
            None,
            Some(body),
            cookie.as_deref(),
        )
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    }
}
