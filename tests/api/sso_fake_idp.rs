//! An in-process OpenID provider for the SSO API tests (axum on 127.0.0.1:0): discovery, JWKS
//! (a fixed RSA test key in tests/fixtures), an authorization-code token endpoint with PKCE and
//! client authentication, refresh tokens and userinfo. `set` switches it to misbehave: a wrong
//! signing key, wrong `iss` / `aud` / `nonce`, an expired token, `invalid_grant`, a slow or
//! down server, a huge answer. The real-browser flow against Node's `oidc-provider` is in e2e.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::Digest;

pub const CLIENT_ID: &str = "gatehouse-test";
pub const CLIENT_SECRET: &str = "fake-idp-client-secret";

/// How the provider misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// ID tokens signed with a key the JWKS does not publish (kid `rogue-key`).
    WrongKey,
    /// Signed with the rogue key under the published kid.
    BadSignature,
    WrongIss,
    WrongAud,
    WrongNonce,
    Expired,
    NoIdToken,
    /// The token endpoint answers `invalid_grant`.
    InvalidGrant,
    /// The token endpoint answers another OAuth error.
    ServerError,
    /// Every endpoint waits 5 s before answering.
    Slow,
    /// Every endpoint answers 503.
    Down,
    /// The token endpoint answers 4 MiB.
    Huge,
    /// userinfo names another subject.
    OtherSub,
}

#[derive(Default)]
pub struct IdpState {
    pub fault: Fault,
    /// Publish and sign with the rogue key as `rotated-key` (a key rotation).
    pub rotated: bool,
    /// Claims of the next ID token / userinfo answer.
    pub claims: Map<String, Value>,
    /// code -> (nonce, code_challenge, redirect_uri, claims)
    codes: HashMap<String, (String, String, String, Map<String, Value>)>,
    /// Refresh tokens that still work.
    pub refresh_tokens: Vec<String>,
    pub refresh_fault: bool,
    pub jwks_hits: usize,
    pub token_hits: usize,
    pub refresh_hits: usize,
    /// The last token request's client authentication (`basic` or `post`).
    pub last_client_auth: String,
    counter: usize,
}

