//! `otp bench verify` and `otp bench hotp`: throughput on this machine, for side-by-side
//! comparisons with django-otp (`bench/compare.sh` runs both). `otp bench login-timing`: whether
//! a login's time tells a username that exists from one that does not.
//!
//! `otp bench verify` measures [`Otp::verify_token`] end to end against a real database, the
//! way django-otp's `django_otp_bench.py` measures `django_otp.verify_token`:
//!
//! 1. **wrong codes**, throttling off (`OTP_TOTP_THROTTLE_FACTOR=0`), the clock standing still:
//!    each verification reads the device, claims an attempt of the account's failure budget,
//!    checks the code and writes the failure (the headline figure, `verify_token:`);
//! 2. **right codes**: a [`ManualClock`] moved 30 s before each verification, so every code
//!    is of a new time step, computed with [`otp_oath::Totp`] before the timer starts; each
//!    verification also writes the account's reset.
//!
//! The failure budget is set to its maximum, since wrong codes would lock the account after
//! 100. With `--clients N`, N tasks verify at the same time, each on a device of its own user
//! (users logging in at once), or with `--shared-device` all on one device of one user (wrong
//! codes only: the worst case of contention, where compare-and-set loses and retries).
//!
//! The database is a fresh one: a SQLite file in a new temporary directory, or with
//! `--database-url postgres://…` a new uniquely named database on that server, dropped
//! afterwards. A `--database-url` that names a SQLite file, or a PostgreSQL server where the
//! database cannot be created, is used as it is, with user keys of its own
//! (`otp-bench-PID-…`) whose devices and accounts are deleted afterwards. `OTP_DATABASE_URL` is
//! deliberately not read: a benchmark writes to a production database only when told to.
//!
//! `otp bench login-timing` checks, on the same kind of fresh database, that a wrong password
//! for a user who exists takes as long as any password for a name nobody has ([`Users`]
//! does the same statements and the same argon2id work on both paths). It logs in with wrong
//! passwords as the two, in turns (which goes first drawn at random for each pair), through
//! [`Users::authenticate`] with the password back-off's statements but no waits, and reports
//! both medians, their difference, and the Mann-Whitney U test of the two samples: a
//! two-sided p-value well above 0.05 means that these timings do not tell the two apart.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use otp_core::{
    Clock, DatabaseUrl, DeviceId, KeyRing, ManualClock, Otp, Pool, Settings, Store, Timestamp,
    TotpOptions, VerifyOutcome,
};
use otp_oath::{Hotp, HotpParams, Secret, Totp, TotpParams, TotpWindow};
use serde_json::json;

use super::{Failure, GlobalArgs, Streams};
use crate::app::{NewUser, PasswordBackoff, UserError, Users};

/// The key of RFC 4226 Appendix D, as django-otp's benchmark uses.
const RFC_KEY: &[u8; 20] = b"12345678901234567890";

/// Where the frozen clock starts: a step boundary plus 10 s.
const START: i64 = 1_700_000_010;

/// The TOTP step.
const STEP: Duration = Duration::from_secs(30);

/// At most this many clients.
const MAX_CLIENTS: u16 = 1024;

/// Help of `otp bench`.
pub(crate) const LONG_ABOUT: &str = "Measure throughput on this machine\n\n\
    'otp bench verify' verifies TOTP codes end to end against a real database: wrong codes \
    with throttling off (the first line, 'verify_token:'), then right codes with a clock moved \
    30 s per verification. The database is fresh: a SQLite file in a temporary directory, or \
    with --database-url postgres://... a new database on that server, dropped afterwards. \
    OTP_DATABASE_URL is not read. 'otp bench hotp' computes HOTP codes in process. \
    'otp bench login-timing' logs in with wrong passwords as a user who exists and as a name \
    nobody has, in turns, and prints both medians and a Mann-Whitney U test of the two.\n\n\
    Each line reads 'NAME: N ops/s (p50 X us, p99 Y us)'; --json prints one JSON object \
    with ops_per_sec, p50_us and p99_us (and more).";

/// The subcommands of `otp bench`.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Verifications per second through verify_token, against a real database
    ///
    /// Wrong codes with throttling off and the failure budget at its maximum (the first line,
    /// "verify_token:"), then right codes with a clock moved 30 s per verification
    /// ("verify_token right codes:"). With --clients N, N concurrent tasks, each on a device
    /// of its own user; with --shared-device, all on one device (wrong codes only).
    Verify(BenchVerifyArgs),
    /// HOTP codes per second, in process (SHA-1, 6 digits, the HMAC key prepared once)
    Hotp(BenchHotpArgs),
    /// Wrong-password logins of a known user and of an unknown name, in turns: medians and a
    /// Mann-Whitney U test (does the time tell whether a username exists?)
    LoginTiming(BenchLoginTimingArgs),
}

