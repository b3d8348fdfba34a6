//! Outgoing mail. Use cases hand a [`Letter`] (a template name, a recipient and the template's
//! variables) to the [`Outbox`], which renders it with the Liquid templates
//! ([`templates`]) and sends it off the request path through a [`Mailer`] transport: SMTP
//! ([`smtp`]), or the `log` transport (the default) that writes each mail to the log for local
//! use. The outbox bounds the work in flight, retries transient failures, and applies
//! `RATE_LIMITER_EMAIL_*`; nothing about delivery ever reaches the client.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};

pub mod smtp;
pub mod templates;

pub use smtp::SmtpMailer;
pub use templates::{TemplateError, Templates};

use crate::config::{EmailConfig, EmailRateLimit, EmailTransport};

/// One message, already rendered.
#[derive(Clone, PartialEq)]
pub struct Mail {
    pub to: String,
    /// The sender's display name (the project name); the address is `EMAIL_FROM`.
    pub from_name: String,
    pub subject: String,
    pub html: String,
}

impl std::fmt::Debug for Mail {
    // SECURITY: the body can hold a reset or invite link; Debug shows only the envelope.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("mail to {to} failed: {reason}")]
pub struct MailError {
    pub to: String,
    pub reason: String,
    /// Worth another try (a 4xx reply, a timeout, a dropped connection).
    pub transient: bool,
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
    /// Whether the transport could send now, for `/server/health` (`email:connection`);
    /// None for a transport with nothing to reach.
    async fn verify(&self) -> Option<Result<(), String>> {
        None
    }
}

/// Writes every mail to the log (target `mail`), body included: a transport for local use
/// only, where the operator reads reset links from the console.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogMailer;

impl LogMailer {
    /// The log line for a mail.
    pub fn render(mail: &Mail) -> String {
        format!(
            "To: {}\nSubject: {}\n\n{}",
            mail.to, mail.subject, mail.html
        )
    }
}

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        tracing::info!(target: "mail", "{}", LogMailer::render(mail));
        Ok(())
    }
}

/// The mails Directus sends about accounts, by template name (`api/src/services/mail/templates/`),
/// each with its fixed subject (`api/src/services/users.ts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    PasswordReset,
    UserInvitation,
    UserRegistration,
}

impl Template {
    /// The template's file name without `.liquid`.
    pub fn name(self) -> &'static str {
        match self {
            Template::PasswordReset => "password-reset",
            Template::UserInvitation => "user-invitation",
            Template::UserRegistration => "user-registration",
        }
    }

    pub fn subject(self) -> &'static str {
        match self {
            Template::PasswordReset => "Password Reset Request",
            Template::UserInvitation => "You've been invited",
            Template::UserRegistration => "Verify your email address",
        }
    }
}

/// One mail to send: what a use case knows. `vars` are the template's own variables (`url`,
/// `email`); the outbox adds the project ones (`projectName`, `projectColor`, ...).
#[derive(Clone)]
pub struct Letter {
    pub to: String,
    pub template: Template,
    pub vars: Map<String, Value>,
}

impl std::fmt::Debug for Letter {
    // SECURITY: `vars` hold the link with its token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Letter")
            .field("to", &self.to)
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

/// How many times a transient failure is retried, and after how long.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(4)];
/// One delivery attempt, start to end: a backstop over the transport's own bound (SMTP: three
/// times `GATEHOUSE_EMAIL_SMTP_TIMEOUT`).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Mails in flight when no configuration says otherwise.
const DEFAULT_QUEUE: usize = 1000;

/// Renders letters and sends them in the background: the caller never waits for the
/// transport, and a failure is logged, never returned.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    mailer: Arc<dyn Mailer>,
    templates: Templates,
    /// One permit per mail waiting for or in delivery.
    slots: Arc<tokio::sync::Semaphore>,
    queue_size: usize,
    limiter: Option<governor::DefaultDirectRateLimiter>,
    retry_delays: Vec<Duration>,
    attempt_timeout: Duration,
    metrics: crate::metrics::Metrics,
}

