//! A small closed-loop HTTP/1.1 load generator for gatehouse benchmarks (`bench/run.sh`).
//!
//! Each worker owns one keep-alive connection and sends its next request as soon as the
//! previous answer is read (closed loop). Scenarios:
//!
//! * `me`: `GET /users/me` with `Authorization: Bearer <access token>` (one login first, or
//!   `--token`).
//! * `refresh`: each worker logs in once (setup, not timed), then loops `POST /auth/refresh`
//!   with the refresh token returned by its previous refresh: every request is a real
//!   rotation, never a grace-window replay.
//! * `login`: `POST /auth/login` in json mode.
//! * `verify`: `GET /auth/verify` (forward-auth) with the bearer token of `me`, or with
//!   `--cookie 'directus_session_token=…'` instead.
//!
//! Any answer that is not 2xx, any I/O error and any timeout counts as an error and is
//! reported by status. Runs are bounded: `--duration` (≤ 600 s) or `--requests` (≤ 10 M),
//! and only loopback addresses are accepted as targets.
//!
//! The default client writes pre-built request bytes and parses answers in place, with
//! per-worker buffers reused across requests (no heap allocation per request once the buffers
//! have grown; `refresh` rewrites its request in place with the new token); `--client hyper` uses
//! hyper's HTTP/1 connection instead, for comparison. `--threads 0` (default) runs everything
//! on a current-thread tokio runtime so the server keeps most of the CPU.
//!
//! Output: a human summary, then one `RESULT key=value …` line for scripts.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_CONNECTIONS: usize = 4096;
const MAX_DURATION: Duration = Duration::from_secs(600);
const MAX_REQUESTS: u64 = 10_000_000;

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scenario {
    Me,
    Refresh,
    Login,
    Verify,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ClientKind {
    Raw,
    Hyper,
}

#[derive(Clone, Debug)]
struct Opts {
    addr: SocketAddr,
    scenario: Scenario,
    connections: usize,
    duration: Option<Duration>,
    requests: Option<u64>,
    email: String,
    password: String,
    token: Option<String>,
    /// `verify` only: a `Cookie` header sent instead of the bearer token.
    cookie: Option<String>,
    threads: usize,
    client: ClientKind,
    timeout: Duration,
    setup_concurrency: usize,
    server_pid: Option<u32>,
    warmup: Duration,
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen --scenario me|refresh|login|verify [--url http://127.0.0.1:8055] [-c CONNECTIONS]\n\
         \x20              (--duration 10s | --requests N) [--email E] [--password P] [--token ACCESS_TOKEN] [--cookie C]\n\
         \x20              [--threads 0] [--client raw|hyper] [--timeout 30s] [--setup-concurrency 4]\n\
         \x20              [--warmup 0s] [--server-pid PID]\n\
         env: LOADGEN_EMAIL / LOADGEN_PASSWORD are used when --email / --password are absent"
    );
    std::process::exit(2)
}

fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v * mult))
}

/// Accepts `http://HOST:PORT[/...]` or `HOST:PORT`; the host must be a loopback address.
fn parse_target(url: &str) -> Result<SocketAddr, String> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    if rest.starts_with("https://") {
        return Err("https is not supported".into());
    }
    let hostport = rest.split('/').next().unwrap_or("");
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("bad port in {url:?}"))?,
        ),
        None => (hostport, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = match host {
        "localhost" => IpAddr::from([127, 0, 0, 1]),
        h => h
            .parse()
            .map_err(|_| format!("{h:?} is not an IP address (use 127.0.0.1)"))?,
    };
    if !ip.is_loopback() {
        return Err(format!(
            "refusing to load {ip}: only loopback targets (127.0.0.0/8, ::1) are allowed"
        ));
    }
    Ok(SocketAddr::new(ip, port))
}

