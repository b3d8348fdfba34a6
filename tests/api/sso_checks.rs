//! Every check of the OpenID callback, each attacked and answered with the `reason` Directus
//! gives; the state cookie is cleared on every answer.

use serde_json::json;

use crate::helpers::*;
use crate::sso_fake_idp::{FakeIdp, Fault};
use crate::sso_oidc::*;

/// Starts at `?redirect=/app?keep=1`, lets `fault` happen at the provider, runs the callback.
async fn with_fault(app: &TestApp, idp: &FakeIdp, fault: Fault) -> Resp {
    idp.set(fault);
    let (_, flow) = start(app, "acme", "?redirect=/app%3Fkeep%3D1").await;
    let r = finish(app, idp, &flow.unwrap()).await;
    idp.set(Fault::None);
    r
}

#[track_caller]
fn assert_cleared(r: &Resp) {
    let c = r.set_cookie("openid.acme").expect("state cookie cleared");
    assert!(c.contains("Expires=Thu, 01 Jan 1970 00:00:00 GMT"), "{c}");
    assert!(r.set_cookie("directus_session_token").is_none());
}

#[tokio::test]
async fn id_token_and_provider_faults_redirect_with_directus_reasons() {
    let idp = FakeIdp::start().await;
    let app = spawn_oidc(&idp, &[("AUTH_ACME_CLIENT_HTTP_TIMEOUT", "500ms")]).await;
    for (fault, want) in [
        (Fault::WrongKey, "/app?reason=INVALID_CREDENTIALS"),
        (Fault::BadSignature, "/app?reason=INVALID_CREDENTIALS"),
        (Fault::WrongIss, "/app?reason=INVALID_CREDENTIALS"),
        (Fault::WrongAud, "/app?reason=INVALID_CREDENTIALS"),
        (Fault::WrongNonce, "/app?reason=INVALID_CREDENTIALS"),
        (Fault::Expired, "/app?reason=INVALID_CREDENTIALS"),
        (Fault::NoIdToken, "/app?reason=INVALID_CREDENTIALS"),
        (Fault::OtherSub, "/app?reason=INVALID_CREDENTIALS"),
        (Fault::ServerError, "/app?reason=SERVICE_UNAVAILABLE"),
        (Fault::Down, "/app?reason=SERVICE_UNAVAILABLE"),
        (Fault::Slow, "/app?reason=SERVICE_UNAVAILABLE"),
        (Fault::Huge, "/app?reason=SERVICE_UNAVAILABLE"),
        // invalid_grant without prompt: restart with consent, the redirect as it was.
        (Fault::InvalidGrant, "./?redirect=/app?keep=1&prompt=true"),
    ] {
        let r = with_fault(&app, &idp, fault).await;
        assert_eq!(r.status, 302, "{fault:?}");
        assert_eq!(location(&r), want, "{fault:?}");
        assert_cleared(&r);
    }
    // Nobody was created by the refused logins.
    let admin = app.admin_token().await;
    let users = app.get("/users", Some(&admin)).await;
    assert_eq!(users.data().as_array().unwrap().len(), 1);
    // After the faults the provider works again, keys and all.
    let r = with_fault(&app, &idp, Fault::None).await;
    assert_eq!(location(&r), "/app?keep=1");
}

#[tokio::test]
async fn invalid_grant_after_the_consent_restart_is_invalid_token() {
    let idp = FakeIdp::start().await;
    let app = spawn_oidc(&idp, &[]).await;
    idp.set(Fault::InvalidGrant);
    let (_, flow) = start(&app, "acme", "?prompt=true").await;
    let r = finish(&app, &idp, &flow.unwrap()).await;
    assert_eq!(location(&r), "/?reason=INVALID_TOKEN");
    // Without a redirect given, the restart carries none (the default `/` is kept).
    idp.set(Fault::InvalidGrant);
    let (_, flow) = start(&app, "acme", "").await;
    let r = finish(&app, &idp, &flow.unwrap()).await;
    assert_eq!(location(&r), "./?redirect=/&prompt=true");
    // The restart lands on the start route (with Express's trailing slash).
    let r = get_raw(&app, "/auth/login/acme/?redirect=/&prompt=true", None).await;
    assert_eq!(r.status, 302);
    assert!(location(&r).contains("prompt=consent"), "{}", location(&r));
}

