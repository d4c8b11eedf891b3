//! Hourly allowances of challenges, per account and per recipient.

use std::time::Duration;

use super::Store;
use crate::{Error, Timestamp};

/// Whose hourly allowance of challenges a claim takes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Allowance<'a> {
    /// An account's, by user key (`otp_accounts`).
    Account(&'a str),
    /// A recipient's across all accounts, by the keyed hash of its normalised address
    /// (`otp_challenge_recipients`).
    Recipient(&'a str),
}

impl<'a> Allowance<'a> {
    /// The table, its key column, and the key.
    fn row(self) -> (&'static str, &'static str, &'a str) {
        match self {
            Self::Account(user_key) => ("otp_accounts", "user_key", user_key),
            Self::Recipient(hash) => ("otp_challenge_recipients", "recipient_hash", hash),
        }
    }
}

impl Store {
    /// Claims one challenge of the allowance's `limit` per `window`, atomically; `Err` with the
    /// wait until the window closes if they are used up.
    pub(crate) async fn claim_challenge(
        &self,
        allowance: Allowance<'_>,
        now: Timestamp,
        window: Duration,
        limit: u32,
    ) -> Result<Result<(), Duration>, Error> {
        let (table, column, key) = allowance.row();
        let claim = format!(
            "INSERT INTO {table} ({column}, challenge_window_start, challenges_in_window) \
             VALUES ($1, $2, 1) \
             ON CONFLICT ({column}) DO UPDATE SET \
                challenges_in_window = CASE \
                    WHEN {table}.challenge_window_start IS NULL \
                        OR {table}.challenge_window_start <= $3 THEN 1 \
                    ELSE {table}.challenges_in_window + 1 END, \
                challenge_window_start = CASE \
                    WHEN {table}.challenge_window_start IS NULL \
                        OR {table}.challenge_window_start <= $3 THEN $2 \
                    ELSE {table}.challenge_window_start END \
             WHERE {table}.challenge_window_start IS NULL \
                OR {table}.challenge_window_start <= $3 \
                OR {table}.challenges_in_window < $4 \
             RETURNING challenges_in_window"
        );
        let window_start =
            format!("SELECT challenge_window_start FROM {table} WHERE {column} = $1");
        let window_millis = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let now_millis = now.unix_millis();
        let claimed: Option<i64> = on_pool!(self, |pool| {
            sqlx::query_scalar(&claim)
                .bind(key)
                .bind(now_millis)
                .bind(now_millis.saturating_sub(window_millis))
                .bind(i64::from(limit))
                .fetch_optional(pool)
                .await?
        });
        if claimed.is_some() {
            return Ok(Ok(()));
        }
        let start: Option<Option<i64>> = on_pool!(self, |pool| {
            sqlx::query_scalar(&window_start)
                .bind(key)
                .fetch_optional(pool)
                .await?
        });
        let closes = start
            .flatten()
            .unwrap_or(now_millis)
            .saturating_add(window_millis);
        let wait = u64::try_from(closes.saturating_sub(now_millis)).unwrap_or(0);
        // At least a second: a client told to retry at once would only be refused again.
        Ok(Err(Duration::from_millis(wait).max(Duration::from_secs(1))))
    }

    /// Gives back a challenge claimed with [`Store::claim_challenge`] that was not sent.
    pub(crate) async fn release_challenge(&self, allowance: Allowance<'_>) -> Result<(), Error> {
        let (table, column, key) = allowance.row();
        let release = format!(
            "UPDATE {table} SET challenges_in_window = challenges_in_window - 1 \
             WHERE {column} = $1 AND challenges_in_window > 0"
        );
        on_pool!(self, |pool| {
            sqlx::query(&release).bind(key).execute(pool).await?;
        });
        Ok(())
    }

    /// Deletes the recipients' rows whose window closed before `closed_before` (in
    /// milliseconds since the epoch); returns how many. A row only limits challenges within its
    /// window, so one past it counts nothing.
    pub(crate) async fn forget_closed_recipient_windows(
        &self,
        closed_before: i64,
    ) -> Result<u64, Error> {
        const SQL: &str = "DELETE FROM otp_challenge_recipients WHERE challenge_window_start <= $1";
        let deleted = on_pool!(self, |pool| {
            sqlx::query(SQL)
                .bind(closed_before)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted)
    }
}
