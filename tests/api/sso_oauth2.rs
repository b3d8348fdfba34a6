//! The generic `oauth2` driver against the fake provider's endpoints: no ID token, the profile
//! read with dotted keys, client authentication in the body, and Directus's JSON 401 for a
//! missing state cookie.

use serde_json::json;

use crate::helpers::*;
use crate::sso_fake_idp::{FakeIdp, Fault, CLIENT_ID, CLIENT_SECRET};
use crate::sso_oidc::*;

async fn spawn_oauth2(idp: &FakeIdp, extra: &[(&str, &str)]) -> TestApp {
    let b = &idp.base;
    let mut vars: Vec<(String, String)> = [
        ("PUBLIC_URL", PUBLIC.to_string()),
        ("AUTH_PROVIDERS", "gen".into()),
        ("AUTH_GEN_DRIVER", "oauth2".into()),
        ("AUTH_GEN_CLIENT_ID", CLIENT_ID.into()),
        ("AUTH_GEN_CLIENT_SECRET", CLIENT_SECRET.into()),
        ("AUTH_GEN_AUTHORIZE_URL", format!("{b}/authorize?tenant=t1")),
        ("AUTH_GEN_ACCESS_URL", format!("{b}/token")),
        ("AUTH_GEN_PROFILE_URL", format!("{b}/userinfo")),
        ("AUTH_GEN_ALLOW_PUBLIC_REGISTRATION", "true".into()),
        ("AUTH_GEN_MODE", "cookie".into()),
        ("AUTH_GEN_CLIENT_HTTP_TIMEOUT", "500ms".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in extra {
        vars.retain(|(n, _)| n != k);
        vars.push((k.to_string(), v.to_string()));
    }
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn_with(&pairs).await
}

#[tokio::test]
async fn the_oauth2_driver_reads_the_profile_with_dotted_keys() {
    let idp = FakeIdp::start().await;
    let app = spawn_oauth2(
        &idp,
        &[
            ("AUTH_GEN_IDENTIFIER_KEY", "data.id"),
            ("AUTH_GEN_EMAIL_KEY", "data.mail"),
            ("AUTH_GEN_FIRST_NAME_KEY", "data.name.first"),
            ("AUTH_GEN_SCOPE", "read:user,user:email"),
            (
                "AUTH_GEN_CLIENT_TOKEN_ENDPOINT_AUTH_METHOD",
                "client_secret_post",
            ),
        ],
    )
    .await;
    idp.claim(
        "data",
        json!({"id": 99, "mail": "grace@example.com", "name": {"first": "Grace"}}),
    );
    let (r, flow) = start(&app, "gen", "?redirect=/app").await;
    assert_eq!(r.status, 302);
    let flow = flow.unwrap();
    assert_eq!(flow.cookie_name, "oauth2.gen");
    assert!(flow
        .location
        .starts_with(&format!("{}/authorize?tenant=t1&client_id=", idp.base)));
    let q: std::collections::HashMap<String, String> = url::Url::parse(&flow.location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(q["scope"], "read:user,user:email");
    assert!(!q.contains_key("nonce"), "oauth2 sends no nonce");
    assert_eq!(q["state"], q["code_challenge"]);
    let r = finish(&app, &idp, &flow).await;
    assert_eq!(location(&r), "/app");
    assert_eq!(idp.state.lock().unwrap().last_client_auth, "post");
    // MODE other than session: the refresh cookie, no session cookie.
    let refresh = r
        .cookie_value("directus_refresh_token")
        .expect("refresh cookie");
    assert!(r.cookie_value("directus_session_token").is_none());
    let r = app
        .post_with_cookie(
            "/auth/refresh",
            &format!("directus_refresh_token={refresh}"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.data()["access_token"].as_str().unwrap().to_string();
    let me = app.get("/users/me", Some(&token)).await;
    assert_eq!(me.status, 200, "{}", me.text);
    let admin = app.admin_token().await;
    let row = app
        .get(
            &format!("/users/{}", me.data()["id"].as_str().unwrap()),
            Some(&admin),
        )
        .await;
    let me = row;
    assert_eq!(me.data()["email"], "grace@example.com");
    assert_eq!(me.data()["external_identifier"], "99");
    assert_eq!(me.data()["first_name"], "Grace");
    assert_eq!(me.data()["provider"], "gen");
}

#[tokio::test]
async fn oauth2_cookie_errors_are_json_and_provider_errors_redirect() {
    let idp = FakeIdp::start().await;
    let app = spawn_oauth2(&idp, &[]).await;
    let r = get_raw(&app, "/auth/login/gen/callback?code=x&state=y", None).await;
    r.assert_error(401, "INVALID_CREDENTIALS");
    assert!(r.set_cookie("oauth2.gen").unwrap().contains("1970"));
    // Without IDENTIFIER_KEY the email identifies the user; the default basic auth is used.
    let (_, flow) = start(&app, "gen", "?redirect=/app").await;
    let r = finish(&app, &idp, &flow.unwrap()).await;
    assert_eq!(location(&r), "/app");
    assert_eq!(idp.state.lock().unwrap().last_client_auth, "basic");
    let admin = app.admin_token().await;
    let row = app
        .get(
            "/users?filter[provider][_eq]=gen&fields=external_identifier",
            Some(&admin),
        )
        .await;
    assert_eq!(row.data()[0]["external_identifier"], "ada@example.com");
    for (fault, want) in [
        (Fault::Down, "/app?reason=SERVICE_UNAVAILABLE"),
        (Fault::Huge, "/app?reason=SERVICE_UNAVAILABLE"),
        (Fault::InvalidGrant, "./?redirect=/app&prompt=true"),
    ] {
        let (_, flow) = start(&app, "gen", "?redirect=/app").await;
        idp.set(fault);
        let r = finish(&app, &idp, &flow.unwrap()).await;
        idp.set(Fault::None);
        assert_eq!(location(&r), want, "{fault:?}");
    }
}