/// Arguments of `otp bench login-timing`.
#[derive(Args, Debug)]
pub struct BenchLoginTimingArgs {
    /// Logins of each kind (1 to 10000), after a warm-up of three
    #[arg(long, default_value_t = 200, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub samples: u16,
    /// Print one JSON object: {"known_median_us", "unknown_median_us", "p", ...}
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `otp bench verify`.
#[derive(Args, Debug)]
pub struct BenchVerifyArgs {
    /// Seconds of measurement per phase (after a short warm-up)
    #[arg(long, default_value = "3", value_name = "SECONDS", value_parser = parse_seconds)]
    pub seconds: f64,
    /// Concurrent clients, each with a user and a device of its own (1 to 1024)
    #[arg(long, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_CLIENTS)))]
    pub clients: u16,
    /// All clients verify on one device of one user (wrong codes only)
    #[arg(long)]
    pub shared_device: bool,
    /// Print one JSON object: {"ops_per_sec", "p50_us", "p99_us", ...}
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `otp bench hotp`.
#[derive(Args, Debug)]
pub struct BenchHotpArgs {
    /// Seconds of measurement (after a short warm-up)
    #[arg(long, default_value = "3", value_name = "SECONDS", value_parser = parse_seconds)]
    pub seconds: f64,
    /// Print one JSON object: {"ops_per_sec", "p50_us", "p99_us", ...}
    #[arg(long)]
    pub json: bool,
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && (0.01..=3600.0).contains(&seconds) => Ok(seconds),
        _ => Err("expected a number of seconds from 0.01 to 3600".to_owned()),
    }
}

pub(super) fn run(
    command: BenchCommand,
    global: &GlobalArgs,
    streams: &mut Streams<'_>,
) -> Result<(), Failure> {
    match command {
        BenchCommand::Verify(args) => verify(&args, global, streams),
        BenchCommand::Hotp(args) => hotp(&args, streams),
        BenchCommand::LoginTiming(args) => login_timing(&args, global, streams),
    }
}

/// Throughput and latency of one measured phase.
#[derive(Debug, Clone, Copy)]
struct Figures {
    ops: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Figures {
    /// From the latencies of every operation (in nanoseconds) and the phase's duration.
    fn from_latencies(mut nanos: Vec<u64>, elapsed: Duration) -> Self {
        nanos.sort_unstable();
        let at = |q: f64| -> Duration {
            if nanos.is_empty() {
                return Duration::ZERO;
            }
            // The nearest-rank percentile.
            let rank = ((q * nanos.len() as f64).ceil() as usize).clamp(1, nanos.len());
            Duration::from_nanos(nanos[rank - 1])
        };
        Self {
            ops: nanos.len() as u64,
            elapsed,
            p50: at(0.50),
            p99: at(0.99),
        }
    }

    fn per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "ops_per_sec": self.per_second().round() as u64,
            "p50_us": micros(self.p50),
            "p99_us": micros(self.p99),
            "ops": self.ops,
            "seconds": (self.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        })
    }

    fn line(&self, name: &str, unit: &str) -> String {
        format!(
            "{name}: {:.0} {unit} (p50 {} us, p99 {} us)",
            self.per_second(),
            show_micros(self.p50),
            show_micros(self.p99)
        )
    }
}

/// Microseconds, rounded to nanoseconds.
fn micros(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e9).round() / 1e3
}

/// Microseconds with as many decimals as are meaningful.
fn show_micros(duration: Duration) -> String {
    let us = duration.as_secs_f64() * 1e6;
    if us < 10.0 {
        format!("{us:.3}")
    } else if us < 1000.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

fn system(context: &str) -> impl FnOnce(String) -> Failure + '_ {
    move |error| Failure::System(format!("{context}: {error}"))
}

/// The warm-up before each phase: a tenth of it, at most half a second.
fn warm_up(seconds: f64) -> Duration {
    Duration::from_secs_f64((seconds / 10.0).min(0.5))
}

// ----------------------------------------------------------------------------------- hotp

fn hotp(args: &BenchHotpArgs, streams: &mut Streams<'_>) -> Result<(), Failure> {
    let secret = Secret::from_bytes(RFC_KEY).map_err(Failure::Input)?;
    let hotp = Hotp::new(&secret, HotpParams::default());
    // Batches, timed as a whole: a clock read costs a good part of one code.
    const BATCH: u64 = 1024;
    let mut counter = 0u64;
    let mut run_batch = |hotp: &Hotp| {
        let started = Instant::now();
        for _ in 0..BATCH {
            std::hint::black_box(hotp.code(std::hint::black_box(counter)));
            counter = counter.wrapping_add(1);
        }
        started.elapsed()
    };
    let warm_until = Instant::now() + warm_up(args.seconds);
    while Instant::now() < warm_until {
        run_batch(&hotp);
    }
    let measure = Duration::from_secs_f64(args.seconds);
    let mut per_code = Vec::new();
    let started = Instant::now();
    while started.elapsed() < measure {
        let took = run_batch(&hotp);
        per_code.push((took.as_nanos() / u128::from(BATCH)) as u64);
    }
    let elapsed = started.elapsed();
    let batches = per_code.len() as u64;
    let mut figures = Figures::from_latencies(per_code, elapsed);
    figures.ops = batches * BATCH;

    // The same with the HMAC key prepared for every code, as django-otp's `oath.hotp` does.
    let started = Instant::now();
    let mut with_setup = 0u64;
    while started.elapsed() < measure / 3 {
        for _ in 0..BATCH {
            let hotp = Hotp::new(&secret, HotpParams::default());
            std::hint::black_box(hotp.code(std::hint::black_box(with_setup)));
            with_setup += 1;
        }
    }
    let with_setup_rate = with_setup as f64 / started.elapsed().as_secs_f64();

    let text = if args.json {
        let mut value = figures.json();
        value["name"] = json!("hotp");
        value["unit"] = json!("codes/s");
        value["p50_p99"] = json!("per code, from batches of 1024");
        value["with_key_setup_per_sec"] = json!(with_setup_rate.round() as u64);
        value.to_string()
    } else {
        format!(
            "{}\nhotp with the key set up per code: {with_setup_rate:.0} codes/s",
            figures.line("hotp", "codes/s")
        )
    };
    writeln!(streams.out, "{text}").map_err(Failure::stdout)
}

