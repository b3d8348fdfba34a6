//! A small SMTP server for the mail tests: listens on 127.0.0.1:0, speaks EHLO/HELO, AUTH
//! PLAIN and LOGIN, MAIL, RCPT, DATA, RSET, NOOP and QUIT, and records each message. It can
//! answer the next messages with 451 (retries) or 550 (no retry), never greet (timeouts), offer
//! STARTTLS and refuse it, or keep a client's first bytes (a TLS client speaks first).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One message as the sink received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub helo: String,
    /// `(user, password)` when the client logged in.
    pub auth: Option<(String, String)>,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The raw DATA, dot-unstuffed.
    pub data: String,
}

impl Received {
    /// A header's value (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line.trim_start());
                    continue;
                }
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                if n.eq_ignore_ascii_case(name) {
                    value = Some(v.trim().to_string());
                }
            }
        }
        value
    }

    /// The body, with quoted-printable or base64 transfer encoding undone.
    pub fn body(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        match self
            .header("Content-Transfer-Encoding")
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("quoted-printable") => decode_qp(body),
            Some("base64") => {
                let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                String::from_utf8_lossy(
                    &base64::engine::general_purpose::STANDARD
                        .decode(compact)
                        .unwrap_or_default(),
                )
                .into_owned()
            }
            _ => body.to_string(),
        }
    }
}

fn decode_qp(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes.get(i + 1..i + 3) == Some(b"\r\n") {
                i += 3;
                continue;
            }
            if let Some(hex) = bytes.get(i + 1..i + 3) {
                if let Ok(b) = u8::from_str_radix(std::str::from_utf8(hex).unwrap_or("zz"), 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Default)]
struct State {
    messages: Vec<Received>,
    /// Messages still to answer with 451.
    fail_next: usize,
    /// Messages still to answer with 550 (a permanent failure).
    reject_next: usize,
    /// How many were refused with 451.
    refused: usize,
    stall: bool,
    connections: usize,
    /// Advertise STARTTLS (the sink cannot do TLS: it answers the command with 454).
    offer_starttls: bool,
    starttls_asked: usize,
    /// Read the client's first bytes without greeting, keep them, and hang up.
    peek: bool,
    first_bytes: Vec<Vec<u8>>,
}

#[derive(Clone)]
pub struct SmtpSink {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let addr = listener.local_addr().expect("sink addr");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = session(stream, state).await;
                });
            }
        });
        Self { addr, state }
    }

    pub fn port(&self) -> String {
        self.addr.port().to_string()
    }

    /// Answer the next `n` messages with 451 (a transient failure).
    pub fn fail_next(&self, n: usize) {
        self.state.lock().unwrap().fail_next = n;
    }

    /// Offer STARTTLS in EHLO; the command itself is refused with 454.
    pub fn offer_starttls(&self) {
        self.state.lock().unwrap().offer_starttls = true;
    }

    /// How many times a client sent STARTTLS.
    pub fn starttls_asked(&self) -> usize {
        self.state.lock().unwrap().starttls_asked
    }

    /// Keep each client's first bytes (without greeting) and hang up: a TLS client speaks first.
    pub fn peek(&self) {
        self.state.lock().unwrap().peek = true;
    }

    pub fn first_bytes(&self) -> Vec<Vec<u8>> {
        self.state.lock().unwrap().first_bytes.clone()
    }

    /// Answer the next `n` messages with 550.
    pub fn reject_next(&self, n: usize) {
        self.state.lock().unwrap().reject_next = n;
    }

    /// Accept connections but never greet.
    pub fn stall(&self) {
        self.state.lock().unwrap().stall = true;
    }

    pub fn messages(&self) -> Vec<Received> {
        self.state.lock().unwrap().messages.clone()
    }

    pub fn refused(&self) -> usize {
        self.state.lock().unwrap().refused
    }

    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    /// Waits up to 20 s for at least `n` messages.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..2000 {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.messages()
    }
}

