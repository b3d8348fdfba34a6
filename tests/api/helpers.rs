//! Test harness: `spawn_app` starts the real server (App::build) on 127.0.0.1:0 with a
//! fresh database and an adjustable clock (`advance`, or `freeze_at_totp_step` to stop it),
//! and a small client speaks to it; `browser()` is a client that keeps cookies as a browser
//! does. `TEST_LOG=1 cargo test …` prints the server's log for the tests that fail.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use gatehouse::clock::OffsetClock;
use gatehouse::config::{Config, Vars};
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{json, Value};

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password";
pub const SECRET: &str = "test-secret-0123456789abcdef";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: OffsetClock,
    pub auth: gatehouse::auth::Auth,
    /// Every mail the server sent (the test servers record mail instead of sending it).
    pub mailbox: gatehouse::providers::mail::Recorder,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: std::sync::Arc<tempfile::TempDir>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The variables every test server gets; `extra` overrides them.
pub fn base_vars(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = vec![
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("SECRET", SECRET),
        ("ADMIN_EMAIL", ADMIN_EMAIL),
        ("ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("LOGIN_STALL_TIME", "0"),
        // Cheap hashes keep the suite fast; Directus's parameters are covered in password.rs.
        ("HASH_MEMORY_COST", "1024"),
        ("HASH_TIME_COST", "1"),
        ("HASH_PARALLELISM", "1"),
        ("LOG_LEVEL", "warn"),
        ("DB_POOL__MAX", "5"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let schema = format!("gh_{}", uuid::Uuid::new_v4().simple());
            let sep = if url.contains('?') { '&' } else { '?' };
            vars.push(("DB_CLIENT".into(), "pg".into()));
            vars.push((
                "DB_CONNECTION_STRING".into(),
                format!("{url}{sep}gh_schema={schema}"),
            ));
        }
        _ => {
            vars.push(("DB_CLIENT".into(), "sqlite3".into()));
            vars.push((
                "DB_FILENAME".into(),
                dir.join("gatehouse.db").to_string_lossy().into_owned(),
            ));
        }
    }
    vars
}

pub async fn spawn_app() -> TestApp {
    spawn_with(&[]).await
}

pub async fn spawn_with(extra: &[(&str, &str)]) -> TestApp {
    spawn_nodes(1, extra).await.pop().expect("one node")
}

/// `n` servers on one fresh database, as separate nodes would run (each its own pools).
pub async fn spawn_nodes(n: usize, extra: &[(&str, &str)]) -> Vec<TestApp> {
    spawn_servers(n, extra, true).await
}

/// A server with the mail transport its configuration names (`EMAIL_TRANSPORT`, ...) instead
/// of the recorder: `mailbox` stays empty.
pub async fn spawn_with_real_mail(extra: &[(&str, &str)]) -> TestApp {
    spawn_servers(1, extra, false)
        .await
        .pop()
        .expect("one node")
}

async fn spawn_servers(n: usize, extra: &[(&str, &str)], record_mail: bool) -> Vec<TestApp> {
    gatehouse::telemetry::init_for_tests();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut vars = base_vars(dir.path());
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push((k.to_string(), v.to_string()));
    }
    let dir = std::sync::Arc::new(dir);
    let mut nodes = Vec::new();
    for _ in 0..n {
        let config =
            Config::from_vars(&Vars::from_pairs(vars.clone()).expect("vars")).expect("config");
        let clock = OffsetClock::default();
        let mailbox = gatehouse::providers::mail::Recorder::default();
        let app = gatehouse::App::build_with(
            config,
            Arc::new(clock.clone()),
            record_mail
                .then(|| Arc::new(mailbox.clone()) as Arc<dyn gatehouse::providers::mail::Mailer>),
        )
        .await
        .expect("app builds");
        let base = format!("http://{}", app.addr());
        let auth = app.auth().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.serve(async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        nodes.push(TestApp {
            base,
            client,
            clock,
            auth,
            mailbox,
            shutdown: Some(tx),
            _dir: dir.clone(),
        });
    }
    nodes
}

/// A response read whole: status, headers and the JSON body (Null when empty or not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or("")
    }

    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// The `Set-Cookie` header for one cookie name.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }

    /// The value part of a `Set-Cookie`.
    pub fn cookie_value(&self, name: &str) -> Option<String> {
        self.set_cookie(name).map(|c| {
            c[name.len() + 1..]
                .split(';')
                .next()
                .unwrap_or("")
                .to_string()
        })
    }

    /// Asserts a Directus error envelope with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "status; body: {}", self.text);
        assert_eq!(self.code(), code, "code; body: {}", self.text);
        assert!(
            self.body["errors"][0]["message"].is_string(),
            "message; body: {}",
            self.text
        );
    }
}

