//! OpenID Connect sign-in against the in-process provider (tests/api/sso_fake_idp.rs): the start
//! redirect and its state cookie, every check of the callback with the `reason` Directus gives,
//! registration, role mapping, sync, TFA and the provider refresh behind `POST /auth/refresh`.

use std::collections::HashMap;

use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::sso_fake_idp::{FakeIdp, CLIENT_ID, CLIENT_SECRET};

pub const PUBLIC: &str = "http://gatehouse.test/cms";

pub fn oidc_vars(idp: &FakeIdp, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = vec![
        ("PUBLIC_URL", PUBLIC.to_string()),
        ("AUTH_PROVIDERS", "acme".into()),
        ("AUTH_ACME_DRIVER", "openid".into()),
        ("AUTH_ACME_CLIENT_ID", CLIENT_ID.into()),
        ("AUTH_ACME_CLIENT_SECRET", CLIENT_SECRET.into()),
        ("AUTH_ACME_ISSUER_URL", idp.issuer()),
        ("AUTH_ACME_ALLOW_PUBLIC_REGISTRATION", "true".into()),
        ("AUTH_ACME_CLIENT_HTTP_TIMEOUT", "1s".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, val) in extra {
        v.retain(|(n, _)| n != k);
        v.push((k.to_string(), val.to_string()));
    }
    v
}

pub async fn spawn_oidc(idp: &FakeIdp, extra: &[(&str, &str)]) -> TestApp {
    let vars = oidc_vars(idp, extra);
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn_with(&pairs).await
}

/// One browser's way through the flow, cookies handled by hand so every header can be read.
pub struct Flow {
    pub location: String,
    pub state_cookie: String,
    pub cookie_name: String,
}

pub async fn get_raw(app: &TestApp, path: &str, cookie: Option<&str>) -> Resp {
    let mut req = app.client.get(format!("{}{path}", app.base));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    read(req.send().await.unwrap()).await
}

pub async fn start(app: &TestApp, provider: &str, query: &str) -> (Resp, Option<Flow>) {
    let r = get_raw(app, &format!("/auth/login/{provider}{query}"), None).await;
    let provider = provider.to_ascii_lowercase();
    let driver = if r.set_cookie(&format!("openid.{provider}")).is_some() {
        "openid"
    } else {
        "oauth2"
    };
    let name = format!("{driver}.{provider}");
    let flow = r.cookie_value(&name).map(|c| Flow {
        location: r.headers["location"].to_str().unwrap().to_string(),
        state_cookie: c,
        cookie_name: name,
    });
    (r, flow)
}

/// Runs the provider's side and the callback; returns the callback's answer.
pub async fn finish(app: &TestApp, idp: &FakeIdp, flow: &Flow) -> Resp {
    let (_, query) = idp.authorize(&flow.location);
    callback(app, flow, &query).await
}

pub async fn callback(app: &TestApp, flow: &Flow, query: &str) -> Resp {
    let provider = flow.cookie_name.split('.').nth(1).unwrap();
    get_raw(
        app,
        &format!("/auth/login/{provider}/callback?{query}"),
        Some(&format!("{}={}", flow.cookie_name, flow.state_cookie)),
    )
    .await
}

pub fn location(r: &Resp) -> String {
    r.headers
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn jwt_claims(jwt: &str) -> Value {
    let p = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .unwrap(),
    )
    .unwrap()
}

/// Signs in through the provider and returns the session cookie's value.
pub async fn sign_in(app: &TestApp, idp: &FakeIdp, query: &str) -> String {
    let (_, flow) = start(app, "acme", query).await;
    let r = finish(app, idp, &flow.unwrap()).await;
    assert_eq!(r.status, 302, "{}", location(&r));
    r.cookie_value("directus_session_token")
        .unwrap_or_else(|| panic!("no session cookie; went to {}", location(&r)))
}

async fn me(app: &TestApp, session: &str) -> Resp {
    get_raw(
        app,
        "/users/me?fields=*",
        Some(&format!("directus_session_token={session}")),
    )
    .await
}

async fn user_by_email(app: &TestApp, email: &str) -> Value {
    let admin = app.admin_token().await;
    let r = app
        .get(
            &format!("/users?filter[email][_eq]={email}&fields=*"),
            Some(&admin),
        )
        .await;
    r.data()[0].clone()
}

#[tokio::test]
async fn the_start_redirect_carries_pkce_state_nonce_and_a_signed_state_cookie() {
    let idp = FakeIdp::start().await;
    let app = spawn_oidc(
        &idp,
        &[
            (
                "AUTH_ACME_PARAMS",
                "json:{\"hd\":\"a.example,b.example\",\"scope\":\"openid email\"}",
            ),
            ("AUTH_ACME_COOKIE_SECURE", "true"),
        ],
    )
    .await;
    let (r, flow) = start(&app, "acme", "?redirect=/admin/content&otp=123456").await;
    assert_eq!(r.status, 302);
    assert_eq!(r.headers["cache-control"], "no-store");
    let flow = flow.unwrap();
    assert!(flow
        .location
        .starts_with(&format!("{}/authorize?", idp.base)));
    let q = query_of(&flow.location);
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["response_type"], "code");
    // The callback keeps PUBLIC_URL's sub-path (Directus #26236).
    assert_eq!(
        q["redirect_uri"],
        format!("{PUBLIC}/auth/login/acme/callback")
    );
    assert_eq!(q["scope"], "openid email", "PARAMS replace the scope");
    assert_eq!(q["hd"], "a.example,b.example");
    assert_eq!(q["access_type"], "offline");
    assert!(!q.contains_key("prompt"));
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["state"], q["code_challenge"]);
    assert_eq!(q["nonce"], q["code_challenge"]);
    let set = r.set_cookie("openid.acme").unwrap();
    assert!(set.contains("; Path=/"), "{set}");
    assert!(set.contains("; HttpOnly"), "{set}");
    assert!(set.contains("; Secure"), "{set}");
    assert!(set.contains("; SameSite=Lax"), "{set}");
    assert!(!set.contains("Max-Age"), "a browser-session cookie: {set}");
    let c = jwt_claims(&flow.state_cookie);
    assert_eq!(c["iss"], "directus");
    assert_eq!(c["redirect"], "/admin/content");
    assert_eq!(c["prompt"], false);
    assert_eq!(c["otp"], "123456");
    assert_eq!(
        c["callbackUrl"],
        format!("{PUBLIC}/auth/login/acme/callback")
    );
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 300);
    // The verifier is what the challenge was made from.
    let verifier = c["verifier"].as_str().unwrap();
    let s256 = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    assert_eq!(q["code_challenge"], s256);

    let (_, flow) = start(&app, "ACME", "?prompt=1").await;
    let q = query_of(&flow.unwrap().location);
    assert_eq!(q["prompt"], "consent");
    // Unknown providers are Directus's 404.
    let r = get_raw(&app, "/auth/login/nobody", None).await;
    r.assert_error(404, "ROUTE_NOT_FOUND");
}

