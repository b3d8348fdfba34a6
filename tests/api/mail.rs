//! Outgoing mail: SMTP delivery to a local sink (From, Subject, the link, AUTH, EHLO name,
//! STARTTLS and implicit TLS), retries of transient failures only, dead and stalling servers
//! that never delay the caller, the queue bound, custom and broken templates from
//! EMAIL_TEMPLATES_PATH, escaping and header safety, the log transport, and the email rate limit.

use std::sync::{Arc, Mutex};

use base64::Engine;
use std::time::Duration;

use gatehouse::config::{Config, EmailConfig, EmailTransport, SmtpConfig, Vars};
use gatehouse::providers::mail::{
    Letter, Mailer, Outbox, OutboxSettings, Recorder, SmtpMailer, Template, Templates,
};
use serde_json::{json, Map, Value};

use crate::helpers::*;
use crate::smtp_sink::SmtpSink;

const LINK: &str = "https://app.example/admin/reset-password?token=secret-token-123";

fn email_config(pairs: &[(&str, &str)]) -> EmailConfig {
    Config::from_vars(&Vars::from_pairs(pairs.iter().copied()).unwrap())
        .unwrap()
        .email
}

fn smtp_config(pairs: &[(&str, &str)]) -> SmtpConfig {
    let mut all = vec![
        ("EMAIL_TRANSPORT", "smtp"),
        ("EMAIL_SMTP_HOST", "127.0.0.1"),
    ];
    all.extend_from_slice(pairs);
    match email_config(&all).transport {
        EmailTransport::Smtp(s) => s,
        EmailTransport::Log => panic!("smtp expected"),
    }
}

fn letter(to: &str) -> Letter {
    let mut vars = Map::new();
    vars.insert("url".into(), LINK.into());
    vars.insert("email".into(), to.into());
    Letter {
        to: to.into(),
        template: Template::PasswordReset,
        vars,
    }
}

fn project(name: &str) -> Map<String, Value> {
    json!({
        "projectName": name,
        "projectColor": "#6644ff",
        "projectLogo": "https://app.example/assets/logo",
        "projectUrl": "https://app.example",
    })
    .as_object()
    .unwrap()
    .clone()
}

/// An outbox on the SMTP transport with quick retries.
fn smtp_outbox(smtp: &SmtpConfig, settings: OutboxSettings) -> Outbox {
    let mailer = SmtpMailer::new(smtp, "no-reply@gatehouse.test").unwrap();
    Outbox::with(Arc::new(mailer), Templates::built_in(), settings)
}

fn quick() -> OutboxSettings {
    OutboxSettings {
        retry_delays: vec![Duration::from_millis(20), Duration::from_millis(20)],
        ..OutboxSettings::default()
    }
}

/// Waits up to 20 s for the outbox to finish everything it holds.
async fn drained(outbox: &Outbox) {
    for _ in 0..2000 {
        if outbox.in_flight() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the outbox still holds {} mails", outbox.in_flight());
}

/// The log lines written on this thread while the guard lives (use a current-thread runtime
/// so the outbox's tasks log here too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        (logs.clone(), tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

#[tokio::test]
async fn smtp_delivers_from_the_project_with_subject_link_and_login() {
    let sink = SmtpSink::start().await;
    let smtp = smtp_config(&[
        ("EMAIL_SMTP_PORT", &sink.port()),
        ("EMAIL_SMTP_USER", "mailer"),
        ("EMAIL_SMTP_PASSWORD", "smtp-pass"),
        ("EMAIL_SMTP_NAME", "gatehouse.test"),
    ]);
    let outbox = smtp_outbox(&smtp, quick());
    outbox.post(letter("ann@example.com"), project("Acme Portal"));
    let got = sink.wait_for(1).await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.auth, Some(("mailer".into(), "smtp-pass".into())));
    assert_eq!(m.helo, "gatehouse.test");
    assert_eq!(m.mail_from, "<no-reply@gatehouse.test>");
    assert_eq!(m.rcpt_to, vec!["<ann@example.com>".to_string()]);
    let from = m.header("From").unwrap();
    assert!(
        from.contains("Acme Portal") && from.contains("<no-reply@gatehouse.test>"),
        "{from}"
    );
    assert_eq!(m.header("To").as_deref(), Some("ann@example.com"));
    assert_eq!(
        m.header("Subject").as_deref(),
        Some("Password Reset Request")
    );
    assert!(m.header("Content-Type").unwrap().starts_with("text/html"));
    let body = m.body();
    assert!(body.contains(&format!("href=\"{LINK}\"")), "{body}");
    assert!(
        body.contains("Acme Portal") && body.contains("#6644ff"),
        "{body}"
    );
}

