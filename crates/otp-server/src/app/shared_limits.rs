//! The rate limit's budgets in the database ([`SharedBuckets`]), so that every server on one
//! database counts a client's requests together: with three servers behind a load balancer, a
//! client gets the budget once, not three times.
//!
//! Each client and class has one row holding a single time, the *theoretical arrival time*
//! (`tat`) of the generic cell rate algorithm, which behaves exactly as the in-memory token
//! bucket does: a budget of `per_minute` requests at once, coming back at `per_minute` a
//! minute. A request is allowed when, after adding one request's interval to `tat` (or to now,
//! if `tat` is past), `tat` is at most one minute's budget ahead of now. The check and the
//! update are one `INSERT … ON CONFLICT DO UPDATE … WHERE` statement, atomic on both
//! databases; a refused request changes nothing, and reads the row once more to say how long
//! to wait.
//!
//! Times are each server's wall clock, in microseconds. Servers whose clocks differ by less
//! than a minute disagree on a budget by that difference's worth of requests; a `tat` more
//! than two budgets ahead of a server's now can only come from a clock that was (or is) wrong,
//! and counts as past: a server started with its clock years ahead cannot lock clients out
//! for years. A row whose `tat` has passed holds a full budget, the same as no row:
//! [`SharedBuckets::forget`] deletes those, and the absurd ones, with the expired sessions.

use otp_core::{Migration, Store, on_connection};

/// The table of the buckets (its own component, so that it does not depend on the order of
/// the app's other migrations). On PostgreSQL it is `UNLOGGED`: its changes skip the
/// write-ahead log, so that a limited request costs no second durable commit; a crash of the
/// database server empties it (every client's budget is full again), which a rate limit can
/// afford, and standbys do not have it.
const MIGRATIONS: &[Migration] = &[Migration {
    component: "otp-server-rate-limits",
    version: 1,
    description: "rate-limit buckets shared by the servers of one database",
    sqlite: "
        CREATE TABLE app_rate_limits (
            client TEXT NOT NULL,
            class TEXT NOT NULL,
            tat BIGINT NOT NULL,
            PRIMARY KEY (client, class)
        )",
    postgres: "
        CREATE UNLOGGED TABLE app_rate_limits (
            client TEXT NOT NULL,
            class TEXT NOT NULL,
            tat BIGINT NOT NULL,
            PRIMARY KEY (client, class)
        )",
}];

/// Takes one request of the budget, or nothing: `$1` client, `$2` class, `$3` now, `$4` one
/// request's interval, `$5` the whole budget's (all in microseconds). A row comes back when
/// the request is allowed. `start` is where the new request's interval begins: the stored
/// `tat`, or now if that is past or absurdly far ahead (more than two budgets).
const TAKE: &str = "INSERT INTO app_rate_limits AS bucket (client, class, tat) \
     VALUES ($1, $2, $3 + $4) \
     ON CONFLICT (client, class) DO UPDATE SET tat = \
         (CASE WHEN bucket.tat > $3 AND bucket.tat <= $3 + 2 * $5 THEN bucket.tat ELSE $3 END) + $4 \
     WHERE (CASE WHEN bucket.tat > $3 AND bucket.tat <= $3 + 2 * $5 THEN bucket.tat ELSE $3 END) \
         + $4 - $3 <= $5 \
     RETURNING tat";
const READ: &str = "SELECT tat FROM app_rate_limits WHERE client = $1 AND class = $2";
/// Deletes the buckets that have refilled by `$1`, and those absurdly far ahead of it (`$2`).
const FORGET: &str = "DELETE FROM app_rate_limits WHERE tat <= $1 OR tat > $2";

/// One request's interval and the whole budget's, in microseconds, for `per_minute` (at least
/// 1). The budget is exactly `per_minute` intervals, so that exactly `per_minute` requests fit
/// in it whatever the rounding of the interval.
fn intervals(per_minute: u32) -> (i64, i64) {
    let per_minute = i64::from(per_minute.max(1));
    let interval = 60_000_000 / per_minute;
    (interval, interval * per_minute)
}

/// The wall clock in microseconds since the Unix epoch.
pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
        })
}

/// What [`SharedBuckets::take`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// The request fits in the budget, and was counted.
    Allowed,
    /// The budget is spent: the next request fits after this many microseconds.
    Refused { wait_micros: i64 },
}

/// Rate-limit buckets kept in the database.
#[derive(Debug, Clone)]
pub(crate) struct SharedBuckets {
    store: Store,
}

