//! The SMTP transport (`EMAIL_TRANSPORT=smtp`), with nodemailer's meaning of `EMAIL_SMTP_*`
//! (`api/src/mailer.ts`): implicit TLS with `SECURE`, no STARTTLS with `IGNORE_TLS`, otherwise
//! STARTTLS whenever the server offers it.
//!
//! lettre's own timeout bounds only the TCP connect on tokio, so each delivery as a whole
//! (connect, TLS, EHLO, AUTH, MAIL, RCPT, DATA, QUIT) is bounded here by three times
//! `GATEHOUSE_EMAIL_SMTP_TIMEOUT`: a server that accepts and then stalls is given up on.

use async_trait::async_trait;
use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Mail, MailError, Mailer};
use crate::config::SmtpConfig;

pub struct SmtpMailer {
    builder: AsyncSmtpTransportBuilder,
    /// The shared transport with `EMAIL_SMTP_POOL`; otherwise each mail gets its own
    /// connection, closed after it, as nodemailer does without a pool.
    pooled: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Address,
    /// One whole delivery.
    deadline: std::time::Duration,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    pub fn new(cfg: &SmtpConfig, from: &str) -> Result<Self, String> {
        let from: Address = from
            .parse()
            .map_err(|e| format!("EMAIL_FROM={from:?} is not an address ({e})"))?;
        let tls = if cfg.secure || !cfg.ignore_tls {
            let params = TlsParameters::new(cfg.host.clone())
                .map_err(|e| format!("EMAIL_SMTP_HOST={:?}: cannot set up TLS ({e})", cfg.host))?;
            if cfg.secure {
                Tls::Wrapper(params)
            } else {
                Tls::Opportunistic(params)
            }
        } else {
            Tls::None
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host)
            .port(cfg.port)
            .tls(tls)
            .timeout(Some(cfg.timeout));
        if let Some(name) = &cfg.name {
            builder = builder.hello_name(ClientId::Domain(name.clone()));
        }
        // nodemailer authenticates when either is set.
        if cfg.user.is_some() || cfg.password.is_some() {
            builder = builder.credentials(Credentials::new(
                cfg.user.clone().unwrap_or_default(),
                cfg.password.clone().unwrap_or_default(),
            ));
        }
        let pooled = cfg
            .pool
            // nodemailer's pool defaults: 5 connections.
            .then(|| {
                builder
                    .clone()
                    .pool_config(PoolConfig::new().max_size(5))
                    .build()
            });
        Ok(Self {
            builder,
            pooled,
            from,
            deadline: cfg.timeout.saturating_mul(3),
        })
    }

    /// Connects (and logs in) once: `EMAIL_VERIFY_SETUP` and `/server/health`; bounded like
    /// a delivery.
    pub async fn verify(&self) -> Result<(), String> {
        match tokio::time::timeout(self.deadline, self.test_connection()).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "the SMTP server did not finish the check within {:?}",
                self.deadline
            )),
        }
    }

    async fn test_connection(&self) -> Result<(), String> {
        let ok = match &self.pooled {
            Some(t) => t.test_connection().await,
            None => {
                self.builder
                    .clone()
                    .build::<Tokio1Executor>()
                    .test_connection()
                    .await
            }
        };
        match ok {
            Ok(true) => Ok(()),
            Ok(false) => Err("the server did not answer NOOP".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The project name as a header's display name: control characters (which would split the
/// header, and make lettre panic) become spaces, runs of space collapse, at most 200 characters.
fn display_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn verify(&self) -> Option<Result<(), String>> {
        Some(SmtpMailer::verify(self).await)
    }

    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let fail = |reason: String, transient: bool| MailError {
            to: mail.to.clone(),
            reason,
            transient,
        };
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| fail(format!("not a valid recipient ({e})"), false))?;
        // Directus: `from: {name: projectName, address: EMAIL_FROM}`.
        let from = Mailbox::new(Some(display_name(&mail.from_name)), self.from.clone());
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_HTML)
            .body(mail.html.clone())
            .map_err(|e| fail(format!("cannot build the message ({e})"), false))?;
        let send = async {
            match &self.pooled {
                Some(t) => t.send(message).await,
                None => {
                    self.builder
                        .clone()
                        .build::<Tokio1Executor>()
                        .send(message)
                        .await
                }
            }
        };
        let Ok(sent) = tokio::time::timeout(self.deadline, send).await else {
            return Err(fail(format!("no answer within {:?}", self.deadline), true));
        };
        sent.map(|_| ()).map_err(|e| {
            // 4xx replies, timeouts and dropped connections may pass on a later try; 5xx
            // replies, TLS and client errors will not.
            let transient = e.is_transient()
                || e.is_timeout()
                || !(e.is_permanent() || e.is_client() || e.is_tls() || e.is_response());
            fail(e.to_string(), transient)
        })
    }
}