#[tokio::test]
async fn smtp_without_user_or_password_does_not_log_in() {
    let sink = SmtpSink::start().await;
    let smtp = smtp_config(&[
        ("EMAIL_SMTP_PORT", &sink.port()),
        ("EMAIL_SMTP_POOL", "true"),
    ]);
    let outbox = smtp_outbox(&smtp, quick());
    outbox.post(letter("a@example.com"), project("P"));
    outbox.post(letter("b@example.com"), project("P"));
    let got = sink.wait_for(2).await;
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|m| m.auth.is_none()), "{got:?}");
}

#[tokio::test]
async fn transient_failures_are_retried_until_delivered() {
    let sink = SmtpSink::start().await;
    sink.fail_next(2);
    let smtp = smtp_config(&[("EMAIL_SMTP_PORT", &sink.port())]);
    let outbox = smtp_outbox(&smtp, quick());
    outbox.post(letter("ann@example.com"), project("P"));
    let got = sink.wait_for(1).await;
    assert_eq!(got.len(), 1, "delivered on the third try");
    assert_eq!(sink.refused(), 2);
    drained(&outbox).await;
    // More failures than retries: given up after three tries, logged, never delivered.
    sink.fail_next(5);
    outbox.post(letter("bob@example.com"), project("P"));
    drained(&outbox).await;
    assert_eq!(sink.refused(), 5, "2 before + 3 tries");
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_permanent_refusal_is_not_retried() {
    let (logs, _guard) = Logs::capture();
    let sink = SmtpSink::start().await;
    sink.reject_next(1);
    let smtp = smtp_config(&[("EMAIL_SMTP_PORT", &sink.port())]);
    let outbox = smtp_outbox(&smtp, quick());
    outbox.post(letter("ann@example.com"), project("P"));
    drained(&outbox).await;
    assert_eq!(sink.refused(), 1);
    assert!(sink.messages().is_empty());
    let text = logs.text();
    assert!(text.contains("tries=1") && text.contains("550"), "{text}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_dead_server_is_logged_without_the_link() {
    let (logs, _guard) = Logs::capture();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    let smtp = smtp_config(&[("EMAIL_SMTP_PORT", &port)]);
    let outbox = smtp_outbox(&smtp, quick());
    outbox.post(letter("ann@example.com"), project("P"));
    assert_eq!(
        outbox.in_flight(),
        1,
        "post returns before the connection is tried"
    );
    drained(&outbox).await;
    let text = logs.text();
    assert!(text.contains("sending a mail failed"), "{text}");
    assert!(
        text.contains("ann@example.com") && text.contains("password-reset"),
        "{text}"
    );
    assert!(text.contains("tries=3"), "{text}");
    assert!(!text.contains("secret-token-123"), "{text}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_stalling_server_times_out_and_is_tried_again() {
    let (logs, _guard) = Logs::capture();
    let sink = SmtpSink::start().await;
    sink.stall();
    let smtp = smtp_config(&[
        ("EMAIL_SMTP_PORT", &sink.port()),
        ("GATEHOUSE_EMAIL_SMTP_TIMEOUT", "300ms"),
    ]);
    let outbox = smtp_outbox(
        &smtp,
        OutboxSettings {
            retry_delays: vec![Duration::from_millis(20)],
            ..OutboxSettings::default()
        },
    );
    outbox.post(letter("ann@example.com"), project("P"));
    assert_eq!(outbox.in_flight(), 1);
    drained(&outbox).await;
    assert_eq!(sink.connections(), 2, "one retry");
    assert!(sink.messages().is_empty());
    let text = logs.text();
    assert!(
        text.contains("sending a mail failed") && text.contains("tries=2"),
        "{text}"
    );
}

#[tokio::test]
async fn the_caller_is_not_held_by_a_stalling_server() {
    let sink = SmtpSink::start().await;
    sink.stall();
    let app = spawn_with_real_mail(&[
        ("EMAIL_TRANSPORT", "smtp"),
        ("EMAIL_SMTP_HOST", "127.0.0.1"),
        ("EMAIL_SMTP_PORT", &sink.port()),
        ("EMAIL_VERIFY_SETUP", "false"),
    ])
    .await;
    app.auth.send_mail(letter("ann@example.com")).await.unwrap();
    // Handed over while the server has not even greeted: the delivery is still pending.
    assert_eq!(app.auth.mail.in_flight(), 1);
    assert!(sink.messages().is_empty());
    // The server answers meanwhile.
    let r = app.login(ADMIN_EMAIL, ADMIN_PASSWORD, "json").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.auth.mail.in_flight(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn the_queue_bound_holds_under_a_flood() {
    let (logs, _guard) = Logs::capture();
    let sink = SmtpSink::start().await;
    sink.stall();
    let smtp = smtp_config(&[("EMAIL_SMTP_PORT", &sink.port())]);
    let outbox = smtp_outbox(
        &smtp,
        OutboxSettings {
            queue_size: 3,
            ..quick()
        },
    );
    for i in 0..50 {
        outbox.post(letter(&format!("u{i}@example.com")), project("P"));
    }
    assert_eq!(outbox.in_flight(), 3);
    // Let the three connect: no more than three connections are ever opened.
    for _ in 0..500 {
        if sink.connections() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sink.connections(), 3);
    let text = logs.text();
    assert_eq!(text.matches("the mail queue is full").count(), 47, "{text}");
    assert!(text.contains("u49@example.com"), "{text}");
}

#[tokio::test]
async fn the_email_rate_limit_lets_only_its_points_through() {
    let app = spawn_with(&[
        ("RATE_LIMITER_EMAIL_ENABLED", "true"),
        ("RATE_LIMITER_EMAIL_POINTS", "2"),
        ("RATE_LIMITER_EMAIL_DURATION", "3600"),
    ])
    .await;
    for i in 0..5 {
        app.auth
            .send_mail(letter(&format!("u{i}@example.com")))
            .await
            .unwrap();
    }
    assert_eq!(app.mails(2).await.len(), 2);
    drained(&app.auth.mail).await;
    let sent: Vec<String> = app.mailbox.sent().into_iter().map(|m| m.to).collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent.contains(&"u0@example.com".to_string())
            && sent.contains(&"u1@example.com".to_string())
    );
}

#[tokio::test]
async fn the_project_settings_reach_the_mail_escaped() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let r = app
        .patch(
            "/settings",
            Some(&token),
            json!({"project_name": "<script>x</script> & Co", "project_color": "#112233"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.auth.send_mail(letter("ann@example.com")).await.unwrap();
    let mail = app.mails(1).await.pop().expect("a mail");
    assert_eq!(mail.from_name, "<script>x</script> & Co");
    assert_eq!(mail.subject, "Password Reset Request");
    assert!(!mail.html.contains("<script>"), "{}", mail.html);
    assert!(mail
        .html
        .contains("&lt;script&gt;x&lt;/script&gt; &amp; Co"));
    assert!(mail.html.contains("#112233"));
    assert!(mail.html.contains(LINK));
}

#[tokio::test]
async fn a_custom_template_overrides_the_built_in_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("password-reset.liquid"),
        "<p>{{ projectName }}: <a href=\"{{ url }}\">reset {{ email }}</a></p>",
    )
    .unwrap();
    let app = spawn_with(&[("EMAIL_TEMPLATES_PATH", dir.path().to_str().unwrap())]).await;
    app.auth.send_mail(letter("ann@example.com")).await.unwrap();
    let mail = app.mails(1).await.pop().expect("a mail");
    assert_eq!(
        mail.html,
        format!("<p>Directus: <a href=\"{LINK}\">reset ann@example.com</a></p>")
    );
    // The others stay built in.
    let mut invite = letter("bob@example.com");
    invite.template = Template::UserInvitation;
    app.auth.send_mail(invite).await.unwrap();
    let mail = app.mails(2).await.pop().expect("a second mail");
    assert_eq!(mail.subject, "You've been invited");
    assert!(mail.html.starts_with("<!DOCTYPE html>"), "{}", mail.html);
}

#[tokio::test]
async fn a_broken_custom_template_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("user-registration.liquid"),
        "{% if url %}never closed",
    )
    .unwrap();
    let db = dir.path().join("gatehouse.db");
    let mut vars = base_vars(dir.path());
    vars.push((
        "EMAIL_TEMPLATES_PATH".into(),
        dir.path().to_string_lossy().into_owned(),
    ));
    vars.retain(|(k, _)| k != "DB_CLIENT" && k != "DB_CONNECTION_STRING");
    vars.push(("DB_CLIENT".into(), "sqlite3".into()));
    vars.push(("DB_FILENAME".into(), db.to_string_lossy().into_owned()));
    let config = Config::from_vars(&Vars::from_pairs(vars).unwrap()).unwrap();
    let recorder: Arc<dyn Mailer> = Arc::new(Recorder::default());
    let err = match gatehouse::App::build_with(
        config,
        Arc::new(gatehouse::clock::OffsetClock::default()),
        Some(recorder),
    )
    .await
    {
        Ok(_) => panic!("a broken template must stop the start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("user-registration.liquid"), "{err}");
    assert!(!db.exists(), "checked before the database is opened");
}

#[tokio::test]
async fn a_project_name_cannot_add_headers_or_recipients() {
    let sink = SmtpSink::start().await;
    let smtp = smtp_config(&[("EMAIL_SMTP_PORT", &sink.port())]);
    let outbox = smtp_outbox(&smtp, quick());
    outbox.post(
        letter("ann@example.com"),
        project("Acme\r\nBcc: evil@example.net\r\nX-Injected: 1"),
    );
    let got = sink.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_to, vec!["<ann@example.com>".to_string()]);
    assert_eq!(got[0].header("Bcc"), None);
    assert_eq!(got[0].header("X-Injected"), None);
    let from = got[0].header("From").unwrap();
    // One encoded word: the name with its line breaks turned into spaces.
    let b64 = base64::engine::general_purpose::STANDARD
        .encode("Acme Bcc: evil@example.net X-Injected: 1");
    assert_eq!(from, format!("=?utf-8?b?{b64}?= <no-reply@gatehouse.test>"));
}

#[tokio::test(flavor = "current_thread")]
async fn the_default_log_transport_warns_at_start_and_logs_the_mail() {
    let (logs, _guard) = Logs::capture();
    let app = spawn_with_real_mail(&[]).await;
    let text = logs.text();
    assert!(text.contains("EMAIL_TRANSPORT=log"), "{text}");
    app.auth.send_mail(letter("ann@example.com")).await.unwrap();
    drained(&app.auth.mail).await;
    let text = logs.text();
    assert!(
        text.contains("To: ann@example.com") && text.contains("Subject: Password Reset Request"),
        "{text}"
    );
    assert!(
        text.contains(LINK),
        "the log transport is for local use: {text}"
    );
}

#[tokio::test]
async fn starttls_is_used_when_offered_unless_ignore_tls() {
    // Offered and refused: no fallback to plain text, so nothing is delivered.
    let sink = SmtpSink::start().await;
    sink.offer_starttls();
    let smtp = smtp_config(&[
        ("EMAIL_SMTP_PORT", &sink.port()),
        ("EMAIL_SMTP_USER", "mailer"),
        ("EMAIL_SMTP_PASSWORD", "smtp-pass"),
    ]);
    let outbox = smtp_outbox(
        &smtp,
        OutboxSettings {
            retry_delays: vec![],
            ..OutboxSettings::default()
        },
    );
    outbox.post(letter("ann@example.com"), project("P"));
    drained(&outbox).await;
    assert_eq!(sink.starttls_asked(), 1);
    assert!(sink.messages().is_empty(), "no plain-text fallback");
    // With EMAIL_SMTP_IGNORE_TLS the offer is not taken up.
    let smtp = smtp_config(&[
        ("EMAIL_SMTP_PORT", &sink.port()),
        ("EMAIL_SMTP_IGNORE_TLS", "true"),
    ]);
    let outbox = smtp_outbox(&smtp, quick());
    outbox.post(letter("ann@example.com"), project("P"));
    assert_eq!(sink.wait_for(1).await.len(), 1);
    assert_eq!(sink.starttls_asked(), 1);
}

#[tokio::test]
async fn config_check_reports_the_transport_and_checks_the_templates() {
    let dir = tempfile::tempdir().unwrap();
    let check = |vars: Vec<(String, String)>| async move {
        let config = Config::from_vars(&Vars::from_pairs(vars).unwrap()).unwrap();
        let cli =
            <gatehouse::cli::Cli as clap::Parser>::try_parse_from(["gatehouse", "config", "check"])
                .unwrap();
        let mut out = Vec::new();
        gatehouse::cli::run(cli, config, &mut out)
            .await
            .map(|()| String::from_utf8(out).unwrap())
            .map_err(|e| format!("{e:#}"))
    };
    let mut vars = base_vars(dir.path());
    vars.extend([
        ("EMAIL_TRANSPORT".to_string(), "smtp".to_string()),
        ("EMAIL_SMTP_HOST".to_string(), "mx.example".to_string()),
        (
            "EMAIL_SMTP_PASSWORD".to_string(),
            "smtp-pass-hunter2".to_string(),
        ),
        (
            "EMAIL_TEMPLATES_PATH".to_string(),
            dir.path().to_string_lossy().into_owned(),
        ),
    ]);
    let out = check(vars.clone()).await.unwrap();
    assert!(out.contains("mail: smtp mx.example:587"), "{out}");
    assert!(!out.contains("smtp-pass-hunter2"), "{out}");
    std::fs::write(dir.path().join("password-reset.liquid"), "{{ url ").unwrap();
    let err = check(vars).await.unwrap_err();
    assert!(err.contains("password-reset.liquid"), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn secure_speaks_tls_from_the_first_byte() {
    let (logs, _guard) = Logs::capture();
    let sink = SmtpSink::start().await;
    sink.peek();
    let smtp = smtp_config(&[
        ("EMAIL_SMTP_PORT", &sink.port()),
        ("EMAIL_SMTP_SECURE", "true"),
    ]);
    assert_eq!(smtp.port.to_string(), sink.port());
    let outbox = smtp_outbox(&smtp, quick());
    outbox.post(letter("ann@example.com"), project("P"));
    drained(&outbox).await;
    // A TLS handshake record (type 22, version 3.x) before any greeting.
    let first = sink.first_bytes();
    assert!(!first.is_empty(), "the client connected");
    assert_eq!(&first[0][..2], &[0x16, 0x03], "{first:?}");
    assert!(sink.messages().is_empty());
    assert!(
        logs.text().contains("sending a mail failed"),
        "{}",
        logs.text()
    );
}