fn parse_opts() -> Opts {
    let mut args = std::env::args().skip(1);
    let mut url = "http://127.0.0.1:8055".to_string();
    let mut o = Opts {
        addr: SocketAddr::from(([127, 0, 0, 1], 8055)),
        scenario: Scenario::Me,
        connections: 16,
        duration: None,
        requests: None,
        email: std::env::var("LOADGEN_EMAIL").unwrap_or_else(|_| "admin@example.com".into()),
        password: std::env::var("LOADGEN_PASSWORD").unwrap_or_default(),
        token: None,
        cookie: None,
        threads: 0,
        client: ClientKind::Raw,
        timeout: Duration::from_secs(30),
        setup_concurrency: 4,
        server_pid: None,
        warmup: Duration::ZERO,
    };
    let mut scenario_set = false;
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--url" => url = val(),
            "--scenario" | "-s" => {
                scenario_set = true;
                o.scenario = match val().as_str() {
                    "me" => Scenario::Me,
                    "refresh" => Scenario::Refresh,
                    "login" => Scenario::Login,
                    "verify" => Scenario::Verify,
                    _ => usage(),
                }
            }
            "--connections" | "-c" => o.connections = val().parse().unwrap_or_else(|_| usage()),
            "--duration" | "-d" => {
                o.duration = Some(parse_duration(&val()).unwrap_or_else(|| usage()))
            }
            "--requests" | "-n" => o.requests = Some(val().parse().unwrap_or_else(|_| usage())),
            "--email" => o.email = val(),
            "--password" => o.password = val(),
            "--token" => o.token = Some(val()),
            "--cookie" => o.cookie = Some(val()),
            "--threads" => o.threads = val().parse().unwrap_or_else(|_| usage()),
            "--client" => {
                o.client = match val().as_str() {
                    "raw" => ClientKind::Raw,
                    "hyper" => ClientKind::Hyper,
                    _ => usage(),
                }
            }
            "--timeout" => o.timeout = parse_duration(&val()).unwrap_or_else(|| usage()),
            "--setup-concurrency" => {
                o.setup_concurrency = val().parse().unwrap_or_else(|_| usage())
            }
            "--server-pid" => o.server_pid = Some(val().parse().unwrap_or_else(|_| usage())),
            "--warmup" => o.warmup = parse_duration(&val()).unwrap_or_else(|| usage()),
            "-h" | "--help" => usage(),
            other => {
                eprintln!("loadgen: unknown argument {other:?}");
                usage()
            }
        }
    }
    if !scenario_set {
        usage();
    }
    o.addr = parse_target(&url).unwrap_or_else(|e| {
        eprintln!("loadgen: {e}");
        std::process::exit(2)
    });
    if o.connections == 0 || o.connections > MAX_CONNECTIONS {
        eprintln!("loadgen: --connections must be 1..={MAX_CONNECTIONS}");
        std::process::exit(2);
    }
    match (o.duration, o.requests) {
        (None, None) => o.duration = Some(Duration::from_secs(10)),
        (Some(_), Some(_)) => {
            eprintln!("loadgen: give --duration or --requests, not both");
            std::process::exit(2);
        }
        _ => {}
    }
    if o.duration.is_some_and(|d| d > MAX_DURATION || d.is_zero())
        || o.requests.is_some_and(|n| n == 0 || n > MAX_REQUESTS)
    {
        eprintln!(
            "loadgen: a run is bounded: 0 < duration ≤ {}s, 0 < requests ≤ {MAX_REQUESTS}",
            MAX_DURATION.as_secs()
        );
        std::process::exit(2);
    }
    if o.warmup > Duration::from_secs(60) {
        eprintln!("loadgen: --warmup is at most 60s");
        std::process::exit(2);
    }
    let bearer_only = matches!(o.scenario, Scenario::Me | Scenario::Verify);
    if o.cookie.is_some() && (o.scenario != Scenario::Verify || o.client == ClientKind::Hyper) {
        eprintln!("loadgen: --cookie is for --scenario verify with the raw client");
        std::process::exit(2);
    }
    if !(bearer_only && (o.token.is_some() || o.cookie.is_some())) && o.password.is_empty() {
        eprintln!("loadgen: --password (or LOADGEN_PASSWORD) is needed to log in");
        std::process::exit(2);
    }
    o.setup_concurrency = o.setup_concurrency.max(1);
    o
}

// ---------------------------------------------------------------------------------------------
// Latency histogram: log-linear, 64 sub-buckets per power of two (≤ 1.6 % error), in µs.

const SUB: u64 = 64;
const BUCKETS: usize = (2 * SUB as usize) + 40 * SUB as usize;

struct Hist {
    counts: Vec<u64>,
    max_us: u64,
}

