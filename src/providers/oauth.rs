//! The `oauth2` and `openid` drivers (Directus: `api/src/auth/drivers/oauth2.ts`,
//! `api/src/auth/drivers/openid.ts`): their options, the authorize redirect, the code exchange,
//! ID token validation and the profile, and the provider refresh behind `POST /auth/refresh`.
//!
//! The protocol work is the `oauth2` and `openidconnect` crates' (code exchange, PKCE, ID token
//! signature and claims); this module is the glue: Directus's parameters and error mapping,
//! discovery and key caching (`discovery`), the bounded HTTP client (`http`) and the claims
//! reading (`claims`). Every failure is an `auth::Error` whose detail names the check that
//! failed, for the log; the client only sees Directus's code.

pub mod claims;
pub mod config;
pub mod discovery;
pub mod http;

use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, TokenResponse, TokenUrl,
};
use openidconnect::core::{CoreClient, CoreIdTokenVerifier};
use openidconnect::{IssuerUrl, Nonce};
use serde_json::{Map, Value};

pub use config::OAuthConfig;

use self::config::{ClientAuth, Endpoints};
use self::discovery::{Discovered, Discovery};
use self::http::{HttpError, ProviderHttp};
use crate::auth::sso::{Provisioning, RoleRule};
use crate::auth::user::User;
use crate::auth::Error;
use crate::config::sso::SsoCommon;
use crate::error::ApiError;
use crate::providers::{Driver, Identity, Provider};

/// One `oauth2` or `openid` provider.
pub struct OAuthProvider {
    pub common: SsoCommon,
    pub config: OAuthConfig,
    http: ProviderHttp,
    /// `openid` only.
    discovery: Option<Arc<Discovery>>,
}

/// What the callback carries, with what the state cookie kept.
pub struct Callback<'a> {
    pub code: Option<&'a str>,
    pub state: Option<&'a str>,
    /// RFC 9207's `iss` (openid).
    pub iss: Option<&'a str>,
    pub verifier: &'a str,
    pub callback_url: &'a str,
    pub now: DateTime<Utc>,
}

/// What a callback proved.
pub struct Proven {
    pub identity: Identity,
    /// False when REQUIRE_VERIFIED_EMAIL bars registering this identity.
    pub may_register: bool,
}

impl<'c> oauth2::AsyncHttpClient<'c> for ProviderHttp {
    type Error = HttpError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send + 'c>,
    >;
    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

fn refused(api: ApiError, check: impl Into<String>) -> Error {
    Error::because(api, check)
}

impl OAuthProvider {
    /// Builds the provider; an `openid` provider discovers its metadata now, and a failed
    /// discovery stops the start unless `ISSUER_DISCOVERY_MUST_SUCCEED=false`.
    pub async fn start(
        common: SsoCommon,
        config: OAuthConfig,
    ) -> anyhow::Result<Arc<OAuthProvider>> {
        let http = ProviderHttp::new(config.http_timeout, config.max_response)?;
        let discovery = match &config.endpoints {
            Endpoints::Manual { .. } => None,
            Endpoints::Discovery {
                issuer_url,
                must_succeed,
            } => {
                let d = Arc::new(Discovery::new(issuer_url.clone(), http.clone()));
                match d.fetch().await {
                    Ok(found) => d.set(found).await,
                    Err(e) if *must_succeed => anyhow::bail!(
                        "configuration error: {}=true and the discovery of provider `{}` failed: {e}; check {} (is the provider up?) or set {}=false to discover at the first login",
                        common.var("ISSUER_DISCOVERY_MUST_SUCCEED"),
                        common.name,
                        common.var("ISSUER_URL"),
                        common.var("ISSUER_DISCOVERY_MUST_SUCCEED"),
                    ),
                    Err(e) => tracing::warn!(
                        provider = %common.name,
                        error = %e,
                        "discovery failed; retried at login"
                    ),
                }
                d.clone().spawn_refresher(common.name.clone());
                Some(d)
            }
        };
        Ok(Arc::new(OAuthProvider {
            common,
            config,
            http,
            discovery,
        }))
    }

