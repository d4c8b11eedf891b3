//! The policies every device kind shares: throttling of verification failures, a cooldown
//! between challenges, and the account-wide failure budget.

use std::time::Duration;

use crate::Timestamp;

/// Exponential back-off after failed verifications, django-otp's `ThrottlingMixin`: after `n`
/// consecutive failures the next attempt must wait `factor × 2^(n-1)` since the last failure,
/// with a cap that django-otp lacked.
///
/// ```
/// use std::time::Duration;
/// use otp_core::{ThrottlePolicy, ThrottleState, Timestamp};
///
/// let policy = ThrottlePolicy::new(Duration::from_secs(1));
/// let mut state = ThrottleState::default();
/// let t = Timestamp::from_unix_secs(1_000);
/// for _ in 0..3 {
///     state.record_failure(t);
/// }
/// assert_eq!(state.delay(&policy), Duration::from_secs(4)); // 1 s × 2^(3-1)
/// let throttled = state.check(&policy, t.plus(Duration::from_millis(3_999))).unwrap_err();
/// assert_eq!(throttled.retry_after, Duration::from_millis(1));
/// assert!(state.check(&policy, t.plus(Duration::from_secs(4))).is_ok()); // strict <
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Delay after the first failure; zero turns throttling off.
    pub factor: Duration,
    /// Longest delay, however many failures came before.
    pub max_delay: Duration,
}

impl ThrottlePolicy {
    /// The default cap on the delay: one hour. (The account failure budget locks the account
    /// long before the delay would matter more.)
    pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(3_600);

    /// A policy with the given factor and the default cap.
    pub fn new(factor: Duration) -> Self {
        Self {
            factor,
            max_delay: Self::DEFAULT_MAX_DELAY,
        }
    }

    /// No throttling at all (django-otp's factor 0).
    pub fn disabled() -> Self {
        Self::new(Duration::ZERO)
    }

    /// Whether the policy ever delays anything.
    pub fn is_enabled(&self) -> bool {
        !self.factor.is_zero()
    }
}

impl Default for ThrottlePolicy {
    /// django-otp's default: a factor of one second.
    fn default() -> Self {
        Self::new(Duration::from_secs(1))
    }
}

/// The throttling state of one device: how many verifications failed in a row, and when the
/// last one failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThrottleState {
    /// Consecutive failures since the last success or reset.
    pub failure_count: u32,
    /// When the last failure happened; `None` after a success or reset.
    pub last_failure_at: Option<Timestamp>,
}

/// A verification refused because the device is throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Consecutive failures so far.
    pub failure_count: u32,
    /// When the next attempt will be allowed.
    pub locked_until: Timestamp,
    /// How long from now until then.
    pub retry_after: Duration,
}

impl ThrottleState {
    /// The delay the current failure count imposes: `factor × 2^(count-1)`, capped.
    pub fn delay(&self, policy: &ThrottlePolicy) -> Duration {
        if !policy.is_enabled() || self.failure_count == 0 {
            return Duration::ZERO;
        }
        let doublings = self.failure_count - 1;
        let delay = if doublings >= 32 {
            policy.max_delay
        } else {
            policy
                .factor
                .checked_mul(1u32 << doublings)
                .unwrap_or(policy.max_delay)
        };
        delay.min(policy.max_delay)
    }

    /// Whether a verification may be attempted at `now`. Attempts refused here must change
    /// nothing: they neither count as failures nor move the timestamp.
    ///
    /// # Errors
    ///
    /// [`Throttled`] while `now - last_failure_at < delay` (strictly less, as in django-otp).
    pub fn check(&self, policy: &ThrottlePolicy, now: Timestamp) -> Result<(), Throttled> {
        let Some(last_failure_at) = self.last_failure_at else {
            return Ok(());
        };
        let delay = self.delay(policy);
        let locked_until = last_failure_at.plus(delay);
        if now < locked_until {
            Err(Throttled {
                failure_count: self.failure_count,
                locked_until,
                retry_after: locked_until.since(now),
            })
        } else {
            Ok(())
        }
    }

    /// Counts a failure at `now` (also when throttling is off, as django-otp does).
    pub fn record_failure(&mut self, now: Timestamp) {
        self.failure_count = self.failure_count.saturating_add(1);
        self.last_failure_at = Some(now);
    }

