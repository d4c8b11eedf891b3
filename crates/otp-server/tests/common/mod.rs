//! Helpers shared by the integration tests: running the `otp` binary, finding external tools,
//! real databases for the operator commands (a SQLite file in a temporary directory, a fresh
//! PostgreSQL database), a running `otp serve` and an HTTP client for it, an SMTP sink, and an
//! encoder and a random number generator that do not come from the code under test; the login
//! and verification steps of the reliability tests ([`flows`]) and direct reads of their
//! database ([`probe`]).

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

pub(crate) mod flows;
pub(crate) mod http;
pub(crate) mod probe;
pub(crate) mod server;
pub(crate) mod smtp;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The `otp` binary built by Cargo for these tests.
pub(crate) const OTP: &str = env!("CARGO_BIN_EXE_otp");

/// What a finished process left behind.
#[derive(Debug)]
pub(crate) struct Output {
    /// The exit code (`None` if a signal ended the process).
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `otp` with `args` and waits for it.
pub(crate) fn otp<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(Command::new(OTP).args(args))
}

/// Runs `command`, panicking only if it cannot be started.
pub(crate) fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    Output {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// Whether `name` is on `PATH`. If it is not, prints `skipping: NAME not installed` to stderr
/// and returns `false`, so that the calling test can return early; but if the environment
/// variable `OTP_TEST_STRICT` is `1`, panics instead, so that CI cannot pass by skipping.
pub(crate) fn require_tool(name: &str) -> bool {
    if on_path(name) {
        return true;
    }
    let package = match name {
        "zbarimg" => "zbar-tools",
        "rsvg-convert" => "librsvg2-bin",
        other => other,
    };
    missing(
        &format!("{name} not installed"),
        &format!("on Debian: apt-get install {package}"),
    );
    false
}

/// Whether a missing outside tool or service must fail the test (`OTP_TEST_STRICT=1`, as in CI).
pub(crate) fn strict() -> bool {
    std::env::var_os("OTP_TEST_STRICT").is_some_and(|value| value == "1")
}

/// Prints `skipping: WHAT`, or panics with `how` to fix it under `OTP_TEST_STRICT=1`.
pub(crate) fn missing(what: &str, how: &str) {
    if strict() {
        panic!("{what}, and OTP_TEST_STRICT=1 forbids skipping the tests that need it ({how})");
    }
    eprintln!("skipping: {what}");
}

fn on_path(name: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| is_executable(&dir.join(name)))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file() || path.with_extension("exe").is_file()
}

