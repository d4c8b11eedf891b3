//! Back-off per account for wrong passwords ([`PasswordBackoff`]), kept in the database so that
//! every server on it counts an account's failures together.
//!
//! The rate limit counts requests per client address; an attacker with many addresses is not
//! slowed by it. This counts password attempts per *username* (its unique key, whether or not
//! a user has it, so that a name nobody has behaves exactly as a taken one): the first
//! [`free_failures`](PasswordBackoff::free_failures) consecutive failures cost nothing, then
//! each failure makes the account wait [`delay`](PasswordBackoff::delay), doubling with each
//! further failure up to [`max_delay`](PasswordBackoff::max_delay). No lock: after the wait, one
//! more attempt is judged. An attempt during the wait is refused **without being judged**, with
//! the very answer of a wrong password (a right password gets it too), so an attacker learns
//! nothing from it; a right password after the wait deletes the row.
//!
//! Each attempt is first *taken*, atomically, by one `INSERT … ON CONFLICT DO UPDATE … WHERE`
//! that counts it as a failure and sets the next time an attempt may be judged, or changes
//! nothing if that time has not come: concurrent attempts through any number of servers are
//! judged at most one per wait. A right password then deletes the row. Times are the server's
//! wall clock in milliseconds; a `next_attempt_at` more than `max_delay` ahead can only come
//! from a clock that was wrong and counts as past. An account left alone for a day starts again
//! from no failures, and [`forget`] deletes such rows with the expired sessions.

use std::time::Duration;

use otp_core::{Migration, Store, on_connection};

/// The table of failures, a component of its own.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    component: "otp-server-password-backoff",
    version: 1,
    description: "consecutive wrong passwords per username",
    sqlite: "
        CREATE TABLE app_password_failures (
            username_key TEXT PRIMARY KEY,
            failures BIGINT NOT NULL,
            next_attempt_at BIGINT NOT NULL
        )",
    postgres: "
        CREATE TABLE app_password_failures (
            username_key TEXT PRIMARY KEY,
            failures BIGINT NOT NULL,
            next_attempt_at BIGINT NOT NULL
        )",
}];

/// How long an account must be left alone for its failures to be forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The back-off's numbers (`OTP_PASSWORD_FREE_FAILURES`, `OTP_PASSWORD_BACKOFF`,
/// `OTP_PASSWORD_BACKOFF_MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordBackoff {
    /// Consecutive failures that cost no wait (default 5).
    pub free_failures: u32,
    /// The wait after the first failure beyond the free ones, doubling with each further one
    /// (default 1 s; zero turns the back-off off).
    pub delay: Duration,
    /// The longest wait (default 5 minutes).
    pub max_delay: Duration,
}

impl Default for PasswordBackoff {
    fn default() -> Self {
        Self {
            free_failures: 5,
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
        }
    }
}

impl PasswordBackoff {
    /// The wait after `failures` consecutive failures.
    pub fn delay_after(&self, failures: u32) -> Duration {
        match failures.checked_sub(self.free_failures) {
            None | Some(0) => Duration::ZERO,
            Some(beyond) => self
                .delay
                .saturating_mul(1 << (beyond - 1).min(31))
                .min(self.max_delay),
        }
    }
}

/// The wait after `{n}` failures, in SQL, with `$3` free failures, `$4` the first delay and `$5`
/// the longest (milliseconds): the same as [`PasswordBackoff::delay_after`].
fn delay_sql(n: &str) -> String {
    let doubled = format!("($4 << CAST({n} - $3 - 1 AS INTEGER))");
    format!(
        "(CASE WHEN {n} <= $3 OR $4 = 0 THEN 0 WHEN {n} - $3 > 32 THEN $5 \
         WHEN {doubled} > $5 THEN $5 ELSE {doubled} END)"
    )
}

