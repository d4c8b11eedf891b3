//! [`SqlSessionStore`]: tower-sessions' sessions in the framework's own database (SQLite or
//! PostgreSQL), so that several app servers behind a load balancer share them.
//!
//! The cookie's value never reaches the database: a row is keyed by the SHA-256 of it. A copy
//! of the table (a backup, a replica, an SQL injection elsewhere in the app) holds no session
//! anyone can present. The id is 128 random bits, so a plain hash is enough: there is nothing
//! to guess that a key would protect.

use async_trait::async_trait;
use otp_core::{Clock, Migration, Store, SystemClock, on_connection};
use sha2::{Digest, Sha256};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};

use crate::USER_KEY_SESSION_KEY;

const MIGRATIONS: &[Migration] = &[Migration {
    component: "otp-axum",
    version: 1,
    description: "sessions",
    sqlite: "CREATE TABLE otp_sessions (
            id TEXT PRIMARY KEY, data TEXT NOT NULL, expires_at BIGINT NOT NULL, user_key TEXT);
        CREATE INDEX otp_sessions_expires_at ON otp_sessions (expires_at);
        CREATE INDEX otp_sessions_user_key ON otp_sessions (user_key)",
    postgres: "CREATE TABLE otp_sessions (
            id TEXT PRIMARY KEY, data TEXT NOT NULL, expires_at BIGINT NOT NULL, user_key TEXT);
        CREATE INDEX otp_sessions_expires_at ON otp_sessions (expires_at);
        CREATE INDEX otp_sessions_user_key ON otp_sessions (user_key)",
}, Migration {
    component: "otp-axum",
    version: 2,
    description: "sessions keyed by a hash of the cookie (existing sessions end)",
    sqlite: "DROP TABLE otp_sessions;
        CREATE TABLE otp_sessions (
            id_hash TEXT PRIMARY KEY, data TEXT NOT NULL, expires_at BIGINT NOT NULL, user_key TEXT);
        CREATE INDEX otp_sessions_expires_at ON otp_sessions (expires_at);
        CREATE INDEX otp_sessions_user_key ON otp_sessions (user_key)",
    postgres: "DROP TABLE otp_sessions;
        CREATE TABLE otp_sessions (
            id_hash TEXT PRIMARY KEY, data TEXT NOT NULL, expires_at BIGINT NOT NULL, user_key TEXT);
        CREATE INDEX otp_sessions_expires_at ON otp_sessions (expires_at);
        CREATE INDEX otp_sessions_user_key ON otp_sessions (user_key)",
}];

/// What the database keeps of a session id: the SHA-256 of the cookie's value, in hex.
fn id_hash(id: &Id) -> String {
    Sha256::digest(id.to_string().as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Sessions in the `otp_sessions` table of the framework's database. Each row keeps a hash of
/// the session id (never the id), the session's data as JSON, its expiry, and the key of the
/// user logged in through [`SessionAccounts`](crate::SessionAccounts), so that all of a user's
/// sessions can be ended at once (after a password change, say).
///
/// A save only updates a session that is there: a session deleted while one of its requests
/// was in flight (ended by a password change, say) stays deleted.
#[derive(Debug, Clone)]
pub struct SqlSessionStore {
    store: Store,
}

fn backend(err: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(err.to_string())
}

fn now_secs() -> i64 {
    SystemClock.now().unix_secs()
}

impl SqlSessionStore {
    /// A session store in `store`'s database. Call [`SqlSessionStore::migrate`] once at start.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Creates the sessions table if it is not there yet.
    ///
    /// # Errors
    ///
    /// [`otp_core::Error::Database`].
    pub async fn migrate(&self) -> Result<(), otp_core::Error> {
        self.store.apply_migrations(MIGRATIONS).await
    }

    /// Ends every session of `user_key` but `except` (the current one); returns how many.
    ///
    /// # Errors
    ///
    /// [`otp_core::Error::Database`].
    pub async fn delete_user_sessions(
        &self,
        user_key: &str,
        except: Option<Id>,
    ) -> Result<u64, otp_core::Error> {
        let keep = except.as_ref().map(id_hash).unwrap_or_default();
        let deleted = on_connection!(self.store, std::convert::identity, |c| {
            sqlx::query("DELETE FROM otp_sessions WHERE user_key = $1 AND id_hash <> $2")
                .bind(user_key)
                .bind(&keep)
                .execute(c)
                .await
                .map(|done| done.rows_affected())
                .map_err(otp_core::Error::from)
        })?;
        Ok(deleted)
    }

    fn row(record: &Record) -> session_store::Result<(String, String, i64, Option<String>)> {
        let data = serde_json::to_string(&record.data)
            .map_err(|err| session_store::Error::Encode(err.to_string()))?;
        let user_key = record
            .data
            .get(USER_KEY_SESSION_KEY)
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        Ok((
            id_hash(&record.id),
            data,
            record.expiry_date.unix_timestamp(),
            user_key,
        ))
    }
}

#[async_trait]
impl SessionStore for SqlSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // A fresh id until one is free (a collision of 128 random bits does not happen, but the
        // contract asks for it).
        loop {
            let (id, data, expires_at, user_key) = Self::row(record)?;
            let inserted = on_connection!(self.store, backend, |c| {
                sqlx::query(
                    "INSERT INTO otp_sessions (id_hash, data, expires_at, user_key) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (id_hash) DO NOTHING",
                )
                .bind(&id)
                .bind(&data)
                .bind(expires_at)
                .bind(&user_key)
                .execute(c)
                .await
                .map(|done| done.rows_affected())
                .map_err(backend)
            })?;
            if inserted == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let (id, data, expires_at, user_key) = Self::row(record)?;
        // An update, never an insert: tower-sessions creates new sessions with `create`, so a
        // row that is missing here was deleted, and must not come back.
        on_connection!(self.store, backend, |c| {
            sqlx::query(
                "UPDATE otp_sessions SET data = $2, expires_at = $3, user_key = $4 \
                 WHERE id_hash = $1",
            )
            .bind(&id)
            .bind(&data)
            .bind(expires_at)
            .bind(&user_key)
            .execute(c)
            .await
            .map(|_| ())
            .map_err(backend)
        })
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let row: Option<(String, i64)> = on_connection!(self.store, backend, |c| {
            sqlx::query_as(
                "SELECT data, expires_at FROM otp_sessions WHERE id_hash = $1 AND expires_at > $2",
            )
            .bind(id_hash(id))
            .bind(now_secs())
            .fetch_optional(c)
            .await
            .map_err(backend)
        })?;
        let Some((data, expires_at)) = row else {
            return Ok(None);
        };
        let data = serde_json::from_str(&data)
            .map_err(|err| session_store::Error::Decode(err.to_string()))?;
        let expiry_date =
            tower_sessions::cookie::time::OffsetDateTime::from_unix_timestamp(expires_at)
                .map_err(|err| session_store::Error::Decode(err.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        on_connection!(self.store, backend, |c| {
            sqlx::query("DELETE FROM otp_sessions WHERE id_hash = $1")
                .bind(id_hash(id))
                .execute(c)
                .await
                .map(|_| ())
                .map_err(backend)
        })
    }
}

#[async_trait]
impl ExpiredDeletion for SqlSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        on_connection!(self.store, backend, |c| {
            sqlx::query("DELETE FROM otp_sessions WHERE expires_at <= $1")
                .bind(now_secs())
                .execute(c)
                .await
                .map(|_| ())
                .map_err(backend)
        })
    }
}
