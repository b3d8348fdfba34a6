//! What `/metrics` exposes (Prometheus text format, the `prometheus` crate): one registry per
//! server, so several servers in one process (the test suite) keep their own counts.
//!
//! Directus exports only service metrics (`api/src/controllers/metrics.ts`); the auth counters
//! here are gatehouse's own. No label ever holds a user, an email, a token or a raw URI: the
//! route label is the matched route pattern, and outcomes are Directus's error codes.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The database pool as a scrape reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open now (idle and in use).
    pub open: u64,
    pub idle: u64,
    /// The most that may be open.
    pub max: u64,
}

/// Cheap to clone; every clone records into the same registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    logins: IntCounterVec,
    refreshes: IntCounterVec,
    refresh_reuse: IntCounter,
    lockouts: IntCounterVec,
    otp_failures: IntCounter,
    rate_limited: IntCounterVec,
    mails: IntCounterVec,
    hash_waiting: IntGauge,
    hash_running: IntGauge,
    hash_wait: Histogram,
    requests: HistogramVec,
    pool: IntGaugeVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers one metric; the names are fixed here, so a failure is a bug.
fn register<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: M) -> M {
    r.register(Box::new(m.clone()))
        .expect("BUG: a metric is registered twice or has a bad name");
    m
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("BUG: bad counter"),
    )
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let latency = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let inner = Inner {
            logins: counter_vec(
                &r,
                "gatehouse_logins_total",
                "Logins by provider and outcome (success, or Directus's error code).",
                &["provider", "outcome"],
            ),
            refreshes: counter_vec(
                &r,
                "gatehouse_refreshes_total",
                "Token refreshes by outcome (success, or Directus's error code).",
                &["outcome"],
            ),
            refresh_reuse: register(
                &r,
                IntCounter::new(
                    "gatehouse_refresh_reuse_detected_total",
                    "Rotated refresh tokens used again after their grace period (the whole login was ended).",
                )
                .expect("BUG: bad counter"),
            ),
            lockouts: counter_vec(
                &r,
                "gatehouse_lockouts_total",
                "Users suspended after too many failed logins (kind=login), or made to wait after too many wrong codes (kind=otp).",
                &["kind"],
            ),
            otp_failures: register(
                &r,
                IntCounter::new(
                    "gatehouse_otp_failures_total",
                    "Second-factor codes refused (wrong, replayed, or during a wait).",
                )
                .expect("BUG: bad counter"),
            ),
            rate_limited: counter_vec(
                &r,
                "gatehouse_rate_limited_total",
                "Requests refused with 429 by a rate limiter.",
                &["limiter"],
            ),
            mails: counter_vec(
                &r,
                "gatehouse_mails_total",
                "Mails by outcome: sent, failed (after every try), dropped (queue full or rate limit).",
                &["outcome"],
            ),
            hash_waiting: register(
                &r,
                IntGauge::new(
                    "gatehouse_password_hash_waiting",
                    "Password hashes and verifications waiting for a slot.",
                )
                .expect("BUG: bad gauge"),
            ),
            hash_running: register(
                &r,
                IntGauge::new(
                    "gatehouse_password_hash_running",
                    "Password hashes and verifications running now.",
                )
                .expect("BUG: bad gauge"),
            ),
            hash_wait: register(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "gatehouse_password_hash_wait_seconds",
                        "Time a password hash or verification waited for a slot.",
                    )
                    .buckets(latency.clone()),
                )
                .expect("BUG: bad histogram"),
            ),
            requests: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "gatehouse_http_request_duration_seconds",
                        "Time to answer a request, by matched route, method and status class.",
                    )
                    .buckets(latency),
                    &["route", "method", "status"],
                )
                .expect("BUG: bad histogram"),
            ),
            pool: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "gatehouse_db_pool_connections",
                        "Database connections by state (open, idle, max).",
                    ),
                    &["state"],
                )
                .expect("BUG: bad gauge"),
            ),
            registry: r,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// A login through `provider` ended with this outcome (`success` or an error code).
    pub fn login(&self, provider: &str, outcome: &str) {
        self.inner
            .logins
            .with_label_values(&[provider, &outcome.to_ascii_lowercase()])
            .inc();
    }

    pub fn refresh(&self, outcome: &str) {
        self.inner
            .refreshes
            .with_label_values(&[&outcome.to_ascii_lowercase()])
            .inc();
    }

    pub fn refresh_reuse(&self) {
        self.inner.refresh_reuse.inc();
    }

    pub fn lockout(&self, kind: &'static str) {
        self.inner.lockouts.with_label_values(&[kind]).inc();
    }

    pub fn otp_failure(&self) {
        self.inner.otp_failures.inc();
    }

    pub fn rate_limited(&self, limiter: &'static str) {
        self.inner.rate_limited.with_label_values(&[limiter]).inc();
    }

    pub fn mail(&self, outcome: &'static str) {
        self.inner.mails.with_label_values(&[outcome]).inc();
    }

    /// A hash job started waiting for a slot; the guard counts it until it runs or is dropped.
    pub fn hash_waiting(&self) -> GaugeGuard {
        GaugeGuard::new(self.inner.hash_waiting.clone())
    }

    pub fn hash_running(&self) -> GaugeGuard {
        GaugeGuard::new(self.inner.hash_running.clone())
    }

    pub fn hash_waited(&self, waited: Duration) {
        self.inner.hash_wait.observe(waited.as_secs_f64());
    }

    /// One answered request; `route` is the matched pattern (`/users/{id}`) or `unmatched`.
    pub fn request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.inner
            .requests
            .with_label_values(&[route, method, class])
            .observe(took.as_secs_f64());
    }

    /// The exposition, with the pool gauges read now.
    pub fn render(&self, pool: PoolStats) -> String {
        let g = &self.inner.pool;
        g.with_label_values(&["open"]).set(pool.open as i64);
        g.with_label_values(&["idle"]).set(pool.idle as i64);
        g.with_label_values(&["max"]).set(pool.max as i64);
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.inner.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding the metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Adds one to a gauge while it lives.
pub struct GaugeGuard(IntGauge);

impl GaugeGuard {
    fn new(g: IntGauge) -> Self {
        g.inc();
        Self(g)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_show_in_the_exposition() {
        let m = Metrics::new();
        m.login("default", "INVALID_CREDENTIALS");
        m.login("default", "success");
        m.login("default", "success");
        let running = m.hash_running();
        m.request("/users/{id}", "GET", 404, Duration::from_millis(3));
        let text = m.render(PoolStats {
            open: 3,
            idle: 1,
            max: 10,
        });
        assert!(text.contains(
            "gatehouse_logins_total{outcome=\"invalid_credentials\",provider=\"default\"} 1"
        ));
        assert!(text.contains("gatehouse_logins_total{outcome=\"success\",provider=\"default\"} 2"));
        assert!(text.contains("gatehouse_password_hash_running 1"));
        assert!(text.contains("gatehouse_db_pool_connections{state=\"max\"} 10"));
        assert!(text.contains(
            "gatehouse_http_request_duration_seconds_count{method=\"GET\",route=\"/users/{id}\",status=\"4xx\"} 1"
        ));
        drop(running);
        assert!(m
            .render(PoolStats::default())
            .contains("gatehouse_password_hash_running 0"));
        // Two servers in one process count apart.
        assert!(!Metrics::new()
            .render(PoolStats::default())
            .contains("outcome=\"success\""));
    }
}
