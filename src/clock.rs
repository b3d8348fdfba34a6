//! Time as a seam: the server reads "now" through `Clock`, so tests can move time forward
//! to expire tokens and grace windows without sleeping, or stop it where a test must not
//! straddle a boundary (a 30-second TOTP step).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// No frozen instant.
const RUNNING: i64 = i64::MIN;

/// The system clock plus an offset that tests move forward; once frozen, a fixed instant
/// (plus the offset) that only `advance` moves.
#[derive(Debug, Clone)]
pub struct OffsetClock {
    offset_ms: Arc<AtomicI64>,
    /// Milliseconds since the epoch of the frozen instant, or `RUNNING`.
    frozen_ms: Arc<AtomicI64>,
}

impl Default for OffsetClock {
    fn default() -> Self {
        Self {
            offset_ms: Arc::new(AtomicI64::new(0)),
            frozen_ms: Arc::new(AtomicI64::new(RUNNING)),
        }
    }
}

impl OffsetClock {
    pub fn advance(&self, by: std::time::Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    /// Stops time at `at`: `now()` answers `at` until `advance` moves it or `resume`.
    pub fn freeze_at(&self, at: DateTime<Utc>) {
        self.offset_ms.store(0, Ordering::SeqCst);
        self.frozen_ms
            .store(at.timestamp_millis(), Ordering::SeqCst);
    }

    /// Stops time where it is now.
    pub fn freeze(&self) {
        self.freeze_at(self.now());
    }

    /// Lets time run again, keeping the offset the clock had reached.
    pub fn resume(&self) {
        let now = self.now();
        self.frozen_ms.store(RUNNING, Ordering::SeqCst);
        self.offset_ms
            .store((now - Utc::now()).num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        let offset = chrono::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst));
        match self.frozen_ms.load(Ordering::SeqCst) {
            RUNNING => Utc::now() + offset,
            frozen => DateTime::from_timestamp_millis(frozen).unwrap_or_default() + offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frozen_clock_moves_only_when_advanced() {
        let clock = OffsetClock::default();
        let at = DateTime::from_timestamp(1_700_000_010, 0).unwrap();
        clock.freeze_at(at);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(clock.now(), at);
        clock.advance(std::time::Duration::from_secs(30));
        assert_eq!(clock.now(), at + chrono::Duration::seconds(30));
        clock.resume();
        assert!(clock.now() >= at + chrono::Duration::seconds(30));
    }
}
