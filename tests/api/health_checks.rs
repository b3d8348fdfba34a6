//! `/server/health` beyond the database (Directus: `api/src/services/server.ts`): the pool
//! gauges, the rate limiters, the SMTP server when it is the transport and each identity
//! provider with something to reach; a failed SMTP or provider check only makes the answer
//! `warn`; checks that reach another server are shared, so a flood of
//! health requests does not become a flood of connections.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::smtp_sink::SmtpSink;
use crate::sso_fake_idp::{FakeIdp, Fault};
use crate::sso_oidc::oidc_vars;

/// A loopback port nothing listens on.
async fn dead_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

async fn admin_health(app: &TestApp) -> Resp {
    let token = app.admin_token().await;
    app.get("/server/health", Some(&token)).await
}

fn check<'a>(r: &'a Resp, key: &str) -> &'a Value {
    let c = &r.body["checks"][key];
    assert!(c.is_array(), "no check {key}: {}", r.text);
    &c[0]
}

fn keys(r: &Resp) -> Vec<String> {
    r.body["checks"]
        .as_object()
        .unwrap_or_else(|| panic!("no checks: {}", r.text))
        .keys()
        .cloned()
        .collect()
}

async fn spawn_pairs(vars: Vec<(String, String)>) -> TestApp {
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn_with(&pairs).await
}

#[tokio::test]
async fn admins_see_the_pool_gauges_and_the_rate_limiters_in_directus_names() {
    let app = spawn_with(&[
        ("RATE_LIMITER_ENABLED", "true"),
        ("RATE_LIMITER_POINTS", "1000"),
        ("RATE_LIMITER_GLOBAL_ENABLED", "true"),
        ("RATE_LIMITER_GLOBAL_POINTS", "5000"),
    ])
    .await;
    let r = admin_health(&app).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let client = if keys(&r).iter().any(|k| k.starts_with("pg:")) {
        "pg"
    } else {
        "sqlite3"
    };
    let time = check(&r, &format!("{client}:responseTime"));
    assert_eq!(time["componentType"], "datastore");
    assert_eq!(time["observedUnit"], "ms");
    assert_eq!(time["threshold"], 150);
    for gauge in ["connectionsAvailable", "connectionsUsed"] {
        let c = check(&r, &format!("{client}:{gauge}"));
        assert_eq!(c["componentType"], "datastore", "{gauge}");
        assert!(c["observedValue"].is_u64(), "{gauge}: {c}");
        assert!(c.get("observedUnit").is_none(), "{gauge}: {c}");
    }
    for limiter in ["rateLimiter", "rateLimiterGlobal"] {
        let c = check(&r, &format!("{limiter}:responseTime"));
        assert_eq!(c["componentType"], "ratelimiter", "{limiter}");
        assert_eq!(c["status"], "ok", "{limiter}");
        assert_eq!(c["threshold"], 150);
    }
    // Nothing is checked that is not in use: no mail transport to reach (the recorder), no
    // providers.
    assert!(!keys(&r)
        .iter()
        .any(|k| k.starts_with("email:") || k.starts_with("auth:")));

    let plain = spawn_app().await;
    let r = admin_health(&plain).await;
    assert!(
        !keys(&r).iter().any(|k| k.starts_with("rateLimiter")),
        "limiters off: {}",
        r.text
    );
}

#[tokio::test]
async fn the_log_transport_has_no_email_check() {
    let app = spawn_with_real_mail(&[]).await;
    let r = admin_health(&app).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        !keys(&r).iter().any(|k| k.starts_with("email:")),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn smtp_is_checked_and_an_unreachable_server_only_warns() {
    let sink = SmtpSink::start().await;
    let app = spawn_with_real_mail(&[
        ("EMAIL_TRANSPORT", "smtp"),
        ("EMAIL_SMTP_HOST", "127.0.0.1"),
        ("EMAIL_SMTP_PORT", &sink.port()),
        ("EMAIL_SMTP_IGNORE_TLS", "true"),
        ("EMAIL_VERIFY_SETUP", "false"),
    ])
    .await;
    let r = admin_health(&app).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        check(&r, "email:connection"),
        &json!({"status": "ok", "componentType": "email"})
    );
    assert!(sink.connections() >= 1, "the check did not connect");

    let port = dead_port().await.to_string();
    let app = spawn_with_real_mail(&[
        ("EMAIL_TRANSPORT", "smtp"),
        ("EMAIL_SMTP_HOST", "127.0.0.1"),
        ("EMAIL_SMTP_PORT", &port),
        ("EMAIL_SMTP_IGNORE_TLS", "true"),
        ("EMAIL_SMTP_PASSWORD", "smtp-secret-not-to-show"),
        ("EMAIL_VERIFY_SETUP", "false"),
    ])
    .await;
    // Directus 12.4.0 answers `ok` with its SMTP server down; gatehouse says `warn`, not
    // 503: the node serves everything but mail.
    let public = app.get("/server/health", None).await;
    assert_eq!(public.status, 200, "{}", public.text);
    assert_eq!(public.body, json!({"status": "warn"}));
    let r = admin_health(&app).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "warn");
    let c = check(&r, "email:connection");
    assert_eq!(c["status"], "error");
    assert!(c["output"].as_str().is_some_and(|o| !o.is_empty()), "{c}");
    assert!(!r.text.contains("smtp-secret-not-to-show"), "{}", r.text);
    // Readiness is the database only: the node still serves everything but mail.
    assert_eq!(app.get("/server/health/ready", None).await.status, 200);
}

