//! Edges of the wire format where Directus 12.4.0 was compared side by side: JWTs whose
//! segments are not base64url (Directus takes them for static tokens, `api/src/utils/is-directus-jwt.ts`)
//! and the request body's media type, charset and JSON errors as Express's `express.json`
//! reads them (`api/src/app.ts`, body-parser 1.20).

use serde_json::{json, Value};

use crate::helpers::*;

const SESSION_COOKIE: &str = "directus_session_token";

/// A login's access token in the given mode (`session` gives the session cookie's value).
async fn token(app: &TestApp, mode: &str) -> String {
    let r = app.login(ADMIN_EMAIL, ADMIN_PASSWORD, mode).await;
    assert_eq!(r.status, 200, "{}", r.text);
    match mode {
        "session" => r.cookie_value(SESSION_COOKIE).expect("session cookie"),
        _ => r.data()["access_token"]
            .as_str()
            .expect("access token")
            .to_string(),
    }
}

/// The token sent three ways: Bearer, `access_token` query, session cookie.
async fn me_with(app: &TestApp, token: &str, way: &str) -> Resp {
    let url = app.url("/users/me");
    let req = match way {
        "bearer" => app.client.get(url).bearer_auth(token),
        "query" => app.client.get(url).query(&[("access_token", token)]),
        _ => app
            .client
            .get(url)
            .header("cookie", format!("{SESSION_COOKIE}={token}")),
    };
    read(req.send().await.expect("request")).await
}

#[tokio::test]
async fn jwts_outside_base64url_are_invalid_credentials() {
    let app = spawn_app().await;
    for (mode, way) in [("json", "bearer"), ("json", "query"), ("session", "cookie")] {
        let t = token(&app, mode).await;
        assert_eq!(me_with(&app, &t, way).await.status, 200, "{way}");
        let parts: Vec<&str> = t.split('.').collect();
        let (h, p, s) = (parts[0], parts[1], parts[2]);
        // Standard-alphabet characters or padding anywhere: not a JWT to Directus, so a
        // static token nobody holds.
        for bad in [
            format!("{t}="),
            format!("{h}.{p}.{}+", &s[..s.len() - 1]),
            format!("{h}.{}/.{s}", &p[..p.len() - 1]),
            format!("{h}=.{p}.{s}"),
            format!("{h}.{p}==.{s}"),
        ] {
            let r = me_with(&app, &bad, way).await;
            r.assert_error(401, "INVALID_CREDENTIALS");
            if way == "cookie" {
                assert!(
                    r.set_cookie(SESSION_COOKIE).is_some(),
                    "the bad cookie is cleared"
                );
            }
        }
        // Well-formed but not verifying: INVALID_TOKEN, as before.
        let flipped = if s.ends_with('A') { "B" } else { "A" };
        let forged = format!("{h}.{p}.{}{flipped}", &s[..s.len() - 1]);
        me_with(&app, &forged, way)
            .await
            .assert_error(403, "INVALID_TOKEN");
        me_with(&app, &format!("{h}.{p}."), way)
            .await
            .assert_error(403, "INVALID_TOKEN");
    }
    // A refresh token is never a JWT: any unknown value is 401.
    for rt in ["abc+/=", "x.y.z="] {
        app.post(
            "/auth/refresh",
            None,
            json!({"refresh_token": rt, "mode": "json"}),
        )
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    }
}

/// Sends a raw body with a content type (None: no header).
async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Resp {
    let mut req = app.client.request(method, app.url(path)).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    read(req.send().await.expect("request")).await
}