// --------------------------------------------------------------------------------- verify

/// The database a benchmark runs on, and how to clean it up.
enum BenchDb {
    /// A SQLite file in a directory of our own, removed afterwards.
    TempSqlite { dir: PathBuf, url: String },
    /// A database created on a PostgreSQL server, dropped afterwards.
    TempPostgres {
        admin_url: String,
        name: String,
        url: String,
    },
    /// A database given as it is: only the benchmark's own rows are deleted afterwards.
    Given { url: String },
}

impl BenchDb {
    fn url(&self) -> &str {
        match self {
            Self::TempSqlite { url, .. } | Self::TempPostgres { url, .. } | Self::Given { url } => {
                url
            }
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Self::TempSqlite { .. } => "sqlite (temporary file, WAL, synchronous=NORMAL)",
            Self::TempPostgres { .. } => "postgres (temporary database)",
            Self::Given { url } if url.starts_with("sqlite") => "sqlite (given database)",
            Self::Given { .. } => "postgres (given database)",
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::TempSqlite { .. } => "sqlite",
            Self::TempPostgres { .. } => "postgres",
            Self::Given { url } if url.starts_with("sqlite") => "sqlite",
            Self::Given { .. } => "postgres",
        }
    }

    async fn create(given: Option<&str>) -> Result<Self, Failure> {
        let unique = unique_suffix();
        let Some(url) = given else {
            let dir = std::env::temp_dir().join(format!("otp-bench-{unique}"));
            std::fs::create_dir(&dir).map_err(|error| {
                Failure::System(format!(
                    "cannot create a temporary directory for the benchmark database: {error}"
                ))
            })?;
            let url = format!("sqlite://{}", dir.join("bench.db").display());
            return Ok(Self::TempSqlite { dir, url });
        };
        match url.parse::<DatabaseUrl>()? {
            DatabaseUrl::Sqlite(_) => Ok(Self::Given {
                url: url.to_owned(),
            }),
            DatabaseUrl::Postgres(_) => {
                let name = format!("otp_bench_{unique}");
                let Some(database_url) = with_database(url, &name) else {
                    return Err(Failure::Usage(
                        "the PostgreSQL URL must name a database: postgres://USER@HOST/DATABASE",
                    ));
                };
                match postgres_admin(url, &format!("CREATE DATABASE {name}")).await {
                    Ok(()) => Ok(Self::TempPostgres {
                        admin_url: url.to_owned(),
                        name,
                        url: database_url,
                    }),
                    // No right to create databases: use the given one, with our own rows.
                    Err(_) => Ok(Self::Given {
                        url: url.to_owned(),
                    }),
                }
            }
        }
    }

    /// Removes what the benchmark made: the directory, the database, or its rows.
    async fn clean_up(self, store: Option<&Store>, user_prefix: &str) -> Result<(), Failure> {
        match self {
            Self::TempSqlite { dir, .. } => {
                if let Some(store) = store {
                    store.close().await;
                }
                std::fs::remove_dir_all(&dir).map_err(|error| {
                    Failure::System(format!(
                        "cannot remove the benchmark directory {}: {error}",
                        dir.display()
                    ))
                })
            }
            Self::TempPostgres {
                admin_url, name, ..
            } => {
                if let Some(store) = store {
                    store.close().await;
                }
                postgres_admin(
                    &admin_url,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                )
                .await
                .map_err(system("cannot drop the benchmark database"))
            }
            Self::Given { .. } => {
                let Some(store) = store else {
                    return Ok(());
                };
                let pattern = format!("{user_prefix}%");
                let deleted = delete_rows(store, &pattern).await;
                store.close().await;
                deleted
            }
        }
    }
}

/// Deletes the devices and accounts of the benchmark's users.
async fn delete_rows(store: &Store, pattern: &str) -> Result<(), Failure> {
    delete_matching(
        store,
        pattern,
        &[
            "DELETE FROM otp_devices WHERE user_key LIKE $1",
            "DELETE FROM otp_accounts WHERE user_key LIKE $1",
        ],
    )
    .await
}

