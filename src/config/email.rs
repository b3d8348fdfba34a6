//! `EMAIL_*` and `RATE_LIMITER_EMAIL_*`: how outgoing mail is sent (Directus:
//! `api/src/mailer.ts`, `packages/env/src/constants/defaults.ts`).

use std::path::PathBuf;
use std::time::Duration;

use super::{bad, parse_duration, ConfigError, Vars};

/// Where mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailTransport {
    /// Written to the log (target `mail`), body included: for local use. gatehouse's default
    /// (Directus's is `sendmail`, which gatehouse does not speak).
    Log,
    Smtp(SmtpConfig),
}

/// `EMAIL_SMTP_*`, as nodemailer reads them.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Implicit TLS from the first byte (`EMAIL_SMTP_SECURE`, port 465).
    pub secure: bool,
    /// Never upgrade with STARTTLS (`EMAIL_SMTP_IGNORE_TLS`).
    pub ignore_tls: bool,
    /// The client name in EHLO (`EMAIL_SMTP_NAME`); the machine's host name when unset.
    pub name: Option<String>,
    /// Keep connections open between mails (`EMAIL_SMTP_POOL`).
    pub pool: bool,
    /// How long connecting may take (`GATEHOUSE_EMAIL_SMTP_TIMEOUT`); a whole delivery gets
    /// three times this.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpConfig {
    // SECURITY: the password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field(
                "password",
                &if self.password.is_some() {
                    "[set]"
                } else {
                    "[unset]"
                },
            )
            .field("secure", &self.secure)
            .field("ignore_tls", &self.ignore_tls)
            .field("name", &self.name)
            .field("pool", &self.pool)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `RATE_LIMITER_EMAIL_*`: at most `points` mails per `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmailRateLimit {
    pub points: u32,
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailConfig {
    pub transport: EmailTransport,
    /// The sender address; the display name is the project name.
    pub from: String,
    /// Custom templates (`<name>.liquid`) that override the built-in ones.
    pub templates_path: PathBuf,
    pub rate_limit: Option<EmailRateLimit>,
    /// At most this many mails wait for or are in delivery; more are dropped and logged.
    pub queue_size: usize,
    /// Check the SMTP connection once at start and warn when it fails (`EMAIL_VERIFY_SETUP`).
    pub verify_setup: bool,
}

/// The names this module reads, with their defaults (for the README table and `_FILE`).
pub const VARIABLES: &[(&str, &str)] = &[
    ("EMAIL_TRANSPORT", "log"),
    ("EMAIL_FROM", "no-reply@example.com"),
    ("EMAIL_TEMPLATES_PATH", "./templates"),
    ("EMAIL_VERIFY_SETUP", "true"),
    ("EMAIL_SMTP_HOST", "localhost"),
    ("EMAIL_SMTP_PORT", "587, or 465 with EMAIL_SMTP_SECURE"),
    ("EMAIL_SMTP_USER", ""),
    ("EMAIL_SMTP_PASSWORD", ""),
    ("EMAIL_SMTP_SECURE", "false"),
    ("EMAIL_SMTP_IGNORE_TLS", "false"),
    ("EMAIL_SMTP_NAME", "the host name"),
    ("EMAIL_SMTP_POOL", "false"),
    ("GATEHOUSE_EMAIL_SMTP_TIMEOUT", "10s"),
    ("GATEHOUSE_EMAIL_QUEUE_SIZE", "1000"),
    ("RATE_LIMITER_EMAIL_ENABLED", "false"),
    ("RATE_LIMITER_EMAIL_POINTS", "60"),
    ("RATE_LIMITER_EMAIL_DURATION", "60"),
];

pub fn read(v: &Vars) -> Result<EmailConfig, ConfigError> {
    let transport = match v
        .get("EMAIL_TRANSPORT")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("log") => EmailTransport::Log,
        Some("smtp") => EmailTransport::Smtp(smtp(v)?),
        Some(other @ ("sendmail" | "ses" | "mailgun" | "mailtrap")) => {
            return Err(ConfigError(format!(
                "EMAIL_TRANSPORT={other:?} is not supported by gatehouse: use smtp (for a local MTA: EMAIL_SMTP_HOST=localhost EMAIL_SMTP_PORT=25 EMAIL_SMTP_IGNORE_TLS=true; most providers offer SMTP too) or log"
            )))
        }
        Some(other) => return Err(bad("EMAIL_TRANSPORT", other, "use smtp or log")),
    };
    let from = v.string("EMAIL_FROM", "no-reply@example.com");
    if !is_address(&from) {
        return Err(bad(
            "EMAIL_FROM",
            &from,
            "use a plain address such as no-reply@example.com (the sender name is the project name)",
        ));
    }
    let rate_limit = if v.bool("RATE_LIMITER_EMAIL_ENABLED", false)? {
        let points = v.number::<u32>("RATE_LIMITER_EMAIL_POINTS", 60)?;
        if points == 0 {
            return Err(bad("RATE_LIMITER_EMAIL_POINTS", "0", "use at least 1"));
        }
        Some(EmailRateLimit {
            points,
            duration: seconds(v, "RATE_LIMITER_EMAIL_DURATION", 60)?,
        })
    } else {
        None
    };
    let queue_size = match v.number::<usize>("GATEHOUSE_EMAIL_QUEUE_SIZE", 1000)? {
        0 => return Err(bad("GATEHOUSE_EMAIL_QUEUE_SIZE", "0", "use at least 1")),
        n => n,
    };
    Ok(EmailConfig {
        transport,
        from,
        templates_path: PathBuf::from(v.string("EMAIL_TEMPLATES_PATH", "./templates")),
        rate_limit,
        queue_size,
        verify_setup: v.bool("EMAIL_VERIFY_SETUP", true)?,
    })
}

fn smtp(v: &Vars) -> Result<SmtpConfig, ConfigError> {
    // nodemailer's TLS options object has no counterpart here: refuse rather than ignore, so
    // a setting such as REJECT_UNAUTHORIZED=false is never silently dropped.
    if let Some(name) = v.names().find(|n| n.starts_with("EMAIL_SMTP_TLS_")) {
        return Err(ConfigError(format!(
            "{name} is not supported by gatehouse (nodemailer TLS options): remove it; certificates are checked against the Mozilla root store"
        )));
    }
    let host = v.string("EMAIL_SMTP_HOST", "localhost");
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
    {
        return Err(bad(
            "EMAIL_SMTP_HOST",
            &host,
            "use a host name or an IP address",
        ));
    }
    let secure = v.bool("EMAIL_SMTP_SECURE", false)?;
    let port = v.number::<u16>("EMAIL_SMTP_PORT", if secure { 465 } else { 587 })?;
    if port == 0 {
        return Err(bad("EMAIL_SMTP_PORT", "0", "use a port from 1 to 65535"));
    }
    let name = v.get("EMAIL_SMTP_NAME").map(str::to_string);
    if let Some(n) = name.as_deref().filter(|n| {
        !n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_[]:".contains(&b))
    }) {
        return Err(bad(
            "EMAIL_SMTP_NAME",
            n,
            "use a host name (letters, digits, `-` and `.`)",
        ));
    }
    Ok(SmtpConfig {
        host,
        port,
        user: v.get("EMAIL_SMTP_USER").map(str::to_string),
        password: v.get("EMAIL_SMTP_PASSWORD").map(str::to_string),
        secure,
        ignore_tls: v.bool("EMAIL_SMTP_IGNORE_TLS", false)?,
        name,
        pool: v.bool("EMAIL_SMTP_POOL", false)?,
        timeout: v.positive_duration("GATEHOUSE_EMAIL_SMTP_TIMEOUT", "10s")?,
    })
}

/// Directus reads the limiter's duration as seconds; a unit (`1m`, `1h`) is accepted too.
fn seconds(v: &Vars, name: &str, default: u64) -> Result<Duration, ConfigError> {
    let d = match v.get(name) {
        None => Duration::from_secs(default),
        Some(t) => match t.trim().parse::<u64>() {
            Ok(s) => Duration::from_secs(s),
            Err(_) => parse_duration(t)
                .ok_or_else(|| bad(name, t, "use a number of seconds, or a duration such as 1m"))?,
        },
    };
    if d.is_zero() {
        return Err(bad(
            name,
            v.get(name).unwrap_or(""),
            "use at least 1 second",
        ));
    }
    Ok(d)
}

/// `local@domain`, with nothing a header could be split on.
fn is_address(s: &str) -> bool {
    s.parse::<lettre::Address>().is_ok()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(pairs: &[(&str, &str)]) -> Result<EmailConfig, ConfigError> {
        read(&Vars::from_pairs(pairs.iter().copied()).expect("vars"))
    }

    #[test]
    fn defaults_log_from_example_and_no_limit() {
        let c = email(&[]).unwrap();
        assert_eq!(c.transport, EmailTransport::Log);
        assert_eq!(c.from, "no-reply@example.com");
        assert_eq!(c.templates_path, PathBuf::from("./templates"));
        assert_eq!(c.rate_limit, None);
        let c = email(&[("RATE_LIMITER_EMAIL_ENABLED", "true")]).unwrap();
        assert_eq!(
            c.rate_limit,
            Some(EmailRateLimit {
                points: 60,
                duration: Duration::from_secs(60)
            })
        );
    }

    #[test]
    fn smtp_ports_follow_nodemailer() {
        let smtp = |pairs: &[(&str, &str)]| match email(pairs).unwrap().transport {
            EmailTransport::Smtp(s) => s,
            EmailTransport::Log => panic!("smtp expected"),
        };
        let s = smtp(&[
            ("EMAIL_TRANSPORT", "smtp"),
            ("EMAIL_SMTP_HOST", "mx.example"),
        ]);
        assert_eq!(
            (s.host.as_str(), s.port, s.secure),
            ("mx.example", 587, false)
        );
        let s = smtp(&[("EMAIL_TRANSPORT", "SMTP"), ("EMAIL_SMTP_SECURE", "true")]);
        assert_eq!(
            (s.host.as_str(), s.port, s.secure),
            ("localhost", 465, true)
        );
        let s = smtp(&[("EMAIL_TRANSPORT", "smtp"), ("EMAIL_SMTP_PORT", "2525")]);
        assert_eq!(s.port, 2525);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (pairs, var) in [
            (&[("EMAIL_TRANSPORT", "pigeon")][..], "EMAIL_TRANSPORT"),
            (&[("EMAIL_TRANSPORT", "sendmail")][..], "EMAIL_TRANSPORT"),
            (&[("EMAIL_TRANSPORT", "mailgun")][..], "EMAIL_TRANSPORT"),
            (&[("EMAIL_TRANSPORT", "ses")][..], "EMAIL_TRANSPORT"),
            (&[("EMAIL_FROM", "not an address")][..], "EMAIL_FROM"),
            (&[("EMAIL_FROM", "Me <me@example.com>")][..], "EMAIL_FROM"),
            (
                &[("EMAIL_TRANSPORT", "smtp"), ("EMAIL_SMTP_PORT", "smtp")][..],
                "EMAIL_SMTP_PORT",
            ),
            (
                &[("EMAIL_TRANSPORT", "smtp"), ("EMAIL_SMTP_PORT", "70000")][..],
                "EMAIL_SMTP_PORT",
            ),
            (
                &[("EMAIL_TRANSPORT", "smtp"), ("EMAIL_SMTP_SECURE", "maybe")][..],
                "EMAIL_SMTP_SECURE",
            ),
            (
                &[("EMAIL_TRANSPORT", "smtp"), ("EMAIL_SMTP_HOST", "a b")][..],
                "EMAIL_SMTP_HOST",
            ),
            (
                &[
                    ("EMAIL_TRANSPORT", "smtp"),
                    ("EMAIL_SMTP_NAME", "x\r\nRCPT"),
                ][..],
                "EMAIL_SMTP_NAME",
            ),
            (
                &[
                    ("EMAIL_TRANSPORT", "smtp"),
                    ("EMAIL_SMTP_TLS_REJECT_UNAUTHORIZED", "false"),
                ][..],
                "EMAIL_SMTP_TLS_REJECT_UNAUTHORIZED",
            ),
            (
                &[
                    ("RATE_LIMITER_EMAIL_ENABLED", "true"),
                    ("RATE_LIMITER_EMAIL_POINTS", "0"),
                ][..],
                "RATE_LIMITER_EMAIL_POINTS",
            ),
            (
                &[
                    ("RATE_LIMITER_EMAIL_ENABLED", "true"),
                    ("RATE_LIMITER_EMAIL_DURATION", "soon"),
                ][..],
                "RATE_LIMITER_EMAIL_DURATION",
            ),
            (
                &[("RATE_LIMITER_EMAIL_ENABLED", "yes please")][..],
                "RATE_LIMITER_EMAIL_ENABLED",
            ),
            (
                &[("GATEHOUSE_EMAIL_QUEUE_SIZE", "0")][..],
                "GATEHOUSE_EMAIL_QUEUE_SIZE",
            ),
        ] {
            let err = email(pairs).unwrap_err().to_string();
            assert!(err.contains(var), "{pairs:?}: {err}");
        }
        let err = email(&[("EMAIL_TRANSPORT", "sendmail")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not supported"), "{err}");
    }

    #[test]
    fn the_password_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("smtp");
        std::fs::write(&p, "from-a-file\n").unwrap();
        let c = email(&[
            ("EMAIL_TRANSPORT", "smtp"),
            ("EMAIL_SMTP_PASSWORD_FILE", p.to_str().unwrap()),
        ])
        .unwrap();
        match c.transport {
            EmailTransport::Smtp(s) => assert_eq!(s.password.as_deref(), Some("from-a-file")),
            EmailTransport::Log => panic!("smtp expected"),
        }
    }

    #[test]
    fn debug_hides_the_smtp_password() {
        let c = email(&[
            ("EMAIL_TRANSPORT", "smtp"),
            ("EMAIL_SMTP_USER", "mailer"),
            ("EMAIL_SMTP_PASSWORD", "smtp-pass-hunter2"),
        ])
        .unwrap();
        let text = format!("{c:?}");
        assert!(!text.contains("smtp-pass-hunter2"), "{text}");
        assert!(text.contains("mailer") && text.contains("[set]"), "{text}");
        // And through the whole configuration's Debug.
        let v = Vars::from_pairs([
            ("EMAIL_TRANSPORT", "smtp"),
            ("EMAIL_SMTP_PASSWORD", "smtp-pass-hunter2"),
        ])
        .expect("vars");
        let text = format!("{:?}", super::super::Config::from_vars(&v).unwrap());
        assert!(
            text.contains("SmtpConfig") && !text.contains("smtp-pass-hunter2"),
            "{text}"
        );
    }
}
