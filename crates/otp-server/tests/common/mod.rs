//! Helpers shared by the integration tests: running the `otp` binary, finding external tools,
//! and an encoder and a random number generator that do not come from the code under test.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

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
        other => other,
    };
    if std::env::var_os("OTP_TEST_STRICT").is_some_and(|value| value == "1") {
        panic!(
            "{name} is not installed, and OTP_TEST_STRICT=1 forbids skipping the tests that \
             need it (on Debian: apt-get install {package})"
        );
    }
    eprintln!("skipping: {name} not installed");
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