impl Hist {
    fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            max_us: 0,
        }
    }

    fn index(us: u64) -> usize {
        if us < 2 * SUB {
            return us as usize;
        }
        let e = 63 - u64::from(us.leading_zeros()); // ≥ 7
        let shift = e - 6;
        let top = us >> shift; // 64..=127
        let i = (2 * SUB + (e - 7) * SUB + (top - SUB)) as usize;
        i.min(BUCKETS - 1)
    }

    /// Midpoint of a bucket, in µs.
    fn value(i: usize) -> f64 {
        let i = i as u64;
        if i < 2 * SUB {
            return i as f64;
        }
        let e = (i - 2 * SUB) / SUB + 7;
        let top = (i - 2 * SUB) % SUB + SUB;
        let shift = e - 6;
        let lo = top << shift;
        lo as f64 + ((1u64 << shift) as f64 - 1.0) / 2.0
    }

    fn record(&mut self, d: Duration) {
        let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
        self.counts[Self::index(us)] += 1;
        self.max_us = self.max_us.max(us);
    }

    fn merge(&mut self, other: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.max_us = self.max_us.max(other.max_us);
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The q-quantile in ms.
    fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.total();
        if total == 0 {
            return f64::NAN;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return (Self::value(i) / 1000.0).min(self.max_us as f64 / 1000.0);
            }
        }
        self.max_us as f64 / 1000.0
    }
}

// ---------------------------------------------------------------------------------------------
// Per-worker results

struct Stats {
    hist: Hist,
    /// Answers by status code (index = code, 0..600).
    status: Vec<u64>,
    io_errors: u64,
    timeouts: u64,
    reconnects: u64,
    /// Refresh chains restarted with a new login after a failed refresh.
    relogins: u64,
    /// Every answer, warm-up and after-deadline included (for CPU time per request).
    all_answers: u64,
}

impl Stats {
    fn new() -> Self {
        Self {
            hist: Hist::new(),
            status: vec![0; 600],
            io_errors: 0,
            timeouts: 0,
            reconnects: 0,
            relogins: 0,
            all_answers: 0,
        }
    }

    fn merge(&mut self, o: &Stats) {
        self.hist.merge(&o.hist);
        for (a, b) in self.status.iter_mut().zip(&o.status) {
            *a += b;
        }
        self.io_errors += o.io_errors;
        self.timeouts += o.timeouts;
        self.reconnects += o.reconnects;
        self.relogins += o.relogins;
        self.all_answers += o.all_answers;
    }

    fn ok(&self) -> u64 {
        self.status[200..300].iter().sum()
    }

    fn non_2xx(&self) -> u64 {
        self.status.iter().sum::<u64>() - self.ok()
    }
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 keep-alive connection with reused buffers.

struct Answer {
    status: u16,
    close: bool,
}

struct RawConn {
    stream: TcpStream,
    /// Bytes read from the socket; `[..filled]` is valid.
    buf: Vec<u8>,
    filled: usize,
    /// The last answer's body (reused).
    body: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether `hay` contains `needle`, ignoring ASCII case (no allocation).
fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn parse_usize(b: &[u8], radix: u32) -> Option<usize> {
    let s = std::str::from_utf8(b).ok()?.trim();
    usize::from_str_radix(s, radix).ok()
}

impl RawConn {
    async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: vec![0; 16 * 1024],
            filled: 0,
            body: Vec::with_capacity(4096),
        })
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        if self.filled == self.buf.len() {
            if self.buf.len() >= 8 << 20 {
                return Err(std::io::Error::other("answer larger than 8 MiB"));
            }
            let n = self.buf.len() * 2;
            self.buf.resize(n, 0);
        }
        let n = self.stream.read(&mut self.buf[self.filled..]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.filled += n;
        Ok(())
    }

    /// Drops the first `n` buffered bytes (normally all of them: one answer per request).
    fn consume(&mut self, n: usize) {
        self.buf.copy_within(n..self.filled, 0);
        self.filled -= n;
    }

