//! Pooled directory connections, each operation under a timeout.
//!
//! Directus keeps one ldapts client for its service account and lets it sit idle; a connection
//! the server or a firewall dropped in silence then hangs logins (Directus #19954). Here a
//! connection is reused only while it is fresh: one that was idle longer than
//! `CLIENT__IDLE_TIMEOUT`, or whose driver task has ended, is closed instead, and an operation
//! that fails on a reused connection at the transport level is tried once more on a new one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why the directory could not answer (the caller turns it into Directus's error).
#[derive(Debug)]
pub enum Failure {
    /// The bind was refused: rc 49 invalidCredentials, 48 inappropriateAuthentication or
    /// 50 insufficientAccessRights (ldapts's `InvalidCredentialsError` and friends in Directus).
    Refused(String),
    /// Anything else: unreachable, timed out, TLS, protocol, another result code.
    Unavailable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused(d) => write!(f, "refused: {d}"),
            Failure::Unavailable(d) => write!(f, "unavailable: {d}"),
        }
    }
}

/// Result codes that mean "these credentials do not work" (RFC 4511 appendix A).
pub fn is_refusal(rc: u32) -> bool {
    matches!(rc, 48..=50)
}

/// A failure of the connection itself (as opposed to an answer from the server).
fn is_transport(e: &LdapError) -> bool {
    matches!(
        e,
        LdapError::Io { .. }
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::EndOfStream
            | LdapError::IdScrubSend { .. }
            | LdapError::MiscSend { .. }
    )
}

/// Text for the log: ldap3's message without anything the client sent.
pub fn describe(e: &LdapError) -> String {
    match e {
        LdapError::LdapResult { result } => format!("rc={} {}", result.rc, result.text),
        other => other.to_string(),
    }
}

/// What a new connection does first.
#[derive(Clone)]
pub enum Login {
    /// Nothing: used for password checks, each of which binds.
    None,
    /// Binds as the service account (DN, password).
    Service(String, String),
}

pub struct Pool {
    url: String,
    tls: Arc<rustls::ClientConfig>,
    start_tls: bool,
    login: Login,
    timeout: Duration,
    connect_timeout: Duration,
    idle_timeout: Duration,
    slots: Arc<Semaphore>,
    idle: Mutex<Vec<(Ldap, Instant)>>,
}

/// A connection on loan; give it back with [`Pool::put`] after a clean operation.
pub struct Conn {
    pub ldap: Ldap,
    reused: bool,
    _slot: OwnedSemaphorePermit,
}

impl Pool {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        url: String,
        tls: Arc<rustls::ClientConfig>,
        start_tls: bool,
        login: Login,
        size: usize,
        timeout: Duration,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Pool {
        Pool {
            url,
            tls,
            start_tls,
            login,
            timeout,
            connect_timeout,
            idle_timeout,
            slots: Arc::new(Semaphore::new(size)),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A fresh pooled connection, or a new one.
    async fn get(&self) -> Result<Conn, Failure> {
        let slot = tokio::time::timeout(self.timeout, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| Failure::Unavailable("every directory connection stayed busy".into()))?
            .map_err(|_| Failure::Unavailable("pool closed".into()))?;
        loop {
            let candidate = self.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
            let Some((mut ldap, since)) = candidate else {
                break;
            };
            if ldap.is_closed() || since.elapsed() > self.idle_timeout {
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(1), ldap.unbind()).await;
                });
                continue;
            }
            return Ok(Conn {
                ldap,
                reused: true,
                _slot: slot,
            });
        }
        let ldap = self.connect().await?;
        Ok(Conn {
            ldap,
            reused: false,
            _slot: slot,
        })
    }

    /// Back into the pool (newest last, so the freshest is taken first).
    fn put(&self, conn: Conn) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push((conn.ldap, Instant::now()));
        }
    }

    /// Drops every pooled connection (tests; a directory known to have restarted).
    pub fn clear(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    async fn connect(&self) -> Result<Ldap, Failure> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.connect_timeout)
            .set_config(self.tls.clone())
            .set_starttls(self.start_tls);
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.url)
            .await
            .map_err(|e| {
                Failure::Unavailable(format!("connect to {}: {}", self.url, describe(&e)))
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(target: "ldap", error = %describe(&e), "directory connection ended");
            }
        });
        if let Login::Service(dn, password) = &self.login {
            let res = ldap
                .with_timeout(self.timeout)
                .simple_bind(dn, password)
                .await
                .map_err(|e| Failure::Unavailable(format!("service bind: {}", describe(&e))))?;
            if is_refusal(res.rc) {
                return Err(Failure::Refused(format!(
                    "service bind: rc={} {}",
                    res.rc, res.text
                )));
            }
            if res.rc != 0 {
                return Err(Failure::Unavailable(format!(
                    "service bind: rc={} {}",
                    res.rc, res.text
                )));
            }
        }
        Ok(ldap)
    }

    /// Runs `op` on a pooled connection; a transport failure on a reused connection is
    /// retried once on a new one. `op` gets the operation timeout already set.
    pub async fn run<T, F>(&self, mut op: F) -> Result<T, Failure>
    where
        F: for<'a> FnMut(
            &'a mut Ldap,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, LdapError>> + Send + 'a>,
        >,
    {
        for _ in 0..2 {
            let mut conn = self.get().await?;
            // Belt and braces around ldap3's own per-operation timeout.
            let outcome = tokio::time::timeout(
                self.timeout + Duration::from_millis(250),
                op(conn.ldap.with_timeout(self.timeout)),
            )
            .await;
            match outcome {
                Ok(Ok(value)) => {
                    self.put(conn);
                    return Ok(value);
                }
                Ok(Err(e)) if is_transport(&e) && conn.reused => {
                    tracing::debug!(target: "ldap", error = %describe(&e), "pooled connection was dead; reconnecting");
                    continue;
                }
                Ok(Err(LdapError::LdapResult { result })) if is_refusal(result.rc) => {
                    self.put(conn);
                    return Err(Failure::Refused(format!(
                        "rc={} {}",
                        result.rc, result.text
                    )));
                }
                Ok(Err(e)) => return Err(Failure::Unavailable(describe(&e))),
                Err(_) => {
                    return Err(Failure::Unavailable(format!(
                        "no answer within {:?}",
                        self.timeout
                    )))
                }
            }
        }
        Err(Failure::Unavailable(
            "the directory dropped the connection twice".into(),
        ))
    }
}
