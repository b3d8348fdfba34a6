//! Outgoing mail as a seam: `Auth` holds an `Arc<dyn Mailer>`. The `log` transport (the
//! default until SMTP is configured) writes each mail to the log for local use.

use async_trait::async_trait;

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
