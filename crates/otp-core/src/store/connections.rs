//! The connections the store's operations run on: the pools' sizes and timeouts, the reserve
//! of connections kept out of sqlx's pool between operations, and the connection handed to an
//! app's own statements.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Postgres, Sqlite};

use super::{Backend, Store};
use crate::Error;

/// Connections of the SQLite pool: one writer at a time, readers beside it.
pub(super) const SQLITE_CONNECTIONS: u32 = 4;

/// Connections of the PostgreSQL pool.
pub(super) const PG_CONNECTIONS: u32 = 16;

/// A connection of the store's reserve that went unused for this long goes back to sqlx's
/// pool, which checks it (see [`Reserve`]).
const RESERVE_IDLE: Duration = Duration::from_secs(1);

/// How long a SQLite connection waits for another writer before giving up.
pub(super) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A PostgreSQL connection that sat in the pool for this long is checked with a round trip
/// before it is handed out; one used more recently is not. (sqlx's default checks every
/// connection on the way out of the pool, on top of the check it makes on the way back in: a
/// round trip per statement that verifications cannot afford. A connection used a moment ago
/// was checked when it came back.)
pub(super) const PG_CHECK_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// A connection for the statements of one operation (a verification, say), from the store's
/// [`Reserve`] or else from sqlx's pool. [`Conn::finish`] puts it back in the reserve after
/// the operation succeeded; dropped otherwise (an error, a future dropped in the middle of a
/// statement), it goes back to sqlx's pool, which checks it before anyone reuses it.
pub(crate) struct Conn(pub(super) Held);

/// The connection of a [`Conn`], and the reserve it goes back to.
pub(super) enum Held {
    Sqlite(PoolConnection<Sqlite>, Arc<Reserve<Sqlite>>),
    Postgres(PoolConnection<Postgres>, Arc<Reserve<Postgres>>),
}

impl Conn {
    /// The operation succeeded: keeps the connection for the next one.
    pub(crate) fn finish(self) {
        match self.0 {
            Held::Sqlite(pooled, reserve) => reserve.give_back(pooled),
            Held::Postgres(pooled, reserve) => reserve.give_back(pooled),
        }
    }
}

/// A connection of the store for a few statements of an app's own (see
/// [`Store::connection`]): kept out of sqlx's pool between operations, as the store's own
/// verifications are. [`StoreConnection::release`] keeps it for the next operation once the
/// statements succeeded; dropped instead (after an error), it goes back to sqlx's pool, which
/// checks it. Run a transaction as sqlx's own (`sqlx::Connection::begin`), which rolls back
/// when dropped uncommitted, not as a bare `BEGIN`.
pub struct StoreConnection(Conn);

/// The database connection of a [`StoreConnection`], to run statements on.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectionRef<'a> {
    /// SQLite.
    Sqlite(&'a mut sqlx::SqliteConnection),
    /// PostgreSQL.
    Postgres(&'a mut sqlx::PgConnection),
}

/// Runs one statement (or a few) on a connection of `store`'s reserve
/// ([`Store::connection`]), whichever the database: `$c` is bound to the database's own
/// connection type in each arm, so `$body` is compiled once per database, and must be a
/// `Result<_, E>`, where `$err` makes an `E` of an [`Error`]. The connection goes back to the
/// reserve if `$body` succeeded, else to sqlx's pool (which checks it). It expands to an
/// `await` and a `?`, inside an async function returning `Result<_, E>`.
///
/// ```
/// use otp_core::{Error, Store, on_connection};
///
/// async fn answer(store: &Store) -> Result<i64, Error> {
///     on_connection!(store, std::convert::identity, |c| {
///         sqlx::query_scalar("SELECT 6 * 7")
///             .fetch_one(c)
///             .await
///             .map_err(Error::from)
///     })
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let url = format!("sqlite://{}", dir.path().join("app.db").display());
/// let store = Store::connect(&url).await?;
/// assert_eq!(answer(&store).await?, 42);
/// # Ok(())
/// # }
/// ```
#[macro_export]
macro_rules! on_connection {
    ($store:expr, $err:expr, |$c:ident| $body:expr) => {{
        let mut connection = $store.connection().await.map_err($err)?;
        let result = match connection.get() {
            $crate::ConnectionRef::Sqlite($c) => $body,
            $crate::ConnectionRef::Postgres($c) => $body,
            _ => unreachable!("otp-core has two databases"),
        };
        if result.is_ok() {
            connection.release();
        }
        result
    }};
}

impl StoreConnection {
    /// The connection, to run statements on.
    pub fn get(&mut self) -> ConnectionRef<'_> {
        match &mut (self.0).0 {
            Held::Sqlite(pooled, _) => ConnectionRef::Sqlite(&mut *pooled),
            Held::Postgres(pooled, _) => ConnectionRef::Postgres(&mut *pooled),
        }
    }

    /// The statements succeeded and left no transaction open: keeps the connection for the
    /// next operation, without sqlx's check.
    pub fn release(self) {
        self.0.finish();
    }
}

impl fmt::Debug for StoreConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let database = match &(self.0).0 {
            Held::Sqlite(..) => "sqlite",
            Held::Postgres(..) => "postgres",
        };
        f.debug_struct("StoreConnection")
            .field("database", &database)
            .finish()
    }
}

