//! The request rate limiters, Directus's three (`api/src/middleware/rate-limiter-global.ts`,
//! `rate-limiter-ip.ts`, `rate-limiter-registration.ts`): one layer around every route, inside
//! CORS so a 429 still carries the CORS headers, before the token check as in Directus's
//! `api/src/app.ts` (ping and health included). The counts live in this process (governor) or
//! in Redis, shared by every node. A refusal is 429 `REQUESTS_EXCEEDED` with `Retry-After`; a
//! store that cannot be reached is 503 `SERVICE_UNAVAILABLE`, never a silent pass.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock as _;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::AppState;
use crate::config::{Limit, RateLimitConfig, RateLimitStore};
use crate::error::ApiError;

/// Every Redis call gives up after this long and the request answers 503.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// rate-limiter-flexible's key of the global bucket, kept so that Directus and gatehouse nodes
/// on one Redis share it.
const GLOBAL_KEY: &str = "global-rate-limit";
/// Above this many tracked addresses, a check also prunes (at most once a second), on top of
/// the timer.
const PRUNE_ABOVE: usize = 100_000;

/// Fixed window in one Lua call, as rate-limiter-flexible's `RateLimiterRedis` does: the key
/// is created at 0 with the window as its TTL only when missing, every request adds its
/// points, and the answer is the count with the milliseconds left in the window.
const INCR_SCRIPT: &str = r"
redis.call('set', KEYS[1], 0, 'EX', ARGV[2], 'NX')
local consumed = redis.call('incrby', KEYS[1], ARGV[1])
local ttl = redis.call('pttl', KEYS[1])
if ttl == -1 then
  redis.call('expire', KEYS[1], ARGV[2])
  ttl = 1000 * ARGV[2]
end
return {consumed, ttl}
";

/// The three limiters of one server; cheap to clone.
#[derive(Clone)]
pub struct RateLimits(Arc<Inner>);

struct Inner {
    global: Option<Limiter>,
    ip: Option<Limiter>,
    registration: Option<Limiter>,
}

struct Limiter {
    limit: Limit,
    counts: Counts,
}

enum Counts {
    /// One bucket (the global limiter).
    Direct(DefaultDirectRateLimiter),
    /// A bucket per client address, pruned on a timer.
    Keyed(Arc<Keyed>),
    Redis(Arc<RedisCounts>),
}

struct Keyed {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    started: std::time::Instant,
    /// When the last prune ran, in milliseconds since `started`.
    last_prune: AtomicU64,
}

struct RedisCounts {
    conn: redis::aio::ConnectionManager,
    script: redis::Script,
    /// `<RATE_LIMITER_KEY_PREFIX>:` plus the limiter's own part.
    prefix: String,
    /// Keys with a call in flight, and the requests waiting for the next call on that key.
    batches: std::sync::Mutex<HashMap<String, Vec<Waiter>>>,
}

/// A request waiting for its share of a batched Redis call.
type Waiter = tokio::sync::oneshot::Sender<Result<Outcome, Unreachable>>;

/// Held by the request whose call is in flight: when it ends, however it ends, the requests
/// queued behind it are sent on.
struct Handover {
    counts: Arc<RedisCounts>,
    key: Option<String>,
    limit: Limit,
}

impl Drop for Handover {
    fn drop(&mut self) {
        let (Some(key), Ok(rt)) = (self.key.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let counts = self.counts.clone();
        let limit = self.limit;
        rt.spawn(async move { counts.drain(key, limit).await });
    }
}

/// What a limiter decided.
enum Outcome {
    Allowed,
    Refused { retry: Duration },
}

/// The store could not answer in time.
struct Unreachable;

/// governor is GCRA: `points` per `duration` with a burst of `points`, one point coming back
/// every `duration / points`. rate-limiter-flexible's fixed window gives all points back at
/// the window's end instead (docs/compatibility.md).
fn quota(limit: Limit) -> Quota {
    let points = NonZeroU32::new(limit.points).unwrap_or(NonZeroU32::MIN);
    let period = (limit.duration / points.get()).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .unwrap_or(Quota::per_second(points))
        .allow_burst(points)
}

impl Keyed {
    fn new(limit: Limit) -> Arc<Self> {
        let keyed = Arc::new(Keyed {
            limiter: RateLimiter::keyed(quota(limit)),
            started: std::time::Instant::now(),
            last_prune: AtomicU64::new(0),
        });
        // SECURITY: a bucket is forgotten once it is full again, so a flood of distinct
        // addresses holds memory for about one window, not for the life of the process.
        let every = limit
            .duration
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        let weak: Weak<Keyed> = Arc::downgrade(&keyed);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(keyed) = weak.upgrade() else { break };
                    keyed.prune();
                }
            });
        }
        keyed
    }

    fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    fn check(&self, ip: IpAddr) -> Outcome {
        if self.limiter.len() > PRUNE_ABOVE {
            let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let last = self.last_prune.load(Ordering::Relaxed);
            if ms.saturating_sub(last) >= 1000
                && self
                    .last_prune
                    .compare_exchange(last, ms, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                self.prune();
            }
        }
        match self.limiter.check_key(&ip) {
            Ok(()) => Outcome::Allowed,
            Err(not_until) => Outcome::Refused {
                retry: not_until.wait_time_from(self.limiter.clock().now()),
            },
        }
    }
}