#[tokio::test]
async fn an_openid_providers_discovery_is_checked_and_a_dead_one_only_warns() {
    let idp = FakeIdp::start().await;
    let app = spawn_pairs(oidc_vars(&idp, &[])).await;
    let r = admin_health(&app).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = check(&r, "auth:acme:responseTime");
    assert_eq!(c["status"], "ok", "{c}");
    assert_eq!(c["componentType"], "component");
    assert_eq!(c["observedUnit"], "ms");
    assert_eq!(c["threshold"], 1000);

    let down = FakeIdp::start().await;
    down.set(Fault::Down);
    let app = spawn_pairs(oidc_vars(
        &down,
        &[("AUTH_ACME_ISSUER_DISCOVERY_MUST_SUCCEED", "false")],
    ))
    .await;
    let r = admin_health(&app).await;
    assert_eq!(
        r.status, 200,
        "a provider down leaves the node up: {}",
        r.text
    );
    assert_eq!(r.body["status"], "warn", "{}", r.text);
    let c = check(&r, "auth:acme:responseTime");
    assert_eq!(c["status"], "error", "{c}");
    let output = c["output"].as_str().unwrap_or_default();
    assert!(output.contains("discovery"), "{c}");
    assert!(!r.text.contains(crate::sso_fake_idp::CLIENT_SECRET));
    assert_eq!(
        app.get("/server/health", None).await.body,
        json!({"status": "warn"})
    );
}

#[tokio::test]
async fn an_oauth2_provider_has_nothing_to_discover() {
    let app = spawn_with(&[
        ("AUTH_PROVIDERS", "plain"),
        ("AUTH_PLAIN_DRIVER", "oauth2"),
        ("AUTH_PLAIN_CLIENT_ID", "id"),
        ("AUTH_PLAIN_CLIENT_SECRET", "secret"),
        ("AUTH_PLAIN_AUTHORIZE_URL", "http://127.0.0.1:9/authorize"),
        ("AUTH_PLAIN_ACCESS_URL", "http://127.0.0.1:9/token"),
        ("AUTH_PLAIN_PROFILE_URL", "http://127.0.0.1:9/me"),
    ])
    .await;
    let r = admin_health(&app).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "ok", "{}", r.text);
    assert!(
        !keys(&r).iter().any(|k| k.starts_with("auth:")),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn an_unreachable_directory_is_a_failed_ldap_check() {
    let url = format!("ldap://127.0.0.1:{}", dead_port().await);
    let app = spawn_with(&[
        ("AUTH_PROVIDERS", "corp"),
        ("AUTH_CORP_DRIVER", "ldap"),
        ("AUTH_CORP_CLIENT_URL", &url),
        ("AUTH_CORP_BIND_DN", "cn=service,dc=example,dc=org"),
        ("AUTH_CORP_BIND_PASSWORD", "bind-secret-not-to-show"),
        ("AUTH_CORP_USER_DN", "ou=people,dc=example,dc=org"),
        ("AUTH_CORP_CLIENT__CONNECT_TIMEOUT", "1000"),
    ])
    .await;
    let r = admin_health(&app).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "warn", "{}", r.text);
    let c = check(&r, "auth:corp:responseTime");
    assert_eq!(c["status"], "error", "{c}");
    assert!(!r.text.contains("bind-secret-not-to-show"), "{}", r.text);
}

#[tokio::test]
async fn concurrent_health_requests_share_one_check_of_each_remote_server() {
    let idp = FakeIdp::start().await;
    let sink = SmtpSink::start().await;
    let mut vars = oidc_vars(&idp, &[]);
    for (k, v) in [
        ("EMAIL_TRANSPORT", "smtp"),
        ("EMAIL_SMTP_HOST", "127.0.0.1"),
        ("EMAIL_SMTP_PORT", sink.port().as_str()),
        ("EMAIL_SMTP_IGNORE_TLS", "true"),
        ("EMAIL_VERIFY_SETUP", "false"),
    ] {
        vars.push((k.into(), v.into()));
    }
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_with_real_mail(&pairs).await;
    let (jwks, smtp) = (idp.jwks_hits(), sink.connections());
    let start = std::time::Instant::now();
    let answers = futures::future::join_all((0..40).map(|_| app.get("/server/health", None))).await;
    let elapsed = start.elapsed();
    assert!(
        answers.iter().all(|r| r.status == 200),
        "{}",
        answers[0].text
    );
    // Remote checks are shared for 10 s: one check of each per started 10 s of the burst,
    // however slow this machine is.
    let most = 1 + (elapsed.as_secs() / 10) as usize;
    let (jwks, smtp) = (idp.jwks_hits() - jwks, sink.connections() - smtp);
    assert!(
        (1..=most).contains(&jwks),
        "{jwks} discoveries for 40 health requests in {elapsed:?}"
    );
    assert!(
        (1..=most).contains(&smtp),
        "{smtp} SMTP connections for 40 health requests in {elapsed:?}"
    );
}
