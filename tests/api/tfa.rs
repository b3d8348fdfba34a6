//! Two-factor authentication: the `/users/me/tfa/*` routes with every answer of Directus's,
//! TOTP at login in every mode, and what gatehouse adds (each code once, recovery codes, a
//! wait after wrong codes).

use std::time::Duration;

use gatehouse::store::USERS;
use serde_json::{json, Value};

use crate::helpers::*;

const PW: &str = "user-password";

fn code(app: &TestApp, secret: &str) -> String {
    gatehouse::totp::generate(secret, app.auth.now()).unwrap()
}

/// A code of a step the server is not in (for "wrong code" cases).
fn wrong_code(app: &TestApp, secret: &str) -> String {
    let right = code(app, secret);
    let c =
        gatehouse::totp::generate(secret, app.auth.now() + chrono::Duration::seconds(300)).unwrap();
    if c == right {
        format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000)
    } else {
        c
    }
}

async fn token_of(app: &TestApp, email: &str) -> String {
    let r = app.login(email, PW, "json").await;
    assert_eq!(r.status, 200, "login: {}", r.text);
    r.data()["access_token"].as_str().unwrap().to_string()
}

/// Generates and enables TFA for the token's user with a frozen clock; the clock then moves
/// to the next step, so the enabling code is behind it. Returns (secret, recovery codes).
async fn enrol(app: &TestApp, token: &str) -> (String, Vec<String>) {
    let g = app
        .post(
            "/users/me/tfa/generate",
            Some(token),
            json!({"password": PW}),
        )
        .await;
    assert_eq!(g.status, 200, "generate: {}", g.text);
    let secret = g.data()["secret"].as_str().unwrap().to_string();
    app.freeze_at_totp_step();
    let e = app
        .post(
            "/users/me/tfa/enable",
            Some(token),
            json!({"secret": secret, "otp": code(app, &secret)}),
        )
        .await;
    assert_eq!(e.status, 200, "enable: {}", e.text);
    let codes: Vec<String> = e.data()["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    app.advance(Duration::from_secs(30));
    (secret, codes)
}

async fn login_otp(app: &TestApp, email: &str, password: &str, otp: Option<&str>) -> Resp {
    let mut body = json!({"email": email, "password": password, "mode": "json"});
    if let Some(o) = otp {
        body["otp"] = json!(o);
    }
    app.post("/auth/login", None, body).await
}

#[track_caller]
fn assert_reason(r: &Resp, status: u16, reason: &str) {
    r.assert_error(status, "INVALID_PAYLOAD");
    assert_eq!(
        r.body["errors"][0]["message"],
        format!("Invalid payload. {reason}."),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn generate_answers_as_directus() {
    let app = spawn_app().await;
    let id = app.app_user("a@example.com", PW).await;
    let token = token_of(&app, "a@example.com").await;

    app.post("/users/me/tfa/generate", None, json!({"password": PW}))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    assert_reason(
        &app.post("/users/me/tfa/generate", Some(&token), json!({}))
            .await,
        400,
        "\"password\" is required",
    );
    assert_reason(
        &app.post(
            "/users/me/tfa/generate",
            Some(&token),
            json!({"password": ""}),
        )
        .await,
        400,
        "\"password\" is required",
    );
    app.post(
        "/users/me/tfa/generate",
        Some(&token),
        json!({"password": "wrong"}),
    )
    .await
    .assert_error(401, "INVALID_CREDENTIALS");
    app.post(
        "/users/me/tfa/generate",
        Some(&token),
        json!({"password": 12345}),
    )
    .await
    .assert_error(401, "INVALID_CREDENTIALS");

    // The issuer is the project name, or Directus; the account the email.
    for (project, issuer) in [
        (json!(""), "Directus"),
        (json!("My Project"), "My%20Project"),
    ] {
        let admin = app.admin_token().await;
        let r = app
            .patch("/settings", Some(&admin), json!({"project_name": project}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        // The trailing slash is optional, as in Directus.
        let r = app
            .post(
                "/users/me/tfa/generate/",
                Some(&token),
                json!({"password": PW}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let data = r.data().as_object().unwrap();
        assert_eq!(data.len(), 2, "{}", r.text);
        let secret = data["secret"].as_str().unwrap();
        assert_eq!(secret.len(), 16);
        assert!(secret
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        assert_eq!(
            data["otpauth_url"],
            format!("otpauth://totp/{issuer}:a%40example.com?secret={secret}&period=30&digits=6&algorithm=SHA1&issuer={issuer}")
        );
    }
    // Nothing is stored by generate.
    let row = app
        .auth
        .store
        .items
        .item_get(&USERS, &id.clone().into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row["tfa_secret"], Value::Null);

    // Once enabled: already set (after the password check).
    enrol(&app, &token).await;
    assert_reason(
        &app.post(
            "/users/me/tfa/generate",
            Some(&token),
            json!({"password": PW}),
        )
        .await,
        400,
        "TFA Secret is already set for this user",
    );
    app.post(
        "/users/me/tfa/generate",
        Some(&token),
        json!({"password": "wrong"}),
    )
    .await
    .assert_error(401, "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn a_local_user_without_email_cannot_enrol() {
    let app = spawn_app().await;
    let id = app.app_user("a@example.com", PW).await;
    let token = token_of(&app, "a@example.com").await;
    let mut patch = gatehouse::store::Item::new();
    patch.insert("email".into(), Value::Null);
    app.auth
        .store
        .items
        .item_update(&USERS, &id.into(), &patch)
        .await
        .unwrap();
    assert_reason(
        &app.post(
            "/users/me/tfa/generate",
            Some(&token),
            json!({"password": PW}),
        )
        .await,
        400,
        "User must have a valid email to enable TFA",
    );
}

#[tokio::test]
async fn enable_answers_as_directus_and_returns_recovery_codes() {
    let app = spawn_app().await;
    let id = app.app_user("a@example.com", PW).await;
    let token = token_of(&app, "a@example.com").await;
    let secret = gatehouse::totp::new_secret();
    app.freeze_at_totp_step();

    app.post("/users/me/tfa/enable", None, json!({}))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    let enable = |body: Value| app.post("/users/me/tfa/enable", Some(&token), body);
    assert_reason(
        &enable(json!({"otp": "123456"})).await,
        400,
        "\"secret\" is required",
    );
    assert_reason(
        &enable(json!({"secret": secret})).await,
        400,
        "\"otp\" is required",
    );
    assert_reason(
        &enable(json!({"secret": secret, "otp": wrong_code(&app, &secret)})).await,
        400,
        "\"otp\" is invalid",
    );
    // Malformed secrets are a clean 400 (gatehouse checks the secret's form).
    for bad in [
        json!("not base32!!!!!!"),
        json!("ABC"),
        json!("A".repeat(100_000)),
        json!("JBSWY3DPEHPK3PXP\u{0}"),
        json!(12345),
        json!(["JBSWY3DPEHPK3PXP"]),
        json!({"a": 1}),
    ] {
        assert_reason(
            &enable(json!({"secret": bad, "otp": "123456"})).await,
            400,
            "\"secret\" is invalid",
        );
    }
    // Hostile otps: never a 5xx.
    for bad in [
        json!("12345\u{0}"),
        json!("9".repeat(100_000)),
        json!(123456),
        json!({"x": 1}),
        json!([1]),
        json!(true),
    ] {
        assert_reason(
            &enable(json!({"secret": secret, "otp": bad})).await,
            400,
            "\"otp\" is invalid",
        );
    }
    assert_eq!(
        app.auth
            .store
            .items
            .item_get(&USERS, &id.clone().into())
            .await
            .unwrap()
            .unwrap()["tfa_secret"],
        Value::Null
    );

    let r = app
        .post(
            "/users/me/tfa/enable/",
            Some(&token),
            json!({"secret": secret, "otp": code(&app, &secret)}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let codes = r.data()["recovery_codes"].as_array().unwrap().clone();
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    for c in &codes {
        let c = c.as_str().unwrap();
        assert_eq!(c.len(), 11, "{c}");
        assert_eq!(&c[5..6], "-");
    }
    let row = app
        .auth
        .store
        .items
        .item_get(&USERS, &id.clone().into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row["tfa_secret"], secret.as_str());
    // And it reads back concealed.
    let me = app.get("/users/me?fields=tfa_secret", Some(&token)).await;
    assert_eq!(me.data()["tfa_secret"], "**********", "{}", me.text);

    app.advance(Duration::from_secs(30));
    assert_reason(
        &enable(json!({"secret": secret, "otp": code(&app, &secret)})).await,
        400,
        "TFA Secret is already set for this user",
    );
}

#[tokio::test]
async fn enable_writes_the_secret_with_the_callers_permissions() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    // An app role that may update its own name but not tfa_secret.
    let policy = app.create_policy(&admin, "names only", false, true).await;
    app.grant(
        &policy,
        "directus_users",
        "update",
        json!({"id": {"_eq": "$CURRENT_USER"}}),
        "first_name",
    )
    .await;
    let role = app.role_with_policy(&admin, "names", &policy).await;
    app.create_user(&admin, "n@example.com", PW, Some(&role))
        .await;
    let token = token_of(&app, "n@example.com").await;
    let g = app
        .post(
            "/users/me/tfa/generate",
            Some(&token),
            json!({"password": PW}),
        )
        .await;
    assert_eq!(g.status, 200, "{}", g.text);
    let secret = g.data()["secret"].as_str().unwrap().to_string();
    app.freeze_at_totp_step();
    app.post(
        "/users/me/tfa/enable",
        Some(&token),
        json!({"secret": secret, "otp": code(&app, &secret)}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    // Still no TFA: login needs no otp.
    assert_eq!(app.login("n@example.com", PW, "json").await.status, 200);
}

#[tokio::test]
async fn disable_answers_as_directus() {
    let app = spawn_app().await;
    let id = app.app_user("a@example.com", PW).await;
    let token = token_of(&app, "a@example.com").await;
    let disable = |body: Value| app.post("/users/me/tfa/disable", Some(&token), body);

    app.post("/users/me/tfa/disable", None, json!({"otp": "123456"}))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    assert_reason(&disable(json!({})).await, 400, "\"otp\" is required");
    assert_reason(
        &disable(json!({"otp": "123456"})).await,
        400,
        &format!("User \"{id}\" doesn't have TFA enabled"),
    );

    let (secret, _) = enrol(&app, &token).await;
    for bad in [
        json!(wrong_code(&app, &secret)),
        json!("\u{0}\u{0}\u{0}"),
        json!(123456),
        json!("1".repeat(50_000)),
    ] {
        assert_reason(
            &disable(json!({"otp": bad})).await,
            400,
            "\"otp\" is invalid",
        );
    }
    // The wrong codes above do not lock yet (four of them); a right code resets the count.
    let r = disable(json!({"otp": code(&app, &secret)})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(r.text, "");
    assert_eq!(app.login("a@example.com", PW, "json").await.status, 200);
    assert!(app
        .auth
        .store
        .tfa
        .recovery_code_hashes(id.parse().unwrap())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn admins_disable_anyones_tfa() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let id = app.app_user("a@example.com", PW).await;
    let token = token_of(&app, "a@example.com").await;
    enrol(&app, &token).await;
    let path = format!("/users/{id}/tfa/disable");

    app.post(&path, None, json!({}))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    app.post(&path, Some(&token), json!({}))
        .await
        .assert_error(403, "FORBIDDEN");
    app.post("/users/not-a-uuid/tfa/disable", Some(&admin), json!({}))
        .await
        .assert_error(403, "FORBIDDEN");
    let r = app
        .post(
            &format!("/users/{}/tfa/disable", uuid::Uuid::new_v4()),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);

    login_otp(&app, "a@example.com", PW, None)
        .await
        .assert_error(401, "INVALID_OTP");
    let r = app.post(&format!("{path}/"), Some(&admin), json!({})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.login("a@example.com", PW, "json").await.status, 200);
    assert!(app
        .auth
        .store
        .tfa
        .recovery_code_hashes(id.parse().unwrap())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn login_checks_the_password_then_the_code_in_every_mode() {
    let app = spawn_app().await;
    app.app_user("a@example.com", PW).await;
    let token = token_of(&app, "a@example.com").await;
    let (secret, _) = enrol(&app, &token).await;

    // Wrong password: INVALID_CREDENTIALS whatever the otp.
    for otp in [None, Some("123456".to_string()), Some(code(&app, &secret))] {
        login_otp(&app, "a@example.com", "wrong", otp.as_deref())
            .await
            .assert_error(401, "INVALID_CREDENTIALS");
    }
    // Right password: missing, empty or wrong otp is INVALID_OTP.
    for otp in [None, Some(String::new()), Some(wrong_code(&app, &secret))] {
        login_otp(&app, "a@example.com", PW, otp.as_deref())
            .await
            .assert_error(401, "INVALID_OTP");
    }
    // Hostile otps at login: a clean INVALID_OTP, or Joi's 400 for a value that is no string.
    for otp in [
        "\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}",
        &"9".repeat(10_000),
        "abcde-\u{0}fghi",
    ] {
        login_otp(&app, "a@example.com", PW, Some(otp))
            .await
            .assert_error(401, "INVALID_OTP");
    }
    for otp in [json!(123456), json!({"a": 1}), json!(["123456"])] {
        app.post(
            "/auth/login",
            None,
            json!({"email": "a@example.com", "password": PW, "mode": "json", "otp": otp}),
        )
        .await
        .assert_error(400, "INVALID_PAYLOAD");
    }
    // A body that is not an object has no fields.
    assert_reason(
        &app.post("/users/me/tfa/disable", Some(&token), json!([]))
            .await,
        400,
        "\"otp\" is required",
    );
    for mode in ["json", "cookie", "session"] {
        app.advance(Duration::from_secs(30));
        let r = app
            .post(
                "/auth/login",
                None,
                json!({"email": "a@example.com", "password": PW, "mode": mode, "otp": code(&app, &secret)}),
            )
            .await;
        assert_eq!(r.status, 200, "{mode}: {}", r.text);
        match mode {
            "json" => assert!(r.data()["access_token"].is_string()),
            "cookie" => assert!(r.set_cookie("directus_refresh_token").is_some()),
            _ => assert!(r.set_cookie("directus_session_token").is_some()),
        }
        // The same code again, in any mode: refused.
        let again = app
            .post(
                "/auth/login",
                None,
                json!({"email": "a@example.com", "password": PW, "mode": mode, "otp": code(&app, &secret)}),
            )
            .await;
        again.assert_error(401, "INVALID_OTP");
    }
}

#[tokio::test]
async fn a_code_works_once_and_older_codes_never_after_a_newer_one() {
    let app = spawn_app().await;
    app.app_user("a@example.com", PW).await;
    let token = token_of(&app, "a@example.com").await;
    let (secret, _) = enrol(&app, &token).await;
    // The code that enabled TFA is spent too: step back into its step.
    let now = app.auth.now();
    app.clock.freeze_at(now - chrono::Duration::seconds(30));
    login_otp(&app, "a@example.com", PW, Some(&code(&app, &secret)))
        .await
        .assert_error(401, "INVALID_OTP");

    // Two steps later: a fresh code passes once.
    app.clock.freeze_at(now + chrono::Duration::seconds(30));
    let c = code(&app, &secret);
    assert_eq!(
        login_otp(&app, "a@example.com", PW, Some(&c)).await.status,
        200
    );
    login_otp(&app, "a@example.com", PW, Some(&c))
        .await
        .assert_error(401, "INVALID_OTP");
    // The step before it (a clock that runs behind), never used: still refused.
    app.clock.freeze_at(now);
    login_otp(&app, "a@example.com", PW, Some(&code(&app, &secret)))
        .await
        .assert_error(401, "INVALID_OTP");
}

#[tokio::test]
async fn every_node_refuses_a_code_another_node_accepted() {
    let nodes = spawn_nodes(2, &[]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    a.app_user("a@example.com", PW).await;
    let token = token_of(a, "a@example.com").await;
    let (secret, _) = enrol(a, &token).await;
    let now = a.auth.now();
    b.clock.freeze_at(now);
    let c = code(a, &secret);
    assert_eq!(code(b, &secret), c);
    assert_eq!(
        login_otp(a, "a@example.com", PW, Some(&c)).await.status,
        200
    );
    login_otp(b, "a@example.com", PW, Some(&c))
        .await
        .assert_error(401, "INVALID_OTP");
    // A node whose clock is a step behind refuses its (older) code too.
    a.clock.freeze_at(now + chrono::Duration::seconds(30));
    assert_eq!(
        login_otp(a, "a@example.com", PW, Some(&code(a, &secret)))
            .await
            .status,
        200
    );
    b.clock.freeze_at(now);
    login_otp(b, "a@example.com", PW, Some(&code(b, &secret)))
        .await
        .assert_error(401, "INVALID_OTP");
}

#[tokio::test]
async fn two_logins_with_one_code_at_once_pass_once() {
    let nodes = spawn_nodes(2, &[]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    a.app_user("a@example.com", PW).await;
    let token = token_of(a, "a@example.com").await;
    let (secret, _) = enrol(a, &token).await;
    for round in 0..5 {
        a.advance(Duration::from_secs(30));
        b.clock.freeze_at(a.auth.now());
        let c = code(a, &secret);
        let (r1, r2, r3) = tokio::join!(
            login_otp(a, "a@example.com", PW, Some(&c)),
            login_otp(b, "a@example.com", PW, Some(&c)),
            login_otp(a, "a@example.com", PW, Some(&c)),
        );
        let ok = [&r1, &r2, &r3].iter().filter(|r| r.status == 200).count();
        assert_eq!(ok, 1, "round {round}: {} {} {}", r1.text, r2.text, r3.text);
        for r in [&r1, &r2, &r3] {
            if r.status != 200 {
                r.assert_error(401, "INVALID_OTP");
            }
        }
    }
}

#[tokio::test]
async fn recovery_codes_work_once_and_are_stored_hashed() {
    let app = spawn_app().await;
    let id = app.app_user("a@example.com", PW).await;
    let token = token_of(&app, "a@example.com").await;
    let (secret, codes) = enrol(&app, &token).await;

    let hashes = app
        .auth
        .store
        .tfa
        .recovery_code_hashes(id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(hashes.len(), 10);
    for c in &codes {
        assert!(!hashes
            .iter()
            .any(|h| h.contains(c.as_str()) || h.contains(&c.replace('-', ""))));
        let plain = format!("{secret}:{}", c.replace('-', ""));
        let want = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(plain.as_bytes()));
        assert!(
            hashes.contains(&want),
            "{c} is stored as SHA-256 of secret:code"
        );
    }

    // At login, once (also typed in capitals without the dash).
    let typed = codes[0].to_uppercase().replace('-', "");
    assert_eq!(
        login_otp(&app, "a@example.com", PW, Some(&typed))
            .await
            .status,
        200
    );
    login_otp(&app, "a@example.com", PW, Some(&codes[0]))
        .await
        .assert_error(401, "INVALID_OTP");
    // Two at once with the same code: one passes.
    let (r1, r2) = tokio::join!(
        login_otp(&app, "a@example.com", PW, Some(&codes[1])),
        login_otp(&app, "a@example.com", PW, Some(&codes[1])),
    );
    assert_eq!(
        [r1.status, r2.status].iter().filter(|s| **s == 200).count(),
        1
    );

    // Regeneration needs a TOTP code (not a recovery code) and replaces all of them.
    let regen = |otp: &str| {
        app.post(
            "/users/me/tfa/recovery-codes",
            Some(&token),
            json!({ "otp": otp }),
        )
    };
    assert_reason(
        &app.post("/users/me/tfa/recovery-codes", Some(&token), json!({}))
            .await,
        400,
        "\"otp\" is required",
    );
    assert_reason(&regen(&codes[2]).await, 400, "\"otp\" is invalid");
    let r = regen(&code(&app, &secret)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let fresh: Vec<String> = r.data()["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(fresh.len(), 10);
    // The same TOTP code cannot regenerate twice.
    assert_reason(
        &regen(&code(&app, &secret)).await,
        400,
        "\"otp\" is invalid",
    );
    login_otp(&app, "a@example.com", PW, Some(&codes[3]))
        .await
        .assert_error(401, "INVALID_OTP");

    // A recovery code disables TFA, once.
    let r = app
        .post(
            "/users/me/tfa/disable",
            Some(&token),
            json!({"otp": fresh[0]}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.login("a@example.com", PW, "json").await.status, 200);
    assert!(app
        .auth
        .store
        .tfa
        .recovery_code_hashes(id.parse().unwrap())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_recovery_code_disables_once() {
    let app = spawn_app().await;
    app.app_user("a@example.com", PW).await;
    let token = token_of(&app, "a@example.com").await;
    let (_, codes) = enrol(&app, &token).await;
    // Spend it at login first: it no longer disables.
    assert_eq!(
        login_otp(&app, "a@example.com", PW, Some(&codes[0]))
            .await
            .status,
        200
    );
    assert_reason(
        &app.post(
            "/users/me/tfa/disable",
            Some(&token),
            json!({"otp": codes[0]}),
        )
        .await,
        400,
        "\"otp\" is invalid",
    );
}

#[tokio::test]
async fn wrong_codes_make_the_user_wait_longer_each_time() {
    let app = spawn_app().await;
    app.app_user("a@example.com", PW).await;
    let token = token_of(&app, "a@example.com").await;
    let (secret, codes) = enrol(&app, &token).await;
    for _ in 0..5 {
        login_otp(&app, "a@example.com", PW, Some(&wrong_code(&app, &secret)))
            .await
            .assert_error(401, "INVALID_OTP");
    }
    // Waiting: even the right code, or a recovery code, is refused, at login and at disable.
    login_otp(&app, "a@example.com", PW, Some(&code(&app, &secret)))
        .await
        .assert_error(401, "INVALID_OTP");
    login_otp(&app, "a@example.com", PW, Some(&codes[0]))
        .await
        .assert_error(401, "INVALID_OTP");
    assert_reason(
        &app.post(
            "/users/me/tfa/disable",
            Some(&token),
            json!({"otp": code(&app, &secret)}),
        )
        .await,
        400,
        "\"otp\" is invalid",
    );
    // 30 s later the right code passes (refusals while waiting did not consume anything).
    app.advance(Duration::from_secs(30));
    assert_eq!(
        login_otp(&app, "a@example.com", PW, Some(&code(&app, &secret)))
            .await
            .status,
        200
    );
    // The count was reset: four wrong codes do not lock.
    for _ in 0..4 {
        login_otp(&app, "a@example.com", PW, Some(&wrong_code(&app, &secret)))
            .await
            .assert_error(401, "INVALID_OTP");
    }
    app.advance(Duration::from_secs(30));
    assert_eq!(
        login_otp(&app, "a@example.com", PW, Some(&code(&app, &secret)))
            .await
            .status,
        200
    );

    // Five wrong, wait 30 s, one more wrong: now the wait is 60 s.
    for _ in 0..5 {
        login_otp(&app, "a@example.com", PW, Some(&wrong_code(&app, &secret)))
            .await
            .assert_error(401, "INVALID_OTP");
    }
    app.advance(Duration::from_secs(30));
    login_otp(&app, "a@example.com", PW, Some(&wrong_code(&app, &secret)))
        .await
        .assert_error(401, "INVALID_OTP");
    app.advance(Duration::from_secs(30));
    login_otp(&app, "a@example.com", PW, Some(&code(&app, &secret)))
        .await
        .assert_error(401, "INVALID_OTP");
    app.advance(Duration::from_secs(30));
    assert_eq!(
        login_otp(&app, "a@example.com", PW, Some(&code(&app, &secret)))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn wrong_codes_are_counted_atomically() {
    let app = spawn_app().await;
    let id = app.app_user("a@example.com", PW).await;
    let token = token_of(&app, "a@example.com").await;
    let (secret, _) = enrol(&app, &token).await;
    let wrong = wrong_code(&app, &secret);
    let attempts = (0..5).map(|_| login_otp(&app, "a@example.com", PW, Some(&wrong)));
    for r in futures::future::join_all(attempts).await {
        r.assert_error(401, "INVALID_OTP");
    }
    // Five concurrent wrong codes counted as five: the user now waits.
    let until = app
        .auth
        .store
        .tfa
        .tfa_locked_until(id.parse().unwrap())
        .await
        .unwrap()
        .expect("a lock");
    assert_eq!((until - app.auth.now()).num_seconds(), 30);
}

#[tokio::test]
async fn an_sso_user_enrols_without_a_password() {
    let app = spawn_app().await;
    let id = app.app_user("sso@example.com", PW).await;
    // An SSO account: another provider, no local password, reached here with a static token.
    let mut patch = gatehouse::store::Item::new();
    patch.insert("provider".into(), json!("github"));
    patch.insert("password".into(), Value::Null);
    patch.insert("email".into(), Value::Null);
    patch.insert("external_identifier".into(), json!("gh-42"));
    patch.insert("token".into(), json!("sso-static-token-0123456789"));
    app.auth
        .store
        .items
        .item_update(&USERS, &id.clone().into(), &patch)
        .await
        .unwrap();
    let token = "sso-static-token-0123456789";
    let g = app
        .post("/users/me/tfa/generate", Some(token), json!({}))
        .await;
    assert_eq!(g.status, 200, "{}", g.text);
    let secret = g.data()["secret"].as_str().unwrap().to_string();
    // No email: the account is the external identifier.
    assert!(
        g.data()["otpauth_url"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Directus:gh-42?"),
        "{}",
        g.text
    );
    app.freeze_at_totp_step();
    let e = app
        .post(
            "/users/me/tfa/enable",
            Some(token),
            json!({"secret": secret, "otp": code(&app, &secret)}),
        )
        .await;
    assert_eq!(e.status, 200, "{}", e.text);
    let row = app
        .auth
        .store
        .items
        .item_get(&USERS, &id.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row["tfa_secret"], secret.as_str());
}

#[tokio::test]
async fn enforce_tfa_is_claimed_until_the_user_enrols() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let policy = app
        .post(
            "/policies",
            Some(&admin),
            json!({"name": "tfa", "app_access": true, "enforce_tfa": true}),
        )
        .await;
    assert_eq!(policy.status, 200, "{}", policy.text);
    let policy = policy.data()["id"].as_str().unwrap().to_string();
    app.grant(
        &policy,
        "directus_users",
        "update",
        json!({"id": {"_eq": "$CURRENT_USER"}}),
        "tfa_secret",
    )
    .await;
    let role = app.role_with_policy(&admin, "tfa role", &policy).await;
    app.create_user(&admin, "t@example.com", PW, Some(&role))
        .await;
    let claims = |token: &str| -> Value {
        use base64::Engine;
        let payload = token.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let token = token_of(&app, "t@example.com").await;
    assert_eq!(claims(&token)["enforce_tfa"], true);
    let (secret, _) = enrol(&app, &token).await;
    let r = login_otp(&app, "t@example.com", PW, Some(&code(&app, &secret))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let t = r.data()["access_token"].as_str().unwrap();
    assert_eq!(claims(t).get("enforce_tfa"), None);
}

#[tokio::test]
async fn recovery_codes_die_with_their_secret() {
    let app = spawn_app().await;
    let id = app.app_user("a@example.com", PW).await;
    let token = token_of(&app, "a@example.com").await;
    let (_, codes) = enrol(&app, &token).await;
    // The secret is cleared and set again outside the TFA routes (as Directus would, which
    // does not know gatehouse's recovery codes).
    let admin = app.admin_token().await;
    let r = app
        .patch(
            &format!("/users/{id}"),
            Some(&admin),
            json!({"tfa_secret": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let secret = gatehouse::totp::new_secret();
    let mut patch = gatehouse::store::Item::new();
    patch.insert("tfa_secret".into(), json!(secret));
    app.auth
        .store
        .items
        .item_update(&USERS, &id.into(), &patch)
        .await
        .unwrap();
    login_otp(&app, "a@example.com", PW, Some(&codes[0]))
        .await
        .assert_error(401, "INVALID_OTP");
    assert_eq!(
        login_otp(&app, "a@example.com", PW, Some(&code(&app, &secret)))
            .await
            .status,
        200
    );
}
