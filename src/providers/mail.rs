//! Outgoing mail. Use cases hand a [`Letter`] (a template name, a recipient and the template's
//! variables) to the [`Outbox`], which renders it and sends it off the request path through a
//! [`Mailer`] transport: the `log` transport (the default until SMTP is configured) writes each
//! mail to the log for local use.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

/// One message, already rendered.
#[derive(Clone, PartialEq)]
pub struct Mail {
    pub to: String,
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
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
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

/// Renders letters and sends them in the background: the caller never waits for the
/// transport, and a failure is logged, never returned.
#[derive(Clone)]
pub struct Outbox {
    mailer: Arc<dyn Mailer>,
}

impl Outbox {
    pub fn new(mailer: Arc<dyn Mailer>) -> Self {
        Self { mailer }
    }

    /// Renders `letter` with `project` (the project variables) and sends it off the request path.
    pub fn post(&self, letter: Letter, project: Map<String, Value>) {
        let mail = render(&letter, project);
        let mailer = self.mailer.clone();
        tokio::spawn(async move {
            if let Err(e) = mailer.send(&mail).await {
                tracing::warn!(target: "mail", to = %e.to, reason = %e.reason, "sending a mail failed");
            }
        });
    }
}

/// A plain rendering until the Liquid templates arrive: the subject and the link.
fn render(letter: &Letter, _project: Map<String, Value>) -> Mail {
    let url = letter.vars.get("url").and_then(Value::as_str).unwrap_or("");
    Mail {
        to: letter.to.clone(),
        subject: letter.template.subject().to_string(),
        html: format!("<p><a href=\"{url}\">{url}</a></p>"),
    }
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