/// Takes one attempt for `$1` at `$2`, counted as a failure, or nothing while it must wait; `$6`
/// is [`FORGET_AFTER`] in milliseconds. A row comes back when the attempt may be judged. Within
/// the free failures there is no wait whatever the times say: concurrent attempts stamped a
/// millisecond apart, whose statements run in the other order, must not refuse each other.
fn take_sql() -> String {
    let n = "(CASE WHEN f.next_attempt_at <= $2 - $6 THEN 1 ELSE f.failures + 1 END)";
    format!(
        "INSERT INTO app_password_failures AS f (username_key, failures, next_attempt_at) \
         VALUES ($1, 1, $2 + {first}) \
         ON CONFLICT (username_key) DO UPDATE SET failures = {n}, next_attempt_at = $2 + {next} \
         WHERE f.failures <= $3 OR f.next_attempt_at <= $2 OR f.next_attempt_at > $2 + $5 \
         RETURNING failures",
        first = delay_sql("1"),
        next = delay_sql(n),
    )
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Takes an attempt at the password of `username_key` at `now` (Unix milliseconds): `true` if
/// it may be judged (and it is counted as a failure until [`reset`] says otherwise), `false` if
/// the account must wait.
pub(crate) async fn take(
    store: &Store,
    backoff: &PasswordBackoff,
    username_key: &str,
    now: i64,
) -> Result<bool, otp_core::Error> {
    let query = take_sql();
    let taken: Option<i64> = on_connection!(store, std::convert::identity, |c| {
        sqlx::query_scalar(&query)
            .bind(username_key)
            .bind(now)
            .bind(i64::from(backoff.free_failures))
            .bind(millis(backoff.delay))
            .bind(millis(backoff.max_delay))
            .bind(millis(FORGET_AFTER))
            .fetch_optional(c)
            .await
            .map_err(otp_core::Error::from)
    })?;
    Ok(taken.is_some())
}

/// Forgets the failures of `username_key`: its password was right.
pub(crate) async fn reset(store: &Store, username_key: &str) -> Result<(), otp_core::Error> {
    on_connection!(store, std::convert::identity, |c| {
        sqlx::query("DELETE FROM app_password_failures WHERE username_key = $1")
            .bind(username_key)
            .execute(c)
            .await
            .map(drop)
            .map_err(otp_core::Error::from)
    })
}

/// Deletes the rows of accounts left alone for [`FORGET_AFTER`] at `now` (Unix milliseconds),
/// and those absurdly far ahead of it; returns how many.
///
/// # Errors
///
/// A database failure.
pub async fn forget(
    store: &Store,
    backoff: &PasswordBackoff,
    now: i64,
) -> Result<u64, otp_core::Error> {
    on_connection!(store, std::convert::identity, |c| {
        sqlx::query(
            "DELETE FROM app_password_failures \
             WHERE next_attempt_at <= $1 - $2 OR next_attempt_at > $1 + $3",
        )
        .bind(now)
        .bind(millis(FORGET_AFTER))
        .bind(millis(backoff.max_delay))
        .execute(c)
        .await
        .map(|done| done.rows_affected())
        .map_err(otp_core::Error::from)
    })
}

#[cfg(test)]
mod tests {
    use otp_test_support::TestDb;

    use super::*;

    const SECOND: i64 = 1000;
    const T0: i64 = 1_800_000_000 * SECOND;

    fn backoff() -> PasswordBackoff {
        PasswordBackoff {
            free_failures: 3,
            delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
        }
    }

    async fn store(db: &TestDb) -> Store {
        let store = Store::connect(&db.url).await.unwrap();
        store.apply_migrations(MIGRATIONS).await.unwrap();
        store
    }

    #[test]
    fn the_delay_doubles_after_the_free_failures_up_to_the_cap() {
        let b = backoff();
        let secs: Vec<u64> = (0..=12).map(|n| b.delay_after(n).as_secs()).collect();
        assert_eq!(secs, [0, 0, 0, 0, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(b.delay_after(u32::MAX), b.max_delay);
        let off = PasswordBackoff {
            delay: Duration::ZERO,
            ..b
        };
        assert_eq!(off.delay_after(100), Duration::ZERO);
    }

    /// The statement waits as [`PasswordBackoff::delay_after`] says, refused attempts change
    /// nothing, and each username is on its own.
    async fn attempts_wait_as_the_back_off_says(db: TestDb) {
        let store = store(&db).await;
        let b = backoff();
        let mut now = T0;
        for failures in 1..=12u32 {
            assert!(take(&store, &b, "alice", now).await.unwrap(), "{failures}");
            let wait = millis(b.delay_after(failures));
            if wait > 0 {
                assert!(!take(&store, &b, "alice", now).await.unwrap(), "{failures}");
                assert!(!take(&store, &b, "alice", now + wait - 1).await.unwrap());
            }
            now += wait;
        }
        assert!(take(&store, &b, "bob", now).await.unwrap(), "another name");
        // No back-off: no wait, however many failures (past the 32 doublings too).
        let off = PasswordBackoff {
            delay: Duration::ZERO,
            ..b
        };
        for failures in 1..=40 {
            assert!(
                take(&store, &off, "olive", now).await.unwrap(),
                "{failures}"
            );
        }
        // Within the free failures, an attempt stamped before the last one is not refused (two
        // requests at once, whose statements ran in the other order).
        assert!(
            take(&store, &b, "bob", now - 1).await.unwrap(),
            "out of order"
        );
        // A right password resets.
        reset(&store, "alice").await.unwrap();
        for _ in 0..3 {
            assert!(take(&store, &b, "alice", now).await.unwrap());
        }
        assert!(take(&store, &b, "alice", now).await.unwrap());
        assert!(!take(&store, &b, "alice", now).await.unwrap());
        // A day of quiet starts again from nothing.
        let later = now + millis(FORGET_AFTER) + 2 * SECOND;
        for _ in 0..4 {
            assert!(take(&store, &b, "alice", later).await.unwrap());
        }
        assert!(!take(&store, &b, "alice", later).await.unwrap());
        store.close().await;
    }

    /// Two stores on one database (two servers), many attempts at once: one is judged per wait.
    async fn concurrent_attempts_through_two_servers_are_judged_once_per_wait(db: TestDb) {
        let first = store(&db).await;
        let second = store(&db).await;
        let b = backoff();
        let tasks: Vec<_> = (0..30)
            .map(|i| {
                let store = if i % 2 == 0 { &first } else { &second }.clone();
                tokio::spawn(async move { take(&store, &b, "carol", T0).await.unwrap() })
            })
            .collect();
        let mut judged = 0;
        for task in tasks {
            judged += usize::from(task.await.unwrap());
        }
        assert_eq!(judged, 4, "the free failures and one more");
        first.close().await;
        second.close().await;
    }

    /// A clock far ahead left an absurd wait: it counts as past. Quiet rows are forgotten.
    async fn absurd_and_quiet_rows_are_forgotten(db: TestDb) {
        let store = store(&db).await;
        let b = backoff();
        let year = 365 * 24 * 3600 * SECOND;
        for _ in 0..5 {
            take(&store, &b, "dave", T0 + year).await.unwrap();
        }
        assert!(take(&store, &b, "dave", T0).await.unwrap(), "absurd: past");
        take(&store, &b, "erin", T0).await.unwrap();
        assert_eq!(forget(&store, &b, T0).await.unwrap(), 0);
        let later = T0 + millis(FORGET_AFTER) + 60 * SECOND;
        assert_eq!(forget(&store, &b, later).await.unwrap(), 2);
        store.close().await;
    }

    otp_test_support::store_tests!(
        attempts_wait_as_the_back_off_says,
        concurrent_attempts_through_two_servers_are_judged_once_per_wait,
        absurd_and_quiet_rows_are_forgotten,
    );
}