    fn service(&self) -> &'static str {
        self.common.driver.as_str()
    }

    fn unavailable(&self, check: impl Into<String>) -> Error {
        let reason = "Service returned unexpected response".to_string();
        refused(
            ApiError::ServiceUnavailable {
                service: self.service().into(),
                reason,
            },
            check,
        )
    }

    /// A new PKCE verifier (32 random bytes, base64url, as openid-client's `generators`).
    pub fn new_verifier() -> String {
        let (_, verifier) = PkceCodeChallenge::new_random_sha256();
        verifier.secret().to_string()
    }

    /// The challenge for a verifier: S256, or the verifier itself with PLAIN_CODE_CHALLENGE.
    /// It is also the `state` (and the openid `nonce`), as in Directus.
    pub fn challenge(&self, verifier: &str) -> String {
        if self.config.plain_code_challenge {
            verifier.to_string()
        } else {
            PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
                verifier.to_string(),
            ))
            .as_str()
            .to_string()
        }
    }

    async fn discovered(&self) -> Result<Option<Arc<Discovered>>, Error> {
        match &self.discovery {
            None => Ok(None),
            Some(d) => d
                .current()
                .await
                .map(Some)
                .map_err(|e| self.unavailable(format!("discovery failed: {e}"))),
        }
    }

    /// The authorize URL (Directus's parameters: `client_id`, `response_type`, `redirect_uri`,
    /// `scope`, `access_type=offline`, `prompt=consent` when asked, PARAMS, then the PKCE
    /// challenge, `state` and, for openid, `nonce`, which PARAMS cannot replace).
    pub async fn authorize_url(
        &self,
        verifier: &str,
        prompt: bool,
        callback_url: &str,
    ) -> Result<String, Error> {
        let endpoint = match (&self.config.endpoints, self.discovered().await?) {
            (Endpoints::Manual { authorize_url, .. }, _) => authorize_url.clone(),
            (_, Some(d)) => d.metadata.authorization_endpoint.clone(),
            (_, None) => return Err(self.unavailable("no metadata")),
        };
        let challenge = self.challenge(verifier);
        let mut params: Vec<(String, String)> = vec![
            ("client_id".into(), self.config.client_id.clone()),
            ("response_type".into(), "code".into()),
            ("redirect_uri".into(), callback_url.into()),
            ("scope".into(), self.config.scope.clone()),
            ("access_type".into(), "offline".into()),
        ];
        if prompt {
            params.push(("prompt".into(), "consent".into()));
        }
        let mut put = |k: &str, v: &str| {
            params.retain(|(name, _)| name != k);
            params.push((k.to_string(), v.to_string()));
        };
        for (k, v) in &self.config.params {
            put(k, v);
        }
        put("code_challenge", &challenge);
        put(
            "code_challenge_method",
            if self.config.plain_code_challenge {
                "plain"
            } else {
                "S256"
            },
        );
        put("state", &challenge);
        if self.common.driver == Driver::OpenId {
            put("nonce", &challenge);
        }
        let mut url = endpoint;
        url.query_pairs_mut().extend_pairs(params.iter());
        Ok(url.to_string())
    }

    fn auth_type(&self) -> AuthType {
        match self.config.client_auth {
            ClientAuth::Basic => AuthType::BasicAuth,
            ClientAuth::Post => AuthType::RequestBody,
        }
    }

    /// Maps a token endpoint failure as Directus's `handleError` does: `invalid_grant` is
    /// INVALID_TOKEN (the callback then restarts with consent), any other provider error or a
    /// provider that cannot be reached is SERVICE_UNAVAILABLE.
    fn token_error<RE: oauth2::ErrorResponse + 'static>(
        &self,
        step: &str,
        e: RequestTokenError<HttpError, RE>,
    ) -> Error {
        match e {
            RequestTokenError::ServerResponse(r) => {
                let v = serde_json::to_value(&r).unwrap_or(Value::Null);
                let code = v.get("error").and_then(Value::as_str).unwrap_or("");
                if code == "invalid_grant" {
                    refused(
                        ApiError::InvalidToken,
                        format!("{step} refused: invalid_grant"),
                    )
                } else {
                    self.unavailable(format!("{step} refused: {}", printable(code)))
                }
            }
            RequestTokenError::Request(e) => self.unavailable(format!("{step} failed: {e}")),
            RequestTokenError::Parse(_, body) => {
                // Some providers answer errors with 200 (GitHub): read the `error` field.
                let code = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string));
                match code.as_deref() {
                    Some("invalid_grant") | Some("bad_verification_code") => refused(
                        ApiError::InvalidToken,
                        format!("{step} refused: invalid_grant"),
                    ),
                    Some(c) => self.unavailable(format!("{step} refused: {}", printable(c))),
                    None => self.unavailable(format!("{step}: the answer is not a token response")),
                }
            }
            RequestTokenError::Other(m) => self.unavailable(format!("{step} failed: {m}")),
        }
    }

    /// The callback: state, code, `iss`, the code exchange, the ID token (openid) and the
    /// profile, read into an `Identity`.
    pub async fn callback(&self, cb: Callback<'_>) -> Result<Proven, Error> {
        let (Some(code), Some(state)) = (
            cb.code.filter(|c| !c.is_empty()),
            cb.state.filter(|s| !s.is_empty()),
        ) else {
            return Err(refused(
                ApiError::InvalidCredentials,
                "no code or state in the callback",
            ));
        };
        let challenge = self.challenge(cb.verifier);
        // SECURITY: the state binds the callback to the browser that started the flow.
        if !crate::tokens::secure_eq(state, &challenge) {
            return Err(refused(ApiError::InvalidCredentials, "state mismatch"));
        }
        let redirect = RedirectUrl::new(cb.callback_url.to_string()).map_err(|_| {
            self.unavailable(
                "the callback URL is not absolute: set PUBLIC_URL to the server's public address",
            )
        })?;
        let verifier = PkceCodeVerifier::new(cb.verifier.to_string());
        let secret = ClientSecret::new(self.config.client_secret.clone());
        let client_id = ClientId::new(self.config.client_id.clone());
        let (claims, refresh) = match &self.config.endpoints {
            Endpoints::Manual {
                authorize_url,
                access_url,
                profile_url,
            } => {
                let client = oauth2::basic::BasicClient::new(client_id)
                    .set_client_secret(secret)
                    .set_auth_uri(AuthUrl::from_url(authorize_url.clone()))
                    .set_token_uri(TokenUrl::from_url(access_url.clone()))
                    .set_redirect_uri(redirect)
                    .set_auth_type(self.auth_type());
                let token = client
                    .exchange_code(AuthorizationCode::new(code.to_string()))
                    .set_pkce_verifier(verifier)
                    .request_async(&self.http)
                    .await
                    .map_err(|e| self.token_error("token exchange", e))?;
                let profile = self
                    .profile(profile_url, token.access_token().secret())
                    .await?;
                (
                    profile,
                    token.refresh_token().map(|t| t.secret().to_string()),
                )
            }
            Endpoints::Discovery { .. } => {
                let d = self
                    .discovered()
                    .await?
                    .ok_or_else(|| self.unavailable("no metadata"))?;
                self.check_iss(&d, cb.iss)?;
                let issuer = IssuerUrl::new(d.metadata.issuer.clone())
                    .map_err(|_| self.unavailable("the provider's issuer is not a URL"))?;
                let client = CoreClient::new(client_id.clone(), issuer.clone(), d.jwks.clone())
                    .set_client_secret(secret.clone())
                    .set_auth_uri(AuthUrl::from_url(d.metadata.authorization_endpoint.clone()))
                    .set_token_uri(TokenUrl::from_url(d.metadata.token_endpoint.clone()))
                    .set_redirect_uri(redirect)
                    .set_auth_type(self.auth_type());
                let token = client
                    .exchange_code(AuthorizationCode::new(code.to_string()))
                    .set_pkce_verifier(verifier)
                    .request_async(&self.http)
                    .await
                    .map_err(|e| self.token_error("token exchange", e))?;
                let id_token = token.extra_fields().id_token().ok_or_else(|| {
                    refused(
                        ApiError::InvalidCredentials,
                        "no ID token in the token response",
                    )
                })?;
                let jwt = id_token.to_string();
                let mut keys = d.clone();
                if let Some(kid) = jwt_kid(&jwt) {
                    if !keys.has_kid(&kid) {
                        if let Some(fresh) = self.refetch_keys(&kid).await {
                            keys = fresh;
                        }
                    }
                }
                let now = cb.now;
                let verifier: CoreIdTokenVerifier<'_> =
                    CoreIdTokenVerifier::new_confidential_client(
                        client_id,
                        secret,
                        issuer,
                        keys.jwks.clone(),
                    )
                    .set_time_fn(move || now);
                id_token
                    .claims(&verifier, &Nonce::new(challenge.clone()))
                    .map_err(|e| refused(ApiError::InvalidCredentials, id_token_check(&e)))?;
                let mut claims = jwt_payload(&jwt).ok_or_else(|| {
                    refused(ApiError::InvalidCredentials, "ID token payload unreadable")
                })?;
                if let Some(userinfo) = &d.metadata.userinfo_endpoint {
                    let info = self
                        .profile(userinfo, token.access_token().secret())
                        .await?;
                    // OpenID Connect Core §5.3.2: userinfo about another subject is refused.
                    if info.get("sub").is_some() && info.get("sub") != claims.get("sub") {
                        return Err(refused(
                            ApiError::InvalidCredentials,
                            "userinfo sub differs from the ID token's",
                        ));
                    }
                    claims.extend(info);
                }
                (
                    claims,
                    token.refresh_token().map(|t| t.secret().to_string()),
                )
            }
        };
        let identity =
            claims::identity(&claims, &self.config, refresh.as_deref()).ok_or_else(|| {
                refused(
                    ApiError::InvalidCredentials,
                    "identifier claim missing (neither the identifier key nor the email)",
                )
            })?;
        let verified = claims.get("email_verified").is_some_and(claims::truthy);
        Ok(Proven {
            identity,
            may_register: !self.config.require_verified_email || verified,
        })
    }

    /// RFC 9207 (openid-client's `callback`): an `iss` parameter must name the issuer, and a
    /// provider that promises one must send it.
    fn check_iss(&self, d: &Discovered, iss: Option<&str>) -> Result<(), Error> {
        match iss {
            Some(i) if i != d.metadata.issuer => Err(refused(
                ApiError::InvalidCredentials,
                "the iss parameter names another issuer",
            )),
            None if d.metadata.authorization_response_iss_parameter_supported => Err(refused(
                ApiError::InvalidCredentials,
                "the iss parameter is missing",
            )),
            _ => Ok(()),
        }
    }

    async fn refetch_keys(&self, kid: &str) -> Option<Arc<Discovered>> {
        let d = self.discovery.as_ref()?;
        tracing::info!(provider = %self.common.name, "the ID token names an unknown key; refetching the provider's keys");
        d.refetch_for_kid(kid).await
    }

    /// A profile (oauth2 PROFILE_URL, openid userinfo) read with the access token.
    async fn profile(
        &self,
        url: &url::Url,
        access_token: &str,
    ) -> Result<Map<String, Value>, Error> {
        let (status, body) = self
            .http
            .get_json(url, Some(access_token))
            .await
            .map_err(|e| self.unavailable(format!("profile request failed: {e}")))?;
        if status != 200 {
            return Err(self.unavailable(format!("profile request refused: status {status}")));
        }
        match body {
            Some(Value::Object(m)) => Ok(m),
            _ => Err(self.unavailable("the profile is not a JSON object")),
        }
    }

    /// The rules `Auth::sso_login` applies for this provider.
    pub fn provisioning(&self, may_register: bool) -> Provisioning {
        Provisioning {
            allow_registration: self.common.allow_public_registration && may_register,
            default_role: self.common.default_role,
            roles: match &self.config.role_mapping {
                Some(m) => RoleRule::Mapping(m.clone()),
                None => RoleRule::Keep,
            },
            sync_user_info: self.common.sync_user_info,
            lower_identifier: false,
        }
    }
}

