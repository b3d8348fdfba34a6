//! `POST /auth/login/<provider>` with `AUTH_<NAME>_DRIVER=ldap`, and `POST /auth/login` with
//! `"mode": "ldap"`.
//!
//! Tests without a directory run everywhere (body checks, unknown providers, a dead or silent
//! directory, start-up errors). Those that need one are ignored unless run with
//! `--include-ignored` and `TEST_LDAP_URL` (the ldap:// URL of `scripts/ldap.sh url`; its
//! certificate is found with `scripts/ldap.sh ca` or `TEST_LDAP_CA`); `.ci/run` sets it. They
//! only read the directory, so they can run side by side; the e2e suite changes it.

use std::time::{Duration, Instant};

use gatehouse::config::{Config, Vars};
use serde_json::{json, Value};

use crate::helpers::*;

const NEEDS_LDAP: &str = "this test needs TEST_LDAP_URL (the URL printed by scripts/ldap.sh url)";
const PEOPLE: &str = "ou=people,dc=example,dc=org";

fn ldap_url() -> String {
    std::env::var("TEST_LDAP_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect(NEEDS_LDAP)
}

/// The directory's certificate (PEM text).
fn ldap_ca() -> String {
    let path = std::env::var("TEST_LDAP_CA")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| {
            let out = std::process::Command::new("scripts/ldap.sh")
                .arg("ca")
                .output()
                .expect("scripts/ldap.sh ca");
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        });
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The LDAPS URL beside the ldap:// one (scripts/ldap.sh: port + 3247, or TEST_LDAPS_URL).
fn ldaps_url() -> String {
    std::env::var("TEST_LDAPS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "ldaps://127.0.0.1:56636".into())
}

/// An ldap provider named `corp` on `url`, with the directory of scripts/ldap.sh.
fn corp(url: &str) -> Vec<(String, String)> {
    [
        ("AUTH_PROVIDERS", "corp"),
        ("AUTH_CORP_DRIVER", "ldap"),
        ("AUTH_CORP_CLIENT_URL", url),
        ("AUTH_CORP_BIND_DN", "cn=service,dc=example,dc=org"),
        ("AUTH_CORP_BIND_PASSWORD", "servicepw"),
        ("AUTH_CORP_USER_DN", PEOPLE),
        ("AUTH_CORP_USER_ATTRIBUTE", "uid"),
        ("AUTH_CORP_CLIENT__TIMEOUT", "2000"),
        ("AUTH_CORP_CLIENT__CONNECT_TIMEOUT", "1000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

async fn spawn_corp(url: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = corp(url);
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push((k.to_string(), v.to_string()));
    }
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn_with(&pairs).await
}

async fn ldap_login(app: &TestApp, body: Value) -> Resp {
    app.post("/auth/login/corp", None, body).await
}

async fn user_row(app: &TestApp, dn_lower: &str) -> gatehouse::store::Item {
    let admin = app.admin_token().await;
    let users = app.get("/users?limit=-1", Some(&admin)).await;
    users
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|u| {
            u["external_identifier"]
                .as_str()
                .map(str::to_lowercase)
                .as_deref()
                == Some(dn_lower)
        })
        .and_then(|u| u.as_object().cloned())
        .unwrap_or_else(|| panic!("no user {dn_lower}: {}", users.text))
}

// ---- without a directory -------------------------------------------------------------

#[tokio::test]
async fn bodies_are_checked_as_directus_s_joi_schema_without_touching_the_directory() {
    // Port 9 of loopback has no server: a body that reached the directory would be a 503.
    let app = spawn_corp("ldap://127.0.0.1:9", &[("LOGIN_STALL_TIME", "3000")]).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!([]), "\"value\" must be of type object"),
        (json!({}), "\"identifier\" is required"),
        (json!({"password": "x"}), "\"identifier\" is required"),
        (
            json!({"identifier": 5, "password": "x"}),
            "\"identifier\" must be a string",
        ),
        (
            json!({"identifier": "", "password": "x"}),
            "\"identifier\" is not allowed to be empty",
        ),
        (json!({"identifier": "alice"}), "\"password\" is required"),
        (
            json!({"identifier": "alice", "password": ""}),
            "\"password\" is not allowed to be empty",
        ),
        (
            json!({"identifier": "alice", "password": ["x"]}),
            "\"password\" must be a string",
        ),
        (
            json!({"identifier": "alice", "password": "x", "mode": "ldap"}),
            "\"mode\" must be one of [cookie, json, session]",
        ),
        (
            json!({"identifier": "alice", "password": "x", "otp": 123456}),
            "\"otp\" must be a string",
        ),
        (
            json!({"identifier": "alice", "password": "x", "otp": ""}),
            "\"otp\" is not allowed to be empty",
        ),
    ];
    for (body, reason) in cases {
        let started = Instant::now();
        let r = ldap_login(&app, body.clone()).await;
        r.assert_error(400, "INVALID_PAYLOAD");
        assert_eq!(
            r.body["errors"][0]["extensions"]["reason"], reason,
            "{body}"
        );
        // Directus's LDAP router does not stall its validation errors (3 s stall configured).
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "{body} was stalled"
        );
    }
}

