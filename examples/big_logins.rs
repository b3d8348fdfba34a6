//! "Big login bodies": what a burst of logins with huge passwords costs the server's memory.
//!
//! Opens `-c` connections to a loopback gatehouse, and on each, at the same moment, sends one
//! `POST /auth/login` whose password is `--password-bytes` long (an unknown email, so no account
//! is locked; the server still runs its dummy hash). Reads the server's `/proc/<pid>/status`:
//! `VmHWM` (reset first through `clear_refs` when allowed) and `VmRSS` sampled every 20 ms during
//! the burst, and `VmRSS` `--settle` after the last answer.
//!
//! Output: a human summary and one `RESULT key=value …` line (KiB figures).
//!
//! usage: big_logins --url http://127.0.0.1:8055 --server-pid PID [-c 100]
//!        [--password-bytes 1000000] [--settle 3s] [--timeout 120s] [--email nobody@example.com]

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Opts {
    addr: String,
    pid: u32,
    connections: usize,
    password_bytes: usize,
    settle: Duration,
    timeout: Duration,
    email: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: big_logins --url http://127.0.0.1:8055 --server-pid PID [-c 100] \
         [--password-bytes 1000000] [--settle 3s] [--timeout 120s] [--email E]"
    );
    std::process::exit(2)
}

fn secs(v: &str) -> Duration {
    let n: f64 = v.trim_end_matches('s').parse().unwrap_or_else(|_| usage());
    Duration::from_secs_f64(n)
}

fn opts() -> Opts {
    let mut o = Opts {
        addr: "127.0.0.1:8055".into(),
        pid: 0,
        connections: 100,
        password_bytes: 1_000_000,
        settle: Duration::from_secs(3),
        timeout: Duration::from_secs(120),
        email: "nobody@example.com".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--url" => {
                let url = val();
                let rest = url.strip_prefix("http://").unwrap_or_else(|| usage());
                o.addr = rest.trim_end_matches('/').to_string();
            }
            "--server-pid" => o.pid = val().parse().unwrap_or_else(|_| usage()),
            "-c" | "--connections" => o.connections = val().parse().unwrap_or_else(|_| usage()),
            "--password-bytes" => o.password_bytes = val().parse().unwrap_or_else(|_| usage()),
            "--settle" => o.settle = secs(&val()),
            "--timeout" => o.timeout = secs(&val()),
            "--email" => o.email = val(),
            _ => usage(),
        }
    }
    // Loopback only, bounded sizes.
    let host = o.addr.rsplit_once(':').map(|(h, _)| h).unwrap_or("");
    if !["127.0.0.1", "localhost", "[::1]"].contains(&host) {
        eprintln!("big_logins: only loopback targets are accepted");
        std::process::exit(2);
    }
    if o.pid == 0 || !(1..=1000).contains(&o.connections) || o.password_bytes > 64 << 20 {
        usage();
    }
    o
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// One login; the answer's status, or 0 on an I/O error or timeout.
async fn login(addr: String, request: Arc<Vec<u8>>, timeout: Duration) -> u16 {
    let run = async {
        let stream = TcpStream::connect(&addr).await.ok()?;
        let (mut rd, mut wr) = stream.into_split();
        // The server may answer (and close) before the whole body is sent: write and read at once.
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(&request).await;
            wr
        });
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = rd.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            head.extend_from_slice(&buf[..n]);
        }
        writer.abort();
        std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()
    };
    tokio::time::timeout(timeout, run)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let o = opts();
    let body = format!(
        "{{\"email\":\"{}\",\"password\":\"{}\",\"mode\":\"json\"}}",
        o.email,
        "p".repeat(o.password_bytes)
    );
    let request = Arc::new(
        format!(
            "POST /auth/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            o.addr,
            body.len()
        )
        .into_bytes(),
    );
    let before = status_kib(o.pid, "VmRSS:");
    let hwm_reset = std::fs::write(format!("/proc/{}/clear_refs", o.pid), "5").is_ok();

    let done = Arc::new(AtomicBool::new(false));
    let sampled = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, sampled, pid) = (done.clone(), sampled.clone(), o.pid);
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Some(kib) = status_kib(pid, "VmRSS:") {
                    sampled.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let start = Instant::now();
    let logins: Vec<_> = (0..o.connections)
        .map(|_| tokio::spawn(login(o.addr.clone(), request.clone(), o.timeout)))
        .collect();
    let mut by_status = BTreeMap::new();
    for l in logins {
        *by_status.entry(l.await.unwrap_or(0)).or_insert(0u32) += 1;
    }
    let elapsed = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let hwm = status_kib(o.pid, "VmHWM:");
    tokio::time::sleep(o.settle).await;
    let after = status_kib(o.pid, "VmRSS:");

    let kib = |v: Option<u64>| v.map(|k| k.to_string()).unwrap_or_else(|| "-".into());
    let mib = |v: Option<u64>| {
        v.map(|k| format!("{:.1}", k as f64 / 1024.0))
            .unwrap_or_else(|| "-".into())
    };
    let statuses = by_status
        .iter()
        .map(|(s, n)| format!("{s}:{n}"))
        .collect::<Vec<_>>()
        .join(",");
    let sampled = Some(sampled.load(Ordering::Relaxed)).filter(|k| *k > 0);
    println!(
        "big_logins: {} logins with {}-byte passwords in {:.2}s; answers by status (0 = I/O error or timeout): {statuses}",
        o.connections,
        o.password_bytes,
        elapsed.as_secs_f64()
    );
    println!(
        "  RSS MiB: before {}, peak {} (VmHWM{}), highest sampled {}, {:?} after {}",
        mib(before),
        mib(hwm),
        if hwm_reset {
            ""
        } else {
            ", not reset: since start"
        },
        mib(sampled),
        o.settle,
        mib(after)
    );
    println!(
        "RESULT connections={} password_bytes={} elapsed_s={:.3} by_status={statuses} before_kib={} peak_kib={} hwm_reset={} sampled_peak_kib={} after_kib={}",
        o.connections,
        o.password_bytes,
        elapsed.as_secs_f64(),
        kib(before),
        kib(hwm),
        hwm_reset,
        kib(sampled),
        kib(after)
    );
}