impl RedisCounts {
    /// A round trip to Redis, bounded like every other call.
    async fn ping(&self) -> Result<(), String> {
        let mut conn = self.conn.clone();
        let ping = redis::cmd("PING");
        match tokio::time::timeout(REDIS_TIMEOUT, ping.query_async::<String>(&mut conn)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("Redis: {e}")),
            Err(_) => Err(format!("Redis did not answer within {REDIS_TIMEOUT:?}")),
        }
    }

    /// One point for `key`. Requests for a key that already has a call in flight wait and go
    /// together in the next call, which adds all their points at once (`INCRBY n`): the count
    /// in Redis is what one call per request would leave, each request is judged by its place
    /// in the batch, and under load one round trip serves many requests.
    async fn consume(self: &Arc<Self>, key: &str, limit: Limit) -> Result<Outcome, Unreachable> {
        let key = format!("{}{key}", self.prefix);
        let waiting = {
            let Ok(mut batches) = self.batches.lock() else {
                return Err(Unreachable);
            };
            match batches.get_mut(&key) {
                Some(waiters) => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    waiters.push(tx);
                    Some(rx)
                }
                None => {
                    batches.insert(key.clone(), Vec::new());
                    None
                }
            }
        };
        if let Some(rx) = waiting {
            return rx.await.unwrap_or(Err(Unreachable));
        }
        // Whoever queues meanwhile goes in the next call, off this request's path; the guard
        // hands them on even if this request is dropped mid-call.
        let guard = Handover {
            counts: self.clone(),
            key: Some(key),
            limit,
        };
        let key = guard.key.as_deref().unwrap_or_default();
        let outcomes = self.call(key, 1, limit).await;
        drop(guard);
        outcomes.map(|mut o| o.swap_remove(0))
    }

    /// Sends the queued batches of `key` until none is left, then lets the key go.
    async fn drain(&self, key: String, limit: Limit) {
        loop {
            let batch = {
                let Ok(mut batches) = self.batches.lock() else {
                    return;
                };
                match batches.get_mut(&key) {
                    Some(waiters) if !waiters.is_empty() => std::mem::take(waiters),
                    _ => {
                        batches.remove(&key);
                        return;
                    }
                }
            };
            let n = u32::try_from(batch.len()).unwrap_or(u32::MAX);
            match self.call(&key, n, limit).await {
                Ok(outcomes) => {
                    for (tx, outcome) in batch.into_iter().zip(outcomes) {
                        let _ = tx.send(Ok(outcome));
                    }
                }
                Err(Unreachable) => {
                    for tx in batch {
                        let _ = tx.send(Err(Unreachable));
                    }
                }
            }
        }
    }

    /// Adds `n` points to `key` in one call; the answer for each of the `n` requests in order.
    async fn call(&self, key: &str, n: u32, limit: Limit) -> Result<Vec<Outcome>, Unreachable> {
        let mut conn = self.conn.clone();
        let mut call = self.script.key(key);
        call.arg(n).arg(limit.duration.as_secs());
        let (consumed, ttl): (i64, i64) =
            match tokio::time::timeout(REDIS_TIMEOUT, call.invoke_async(&mut conn)).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "rate limiter: Redis call failed");
                    return Err(Unreachable);
                }
                Err(_) => {
                    tracing::warn!("rate limiter: Redis did not answer in time");
                    return Err(Unreachable);
                }
            };
        let retry = Duration::from_millis(u64::try_from(ttl).unwrap_or(0));
        let first = consumed - i64::from(n) + 1;
        Ok((0..i64::from(n))
            .map(|i| {
                if first + i > i64::from(limit.points) {
                    Outcome::Refused { retry }
                } else {
                    Outcome::Allowed
                }
            })
            .collect())
    }
}

/// Which bucket a request draws from.
#[derive(Clone, Copy)]
enum Key {
    Global,
    Ip(IpAddr),
}

