//! The SQL store: SQLite (embedded, the default) and PostgreSQL, through sqlx.
//!
//! The store owns its schema: migrations are embedded in this crate and recorded in its own
//! table, `otp_schema_migrations`. Every state change of a device is one conditional UPDATE on
//! the row's version (compare-and-set): no row lock is held while a token is checked, and a
//! token is accepted at most once across threads, processes and servers. A verification's write
//! claims its attempt of the account's failure budget in the same statement (PostgreSQL) or
//! transaction (SQLite) as that UPDATE ([`Store::claim_and_set`]).
//!
//! Verifications are one read and one write, on one connection kept out of sqlx's pool between
//! operations ([`Conn`], [`Reserve`]): sqlx checks a connection with a round trip each time it
//! returns to its pool, which cost more than the statements themselves.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};

use crate::Error;

// The submodules use these two macros: they are defined before the submodules are declared.

/// Runs the same statement on whichever pool the store has. `$pool` is bound to the pool in
/// each arm, so the body is compiled once per database.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite($pool, _) => $body,
            $crate::store::Backend::Postgres($pool, _) => $body,
        }
    };
}

/// Runs the same statement on whichever connection `$conn` (a `&mut Conn`) holds. `$c` is a
/// `&mut` to the database's own connection type in each arm.
macro_rules! on_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match &mut $conn.0 {
            $crate::store::connections::Held::Sqlite(pooled, _) => {
                let $c: &mut sqlx::SqliteConnection = &mut *pooled;
                $body
            }
            $crate::store::connections::Held::Postgres(pooled, _) => {
                let $c: &mut sqlx::PgConnection = &mut *pooled;
                $body
            }
        }
    };
}

mod accounts;
mod challenges;
mod connections;
mod devices;
mod migrations;
mod url;

pub(crate) use challenges::Allowance;
pub(crate) use connections::Conn;
pub use connections::{ConnectionRef, StoreConnection};
use connections::{
    PG_CHECK_IF_IDLE_FOR, PG_CONNECTIONS, Reserve, SQLITE_BUSY_TIMEOUT, SQLITE_CONNECTIONS,
};
pub(crate) use devices::{ClaimedWrite, DeviceUpdate, NewDevice};
pub use migrations::Migration;
use url::create_private_file;
pub use url::{DatabaseUrl, files_open_to_others};

/// The store's connection pool, for an app's own queries.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Pool<'a> {
    /// SQLite.
    Sqlite(&'a SqlitePool),
    /// PostgreSQL.
    Postgres(&'a PgPool),
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqlitePool, Arc<Reserve<Sqlite>>),
    Postgres(PgPool, Arc<Reserve<Postgres>>),
}

/// A connection pool to the database that holds devices and accounts.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// SQLite takes one writer at a time, and one that finds the database locked sleeps
    /// (1 ms, then 2, 5, ...) before it tries again. The store's own batches of writes take
    /// turns here instead, in this process, so they never sleep for each other.
    sqlite_writes: Arc<tokio::sync::Mutex<()>>,
}

/// Switches the SQLite file to WAL mode, which the file keeps, on one connection before the pool
/// opens. Two processes switching a new file at once can deadlock on its locks, and SQLite then
/// fails one of them at once (`SQLITE_BUSY`) instead of calling the busy handler: this waits and
/// tries again, within the busy timeout.
async fn switch_to_wal(options: &SqliteConnectOptions) -> Result<(), Error> {
    use sqlx::{ConnectOptions, Connection};
    let deadline = Instant::now() + SQLITE_BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(2);
    loop {
        let attempt = async {
            let mut conn = options.connect().await?;
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
                .fetch_one(&mut conn)
                .await?;
            conn.close().await?;
            Ok::<_, sqlx::Error>(mode)
        }
        .await;
        match attempt {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                return Err(Error::Database(format!(
                    "SQLite cannot use WAL mode for this file (it stays in {mode} mode)"
                )));
            }
            Err(err) if is_sqlite_busy(&err) && Instant::now() < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Whether SQLite refused for a lock another connection holds (`SQLITE_BUSY` and its extended
/// codes).
fn is_sqlite_busy(err: &sqlx::Error) -> bool {
    const SQLITE_BUSY: i64 = 5;
    err.as_database_error()
        .and_then(|db| db.code())
        .and_then(|code| code.parse::<i64>().ok())
        .is_some_and(|code| code & 0xff == SQLITE_BUSY)
}

impl Store {
    /// Connects to the database at `url` (see [`DatabaseUrl`]). A SQLite file is created on
    /// first use and runs in WAL mode with `synchronous=NORMAL` and a 30-second busy timeout, so
    /// that concurrent processes wait for each other instead of failing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidDatabaseUrl`] or [`Error::Database`], also for a SQLite file that cannot
    /// be put in WAL mode (a file system without the shared memory WAL needs, say).
    pub async fn connect(url: &str) -> Result<Self, Error> {
        match url.parse::<DatabaseUrl>()? {
            DatabaseUrl::Sqlite(path) => Self::connect_sqlite(&path).await,
            DatabaseUrl::Postgres(url) => {
                let options = PgConnectOptions::from_str(&url)
                    .map_err(|_| Error::InvalidDatabaseUrl("the PostgreSQL URL is malformed"))?;
                let pool = PgPoolOptions::new()
                    .max_connections(PG_CONNECTIONS)
                    .acquire_timeout(Duration::from_secs(30))
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for >= PG_CHECK_IF_IDLE_FOR {
                                // An error closes this connection and the pool tries another.
                                sqlx::Connection::ping(conn).await?;
                            }
                            Ok(true)
                        })
                    })
                    .connect_with(options)
                    .await?;
                Ok(Self {
                    backend: Backend::Postgres(
                        pool,
                        Arc::new(Reserve::new(PG_CONNECTIONS as usize / 2)),
                    ),
                    sqlite_writes: Arc::default(),
                })
            }
        }
    }

    async fn connect_sqlite(path: &Path) -> Result<Self, Error> {
        create_private_file(path);
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true);
        switch_to_wal(&options).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(SQLITE_CONNECTIONS)
            .acquire_timeout(SQLITE_BUSY_TIMEOUT)
            // A SQLite connection lives in this process and cannot break while idle: no
            // round trip to its worker thread before each use (sqlx still checks it on the
            // way back into the pool).
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Ok(Self {
            backend: Backend::Sqlite(
                pool,
                Arc::new(Reserve::new(SQLITE_CONNECTIONS as usize / 2)),
            ),
            sqlite_writes: Arc::default(),
        })
    }

    /// Whether the store is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(..))
    }

    /// The connection pool, for an app's own tables in the same database.
    pub fn pool(&self) -> Pool<'_> {
        match &self.backend {
            Backend::Sqlite(pool, _) => Pool::Sqlite(pool),
            Backend::Postgres(pool, _) => Pool::Postgres(pool),
        }
    }

    /// Closes the pool, waiting for connections to finish (checkpoints SQLite's WAL).
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(pool, reserve) => {
                // The pool waits for every connection checked out, the reserve's too.
                let closed = pool.close();
                drop(reserve.close());
                closed.await;
            }
            Backend::Postgres(pool, reserve) => {
                let closed = pool.close();
                drop(reserve.close());
                closed.await;
            }
        }
    }
}
