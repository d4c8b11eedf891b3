//! What the operator commands share: the configuration from the flags and the environment, the
//! async runtime, the log, and a [`Session`] on the framework's database.

use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use otp_axum::SqlSessionStore;
use otp_core::{
    DatabaseUrl, DevelopmentLogMailer, KeyRing, Mailer, Otp, Settings, SmtpMailer, Store,
};
use tokio::runtime::Runtime;
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;

use super::{Failure, GlobalArgs, Streams};
use crate::app::Users;

/// The database when neither `--database-url` nor `OTP_DATABASE_URL` names one.
pub(crate) const DEFAULT_DATABASE_URL: &str = "sqlite://otp.db";

/// The log target of the development mailer, shown by default.
const DEVELOPMENT_MAILER_TARGET: &str = "otp_core::mailer";

/// An environment variable as text; unset and empty are both `None`.
pub(crate) fn env_var(name: &'static str) -> Result<Option<String>, Failure> {
    match std::env::var(name) {
        Ok(value) if value.is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Failure::Env {
            name,
            problem: "not valid UTF-8".to_owned(),
        }),
    }
}

/// The database URL: the flag, else `OTP_DATABASE_URL`, else [`DEFAULT_DATABASE_URL`].
fn database_url(global: &GlobalArgs) -> Result<(String, DatabaseUrl), Failure> {
    let url = match &global.database_url {
        Some(url) => url.clone(),
        None => env_var("OTP_DATABASE_URL")?.unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
    };
    let parsed = url.parse::<DatabaseUrl>()?;
    Ok((url, parsed))
}

/// A single-threaded runtime: one command does one thing at a time.
fn runtime() -> Result<Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| Failure::System(format!("cannot start the async runtime: {error}")))
}

/// Sends the framework's log to standard error for as long as the guard lives: what `OTP_LOG`
/// selects (`Targets` directives such as `info` or `otp_core=debug`), by default only the
/// development mailer's messages.
fn log_to_stderr() -> Result<DefaultGuard, Failure> {
    let filter = match env_var("OTP_LOG")? {
        Some(directives) => Targets::from_str(&directives).map_err(|error| Failure::Env {
            name: "OTP_LOG",
            problem: error.to_string(),
        })?,
        None => Targets::new().with_target(DEVELOPMENT_MAILER_TARGET, tracing::Level::WARN),
    };
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter),
    );
    Ok(tracing::subscriber::set_default(subscriber))
}

/// The migrations of the whole app: the framework's devices, the sessions of `otp serve`, and
/// its users.
async fn migrate_all(store: &Store, users: &Users) -> Result<(), Failure> {
    store.migrate().await?;
    SqlSessionStore::new(store.clone()).migrate().await?;
    users.migrate().await?;
    Ok(())
}

/// `otp migrate`: applies the migrations, and needs no key.
pub(super) fn migrate(global: &GlobalArgs, streams: &mut Streams<'_>) -> Result<(), Failure> {
    let (url, _) = database_url(global)?;
    let _log = log_to_stderr()?;
    let runtime = runtime()?;
    runtime.block_on(async {
        let store = Store::connect(&url).await?;
        let migrated = migrate_all(&store, &Users::new(store.clone())).await;
        store.close().await;
        migrated
    })?;
    writeln!(streams.out, "the database schema is up to date").map_err(Failure::stdout)
}

/// Which mailer a session's email devices send through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mail {
    /// None: the command sends no mail (challenges would fail).
    None,
    /// `OTP_SMTP_URL`, else the development mailer.
    FromEnv,
}

/// The framework on the configured database, with its migrations applied. Dropping it closes
/// the database.
pub(crate) struct Session {
    otp: Otp,
    users: Users,
    runtime: Runtime,
    current_key_id: u32,
    development_mailer: bool,
    // Dropped last: the log stays on while the database closes.
    _log: DefaultGuard,
}

impl Session {
    /// Resolves the configuration, reads the keys (before connecting: a missing key is reported
    /// without touching the database), connects, migrates and builds the framework.
    pub(crate) fn open(global: &GlobalArgs, mail: Mail) -> Result<Self, Failure> {
        let (url, parsed) = database_url(global)?;
        let log = log_to_stderr()?;
        let keys_text = env_var("OTP_SECRET_KEY")?;
        let key_file = env_var("OTP_KEY_FILE")?.map(PathBuf::from);
        let keys = KeyRing::for_database(&parsed, keys_text.as_deref(), key_file.as_deref())?;
        let current_key_id = keys.current_key_id();
        let settings = settings()?;
        let mailer: Option<Arc<dyn Mailer>> = match mail {
            Mail::None => None,
            Mail::FromEnv => Some(match env_var("OTP_SMTP_URL")? {
                Some(smtp) => Arc::new(SmtpMailer::from_url(&smtp)?),
                None => Arc::new(DevelopmentLogMailer),
            }),
        };
        let development_mailer = mail == Mail::FromEnv && env_var("OTP_SMTP_URL")?.is_none();
        let runtime = runtime()?;
        let (store, users) = runtime.block_on(async {
            let store = Store::connect(&url).await?;
            let users = Users::new(store.clone());
            if let Err(failure) = migrate_all(&store, &users).await {
                store.close().await;
                return Err(failure);
            }
            Ok::<_, Failure>((store, users))
        })?;
        let mut builder = Otp::builder(store.clone(), keys).with_settings(settings);
        if let Some(mailer) = mailer {
            builder = builder.with_mailer(mailer);
        }
        let otp = match builder.build() {
            Ok(otp) => otp,
            Err(error) => {
                runtime.block_on(store.close());
                return Err(error.into());
            }
        };
        Ok(Self {
            otp,
            users,
            runtime,
            current_key_id,
            development_mailer,
            _log: log,
        })
    }

    /// The framework.
    pub(crate) fn otp(&self) -> &Otp {
        &self.otp
    }

    /// The app's users.
    pub(crate) fn users(&self) -> &Users {
        &self.users
    }

    /// The user key a `--user` value names: digits only are a key as given (no username is
    /// digits only); other values are the username of a user of the app if one has it (in any
    /// case), else a key as given.
    pub(crate) fn user_key(&self, user: &str) -> Result<String, Failure> {
        Ok(self.block_on(self.users.resolve(user))?)
    }

    /// Runs `future` to completion.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The id of the newest application key, which new seals use.
    pub(crate) fn current_key_id(&self) -> u32 {
        self.current_key_id
    }

    /// Whether email goes to the log instead of a mail server.
    pub(crate) fn uses_development_mailer(&self) -> bool {
        self.development_mailer
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Waits for the connections to finish, which checkpoints SQLite's write-ahead log.
        self.runtime.block_on(self.otp.store().close());
    }
}

/// The framework's settings: django-otp's defaults, overridden by the environment variables
/// of django-otp's names (`OTP_TOTP_ISSUER`, `OTP_FAILURE_BUDGET`, ...).
fn settings() -> Result<Settings, Failure> {
    Ok(Settings::from_env()?)
}