/// An error code from a provider, made safe for a log line.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

/// Which ID token check failed, for the log.
fn id_token_check(e: &openidconnect::ClaimsVerificationError) -> String {
    use openidconnect::ClaimsVerificationError as C;
    match e {
        C::Expired(_) => "ID token expired".into(),
        C::InvalidAudience(_) => "ID token audience mismatch".into(),
        C::InvalidIssuer(_) => "ID token issuer mismatch".into(),
        C::InvalidNonce(_) => "ID token nonce mismatch".into(),
        C::SignatureVerification(s) => format!("ID token signature: {s}"),
        other => format!("ID token refused: {other}"),
    }
}

fn b64_json(segment: &str) -> Option<Map<String, Value>> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// The `kid` of a JWT's header.
fn jwt_kid(jwt: &str) -> Option<String> {
    let header = b64_json(jwt.split('.').next()?)?;
    header.get("kid")?.as_str().map(str::to_string)
}

/// A JWT's claims, read after its signature was verified.
fn jwt_payload(jwt: &str) -> Option<Map<String, Value>> {
    b64_json(jwt.split('.').nth(1)?)
}

#[async_trait::async_trait]
impl Provider for OAuthProvider {
    fn name(&self) -> &str {
        &self.common.name
    }
    fn driver(&self) -> Driver {
        self.common.driver
    }
    fn label(&self) -> Option<&str> {
        self.common.label.as_deref()
    }
    fn icon(&self) -> Option<&str> {
        self.common.icon.as_deref()
    }
    fn mode(&self) -> crate::auth::Mode {
        self.common.mode
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    /// An `openid` provider's discovery document and keys can be read now (a fresh read,
    /// not the cached copy; the cache is left as it is). `oauth2` has nothing to discover.
    async fn health(&self) -> Option<Result<(), String>> {
        let discovery = self.discovery.as_ref()?;
        Some(discovery.fetch().await.map(|_| ()))
    }

    /// Directus's oauth2/openid `refresh(user)`: with a stored provider refresh token, exchange
    /// it; a new refresh token replaces the stored one; `invalid_grant` is INVALID_TOKEN.
    async fn refresh(&self, user: &User) -> Result<Option<Value>, Error> {
        let data = match &user.auth_data {
            Some(Value::String(s)) => serde_json::from_str::<Value>(s).ok(),
            other => other.clone(),
        };
        let Some(rt) = data
            .as_ref()
            .and_then(|d| d.get("refreshToken"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(|t| RefreshToken::new(t.to_string()))
        else {
            return Ok(None);
        };
        let token_url = match (&self.config.endpoints, self.discovered().await?) {
            (Endpoints::Manual { access_url, .. }, _) => access_url.clone(),
            (_, Some(d)) => d.metadata.token_endpoint.clone(),
            (_, None) => return Err(self.unavailable("no metadata")),
        };
        let client = oauth2::basic::BasicClient::new(ClientId::new(self.config.client_id.clone()))
            .set_client_secret(ClientSecret::new(self.config.client_secret.clone()))
            .set_token_uri(TokenUrl::from_url(token_url))
            .set_auth_type(self.auth_type());
        let token = client
            .exchange_refresh_token(&rt)
            .request_async(&self.http)
            .await
            .map_err(|e| self.token_error("provider refresh", e))?;
        Ok(token
            .refresh_token()
            .map(|t| serde_json::json!({ "refreshToken": t.secret() })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_parts_are_read_leniently_and_never_panic() {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!(
            "{}.{}.sig",
            b(r#"{"alg":"RS256","kid":"k1"}"#),
            b(r#"{"sub":"x"}"#)
        );
        assert_eq!(jwt_kid(&jwt).as_deref(), Some("k1"));
        assert_eq!(
            jwt_payload(&jwt).and_then(|m| m.get("sub").cloned()),
            Some(Value::from("x"))
        );
        for bad in ["", ".", "a.b.c", "\0.\0", "e30"] {
            assert_eq!(jwt_kid(bad), None);
            assert!(jwt_payload(bad).is_none());
        }
        assert_eq!(printable("invalid_request\n\u{7}x"), "invalid_requestx");
    }
}