/// Runs each of `statements` with `pattern` as its `$1`.
async fn delete_matching(store: &Store, pattern: &str, statements: &[&str]) -> Result<(), Failure> {
    let failed = |error: sqlx::Error| Failure::Core(error.into());
    for sql in statements {
        match store.pool() {
            Pool::Sqlite(pool) => {
                sqlx::query(sql)
                    .bind(pattern)
                    .execute(pool)
                    .await
                    .map_err(failed)?;
            }
            Pool::Postgres(pool) => {
                sqlx::query(sql)
                    .bind(pattern)
                    .execute(pool)
                    .await
                    .map_err(failed)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Runs one statement on the database of `url`.
async fn postgres_admin(url: &str, statement: &str) -> Result<(), String> {
    use sqlx::{Connection, Executor};
    let options = sqlx::postgres::PgConnectOptions::from_str(url).map_err(|e| e.to_string())?;
    let mut connection = sqlx::PgConnection::connect_with(&options)
        .await
        .map_err(|e| e.to_string())?;
    let result = connection.execute(statement).await.map(|_| ());
    let _ = connection.close().await;
    result.map_err(|e| e.to_string())
}

/// `url` with its database name replaced by `name`; `None` if it names none.
fn with_database(url: &str, name: &str) -> Option<String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://")? + 3;
    let path_start = scheme_end + base[scheme_end..].find('/')?;
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Some(out)
}

/// Distinct across processes and runs: the process id and the clock's nanoseconds.
fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{}_{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// The settings of the benchmark: django-otp's defaults, throttling of TOTP off (as the
/// original's benchmark sets `OTP_TOTP_THROTTLE_FACTOR=0`) and the failure budget at its
/// maximum, since wrong codes would lock the account after 100.
fn bench_settings() -> Settings {
    let mut settings = Settings::default();
    settings.totp.throttle_factor = Duration::ZERO;
    settings.failure_budget.limit = u32::MAX;
    settings
}

/// One verifying client: its framework (with a clock of its own), user and device.
struct Client {
    otp: Otp,
    clock: ManualClock,
    user: String,
    device: DeviceId,
    totp: Totp,
}

impl Client {
    async fn new(store: &Store, user: String) -> Result<Self, Failure> {
        let clock = ManualClock::new(Timestamp::from_unix_secs(START));
        let otp = Otp::builder(store.clone(), KeyRing::generate())
            .with_settings(bench_settings())
            .with_clock(Arc::new(clock.clone()))
            .build()?;
        let secret = Secret::from_bytes(RFC_KEY).map_err(Failure::Input)?;
        let device = otp
            .create_totp_device(&user, "bench", Some(secret), TotpOptions::default(), true)
            .await?;
        let secret = Secret::from_bytes(RFC_KEY).map_err(Failure::Input)?;
        let totp = Totp::new(&secret, TotpParams::default()).map_err(Failure::Input)?;
        Ok(Self {
            otp,
            clock,
            user,
            device: device.id,
            totp,
        })
    }

    /// A code that is wrong for every step of the window at the clock's time.
    fn wrong_code(&self) -> String {
        let now = self.clock.now().unix_secs();
        let right = self.totp.code_at(now).map_or(0, |c| c.value());
        (1..)
            .map(|offset| format!("{:06}", (right + offset) % 1_000_000))
            .find(|code| {
                self.totp
                    .verify(code, now, TotpWindow::with_tolerance(1))
                    .is_none()
            })
            .unwrap_or_else(|| "000000".to_owned())
    }
}

/// When a phase starts measuring and when it ends.
#[derive(Clone, Copy)]
struct Phase {
    measure_from: Instant,
    until: Instant,
}

impl Phase {
    /// Whether an operation starting at `now` is past the phase. A task measures at least one
    /// operation, even when a stall (a checkpoint, the scheduler) took the whole phase.
    fn is_over(&self, now: Instant, measured: &[u64]) -> bool {
        now >= self.until && !measured.is_empty()
    }

    fn starting_now(seconds: f64) -> Self {
        let measure_from = Instant::now() + warm_up(seconds);
        Self {
            measure_from,
            until: measure_from + Duration::from_secs_f64(seconds),
        }
    }
}

fn unexpected(outcome: &VerifyOutcome, expected: &str) -> Failure {
    let got = match outcome {
        VerifyOutcome::Verified(_) => "verified".to_owned(),
        VerifyOutcome::Invalid { .. } => "invalid".to_owned(),
        VerifyOutcome::Throttled { .. } => "throttled".to_owned(),
        VerifyOutcome::NotAllowed { reason } => format!("not allowed: {reason}"),
        _ => "another outcome".to_owned(),
    };
    Failure::System(format!(
        "benchmark: a verification that should be {expected} was {got}"
    ))
}

/// Verifies a wrong code until the phase ends; returns the latencies measured.
async fn wrong_codes(
    otp: Otp,
    user: String,
    device: DeviceId,
    code: String,
    phase: Phase,
) -> Result<Vec<u64>, Failure> {
    let mut latencies = Vec::with_capacity(1 << 16);
    loop {
        let started = Instant::now();
        if phase.is_over(started, &latencies) {
            return Ok(latencies);
        }
        let outcome = otp.verify_token(&user, &device, &code).await?;
        let took = started.elapsed();
        if !matches!(outcome, VerifyOutcome::Invalid { .. }) {
            return Err(unexpected(&outcome, "invalid"));
        }
        if started >= phase.measure_from {
            latencies.push(took.as_nanos() as u64);
        }
    }
}

/// Verifies right codes, one time step later each, until the phase ends.
async fn right_codes(client: Arc<Client>, phase: Phase) -> Result<Vec<u64>, Failure> {
    let mut latencies = Vec::with_capacity(1 << 16);
    loop {
        client.clock.advance(STEP);
        let code = client
            .totp
            .code_at(client.clock.now().unix_secs())
            .map_err(Failure::Input)?
            .to_string();
        let started = Instant::now();
        if phase.is_over(started, &latencies) {
            return Ok(latencies);
        }
        let outcome = client
            .otp
            .verify_token(&client.user, &client.device, &code)
            .await?;
        let took = started.elapsed();
        if !matches!(outcome, VerifyOutcome::Verified(_)) {
            return Err(unexpected(&outcome, "verified"));
        }
        if started >= phase.measure_from {
            latencies.push(took.as_nanos() as u64);
        }
    }
}

/// Runs `tasks` at once and gathers their latencies; the phase's duration is from the start of
/// measurement to the end of the last operation.
async fn gather(
    tasks: Vec<tokio::task::JoinHandle<Result<Vec<u64>, Failure>>>,
    phase: Phase,
) -> Result<Figures, Failure> {
    let mut all = Vec::new();
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok(latencies)) => all.extend(latencies),
            Ok(Err(failure)) => {
                first_error.get_or_insert(failure);
            }
            Err(error) => {
                first_error
                    .get_or_insert(Failure::System(format!("a benchmark task failed: {error}")));
            }
        }
    }
    if let Some(failure) = first_error {
        return Err(failure);
    }
    let elapsed = Instant::now().saturating_duration_since(phase.measure_from);
    Ok(Figures::from_latencies(all, elapsed))
}

/// What one `otp bench verify` measured.
struct VerifyReport {
    wrong: Figures,
    right: Option<Figures>,
}

async fn run_verify(
    store: &Store,
    args: &BenchVerifyArgs,
    user_prefix: &str,
) -> Result<VerifyReport, Failure> {
    store.migrate().await?;
    let clients = usize::from(args.clients);
    let mut made = Vec::with_capacity(clients);
    let users = if args.shared_device { 1 } else { clients };
    for i in 0..users {
        made.push(Arc::new(
            Client::new(store, format!("{user_prefix}{i}")).await?,
        ));
    }

    let phase = Phase::starting_now(args.seconds);
    let tasks = (0..clients)
        .map(|i| {
            let client = &made[i % made.len()];
            tokio::spawn(wrong_codes(
                client.otp.clone(),
                client.user.clone(),
                client.device.clone(),
                client.wrong_code(),
                phase,
            ))
        })
        .collect();
    let wrong = gather(tasks, phase).await?;

    let right = if args.shared_device {
        None
    } else {
        let phase = Phase::starting_now(args.seconds);
        let tasks = made
            .iter()
            .map(|client| tokio::spawn(right_codes(Arc::clone(client), phase)))
            .collect();
        Some(gather(tasks, phase).await?)
    };
    Ok(VerifyReport { wrong, right })
}

fn verify(
    args: &BenchVerifyArgs,
    global: &GlobalArgs,
    streams: &mut Streams<'_>,
) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| Failure::System(format!("cannot start the async runtime: {error}")))?;
    let user_prefix = format!("otp-bench-{}-", unique_suffix());
    let (db, report) = runtime.block_on(async {
        let db = BenchDb::create(global.database_url.as_deref()).await?;
        let store = match Store::connect(db.url()).await {
            Ok(store) => store,
            Err(error) => {
                db.clean_up(None, &user_prefix).await?;
                return Err(error.into());
            }
        };
        let report = run_verify(&store, args, &user_prefix).await;
        let description = db.describe();
        let kind = db.kind();
        let cleaned = db.clean_up(Some(&store), &user_prefix).await;
        let report = report?;
        cleaned?;
        Ok::<_, Failure>(((description, kind), report))
    })?;
    let (description, kind) = db;
    let devices = if args.shared_device {
        "one device shared by all clients"
    } else {
        "one device per client"
    };
    let text = if args.json {
        let mut value = report.wrong.json();
        value["name"] = json!("verify_token");
        value["codes"] = json!("wrong, throttling off");
        value["database"] = json!(kind);
        value["database_detail"] = json!(description);
        value["clients"] = json!(args.clients);
        value["devices"] = json!(devices);
        if let Some(right) = report.right {
            value["right"] = right.json();
        }
        value.to_string()
    } else {
        let mut text = report.wrong.line("verify_token", "ops/s");
        if let Some(right) = report.right {
            text.push('\n');
            text.push_str(&right.line("verify_token right codes", "ops/s"));
        }
        text.push_str(&format!(
            "\n({description}; {} client{}, {devices})",
            args.clients,
            if args.clients == 1 { "" } else { "s" }
        ));
        text
    };
    writeln!(streams.out, "{text}").map_err(Failure::stdout)
}