#[tokio::test]
async fn the_state_cookie_and_state_parameter_are_checked() {
    let idp = FakeIdp::start().await;
    let app = spawn_oidc(&idp, &[]).await;
    let (_, flow) = start(&app, "acme", "?redirect=/app").await;
    let flow = flow.unwrap();
    let (_, query) = idp.authorize(&flow.location);
    let login = format!("{PUBLIC}/admin/login?reason=INVALID_CREDENTIALS");
    // No cookie: the admin app's login page (openid), cookie cleared.
    let r = get_raw(&app, &format!("/auth/login/acme/callback?{query}"), None).await;
    assert_eq!(location(&r), login);
    assert!(r.set_cookie("openid.acme").unwrap().contains("1970"));
    // A tampered cookie: one character of the signature changed.
    let mut bad = flow.state_cookie.clone();
    let last = bad.pop().unwrap();
    bad.push(if last == 'A' { 'B' } else { 'A' });
    let r = get_raw(
        &app,
        &format!("/auth/login/acme/callback?{query}"),
        Some(&format!("openid.acme={bad}")),
    )
    .await;
    assert_eq!(location(&r), login);
    // Garbage, NUL bytes and a huge value.
    for junk in ["x", "a.b.c", "%00%00", &"A".repeat(8000)] {
        let r = get_raw(
            &app,
            &format!("/auth/login/acme/callback?{query}"),
            Some(&format!("openid.acme={junk}")),
        )
        .await;
        assert_eq!(location(&r), login, "{}", &junk[..junk.len().min(10)]);
    }
    // An access token signed with the same SECRET is not a state cookie.
    let admin = app.admin_token().await;
    let r = get_raw(
        &app,
        &format!("/auth/login/acme/callback?{query}"),
        Some(&format!("openid.acme={admin}")),
    )
    .await;
    assert_eq!(location(&r), login);
    // A tampered state parameter.
    let tampered = query.replace("state=", "state=x");
    let r = callback(&app, &flow, &tampered).await;
    assert_eq!(location(&r), "/app?reason=INVALID_CREDENTIALS");
    assert!(r.set_cookie("openid.acme").unwrap().contains("1970"));
    // No code, repeated parameters.
    let state = query.split("state=").nth(1).unwrap();
    let r = callback(&app, &flow, &format!("state={state}")).await;
    assert_eq!(location(&r), "/app?reason=INVALID_CREDENTIALS");
    let r = callback(&app, &flow, &format!("{query}&code=other")).await;
    assert_eq!(location(&r), "/app?reason=INVALID_CREDENTIALS");
    // The iss parameter (RFC 9207) must name the issuer.
    let r = callback(
        &app,
        &flow,
        &format!("{query}&iss=http%3A%2F%2Fevil.example"),
    )
    .await;
    assert_eq!(location(&r), "/app?reason=INVALID_CREDENTIALS");
    // With everything right, the same flow still signs in (nothing above used the code).
    let r = callback(
        &app,
        &flow,
        &format!("{query}&iss={}", urlenc(&idp.issuer())),
    )
    .await;
    assert_eq!(location(&r), "/app");
    assert!(r.cookie_value("directus_session_token").is_some());
}

fn urlenc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn an_expired_state_cookie_is_refused() {
    let idp = FakeIdp::start().await;
    let app = spawn_oidc(&idp, &[]).await;
    let (_, flow) = start(&app, "acme", "?redirect=/app").await;
    app.clock.advance(std::time::Duration::from_secs(301));
    let r = finish(&app, &idp, &flow.unwrap()).await;
    assert_eq!(
        location(&r),
        format!("{PUBLIC}/admin/login?reason=INVALID_CREDENTIALS")
    );
}