impl SharedBuckets {
    /// The buckets in `store`'s database. Call [`SharedBuckets::migrate`] once at start.
    pub(crate) fn new(store: Store) -> Self {
        Self { store }
    }

    /// Creates the table if it is not there yet.
    pub(crate) async fn migrate(&self) -> Result<(), otp_core::Error> {
        self.store.apply_migrations(MIGRATIONS).await
    }

    /// Takes one request from `client`'s budget of `class` at `now_micros` (wall clock).
    pub(crate) async fn take(
        &self,
        client: &str,
        class: &str,
        per_minute: u32,
        now_micros: i64,
    ) -> Result<Taken, otp_core::Error> {
        let (interval, budget) = intervals(per_minute);
        let id = std::convert::identity;
        let taken: Option<i64> = on_connection!(self.store, id, |c| {
            sqlx::query_scalar(TAKE)
                .bind(client)
                .bind(class)
                .bind(now_micros)
                .bind(interval)
                .bind(budget)
                .fetch_optional(c)
                .await
                .map_err(otp_core::Error::from)
        })?;
        if taken.is_some() {
            return Ok(Taken::Allowed);
        }
        let tat: Option<i64> = on_connection!(self.store, id, |c| {
            sqlx::query_scalar(READ)
                .bind(client)
                .bind(class)
                .fetch_optional(c)
                .await
                .map_err(otp_core::Error::from)
        })?;
        // The next request fits when `tat + interval - now <= budget`. A row deleted in
        // between (it had refilled) means no wait.
        let wait_micros = tat.map_or(0, |tat| {
            tat.saturating_add(interval)
                .saturating_sub(budget)
                .saturating_sub(now_micros)
        });
        Ok(Taken::Refused {
            wait_micros: wait_micros.max(0),
        })
    }

    /// Deletes the buckets that have refilled by `now_micros` (the same as none) and those
    /// absurdly far ahead of it (see the module's docs); returns how many.
    pub(crate) async fn forget(&self, now_micros: i64) -> Result<u64, otp_core::Error> {
        // Two budgets of the slowest limit (one request a minute).
        let absurd = now_micros.saturating_add(2 * 60_000_000);
        on_connection!(self.store, std::convert::identity, |c| {
            sqlx::query(FORGET)
                .bind(now_micros)
                .bind(absurd)
                .execute(c)
                .await
                .map(|done| done.rows_affected())
                .map_err(otp_core::Error::from)
        })
    }
}

#[cfg(test)]
mod tests {
    use otp_test_support::TestDb;

    use super::*;

    const SECOND: i64 = 1_000_000;
    /// Some time, in microseconds.
    const T0: i64 = 1_800_000_000 * SECOND;

    async fn buckets(db: &TestDb) -> SharedBuckets {
        let buckets = SharedBuckets::new(Store::connect(&db.url).await.unwrap());
        buckets.migrate().await.unwrap();
        buckets
    }

    /// Takes one of six a minute from `client`'s login budget at `now`.
    async fn take(buckets: &SharedBuckets, client: &str, now: i64) -> Taken {
        buckets.take(client, "login", 6, now).await.unwrap()
    }

    /// Spends `client`'s whole login budget (six a minute) at `now`, each request allowed;
    /// returns what one more gets.
    async fn spend(buckets: &SharedBuckets, client: &str, now: i64) -> Taken {
        for attempt in 0..6 {
            assert_eq!(
                take(buckets, client, now).await,
                Taken::Allowed,
                "{client}: attempt {attempt}"
            );
        }
        take(buckets, client, now).await
    }

    fn refused(wait_micros: i64) -> Taken {
        Taken::Refused { wait_micros }
    }

    #[test]
    fn a_budget_is_exactly_per_minute_intervals() {
        assert_eq!(intervals(6), (10 * SECOND, 60 * SECOND));
        assert_eq!(intervals(7), (8_571_428, 59_999_996));
        assert_eq!(intervals(100_000), (600, 60 * SECOND));
        assert_eq!(
            intervals(0),
            (60 * SECOND, 60 * SECOND),
            "at least one a minute"
        );
    }