// --------------------------------------------------------------------------- login-timing

/// The password of the benchmark's known user (the attempts use other ones).
const KNOWN_PASSWORD: &str = "the known user's password";

/// What one `otp bench login-timing` measured: the latency of each wrong-password login, in
/// nanoseconds, for the known user and for a name nobody has, taken in turns.
struct TimingReport {
    known: Vec<u64>,
    unknown: Vec<u64>,
}

/// The median of sorted `values`.
fn median(sorted: &[u64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2] as f64,
        n => (sorted[n / 2 - 1] as f64 + sorted[n / 2] as f64) / 2.0,
    }
}

/// The Mann-Whitney U test of two samples: `U` of the first, its z score (normal
/// approximation with the correction for ties) and the two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
struct MannWhitney {
    u: f64,
    z: f64,
    p: f64,
}

fn mann_whitney(first: &[u64], second: &[u64]) -> MannWhitney {
    let (n1, n2) = (first.len() as f64, second.len() as f64);
    let mut all: Vec<(u64, bool)> = first
        .iter()
        .map(|&v| (v, true))
        .chain(second.iter().map(|&v| (v, false)))
        .collect();
    all.sort_unstable_by_key(|&(value, _)| value);
    // Ranks from 1, ties sharing their average rank.
    let (mut rank_sum, mut ties, mut i) = (0.0, 0.0, 0);
    while i < all.len() {
        let j = i + all[i..].iter().take_while(|(v, _)| *v == all[i].0).count();
        let average = (i + 1 + j) as f64 / 2.0;
        let in_first = all[i..j].iter().filter(|(_, f)| *f).count() as f64;
        rank_sum += average * in_first;
        let t = (j - i) as f64;
        ties += t * t * t - t;
        i = j;
    }
    let u = rank_sum - n1 * (n1 + 1.0) / 2.0;
    let n = n1 + n2;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)).max(1.0));
    let z = if variance > 0.0 {
        (u - n1 * n2 / 2.0) / variance.sqrt()
    } else {
        0.0
    };
    MannWhitney {
        u,
        z,
        p: erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0),
    }
}