async fn session(stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let (stall, peek) = {
        let mut s = state.lock().unwrap();
        s.connections += 1;
        (s.stall, s.peek)
    };
    if peek {
        use tokio::io::AsyncReadExt;
        let mut stream = stream;
        let mut buf = [0u8; 5];
        let n = stream.read(&mut buf).await?;
        state.lock().unwrap().first_bytes.push(buf[..n].to_vec());
        return Ok(());
    }
    if stall {
        // Hold the connection open, silent, until the client gives up.
        let mut stream = stream;
        let mut buf = [0u8; 512];
        loop {
            use tokio::io::AsyncReadExt;
            if stream.read(&mut buf).await? == 0 {
                return Ok(());
            }
        }
    }
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink ESMTP ready\r\n").await?;
    let mut helo = String::new();
    let mut auth = None;
    let mut mail_from = String::new();
    let mut rcpt_to = Vec::new();
    let b64 = base64::engine::general_purpose::STANDARD;
    let decode =
        |s: &str| String::from_utf8_lossy(&b64.decode(s.trim()).unwrap_or_default()).into_owned();
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_string();
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            helo = line[4..].trim().to_string();
            let tls = state.lock().unwrap().offer_starttls;
            write.write_all(b"250-sink\r\n").await?;
            if tls {
                write.write_all(b"250-STARTTLS\r\n").await?;
            }
            write
                .write_all(b"250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                .await?;
        } else if upper == "STARTTLS" {
            state.lock().unwrap().starttls_asked += 1;
            write.write_all(b"454 4.7.0 TLS not available\r\n").await?;
        } else if upper.starts_with("AUTH PLAIN") {
            let mut arg = line[10..].trim().to_string();
            if arg.is_empty() {
                write.write_all(b"334 \r\n").await?;
                arg.clear();
                lines.read_line(&mut arg).await?;
            }
            let plain = decode(&arg);
            let parts: Vec<&str> = plain.split('\0').collect();
            auth = Some((
                parts.get(1).unwrap_or(&"").to_string(),
                parts.get(2).unwrap_or(&"").to_string(),
            ));
            write.write_all(b"235 2.7.0 ok\r\n").await?;
        } else if upper.starts_with("AUTH LOGIN") {
            let mut user = line[10..].trim().to_string();
            if user.is_empty() {
                write.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
                lines.read_line(&mut user).await?;
            }
            write.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
            let mut pass = String::new();
            lines.read_line(&mut pass).await?;
            auth = Some((decode(&user), decode(&pass)));
            write.write_all(b"235 2.7.0 ok\r\n").await?;
        } else if upper.starts_with("MAIL FROM:") {
            mail_from = line[10..].trim().to_string();
            rcpt_to.clear();
            write.write_all(b"250 ok\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            rcpt_to.push(line[8..].trim().to_string());
            write.write_all(b"250 ok\r\n").await?;
        } else if upper == "DATA" {
            write.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if lines.read_line(&mut l).await? == 0 {
                    return Ok(());
                }
                if l == ".\r\n" || l == ".\n" {
                    break;
                }
                data.push_str(
                    l.strip_prefix('.')
                        .filter(|_| l.starts_with(".."))
                        .unwrap_or(&l),
                );
            }
            let reply: &[u8] = {
                let mut s = state.lock().unwrap();
                if s.reject_next > 0 {
                    s.reject_next -= 1;
                    s.refused += 1;
                    b"550 5.1.1 no such mailbox\r\n"
                } else if s.fail_next > 0 {
                    s.fail_next -= 1;
                    s.refused += 1;
                    b"451 4.3.0 try again later\r\n"
                } else {
                    s.messages.push(Received {
                        helo: helo.clone(),
                        auth: auth.clone(),
                        mail_from: mail_from.clone(),
                        rcpt_to: rcpt_to.clone(),
                        data,
                    });
                    b"250 2.0.0 queued\r\n"
                }
            };
            write.write_all(reply).await?;
        } else if upper == "RSET" || upper == "NOOP" {
            write.write_all(b"250 ok\r\n").await?;
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            write.write_all(b"502 not implemented\r\n").await?;
        }
    }
}