    /// The same rules as the in-memory bucket: a burst of `per_minute`, then one request per
    /// interval, refused requests changing nothing, each client and class on its own.
    async fn a_client_spends_its_burst_then_one_request_per_interval(db: TestDb) {
        let buckets = buckets(&db).await;
        assert_eq!(spend(&buckets, "192.0.2.1", T0).await, refused(10 * SECOND));
        // Refused attempts do not dig the hole deeper.
        assert_eq!(
            take(&buckets, "192.0.2.1", T0 + SECOND).await,
            refused(9 * SECOND)
        );
        // Another class and another client have their own budgets.
        assert_eq!(
            buckets.take("192.0.2.1", "verify", 6, T0).await.unwrap(),
            Taken::Allowed
        );
        assert_eq!(take(&buckets, "192.0.2.2", T0).await, Taken::Allowed);
        // One interval later, one request, and no more.
        let later = T0 + 10 * SECOND;
        assert_eq!(take(&buckets, "192.0.2.1", later).await, Taken::Allowed);
        assert_eq!(
            take(&buckets, "192.0.2.1", later).await,
            refused(10 * SECOND)
        );
        // A minute of quiet refills the whole budget, and no more than it.
        let refilled = later + 70 * SECOND;
        assert_ne!(spend(&buckets, "192.0.2.1", refilled).await, Taken::Allowed);
    }

    /// Two stores on one database (two servers) share each client's budget, and concurrent
    /// requests never get more than it.
    async fn servers_on_one_database_share_the_budget(db: TestDb) {
        let first = buckets(&db).await;
        let second = buckets(&db).await;
        for attempt in 0..3 {
            assert_eq!(
                take(&first, "192.0.2.1", T0).await,
                Taken::Allowed,
                "{attempt}"
            );
            assert_eq!(
                take(&second, "192.0.2.1", T0).await,
                Taken::Allowed,
                "{attempt}"
            );
        }
        assert_ne!(take(&first, "192.0.2.1", T0).await, Taken::Allowed);
        assert_ne!(take(&second, "192.0.2.1", T0).await, Taken::Allowed);

        // 40 requests at once from one client, through both: exactly the budget is allowed.
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let buckets = if i % 2 == 0 { &first } else { &second }.clone();
                tokio::spawn(async move { buckets.take("192.0.2.9", "login", 10, T0).await })
            })
            .collect();
        let mut allowed = 0;
        for task in tasks {
            if task.await.unwrap().unwrap() == Taken::Allowed {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 10);
    }

    /// A server whose clock ran far ahead left a `tat` that is absurd for the others: it counts
    /// as past, instead of refusing the client until that time comes.
    async fn a_bucket_from_a_clock_far_ahead_counts_as_refilled(db: TestDb) {
        let buckets = buckets(&db).await;
        let year = 365 * 24 * 3600 * SECOND;
        assert_ne!(
            spend(&buckets, "192.0.2.1", T0 + year).await,
            Taken::Allowed
        );
        // The clock is right again.
        assert_eq!(spend(&buckets, "192.0.2.1", T0).await, refused(10 * SECOND));
        // A clock less than a minute ahead still counts: its requests hold.
        assert_ne!(
            spend(&buckets, "192.0.2.2", T0 + 50 * SECOND).await,
            Taken::Allowed
        );
        assert_eq!(take(&buckets, "192.0.2.2", T0).await, refused(60 * SECOND));
    }

    /// Buckets that have refilled are deleted, and absurd ones; the others are kept, with what
    /// they hold.
    async fn refilled_buckets_are_forgotten(db: TestDb) {
        let buckets = buckets(&db).await;
        take(&buckets, "192.0.2.1", T0).await;
        spend(&buckets, "192.0.2.2", T0).await;
        take(&buckets, "192.0.2.3", T0 + 3600 * SECOND).await;
        // 10 s later: the first client's single request has come back, the second's six have
        // not, and the third's is an hour ahead.
        let later = T0 + 10 * SECOND;
        assert_eq!(buckets.forget(later).await.unwrap(), 2);
        assert_eq!(take(&buckets, "192.0.2.2", later).await, Taken::Allowed);
        assert_ne!(take(&buckets, "192.0.2.2", later).await, Taken::Allowed);
        assert_eq!(buckets.forget(later).await.unwrap(), 0);
        assert_eq!(buckets.forget(T0 + 120 * SECOND).await.unwrap(), 1);
    }

    otp_test_support::store_tests!(
        a_client_spends_its_burst_then_one_request_per_interval,
        servers_on_one_database_share_the_budget,
        a_bucket_from_a_clock_far_ahead_counts_as_refilled,
        refilled_buckets_are_forgotten,
    );
}