    /// Clears the state after a success, or by an operator.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// A minimum gap between two challenges of one device (django-otp's `CooldownMixin`); zero
/// turns it off.
///
/// ```
/// use std::time::Duration;
/// use otp_core::{CooldownPolicy, Timestamp};
///
/// let cooldown = CooldownPolicy::new(Duration::from_secs(60));
/// let sent = Timestamp::from_unix_secs(1_000);
/// assert!(cooldown.check(Some(sent), sent.plus(Duration::from_secs(60))).is_err()); // strict >
/// assert!(cooldown.check(Some(sent), sent.plus(Duration::from_millis(60_001))).is_ok());
/// assert!(CooldownPolicy::new(Duration::ZERO).check(Some(sent), sent).is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CooldownPolicy {
    /// The gap; zero disables the cooldown.
    pub duration: Duration,
}

impl CooldownPolicy {
    /// A cooldown of `duration`.
    pub fn new(duration: Duration) -> Self {
        Self { duration }
    }

    /// Whether a challenge may be generated at `now`, given when the last one was.
    ///
    /// # Errors
    ///
    /// The time of the next allowed challenge, while `now - last <= duration`. A zero duration
    /// always allows (django-otp blocked at identical timestamps even then).
    pub fn check(
        &self,
        last_generated_at: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), Timestamp> {
        match last_generated_at {
            Some(last) if !self.duration.is_zero() => {
                let next = last.plus(self.duration);
                if now > next { Ok(()) } else { Err(next) }
            }
            _ => Ok(()),
        }
    }
}

/// The account-wide failure budget (NIST SP 800-63B §5.2.2): after `limit` consecutive failed
/// verifications across all of a user's devices, the account refuses every verification until
/// an operator resets it or the user recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureBudget {
    /// Consecutive failures that lock the account.
    pub limit: u32,
}

impl FailureBudget {
    /// NIST SP 800-63B's ceiling: 100 consecutive failures.
    pub const NIST_LIMIT: u32 = 100;

    /// Whether `consecutive_failures` have used up the budget.
    pub fn is_exhausted(&self, consecutive_failures: u32) -> bool {
        consecutive_failures >= self.limit
    }
}

impl Default for FailureBudget {
    fn default() -> Self {
        Self {
            limit: Self::NIST_LIMIT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn django_otp_delay_table_with_factor_one_and_three() {
        let one = ThrottlePolicy::new(secs(1));
        let three = ThrottlePolicy::new(secs(3));
        let mut state = ThrottleState::default();
        let t = Timestamp::from_unix_secs(0);
        for (failures, expected) in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (6, 32)] {
            state.record_failure(t);
            assert_eq!(state.failure_count, failures);
            assert_eq!(state.delay(&one), secs(expected), "{failures} failures");
            assert_eq!(
                state.delay(&three),
                secs(3 * expected),
                "{failures} failures"
            );
        }
    }

    #[test]
    fn delay_is_capped_and_never_overflows() {
        let policy = ThrottlePolicy::new(secs(1));
        let state = ThrottleState {
            failure_count: u32::MAX,
            last_failure_at: Some(Timestamp::EPOCH),
        };
        assert_eq!(state.delay(&policy), ThrottlePolicy::DEFAULT_MAX_DELAY);
        let huge = ThrottlePolicy::new(Duration::MAX);
        assert_eq!(state.delay(&huge), ThrottlePolicy::DEFAULT_MAX_DELAY);
    }

    #[test]
    fn factor_zero_counts_but_never_throttles() {
        let policy = ThrottlePolicy::disabled();
        let mut state = ThrottleState::default();
        let t = Timestamp::from_unix_secs(5);
        state.record_failure(t);
        state.record_failure(t);
        assert_eq!(state.failure_count, 2);
        assert!(state.check(&policy, t).is_ok());
    }

    #[test]
    fn reset_clears_everything() {
        let mut state = ThrottleState::default();
        state.record_failure(Timestamp::from_unix_secs(1));
        state.reset();
        assert_eq!(state, ThrottleState::default());
        assert!(
            state
                .check(&ThrottlePolicy::default(), Timestamp::EPOCH)
                .is_ok()
        );
    }

    #[test]
    fn cooldown_before_a_clock_jump_back_still_waits() {
        let cooldown = CooldownPolicy::new(secs(60));
        let sent = Timestamp::from_unix_secs(1_000);
        assert_eq!(
            cooldown.check(Some(sent), Timestamp::from_unix_secs(900)),
            Err(Timestamp::from_unix_secs(1_060))
        );
        assert!(cooldown.check(None, sent).is_ok());
    }

    #[test]
    fn budget_locks_at_the_limit() {
        let budget = FailureBudget::default();
        assert!(!budget.is_exhausted(99));
        assert!(budget.is_exhausted(100));
    }
}