#[tokio::test]
async fn unknown_providers_and_other_drivers_are_not_routes() {
    let app = spawn_corp("ldap://127.0.0.1:9", &[]).await;
    let r = app
        .post(
            "/auth/login/nope",
            None,
            json!({"identifier": "a", "password": "b"}),
        )
        .await;
    r.assert_error(404, "ROUTE_NOT_FOUND");
    assert_eq!(
        r.body["errors"][0]["message"],
        "Route /auth/login/nope doesn't exist."
    );
    // The provider is listed by GET /auth.
    let list = app.get("/auth", None).await;
    assert_eq!(list.data()[0]["name"], "corp", "{}", list.text);
    assert_eq!(list.data()[0]["driver"], "ldap", "{}", list.text);
}

#[tokio::test]
async fn a_dead_directory_is_503_service_unavailable_within_the_timeout() {
    let app = spawn_corp("ldap://127.0.0.1:9", &[]).await;
    let r = ldap_login(&app, json!({"identifier": "alice", "password": "alicepw"})).await;
    r.assert_error(503, "SERVICE_UNAVAILABLE");
    assert_eq!(r.body["errors"][0]["extensions"]["service"], "ldap");
    // No library text in a 5xx body.
    assert_eq!(
        r.body["errors"][0]["extensions"]["reason"], "Service returned unexpected error",
        "{}",
        r.text
    );
}

#[tokio::test]
async fn a_directory_that_never_answers_times_out_instead_of_hanging_the_login() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let app = spawn_corp(
        &format!("ldap://{addr}"),
        &[("AUTH_CORP_CLIENT__TIMEOUT", "300")],
    )
    .await;
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        ldap_login(&app, json!({"identifier": "alice", "password": "alicepw"})),
    )
    .await
    .expect("the login must not hang");
    r.assert_error(503, "SERVICE_UNAVAILABLE");
    hold.abort();
}

#[tokio::test]
async fn the_form_login_keeps_directus_s_answer_without_an_ldap_provider() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/auth/login",
            None,
            json!({"email": "a@example.com", "password": "x", "mode": "ldap"}),
        )
        .await;
    r.assert_error(400, "INVALID_PAYLOAD");
    assert_eq!(
        r.body["errors"][0]["extensions"]["reason"],
        "\"mode\" must be one of [cookie, json, session]"
    );
}

#[test]
fn misconfigured_providers_stop_the_start_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Option<&str>, &str)> = vec![
        (
            "AUTH_CORP_CLIENT_URL",
            None,
            "AUTH_CORP_CLIENT_URL is required",
        ),
        ("AUTH_CORP_USER_DN", None, "AUTH_CORP_USER_DN is required"),
        ("AUTH_CORP_BIND_DN", None, "AUTH_CORP_BIND_DN is required"),
        (
            "AUTH_CORP_CLIENT_URL",
            Some("https://ldap.example.org"),
            "AUTH_CORP_CLIENT_URL=",
        ),
        (
            "AUTH_CORP_USER_ATTRIBUTE",
            Some("uid)(uid=*"),
            "AUTH_CORP_USER_ATTRIBUTE=",
        ),
        (
            "AUTH_CORP_USER_SCOPE",
            Some("subtree"),
            "AUTH_CORP_USER_SCOPE=",
        ),
    ];
    for (key, value, want) in cases {
        let mut vars = base_vars(dir.path());
        vars.extend(corp("ldap://127.0.0.1:9"));
        vars.retain(|(k, _)| k != key);
        if let Some(v) = value {
            vars.push((key.to_string(), v.to_string()));
        }
        let err = Config::from_vars(&Vars::from_pairs(vars).unwrap())
            .err()
            .unwrap_or_else(|| panic!("{key}={value:?} was accepted"));
        assert!(err.to_string().contains(want), "{key}: {err}");
    }
}

