//! Device rows: insert, read, compare-and-set, delete, and pages of every device.

use serde_json::Value;
use sqlx::Row;

use super::connections::{CloseUnlessDone, Held};
use super::{Conn, Store};
use crate::{Device, DeviceId, Error, ThrottleState, Timestamp};

/// What [`Store::claim_and_set`] did.
#[derive(Debug)]
pub(crate) enum ClaimedWrite {
    /// The claim and the update were written together: the device as stored, and the
    /// account's consecutive failures after the claim (0 after a success).
    Written {
        device: Device,
        account_failures: u32,
    },
    /// The account's failure budget is used up: nothing was written.
    BudgetExhausted,
    /// Another writer changed the device first: the device was not written. `claimed` is the
    /// count if an attempt was claimed all the same (the caller keeps it, as after a lost
    /// compare-and-set of a separate claim).
    Lost { claimed: Option<u32> },
}

/// The columns of a device row, in the order [`decode_device`] reads them (a macro, for
/// `concat!` into constant statements).
macro_rules! device_columns {
    () => {
        "id, user_key, kind, name, confirmed, created_at, last_used_at, throttle_failures, \
         throttle_failed_at, last_challenge_at, state, version"
    };
}

/// The columns of a device row, in the order [`decode_device`] reads them.
const DEVICE_COLUMNS: &str = device_columns!();

/// What changes in a compare-and-set update of a device.
#[derive(Debug, Clone)]
pub(crate) struct DeviceUpdate {
    pub(crate) state: Value,
    pub(crate) confirmed: bool,
    pub(crate) name: String,
    pub(crate) last_used_at: Option<Timestamp>,
    pub(crate) throttle: ThrottleState,
    pub(crate) last_challenge_at: Option<Timestamp>,
}

impl DeviceUpdate {
    /// An update that changes nothing yet.
    pub(crate) fn from(device: &Device) -> Self {
        Self {
            state: device.state.clone(),
            confirmed: device.confirmed,
            name: device.name.clone(),
            last_used_at: device.last_used_at,
            throttle: device.throttle,
            last_challenge_at: device.last_challenge_at,
        }
    }
}

/// A device to insert.
#[derive(Debug, Clone)]
pub(crate) struct NewDevice<'a> {
    pub(crate) user_key: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) name: &'a str,
    pub(crate) confirmed: bool,
    pub(crate) created_at: Timestamp,
    pub(crate) state: Value,
}

fn decode_device<R>(row: &R) -> Result<Device, Error>
where
    R: Row,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let number: i64 = row.try_get(0)?;
    let kind: String = row.try_get(2)?;
    let state: String = row.try_get(10)?;
    let millis = |index: usize| -> Result<Option<Timestamp>, Error> {
        Ok(row
            .try_get::<Option<i64>, _>(index)?
            .map(Timestamp::from_unix_millis))
    };
    let failures: i64 = row.try_get(7)?;
    Ok(Device {
        id: DeviceId::new(&kind, number)
            .map_err(|_| Error::CorruptStoredSecret("a device row has an invalid kind or id"))?,
        user_key: row.try_get(1)?,
        name: row.try_get(3)?,
        confirmed: row.try_get(4)?,
        created_at: Timestamp::from_unix_millis(row.try_get(5)?),
        last_used_at: millis(6)?,
        throttle: ThrottleState {
            failure_count: u32::try_from(failures).unwrap_or(u32::MAX),
            last_failure_at: millis(8)?,
        },
        last_challenge_at: millis(9)?,
        state: serde_json::from_str(&state)
            .map_err(|_| Error::CorruptStoredSecret("a device state is not JSON"))?,
        version: row.try_get(11)?,
    })
}

fn millis(at: Option<Timestamp>) -> Option<i64> {
    at.map(Timestamp::unix_millis)
}

/// `device` as stored after `update` was written over it.
fn stored(device: &Device, update: DeviceUpdate) -> Device {
    Device {
        state: update.state,
        confirmed: update.confirmed,
        name: update.name,
        last_used_at: update.last_used_at,
        throttle: update.throttle,
        last_challenge_at: update.last_challenge_at,
        version: device.version + 1,
        ..device.clone()
    }
}