/// The complementary error function (Numerical Recipes' `erfcc`, relative error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

async fn run_login_timing(
    store: &Store,
    args: &BenchLoginTimingArgs,
    user_prefix: &str,
) -> Result<TimingReport, Failure> {
    store.migrate().await?;
    // The back-off's statements run on both paths, but never make an attempt wait: every
    // attempt is judged, as the first few of any account are.
    let users = Users::new(store.clone()).with_backoff(PasswordBackoff {
        delay: Duration::ZERO,
        ..PasswordBackoff::default()
    });
    users.migrate().await.map_err(user_failure)?;
    let known = format!("{user_prefix}known");
    let unknown = format!("{user_prefix}unknown");
    users
        .create(NewUser::new(&known, KNOWN_PASSWORD))
        .await
        .map_err(user_failure)?;
    let attempt = |username: &str, i: usize| {
        let users = users.clone();
        let username = username.to_owned();
        async move {
            let password = format!("wrong password {i}");
            let started = Instant::now();
            let found = users
                .authenticate(&username, &password)
                .await
                .map_err(user_failure)?;
            let took = started.elapsed();
            if found.is_some() {
                return Err(Failure::System(
                    "benchmark: a wrong password was accepted".to_owned(),
                ));
            }
            Ok::<u64, Failure>(took.as_nanos().try_into().unwrap_or(u64::MAX))
        }
    };
    // Warm-up: the dummy hash is made on first use, connections are opened.
    for i in 0..3 {
        attempt(&known, i).await?;
        attempt(&unknown, i).await?;
    }
    let samples = usize::from(args.samples);
    let mut report = TimingReport {
        known: Vec::with_capacity(samples),
        unknown: Vec::with_capacity(samples),
    };
    // In turns, which goes first decided at random for each pair, so that drift (caches, the
    // machine's other work, SQLite's checkpoints) falls on both alike.
    let mut coin = [0u8; 1];
    for i in 0..samples {
        getrandom::fill(&mut coin).map_err(|error| Failure::System(error.to_string()))?;
        if coin[0] & 1 == 0 {
            report.known.push(attempt(&known, i).await?);
            report.unknown.push(attempt(&unknown, i).await?);
        } else {
            report.unknown.push(attempt(&unknown, i).await?);
            report.known.push(attempt(&known, i).await?);
        }
    }
    Ok(report)
}

fn user_failure(error: UserError) -> Failure {
    Failure::System(format!("benchmark: {error}"))
}

/// Deletes the benchmark's users and back-off rows from a database that was given.
async fn delete_login_rows(store: &Store, pattern: &str) -> Result<(), Failure> {
    delete_matching(
        store,
        pattern,
        &[
            "DELETE FROM app_users WHERE username_key LIKE $1",
            "DELETE FROM app_password_failures WHERE username_key LIKE $1",
        ],
    )
    .await
}