// ---- against scripts/ldap.sh's directory ---------------------------------------------

#[tokio::test]
#[ignore = "needs TEST_LDAP_URL (scripts/ldap.sh url)"]
async fn logins_answer_as_directus_in_every_mode() {
    let app = spawn_corp(&ldap_url(), &[]).await;
    // json: access_token, expires, refresh_token.
    let r = ldap_login(&app, json!({"identifier": "alice", "password": "alicepw"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let keys: Vec<&String> = r.data().as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access_token", "expires", "refresh_token"]);
    assert_eq!(r.data()["expires"], 900000);
    assert!(r.set_cookie("directus_refresh_token").is_none());
    // The access token works, and the user was created from the entry (Directus's fields).
    let me = app
        .get("/users/me?fields=id", r.data()["access_token"].as_str())
        .await;
    assert_eq!(me.status, 200, "{}", me.text);
    let row = user_row(&app, "uid=alice,ou=people,dc=example,dc=org").await;
    assert_eq!(row["id"], me.data()["id"]);
    assert_eq!(row["email"], "alice@example.org");
    assert_eq!(row["first_name"], "Alice");
    assert_eq!(row["last_name"], "Liddell");
    assert_eq!(row["provider"], "corp");
    assert_eq!(
        row["external_identifier"],
        "uid=alice,ou=people,dc=example,dc=org"
    );
    assert_eq!(row["status"], "active");
    // Without GROUP_DN and DEFAULT_ROLE_ID: no role.
    assert_eq!(row["role"], Value::Null);

    // cookie: the refresh token in the cookie, the access token in the body.
    let r = ldap_login(
        &app,
        json!({"identifier": "alice", "password": "alicepw", "mode": "cookie"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let keys: Vec<&String> = r.data().as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access_token", "expires"]);
    let refresh = r
        .cookie_value("directus_refresh_token")
        .expect("refresh cookie");
    assert_eq!(refresh.len(), 64);
    let again = app
        .post_with_cookie(
            "/auth/refresh",
            &format!("directus_refresh_token={refresh}"),
            json!({"mode": "cookie"}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.text);

    // session: unlike a local login, the access token is in the body too.
    let r = ldap_login(
        &app,
        json!({"identifier": "alice", "password": "alicepw", "mode": "session"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let keys: Vec<&String> = r.data().as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access_token", "expires"]);
    assert_eq!(r.data()["expires"], 86400000);
    assert_eq!(
        r.cookie_value("directus_session_token").as_deref(),
        r.data()["access_token"].as_str()
    );
    // One user for the three logins.
    let admin = app.admin_token().await;
    let users = app
        .get("/users?filter[provider][_eq]=corp", Some(&admin))
        .await;
    assert_eq!(users.data().as_array().unwrap().len(), 1, "{}", users.text);
}

#[tokio::test]
#[ignore = "needs TEST_LDAP_URL (scripts/ldap.sh url)"]
async fn wrong_passwords_and_filter_injections_are_invalid_credentials() {
    let app = spawn_corp(&ldap_url(), &[]).await;
    for (identifier, password) in [
        ("alice", "wrong"),
        ("alice", "bobpw"),
        ("nobody", "x"),
        ("*", "alicepw"),
        ("*)(uid=*", "alicepw"),
        ("alice)(|(uid=*", "alicepw"),
        ("admin)(|(uid=*", "alicepw"),
        ("al*", "alicepw"),
        ("alice\0", "alicepw"),
        ("alice)(userPassword=*", "alicepw"),
    ] {
        let r = ldap_login(
            &app,
            json!({"identifier": identifier, "password": password}),
        )
        .await;
        r.assert_error(401, "INVALID_CREDENTIALS");
    }
    // An identifier several entries share is refused, not resolved to one of them.
    let app = spawn_corp(&ldap_url(), &[("AUTH_CORP_USER_ATTRIBUTE", "cn")]).await;
    let r = ldap_login(&app, json!({"identifier": "Twin", "password": "twinpw"})).await;
    r.assert_error(401, "INVALID_CREDENTIALS");
    // Nobody was created by any of this.
    let admin = app.admin_token().await;
    let users = app
        .get("/users?filter[provider][_eq]=corp", Some(&admin))
        .await;
    assert_eq!(users.data().as_array().unwrap().len(), 0, "{}", users.text);
}

#[tokio::test]
#[ignore = "needs TEST_LDAP_URL (scripts/ldap.sh url)"]
async fn a_dn_with_an_escaped_comma_signs_in_and_finds_its_groups() {
    let app = spawn_corp(
        &ldap_url(),
        &[("AUTH_CORP_GROUP_DN", "ou=groups,dc=example,dc=org")],
    )
    .await;
    let admin = app.admin_token().await;
    let editors = app.create_role(&admin, "Editors", false, true).await;
    let r = ldap_login(&app, json!({"identifier": "jsmith", "password": "smithpw"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let admin_rows = app
        .get("/users?filter[provider][_eq]=corp", Some(&admin))
        .await;
    let me = admin_rows.data()[0].clone();
    let dn = me["external_identifier"].as_str().unwrap().to_lowercase();
    // The server's spelling of `cn=Smith\, John`: one RDN whose value holds a comma.
    assert!(
        dn == r"cn=smith\, john,ou=people,dc=example,dc=org"
            || dn == r"cn=smith\2c john,ou=people,dc=example,dc=org",
        "{dn}"
    );
    assert_eq!(me["role"], editors.as_str(), "{me}");
    // And again with the DN as found: the same row.
    let r = ldap_login(&app, json!({"identifier": "jsmith", "password": "smithpw"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(user_row(&app, &dn).await["id"], me["id"]);
    let all = app
        .get("/users?filter[provider][_eq]=corp", Some(&admin))
        .await;
    assert_eq!(all.data().as_array().unwrap().len(), 1, "{}", all.text);
}

#[tokio::test]
#[ignore = "needs TEST_LDAP_URL (scripts/ldap.sh url)"]
async fn the_role_follows_group_membership_on_every_login() {
    let app = spawn_corp(
        &ldap_url(),
        &[("AUTH_CORP_GROUP_DN", "ou=groups,dc=example,dc=org")],
    )
    .await;
    let admin = app.admin_token().await;
    let fallback = app.create_role(&admin, "Fallback", false, true).await;
    // bob is in "editors": no role has that name yet, so no role.
    let r = ldap_login(&app, json!({"identifier": "bob", "password": "bobpw"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let bob = user_row(&app, "uid=bob,ou=people,dc=example,dc=org").await;
    assert_eq!(bob["role"], Value::Null);
    // A role named like the group (case-insensitively) is picked up at the next login.
    let editors = app.create_role(&admin, "EDITORS", false, true).await;
    let r = ldap_login(&app, json!({"identifier": "bob", "password": "bobpw"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let bob = user_row(&app, "uid=bob,ou=people,dc=example,dc=org").await;
    assert_eq!(bob["role"], editors.as_str());
    // A role set by hand is overwritten by the groups at the next login (Directus does so).
    let id = bob["id"].as_str().unwrap().to_string();
    let p = app
        .patch(
            &format!("/users/{id}"),
            Some(&admin),
            json!({"role": fallback}),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    let r = ldap_login(&app, json!({"identifier": "bob", "password": "bobpw"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        user_row(&app, "uid=bob,ou=people,dc=example,dc=org").await["role"],
        editors.as_str()
    );
}

#[tokio::test]
#[ignore = "needs TEST_LDAP_URL (scripts/ldap.sh url)"]
async fn memberuid_groups_and_the_default_role() {
    let role = uuid::Uuid::new_v4().to_string();
    let app = spawn_corp(
        &ldap_url(),
        &[
            ("AUTH_CORP_GROUP_DN", "ou=posix,dc=example,dc=org"),
            ("AUTH_CORP_GROUP_ATTRIBUTE", "memberUid"),
            ("AUTH_CORP_DEFAULT_ROLE_ID", &role),
        ],
    )
    .await;
    let admin = app.admin_token().await;
    let staff = app.create_role(&admin, "staff", false, true).await;
    // A role with the configured default id, for carol (no posix group).
    let created = app
        .post(
            "/roles",
            Some(&admin),
            json!({"id": role, "name": "Default"}),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let r = ldap_login(&app, json!({"identifier": "bob", "password": "bobpw"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        user_row(&app, "uid=bob,ou=people,dc=example,dc=org").await["role"],
        staff.as_str()
    );
    let r = ldap_login(&app, json!({"identifier": "carol", "password": "carolpw"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        user_row(&app, "uid=carol,ou=people,dc=example,dc=org").await["role"],
        role.as_str()
    );
}

#[tokio::test]
#[ignore = "needs TEST_LDAP_URL (scripts/ldap.sh url)"]
async fn the_form_login_with_mode_ldap_reaches_the_ldap_provider() {
    let app = spawn_corp(&ldap_url(), &[]).await;
    let r = app
        .post(
            "/auth/login",
            None,
            json!({"identifier": "alice", "password": "alicepw", "mode": "ldap"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.data()["refresh_token"].is_string(), "{}", r.text);
    // `email` stands in for `identifier` (the form's field).
    let r = app
        .post(
            "/auth/login",
            None,
            json!({"email": "alice", "password": "alicepw", "mode": "ldap"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .post(
            "/auth/login",
            None,
            json!({"email": "alice", "password": "nope", "mode": "ldap"}),
        )
        .await;
    r.assert_error(401, "INVALID_CREDENTIALS");
    let r = app
        .post(
            "/auth/login",
            None,
            json!({"email": "alice", "password": "alicepw", "mode": "ldap", "provider": "other"}),
        )
        .await;
    r.assert_error(400, "INVALID_PAYLOAD");
}

#[tokio::test]
#[ignore = "needs TEST_LDAP_URL (scripts/ldap.sh url)"]
async fn a_refused_service_account_is_invalid_provider_config() {
    let app = spawn_corp(
        &ldap_url(),
        &[("AUTH_CORP_BIND_PASSWORD", "not-the-password")],
    )
    .await;
    let r = ldap_login(&app, json!({"identifier": "alice", "password": "alicepw"})).await;
    r.assert_error(503, "INVALID_PROVIDER_CONFIG");
    assert_eq!(
        r.body["errors"][0]["extensions"]["provider"], "corp",
        "{}",
        r.text
    );
}

#[tokio::test]
#[ignore = "needs TEST_LDAP_URL (scripts/ldap.sh url)"]
async fn tfa_applies_to_ldap_users() {
    let app = spawn_corp(&ldap_url(), &[]).await;
    let r = ldap_login(&app, json!({"identifier": "carol", "password": "carolpw"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Enrol carol (a role-less user cannot write her own row through the API).
    let id = user_row(&app, "uid=carol,ou=people,dc=example,dc=org").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = gatehouse::totp::new_secret();
    let mut patch = gatehouse::store::Item::new();
    patch.insert("tfa_secret".into(), json!(secret));
    app.auth
        .store
        .items
        .item_update(&gatehouse::store::USERS, &id.into(), &patch)
        .await
        .unwrap();
    app.freeze_at_totp_step();
    // The password first: a wrong one without otp is INVALID_CREDENTIALS.
    let r = ldap_login(&app, json!({"identifier": "carol", "password": "wrong"})).await;
    r.assert_error(401, "INVALID_CREDENTIALS");
    let r = ldap_login(&app, json!({"identifier": "carol", "password": "carolpw"})).await;
    r.assert_error(401, "INVALID_OTP");
    let right = gatehouse::totp::generate(&secret, app.auth.now()).unwrap();
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = ldap_login(
        &app,
        json!({"identifier": "carol", "password": "carolpw", "otp": wrong}),
    )
    .await;
    r.assert_error(401, "INVALID_OTP");
    app.advance(Duration::from_secs(30));
    let otp = gatehouse::totp::generate(&secret, app.auth.now()).unwrap();
    let r = ldap_login(
        &app,
        json!({"identifier": "carol", "password": "carolpw", "otp": otp}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
#[ignore = "needs TEST_LDAP_URL (scripts/ldap.sh url)"]
async fn refresh_checks_that_the_entry_still_exists() {
    let app = spawn_corp(&ldap_url(), &[]).await;
    let r = ldap_login(&app, json!({"identifier": "alice", "password": "alicepw"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let refresh = r.data()["refresh_token"].as_str().unwrap().to_string();
    let ok = app
        .post("/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let refresh = ok.data()["refresh_token"].as_str().unwrap().to_string();
    // Point the account at an entry the directory does not have.
    let admin = app.admin_token().await;
    let id = user_row(&app, "uid=alice,ou=people,dc=example,dc=org").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let p = app
        .patch(
            &format!("/users/{id}"),
            Some(&admin),
            json!({"external_identifier": format!("uid=gone,{PEOPLE}")}),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    let gone = app
        .post("/auth/refresh", None, json!({"refresh_token": refresh}))
        .await;
    gone.assert_error(401, "INVALID_CREDENTIALS");
}

#[tokio::test]
#[ignore = "needs TEST_LDAP_URL (scripts/ldap.sh url)"]
async fn starttls_and_ldaps_verify_the_certificate() {
    let ca = ldap_ca();
    let body = json!({"identifier": "bob", "password": "bobpw"});
    // StartTLS with the CA.
    let app = spawn_corp(
        &ldap_url(),
        &[
            ("AUTH_CORP_CLIENT__START_TLS", "true"),
            ("AUTH_CORP_CLIENT__TLS_OPTIONS__CA", &ca),
        ],
    )
    .await;
    let r = ldap_login(&app, body.clone()).await;
    assert_eq!(r.status, 200, "StartTLS: {}", r.text);
    // LDAPS with the CA.
    let app = spawn_corp(&ldaps_url(), &[("AUTH_CORP_CLIENT__TLS_OPTIONS__CA", &ca)]).await;
    let r = ldap_login(&app, body.clone()).await;
    assert_eq!(r.status, 200, "LDAPS: {}", r.text);
    // Without the CA, the self-signed certificate is refused: verification is on by default.
    let app = spawn_corp(&ldaps_url(), &[]).await;
    ldap_login(&app, body.clone())
        .await
        .assert_error(503, "SERVICE_UNAVAILABLE");
    let app = spawn_corp(&ldap_url(), &[("AUTH_CORP_CLIENT__START_TLS", "true")]).await;
    ldap_login(&app, body.clone())
        .await
        .assert_error(503, "SERVICE_UNAVAILABLE");
    // A certificate for another name is refused even with the CA (it names 127.0.0.1 and localhost).
    let other = ldaps_url().replace("127.0.0.1", "127.0.0.2");
    let app = spawn_corp(&other, &[("AUTH_CORP_CLIENT__TLS_OPTIONS__CA", &ca)]).await;
    ldap_login(&app, body.clone())
        .await
        .assert_error(503, "SERVICE_UNAVAILABLE");
    // Only when told to, any certificate is taken.
    let app = spawn_corp(
        &ldaps_url(),
        &[(
            "AUTH_CORP_CLIENT__TLS_OPTIONS__REJECT_UNAUTHORIZED",
            "false",
        )],
    )
    .await;
    let r = ldap_login(&app, body).await;
    assert_eq!(r.status, 200, "no verification: {}", r.text);
}

#[tokio::test]
#[ignore = "needs TEST_LDAP_URL (scripts/ldap.sh url)"]
async fn concurrent_first_logins_share_the_pool_and_create_one_user() {
    let app = spawn_corp(&ldap_url(), &[("AUTH_CORP_CLIENT__POOL_SIZE", "2")]).await;
    let logins = (0..8).map(|i| {
        let (id, pw) = if i % 2 == 0 {
            ("alice", "alicepw")
        } else {
            ("bob", "wrong")
        };
        ldap_login(&app, json!({"identifier": id, "password": pw}))
    });
    let results = futures::future::join_all(logins).await;
    for (i, r) in results.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(r.status, 200, "{}", r.text);
        } else {
            r.assert_error(401, "INVALID_CREDENTIALS");
        }
    }
    let admin = app.admin_token().await;
    let users = app
        .get("/users?filter[provider][_eq]=corp", Some(&admin))
        .await;
    assert_eq!(users.data().as_array().unwrap().len(), 1, "{}", users.text);
}

/// `/server/health` binds as the service account and reads `USER_DN`: ok with the directory
/// of scripts/ldap.sh, an error (the answer only `warn`) with a refused bind.
#[tokio::test]
#[ignore = "needs TEST_LDAP_URL (scripts/ldap.sh url)"]
async fn health_checks_the_service_bind() {
    let app = spawn_corp(&ldap_url(), &[]).await;
    let admin = app.admin_token().await;
    let r = app.get("/server/health", Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["checks"]["auth:corp:responseTime"][0]["status"], "ok",
        "{}",
        r.text
    );

    let app = spawn_corp(
        &ldap_url(),
        &[("AUTH_CORP_BIND_PASSWORD", "not-the-password")],
    )
    .await;
    let admin = app.admin_token().await;
    let r = app.get("/server/health", Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "warn", "{}", r.text);
    let c = &r.body["checks"]["auth:corp:responseTime"][0];
    assert_eq!(c["status"], "error", "{}", r.text);
    assert!(!r.text.contains("not-the-password"), "{}", r.text);
}
