//! Time, injected: every rule that depends on the clock reads it through [`Clock`], so tests can
//! freeze and move time exactly as django-otp's frozen-clock scenarios do.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time: milliseconds since the Unix epoch, UTC. This is how the store keeps every
/// timestamp, on SQLite and PostgreSQL alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// A timestamp from milliseconds since the epoch.
    pub const fn from_unix_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// A timestamp from whole seconds since the epoch.
    pub const fn from_unix_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch, rounded down (what TOTP counts steps from).
    pub const fn unix_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// This timestamp moved forward by `duration` (saturating).
    pub fn plus(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        let millis = self.0.saturating_sub(earlier.0).max(0);
        Duration::from_millis(millis as u64)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.unix_secs(), self.0.rem_euclid(1000))
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Timestamp(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that stands still until it is told to move; clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use otp_core::{Clock, ManualClock, Timestamp};
///
/// let clock = ManualClock::new(Timestamp::from_unix_secs(1_000));
/// let shared = clock.clone();
/// clock.advance(Duration::from_millis(1_500));
/// assert_eq!(shared.now(), Timestamp::from_unix_millis(1_001_500));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock frozen at `at`.
    pub fn new(at: Timestamp) -> Self {
        Self {
            millis: Arc::new(AtomicI64::new(at.0)),
        }
    }

    /// Moves the clock to `at` (also backwards).
    pub fn set(&self, at: Timestamp) {
        self.millis.store(at.0, Ordering::SeqCst);
    }

    /// Moves the clock forward by `duration`.
    pub fn advance(&self, duration: Duration) {
        let now = self.now();
        self.set(now.plus(duration));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.millis.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_never_goes_negative() {
        let t = Timestamp::from_unix_secs(10);
        assert_eq!(t.plus(Duration::from_secs(5)).unix_secs(), 15);
        assert_eq!(t.since(Timestamp::from_unix_secs(12)), Duration::ZERO);
        assert_eq!(
            Timestamp::from_unix_millis(i64::MAX - 1).plus(Duration::MAX),
            Timestamp::from_unix_millis(i64::MAX)
        );
        assert_eq!(Timestamp::from_unix_millis(-1).unix_secs(), -1);
        assert_eq!(Timestamp::from_unix_millis(1_234).to_string(), "1.234");
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now() > Timestamp::from_unix_secs(1_577_836_800));
    }
}