#[derive(Clone)]
pub struct FakeIdp {
    pub base: String,
    pub state: Arc<Mutex<IdpState>>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

impl FakeIdp {
    pub async fn start() -> FakeIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut claims = Map::new();
        claims.insert("sub".into(), json!("user-1"));
        claims.insert("email".into(), json!("ada@example.com"));
        claims.insert("email_verified".into(), json!(true));
        claims.insert("given_name".into(), json!("Ada"));
        claims.insert("family_name".into(), json!("Lovelace"));
        let idp = FakeIdp {
            base,
            state: Arc::new(Mutex::new(IdpState {
                claims,
                ..IdpState::default()
            })),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .with_state(idp.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        idp
    }

    pub fn set(&self, fault: Fault) {
        self.state.lock().unwrap().fault = fault;
    }

    pub fn claim(&self, k: &str, v: Value) {
        self.state.lock().unwrap().claims.insert(k.into(), v);
    }

    pub fn remove_claim(&self, k: &str) {
        self.state.lock().unwrap().claims.remove(k);
    }

    pub fn jwks_hits(&self) -> usize {
        self.state.lock().unwrap().jwks_hits
    }

    /// What the user does at the provider's login form: the provider issues a code for the
    /// authorize request gatehouse sent the browser to, and sends it back to `redirect_uri`.
    /// Returns the callback's path and query on gatehouse.
    pub fn authorize(&self, authorize_url: &str) -> (String, String) {
        let u = url::Url::parse(authorize_url).unwrap();
        let q: HashMap<String, String> = u.query_pairs().into_owned().collect();
        let mut st = self.state.lock().unwrap();
        st.counter += 1;
        let code = format!("code-{}", st.counter);
        let claims = st.claims.clone();
        st.codes.insert(
            code.clone(),
            (
                q.get("nonce").cloned().unwrap_or_default(),
                q["code_challenge"].clone(),
                q["redirect_uri"].clone(),
                claims,
            ),
        );
        let redirect = url::Url::parse(&q["redirect_uri"]).unwrap();
        (
            redirect.path().to_string(),
            format!("code={code}&state={}", q["state"]),
        )
    }

    pub fn issuer(&self) -> String {
        self.base.clone()
    }
}

async fn misbehave(idp: &FakeIdp) -> Option<Response> {
    let fault = idp.state.lock().unwrap().fault;
    match fault {
        Fault::Slow => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            None
        }
        Fault::Down => Some(StatusCode::SERVICE_UNAVAILABLE.into_response()),
        _ => None,
    }
}

async fn discovery(State(idp): State<FakeIdp>) -> Response {
    if let Some(r) = misbehave(&idp).await {
        return r;
    }
    let b = &idp.base;
    Json(json!({
        "issuer": b,
        "authorization_endpoint": format!("{b}/authorize"),
        "token_endpoint": format!("{b}/token"),
        "userinfo_endpoint": format!("{b}/userinfo"),
        "jwks_uri": format!("{b}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

async fn jwks(State(idp): State<FakeIdp>) -> Response {
    if let Some(r) = misbehave(&idp).await {
        return r;
    }
    let rotated = {
        let mut st = idp.state.lock().unwrap();
        st.jwks_hits += 1;
        st.rotated
    };
    if rotated {
        let mut set: Value = serde_json::from_str(&fixture("oidc-rogue-jwks.json")).unwrap();
        set["keys"][0]["kid"] = json!("rotated-key");
        return Json(set).into_response();
    }
    Json(serde_json::from_str::<Value>(&fixture("oidc-jwks.json")).unwrap()).into_response()
}

fn sign(claims: &Map<String, Value>, key: &str, kid: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(fixture(key).as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn oauth_error(code: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": code, "error_description": "refused by the fake provider"})),
    )
        .into_response()
}

async fn token(
    State(idp): State<FakeIdp>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(r) = misbehave(&idp).await {
        return r;
    }
    let mut st = idp.state.lock().unwrap();
    st.token_hits += 1;
    // Client authentication: HTTP Basic (the default) or the form (client_secret_post).
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    let authed = match (&basic, form.get("client_id"), form.get("client_secret")) {
        (Some(b), _, _) => {
            st.last_client_auth = "basic".into();
            *b == format!("{CLIENT_ID}:{CLIENT_SECRET}")
        }
        (None, Some(id), Some(secret)) => {
            st.last_client_auth = "post".into();
            id == CLIENT_ID && secret == CLIENT_SECRET
        }
        _ => false,
    };
    if !authed {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
        st.refresh_hits += 1;
        let rt = form.get("refresh_token").cloned().unwrap_or_default();
        if st.refresh_fault || !st.refresh_tokens.contains(&rt) {
            return oauth_error("invalid_grant");
        }
        st.counter += 1;
        let next = format!("refresh-{}", st.counter);
        st.refresh_tokens.retain(|t| *t != rt);
        st.refresh_tokens.push(next.clone());
        return Json(json!({"access_token": "at-refreshed", "token_type": "Bearer", "expires_in": 300, "refresh_token": next})).into_response();
    }
    match st.fault {
        Fault::InvalidGrant => return oauth_error("invalid_grant"),
        Fault::ServerError => return oauth_error("temporarily_unavailable"),
        Fault::Huge => {
            let big = "x".repeat(4 << 20);
            return Json(json!({"access_token": big, "token_type": "Bearer"})).into_response();
        }
        _ => {}
    }
    let code = form.get("code").cloned().unwrap_or_default();
    // Codes work once (a replayed code is invalid_grant, as every provider answers).
    let Some((nonce, challenge, redirect_uri, mut claims)) = st.codes.remove(&code) else {
        return oauth_error("invalid_grant");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let s256 = b64(&sha2::Sha256::digest(verifier.as_bytes()));
    if s256 != challenge && verifier != challenge {
        return oauth_error("invalid_grant");
    }
    if form.get("redirect_uri") != Some(&redirect_uri) {
        return oauth_error("invalid_grant");
    }
    let now = chrono::Utc::now().timestamp();
    claims.insert("iss".into(), json!(idp.base));
    claims.insert("aud".into(), json!(CLIENT_ID));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + 300));
    if !nonce.is_empty() {
        claims.insert("nonce".into(), json!(nonce));
    }
    let (key, kid) = match st.fault {
        Fault::WrongKey => ("oidc-rogue-key.pem", "rogue-key"),
        Fault::BadSignature => ("oidc-rogue-key.pem", "test-key-1"),
        _ if st.rotated => ("oidc-rogue-key.pem", "rotated-key"),
        _ => ("oidc-key.pem", "test-key-1"),
    };
    match st.fault {
        Fault::WrongIss => {
            claims.insert("iss".into(), json!("http://127.0.0.1:1/other"));
        }
        Fault::WrongAud => {
            claims.insert("aud".into(), json!("someone-else"));
        }
        Fault::WrongNonce => {
            claims.insert("nonce".into(), json!("not-the-nonce"));
        }
        Fault::Expired => {
            claims.insert("iat".into(), json!(now - 7200));
            claims.insert("exp".into(), json!(now - 3600));
        }
        _ => {}
    }
    st.counter += 1;
    let refresh = format!("refresh-{}", st.counter);
    st.refresh_tokens.push(refresh.clone());
    let mut body = json!({
        "access_token": "at-1",
        "token_type": "Bearer",
        "expires_in": 300,
        "refresh_token": refresh,
    });
    if st.fault != Fault::NoIdToken {
        body["id_token"] = json!(sign(&claims, key, kid));
    }
    Json(body).into_response()
}

async fn userinfo(State(idp): State<FakeIdp>, headers: HeaderMap) -> Response {
    if let Some(r) = misbehave(&idp).await {
        return r;
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer at-1") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let st = idp.state.lock().unwrap();
    let mut claims = st.claims.clone();
    if st.fault == Fault::OtherSub {
        claims.insert("sub".into(), json!("somebody-else"));
    }
    Json(Value::Object(claims)).into_response()
}