/// Closes a SQLite connection when dropped before `done`: a batch of statements that opened
/// a transaction and did not get to its `COMMIT` (it failed, or its future was dropped) must
/// not leave the transaction open on a connection that goes back to the pool. Closing the
/// connection rolls the transaction back.
pub(super) struct CloseUnlessDone<'a> {
    pub(super) pooled: &'a mut PoolConnection<Sqlite>,
    pub(super) done: bool,
}

impl Drop for CloseUnlessDone<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.pooled.close_on_drop();
        }
    }
}

/// Connections the store keeps checked out of sqlx's pool between its operations, at most
/// `max_idle` (half the pool, so that the app's own queries on [`Store::pool`] always find
/// connections).
///
/// sqlx checks a connection with a round trip (a `Sync` to PostgreSQL, a ping of SQLite's
/// worker thread) every time one goes back to its pool, and goes back through a task of its
/// own: a statement run on the pool costs two round trips and two wake-ups. The store's
/// operations take a connection from here instead and put it back when they succeeded, so a
/// verification costs its statements only. A connection that failed, or whose operation was
/// dropped half-way, goes back to sqlx's pool instead (and is checked there); so does one that
/// sat here unused for [`RESERVE_IDLE`].
pub(super) struct Reserve<DB: sqlx::Database> {
    state: Mutex<ReserveState<DB>>,
    max_idle: usize,
}

struct ReserveState<DB: sqlx::Database> {
    /// Idle connections and since when, the most recently used last.
    idle: Vec<(PoolConnection<DB>, Instant)>,
    /// The store is closing: connections go back to the pool.
    closed: bool,
}

impl<DB: sqlx::Database> Reserve<DB> {
    pub(super) fn new(max_idle: usize) -> Self {
        Self {
            state: Mutex::new(ReserveState {
                idle: Vec::new(),
                closed: false,
            }),
            max_idle,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReserveState<DB>> {
        // The state stays consistent whatever panicked while holding the lock.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used connection, unless it has been idle for too long.
    fn take(&self) -> Option<PoolConnection<DB>> {
        let mut state = self.lock();
        let (pooled, since) = state.idle.pop()?;
        if since.elapsed() < RESERVE_IDLE {
            return Some(pooled);
        }
        // Everything here has been idle at least as long: back to sqlx, outside the lock.
        let stale = std::mem::take(&mut state.idle);
        drop(state);
        drop(pooled);
        drop(stale);
        None
    }

    /// Keeps `pooled` for the next operation, or gives it back to the pool.
    fn give_back(&self, pooled: PoolConnection<DB>) {
        let mut state = self.lock();
        if state.closed || state.idle.len() >= self.max_idle {
            drop(state);
            drop(pooled);
            return;
        }
        state.idle.push((pooled, Instant::now()));
    }

    /// Stops keeping connections and returns those kept, to be dropped in the async runtime.
    pub(super) fn close(&self) -> Vec<PoolConnection<DB>> {
        let mut state = self.lock();
        state.closed = true;
        state.idle.drain(..).map(|(pooled, _)| pooled).collect()
    }
}

impl<DB: sqlx::Database> Drop for Reserve<DB> {
    fn drop(&mut self) {
        // Dropped without `Store::close` (perhaps outside any runtime, where sqlx could not
        // spawn its return to the pool): close the connections directly.
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for (pooled, _) in state.idle.drain(..) {
            drop(pooled.detach());
        }
    }
}

impl<DB: sqlx::Database> fmt::Debug for Reserve<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reserve")
            .field("idle", &self.lock().idle.len())
            .field("max_idle", &self.max_idle)
            .finish()
    }
}

impl Store {
    /// A connection for a few statements of the app's own, from the store's reserve (see
    /// [`StoreConnection`]): cheaper than a statement on [`Store::pool`] when a request runs
    /// one or two statements, since sqlx's pool checks every connection it gets back with a
    /// round trip.
    ///
    /// ```
    /// use otp_core::{ConnectionRef, Store};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let url = format!("sqlite://{}", dir.path().join("app.db").display());
    /// let store = Store::connect(&url).await?;
    /// let mut connection = store.connection().await?;
    /// let answer: i64 = match connection.get() {
    ///     ConnectionRef::Sqlite(c) => sqlx::query_scalar("SELECT 6 * 7").fetch_one(c).await?,
    ///     ConnectionRef::Postgres(c) => sqlx::query_scalar("SELECT 6 * 7").fetch_one(c).await?,
    ///     _ => unreachable!("two databases"),
    /// };
    /// // It worked: keep the connection for the next operation.
    /// connection.release();
    /// assert_eq!(answer, 42);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Database`] if no connection could be had.
    pub async fn connection(&self) -> Result<StoreConnection, Error> {
        Ok(StoreConnection(self.conn().await?))
    }

    /// A connection from the reserve or the pool, for several statements in a row (see
    /// [`Conn`]).
    pub(crate) async fn conn(&self) -> Result<Conn, Error> {
        Ok(match &self.backend {
            Backend::Sqlite(pool, reserve) => {
                let pooled = match reserve.take() {
                    Some(pooled) => pooled,
                    None => pool.acquire().await?,
                };
                Conn(Held::Sqlite(pooled, Arc::clone(reserve)))
            }
            Backend::Postgres(pool, reserve) => {
                let pooled = match reserve.take() {
                    Some(pooled) => pooled,
                    None => pool.acquire().await?,
                };
                Conn(Held::Postgres(pooled, Arc::clone(reserve)))
            }
        })
    }
}