fn login_timing(
    args: &BenchLoginTimingArgs,
    global: &GlobalArgs,
    streams: &mut Streams<'_>,
) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| Failure::System(format!("cannot start the async runtime: {error}")))?;
    let user_prefix = format!("otp-bench-{}-", unique_suffix());
    let (description, kind, mut report) = runtime.block_on(async {
        let db = BenchDb::create(global.database_url.as_deref()).await?;
        let store = match Store::connect(db.url()).await {
            Ok(store) => store,
            Err(error) => {
                db.clean_up(None, &user_prefix).await?;
                return Err(error.into());
            }
        };
        let report = run_login_timing(&store, args, &user_prefix).await;
        if matches!(db, BenchDb::Given { .. }) {
            delete_login_rows(&store, &format!("{user_prefix}%")).await?;
        }
        let (description, kind) = (db.describe(), db.kind());
        let cleaned = db.clean_up(Some(&store), &user_prefix).await;
        let report = report?;
        cleaned?;
        Ok::<_, Failure>((description, kind, report))
    })?;
    report.known.sort_unstable();
    report.unknown.sort_unstable();
    let test = mann_whitney(&report.known, &report.unknown);
    let (known, unknown) = (median(&report.known), median(&report.unknown));
    let us = |nanos: f64| (nanos / 10.0).round() / 100.0;
    let text = if args.json {
        json!({
            "name": "login_timing",
            "database": kind,
            "database_detail": description,
            "samples": report.known.len(),
            "known_median_us": us(known),
            "unknown_median_us": us(unknown),
            "difference_us": us(known - unknown),
            "mann_whitney_u": test.u,
            "z": (test.z * 1000.0).round() / 1000.0,
            "p": test.p,
        })
        .to_string()
    } else {
        format!(
            "login known user, wrong password: median {} us\n\
             login unknown user: median {} us\n\
             difference of medians: {} us; Mann-Whitney U = {:.0}, z = {:.3}, p = {:.4} \
             (two-sided; p < 0.05 would mean the two are told apart)\n\
             ({description}; {} logins of each, in turns)",
            us(known),
            us(unknown),
            us(known - unknown),
            test.u,
            test.z,
            test.p,
            report.known.len(),
        )
    };
    writeln!(streams.out, "{text}").map_err(Failure::stdout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::run_args;

    #[test]
    fn database_names_are_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "b").as_deref(),
            Some("postgres://postgres@127.0.0.1:5432/b")
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "b").as_deref(),
            Some("postgresql://u:p@h/b?sslmode=disable")
        );
        assert_eq!(with_database("postgres://postgres@127.0.0.1", "b"), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let figures = Figures::from_latencies((1..=100).collect(), Duration::from_secs(1));
        assert_eq!(figures.ops, 100);
        assert_eq!(figures.p50, Duration::from_nanos(50));
        assert_eq!(figures.p99, Duration::from_nanos(99));
        let empty = Figures::from_latencies(Vec::new(), Duration::from_secs(1));
        assert_eq!((empty.ops, empty.p99), (0, Duration::ZERO));
    }

    /// The JSON object's figures, checked for presence and sense.
    fn figures(json: &serde_json::Value) -> (f64, f64, f64) {
        let number = |key: &str| {
            json[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{key} in {json}"))
        };
        let (rate, p50, p99) = (number("ops_per_sec"), number("p50_us"), number("p99_us"));
        assert!(rate > 0.0 && p50 > 0.0 && p99 >= p50, "{json}");
        (rate, p50, p99)
    }

    fn assert_line(line: &str, name: &str, unit: &str) {
        let rest = line
            .strip_prefix(&format!("{name}: "))
            .unwrap_or_else(|| panic!("{line:?}"));
        let (rate, rest) = rest.split_once(' ').unwrap();
        assert!(rate.parse::<u64>().is_ok(), "{line:?}");
        assert!(rest.starts_with(&format!("{unit} (p50 ")), "{line:?}");
        assert!(
            rest.contains(" us, p99 ") && rest.ends_with(" us)"),
            "{line:?}"
        );
    }

    #[test]
    fn hotp_prints_codes_per_second() {
        let (status, out, err) = run_args(&["bench", "hotp", "--seconds", "0.05"]);
        assert_eq!(status, std::process::ExitCode::SUCCESS, "{err}");
        assert_line(out.lines().next().unwrap(), "hotp", "codes/s");
        let (status, out, _) = run_args(&["bench", "hotp", "--seconds", "0.05", "--json"]);
        assert_eq!(status, std::process::ExitCode::SUCCESS);
        figures(&serde_json::from_str(&out).unwrap());
    }

    /// The temporary directories of this process's benchmarks.
    fn leftover_directories() -> Vec<PathBuf> {
        let prefix = format!("otp-bench-{}_", std::process::id());
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect()
    }

    /// Held by the tests that make benchmark databases, which check that none is left behind.
    static DATABASES: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn verify_measures_a_temporary_sqlite_database_and_removes_it() {
        let _one_at_a_time = DATABASES.lock().unwrap_or_else(|e| e.into_inner());
        let (status, out, err) = run_args(&["bench", "verify", "--seconds", "0.1"]);
        assert_eq!(status, std::process::ExitCode::SUCCESS, "{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_line(lines[0], "verify_token", "ops/s");
        assert_line(lines[1], "verify_token right codes", "ops/s");

        let (status, out, err) = run_args(&[
            "bench",
            "verify",
            "--seconds",
            "0.1",
            "--clients",
            "3",
            "--json",
        ]);
        assert_eq!(status, std::process::ExitCode::SUCCESS, "{err}");
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        figures(&json);
        figures(&json["right"]);
        assert_eq!(json["database"], "sqlite");
        assert_eq!(json["clients"], 3);

        let (status, out, err) = run_args(&[
            "bench",
            "verify",
            "--seconds",
            "0.1",
            "--clients",
            "4",
            "--shared-device",
            "--json",
        ]);
        assert_eq!(status, std::process::ExitCode::SUCCESS, "{err}");
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        figures(&json);
        assert!(json.get("right").is_none(), "{json}");
        assert_eq!(leftover_directories(), Vec::<PathBuf>::new());
    }

    #[test]
    fn verify_on_postgres_drops_its_database() {
        let _one_at_a_time = DATABASES.lock().unwrap_or_else(|e| e.into_inner());
        let Ok(url) = std::env::var("OTP_TEST_POSTGRES_URL") else {
            otp_test_support_missing();
            return;
        };
        let (status, out, err) = run_args(&[
            "bench",
            "verify",
            "--seconds",
            "0.1",
            "--json",
            "--database-url",
            &url,
        ]);
        assert_eq!(status, std::process::ExitCode::SUCCESS, "{err}");
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        figures(&json);
        assert_eq!(json["database"], "postgres");
        let pattern = format!("otp_bench_{}_%", std::process::id());
        let left: i64 = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                use sqlx::Connection;
                let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname LIKE $1")
                    .bind(&pattern)
                    .fetch_one(&mut admin)
                    .await
                    .unwrap()
            });
        assert_eq!(left, 0, "a benchmark database was left behind");
    }

    #[test]
    fn mann_whitney_matches_values_computed_by_hand() {
        // Apart: U = 0, z = -4.5 / sqrt(5.25), p = 0.0495 (scipy: mannwhitneyu(..., method=
        // "asymptotic", use_continuity=False) gives the same).
        let apart = mann_whitney(&[1, 2, 3], &[4, 5, 6]);
        assert_eq!(apart.u, 0.0);
        assert!((apart.z + 1.963_961).abs() < 1e-5, "{apart:?}");
        assert!((apart.p - 0.049_535).abs() < 1e-4, "{apart:?}");
        let reversed = mann_whitney(&[4, 5, 6], &[1, 2, 3]);
        assert_eq!((reversed.u, reversed.p), (9.0, apart.p));
        // The same samples, and ties only: nothing to tell apart.
        assert_eq!(mann_whitney(&[1, 2, 3], &[1, 2, 3]).p, 1.0);
        let tied = mann_whitney(&[5, 5], &[5, 5]);
        assert_eq!((tied.u, tied.z, tied.p), (2.0, 0.0, 1.0));
        assert_eq!(median(&[1, 2, 3, 10]), 2.5);
        assert_eq!(median(&[1, 2, 10]), 2.0);
        assert!((erfc(0.0) - 1.0).abs() < 1e-7 && (erfc(-1.0) - 1.842_700_8).abs() < 1e-6);
    }

    #[test]
    fn login_timing_reports_both_medians_and_a_test() {
        let _one_at_a_time = DATABASES.lock().unwrap_or_else(|e| e.into_inner());
        let (status, out, err) = run_args(&["bench", "login-timing", "--samples", "3"]);
        assert_eq!(status, std::process::ExitCode::SUCCESS, "{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("login known user, wrong password: median "),
            "{out}"
        );
        assert!(lines[1].starts_with("login unknown user: median "), "{out}");
        assert!(lines[2].contains("Mann-Whitney U = "), "{out}");
        assert!(lines[3].contains("3 logins of each"), "{out}");
        let mut urls = vec![None];
        match std::env::var("OTP_TEST_POSTGRES_URL") {
            Ok(url) => urls.push(Some(url)),
            Err(_) => otp_test_support_missing(),
        }
        for url in urls {
            let mut args = vec!["bench", "login-timing", "--samples", "2", "--json"];
            args.extend(
                url.as_deref()
                    .map(|url| ["--database-url", url])
                    .into_iter()
                    .flatten(),
            );
            let (status, out, err) = run_args(&args);
            assert_eq!(status, std::process::ExitCode::SUCCESS, "{err}");
            let json: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(json["samples"], 2, "{json}");
            for key in ["known_median_us", "unknown_median_us", "p", "z"] {
                assert!(json[key].is_number(), "{key}: {json}");
            }
            let expected = if url.is_some() { "postgres" } else { "sqlite" };
            assert_eq!(json["database"], expected);
        }
        assert_eq!(leftover_directories(), Vec::<PathBuf>::new());
    }

    /// The skip rule of the workspace's tests for a missing service.
    fn otp_test_support_missing() {
        assert!(
            std::env::var("OTP_TEST_STRICT").as_deref() != Ok("1"),
            "PostgreSQL (OTP_TEST_POSTGRES_URL) is required under OTP_TEST_STRICT=1"
        );
        eprintln!("skipping: PostgreSQL (set OTP_TEST_POSTGRES_URL) is not available");
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for args in [
            &["bench", "verify", "--clients", "0"][..],
            &["bench", "verify", "--clients", "1025"],
            &["bench", "verify", "--seconds", "0"],
            &["bench", "hotp", "--seconds", "-1"],
            &[
                "bench",
                "verify",
                "--database-url",
                "mysql://x/y",
                "--seconds",
                "0.01",
            ],
        ] {
            let (status, out, err) = run_args(args);
            assert_eq!(status, std::process::ExitCode::from(2), "{args:?}: {err}");
            assert_eq!(out, "", "{args:?}");
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        }
    }

    #[test]
    fn seconds_are_bounded() {
        assert!(parse_seconds("0.5").is_ok());
        for bad in ["0", "-1", "nan", "inf", "1e9", "x"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }
}
