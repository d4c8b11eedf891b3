//! Test support shared by the crates of the otp framework (a dev-dependency only):
//!
//! - [`TestDb`]: a real database for one test, a SQLite file in a temporary directory or a fresh
//!   PostgreSQL database on the server of `OTP_TEST_POSTGRES_URL`, dropped afterwards (from an
//!   async test, or from a plain one with [`TestDb::postgres_blocking`]);
//! - [`store_tests!`]: runs each listed scenario on both;
//! - [`smtp::SmtpServer`]: an SMTP server on loopback that keeps what it receives (on a runtime
//!   of its own for a plain test: [`smtp::BlockingSmtpServer`]);
//! - [`strict`] and [`missing`]: the rule for outside tools and services, which skip with a notice
//!   unless `OTP_TEST_STRICT=1` (as in CI) makes their absence a failure;
//! - [`totp_code_repeats`]: whether a spent TOTP code may rightly be accepted again by chance;
//! - [`conformance`] and [`kind_conformance!`]: the guarantees every device kind must keep, run
//!   for one kind on both databases.

pub mod conformance;
pub mod smtp;

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether a missing outside tool or service must fail the test (`OTP_TEST_STRICT=1`, as in CI).
pub fn strict() -> bool {
    std::env::var("OTP_TEST_STRICT").is_ok_and(|v| v == "1")
}

/// Skips (with a notice) or fails (under `OTP_TEST_STRICT=1`) for a missing service.
pub fn missing(what: &str) {
    if strict() {
        panic!("{what} is required under OTP_TEST_STRICT=1");
    }
    eprintln!("skipping: {what} is not available");
}

/// Whether `code`, the code of `totp` at some time since the Unix time `since`, is by chance
/// (one in a million per step) also the code of another step from just before `since` to just
/// after now. A server may then rightly accept it again, so a test that presents a spent code
/// asserts its refusal only when this is false. (With tolerance 1 and a drift of 0 or -1, as a
/// new device has, every step the server could have accepted since is in that range.)
pub fn totp_code_repeats(totp: &otp_oath::Totp, code: &str, since: i64) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs() as i64;
    let (Some(first), Some(last)) = (totp.time_step(since), totp.time_step(now)) else {
        return false;
    };
    (first.saturating_sub(1)..=last + 1)
        .filter(|&step| totp.code_for_step(step).to_string() == code)
        .count()
        > 1
}

/// A database for one test, and a temporary directory for its files. Dropping it removes the
/// directory (with the SQLite file in it) and drops the PostgreSQL database.
pub struct TestDb {
    /// The database URL, for `otp_core::Store::connect`.
    pub url: String,
    dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A SQLite file `otp.db` in a fresh temporary directory (not created yet: the first
    /// connection makes it).
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("otp.db").display());
        Self {
            url,
            dir,
            postgres: None,
        }
    }

    /// A fresh PostgreSQL database on the server of `OTP_TEST_POSTGRES_URL` (an admin URL such
    /// as `postgres://postgres@127.0.0.1:5432/postgres`), or `None` (after the skip notice)
    /// when the variable is not set.
    pub async fn postgres() -> Option<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let Some(admin_url) = std::env::var("OTP_TEST_POSTGRES_URL")
            .ok()
            .filter(|url| !url.is_empty())
        else {
            missing("PostgreSQL (set OTP_TEST_POSTGRES_URL)");
            return None;
        };
        let name = format!(
            "otp_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let mut admin = sqlx_connect(&admin_url).await;
        use sqlx::Executor;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        let base = admin_url
            .split('?')
            .next()
            .and_then(|url| url.rsplit_once('/'))
            .map_or(admin_url.as_str(), |(base, _)| base);
        Some(Self {
            url: format!("{base}/{name}"),
            dir: tempfile::tempdir().expect("temporary directory"),
            postgres: Some((admin_url.clone(), name)),
        })
    }

    /// [`TestDb::postgres`] for a test that is not async, or that makes its database outside
    /// its own runtime: the database is created on a thread with a runtime of its own.
    pub fn postgres_blocking() -> Option<Self> {
        on_own_runtime(Self::postgres()).unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// Whether this is a PostgreSQL database (else a SQLite file).
    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// The temporary directory of the test: the SQLite file's, or an empty one beside a
    /// PostgreSQL database.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Runs `future` to its end on a new thread with a runtime of its own, so that it may be
/// called from anywhere, inside a runtime or not; `Err` if it panicked.
fn on_own_runtime<F>(future: F) -> std::thread::Result<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    })
    .join()
}

async fn sqlx_connect(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs outside any runtime guarantee: use a thread with its own runtime.
        let _ = on_own_runtime(async move {
            use sqlx::Executor;
            let mut admin = sqlx_connect(&admin_url).await;
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await;
        });
    }
}

/// Runs each listed test against SQLite and against PostgreSQL. Each test is an
/// `async fn(TestDb)`.
#[macro_export]
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::TestDb::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(db) = $crate::TestDb::postgres().await {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}
