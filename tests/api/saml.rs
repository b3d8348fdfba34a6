//! The `saml` driver (feature `saml`): metadata, the start of a login, the ACS and logout, with
//! responses signed here by `xmlsec1` from fixture keys (saml/idp.rs). Every refused response
//! answers as Directus's ACS does for a response samlify throws on: a redirect to the
//! RelayState with `?reason=UNKNOWN_EXCEPTION`; a login refused after the SAML checks carries
//! the login's code (`INVALID_CREDENTIALS`, `INVALID_OTP`, `INVALID_PROVIDER`).

mod attacks;
mod idp;

use std::io::Read;

use base64::Engine as _;
use gatehouse::store::USERS;
use serde_json::{json, Value};

use crate::helpers::{read, spawn_nodes, spawn_with, Resp, TestApp};
use idp::Spec;

pub async fn spawn_saml(extra: &[(&str, &str)]) -> TestApp {
    let mut vars: Vec<(&str, String)> = idp::provider_vars();
    for (k, v) in extra {
        vars.retain(|(n, _)| n != k);
        vars.push((k, v.to_string()));
    }
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    spawn_with(&pairs).await
}

pub const OPEN: &[(&str, &str)] = &[("AUTH_CORP_ALLOW_PUBLIC_REGISTRATION", "true")];

/// A started login: the AuthnRequest id (from the SAMLRequest the IdP would get) and the
/// `Cookie` header carrying the request cookie.
pub struct Started {
    pub request_id: String,
    pub cookie: String,
    pub location: url::Url,
}