/// How the outbox bounds and retries its work.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// At most this many mails wait for or are in delivery.
    pub queue_size: usize,
    pub rate_limit: Option<EmailRateLimit>,
    /// The waits between tries; their count is the number of retries.
    pub retry_delays: Vec<Duration>,
    /// One try, start to end (a backstop over the transport's own bound).
    pub attempt_timeout: Duration,
    /// Where sent, failed and dropped mails are counted.
    pub metrics: crate::metrics::Metrics,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            queue_size: DEFAULT_QUEUE,
            rate_limit: None,
            retry_delays: RETRY_DELAYS.to_vec(),
            attempt_timeout: ATTEMPT_TIMEOUT,
            metrics: crate::metrics::Metrics::default(),
        }
    }
}

impl Outbox {
    /// The built-in templates and the default settings.
    pub fn new(mailer: Arc<dyn Mailer>) -> Self {
        Self::with(mailer, Templates::built_in(), OutboxSettings::default())
    }

    pub fn with(mailer: Arc<dyn Mailer>, templates: Templates, settings: OutboxSettings) -> Self {
        let queue_size = settings.queue_size.max(1);
        Self {
            inner: Arc::new(Inner {
                mailer,
                templates,
                slots: Arc::new(tokio::sync::Semaphore::new(queue_size)),
                queue_size,
                limiter: settings.rate_limit.map(limiter),
                retry_delays: settings.retry_delays,
                attempt_timeout: settings.attempt_timeout,
                metrics: settings.metrics,
            }),
        }
    }

    /// The outbox `EMAIL_*` describes; `mailer` replaces the configured transport (tests).
    /// A custom template that does not parse is an error naming its file.
    pub fn from_config(
        config: &EmailConfig,
        mailer: Option<Arc<dyn Mailer>>,
        metrics: crate::metrics::Metrics,
    ) -> anyhow::Result<Self> {
        let templates = Templates::load(Some(&config.templates_path))?;
        let mailer: Arc<dyn Mailer> = match (mailer, &config.transport) {
            (Some(m), _) => m,
            (None, EmailTransport::Log) => Arc::new(LogMailer),
            (None, EmailTransport::Smtp(smtp)) => {
                Arc::new(SmtpMailer::new(smtp, &config.from).map_err(anyhow::Error::msg)?)
            }
        };
        Ok(Self::with(
            mailer,
            templates,
            OutboxSettings {
                queue_size: config.queue_size,
                rate_limit: config.rate_limit,
                metrics,
                ..OutboxSettings::default()
            },
        ))
    }

    /// What the server says at start about mail: that the log transport only logs, or (with
    /// `EMAIL_VERIFY_SETUP`) whether the SMTP server answers. Not for one-off commands.
    pub fn announce(config: &EmailConfig) {
        match &config.transport {
            EmailTransport::Log => tracing::warn!(
                "EMAIL_TRANSPORT=log: mail is not sent, only written to the log (target `mail`), whole, links with their tokens included; for local use only: set EMAIL_TRANSPORT=smtp and EMAIL_SMTP_* to send mail"
            ),
            EmailTransport::Smtp(smtp) if config.verify_setup => {
                let Ok(check) = SmtpMailer::new(smtp, &config.from) else {
                    return;
                };
                tokio::spawn(async move {
                    match check.verify().await {
                        Ok(()) => tracing::info!(target: "mail", "the SMTP server answers"),
                        Err(reason) => tracing::warn!(target: "mail", %reason, "the SMTP server cannot be reached or refused the login (EMAIL_VERIFY_SETUP)"),
                    }
                });
            }
            EmailTransport::Smtp(_) => {}
        }
    }

    /// The transport's own check (src/providers/mail/smtp.rs: connect, log in, `NOOP`).
    pub async fn verify(&self) -> Option<Result<(), String>> {
        self.inner.mailer.verify().await
    }

    /// Mails waiting for or in delivery.
    pub fn in_flight(&self) -> usize {
        self.inner.queue_size - self.inner.slots.available_permits()
    }

