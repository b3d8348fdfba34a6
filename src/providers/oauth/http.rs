//! The HTTP client for identity providers: every call under a timeout, every answer read up to
//! a size bound, no redirects followed. It is the `oauth2` / `openidconnect` crates' HTTP
//! client (their `AsyncHttpClient` hook) and serves the profile, discovery and JWKS reads.

use std::time::Duration;

use serde_json::Value;

/// Why a call to the provider failed (for the log; the client sees SERVICE_UNAVAILABLE).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot reach the provider: {0}")]
    Unreachable(String),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the request could not be built: {0}")]
    Request(String),
}

/// A provider's HTTP client; cheap to clone.
#[derive(Clone)]
pub struct ProviderHttp {
    client: reqwest::Client,
    timeout: Duration,
    max_body: usize,
}

impl ProviderHttp {
    pub fn new(timeout: Duration, max_body: usize) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            // SECURITY: an IdP's redirect is not followed: token and profile calls carry
            // credentials that must go nowhere else.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            timeout,
            max_body,
        })
    }

    /// Sends a request and reads the whole answer, both within the timeout.
    pub async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let request = reqwest::Request::try_from(request.map(reqwest::Body::from))
            .map_err(|e| HttpError::Request(e.to_string()))?;
        match tokio::time::timeout(self.timeout, self.exchange(request)).await {
            Ok(r) => r,
            Err(_) => Err(HttpError::Timeout(self.timeout)),
        }
    }

    async fn exchange(
        &self,
        request: reqwest::Request,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let mut res = self.client.execute(request).await.map_err(|e| {
            if e.is_timeout() {
                HttpError::Timeout(self.timeout)
            } else {
                HttpError::Unreachable(without_url(&e))
            }
        })?;
        if res
            .content_length()
            .is_some_and(|n| n > self.max_body as u64)
        {
            return Err(HttpError::TooLarge(self.max_body));
        }
        let mut builder = http::Response::builder().status(res.status());
        for (k, v) in res.headers() {
            builder = builder.header(k, v);
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| {
            if e.is_timeout() {
                HttpError::Timeout(self.timeout)
            } else {
                HttpError::Unreachable(without_url(&e))
            }
        })? {
            if body.len() + chunk.len() > self.max_body {
                return Err(HttpError::TooLarge(self.max_body));
            }
            body.extend_from_slice(&chunk);
        }
        builder
            .body(body)
            .map_err(|e| HttpError::Request(e.to_string()))
    }

    /// GET a JSON document (discovery, JWKS, a profile with a bearer token): the status and
    /// the parsed body, or why not.
    pub async fn get_json(
        &self,
        url: &url::Url,
        bearer: Option<&str>,
    ) -> Result<(u16, Option<Value>), HttpError> {
        let mut req = http::Request::builder()
            .method(http::Method::GET)
            .uri(url.as_str())
            .header(http::header::ACCEPT, "application/json");
        if let Some(t) = bearer {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Vec::new())
            .map_err(|e| HttpError::Request(e.to_string()))?;
        let res = self.send(req).await?;
        Ok((
            res.status().as_u16(),
            serde_json::from_slice(res.body()).ok(),
        ))
    }
}

/// reqwest's error text without the URL (it may carry a query with secrets).
fn without_url(e: &reqwest::Error) -> String {
    let mut e2 = String::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        e2 = s.to_string();
        src = s.source();
    }
    if e2.is_empty() {
        "connection failed".into()
    } else {
        e2
    }
}