/// RFC 4648 base32, upper case, with `=` padding: written here so that the tests do not check
/// `otp-oath`'s decoder against its own encoder.
pub(crate) fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in bytes.chunks(5) {
        let mut block = [0u8; 5];
        block[..chunk.len()].copy_from_slice(chunk);
        let bits = block.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let symbols = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < symbols {
                let index = (bits >> (35 - 5 * i)) & 31;
                out.push(char::from(ALPHABET[index as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SplitMix64: a tiny deterministic generator, so that a failing case can be reproduced from
/// its seed.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `range` (inclusive), nearly uniform.
    pub(crate) fn in_range(&mut self, range: std::ops::RangeInclusive<u64>) -> u64 {
        let (low, high) = (*range.start(), *range.end());
        match (high - low).checked_add(1) {
            Some(span) => low + self.next_u64() % span,
            None => self.next_u64(),
        }
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.in_range(0..=items.len() as u64 - 1) as usize]
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// A 256-bit application key as `ID:HEX`, made from `seed`.
pub(crate) fn application_key(id: u32, seed: u64) -> String {
    format!("{id}:{}", hex(&SplitMix64::new(seed).bytes(32)))
}

/// A database for the operator commands of one test, and a working directory for the `otp`
/// processes run on it. Dropping it removes the directory (and the SQLite file in it) or drops
/// the PostgreSQL database.
pub(crate) struct TestDb {
    /// The `--database-url` of the commands.
    pub(crate) url: String,
    dir: tempfile::TempDir,
    /// Environment of every command, on top of a process environment without `OTP_*`.
    env: Vec<(String, String)>,
    /// The server's admin URL and the database's name, to drop it.
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A SQLite file `otp.db` in a new temporary directory (not created yet: the first command
    /// creates it, with its key file `otp.db.key`).
    pub(crate) fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("otp.db").display());
        Self {
            url,
            dir,
            env: Vec::new(),
            postgres: None,
        }
    }

    /// A fresh database on the PostgreSQL server of `OTP_TEST_POSTGRES_URL` (an admin URL such
    /// as `postgres://postgres@127.0.0.1:5432/postgres`), with an application key in
    /// `OTP_SECRET_KEY`; `None` after the skip notice if the variable is not set.
    pub(crate) fn postgres() -> Option<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let Some(admin_url) = std::env::var("OTP_TEST_POSTGRES_URL")
            .ok()
            .filter(|url| !url.is_empty())
        else {
            missing(
                "PostgreSQL (OTP_TEST_POSTGRES_URL is not set)",
                "set it to a server's admin URL, such as \
                 postgres://postgres@127.0.0.1:5432/postgres",
            );
            return None;
        };
        let name = format!(
            "otp_cli_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        postgres_admin(&admin_url, &format!("CREATE DATABASE {name}"));
        let base = admin_url
            .split('?')
            .next()
            .and_then(|url| url.rsplit_once('/'))
            .map_or(admin_url.as_str(), |(base, _)| base);
        Some(Self {
            url: format!("{base}/{name}"),
            dir: tempfile::tempdir().expect("temporary directory"),
            env: vec![("OTP_SECRET_KEY".to_owned(), application_key(1, 1))],
            postgres: Some((admin_url.clone(), name)),
        })
    }

    pub(crate) fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// The working directory of the commands.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The SQLite key file, which the first command creates.
    pub(crate) fn key_file(&self) -> Option<PathBuf> {
        (!self.is_postgres()).then(|| self.dir.path().join("otp.db.key"))
    }

    /// Sets an environment variable for every later command.
    pub(crate) fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(key, _)| key != name);
        self.env.push((name.to_owned(), value.to_owned()));
    }

    /// The application keys, as `ID:HEX` lines: the key file's for SQLite, `OTP_SECRET_KEY`'s
    /// for PostgreSQL.
    pub(crate) fn keys(&self) -> String {
        match self.key_file() {
            Some(path) => std::fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("{}: {err}", path.display())),
            None => self
                .env
                .iter()
                .find(|(name, _)| name == "OTP_SECRET_KEY")
                .map(|(_, keys)| keys.clone())
                .unwrap_or_default(),
        }
    }

    /// Replaces the application keys: the key file for SQLite, `OTP_SECRET_KEY` for
    /// PostgreSQL.
    pub(crate) fn set_keys(&mut self, keys: &str) {
        match self.key_file() {
            Some(path) => std::fs::write(&path, keys)
                .unwrap_or_else(|err| panic!("{}: {err}", path.display())),
            None => self.set_env("OTP_SECRET_KEY", keys),
        }
    }

    /// `otp --database-url URL ARGS...`, not started yet.
    pub(crate) fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = clean_command(self.dir.path());
        command.arg("--database-url").arg(&self.url).args(args);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs `otp --database-url URL ARGS...` and waits for it.
    pub(crate) fn otp<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(&mut self.command(args))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.postgres.take() {
            postgres_admin(
                &admin_url,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

/// The `otp` binary to run in `dir`, without any `OTP_*` variable of this process's
/// environment, so that the settings and keys of the machine running the tests do not leak in.
pub(crate) fn clean_command(dir: &Path) -> Command {
    let mut command = Command::new(OTP);
    command.current_dir(dir);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTP_") {
            command.env_remove(&name);
        }
    }
    command
}

/// Runs one statement on the PostgreSQL server of `admin_url`.
fn postgres_admin(admin_url: &str, statement: &str) {
    use sqlx::{Connection, Executor};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|err| panic!("connect to OTP_TEST_POSTGRES_URL: {err}"));
        admin
            .execute(statement)
            .await
            .unwrap_or_else(|err| panic!("{statement}: {err}"));
        let _ = admin.close().await;
    });
}

/// Runs each listed test, an `fn(&mut TestDb)`, against a SQLite file and against a fresh
/// PostgreSQL database (skipped, or failed under `OTP_TEST_STRICT=1`, without
/// `OTP_TEST_POSTGRES_URL`).
#[macro_export]
macro_rules! operator_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name(&mut $crate::common::TestDb::sqlite());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(mut db) = $crate::common::TestDb::postgres() {
                        super::$name(&mut db);
                    }
                }
            )*
        }
    };
}