    /// Renders `letter` with `project` (the project variables) and sends it off the request
    /// path. Over the queue bound or the rate limit the mail is dropped, with a warning.
    pub fn post(&self, letter: Letter, project: Map<String, Value>) {
        let inner = self.inner.clone();
        let template = letter.template.name();
        let Ok(permit) = inner.slots.clone().try_acquire_owned() else {
            tracing::warn!(target: "mail", to = %letter.to, template, "the mail queue is full (GATEHOUSE_EMAIL_QUEUE_SIZE): mail dropped");
            inner.metrics.mail("dropped");
            return;
        };
        if let Some(limiter) = &inner.limiter {
            if limiter.check().is_err() {
                tracing::warn!(target: "mail", to = %letter.to, template, "the email rate limit is reached (RATE_LIMITER_EMAIL_*): mail dropped");
                inner.metrics.mail("dropped");
                return;
            }
        }
        tokio::spawn(async move {
            let _permit = permit;
            let mail = match render(&inner.templates, &letter, project) {
                Ok(mail) => mail,
                Err(reason) => {
                    tracing::warn!(target: "mail", to = %letter.to, template, %reason, "rendering a mail failed");
                    inner.metrics.mail("failed");
                    return;
                }
            };
            let mut tries = 0;
            loop {
                tries += 1;
                let error =
                    match tokio::time::timeout(inner.attempt_timeout, inner.mailer.send(&mail))
                        .await
                    {
                        Ok(Ok(())) => {
                            inner.metrics.mail("sent");
                            return;
                        }
                        Ok(Err(e)) => e,
                        Err(_) => MailError {
                            to: mail.to.clone(),
                            reason: format!("no answer within {:?}", inner.attempt_timeout),
                            transient: true,
                        },
                    };
                match inner
                    .retry_delays
                    .get(tries - 1)
                    .filter(|_| error.transient)
                {
                    Some(delay) => {
                        tracing::info!(target: "mail", to = %mail.to, template, reason = %error.reason, tries, "sending a mail failed; trying again");
                        tokio::time::sleep(*delay).await;
                    }
                    None => {
                        // SECURITY: never the body; it holds the link with its token.
                        tracing::warn!(target: "mail", to = %mail.to, template, reason = %error.reason, tries, "sending a mail failed");
                        inner.metrics.mail("failed");
                        return;
                    }
                }
            }
        });
    }
}

/// At most `points` per `duration`, the whole allowance usable at once.
fn limiter(limit: EmailRateLimit) -> governor::DefaultDirectRateLimiter {
    let points = NonZeroU32::new(limit.points).unwrap_or(NonZeroU32::MIN);
    let period = (limit.duration / points.get()).max(Duration::from_nanos(1));
    let quota = governor::Quota::with_period(period)
        .unwrap_or_else(|| governor::Quota::per_second(points))
        .allow_burst(points);
    governor::RateLimiter::direct(quota)
}

/// The letter's variables over the project ones (Directus: `{...defaults, ...data}`).
fn render(
    templates: &Templates,
    letter: &Letter,
    project: Map<String, Value>,
) -> Result<Mail, String> {
    let from_name = project
        .get("projectName")
        .and_then(Value::as_str)
        .unwrap_or("Directus")
        .to_string();
    let mut vars = project;
    vars.extend(letter.vars.clone());
    Ok(Mail {
        to: letter.to.clone(),
        from_name,
        subject: letter.template.subject().to_string(),
        html: templates.render(letter.template, &vars)?,
    })
}

/// Keeps every mail in memory instead of sending it: for tests that read the mail a flow sent.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    sent: Arc<std::sync::Mutex<Vec<Mail>>>,
}

impl Recorder {
    /// The mails sent so far, oldest first.
    pub fn sent(&self) -> Vec<Mail> {
        self.sent.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Mailer for Recorder {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        if let Ok(mut sent) = self.sent.lock() {
            sent.push(mail.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_log_transport_writes_the_whole_mail_and_debug_hides_the_body() {
        let mail = Mail {
            to: "a@example.com".into(),
            from_name: "Directus".into(),
            subject: "Password reset".into(),
            html: "<a href=\"https://x/reset?token=secret-token\">reset</a>".into(),
        };
        let line = LogMailer::render(&mail);
        assert!(line.starts_with("To: a@example.com\nSubject: Password reset\n\n"));
        assert!(line.ends_with("secret-token\">reset</a>"));
        assert!(!format!("{mail:?}").contains("secret-token"));
        LogMailer
            .send(&mail)
            .await
            .expect("the log transport never fails");
    }
}
