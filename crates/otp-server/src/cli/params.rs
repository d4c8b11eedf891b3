//! Arguments shared by several commands, and the parsers of their values.

use std::error::Error as StdError;

use clap::{Args, ValueEnum};
use otp_oath::{Algorithm, Digits, Error};

/// The HMAC hash functions, as named on the command line (in any case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HashAlgorithm {
    /// HMAC-SHA1, what nearly every authenticator app supports.
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl From<HashAlgorithm> for Algorithm {
    fn from(algorithm: HashAlgorithm) -> Self {
        match algorithm {
            HashAlgorithm::Sha1 => Algorithm::Sha1,
            HashAlgorithm::Sha256 => Algorithm::Sha256,
            HashAlgorithm::Sha512 => Algorithm::Sha512,
        }
    }
}

/// `--algorithm` and `--digits`, for the commands that make codes or URIs.
#[derive(Args, Clone, Copy, Debug)]
pub struct CodeParams {
    /// Hash function under HMAC
    #[arg(long, value_enum, ignore_case = true, default_value_t = HashAlgorithm::Sha1)]
    pub algorithm: HashAlgorithm,
    /// Digits per code, 6 to 10
    #[arg(long, value_name = "N", value_parser = parse_digits, default_value_t = Digits::SIX)]
    pub digits: Digits,
}

type ParseResult<T> = Result<T, Box<dyn StdError + Send + Sync>>;

/// A number of digits from 6 to 10.
pub(crate) fn parse_digits(text: &str) -> ParseResult<Digits> {
    Ok(Digits::new(text.parse()?)?)
}

/// A TOTP time step or period: a whole number of seconds, at least 1.
pub(crate) fn parse_step(text: &str) -> ParseResult<u64> {
    match text.parse()? {
        0 => Err(Error::ZeroTimeStep.into()),
        step => Ok(step),
    }
}

/// The current Unix time, in whole seconds.
pub(crate) fn now() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}