    /// Sends one request and reads one full answer; its body is left in `self.body`.
    async fn roundtrip(&mut self, req: &[u8]) -> std::io::Result<Answer> {
        self.stream.write_all(req).await?;
        let head_end = loop {
            if let Some(p) = find(&self.buf[..self.filled], b"\r\n\r\n") {
                break p + 4;
            }
            self.fill().await?;
        };
        let head = &self.buf[..head_end];
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP answer");
        if head.len() < 12 || !head.starts_with(b"HTTP/1.") {
            return Err(bad());
        }
        let status = parse_usize(&head[9..12], 10).ok_or_else(bad)? as u16;
        let mut content_length: Option<usize> = None;
        let mut chunked = false;
        let mut close = head.starts_with(b"HTTP/1.0");
        for line in head.split(|&b| b == b'\n').skip(1) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (name, value) = (&line[..colon], &line[colon + 1..]);
            if name.eq_ignore_ascii_case(b"content-length") {
                content_length = Some(parse_usize(value, 10).ok_or_else(bad)?);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                chunked = contains_ci(value, b"chunked");
            } else if name.eq_ignore_ascii_case(b"connection") {
                close = contains_ci(value, b"close");
            }
        }
        self.body.clear();
        let no_body = status == 204 || status == 304 || (100..200).contains(&status);
        if no_body {
            self.consume(head_end);
        } else if chunked {
            self.consume(head_end);
            loop {
                let line_end = loop {
                    if let Some(p) = find(&self.buf[..self.filled], b"\r\n") {
                        break p;
                    }
                    self.fill().await?;
                };
                let size_field = self.buf[..line_end]
                    .split(|&b| b == b';')
                    .next()
                    .unwrap_or(b"");
                let size = parse_usize(size_field, 16).ok_or_else(bad)?;
                self.consume(line_end + 2);
                if size == 0 {
                    // Trailers (none expected) end with an empty line.
                    loop {
                        if let Some(p) = find(&self.buf[..self.filled], b"\r\n") {
                            self.consume(p + 2);
                            if p == 0 {
                                break;
                            }
                            continue;
                        }
                        self.fill().await?;
                    }
                    break;
                }
                while self.filled < size + 2 {
                    self.fill().await?;
                }
                self.body.extend_from_slice(&self.buf[..size]);
                self.consume(size + 2);
            }
        } else if let Some(len) = content_length {
            while self.filled < head_end + len {
                self.fill().await?;
            }
            self.body
                .extend_from_slice(&self.buf[head_end..head_end + len]);
            self.consume(head_end + len);
        } else {
            // Body until close.
            self.consume(head_end);
            loop {
                self.body.extend_from_slice(&self.buf[..self.filled]);
                self.filled = 0;
                match self.fill().await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(e),
                }
            }
            close = true;
        }
        Ok(Answer { status, close })
    }
}

// ---------------------------------------------------------------------------------------------
// hyper's HTTP/1 connection, for comparison (allocates per request).

mod hyper_client {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper::client::conn::http1::SendRequest;
    use hyper_util::rt::TokioIo;

    pub struct HyperConn {
        sender: SendRequest<Full<Bytes>>,
        pub body: Vec<u8>,
        host: String,
    }

    impl HyperConn {
        pub async fn connect(addr: SocketAddr) -> std::io::Result<Self> {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(std::io::Error::other)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Self {
                sender,
                body: Vec::new(),
                host: addr.to_string(),
            })
        }

        pub async fn roundtrip(
            &mut self,
            method: &str,
            path: &str,
            auth: Option<&str>,
            body: Option<&[u8]>,
        ) -> std::io::Result<Answer> {
            let mut b = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header("host", self.host.as_str());
            if let Some(a) = auth {
                b = b.header("authorization", a);
            }
            if body.is_some() {
                b = b.header("content-type", "application/json");
            }
            let req = b
                .body(Full::new(Bytes::copy_from_slice(body.unwrap_or(b""))))
                .map_err(std::io::Error::other)?;
            self.sender.ready().await.map_err(std::io::Error::other)?;
            let res = self
                .sender
                .send_request(req)
                .await
                .map_err(std::io::Error::other)?;
            let status = res.status().as_u16();
            let close = res
                .headers()
                .get("connection")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            let bytes = res
                .into_body()
                .collect()
                .await
                .map_err(std::io::Error::other)?
                .to_bytes();
            self.body.clear();
            self.body.extend_from_slice(&bytes);
            Ok(Answer { status, close })
        }
    }
}

enum Conn {
    Raw(RawConn),
    Hyper(hyper_client::HyperConn),
}

impl Conn {
    async fn connect(kind: ClientKind, addr: SocketAddr) -> std::io::Result<Self> {
        Ok(match kind {
            ClientKind::Raw => Conn::Raw(RawConn::connect(addr).await?),
            ClientKind::Hyper => Conn::Hyper(hyper_client::HyperConn::connect(addr).await?),
        })
    }