impl Limiter {
    async fn consume(&self, key: Key) -> Result<Outcome, Unreachable> {
        match (&self.counts, key) {
            (Counts::Direct(l), _) => Ok(match l.check() {
                Ok(()) => Outcome::Allowed,
                Err(not_until) => Outcome::Refused {
                    retry: not_until.wait_time_from(l.clock().now()),
                },
            }),
            (Counts::Keyed(k), Key::Ip(ip)) => Ok(k.check(ip)),
            // A keyed limiter is only ever asked with an address.
            (Counts::Keyed(_), Key::Global) => Ok(Outcome::Allowed),
            (Counts::Redis(r), Key::Global) => r.consume(GLOBAL_KEY, self.limit).await,
            (Counts::Redis(r), Key::Ip(ip)) => r.consume(&ip.to_string(), self.limit).await,
        }
    }
}

impl RateLimits {
    /// The limiters `config` turns on. Redis is reached lazily: a start with Redis down
    /// succeeds, and requests answer 503 until it is up.
    pub fn new(config: &RateLimitConfig) -> Result<Self, String> {
        let conn = match &config.store {
            RateLimitStore::Memory => None,
            RateLimitStore::Redis { url } => {
                let client = redis::Client::open(url.as_str())
                    .map_err(|_| "REDIS is not a valid Redis address".to_string())?;
                let manager = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(REDIS_TIMEOUT))
                    .set_response_timeout(Some(REDIS_TIMEOUT))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                Some(
                    redis::aio::ConnectionManager::new_lazy_with_config(client, manager)
                        .map_err(|e| format!("cannot set up the Redis connection: {e}"))?,
                )
            }
        };
        let make = |limit: Option<Limit>, part: &str, keyed: bool| {
            limit.map(|limit| Limiter {
                limit,
                counts: match &conn {
                    Some(conn) => Counts::Redis(Arc::new(RedisCounts {
                        conn: conn.clone(),
                        script: redis::Script::new(INCR_SCRIPT),
                        prefix: format!("{}:{part}", config.key_prefix),
                        batches: std::sync::Mutex::default(),
                    })),
                    None if keyed => Counts::Keyed(Keyed::new(limit)),
                    None => Counts::Direct(RateLimiter::direct(quota(limit))),
                },
            })
        };
        Ok(RateLimits(Arc::new(Inner {
            global: make(config.global, "", false),
            ip: make(config.ip, "", true),
            // Directus's registration limiter shares the IP limiter's keys in Redis (both
            // `rlflx:<ip>`); gatehouse keeps them apart.
            registration: make(config.registration, "registration:", true),
        })))
    }

    pub fn is_empty(&self) -> bool {
        self.0.global.is_none() && self.0.ip.is_none() && self.0.registration.is_none()
    }

    /// `/server/health`'s limiter checks, as Directus names them (`api/src/services/server.ts`):
    /// `rateLimiter` for the per-IP limiter and `rateLimiterGlobal`, each when it is on. A
    /// limiter in Redis is asked `PING` (nothing is written or counted); one in memory has
    /// nothing that can fail and answers at once.
    pub async fn health(&self) -> Vec<(&'static str, Duration, Result<(), String>)> {
        let mut out = Vec::new();
        for (name, limiter) in [
            ("rateLimiter", &self.0.ip),
            ("rateLimiterGlobal", &self.0.global),
        ] {
            let Some(limiter) = limiter else { continue };
            let start = std::time::Instant::now();
            let result = match &limiter.counts {
                Counts::Redis(r) => r.ping().await,
                Counts::Direct(_) | Counts::Keyed(_) => Ok(()),
            };
            out.push((name, start.elapsed(), result));
        }
        out
    }
}

/// `POST /users/register`, matched as Express's router does (case-insensitive, a trailing
/// slash allowed), whether or not the route is mounted.
fn is_registration(method: &Method, path: &str) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    method == Method::POST && path.eq_ignore_ascii_case("/users/register")
}

/// The `ms` package's short form (`api` → `@directus/errors`'s message): `800ms`, `2s`, `5m`.
fn ms_short(ms: u64) -> String {
    let units = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
    ];
    for (size, unit) in units {
        if ms >= size {
            return format!("{}{unit}", (ms as f64 / size as f64).round() as u64);
        }
    }
    format!("{ms}ms")
}

fn refused(state: &AppState, limit: Limit, retry: Duration) -> Response {
    let ms = u64::try_from(retry.as_millis()).unwrap_or(u64::MAX);
    let reset = state.auth.clock.now()
        + chrono::Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX / 2));
    let mut res = ApiError::RequestsExceeded {
        limit: limit.points,
        reset: reset.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        retry: ms_short(ms),
    }
    .into_response();
    // Directus rounds (`Math.round(ms / 1000)`), which can say 0 while the window is still
    // closed; gatehouse rounds up (docs/compatibility.md).
    let seconds = ms.div_ceil(1000).max(1);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    res
}