#[track_caller]
fn assert_payload(r: &Resp, reason: &str) {
    r.assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(
        r.body["errors"][0]["extensions"]["reason"], reason,
        "{}",
        r.text
    );
    assert_eq!(
        r.body["errors"][0]["message"],
        format!("Invalid payload. {reason}."),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn only_application_json_bodies_are_parsed() {
    let app = spawn_app().await;
    let login = json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).to_string();
    let post = |ct: Option<&'static str>, body: String| {
        let app = &app;
        async move { send(app, reqwest::Method::POST, "/auth/login", None, ct, body).await }
    };
    // application/json in any case, with parameters, even with an empty `+suffix`.
    for ct in [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/json ; charset=\"UTF-8\"",
        "application/json; foo=bar",
        "application/json+",
    ] {
        let r = post(Some(ct), login.clone()).await;
        assert_eq!(r.status, 200, "{ct}: {}", r.text);
    }
    // Anything else is not read: the body is `{}`.
    for ct in [
        Some("application/vnd.api+json"),
        Some("application/merge-patch+json"),
        Some("text/plain"),
        Some("text/json"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=X"),
        Some("application/json;"),
        Some("application/json; charset"),
        Some("application/*"),
        None,
    ] {
        let r = post(ct, login.clone()).await;
        assert_payload(&r, "\"email\" is required");
    }
    assert_payload(
        &post(Some("application/json"), String::new()).await,
        "\"email\" is required",
    );
    // A leading BOM is dropped, as iconv-lite drops it.
    let r = post(Some("application/json"), format!("\u{feff}{login}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Charsets other than utf-*: body-parser's 415 as Directus's 400.
    for (ct, shown) in [
        ("application/json; charset=latin1", "LATIN1"),
        ("application/json; charset=utf8", "UTF8"),
    ] {
        assert_payload(
            &post(Some(ct), login.clone()).await,
            &format!("unsupported charset \"{shown}\""),
        );
    }
}

#[tokio::test]
async fn json_errors_read_as_v8_reports_them() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let cases: &[(&str, &str)] = &[
        ("   ", "Unexpected end of JSON input"),
        (
            "{bad",
            "Expected property name or '}' in JSON at position 1",
        ),
        ("null", "Unexpected token 'n', \"null\" is not valid JSON"),
        (
            "\"str\"",
            "Unexpected token '\"', \"\"str\"\" is not valid JSON",
        ),
        (
            "{\"email\": \"a@b.co\", \"password\": x}",
            "Unexpected token 'x', ...\"assword\": x}\" is not valid JSON",
        ),
        (
            "{\"email\": \"a@b.co\",}",
            "Expected double-quoted property name in JSON at position 19",
        ),
        (
            "{\"a\":1}x",
            "Unexpected non-whitespace character after JSON at position 7",
        ),
    ];
    for (body, reason) in cases {
        for (method, path, token) in [
            (reqwest::Method::POST, "/auth/login", None),
            (reqwest::Method::PATCH, "/users/me", Some(admin.as_str())),
        ] {
            let r = send(
                &app,
                method,
                path,
                token,
                Some("application/json"),
                body.to_string(),
            )
            .await;
            assert_payload(&r, reason);
        }
    }
    // Invalid UTF-8 is read as U+FFFD, as iconv-lite decodes it.
    let mut bytes = br#"{"first_name": "A"}"#.to_vec();
    bytes.push(0xff);
    let r = send(
        &app,
        reqwest::Method::PATCH,
        "/users/me",
        Some(&admin),
        Some("application/json"),
        bytes,
    )
    .await;
    assert_payload(
        &r,
        "Unexpected non-whitespace character after JSON at position 19",
    );
    // A profile write with a body that is not JSON changes nothing and answers the profile.
    let r = send(
        &app,
        reqwest::Method::PATCH,
        "/users/me",
        Some(&admin),
        Some("text/plain"),
        r#"{"first_name": "Changed"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_ne!(r.data()["first_name"], "Changed");
    let r = send(
        &app,
        reqwest::Method::PATCH,
        "/users/me",
        Some(&admin),
        Some("application/json; charset=latin1"),
        r#"{"first_name": "Changed"}"#,
    )
    .await;
    assert_payload(&r, "unsupported charset \"LATIN1\"");
    let me = app.get("/users/me", Some(&admin)).await;
    assert_ne!(me.data()["first_name"], Value::from("Changed"));
}
