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
//! Times are wall-clock microseconds: servers whose clocks differ by `d` disagree on a budget
//! by `d`'s worth of requests at most. A row whose `tat` has passed holds a full budget, the
//! same as no row: [`SharedBuckets::forget_refilled`] deletes those (with the expired
//! sessions).

use otp_core::{ConnectionRef, Migration, Store};

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
/// the request is allowed.
const TAKE_SQLITE: &str = "INSERT INTO app_rate_limits AS bucket (client, class, tat) \
     VALUES ($1, $2, $3 + $4) \
     ON CONFLICT (client, class) DO UPDATE SET tat = MAX(bucket.tat, $3) + $4 \
     WHERE MAX(bucket.tat, $3) + $4 - $3 <= $5 \
     RETURNING tat";
const TAKE_POSTGRES: &str = "INSERT INTO app_rate_limits AS bucket (client, class, tat) \
     VALUES ($1, $2, $3 + $4) \
     ON CONFLICT (client, class) DO UPDATE SET tat = GREATEST(bucket.tat, $3) + $4 \
     WHERE GREATEST(bucket.tat, $3) + $4 - $3 <= $5 \
     RETURNING tat";
const READ: &str = "SELECT tat FROM app_rate_limits WHERE client = $1 AND class = $2";
const FORGET: &str = "DELETE FROM app_rate_limits WHERE tat <= $1";

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

    /// Takes one request from `client`'s budget of `class` at `now_micros` (wall clock); or,
    /// when it is spent, says how many microseconds until the next request is allowed.
    pub(crate) async fn take(
        &self,
        client: &str,
        class: &str,
        per_minute: u32,
        now_micros: i64,
    ) -> Result<Result<(), i64>, otp_core::Error> {
        let (interval, budget) = intervals(per_minute);
        let mut connection = self.store.connection().await?;
        let taken: Option<i64> = match connection.get() {
            ConnectionRef::Sqlite(c) => {
                sqlx::query_scalar(TAKE_SQLITE)
                    .bind(client)
                    .bind(class)
                    .bind(now_micros)
                    .bind(interval)
                    .bind(budget)
                    .fetch_optional(c)
                    .await?
            }
            ConnectionRef::Postgres(c) => {
                sqlx::query_scalar(TAKE_POSTGRES)
                    .bind(client)
                    .bind(class)
                    .bind(now_micros)
                    .bind(interval)
                    .bind(budget)
                    .fetch_optional(c)
                    .await?
            }
            _ => unreachable!("otp-core has two databases"),
        };
        let outcome = if taken.is_some() {
            Ok(())
        } else {
            let tat: Option<i64> = match connection.get() {
                ConnectionRef::Sqlite(c) => {
                    sqlx::query_scalar(READ)
                        .bind(client)
                        .bind(class)
                        .fetch_optional(c)
                        .await?
                }
                ConnectionRef::Postgres(c) => {
                    sqlx::query_scalar(READ)
                        .bind(client)
                        .bind(class)
                        .fetch_optional(c)
                        .await?
                }
                _ => unreachable!("otp-core has two databases"),
            };
            // The next request fits when `tat + interval - now <= budget`. A row deleted in
            // between (it had refilled) means no wait.
            Err(tat
                .map_or(0, |tat| tat + interval - budget - now_micros)
                .max(0))
        };
        connection.release();
        Ok(outcome)
    }

    /// Deletes the buckets that have refilled by `now_micros` (the same as none); returns how
    /// many.
    pub(crate) async fn forget_refilled(&self, now_micros: i64) -> Result<u64, otp_core::Error> {
        let mut connection = self.store.connection().await?;
        let deleted = match connection.get() {
            ConnectionRef::Sqlite(c) => {
                let done = sqlx::query(FORGET).bind(now_micros).execute(c).await?;
                done.rows_affected()
            }
            ConnectionRef::Postgres(c) => {
                let done = sqlx::query(FORGET).bind(now_micros).execute(c).await?;
                done.rows_affected()
            }
            _ => unreachable!("otp-core has two databases"),
        };
        connection.release();
        Ok(deleted)
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
        for attempt in 0..6 {
            assert_eq!(
                buckets.take("192.0.2.1", "login", 6, T0).await.unwrap(),
                Ok(()),
                "attempt {attempt}"
            );
        }
        assert_eq!(
            buckets.take("192.0.2.1", "login", 6, T0).await.unwrap(),
            Err(10 * SECOND)
        );
        // Refused attempts do not dig the hole deeper.
        assert_eq!(
            buckets
                .take("192.0.2.1", "login", 6, T0 + SECOND)
                .await
                .unwrap(),
            Err(9 * SECOND)
        );
        // Another class and another client have their own budgets.
        assert_eq!(
            buckets.take("192.0.2.1", "verify", 6, T0).await.unwrap(),
            Ok(())
        );
        assert_eq!(
            buckets.take("192.0.2.2", "login", 6, T0).await.unwrap(),
            Ok(())
        );
        // One interval later, one request, and no more.
        let later = T0 + 10 * SECOND;
        assert_eq!(
            buckets.take("192.0.2.1", "login", 6, later).await.unwrap(),
            Ok(())
        );
        assert_eq!(
            buckets.take("192.0.2.1", "login", 6, later).await.unwrap(),
            Err(10 * SECOND)
        );
        // A minute of quiet refills the whole budget, and no more than it.
        let refilled = later + 70 * SECOND;
        for attempt in 0..6 {
            assert_eq!(
                buckets
                    .take("192.0.2.1", "login", 6, refilled)
                    .await
                    .unwrap(),
                Ok(()),
                "attempt {attempt} after a minute"
            );
        }
        assert!(
            buckets
                .take("192.0.2.1", "login", 6, refilled)
                .await
                .unwrap()
                .is_err()
        );
    }

    /// Two stores on one database (two servers) share each client's budget, and concurrent
    /// requests never get more than it.
    async fn servers_on_one_database_share_the_budget(db: TestDb) {
        let first = buckets(&db).await;
        let second = buckets(&db).await;
        for attempt in 0..3 {
            assert_eq!(
                first.take("192.0.2.1", "verify", 6, T0).await.unwrap(),
                Ok(()),
                "{attempt}"
            );
            assert_eq!(
                second.take("192.0.2.1", "verify", 6, T0).await.unwrap(),
                Ok(()),
                "{attempt}"
            );
        }
        assert!(
            first
                .take("192.0.2.1", "verify", 6, T0)
                .await
                .unwrap()
                .is_err()
        );
        assert!(
            second
                .take("192.0.2.1", "verify", 6, T0)
                .await
                .unwrap()
                .is_err()
        );

        // 40 requests at once from one client, through both: exactly the budget is allowed.
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let buckets = if i % 2 == 0 { &first } else { &second }.clone();
                tokio::spawn(async move { buckets.take("192.0.2.9", "login", 10, T0).await })
            })
            .collect();
        let mut allowed = 0;
        for task in tasks {
            if task.await.unwrap().unwrap().is_ok() {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 10);
    }

    /// Buckets that have refilled are deleted; the others are kept, with what they hold.
    async fn refilled_buckets_are_forgotten(db: TestDb) {
        let buckets = buckets(&db).await;
        buckets
            .take("192.0.2.1", "login", 6, T0)
            .await
            .unwrap()
            .unwrap();
        for _ in 0..6 {
            buckets
                .take("192.0.2.2", "login", 6, T0)
                .await
                .unwrap()
                .unwrap();
        }
        // 10 s later: the first client's single request has come back, the second's six have
        // not.
        assert_eq!(buckets.forget_refilled(T0 + 10 * SECOND).await.unwrap(), 1);
        assert!(
            buckets
                .take("192.0.2.2", "login", 6, T0 + 10 * SECOND)
                .await
                .unwrap()
                .is_ok()
        );
        assert!(
            buckets
                .take("192.0.2.2", "login", 6, T0 + 10 * SECOND)
                .await
                .unwrap()
                .is_err()
        );
        assert_eq!(buckets.forget_refilled(T0 + 10 * SECOND).await.unwrap(), 0);
        assert_eq!(buckets.forget_refilled(T0 + 120 * SECOND).await.unwrap(), 1);
    }

    otp_test_support::store_tests!(
        a_client_spends_its_burst_then_one_request_per_interval,
        servers_on_one_database_share_the_budget,
        refilled_buckets_are_forgotten,
    );
}