    fn body(&self) -> &[u8] {
        match self {
            Conn::Raw(c) => &c.body,
            Conn::Hyper(c) => &c.body,
        }
    }

    /// `raw` is the full request; `method/path/auth/body` the same request for hyper.
    async fn roundtrip(
        &mut self,
        raw: &[u8],
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<&[u8]>,
    ) -> std::io::Result<Answer> {
        match self {
            Conn::Raw(c) => c.roundtrip(raw).await,
            Conn::Hyper(c) => c.roundtrip(method, path, auth, body).await,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

/// The string value of `"key":"…"` in a JSON body (tokens need no unescaping).
fn json_str<'a>(body: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let mut pat = [0u8; 64];
    let k = key.as_bytes();
    let n = k.len() + 4;
    if n > pat.len() {
        return None;
    }
    pat[0] = b'"';
    pat[1..1 + k.len()].copy_from_slice(k);
    pat[1 + k.len()..n].copy_from_slice(b"\":\"");
    let start = find(body, &pat[..n])? + n;
    let len = body[start..].iter().position(|&b| b == b'"')?;
    Some(&body[start..start + len])
}

fn json_escape(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn post_request(out: &mut Vec<u8>, host: &str, path: &str, body: &[u8]) {
    out.clear();
    let _ = write!(
        out,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(body);
}

fn login_body(o: &Opts) -> Vec<u8> {
    format!(
        r#"{{"email":{},"password":{},"mode":"json"}}"#,
        json_escape(&o.email),
        json_escape(&o.password)
    )
    .into_bytes()
}

/// Logs in on `conn`; returns (access token, refresh token).
async fn login_on(conn: &mut Conn, o: &Opts) -> Result<(String, String), String> {
    let body = login_body(o);
    let mut req = Vec::new();
    post_request(&mut req, &o.addr.to_string(), "/auth/login", &body);
    let a = tokio::time::timeout(
        o.timeout.max(Duration::from_secs(60)),
        conn.roundtrip(&req, "POST", "/auth/login", None, Some(&body)),
    )
    .await
    .map_err(|_| "login timed out".to_string())?
    .map_err(|e| format!("login failed: {e}"))?;
    let text = String::from_utf8_lossy(conn.body()).into_owned();
    if !(200..300).contains(&a.status) {
        return Err(format!(
            "login answered {}: {}",
            a.status,
            text.chars().take(300).collect::<String>()
        ));
    }
    let at = json_str(conn.body(), "access_token")
        .ok_or_else(|| format!("no access_token in {text}"))?;
    let rt = json_str(conn.body(), "refresh_token")
        .ok_or_else(|| format!("no refresh_token in {text}"))?;
    Ok((
        String::from_utf8_lossy(at).into_owned(),
        String::from_utf8_lossy(rt).into_owned(),
    ))
}

// ---------------------------------------------------------------------------------------------
// Workers

struct Shared {
    opts: Opts,
    /// The access token for `me`.
    access: String,
    /// Counts requests started, for `--requests`.
    issued: AtomicU64,
    stop: AtomicBool,
    ready: tokio::sync::Barrier,
    start: std::sync::Mutex<Option<Instant>>,
    setup_slots: tokio::sync::Semaphore,
    /// Warm-up ends at this many µs after `start`; answers before it are not recorded.
    warmup_us: u64,
}

async fn worker(sh: Arc<Shared>) -> Result<(Stats, Instant), String> {
    let o = &sh.opts;
    let host = o.addr.to_string();
    let mut stats = Stats::new();
    let mut conn = Conn::connect(o.client, o.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", o.addr))?;

    // Setup (untimed): refresh workers each start their own token family.
    let mut refresh_token = Vec::with_capacity(128);
    if o.scenario == Scenario::Refresh {
        let _slot = sh.setup_slots.acquire().await.map_err(|e| e.to_string())?;
        let (_, rt) = login_on(&mut conn, o).await?;
        refresh_token.extend_from_slice(rt.as_bytes());
    }

    let mut req = Vec::with_capacity(512);
    let mut body = Vec::with_capacity(256);
    let auth_header = format!("Bearer {}", sh.access);
    match o.scenario {
        Scenario::Me => {
            let _ = write!(
                req,
                "GET /users/me HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth_header}\r\n\r\n"
            );
        }
        Scenario::Verify => {
            let credential = match &o.cookie {
                Some(c) => format!("Cookie: {c}"),
                None => format!("Authorization: {auth_header}"),
            };
            let _ = write!(
                req,
                "GET /auth/verify HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-Uri: /app\r\n{credential}\r\n\r\n"
            );
        }
        Scenario::Login => {
            body = login_body(o);
            post_request(&mut req, &host, "/auth/login", &body);
        }
        Scenario::Refresh => {}
    }

    sh.ready.wait().await;
    let start = loop {
        if let Some(s) = *sh.start.lock().map_err(|e| e.to_string())? {
            break s;
        }
        tokio::task::yield_now().await;
    };
    let deadline = o.duration.map(|d| start + o.warmup + d);
    let warm_until = start + Duration::from_micros(sh.warmup_us);

    loop {
        if sh.stop.load(Ordering::Relaxed) {
            break;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if let Some(limit) = o.requests {
            if sh.issued.fetch_add(1, Ordering::Relaxed) >= limit {
                break;
            }
        }
        let (method, path, auth) = match o.scenario {
            Scenario::Me => ("GET", "/users/me", Some(auth_header.as_str())),
            Scenario::Verify => ("GET", "/auth/verify", Some(auth_header.as_str())),
            Scenario::Login => ("POST", "/auth/login", None),
            Scenario::Refresh => {
                body.clear();
                body.extend_from_slice(br#"{"refresh_token":""#);
                body.extend_from_slice(&refresh_token);
                body.extend_from_slice(br#"","mode":"json"}"#);
                post_request(&mut req, &host, "/auth/refresh", &body);
                ("POST", "/auth/refresh", None)
            }
        };
        let body_opt =
            (!matches!(o.scenario, Scenario::Me | Scenario::Verify)).then_some(body.as_slice());
        let t0 = Instant::now();
        let res = tokio::time::timeout(
            o.timeout,
            conn.roundtrip(&req, method, path, auth, body_opt),
        )
        .await;
        let t1 = Instant::now();
        // Answers that end after the deadline are not counted (the request still completes, so
        // the server is quiet when the run returns); the window is exactly `--duration`.
        let recording = t1 >= warm_until && deadline.is_none_or(|d| t1 <= d);
        let mut relogin = false;
        let reconnect = match res {
            Ok(Ok(a)) => {
                stats.all_answers += 1;
                if recording {
                    stats.hist.record(t1 - t0);
                    stats.status[usize::from(a.status).min(599)] += 1;
                }
                let ok = (200..300).contains(&a.status);
                if o.scenario == Scenario::Refresh {
                    match json_str(conn.body(), "refresh_token").filter(|_| ok) {
                        Some(t) => {
                            refresh_token.clear();
                            refresh_token.extend_from_slice(t);
                        }
                        None => relogin = true,
                    }
                }
                a.close
            }
            Ok(Err(_)) => {
                if recording {
                    stats.io_errors += 1;
                }
                true
            }
            Err(_) => {
                if recording {
                    stats.timeouts += 1;
                }
                true
            }
        };
        if reconnect {
            stats.reconnects += 1;
            let mut tries = 0;
            conn = loop {
                match Conn::connect(o.client, o.addr).await {
                    Ok(c) => break c,
                    Err(e) => {
                        tries += 1;
                        if tries >= 50 || sh.stop.load(Ordering::Relaxed) {
                            return Err(format!("reconnect to {} failed: {e}", o.addr));
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            };
        }
        if relogin {
            // The chain broke (error answer): start a new family so later requests stay real rotations.
            stats.relogins += 1;
            let (_, rt) = login_on(&mut conn, o).await?;
            refresh_token.clear();
            refresh_token.extend_from_slice(rt.as_bytes());
        }
    }
    Ok((stats, Instant::now()))
}

/// utime + stime of a process in seconds (USER_HZ = 100 on Linux).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / 100.0)
}

/// Busy CPU seconds of the whole machine (all cores; USER_HZ = 100), from /proc/stat.
fn machine_busy_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let line = s.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<f64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: f64 = f
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    Some(busy / 100.0)
}

async fn run(o: Opts) -> Result<(), String> {
    // The access token for `me`: given, or from one login.
    let access = match (o.scenario, &o.token) {
        (Scenario::Me | Scenario::Verify, Some(t)) => t.clone(),
        (Scenario::Verify, None) if o.cookie.is_some() => String::new(),
        (Scenario::Me | Scenario::Verify, None) => {
            let mut c = Conn::connect(o.client, o.addr)
                .await
                .map_err(|e| format!("connect {}: {e}", o.addr))?;
            login_on(&mut c, &o).await?.0
        }
        _ => String::new(),
    };
    let sh = Arc::new(Shared {
        access,
        issued: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        ready: tokio::sync::Barrier::new(o.connections + 1),
        start: std::sync::Mutex::new(None),
        setup_slots: tokio::sync::Semaphore::new(o.setup_concurrency),
        warmup_us: o.warmup.as_micros() as u64,
        opts: o.clone(),
    });
    let mut handles = Vec::with_capacity(o.connections);
    for _ in 0..o.connections {
        let sh = sh.clone();
        handles.push(tokio::spawn(async move {
            let r = worker(sh.clone()).await;
            if r.is_err() {
                sh.stop.store(true, Ordering::Relaxed);
            }
            r
        }));
    }
    // All workers connected (and, for refresh, logged in): start the clock together.
    let setup_deadline = Duration::from_secs(300);
    tokio::time::timeout(setup_deadline, sh.ready.wait())
        .await
        .map_err(|_| "setup did not finish within 300 s".to_string())?;
    let server_cpu0 = o.server_pid.and_then(|p| cpu_seconds(&p.to_string()));
    let self_cpu0 = cpu_seconds("self");
    let machine_cpu0 = machine_busy_seconds();
    let start = Instant::now();
    *sh.start.lock().map_err(|e| e.to_string())? = Some(start);
    let measure_start = start + o.warmup;

    // Hard bound: duration (or a generous limit for --requests) plus the request timeout.
    let bound = o.warmup + o.duration.unwrap_or(MAX_DURATION) + o.timeout + Duration::from_secs(5);
    let mut total = Stats::new();
    let mut end = measure_start;
    let mut failures = Vec::new();
    let joined = tokio::time::timeout(bound, futures::future::join_all(handles)).await;
    let results = match joined {
        Ok(r) => r,
        Err(_) => {
            sh.stop.store(true, Ordering::Relaxed);
            return Err(format!(
                "run exceeded its bound of {:.0} s",
                bound.as_secs_f64()
            ));
        }
    };
    for r in results {
        match r {
            Ok(Ok((s, t))) => {
                total.merge(&s);
                end = end.max(t);
            }
            Ok(Err(e)) => failures.push(e),
            Err(e) => failures.push(e.to_string()),
        }
    }
    let server_cpu = o
        .server_pid
        .and_then(|p| cpu_seconds(&p.to_string()))
        .zip(server_cpu0)
        .map(|(b, a)| b - a);
    let self_cpu = cpu_seconds("self").zip(self_cpu0).map(|(b, a)| b - a);
    let machine_cpu = machine_busy_seconds().zip(machine_cpu0).map(|(b, a)| b - a);
    if !failures.is_empty() {
        failures.sort();
        failures.dedup();
        return Err(format!(
            "{} worker(s) failed: {}",
            failures.len(),
            failures.join("; ")
        ));
    }

    let elapsed = match o.duration {
        Some(d) => d.as_secs_f64(),
        None => end
            .saturating_duration_since(measure_start)
            .as_secs_f64()
            .max(1e-9),
    };
    let wall = end.saturating_duration_since(start).as_secs_f64().max(1e-9);
    let answered = total.hist.total();
    let ok = total.ok();
    let errors = total.non_2xx() + total.io_errors + total.timeouts;
    let rps = answered as f64 / elapsed;
    let ok_rps = ok as f64 / elapsed;
    let (p50, p90, p99, max) = (
        total.hist.quantile_ms(0.50),
        total.hist.quantile_ms(0.90),
        total.hist.quantile_ms(0.99),
        total.hist.max_us as f64 / 1000.0,
    );
    let mut by_status = String::new();
    for (code, n) in total.status.iter().enumerate() {
        if *n > 0 && !(200..300).contains(&code) {
            let sep = if by_status.is_empty() { "" } else { "," };
            let _ = std::fmt::Write::write_fmt(&mut by_status, format_args!("{sep}{code}x{n}"));
        }
    }
    let scenario = format!("{:?}", o.scenario).to_lowercase();
    let client = format!("{:?}", o.client).to_lowercase();
    let runtime = if o.threads == 0 {
        "current_thread".to_string()
    } else {
        format!("multi_thread({})", o.threads)
    };
    println!(
        "loadgen: {scenario} on {} — {} connections, {client} client, {runtime} runtime",
        o.addr, o.connections
    );
    println!(
        "  window     {elapsed:.2} s (after {:.1} s warm-up)",
        o.warmup.as_secs_f64()
    );
    let prec = if rps < 100.0 { 2 } else { 0 };
    println!("  answered   {answered} ({ok} 2xx)   {rps:.prec$} req/s   ({ok_rps:.prec$} 2xx/s)");
    println!("  latency    p50 {p50:.2} ms   p90 {p90:.2} ms   p99 {p99:.2} ms   max {max:.2} ms");
    println!(
        "  errors     {errors}  (non-2xx: {}{}; io: {}; timeouts: {}; reconnects: {}; relogins: {})",
        total.non_2xx(),
        if by_status.is_empty() { String::new() } else { format!(" [{by_status}]") },
        total.io_errors,
        total.timeouts,
        total.reconnects,
        total.relogins
    );
    let pct = |c: Option<f64>| {
        c.map(|c| format!("{:.0}", 100.0 * c / wall))
            .unwrap_or_else(|| "?".into())
    };
    let per_req = |c: Option<f64>| {
        c.filter(|_| total.all_answers > 0)
            .map(|c| format!("{:.0}", 1e6 * c / total.all_answers as f64))
            .unwrap_or_else(|| "?".into())
    };
    println!(
        "  cpu        loadgen {}% of a core, server {}% of a core (over {wall:.2} s); per answer: loadgen {} µs, server {} µs",
        pct(self_cpu),
        pct(server_cpu),
        per_req(self_cpu),
        per_req(server_cpu)
    );
    println!(
        "             whole machine {}% of a core ({} cores): the rest is the database server or other processes",
        pct(machine_cpu),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!(
        "RESULT scenario={scenario} connections={} client={client} threads={} window_s={elapsed:.3} answered={answered} ok={ok} \
         errors={errors} non2xx={} io_errors={} timeouts={} relogins={} by_status={} rps={rps:.3} ok_rps={ok_rps:.3} \
         p50_ms={p50:.3} p90_ms={p90:.3} p99_ms={p99:.3} max_ms={max:.3} loadgen_cpu_pct={} server_cpu_pct={} \
         loadgen_cpu_us_per_req={} server_cpu_us_per_req={} machine_cpu_pct={}",
        o.connections,
        o.threads,
        total.non_2xx(),
        total.io_errors,
        total.timeouts,
        total.relogins,
        if by_status.is_empty() { "-" } else { &by_status },
        pct(self_cpu),
        pct(server_cpu),
        per_req(self_cpu),
        per_req(server_cpu),
        pct(machine_cpu),
    );
    Ok(())
}

fn main() {
    let o = parse_opts();
    let rt = if o.threads == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(o.threads)
            .enable_all()
            .build()
    };
    let rt = rt.unwrap_or_else(|e| {
        eprintln!("loadgen: cannot start the tokio runtime: {e}");
        std::process::exit(1)
    });
    if let Err(e) = rt.block_on(run(o)) {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_round_trip_within_two_percent() {
        for us in [0u64, 1, 127, 128, 129, 1000, 4567, 99_999, 10_000_000] {
            let v = Hist::value(Hist::index(us));
            assert!(
                (v - us as f64).abs() <= (us as f64 * 0.02).max(1.0),
                "{us} -> {v}"
            );
        }
    }

    #[test]
    fn only_loopback_targets() {
        assert!(parse_target("http://127.0.0.1:8055").is_ok());
        assert!(parse_target("http://localhost:1/x").is_ok());
        assert!(parse_target("http://[::1]:9").is_ok());
        assert!(parse_target("http://10.0.0.1:80").is_err());
        assert!(parse_target("http://example.com:80").is_err());
    }

    #[test]
    fn finds_tokens_in_json() {
        let b = br#"{"data":{"expires":900000,"refresh_token":"abc-_X","access_token":"e.y.z"}}"#;
        assert_eq!(json_str(b, "refresh_token"), Some(&b"abc-_X"[..]));
        assert_eq!(json_str(b, "access_token"), Some(&b"e.y.z"[..]));
        assert_eq!(json_str(b, "nope"), None);
    }
}
