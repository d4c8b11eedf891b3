//! `otp serve`: the reference server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::Args;
use tokio::net::TcpListener;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;

use super::session::env_var;
use super::{Failure, GlobalArgs, Streams};
use crate::app::{self, ServerConfig};

/// Help of `otp serve`.
pub(crate) const LONG_ABOUT: &str = "Run the reference server\n\n\
    On first run it creates the database (SQLite by default) and, beside a SQLite database, the \
    key file; it applies the migrations, prints 'otp serve: listening on http://ADDR' on \
    standard output and logs to standard error (INFO, or what OTP_LOG selects). Ctrl-C or \
    SIGTERM stops it after the requests in flight have finished.\n\n\
    Configuration comes from the command line, then the environment (OTP_ADDR, \
    OTP_DATABASE_URL, OTP_SIGNUP, OTP_SECURE_COOKIES, OTP_ADMIN_HIDE_SENSITIVE_DATA, \
    OTP_SITE_NAME, OTP_SECRET_KEY, OTP_KEY_FILE, OTP_SMTP_URL, OTP_BODY_LIMIT, \
    OTP_REQUEST_TIMEOUT, OTP_ALLOWED_ORIGINS, OTP_RATE_LIMIT_PER_MINUTE, OTP_TRUST_FORWARDED_FOR, \
    OTP_PASSWORD_FREE_FAILURES, OTP_PASSWORD_BACKOFF, OTP_PASSWORD_BACKOFF_MAX \
    and django-otp's settings), then the TOML file of \
    --config or OTP_CONFIG ([server] table for the server, the rest for the framework), then \
    the defaults. Without OTP_SMTP_URL, email codes are written to the log instead of sent. \
    The session cookie has the Secure flag only with OTP_SECURE_COOKIES=true: set it whenever \
    the server is reached over HTTPS. Each client address may post to the login endpoints, and \
    to the verification endpoints, OTP_RATE_LIMIT_PER_MINUTE times (default 60; 0 for no \
    limit) at once and then per minute; more get 429.";

/// Arguments of `otp serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The address to listen on; port 0 picks a free port, which is printed
    /// [default: $OTP_ADDR, else the file's, else 127.0.0.1:8000]
    #[arg(long, value_name = "IP:PORT")]
    pub addr: Option<SocketAddr>,
    /// A TOML configuration file [default: $OTP_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The log to standard error: INFO for everything unless `OTP_LOG` says otherwise.
fn init_log() -> Result<(), Failure> {
    let filter = match env_var("OTP_LOG")? {
        Some(directives) => Targets::from_str(&directives).map_err(|error| Failure::Env {
            name: "OTP_LOG",
            problem: error.to_string(),
        })?,
        None => Targets::new().with_default(tracing::Level::INFO),
    };
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter),
    );
    // Process-wide, for every worker thread. A second server in one process (tests) keeps
    // the first one's log.
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed before this returns,
/// so a signal sent as soon as the address is printed is not missed.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static, Failure> {
    let failed = |error: std::io::Error| Failure::System(format!("cannot handle signals: {error}"));
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).map_err(failed)?;
        let mut terminate = signal(SignalKind::terminate()).map_err(failed)?;
        Ok(async move {
            let name = tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            };
            tracing::info!(signal = name, "shutting down after the requests in flight");
        })
    }
    #[cfg(not(unix))]
    {
        let _ = failed;
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down after the requests in flight");
        })
    }
}

pub(super) fn run(
    args: ServeArgs,
    global: &GlobalArgs,
    streams: &mut Streams<'_>,
) -> Result<(), Failure> {
    let mut config = ServerConfig::load(args.config.as_deref())?;
    if let Some(url) = &global.database_url {
        url.parse::<otp_core::DatabaseUrl>()?;
        config.database_url = url.clone();
    }
    if let Some(addr) = args.addr {
        config.addr = addr;
    }
    init_log()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| Failure::System(format!("cannot start the async runtime: {error}")))?;
    runtime.block_on(async {
        let addr = config.addr;
        let (router, state) = app::build(config).await?;
        let ready = async {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| app::Error::Listen { addr, source })?;
            let shutdown = shutdown_signal()?;
            let local = listener.local_addr().map_err(app::Error::Io)?;
            tracing::info!(addr = %local, "listening on http://{local}");
            writeln!(streams.out, "otp serve: listening on http://{local}")
                .and_then(|()| streams.out.flush())
                .map_err(Failure::stdout)?;
            Ok::<_, Failure>((listener, shutdown))
        }
        .await;
        let (listener, shutdown) = match ready {
            Ok(ready) => ready,
            Err(failure) => {
                state.otp().store().close().await;
                return Err(failure);
            }
        };
        app::serve(listener, router, state, shutdown).await?;
        Ok(())
    })
}
