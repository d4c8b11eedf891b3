//! Accounts: consecutive failures (the failure budget), session epochs, an operator's reset.

use super::{Conn, Store};
use crate::Error;

impl Store {
    /// Consecutive failed verifications of the account.
    pub(crate) async fn account_failures(&self, user_key: &str) -> Result<u32, Error> {
        let failures: Option<i64> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT consecutive_failures FROM otp_accounts WHERE user_key = $1")
                .bind(user_key)
                .fetch_optional(pool)
                .await?
        });
        Ok(failures.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)))
    }

    /// Counts one more failure of the account, atomically; returns the new count.
    pub(crate) async fn record_account_failure(&self, user_key: &str) -> Result<u32, Error> {
        let mut conn = self.conn().await?;
        let result = self.record_account_failure_on(&mut conn, user_key).await?;
        conn.finish();
        Ok(result)
    }

    /// [`Store::record_account_failure`] on `conn`.
    pub(crate) async fn record_account_failure_on(
        &self,
        conn: &mut Conn,
        user_key: &str,
    ) -> Result<u32, Error> {
        const SQL: &str = "INSERT INTO otp_accounts (user_key, consecutive_failures) \
             VALUES ($1, 1) ON CONFLICT (user_key) DO UPDATE \
             SET consecutive_failures = otp_accounts.consecutive_failures + 1 \
             RETURNING consecutive_failures";
        let failures: i64 = on_conn!(conn, |c| {
            sqlx::query_scalar(SQL)
                .bind(user_key)
                .fetch_one(&mut *c)
                .await?
        });
        Ok(u32::try_from(failures).unwrap_or(u32::MAX))
    }

    /// Claims one attempt of the account's failure budget before a token is checked: counts a
    /// failure now, atomically, unless `limit` failures are counted already. Returns the new
    /// count, or `None` if the budget is used up. A right token then resets the count; an
    /// attempt that ends before its token is checked gives the claim back.
    pub(crate) async fn claim_account_attempt(
        &self,
        user_key: &str,
        limit: u32,
    ) -> Result<Option<u32>, Error> {
        if limit == 0 {
            return Ok(None);
        }
        let mut conn = self.conn().await?;
        let result = self
            .claim_account_attempt_on(&mut conn, user_key, limit)
            .await?;
        conn.finish();
        Ok(result)
    }

    /// [`Store::claim_account_attempt`] on `conn`.
    pub(crate) async fn claim_account_attempt_on(
        &self,
        conn: &mut Conn,
        user_key: &str,
        limit: u32,
    ) -> Result<Option<u32>, Error> {
        const SQL: &str = "INSERT INTO otp_accounts (user_key, consecutive_failures) \
             VALUES ($1, 1) ON CONFLICT (user_key) DO UPDATE \
             SET consecutive_failures = otp_accounts.consecutive_failures + 1 \
             WHERE otp_accounts.consecutive_failures < $2 \
             RETURNING consecutive_failures";
        if limit == 0 {
            return Ok(None);
        }
        let failures: Option<i64> = on_conn!(conn, |c| {
            sqlx::query_scalar(SQL)
                .bind(user_key)
                .bind(i64::from(limit))
                .fetch_optional(&mut *c)
                .await?
        });
        Ok(failures.map(|n| u32::try_from(n).unwrap_or(u32::MAX)))
    }

    /// Gives back an attempt claimed with [`Store::claim_account_attempt`].
    pub(crate) async fn release_account_attempt(&self, user_key: &str) -> Result<(), Error> {
        on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE otp_accounts SET consecutive_failures = consecutive_failures - 1 \
                 WHERE user_key = $1 AND consecutive_failures > 0",
            )
            .bind(user_key)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Clears the account's failures and its challenges of the hour (an operator's reset).
    pub(crate) async fn reset_account(&self, user_key: &str) -> Result<(), Error> {
        const SQL: &str = "UPDATE otp_accounts SET consecutive_failures = 0, challenges_in_window = 0 \
             WHERE user_key = $1";
        on_pool!(self, |pool| {
            sqlx::query(SQL).bind(user_key).execute(pool).await?;
        });
        Ok(())
    }

    /// The account's session epoch (0 for an account the store has not seen).
    pub(crate) async fn session_epoch(&self, user_key: &str) -> Result<i64, Error> {
        const SQL: &str = "SELECT session_epoch FROM otp_accounts WHERE user_key = $1";
        let epoch: Option<i64> = on_pool!(self, |pool| {
            sqlx::query_scalar(SQL)
                .bind(user_key)
                .fetch_optional(pool)
                .await?
        });
        Ok(epoch.unwrap_or(0))
    }

    /// Moves the account's session epoch on by one, atomically; returns the new one.
    pub(crate) async fn advance_session_epoch(&self, user_key: &str) -> Result<i64, Error> {
        const SQL: &str = "INSERT INTO otp_accounts (user_key, session_epoch) VALUES ($1, 1) \
             ON CONFLICT (user_key) DO UPDATE SET session_epoch = otp_accounts.session_epoch + 1 \
             RETURNING session_epoch";
        let epoch: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(SQL)
                .bind(user_key)
                .fetch_one(pool)
                .await?
        });
        Ok(epoch)
    }

    /// Clears the account's failures, on `conn` (a verification's success).
    pub(crate) async fn reset_account_on(
        &self,
        conn: &mut Conn,
        user_key: &str,
    ) -> Result<(), Error> {
        const SQL: &str = "UPDATE otp_accounts SET consecutive_failures = 0 \
             WHERE user_key = $1 AND consecutive_failures <> 0";
        on_conn!(conn, |c| {
            sqlx::query(SQL).bind(user_key).execute(&mut *c).await?;
        });
        Ok(())
    }
}