#[tokio::test]
async fn plain_code_challenge_and_the_login_timeout() {
    let idp = FakeIdp::start().await;
    let app = spawn_oidc(
        &idp,
        &[
            ("AUTH_ACME_PLAIN_CODE_CHALLENGE", "true"),
            ("AUTH_ACME_LOGIN_TIMEOUT", "10m"),
        ],
    )
    .await;
    let (_, flow) = start(&app, "acme", "").await;
    let flow = flow.unwrap();
    let q = query_of(&flow.location);
    let c = jwt_claims(&flow.state_cookie);
    assert_eq!(q["code_challenge_method"], "plain");
    assert_eq!(q["code_challenge"], c["verifier"].as_str().unwrap());
    assert_eq!(c["redirect"], "/");
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 600);
    // And the plain flow completes.
    let r = finish(&app, &idp, &flow).await;
    assert_eq!(location(&r), "/");
    assert!(r.cookie_value("directus_session_token").is_some());
}

#[tokio::test]
async fn redirects_off_the_allow_list_are_refused_before_the_provider_is_asked() {
    let idp = FakeIdp::start().await;
    let app = spawn_oidc(
        &idp,
        &[(
            "AUTH_ACME_REDIRECT_ALLOW_LIST",
            "https://front.example/done",
        )],
    )
    .await;
    for bad in [
        "//evil.example",
        "/%5Cevil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "/%09/evil.example",
        "/%00",
        "/ok%0d%0aSet-Cookie:%20x=1",
        "https://front.example/done/more",
    ] {
        let (r, flow) = start(&app, "acme", &format!("?redirect={bad}")).await;
        r.assert_error(400, "INVALID_PAYLOAD");
        assert!(flow.is_none(), "no state cookie for {bad}");
        assert!(
            r.body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .ends_with("can't be used to redirect after login."),
            "{}",
            r.text
        );
    }
    let (r, _) = start(&app, "acme", "?redirect=/a&redirect=/b").await;
    r.assert_error(400, "INVALID_PAYLOAD");
    let (r, _) = start(&app, "acme", &format!("?redirect=/{}", "a".repeat(3000))).await;
    r.assert_error(400, "INVALID_PAYLOAD");
    // A huge otp is cut to a bounded length in the state cookie.
    let (r, flow) = start(&app, "acme", &format!("?otp={}", "9".repeat(5000))).await;
    assert_eq!(r.status, 302);
    let otp = jwt_claims(&flow.unwrap().state_cookie)["otp"]
        .as_str()
        .unwrap()
        .len();
    assert_eq!(otp, 64);
    for good in [
        "https://front.example/done?x=1",
        "http://gatehouse.test/cms/x",
        "/app",
    ] {
        let (r, _) = start(&app, "acme", &format!("?redirect={}", urlencode(good))).await;
        assert_eq!(r.status, 302, "{good}: {}", r.text);
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn a_login_lands_on_the_redirect_with_a_session_and_finds_the_user_again() {
    let idp = FakeIdp::start().await;
    let app = spawn_oidc(&idp, &[]).await;
    let (_, flow) = start(&app, "acme", "?redirect=/app/home%3Fa%3D1").await;
    let flow = flow.unwrap();
    let r = finish(&app, &idp, &flow).await;
    assert_eq!(r.status, 302);
    assert_eq!(location(&r), "/app/home?a=1");
    let clear = r.set_cookie("openid.acme").unwrap();
    assert!(
        clear.starts_with("openid.acme=; Path=/; Expires=Thu, 01 Jan 1970"),
        "{clear}"
    );
    let session = r.set_cookie("directus_session_token").unwrap();
    assert!(session.contains("HttpOnly"), "{session}");
    let session = r.cookie_value("directus_session_token").unwrap();
    let me1 = me(&app, &session).await;
    assert_eq!(me1.status, 200, "{}", me1.text);
    let row = user_by_email(&app, "ada@example.com").await;
    assert_eq!(row["id"], me1.data()["id"]);
    assert_eq!(row["provider"], "acme");
    assert_eq!(row["external_identifier"], "user-1");
    assert_eq!(row["first_name"], "Ada");
    assert!(row["auth_data"]["refreshToken"]
        .as_str()
        .unwrap()
        .starts_with("refresh-"));
    // The code works once: replaying the callback is invalid_grant -> restart with consent.
    let replay = callback(
        &app,
        &flow,
        &format!("code=code-1&state={}", query_of(&flow.location)["state"]),
    )
    .await;
    assert_eq!(location(&replay), "./?redirect=/app/home?a=1&prompt=true");
    // A second login finds the same account; without SYNC_USER_INFO the name stays.
    idp.claim("given_name", json!("Augusta"));
    let s2 = sign_in(&app, &idp, "").await;
    assert_eq!(me(&app, &s2).await.data()["id"], me1.data()["id"]);
    assert_eq!(
        user_by_email(&app, "ada@example.com").await["first_name"],
        "Ada"
    );
}

async fn role_with_id(app: &TestApp, admin: &str, id: &str, name: &str) {
    let r = app
        .post(
            "/roles",
            Some(admin),
            json!({"id": id, "name": name, "policies": [{"policy": {"name": format!("{name} policy"), "app_access": true}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn sync_user_info_and_role_mapping_follow_the_provider() {
    let idp = FakeIdp::start().await;
    let staff = uuid::Uuid::new_v4().to_string();
    let editors = uuid::Uuid::new_v4().to_string();
    let fallback = uuid::Uuid::new_v4().to_string();
    let mapping = format!("json:{{\"staff\":\"{staff}\",\"editors\":\"{editors}\"}}");
    let app = spawn_oidc(
        &idp,
        &[
            ("AUTH_ACME_ROLE_MAPPING", &mapping),
            ("AUTH_ACME_SYNC_USER_INFO", "true"),
            ("AUTH_ACME_GROUP_CLAIM_NAME", "roles"),
            ("AUTH_ACME_DEFAULT_ROLE_ID", &fallback),
        ],
    )
    .await;
    let admin = app.admin_token().await;
    role_with_id(&app, &admin, &staff, "Staff").await;
    role_with_id(&app, &admin, &editors, "Editors").await;
    role_with_id(&app, &admin, &fallback, "Fallback").await;
    // The first ROLE_MAPPING key among the groups wins, whatever the groups' order.
    idp.claim("roles", json!(["editors", "staff"]));
    let s = sign_in(&app, &idp, "").await;
    assert_eq!(me(&app, &s).await.data()["role"], staff);
    // On every login: the mapping moves the role, SYNC_USER_INFO the profile.
    idp.claim("roles", json!("editors"));
    idp.claim("given_name", json!("Augusta"));
    idp.claim("email", json!("augusta@example.com"));
    let s = sign_in(&app, &idp, "").await;
    let m = me(&app, &s).await;
    assert_eq!(m.data()["role"], editors);
    assert_eq!(m.data()["first_name"], "Augusta");
    assert_eq!(m.data()["email"], "augusta@example.com");
    // No mapped group: DEFAULT_ROLE_ID.
    idp.remove_claim("roles");
    let s = sign_in(&app, &idp, "").await;
    assert_eq!(me(&app, &s).await.data()["role"], fallback);
}