pub async fn read(res: reqwest::Response) -> Resp {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
        text,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        cookie: Option<&str>,
    ) -> Resp {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(reqwest::Method::GET, path, token, None, None)
            .await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(reqwest::Method::POST, path, token, Some(body), None)
            .await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(reqwest::Method::PATCH, path, token, Some(body), None)
            .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(reqwest::Method::DELETE, path, token, None, None)
            .await
    }

    pub async fn post_with_cookie(&self, path: &str, cookie: &str, body: Value) -> Resp {
        self.request(reqwest::Method::POST, path, None, Some(body), Some(cookie))
            .await
    }

    pub async fn login(&self, email: &str, password: &str, mode: &str) -> Resp {
        self.post(
            "/auth/login",
            None,
            json!({"email": email, "password": password, "mode": mode}),
        )
        .await
    }

    /// Logs in as the bootstrapped admin (json mode) and returns the access token.
    pub async fn admin_token(&self) -> String {
        let r = self.login(ADMIN_EMAIL, ADMIN_PASSWORD, "json").await;
        assert_eq!(r.status, 200, "admin login: {}", r.text);
        r.data()["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// Creates a role with a policy of the given flags; returns the role id.
    pub async fn create_role(
        &self,
        admin: &str,
        name: &str,
        admin_access: bool,
        app_access: bool,
    ) -> String {
        let r = self
            .post(
                "/roles",
                Some(admin),
                json!({"name": name, "policies": [{"policy": {"name": format!("{name} policy"), "admin_access": admin_access, "app_access": app_access}}]}),
            )
            .await;
        assert_eq!(r.status, 200, "create role: {}", r.text);
        r.data()["id"].as_str().expect("role id").to_string()
    }

    /// Creates an active user; returns its id.
    pub async fn create_user(
        &self,
        admin: &str,
        email: &str,
        password: &str,
        role: Option<&str>,
    ) -> String {
        let mut body = json!({"email": email, "password": password});
        if let Some(role) = role {
            body["role"] = Value::from(role);
        }
        let r = self.post("/users", Some(admin), body).await;
        assert_eq!(r.status, 200, "create user: {}", r.text);
        r.data()["id"].as_str().expect("user id").to_string()
    }

    /// The `directus_activity` rows.
    pub async fn activity(&self) -> Vec<gatehouse::store::Item> {
        self.auth
            .store
            .items
            .items_list(&gatehouse::store::ACTIVITY, &Default::default())
            .await
            .expect("activity rows")
    }

    /// A user with a role (app access, not admin) ready to log in, with the permission the
    /// Data Studio gives new app roles (Directus's `appRecommendedPermissions`): update of
    /// its own profile fields.
    pub async fn app_user(&self, email: &str, password: &str) -> String {
        let admin = self.admin_token().await;
        let policy = self
            .create_policy(&admin, &format!("policy-{email}"), false, true)
            .await;
        self.grant(
            &policy,
            "directus_users",
            "update",
            json!({"id": {"_eq": "$CURRENT_USER"}}),
            "first_name,last_name,email,password,location,title,description,avatar,language,appearance,theme_light,theme_dark,theme_light_overrides,theme_dark_overrides,tfa_secret",
        )
        .await;
        let role = self
            .role_with_policy(&admin, &format!("role-{email}"), &policy)
            .await;
        self.create_user(&admin, email, password, Some(&role)).await
    }

    /// Creates a policy with these flags; returns its id.
    pub async fn create_policy(
        &self,
        admin: &str,
        name: &str,
        admin_access: bool,
        app_access: bool,
    ) -> String {
        let r = self
            .post(
                "/policies",
                Some(admin),
                json!({"name": name, "admin_access": admin_access, "app_access": app_access}),
            )
            .await;
        assert_eq!(r.status, 200, "create policy: {}", r.text);
        r.data()["id"].as_str().expect("policy id").to_string()
    }

    /// Creates a role holding this policy; returns the role id.
    pub async fn role_with_policy(&self, admin: &str, name: &str, policy: &str) -> String {
        let r = self
            .post(
                "/roles",
                Some(admin),
                json!({"name": name, "policies": [{"policy": policy}]}),
            )
            .await;
        assert_eq!(r.status, 200, "create role: {}", r.text);
        r.data()["id"].as_str().expect("role id").to_string()
    }

    /// Adds a `directus_permissions` row (written as Directus writes one: filters as JSON,
    /// fields as CSV) through the store, as an admin tool or Directus would.
    pub async fn grant(
        &self,
        policy: &str,
        collection: &str,
        action: &str,
        permissions: Value,
        fields: &str,
    ) {
        self.grant_full(
            policy,
            collection,
            action,
            permissions,
            Value::Null,
            Value::Null,
            fields,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn grant_full(
        &self,
        policy: &str,
        collection: &str,
        action: &str,
        permissions: Value,
        validation: Value,
        presets: Value,
        fields: &str,
    ) {
        let mut item = gatehouse::store::Item::new();
        item.insert("collection".into(), json!(collection));
        item.insert("action".into(), json!(action));
        item.insert("permissions".into(), permissions);
        item.insert("validation".into(), validation);
        item.insert("presets".into(), presets);
        item.insert("fields".into(), json!(fields));
        item.insert("policy".into(), json!(policy));
        self.auth
            .store
            .items
            .item_insert(&gatehouse::store::PERMISSIONS, &item)
            .await
            .expect("insert permission");
    }

    /// The mails sent so far, oldest first; waits up to 5 s for at least `n` (mail is sent in
    /// the background, after the answer).
    pub async fn mails(&self, n: usize) -> Vec<gatehouse::providers::mail::Mail> {
        for _ in 0..500 {
            let sent = self.mailbox.sent();
            if sent.len() >= n {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.mailbox.sent()
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Stops the server's clock at the start of the next 30-second TOTP step, so a code
    /// computed from `auth.now()` is the one the server expects however slow the request.
    pub fn freeze_at_totp_step(&self) {
        let now = self.auth.now().timestamp();
        let next = (now / 30 + 1) * 30;
        self.clock
            .freeze_at(chrono::DateTime::from_timestamp(next, 0).expect("a valid instant"));
    }

    /// A client with its own cookie jar: it stores `Set-Cookie`, sends the cookies back and
    /// drops the ones the server clears, as a browser would.
    pub fn browser(&self) -> Browser<'_> {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .build()
            .expect("client");
        Browser {
            app: self,
            client,
            jar,
        }
    }

    /// Number of session rows of a user, read through the store.
    pub async fn session_count(&self, user_id: &str) -> usize {
        self.auth
            .store
            .sessions
            .session_tokens_of_user(user_id.parse().expect("uuid"))
            .await
            .expect("sessions")
            .len()
    }
}

/// A cookie-keeping client of one test server (`TestApp::browser`).
pub struct Browser<'a> {
    app: &'a TestApp,
    pub client: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
}

impl Browser<'_> {
    pub async fn request(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Resp {
        let mut req = self.client.request(method, self.app.url(path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.request(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn login(&self, email: &str, password: &str, mode: &str) -> Resp {
        self.post(
            "/auth/login",
            json!({"email": email, "password": password, "mode": mode}),
        )
        .await
    }

    /// The value of a cookie the jar would send to the server, if it holds one.
    pub fn cookie(&self, name: &str) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let url = reqwest::Url::parse(&self.app.base).expect("base url");
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}