#[tokio::test]
async fn form_post_callbacks_answer_303_to_the_get_callback() {
    let idp = FakeIdp::start().await;
    let app = spawn_oidc(&idp, &[]).await;
    let r = app
        .client
        .post(format!("{}/auth/login/acme/callback", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("code=abc%2Fd&state=s+t&iss=http%3A%2F%2Fx")
        .send()
        .await
        .unwrap();
    let r = read(r).await;
    assert_eq!(r.status, 303);
    assert_eq!(
        location(&r),
        "./callback?code=abc%2Fd&state=s+t&iss=http%3A%2F%2Fx"
    );
    // Not a form: no fields.
    let r = app
        .post("/auth/login/acme/callback", None, json!({"code": "x"}))
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(location(&r), "./callback?");
}

#[tokio::test]
async fn registration_rules_and_accounts_of_others() {
    let idp = FakeIdp::start().await;
    let app = spawn_oidc(&idp, &[("AUTH_ACME_ALLOW_PUBLIC_REGISTRATION", "false")]).await;
    let r = with_fault(&app, &idp, Fault::None).await;
    assert_eq!(location(&r), "/app?reason=INVALID_CREDENTIALS");
    assert_cleared(&r);

    // The email of a local account: INVALID_PROVIDER.
    let app = spawn_oidc(&idp, &[]).await;
    idp.claim("email", json!(ADMIN_EMAIL));
    let r = with_fault(&app, &idp, Fault::None).await;
    assert_eq!(location(&r), "/app?reason=INVALID_PROVIDER");
    idp.claim("email", json!("ada@example.com"));

    // A local user whose external identifier equals the provider's subject cannot be taken over.
    let admin = app.admin_token().await;
    let id = app
        .create_user(&admin, "local@example.com", "local-password-1", None)
        .await;
    let r = app
        .patch(
            &format!("/users/{id}"),
            Some(&admin),
            json!({"external_identifier": "USER-1"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = with_fault(&app, &idp, Fault::None).await;
    assert_eq!(location(&r), "/app?reason=INVALID_CREDENTIALS");

    // REQUIRE_VERIFIED_EMAIL: a new user needs email_verified.
    let app = spawn_oidc(&idp, &[("AUTH_ACME_REQUIRE_VERIFIED_EMAIL", "true")]).await;
    idp.claim("email_verified", json!(false));
    let r = with_fault(&app, &idp, Fault::None).await;
    assert_eq!(location(&r), "/app?reason=INVALID_CREDENTIALS");
    idp.claim("email_verified", json!(true));
    let r = with_fault(&app, &idp, Fault::None).await;
    assert_eq!(location(&r), "/app?keep=1");
    // ... but not an existing one.
    idp.claim("email_verified", json!(false));
    let r = with_fault(&app, &idp, Fault::None).await;
    assert_eq!(location(&r), "/app?keep=1");

    // Neither the identifier claim nor an email.
    let app = spawn_oidc(&idp, &[("AUTH_ACME_IDENTIFIER_KEY", "employee_id")]).await;
    idp.remove_claim("email");
    let r = with_fault(&app, &idp, Fault::None).await;
    assert_eq!(location(&r), "/app?reason=INVALID_CREDENTIALS");
    idp.claim("employee_id", json!(4711));
    let r = with_fault(&app, &idp, Fault::None).await;
    assert_eq!(location(&r), "/app?keep=1");
}

#[tokio::test]
async fn enforce_tfa_sends_the_user_to_the_tfa_setup() {
    let idp = FakeIdp::start().await;
    let role = uuid::Uuid::new_v4().to_string();
    let app = spawn_oidc(&idp, &[("AUTH_ACME_DEFAULT_ROLE_ID", &role)]).await;
    let admin = app.admin_token().await;
    let r = app
        .post(
            "/roles",
            Some(&admin),
            json!({"id": role, "name": "Strict", "policies": [{"policy": {"name": "strict", "app_access": true, "enforce_tfa": true}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, flow) = start(&app, "acme", "?redirect=/app").await;
    let r = finish(&app, &idp, &flow.unwrap()).await;
    assert_eq!(
        location(&r),
        format!("{PUBLIC}/admin/tfa-setup?redirect=%2Fapp&provider=acme")
    );
    assert!(r.cookie_value("directus_session_token").is_some());
}

#[tokio::test]
async fn a_tfa_user_needs_the_otp_from_the_start() {
    let idp = FakeIdp::start().await;
    let app = spawn_oidc(&idp, &[]).await;
    let _ = sign_in(&app, &idp, "").await;
    let secret = gatehouse::totp::new_secret();
    let admin = app.admin_token().await;
    let r = app
        .get("/users?filter[provider][_eq]=acme&fields=id", Some(&admin))
        .await;
    let id = r.data()[0]["id"].as_str().unwrap().to_string();
    let mut patch = gatehouse::store::Item::new();
    patch.insert("tfa_secret".into(), json!(secret));
    app.auth
        .store
        .items
        .item_update(&gatehouse::store::USERS, &json!(id), &patch)
        .await
        .unwrap();
    let (_, flow) = start(&app, "acme", "?redirect=/app").await;
    let r = finish(&app, &idp, &flow.unwrap()).await;
    assert_eq!(location(&r), "/app?reason=INVALID_OTP");
    let (_, flow) = start(&app, "acme", "?redirect=/app&otp=000000").await;
    let r = finish(&app, &idp, &flow.unwrap()).await;
    assert_eq!(location(&r), "/app?reason=INVALID_OTP");
    app.clock.freeze();
    let otp = gatehouse::totp::generate(&secret, app.auth.now()).unwrap();
    let (_, flow) = start(&app, "acme", &format!("?redirect=/app&otp={otp}")).await;
    let r = finish(&app, &idp, &flow.unwrap()).await;
    assert_eq!(location(&r), "/app");
    assert!(r.cookie_value("directus_session_token").is_some());
}

#[tokio::test]
async fn refresh_goes_through_the_provider() {
    let idp = FakeIdp::start().await;
    let app = spawn_oidc(&idp, &[]).await;
    let session = sign_in(&app, &idp, "").await;
    let before = idp.state.lock().unwrap().refresh_hits;
    let r = app
        .post_with_cookie(
            "/auth/refresh",
            &format!("directus_session_token={session}"),
            json!({"mode": "session"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(idp.state.lock().unwrap().refresh_hits, before + 1);
    // The provider's new refresh token is kept.
    let admin = app.admin_token().await;
    let row = app
        .get(
            "/users?filter[provider][_eq]=acme&fields=auth_data",
            Some(&admin),
        )
        .await;
    let kept = row.data()[0]["auth_data"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(idp.state.lock().unwrap().refresh_tokens.contains(&kept));
    // The provider revokes the grant: INVALID_TOKEN, and the session is not rotated.
    let next = r.cookie_value("directus_session_token").unwrap();
    idp.state.lock().unwrap().refresh_fault = true;
    let r = app
        .post_with_cookie(
            "/auth/refresh",
            &format!("directus_session_token={next}"),
            json!({"mode": "session"}),
        )
        .await;
    r.assert_error(403, "INVALID_TOKEN");
    idp.state.lock().unwrap().refresh_fault = false;
    let r = app
        .post_with_cookie(
            "/auth/refresh",
            &format!("directus_session_token={next}"),
            json!({"mode": "session"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A provider that is down: 503.
    let next = r.cookie_value("directus_session_token").unwrap();
    idp.set(Fault::Down);
    let r = app
        .post_with_cookie(
            "/auth/refresh",
            &format!("directus_session_token={next}"),
            json!({"mode": "session"}),
        )
        .await;
    r.assert_error(503, "SERVICE_UNAVAILABLE");
}

#[tokio::test]
async fn rotated_keys_are_fetched_once_and_unknown_keys_do_not_hammer_the_provider() {
    let idp = FakeIdp::start().await;
    let app = spawn_oidc(&idp, &[]).await;
    let hits = idp.jwks_hits();
    // The provider rotates: a new kid; gatehouse refetches the keys and the login works.
    idp.state.lock().unwrap().rotated = true;
    let r = with_fault(&app, &idp, Fault::None).await;
    assert_eq!(location(&r), "/app?keep=1");
    assert_eq!(idp.jwks_hits(), hits + 1);
    // A forged token naming an unknown key: refused, and within MIN_REFETCH no new fetch.
    for _ in 0..3 {
        let r = with_fault(&app, &idp, Fault::WrongKey).await;
        assert_eq!(location(&r), "/app?reason=INVALID_CREDENTIALS");
    }
    assert_eq!(idp.jwks_hits(), hits + 1);
}

#[tokio::test]
async fn discovery_must_succeed_by_default() {
    let idp = FakeIdp::start().await;
    idp.set(Fault::Down);
    let dir = tempfile::tempdir().unwrap();
    let mut vars = base_vars(dir.path());
    vars.extend(oidc_vars(&idp, &[]));
    let config = gatehouse::config::Config::from_vars(
        &gatehouse::config::Vars::from_pairs(vars.clone()).unwrap(),
    )
    .unwrap();
    let err = gatehouse::App::build(
        config,
        std::sync::Arc::new(gatehouse::clock::OffsetClock::default()),
    )
    .await
    .err()
    .expect("start refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("AUTH_ACME_ISSUER_DISCOVERY_MUST_SUCCEED"),
        "{text}"
    );
    assert!(text.contains("AUTH_ACME_ISSUER_URL"), "{text}");

    // With discovery allowed to fail, the start answers Directus's SERVICE_UNAVAILABLE page
    // and the provider is discovered once it is up.
    let app = spawn_oidc(
        &idp,
        &[("AUTH_ACME_ISSUER_DISCOVERY_MUST_SUCCEED", "false")],
    )
    .await;
    let (r, _) = start(&app, "acme", "").await;
    assert_eq!(r.status, 302);
    assert_eq!(
        location(&r),
        format!("{PUBLIC}/admin/login?reason=SERVICE_UNAVAILABLE")
    );
    // Other providers and local logins are untouched.
    assert_eq!(
        app.login(ADMIN_EMAIL, ADMIN_PASSWORD, "json").await.status,
        200
    );
}

#[tokio::test]
async fn misconfigured_providers_stop_the_start_naming_the_variable() {
    let idp = FakeIdp::start().await;
    let dir = tempfile::tempdir().unwrap();
    for (extra, want) in [
        (
            vec![("AUTH_ACME_CLIENT_SECRET", "")],
            "AUTH_ACME_CLIENT_SECRET is not set",
        ),
        (
            vec![("AUTH_ACME_ISSUER_URL", "not a url")],
            "AUTH_ACME_ISSUER_URL",
        ),
        (vec![("AUTH_ACME_DRIVER", "cas")], "AUTH_ACME_DRIVER"),
        (
            vec![("AUTH_ACME_ROLE_MAPPING", "json:[\"admins\"]")],
            "AUTH_ACME_ROLE_MAPPING",
        ),
        (
            vec![("AUTH_ACME_PARAMS", "prompt=login")],
            "AUTH_ACME_PARAMS",
        ),
        (
            vec![("AUTH_ACME_DEFAULT_ROLE_ID", "admins")],
            "AUTH_ACME_DEFAULT_ROLE_ID",
        ),
        (vec![("AUTH_PROVIDERS", "acme,default")], "`default`"),
        (
            vec![("AUTH_PROVIDERS", "acme,other")],
            "AUTH_OTHER_DRIVER is not set",
        ),
    ] {
        let mut vars = base_vars(dir.path());
        vars.extend(oidc_vars(&idp, &extra));
        let err = gatehouse::config::Config::from_vars(
            &gatehouse::config::Vars::from_pairs(vars).unwrap(),
        )
        .err()
        .unwrap_or_else(|| panic!("{extra:?} accepted"));
        assert!(err.to_string().contains(want), "{extra:?}: {err}");
    }
}