fn unreachable_store() -> Response {
    ApiError::ServiceUnavailable {
        service: "rate-limiter".into(),
        reason: "Rate limiter unreachable".into(),
    }
    .into_response()
}

/// The layer: global, then per IP, then registration, each drawing a point, as Directus's
/// middleware order has it. A request without a known address skips the per-IP limiters, as
/// Directus's `if (ip)` does.
pub async fn check(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let registration = is_registration(req.method(), req.uri().path());
    let limits = &state.limits;
    let inner = &limits.0;
    if inner.global.is_none() && inner.ip.is_none() && !registration {
        return next.run(req).await;
    }
    let ip = {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        super::extract::client_ip(&state.auth.config, req.headers(), peer)
    };
    let steps = [
        ("global", limits.0.global.as_ref(), Some(Key::Global)),
        ("ip", limits.0.ip.as_ref(), ip.map(Key::Ip)),
        (
            "registration",
            limits.0.registration.as_ref().filter(|_| registration),
            ip.map(Key::Ip),
        ),
    ];
    for (name, limiter, key) in steps {
        let (Some(limiter), Some(key)) = (limiter, key) else {
            continue;
        };
        match limiter.consume(key).await {
            Ok(Outcome::Allowed) => {}
            Ok(Outcome::Refused { retry }) => {
                state.auth.metrics.rate_limited(name);
                return refused(&state, limiter.limit, retry);
            }
            Err(Unreachable) => return unreachable_store(),
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn health_reports_a_redis_that_does_not_answer() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = dead.local_addr().unwrap().port();
        drop(dead);
        let limit = Limit {
            points: 10,
            duration: Duration::from_secs(1),
        };
        let config = RateLimitConfig {
            ip: Some(limit),
            global: Some(limit),
            registration: None,
            store: RateLimitStore::Redis {
                url: format!("redis://127.0.0.1:{port}"),
            },
            key_prefix: "rlflx".into(),
        };
        let checks = RateLimits::new(&config).unwrap().health().await;
        let names: Vec<&str> = checks.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(names, ["rateLimiter", "rateLimiterGlobal"]);
        for (name, elapsed, result) in checks {
            assert!(result.is_err(), "{name}");
            assert!(elapsed < Duration::from_secs(3), "{name}: {elapsed:?}");
        }
        // In memory there is nothing to reach.
        let memory = RateLimitConfig {
            store: RateLimitStore::Memory,
            ..config
        };
        let checks = RateLimits::new(&memory).unwrap().health().await;
        assert!(checks.iter().all(|(_, _, r)| r.is_ok()));
        assert_eq!(checks.len(), 2);
    }

    #[test]
    fn retry_text_follows_the_ms_package() {
        assert_eq!(ms_short(0), "0ms");
        assert_eq!(ms_short(999), "999ms");
        assert_eq!(ms_short(1000), "1s");
        assert_eq!(ms_short(1500), "2s");
        assert_eq!(ms_short(59_400), "59s");
        assert_eq!(ms_short(60_000), "1m");
        assert_eq!(ms_short(90_000), "2m");
        assert_eq!(ms_short(86_400_000), "1d");
    }

    #[test]
    fn registration_is_matched_as_express_matches_it() {
        assert!(is_registration(&Method::POST, "/users/register"));
        assert!(is_registration(&Method::POST, "/users/register/"));
        assert!(is_registration(&Method::POST, "/Users/REGISTER"));
        assert!(!is_registration(&Method::GET, "/users/register"));
        assert!(!is_registration(
            &Method::POST,
            "/users/register/verify-email"
        ));
        assert!(!is_registration(&Method::POST, "/users/registered"));
    }

    #[test]
    fn the_quota_allows_points_per_duration_with_a_burst_of_points() {
        let limit = Limit {
            points: 5,
            duration: Duration::from_secs(60),
        };
        let l: DefaultDirectRateLimiter = RateLimiter::direct(quota(limit));
        for _ in 0..5 {
            assert!(l.check().is_ok());
        }
        let retry = l.check().unwrap_err().wait_time_from(l.clock().now());
        // One point comes back every 12 s.
        assert!(retry > Duration::from_secs(11) && retry <= Duration::from_secs(12));
    }

    #[tokio::test]
    async fn full_buckets_are_forgotten() {
        let keyed = Keyed::new(Limit {
            points: 2,
            duration: Duration::from_millis(20),
        });
        for i in 0..1000u32 {
            assert!(matches!(
                keyed.check(IpAddr::from(i.to_be_bytes())),
                Outcome::Allowed
            ));
        }
        assert_eq!(keyed.limiter.len(), 1000);
        // Past the window every bucket is full again.
        tokio::time::sleep(Duration::from_millis(60)).await;
        keyed.prune();
        assert_eq!(keyed.limiter.len(), 0);
    }
}
