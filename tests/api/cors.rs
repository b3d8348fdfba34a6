//! CORS (`CORS_*`) and `OPTIONS`, as Directus 12.4.0 answered them side by side: the `cors`
//! package's preflights and headers when enabled, Express's `Allow` answer when not.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

const APP: &str = "http://app.example.com:3000";
const OTHER: &str = "http://other.example.com:3000";

const ACAO: &str = "access-control-allow-origin";
const ACAC: &str = "access-control-allow-credentials";
const ACAM: &str = "access-control-allow-methods";
const ACAH: &str = "access-control-allow-headers";
const ACEH: &str = "access-control-expose-headers";
const ACMA: &str = "access-control-max-age";

/// One request with extra headers (and a JSON body).
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> Resp {
    let mut req = app.client.request(method, app.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    read(req.send().await.unwrap()).await
}

/// A browser's preflight for `method` from `origin` (none when `None`).
async fn preflight(app: &TestApp, path: &str, origin: Option<&str>, method: &str) -> Resp {
    let mut headers = vec![
        ("access-control-request-method", method),
        (
            "access-control-request-headers",
            "content-type,authorization",
        ),
    ];
    if let Some(o) = origin {
        headers.push(("origin", o));
    }
    send(app, Method::OPTIONS, path, &headers, None).await
}

/// A header's value, `None` when absent.
fn h<'a>(r: &'a Resp, name: &str) -> Option<&'a str> {
    r.headers.get(name).map(|v| v.to_str().unwrap())
}

fn cors_on(origin: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CORS_ENABLED", "true".into()),
        ("CORS_ORIGIN", origin.to_string()),
    ]
}

