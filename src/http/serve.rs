//! The accept loop: one task per client connection, HTTP/1.1 through hyper, with what
//! `axum::serve` lacks — a header timeout, an idle (keep-alive) timeout, a bound on open
//! connections kept below the open-file limit, a back-off on accept errors, and a deadline on
//! graceful shutdown. (The request-body timeout is in `extract::JsonBody`.)
//!
//! Handlers still read the peer as `ConnectInfo<SocketAddr>`, as with
//! `into_make_service_with_connect_info`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::config::ServerConfig;

/// File descriptors kept free for everything but client sockets: the database pool (plus the
/// SQLite writer and its files), logs, the runtime's own descriptors.
const FD_RESERVE: u64 = 64;

/// Pause after an accept error that is not about one connection (EMFILE, ENFILE, ENOMEM), so
/// the loop does not spin while descriptors are short; connections that end meanwhile free them.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in flight finish
/// for at most `cfg.shutdown_timeout` before closing what is left.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    cfg: ServerConfig,
    db_connections: u32,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let limit = connection_bound(
        cfg.max_connections,
        open_file_limit(),
        FD_RESERVE + u64::from(db_connections),
    );
    if limit < cfg.max_connections {
        tracing::info!(
            max_connections = limit,
            "client connections bounded below the open-file limit (raise `ulimit -n` to allow more)"
        );
    }
    let cfg = Arc::new(cfg);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    let mut last_warning: Option<Instant> = None;
    loop {
        // Full: accept nothing until a connection ends. New clients wait in the kernel's listen
        // backlog and are served as silent or idle connections time out.
        if tasks.len() >= limit {
            tokio::select! {
                _ = tasks.join_next() => continue,
                _ = &mut shutdown => break,
            }
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tasks.spawn(connection(stream, peer, router.clone(), cfg.clone(), stop_rx.clone()));
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        tracing::warn!(error = %e, open_connections = tasks.len(), "accept failed; backing off");
                        last_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(cfg.shutdown_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open_connections = tasks.len(),
            "SERVER_SHUTDOWN_TIMEOUT passed; closing the remaining connections"
        );
        tasks.shutdown().await;
    }
    Ok(())
}

/// Errors about the one connection being accepted; the next accept may well succeed.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// `configured`, lowered to stay `reserve` descriptors below the soft open-file limit (each
/// client connection is one descriptor); at least 1.
pub fn connection_bound(configured: usize, soft_limit: Option<u64>, reserve: u64) -> usize {
    match soft_limit {
        Some(soft) => {
            let room = usize::try_from(soft.saturating_sub(reserve)).unwrap_or(usize::MAX);
            configured.min(room).max(1)
        }
        None => configured.max(1),
    }
}

/// The soft `RLIMIT_NOFILE`, read from `/proc/self/limits` (the crate forbids `unsafe`, so no
/// `getrlimit`); `None` when unlimited or unknown (not Linux).
fn open_file_limit() -> Option<u64> {
    parse_open_file_limit(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

/// `Max open files            1024                 524288               files`
pub fn parse_open_file_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One client connection, until it ends, idles out, or shutdown closes it.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    cfg: Arc<ServerConfig>,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let service = PeerService {
        router,
        peer,
        activity: activity.clone(),
    };
    let keep_alive = !cfg.keep_alive_timeout.is_zero();
    // hyper's header timer runs from the connection's start and again from each answer until the
    // next request's headers are in, so it also bounds a client that trickles its headers.
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.headers_timeout)
        .keep_alive(keep_alive)
        .serve_connection(io, service);
    let mut conn = pin!(conn);
    let idle = async {
        if keep_alive {
            activity.idle(cfg.keep_alive_timeout).await
        } else {
            std::future::pending().await
        }
    };
    let mut idle = pin!(idle);
    let mut closing = false;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "client connection ended with an error");
                }
                return;
            }
            // Nothing in flight and nothing received: drop the connection (and any partial
            // request head) as Node's keepAliveTimeout does.
            _ = &mut idle => return,
            _ = stop.wait_for(|stop| *stop), if !closing => {
                // Idle connections close now; one with a request in flight closes after its answer.
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// When the connection last moved bytes, and how many of its requests are being answered.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Resolves once no request has been in flight and no byte has moved for `limit`.
    async fn idle(&self, limit: Duration) {
        loop {
            let wait = if self.in_flight.load(Ordering::Relaxed) > 0 {
                limit
            } else {
                let quiet = Duration::from_millis(
                    self.now_ms()
                        .saturating_sub(self.last_ms.load(Ordering::Relaxed)),
                );
                match limit.checked_sub(quiet) {
                    Some(rest) if !rest.is_zero() => rest,
                    _ => return,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// Counts a request as in flight until its answer is produced (or the request is dropped).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The router for one connection: adds `ConnectInfo` and counts requests in flight.
#[derive(Clone)]
struct PeerService {
    router: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for PeerService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let guard = InFlight::new(self.activity.clone());
        let answer = self.router.clone().oneshot(req);
        Box::pin(async move {
            let res = answer.await;
            drop(guard);
            res
        })
    }
}

/// The socket, noting every byte read or written in `Activity`.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.touch();
        }
        res
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_is_read_from_proc() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_file_limit(text), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_file_limit(unlimited), None);
        assert_eq!(parse_open_file_limit("nothing here"), None);
        #[cfg(target_os = "linux")]
        assert!(open_file_limit().is_some_and(|n| n > 0));
    }

    #[test]
    fn the_bound_stays_below_the_open_file_limit() {
        assert_eq!(connection_bound(4096, Some(1024), 74), 950);
        assert_eq!(connection_bound(100, Some(1024), 74), 100);
        assert_eq!(connection_bound(4096, None, 74), 4096);
        // A limit smaller than the reserve still serves one connection at a time.
        assert_eq!(connection_bound(4096, Some(50), 74), 1);
    }
}
