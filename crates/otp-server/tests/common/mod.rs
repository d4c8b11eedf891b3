//! Helpers shared by the integration tests: running the `otp` binary, finding external tools,
//! real databases for the operator commands (`otp_test_support`'s SQLite file in a temporary
//! directory or fresh PostgreSQL database, with the commands' environment), a running
//! `otp serve` and an HTTP client for it, and an encoder and a random number generator that do
//! not come from the code under test; the login and verification steps of the reliability
//! tests ([`flows`]) and direct reads of their database ([`probe`]). The SMTP sink is
//! `otp_test_support::smtp`.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

pub(crate) mod flows;
pub(crate) mod http;
pub(crate) mod probe;
pub(crate) mod server;

use std::ffi::OsStr;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
    Output::from(output)
}

/// Runs `command` with `input` on its standard input, panicking only if it cannot be started
/// or fed.
pub(crate) fn run_with_input(command: &mut Command, input: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    Output::from(child.wait_with_output().unwrap())
}

/// Starts every command at once, then waits for each; their outputs in the same order.
pub(crate) fn run_concurrently(commands: impl IntoIterator<Item = Command>) -> Vec<Output> {
    let children: Vec<_> = commands
        .into_iter()
        .map(|mut command| {
            command
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"))
        })
        .collect();
    children
        .into_iter()
        .map(|child| Output::from(child.wait_with_output().expect("wait for otp")))
        .collect()
}

impl From<std::process::Output> for Output {
    fn from(output: std::process::Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
        }
    }
}

/// Asserts exit status `code`, nothing on stdout and exactly one `otp: ` line on stderr.
#[track_caller]
pub(crate) fn assert_one_line_error(out: &Output, code: i32, args: &[&str]) {
    assert_eq!(out.code, Some(code), "otp {args:?}: {out:?}");
    assert_eq!(out.stdout, "", "otp {args:?} printed on stdout");
    assert_eq!(
        out.stderr.lines().count(),
        1,
        "otp {args:?}: not one line: {:?}",
        out.stderr
    );
    assert!(
        out.stderr.starts_with("otp: ") && out.stderr.ends_with('\n'),
        "otp {args:?}: {:?}",
        out.stderr
    );
}

/// A confirmed TOTP device "Phone" of `user_key` with `secret` and the default parameters,
/// made in the store directly (the in-process tests' fixture).
pub(crate) async fn add_phone(
    otp: &otp_core::Otp,
    user_key: &str,
    secret: &otp_oath::Secret,
) -> otp_core::Device {
    otp.create_totp_device(
        user_key,
        "Phone",
        Some(secret.clone()),
        otp_core::TotpOptions::default(),
        true,
    )
    .await
    .unwrap()
}

/// Runs `future` on a runtime of two worker threads made for it (and gone afterwards).
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// Whether `name` is on `PATH`. If it is not, says how to install it with
/// `otp_test_support::missing` (a skip notice, or a failure under `OTP_TEST_STRICT=1`) and
/// returns `false`, so that the calling test can return early.
pub(crate) fn require_tool(name: &str) -> bool {
    if on_path(name) {
        return true;
    }
    let package = match name {
        "zbarimg" => "zbar-tools",
        "rsvg-convert" => "librsvg2-bin",
        other => other,
    };
    otp_test_support::missing(&format!("{name} (on Debian: apt-get install {package})"));
    false
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

/// `application/x-www-form-urlencoded` encoding of one name or value (a space is `+`).
pub(crate) fn form_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// `NAME=VALUE&...` of `fields`, form-encoded.
pub(crate) fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(key, value)| format!("{}={}", form_encode(key), form_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
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

/// A database for the operator commands of one test, and the environment of the `otp`
/// processes run on it, in its directory: `otp_test_support`'s database (which it derefs to),
/// with an application key in `OTP_SECRET_KEY` for PostgreSQL (SQLite's first command makes
/// its key file `otp.db.key` beside the database).
pub(crate) struct TestDb {
    db: otp_test_support::TestDb,
    /// Environment of every command, on top of a process environment without `OTP_*`.
    env: Vec<(String, String)>,
}

impl TestDb {
    /// A SQLite file `otp.db` in a new temporary directory (not created yet: the first command
    /// creates it, with its key file `otp.db.key`).
    pub(crate) fn sqlite() -> Self {
        Self::new(otp_test_support::TestDb::sqlite())
    }

    /// A fresh database on the PostgreSQL server of `OTP_TEST_POSTGRES_URL`, with an
    /// application key in `OTP_SECRET_KEY`; `None` after the skip notice if the variable is not
    /// set.
    pub(crate) fn postgres() -> Option<Self> {
        otp_test_support::TestDb::postgres_blocking().map(Self::new)
    }

    fn new(db: otp_test_support::TestDb) -> Self {
        let mut env = Vec::new();
        if db.is_postgres() {
            env.push(("OTP_SECRET_KEY".to_owned(), application_key(1, 1)));
        }
        Self { db, env }
    }

    /// The SQLite key file, which the first command creates.
    pub(crate) fn key_file(&self) -> Option<PathBuf> {
        (!self.is_postgres()).then(|| self.dir().join("otp.db.key"))
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
        let mut command = clean_command(self.dir());
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

impl std::ops::Deref for TestDb {
    type Target = otp_test_support::TestDb;

    fn deref(&self) -> &otp_test_support::TestDb {
        &self.db
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

/// Runs each listed test against a SQLite file and against a fresh PostgreSQL database
/// (skipped, or failed under `OTP_TEST_STRICT=1`, without `OTP_TEST_POSTGRES_URL`). Each test
/// is an `fn(&mut TestDb)`; or, after `run: RUNNER;`, what the file's `RUNNER(&mut TestDb,
/// test)` runs (an async scenario, on a runtime made outside the database's life).
#[macro_export]
macro_rules! database_tests {
    (@each $run:path; $($name:ident),*) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    $run(&mut $crate::common::TestDb::sqlite(), super::$name);
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    if let Some(mut db) = $crate::common::TestDb::postgres() {
                        $run(&mut db, super::$name);
                    }
                }
            )*
        }
    };
    (run: $run:ident; $($name:ident),* $(,)?) => {
        $crate::database_tests!(@each super::$run; $($name),*);
    };
    ($($name:ident),* $(,)?) => {
        $crate::database_tests!(@each $crate::common::call; $($name),*);
    };
}

/// The runner of [`database_tests!`] for plain `fn(&mut TestDb)` tests.
pub(crate) fn call(db: &mut TestDb, test: fn(&mut TestDb)) {
    test(db);
}