async fn spawn_cors(extra: &[(&'static str, String)]) -> TestApp {
    let pairs: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spawn_with(&pairs).await
}

/// With CORS off no answer carries a CORS header, and `OPTIONS` is Express's.
fn assert_no_cors(r: &Resp) {
    for name in [ACAO, ACAC, ACAM, ACAH, ACEH, ACMA] {
        assert_eq!(
            h(r, name),
            None,
            "{name} on a CORS-off answer: {:?}",
            r.headers
        );
    }
}

#[tokio::test]
async fn options_on_an_existing_route_answers_allow_when_cors_is_off() {
    // Express's router answers `OPTIONS` itself for a path it has routes for: 200, `Allow`,
    // and the same list as the body. Directus sends the methods it routes there; gatehouse
    // the ones it serves.
    let app = spawn_app().await;
    for (path, allow) in [
        ("/auth/login", "POST"),
        ("/auth", "GET,HEAD"),
        ("/users/me", "GET,HEAD,PATCH"),
        ("/settings", "GET,HEAD,PATCH"),
        ("/server/health", "GET,HEAD"),
        (
            "/users/4b1d7f1e-0d5c-4a59-9b5e-6a4c1a9f0c11",
            "GET,HEAD,PATCH,DELETE",
        ),
    ] {
        let r = send(&app, Method::OPTIONS, path, &[], None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(h(&r, "allow"), Some(allow), "{path}");
        assert_eq!(r.text, allow, "{path}");
        assert_eq!(
            h(&r, "content-type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
        assert_no_cors(&r);
        // A browser's preflight gets the same answer: no CORS headers, so it is refused.
        let r = preflight(&app, path, Some(APP), "POST").await;
        assert_eq!((r.status, h(&r, "allow")), (200, Some(allow)), "{path}");
        assert_no_cors(&r);
    }
    // `/users` lists what gatehouse routes there (Directus adds SEARCH and batch methods).
    let r = send(&app, Method::OPTIONS, "/users", &[], None).await;
    let allow: Vec<&str> = h(&r, "allow").unwrap().split(',').collect();
    for m in ["GET", "HEAD", "POST"] {
        assert!(allow.contains(&m), "{allow:?}");
    }
}

#[tokio::test]
async fn options_elsewhere_is_directus_s_404() {
    let app = spawn_app().await;
    // An unknown route.
    send(&app, Method::OPTIONS, "/nope", &[], None)
        .await
        .assert_error(404, "ROUTE_NOT_FOUND");
    // Directus serves ping on the app, outside any router: no automatic OPTIONS answer.
    let r = send(&app, Method::OPTIONS, "/server/ping", &[], None).await;
    r.assert_error(404, "ROUTE_NOT_FOUND");
    assert_eq!(h(&r, "allow"), None);
    // The token is checked first, as in Directus.
    let r = send(
        &app,
        Method::OPTIONS,
        "/users/me",
        &[("authorization", "Bearer not-a-token")],
        None,
    )
    .await;
    r.assert_error(401, "INVALID_CREDENTIALS");
    assert_eq!(h(&r, "allow"), None);
    // Other methods a route does not serve stay 404, with no `Allow`.
    let r = send(&app, Method::DELETE, "/auth/login", &[], None).await;
    r.assert_error(404, "ROUTE_NOT_FOUND");
    assert_eq!(h(&r, "allow"), None);
    let r = send(&app, Method::POST, "/server/ping", &[], None).await;
    r.assert_error(404, "ROUTE_NOT_FOUND");
}

#[tokio::test]
async fn cors_is_off_by_default_and_with_origin_false() {
    for extra in [
        vec![],
        vec![("CORS_ENABLED", "true".to_string())],
        cors_on("false"),
        // CORS_ORIGIN alone does not turn it on.
        vec![("CORS_ORIGIN", "true".to_string())],
    ] {
        let app = spawn_cors(&extra).await;
        let r = send(&app, Method::GET, "/server/ping", &[("origin", APP)], None).await;
        assert_eq!(r.status, 200);
        assert_no_cors(&r);
        assert_eq!(h(&r, "vary"), None, "{extra:?}");
        let r = preflight(&app, "/auth/login", Some(APP), "POST").await;
        assert_eq!((r.status, r.text.as_str()), (200, "POST"), "{extra:?}");
        assert_no_cors(&r);
    }
}

#[tokio::test]
async fn preflight_from_an_allowed_origin() {
    let app = spawn_cors(&cors_on(&format!("{OTHER},{APP}"))).await;
    for path in ["/auth/login", "/users/me", "/server/ping", "/nope"] {
        let r = preflight(&app, path, Some(APP), "POST").await;
        // The `cors` package answers every OPTIONS itself, before routing and the token check.
        assert_eq!(r.status, 204, "{path}: {}", r.text);
        assert_eq!(r.text, "", "{path}");
        assert_eq!(h(&r, ACAO), Some(APP), "{path}");
        assert_eq!(h(&r, ACAC), Some("true"));
        assert_eq!(h(&r, ACAM), Some("GET,POST,PATCH,DELETE"));
        assert_eq!(h(&r, ACAH), Some("Content-Type,Authorization"));
        assert_eq!(h(&r, ACMA), Some("18000"));
        // The `cors` package sends the exposed headers on preflights too.
        assert_eq!(h(&r, ACEH), Some("Content-Range"));
        assert_eq!(h(&r, "vary"), Some("Origin"));
        assert_eq!(h(&r, "allow"), None, "{path}");
    }
    // No token is needed, and a bad one is not looked at.
    let r = send(
        &app,
        Method::OPTIONS,
        "/users/me",
        &[
            ("origin", APP),
            ("access-control-request-method", "GET"),
            ("authorization", "Bearer not-a-token"),
        ],
        None,
    )
    .await;
    assert_eq!((r.status, h(&r, ACAO)), (204, Some(APP)));
}

#[tokio::test]
async fn disallowed_or_missing_origins_get_no_allow_origin() {
    let app = spawn_cors(&cors_on(APP)).await;
    for origin in [
        Some(OTHER),
        Some("null"),
        Some("http://app.example.com:3001"),
        None,
    ] {
        let r = preflight(&app, "/auth/login", origin, "POST").await;
        assert_eq!(r.status, 204, "{origin:?}");
        assert_eq!(h(&r, ACAO), None, "{origin:?}");
        // The rest is sent as the `cors` package does: the browser refuses on ACAO alone.
        assert_eq!(h(&r, ACAM), Some("GET,POST,PATCH,DELETE"));
        assert_eq!(h(&r, "vary"), Some("Origin"));
        let mut headers = vec![];
        if let Some(o) = origin {
            headers.push(("origin", o));
        }
        let r = send(&app, Method::GET, "/server/ping", &headers, None).await;
        assert_eq!((r.status, r.text.as_str()), (200, "pong"));
        assert_eq!(h(&r, ACAO), None, "{origin:?}");
        assert_eq!(h(&r, "vary"), Some("Origin"));
    }
}

#[tokio::test]
async fn actual_requests_carry_the_headers_errors_included() {
    let app = spawn_cors(&cors_on(APP)).await;
    let r = send(&app, Method::GET, "/server/ping", &[("origin", APP)], None).await;
    assert_eq!(r.status, 200);
    assert_eq!(h(&r, ACAO), Some(APP));
    assert_eq!(h(&r, ACAC), Some("true"));
    assert_eq!(h(&r, ACEH), Some("Content-Range"));
    assert_eq!(h(&r, "vary"), Some("Origin"));
    // Preflight-only headers stay on preflights.
    assert_eq!((h(&r, ACAM), h(&r, ACAH), h(&r, ACMA)), (None, None, None));

    // A login: the cookie and the CORS headers; `Vary` keeps the auth answers' value.
    let r = send(
        &app,
        Method::POST,
        "/auth/login",
        &[("origin", APP)],
        Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "mode": "cookie"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.set_cookie("directus_refresh_token").is_some());
    assert_eq!(h(&r, ACAO), Some(APP));
    assert_eq!(h(&r, ACAC), Some("true"));
    assert_eq!(h(&r, "vary"), Some("Origin, Cache-Control"));

    // Errors carry them too, so a page can read why.
    let r = send(
        &app,
        Method::POST,
        "/auth/login",
        &[("origin", APP)],
        Some(json!({"email": ADMIN_EMAIL, "password": "wrong-password"})),
    )
    .await;
    r.assert_error(401, "INVALID_CREDENTIALS");
    assert_eq!(h(&r, ACAO), Some(APP));
    for (path, status, code) in [
        ("/nope", 404, "ROUTE_NOT_FOUND"),
        ("/users", 403, "FORBIDDEN"),
    ] {
        let r = send(&app, Method::GET, path, &[("origin", APP)], None).await;
        r.assert_error(status, code);
        assert_eq!(h(&r, ACAO), Some(APP), "{path}");
        assert_eq!(h(&r, ACAC), Some("true"), "{path}");
        assert_eq!(h(&r, "vary"), Some("Origin"), "{path}");
    }
    let r = send(
        &app,
        Method::GET,
        "/users/me",
        &[("origin", APP), ("authorization", "Bearer not-a-token")],
        None,
    )
    .await;
    r.assert_error(401, "INVALID_CREDENTIALS");
    assert_eq!(h(&r, ACAO), Some(APP));
}

#[tokio::test]
async fn every_origin_form() {
    // (CORS_ORIGIN, origins let through, origins refused)
    let forms: [(&str, &[&str], &[&str]); 6] = [
        ("true", &[APP, OTHER, "null"], &[]),
        (APP, &[APP], &[OTHER]),
        (&format!("array:{APP}"), &[APP], &[OTHER]),
        (
            &format!(r#"["{APP}","http://b.example"]"#),
            &[APP, "http://b.example"],
            &[OTHER],
        ),
        (
            r"regex:^http://[a-z]+\.example\.com:\d+$",
            &[APP, OTHER],
            &[
                "http://app.example.org:3000",
                "https://app.example.com:3000",
            ],
        ),
        (
            r"http://b.example,regex:^http://app\.",
            &[APP, "http://b.example"],
            &[OTHER],
        ),
    ];
    for (value, allowed, refused) in forms {
        let app = spawn_cors(&cors_on(value)).await;
        for origin in allowed {
            let r = preflight(&app, "/auth/login", Some(origin), "POST").await;
            assert_eq!(
                (r.status, h(&r, ACAO)),
                (204, Some(*origin)),
                "{value} {origin}"
            );
            let r = send(&app, Method::GET, "/auth", &[("origin", origin)], None).await;
            assert_eq!(
                (r.status, h(&r, ACAO)),
                (200, Some(*origin)),
                "{value} {origin}"
            );
            assert!(h(&r, "vary").unwrap().contains("Origin"), "{value}");
        }
        for origin in refused {
            let r = preflight(&app, "/auth/login", Some(origin), "POST").await;
            assert_eq!((r.status, h(&r, ACAO)), (204, None), "{value} {origin}");
        }
        // No Origin, no ACAO, in every form but `*`.
        let r = send(&app, Method::GET, "/server/ping", &[], None).await;
        assert_eq!(h(&r, ACAO), None, "{value}");
    }
}

#[tokio::test]
async fn star_is_sent_only_without_credentials() {
    let app = spawn_cors(&[
        ("CORS_ENABLED", "true".into()),
        ("CORS_ORIGIN", "*".into()),
        ("CORS_CREDENTIALS", "false".into()),
    ])
    .await;
    for origin in [Some(APP), None] {
        let r = preflight(&app, "/auth/login", origin, "POST").await;
        assert_eq!((r.status, h(&r, ACAO)), (204, Some("*")));
        // The `cors` package adds no `Vary: Origin` for `*`.
        assert_eq!(h(&r, "vary"), None);
        assert_eq!(h(&r, ACAC), None);
        let r = send(&app, Method::GET, "/server/ping", &[], None).await;
        assert_eq!(
            (h(&r, ACAO), h(&r, ACAC), h(&r, "vary")),
            (Some("*"), None, None)
        );
    }
    // SECURITY: `*` with credentials (the default) is refused at start, never sent.
    let dir = tempfile::tempdir().unwrap();
    for extra in [
        vec![("CORS_ORIGIN", "*")],
        vec![("CORS_ORIGIN", "*"), ("CORS_CREDENTIALS", "true")],
        vec![("CORS_ORIGIN", "string:*")],
    ] {
        let mut vars = base_vars(dir.path());
        vars.push(("CORS_ENABLED".into(), "true".into()));
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let err = gatehouse::config::Config::from_vars(
            &gatehouse::config::Vars::from_pairs(vars).unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("CORS_ORIGIN=*") && err.contains("CORS_CREDENTIALS"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn methods_headers_credentials_and_max_age_as_configured() {
    let app = spawn_cors(&[
        ("CORS_ENABLED", "true".into()),
        ("CORS_ORIGIN", "true".into()),
        ("CORS_METHODS", "GET,POST".into()),
        (
            "CORS_ALLOWED_HEADERS",
            "Content-Type,X-Custom-Header".into(),
        ),
        ("CORS_EXPOSED_HEADERS", "Content-Range,X-Total-Count".into()),
        ("CORS_CREDENTIALS", "false".into()),
        ("CORS_MAX_AGE", "600".into()),
    ])
    .await;
    let r = preflight(&app, "/auth/login", Some(APP), "POST").await;
    assert_eq!(r.status, 204);
    assert_eq!(h(&r, ACAM), Some("GET,POST"));
    // Spelled as configured, as the `cors` package sends them.
    assert_eq!(h(&r, ACAH), Some("Content-Type,X-Custom-Header"));
    assert_eq!(h(&r, ACEH), Some("Content-Range,X-Total-Count"));
    assert_eq!(h(&r, ACMA), Some("600"));
    assert_eq!(h(&r, ACAC), None);
    assert_eq!(h(&r, ACAO), Some(APP));
    let r = send(&app, Method::GET, "/server/ping", &[("origin", APP)], None).await;
    assert_eq!(h(&r, ACEH), Some("Content-Range,X-Total-Count"));
    assert_eq!(h(&r, ACAC), None);

    // `false`: the requested headers are sent back (and varied on), no exposed headers and
    // no max age.
    let app = spawn_cors(&[
        ("CORS_ENABLED", "true".into()),
        ("CORS_ORIGIN", APP.into()),
        ("CORS_ALLOWED_HEADERS", "false".into()),
        ("CORS_EXPOSED_HEADERS", "false".into()),
        ("CORS_MAX_AGE", "false".into()),
    ])
    .await;
    let r = send(
        &app,
        Method::OPTIONS,
        "/users/me",
        &[
            ("origin", APP),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "authorization,x-anything"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(h(&r, ACAH), Some("authorization,x-anything"));
    assert_eq!(
        h(&r, "vary"),
        Some("Origin, Access-Control-Request-Headers")
    );
    assert_eq!((h(&r, ACEH), h(&r, ACMA)), (None, None));
    assert_eq!(h(&r, ACAC), Some("true"));
    let r = send(&app, Method::GET, "/server/ping", &[("origin", APP)], None).await;
    assert_eq!(h(&r, ACEH), None);
}

#[tokio::test]
async fn invalid_cors_values_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("CORS_ENABLED", "perhaps"),
        ("CORS_ORIGIN", "https://app.example.com/"),
        ("CORS_ORIGIN", r"/^https?:\/\/.*\.example\.com$/"),
        ("CORS_ORIGIN", "regex:(unclosed"),
        ("CORS_METHODS", "GET,NOT A METHOD"),
        ("CORS_ALLOWED_HEADERS", "Bad Header"),
        ("CORS_EXPOSED_HEADERS", "Bad:Header"),
        ("CORS_CREDENTIALS", "sometimes"),
        ("CORS_MAX_AGE", "5 hours"),
    ] {
        let mut vars = base_vars(dir.path());
        vars.push(("CORS_ENABLED".into(), "true".into()));
        vars.retain(|(k, _)| k != var);
        vars.push((var.into(), value.into()));
        let err = gatehouse::config::Config::from_vars(
            &gatehouse::config::Vars::from_pairs(vars).unwrap(),
        )
        .map(|_| ())
        .unwrap_err()
        .to_string();
        assert!(err.contains(var), "{var}={value}: {err}");
    }
}
