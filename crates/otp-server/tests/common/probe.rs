//! Reads the test database directly (with sqlx, not through the code under test), for what no
//! command shows: the account failure counts, the rows a request must not have changed, and
//! SQLite's own consistency check.

use sqlx::{ColumnIndex, Connection, Decode, Row, SqliteConnection, Type, postgres::PgConnection};

use super::TestDb;

enum Conn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// A connection to a test database, with a runtime of its own.
pub(crate) struct Probe {
    runtime: tokio::runtime::Runtime,
    conn: Option<Conn>,
}

/// Rows as text (`NULL` as `None`).
pub(crate) type Rows = Vec<Vec<Option<String>>>;

/// What the hostile requests must leave as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Every column of every device: state, throttling, last use, version.
    pub(crate) devices: Rows,
    /// The account failure counts.
    pub(crate) accounts: Rows,
    /// The sessions' ids and data (not their expiry, which each request moves).
    pub(crate) sessions: Rows,
    /// The users.
    pub(crate) users: Rows,
}

impl Probe {
    /// Connects to the database of `db`, which must exist (a command or a server made it).
    #[track_caller]
    pub(crate) fn open(db: &TestDb) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let conn = runtime.block_on(async {
            if db.is_postgres() {
                Conn::Postgres(
                    PgConnection::connect(&db.url)
                        .await
                        .unwrap_or_else(|err| panic!("connect to {}: {err}", db.url)),
                )
            } else {
                Conn::Sqlite(
                    SqliteConnection::connect(&db.url)
                        .await
                        .unwrap_or_else(|err| panic!("open {}: {err}", db.url)),
                )
            }
        });
        Self {
            runtime,
            conn: Some(conn),
        }
    }

    /// Runs `sql`, whose columns must all be text (cast them), and returns every row.
    #[track_caller]
    pub(crate) fn rows(&mut self, sql: &str) -> Rows {
        let conn = self.conn.as_mut().expect("open");
        let rows = self.runtime.block_on(async {
            match conn {
                Conn::Sqlite(conn) => as_text(sqlx::query(sql).fetch_all(conn).await),
                Conn::Postgres(conn) => as_text(sqlx::query(sql).fetch_all(conn).await),
            }
        });
        rows.unwrap_or_else(|err| panic!("{sql}: {err}"))
    }

    /// The consecutive failures of the account `user_key` (0 without a row).
    #[track_caller]
    pub(crate) fn account_failures(&mut self, user_key: &str) -> u64 {
        assert!(
            user_key.chars().all(|c| c.is_ascii_digit()),
            "a numeric key: {user_key}"
        );
        let rows = self.rows(&format!(
            "SELECT CAST(consecutive_failures AS TEXT) FROM otp_accounts \
             WHERE user_key = '{user_key}'"
        ));
        rows.first()
            .and_then(|row| row[0].as_deref())
            .map_or(0, |n| n.parse().expect("a count"))
    }

    /// `PRAGMA integrity_check` on SQLite (`"ok"` when all is well); `None` on PostgreSQL.
    #[track_caller]
    pub(crate) fn integrity_check(&mut self) -> Option<String> {
        match self.conn {
            Some(Conn::Sqlite(_)) => {
                let rows = self.rows("PRAGMA integrity_check");
                Some(
                    rows.iter()
                        .filter_map(|row| row[0].clone())
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            }
            _ => None,
        }
    }

    /// The rows that hostile requests must not change.
    #[track_caller]
    pub(crate) fn snapshot(&mut self) -> Snapshot {
        Snapshot {
            devices: self.rows(
                "SELECT CAST(id AS TEXT), user_key, kind, name, CAST(confirmed AS TEXT), \
                 CAST(last_used_at AS TEXT), CAST(throttle_failures AS TEXT), \
                 CAST(throttle_failed_at AS TEXT), CAST(last_challenge_at AS TEXT), state, \
                 CAST(version AS TEXT) FROM otp_devices ORDER BY id",
            ),
            accounts: self.rows(
                "SELECT user_key, CAST(consecutive_failures AS TEXT) FROM otp_accounts \
                 ORDER BY user_key",
            ),
            sessions: self.rows("SELECT id_hash, data FROM otp_sessions ORDER BY id_hash"),
            users: self.rows(
                "SELECT CAST(id AS TEXT), username, password_hash, CAST(is_staff AS TEXT) \
                 FROM app_users ORDER BY id",
            ),
        }
    }
}

/// Every column of every row as text.
fn as_text<R>(rows: Result<Vec<R>, sqlx::Error>) -> Result<Rows, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(rows?
        .iter()
        .map(|row| (0..row.len()).map(|i| row.get(i)).collect())
        .collect())
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.runtime.block_on(async {
                let _ = match conn {
                    Conn::Sqlite(conn) => conn.close().await,
                    Conn::Postgres(conn) => conn.close().await,
                };
            });
        }
    }
}