impl Store {
    /// Inserts a device and returns it as stored.
    pub(crate) async fn insert_device(&self, new: NewDevice<'_>) -> Result<Device, Error> {
        let state = new.state.to_string();
        let sql = format!(
            "INSERT INTO otp_devices (user_key, kind, name, confirmed, created_at, state, version) \
             VALUES ($1, $2, $3, $4, $5, $6, 0) RETURNING {DEVICE_COLUMNS}"
        );
        on_pool!(self, |pool| {
            let row = sqlx::query(&sql)
                .bind(new.user_key)
                .bind(new.kind)
                .bind(new.name)
                .bind(new.confirmed)
                .bind(new.created_at.unix_millis())
                .bind(&state)
                .fetch_one(pool)
                .await?;
            decode_device(&row)
        })
    }

    /// Inserts a device unless the user has one of its kind already; `None` if they do. Two
    /// concurrent calls cannot both insert: on SQLite the statement takes the database's write
    /// lock, on PostgreSQL the transaction first takes an advisory lock on the user and kind
    /// (a `NOT EXISTS` alone would not see a row another transaction has not committed yet).
    pub(crate) async fn insert_device_unless_kind_exists(
        &self,
        new: NewDevice<'_>,
    ) -> Result<Option<Device>, Error> {
        let state = new.state.to_string();
        let sql = format!(
            "INSERT INTO otp_devices (user_key, kind, name, confirmed, created_at, state, version) \
             SELECT $1, $2, $3, $4, $5, $6, 0 WHERE NOT EXISTS \
                (SELECT 1 FROM otp_devices WHERE user_key = $1 AND kind = $2) \
             RETURNING {DEVICE_COLUMNS}"
        );
        macro_rules! insert {
            ($executor:expr) => {
                sqlx::query(&sql)
                    .bind(new.user_key)
                    .bind(new.kind)
                    .bind(new.name)
                    .bind(new.confirmed)
                    .bind(new.created_at.unix_millis())
                    .bind(&state)
                    .fetch_optional($executor)
                    .await?
            };
        }
        match &self.backend {
            super::Backend::Sqlite(pool, _) => {
                insert!(pool).as_ref().map(decode_device).transpose()
            }
            super::Backend::Postgres(pool, _) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))")
                    .bind(new.user_key)
                    .bind(new.kind)
                    .execute(&mut *tx)
                    .await?;
                let row = insert!(&mut *tx);
                tx.commit().await?;
                row.as_ref().map(decode_device).transpose()
            }
        }
    }

    /// The device with this id, whatever its owner.
    pub(crate) async fn device(&self, id: &DeviceId) -> Result<Option<Device>, Error> {
        let mut conn = self.conn().await?;
        let result = self.device_on(&mut conn, id).await?;
        conn.finish();
        Ok(result)
    }

    /// [`Store::device`] on `conn`.
    pub(crate) async fn device_on(
        &self,
        conn: &mut Conn,
        id: &DeviceId,
    ) -> Result<Option<Device>, Error> {
        const SQL: &str = concat!(
            "SELECT ",
            device_columns!(),
            " FROM otp_devices WHERE id = $1 AND kind = $2"
        );
        on_conn!(conn, |c| {
            let row = sqlx::query(SQL)
                .bind(id.number())
                .bind(id.kind())
                .fetch_optional(&mut *c)
                .await?;
            row.as_ref().map(decode_device).transpose()
        })
    }

    /// The user's devices in id order; `confirmed: None` means all.
    pub(crate) async fn devices_of(
        &self,
        user_key: &str,
        confirmed: Option<bool>,
    ) -> Result<Vec<Device>, Error> {
        let sql = format!(
            "SELECT {DEVICE_COLUMNS} FROM otp_devices WHERE user_key = $1 \
             AND ($2 IS NULL OR confirmed = $2) ORDER BY id"
        );
        on_pool!(self, |pool| {
            let rows = sqlx::query(&sql)
                .bind(user_key)
                .bind(confirmed)
                .fetch_all(pool)
                .await?;
            rows.iter().map(decode_device).collect()
        })
    }

    /// Every device, in id order, `limit` at a time after `after_id` (for key rotation and
    /// administration).
    pub(crate) async fn devices_page(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<Device>, Error> {
        let sql =
            format!("SELECT {DEVICE_COLUMNS} FROM otp_devices WHERE id > $1 ORDER BY id LIMIT $2");
        on_pool!(self, |pool| {
            let rows = sqlx::query(&sql)
                .bind(after_id)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter().map(decode_device).collect()
        })
    }

    /// Writes `update` if the row still has the version `device` was read at. Returns the
    /// device as stored if it did, `None` if another writer came first (re-read and re-decide).
    pub(crate) async fn compare_and_set(
        &self,
        device: &Device,
        update: DeviceUpdate,
    ) -> Result<Option<Device>, Error> {
        let mut conn = self.conn().await?;
        let result = self.compare_and_set_on(&mut conn, device, update).await?;
        conn.finish();
        Ok(result)
    }

    /// [`Store::compare_and_set`] on `conn`.
    pub(crate) async fn compare_and_set_on(
        &self,
        conn: &mut Conn,
        device: &Device,
        update: DeviceUpdate,
    ) -> Result<Option<Device>, Error> {
        const SQL: &str = "UPDATE otp_devices SET state = $1, confirmed = $2, name = $3, \
             last_used_at = $4, throttle_failures = $5, throttle_failed_at = $6, \
             last_challenge_at = $7, version = version + 1 WHERE id = $8 AND version = $9";
        let state = update.state.to_string();
        let result = on_conn!(conn, |c| {
            sqlx::query(SQL)
                .bind(&state)
                .bind(update.confirmed)
                .bind(&update.name)
                .bind(millis(update.last_used_at))
                .bind(i64::from(update.throttle.failure_count))
                .bind(millis(update.throttle.last_failure_at))
                .bind(millis(update.last_challenge_at))
                .bind(device.id.number())
                .bind(device.version)
                .execute(&mut *c)
                .await?
                .rows_affected()
        });
        if result != 1 {
            return Ok(None);
        }
        Ok(Some(stored(device, update)))
    }

    /// Claims one attempt of the account's failure budget and writes `update`, all or
    /// nothing, in one transaction and one round trip: the device is written only if the
    /// attempt could be claimed and the row still has the version `device` was read at, and
    /// the attempt is claimed only if the device is written. `success` makes the claim a
    /// reset of the account's failures (the attempt was right) instead of one more failure.
    ///
    /// PostgreSQL runs it as one statement (data-modifying CTEs) that locks the device row
    /// first, then the account row, as no other statement does in the other order, so two of
    /// these cannot deadlock. SQLite, which has no such CTEs, runs a few statements in one
    /// immediate (writer) transaction, sent as one batch; a batch that fails or is dropped
    /// half-way closes its connection, which rolls the transaction back.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn claim_and_set(
        &self,
        conn: &mut Conn,
        device: &Device,
        update: DeviceUpdate,
        user_key: &str,
        limit: u32,
        success: bool,
    ) -> Result<ClaimedWrite, Error> {
        // PostgreSQL: `current` locks the device row if it still has the version read; the
        // claim is inserted or counted only if it did, and the update is written only if the
        // claim was. A concurrent writer that changed the row makes `current` empty after its
        // commit (READ COMMITTED re-checks `version` on the newest row).
        const POSTGRES: &str = "WITH current AS ( \
                SELECT id FROM otp_devices WHERE id = $8 AND version = $9 FOR UPDATE \
            ), claim AS ( \
                INSERT INTO otp_accounts (user_key, consecutive_failures) \
                SELECT $10, $12::BIGINT FROM current \
                ON CONFLICT (user_key) DO UPDATE SET consecutive_failures = \
                    CASE WHEN $12::BIGINT = 0 THEN 0 \
                    ELSE otp_accounts.consecutive_failures + 1 END \
                WHERE otp_accounts.consecutive_failures < $11 \
                RETURNING consecutive_failures \
            ), written AS ( \
                UPDATE otp_devices SET state = $1, confirmed = $2, name = $3, \
                    last_used_at = $4, throttle_failures = $5, throttle_failed_at = $6, \
                    last_challenge_at = $7, version = version + 1 \
                WHERE id = $8 AND version = $9 AND EXISTS (SELECT 1 FROM claim) \
                RETURNING version \
            ) \
            SELECT EXISTS (SELECT 1 FROM current), (SELECT consecutive_failures FROM claim), \
                EXISTS (SELECT 1 FROM written)";
        // SQLite: under the writer lock nothing changes between the statements. Each row is
        // tagged with the statement it answers. `changes()` is the number of rows the last
        // INSERT or UPDATE wrote: the claim's (1 if it was inserted or counted) in the UPDATE,
        // the UPDATE's in the last SELECT.
        const SQLITE: &str = "BEGIN IMMEDIATE; \
            SELECT 'current', EXISTS (SELECT 1 FROM otp_devices WHERE id = $8 AND version = $9); \
            INSERT INTO otp_accounts (user_key, consecutive_failures) \
                SELECT $10, $12 FROM otp_devices WHERE id = $8 AND version = $9 \
                ON CONFLICT (user_key) DO UPDATE SET consecutive_failures = \
                    CASE WHEN $12 = 0 THEN 0 ELSE otp_accounts.consecutive_failures + 1 END \
                WHERE otp_accounts.consecutive_failures < $11 \
                RETURNING 'claim', consecutive_failures; \
            UPDATE otp_devices SET state = $1, confirmed = $2, name = $3, last_used_at = $4, \
                throttle_failures = $5, throttle_failed_at = $6, last_challenge_at = $7, \
                version = version + 1 \
                WHERE id = $8 AND version = $9 AND changes() = 1; \
            SELECT 'written', changes(); \
            COMMIT";
        let state = update.state.to_string();
        let failures = if success { 0_i64 } else { 1 };
        macro_rules! bound {
            ($sql:expr) => {
                sqlx::query($sql)
                    .bind(&state)
                    .bind(update.confirmed)
                    .bind(&update.name)
                    .bind(millis(update.last_used_at))
                    .bind(i64::from(update.throttle.failure_count))
                    .bind(millis(update.throttle.last_failure_at))
                    .bind(millis(update.last_challenge_at))
                    .bind(device.id.number())
                    .bind(device.version)
                    .bind(user_key)
                    .bind(i64::from(limit))
                    .bind(failures)
            };
        }
        let (current, claimed, written) = match &mut conn.0 {
            Held::Postgres(pooled, _) => {
                let row = bound!(POSTGRES).fetch_one(&mut **pooled).await?;
                let claimed: Option<i64> = row.try_get(1)?;
                (
                    row.try_get::<bool, _>(0)?,
                    claimed,
                    row.try_get::<bool, _>(2)?,
                )
            }
            Held::Sqlite(pooled, _) => {
                let _writing = self.sqlite_writes.lock().await;
                let mut guard = CloseUnlessDone {
                    pooled,
                    done: false,
                };
                let rows = bound!(SQLITE).fetch_all(&mut **guard.pooled).await?;
                guard.done = true;
                let (mut current, mut claimed, mut written) = (false, None, false);
                for row in &rows {
                    let value: i64 = row.try_get(1)?;
                    match row.try_get::<&str, _>(0)? {
                        "current" => current = value == 1,
                        "claim" => claimed = Some(value),
                        "written" => written = value == 1,
                        _ => {}
                    }
                }
                (current, claimed, written)
            }
        };
        let claimed = claimed.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        Ok(match (current, claimed, written) {
            (false, _, _) => ClaimedWrite::Lost { claimed },
            (true, None, _) => ClaimedWrite::BudgetExhausted,
            (true, Some(account_failures), true) => ClaimedWrite::Written {
                device: stored(device, update),
                account_failures,
            },
            // Not expected with the row locked; handled as a lost race that kept its claim.
            (true, Some(_), false) => ClaimedWrite::Lost { claimed },
        })
    }

    /// Deletes a device; returns whether it existed.
    pub(crate) async fn delete_device(&self, id: &DeviceId) -> Result<bool, Error> {
        let deleted = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM otp_devices WHERE id = $1 AND kind = $2")
                .bind(id.number())
                .bind(id.kind())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted == 1)
    }
}