pub async fn start(app: &TestApp, query: &str) -> Started {
    let r = read(
        app.client
            .get(app.url(&format!("/auth/login/corp{query}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 302, "{}", r.text);
    let location = url::Url::parse(r.headers["location"].to_str().unwrap()).unwrap();
    let xml = authn_request(&location);
    let request_id = attribute(&xml, "ID");
    let value = r.cookie_value("saml.corp").expect("request cookie");
    Started {
        request_id,
        cookie: format!("saml.corp={value}"),
        location,
    }
}

/// The inflated AuthnRequest of a redirect to the IdP.
pub fn authn_request(location: &url::Url) -> String {
    let encoded = location
        .query_pairs()
        .find(|(k, _)| k == "SAMLRequest")
        .expect("SAMLRequest")
        .1
        .into_owned();
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&deflated[..])
        .read_to_string(&mut xml)
        .unwrap();
    xml
}

/// The value of the first `name="..."` attribute in `xml`.
pub fn attribute(xml: &str, name: &str) -> String {
    let key = format!(" {name}=\"");
    let at = xml.find(&key).unwrap_or_else(|| panic!("{name} in {xml}")) + key.len();
    xml[at..].split('"').next().unwrap().to_string()
}

/// Posts the ACS form as a browser would after the IdP's auto-submitting page.
pub async fn post_acs(
    app: &TestApp,
    cookie: Option<&str>,
    saml_response: &str,
    relay: Option<&str>,
) -> Resp {
    let mut form = vec![("SAMLResponse", saml_response.to_string())];
    if let Some(r) = relay {
        form.push(("RelayState", r.to_string()));
    }
    let mut req = app.client.post(app.url("/auth/login/corp/acs")).form(&form);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    read(req.send().await.unwrap()).await
}

/// Asserts Directus's redirect for a failed ACS login.
#[track_caller]
pub fn assert_reason(r: &Resp, relay: &str, reason: &str) {
    assert_eq!(r.status, 302, "{}", r.text);
    assert_eq!(
        r.headers["location"],
        format!("{relay}?reason={reason}").as_str(),
        "{:?}",
        r.headers
    );
    assert!(r.set_cookie("directus_session_token").is_none());
    assert!(r.set_cookie("directus_refresh_token").is_none());
}

async fn user_row(app: &TestApp, external: &str) -> Option<gatehouse::store::Item> {
    let admin = app.admin_token().await;
    let r = app
        .get(
            &format!("/users?filter[external_identifier][_eq]={external}&fields=*"),
            Some(&admin),
        )
        .await;
    r.data()
        .as_array()
        .and_then(|a| a.first())
        .and_then(Value::as_object)
        .cloned()
}

#[tokio::test]
async fn saml_metadata_is_served_as_configured() {
    let app = spawn_saml(&[]).await;
    let r = app.get("/auth/login/corp/metadata", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/xml; charset=utf-8");
    assert_eq!(r.text, idp::sp_metadata());
    // Only saml providers have these routes.
    app.get("/auth/login/other/metadata", None)
        .await
        .assert_error(404, "ROUTE_NOT_FOUND");
    let r = post_acs(&app, None, "x", None).await;
    assert_eq!(r.status, 401, "{}", r.text);
    let listed = app.get("/auth", None).await;
    assert_eq!(
        listed.data(),
        &json!([{"name": "corp", "driver": "saml"}]),
        "{}",
        listed.text
    );
}

#[tokio::test]
async fn saml_start_redirects_to_the_idp_with_an_authn_request_and_relay_state() {
    let app = spawn_saml(&[]).await;
    let s = start(&app, "?redirect=/admin/content").await;
    assert_eq!(
        format!(
            "{}://{}{}",
            s.location.scheme(),
            s.location.host_str().unwrap(),
            s.location.path()
        ),
        idp::IDP_SSO
    );
    let relay: Vec<_> = s
        .location
        .query_pairs()
        .filter(|(k, _)| k == "RelayState")
        .collect();
    assert_eq!(relay.len(), 1);
    assert_eq!(relay[0].1, "/admin/content");
    let xml = authn_request(&s.location);
    assert_eq!(attribute(&xml, "Destination"), idp::IDP_SSO);
    assert_eq!(attribute(&xml, "AssertionConsumerServiceURL"), idp::ACS);
    assert!(xml.contains(&format!(">{}</", idp::SP_ENTITY)), "{xml}");
    assert!(s.request_id.starts_with('_') && s.request_id.len() >= 33);
    // Two starts, two request ids.
    assert_ne!(start(&app, "").await.request_id, s.request_id);
    // The request cookie is HttpOnly and, over http, SameSite=Lax.
    let r = read(
        app.client
            .get(app.url("/auth/login/corp"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let c = r.set_cookie("saml.corp").unwrap();
    assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
    assert!(!r.headers["location"]
        .to_str()
        .unwrap()
        .contains("RelayState"));
}

#[tokio::test]
async fn saml_start_refuses_redirects_outside_the_allow_list() {
    let app = spawn_saml(&[("AUTH_CORP_REDIRECT_ALLOW_LIST", "https://app.example/done")]).await;
    for bad in [
        "http://evil.example/",
        "//evil.example",
        "javascript:alert(1)",
    ] {
        let r = app
            .get(
                &format!("/auth/login/corp?redirect={}", urlencode(bad)),
                None,
            )
            .await;
        r.assert_error(400, "INVALID_PAYLOAD");
        assert_eq!(
            r.body["errors"][0]["message"],
            format!("Invalid payload. URL \"{bad}\" can't be used to redirect after login.")
        );
    }
    // A repeated redirect (an array in Express) and control characters are refused too.
    for bad in ["?redirect=/a&redirect=/b", "?redirect=/%0A/evil.example"] {
        app.get(&format!("/auth/login/corp{bad}"), None)
            .await
            .assert_error(400, "INVALID_PAYLOAD");
    }
    let s = start(&app, "?redirect=https%3A%2F%2Fapp.example%2Fdone%3Fx%3D1").await;
    assert!(s
        .location
        .query_pairs()
        .any(|(k, v)| k == "RelayState" && v == "https://app.example/done?x=1"));
    // The ACS checks the RelayState again.
    let r = post_acs(&app, Some(&s.cookie), "x", Some("http://evil.example/")).await;
    r.assert_error(400, "INVALID_PAYLOAD");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn saml_login_creates_the_user_and_ends_on_the_redirect_with_a_session() {
    let app = spawn_saml(OPEN).await;
    let s = start(&app, "?redirect=/admin").await;
    let resp = Spec::good(&s.request_id, "Sam.Lee").encoded();
    let r = post_acs(&app, Some(&s.cookie), &resp, Some("/admin")).await;
    assert_eq!(r.status, 302, "{}", r.text);
    assert_eq!(r.headers["location"], "/admin");
    let session = r
        .cookie_value("directus_session_token")
        .expect("session cookie");
    // The request cookie is used up.
    let cleared = r.set_cookie("saml.corp").unwrap();
    assert!(cleared.starts_with("saml.corp=;"), "{cleared}");
    let me = app
        .request(
            reqwest::Method::GET,
            "/users/me",
            None,
            None,
            Some(&format!("directus_session_token={session}")),
        )
        .await;
    assert_eq!(me.status, 200, "{}", me.text);
    let row = user_row(&app, "sam.lee").await.expect("user row");
    assert_eq!(me.data()["id"], row["id"]);
    assert_eq!(row["email"], "Sam.Lee@example.com");
    assert_eq!(row["provider"], "corp");
    // Directus lower-cases the identifier of new SAML users.
    assert_eq!(row["external_identifier"], "sam.lee");
    assert_eq!(row["first_name"], "Sam");
    assert_eq!(row["last_name"], "Lee");
    assert_eq!(row["status"], "active");
}

#[tokio::test]
async fn saml_login_without_relay_state_answers_json_and_in_cookie_mode_sets_the_refresh_cookie() {
    let app = spawn_saml(&[OPEN[0], ("AUTH_CORP_MODE", "cookie")]).await;
    let s = start(&app, "").await;
    let r = post_acs(
        &app,
        Some(&s.cookie),
        &Spec::good(&s.request_id, "kim").encoded(),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let data = r.data();
    assert!(data["access_token"].is_string() && data["refresh_token"].is_string());
    assert!(data["expires"].is_u64(), "{}", r.text);
    assert!(r.set_cookie("directus_refresh_token").is_none());
    let me = app.get("/users/me", data["access_token"].as_str()).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.data()["id"], user_row(&app, "kim").await.unwrap()["id"]);
    // With a RelayState in cookie mode: the refresh cookie, not the session cookie.
    let s = start(&app, "?redirect=/done").await;
    let r = post_acs(
        &app,
        Some(&s.cookie),
        &Spec::good(&s.request_id, "kim").encoded(),
        Some("/done"),
    )
    .await;
    assert_eq!(r.status, 302, "{}", r.text);
    assert!(r
        .cookie_value("directus_refresh_token")
        .is_some_and(|v| v.len() == 64));
    assert!(r.set_cookie("directus_session_token").is_none());
}

#[tokio::test]
async fn saml_existing_users_log_in_without_registration_and_unknown_ones_are_refused() {
    let app = spawn_saml(&[]).await;
    let s = start(&app, "?redirect=/admin").await;
    let r = post_acs(
        &app,
        Some(&s.cookie),
        &Spec::good(&s.request_id, "ann").encoded(),
        Some("/admin"),
    )
    .await;
    assert_reason(&r, "/admin", "INVALID_CREDENTIALS");
    assert!(user_row(&app, "ann").await.is_none());
    // An account made by an admin for this provider logs in; the identifier matches
    // case-insensitively.
    let admin = app.admin_token().await;
    let made = app
        .post(
            "/users",
            Some(&admin),
            json!({"email": "ann@corp.example", "provider": "corp", "external_identifier": "ann"}),
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.text);
    let s = start(&app, "?redirect=/admin").await;
    let r = post_acs(
        &app,
        Some(&s.cookie),
        &Spec::good(&s.request_id, "ANN").encoded(),
        Some("/admin"),
    )
    .await;
    assert_eq!(r.status, 302);
    assert_eq!(r.headers["location"], "/admin");
    assert!(r.cookie_value("directus_session_token").is_some());
    // No profile sync for existing SAML users.
    assert_eq!(
        user_row(&app, "ann").await.unwrap()["email"],
        "ann@corp.example"
    );
}

#[tokio::test]
async fn saml_a_response_without_the_identifier_is_a_clear_refusal() {
    let app = spawn_saml(OPEN).await;
    let s = start(&app, "?redirect=/admin").await;
    let resp = Spec::good(&s.request_id, "zed")
        .without(idp::ID_KEY)
        .encoded();
    let r = post_acs(&app, Some(&s.cookie), &resp, Some("/admin")).await;
    assert_reason(&r, "/admin", "INVALID_CREDENTIALS");
    // Without a RelayState: the JSON error (Directus crashed here, #19379).
    let s = start(&app, "").await;
    let resp = Spec::good(&s.request_id, "zed")
        .without(idp::ID_KEY)
        .encoded();
    post_acs(&app, Some(&s.cookie), &resp, None)
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    // IDENTIFIER_KEY names another attribute.
    let app = spawn_saml(&[OPEN[0], ("AUTH_CORP_IDENTIFIER_KEY", "uid")]).await;
    let s = start(&app, "?redirect=/admin").await;
    let resp = Spec::good(&s.request_id, "zed")
        .attribute("uid", "Z-1")
        .encoded();
    let r = post_acs(&app, Some(&s.cookie), &resp, Some("/admin")).await;
    assert_eq!(r.status, 302);
    assert_eq!(r.headers["location"], "/admin", "{:?}", r.headers);
    assert!(user_row(&app, "z-1").await.is_some());
}

#[tokio::test]
async fn saml_an_email_taken_by_another_account_is_invalid_provider() {
    let app = spawn_saml(OPEN).await;
    let admin = app.admin_token().await;
    app.create_user(&admin, "dup@example.com", "password-123", None)
        .await;
    let s = start(&app, "?redirect=/admin").await;
    let r = post_acs(
        &app,
        Some(&s.cookie),
        &Spec::good(&s.request_id, "dup").encoded(),
        Some("/admin"),
    )
    .await;
    assert_reason(&r, "/admin", "INVALID_PROVIDER");
}

#[tokio::test]
async fn saml_a_user_with_tfa_fails_with_invalid_otp() {
    let app = spawn_saml(OPEN).await;
    let s = start(&app, "").await;
    let r = post_acs(
        &app,
        Some(&s.cookie),
        &Spec::good(&s.request_id, "tess").encoded(),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = user_row(&app, "tess").await.unwrap()["id"].clone();
    let mut patch = serde_json::Map::new();
    patch.insert("tfa_secret".into(), Value::from("JBSWY3DPEHPK3PXP"));
    assert!(app
        .auth
        .store
        .items
        .item_update(&USERS, &id, &patch)
        .await
        .unwrap());
    let s = start(&app, "?redirect=/admin").await;
    let r = post_acs(
        &app,
        Some(&s.cookie),
        &Spec::good(&s.request_id, "tess").encoded(),
        Some("/admin"),
    )
    .await;
    assert_reason(&r, "/admin", "INVALID_OTP");
}

#[tokio::test]
async fn saml_a_replay_fails_on_every_node() {
    let mut vars: Vec<(&str, String)> = idp::provider_vars();
    vars.push((OPEN[0].0, OPEN[0].1.to_string()));
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let nodes = spawn_nodes(2, &pairs).await;
    let s = start(&nodes[0], "?redirect=/admin").await;
    let resp = Spec::good(&s.request_id, "rita").encoded();
    let first = post_acs(&nodes[0], Some(&s.cookie), &resp, Some("/admin")).await;
    assert_eq!(first.headers["location"], "/admin", "{}", first.text);
    // The same response with the same (still valid) request cookie, on the other node and on
    // the first one again.
    for node in [&nodes[1], &nodes[0]] {
        let again = post_acs(node, Some(&s.cookie), &resp, Some("/admin")).await;
        assert_reason(&again, "/admin", "UNKNOWN_EXCEPTION");
    }
}

#[tokio::test]
async fn saml_logout_redirects_to_the_idp_and_ends_the_session() {
    let app = spawn_saml(OPEN).await;
    let s = start(&app, "?redirect=/admin").await;
    let r = post_acs(
        &app,
        Some(&s.cookie),
        &Spec::good(&s.request_id, "lou").encoded(),
        Some("/admin"),
    )
    .await;
    let session = format!(
        "directus_session_token={}",
        r.cookie_value("directus_session_token").unwrap()
    );
    let out = read(
        app.client
            .post(app.url("/auth/login/corp/logout"))
            .header("cookie", &session)
            .json(&json!({"logoutNameID": "lou@example.com"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(out.status, 302, "{}", out.text);
    let to = url::Url::parse(out.headers["location"].to_str().unwrap()).unwrap();
    assert!(to.as_str().starts_with(idp::IDP_SLO), "{to}");
    let xml = authn_request(&to);
    assert!(
        xml.contains("LogoutRequest") && xml.contains(">lou@example.com</"),
        "{xml}"
    );
    assert_eq!(attribute(&xml, "Destination"), idp::IDP_SLO);
    let cleared = out.set_cookie("directus_session_token").unwrap();
    assert!(cleared.starts_with("directus_session_token=;"), "{cleared}");
    // The session is over: its cookie no longer works.
    let me = app
        .request(
            reqwest::Method::GET,
            "/users/me",
            None,
            None,
            Some(&session),
        )
        .await;
    assert_eq!(me.status, 401, "{}", me.text);
    // Without a session cookie: just the redirect.
    let out = read(
        app.client
            .post(app.url("/auth/login/corp/logout"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(out.status, 302);
    assert!(out.set_cookie("directus_session_token").is_none());
}

#[tokio::test]
async fn saml_metadata_problems_stop_the_start_with_the_variable_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = |extra: &[(&str, String)]| {
        let mut vars = crate::helpers::base_vars(dir.path());
        for (k, v) in idp::provider_vars()
            .into_iter()
            .chain(extra.iter().cloned())
        {
            vars.retain(|(n, _)| n != k);
            vars.push((k.to_string(), v));
        }
        gatehouse::config::Config::from_vars(&gatehouse::config::Vars::from_pairs(vars).unwrap())
    };
    let no_cert = idp::idp_metadata().replace(&idp::cert_b64("idp"), "");
    for (extra, want) in [
        (
            vec![("AUTH_CORP_IDP_metadata", String::new())],
            "AUTH_CORP_IDP_metadata is not set",
        ),
        (
            vec![("AUTH_CORP_SP_metadata", "<nope".to_string())],
            "AUTH_CORP_SP_metadata",
        ),
        (
            vec![("AUTH_CORP_IDP_metadata", no_cert)],
            "AUTH_CORP_IDP_metadata",
        ),
        (
            vec![(
                "AUTH_CORP_SP_metadata",
                idp::sp_metadata().replace(
                    "AuthnRequestsSigned=\"false\"",
                    "AuthnRequestsSigned=\"true\"",
                ),
            )],
            "AuthnRequestsSigned",
        ),
    ] {
        let err = match config(&extra) {
            Err(e) => e.to_string(),
            Ok(c) => {
                match gatehouse::App::build(c, std::sync::Arc::new(gatehouse::clock::SystemClock))
                    .await
                {
                    Err(e) => format!("{e:#}"),
                    Ok(_) => panic!("started with {extra:?}"),
                }
            }
        };
        assert!(err.contains(want), "{err}");
    }
}

#[tokio::test]
async fn saml_behind_https_the_request_cookie_survives_the_idps_cross_site_post() {
    let app = spawn_saml(&[("PUBLIC_URL", "https://sp.test")]).await;
    let r = read(
        app.client
            .get(app.url("/auth/login/corp"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let c = r.set_cookie("saml.corp").unwrap();
    assert!(c.contains("; Secure; SameSite=None"), "{c}");
    let app = spawn_saml(&[("AUTH_CORP_COOKIE_SECURE", "true")]).await;
    let r = read(
        app.client
            .get(app.url("/auth/login/corp"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(r
        .set_cookie("saml.corp")
        .unwrap()
        .contains("; Secure; SameSite=None"));
}
