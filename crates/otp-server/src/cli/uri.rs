//! `otp uri parse` and `otp uri build`.

use std::io::Write;

use clap::{Args, Subcommand, ValueEnum};
use otp_oath::{Algorithm, Error, OtpAuthUri, OtpKind, Secret};
use serde::Serialize;

use super::Failure;
use super::params::{CodeParams, parse_step};

/// The subcommands of `otp uri`.
#[derive(Subcommand)]
pub enum UriCommand {
    /// Print the fields of an otpauth:// URI as one pretty-printed JSON object
    ///
    /// The object has the keys type ("totp" or "hotp"), issuer (null if none), account, secret
    /// (upper-case base32 without padding), algorithm ("SHA1", "SHA256" or "SHA512"), digits,
    /// period (TOTP) or counter (HOTP), and image (null if none). Weak secrets (under 128 bits)
    /// are accepted.
    Parse(UriParseArgs),
    /// Build an otpauth:// URI, with a new 160-bit secret unless --secret is given
    Build(UriBuildArgs),
}

/// Arguments of `otp uri parse`.
#[derive(Args)]
pub struct UriParseArgs {
    /// The otpauth:// URI
    #[arg(value_name = "OTPAUTH-URI")]
    pub uri: String,
}

/// The credential kinds of `otp uri build --type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OtpType {
    /// Time-based (RFC 6238).
    Totp,
    /// Counter-based (RFC 4226).
    Hotp,
}

/// Arguments of `otp uri build`.
#[derive(Args)]
pub struct UriBuildArgs {
    /// Kind of credential
    #[arg(long = "type", value_name = "TYPE", value_enum, ignore_case = true)]
    pub kind: OtpType,
    /// Account name, for example a user name or an email address
    #[arg(long)]
    pub account: String,
    /// Service the account belongs to
    #[arg(long)]
    pub issuer: Option<String>,
    /// Shared secret in base32, at least 128 bits [default: a new random 160-bit secret]
    #[arg(long, value_name = "BASE32")]
    pub secret: Option<String>,
    /// Accept a --secret shorter than 128 bits (for re-issuing an old credential)
    #[arg(long, requires = "secret")]
    pub allow_weak_secret: bool,
    /// Hash function and digits.
    #[command(flatten)]
    pub params: CodeParams,
    /// Seconds per time step (TOTP only) [default: 30]
    #[arg(long, value_name = "SECONDS", value_parser = parse_step)]
    pub period: Option<u64>,
    /// Counter of the next code (HOTP only) [default: 0]
    #[arg(long, value_name = "N")]
    pub counter: Option<u64>,
    /// URL of an image that some apps show beside the account
    #[arg(long, value_name = "URL")]
    pub image: Option<String>,
}

pub(super) fn run(command: UriCommand, out: &mut dyn Write) -> Result<(), Failure> {
    match command {
        UriCommand::Parse(args) => parse(&args, out),
        UriCommand::Build(args) => build(args, out),
    }
}

/// The JSON form of a parsed URI.
#[derive(Serialize)]
struct UriFields<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    issuer: Option<&'a str>,
    account: &'a str,
    secret: &'a str,
    algorithm: &'static str,
    digits: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    period: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    counter: Option<u64>,
    image: Option<&'a str>,
}

fn parse(args: &UriParseArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let uri = OtpAuthUri::parse_legacy_weak(&args.uri).map_err(Failure::Input)?;
    let secret = uri.secret.to_base32();
    let (kind, period, counter) = match uri.kind {
        OtpKind::Totp { period } => ("totp", Some(period), None),
        OtpKind::Hotp { counter } => ("hotp", None, Some(counter)),
    };
    let fields = UriFields {
        kind,
        issuer: uri.issuer.as_deref(),
        account: &uri.account,
        secret: &secret,
        algorithm: uri.algorithm.uri_name(),
        digits: uri.digits.get(),
        period,
        counter,
        image: uri.image.as_deref(),
    };
    // Written straight to the output, so that no other copy of the secret is made.
    serde_json::to_writer_pretty(&mut *out, &fields)
        .map_err(|error| Failure::stdout(error.into()))?;
    writeln!(out).map_err(Failure::stdout)
}

fn build(args: UriBuildArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let secret = match &args.secret {
        None => Ok(Secret::generate()),
        Some(text) if args.allow_weak_secret => Secret::from_base32_legacy_weak(text),
        Some(text) => Secret::from_base32(text),
    }
    .map_err(|error| Failure::InvalidArg {
        flag: "--secret",
        error,
    })?;
    let mut uri = match args.kind {
        OtpType::Totp if args.counter.is_some() => {
            return Err(Failure::Usage("--counter applies to --type hotp only"));
        }
        OtpType::Hotp if args.period.is_some() => {
            return Err(Failure::Usage("--period applies to --type totp only"));
        }
        OtpType::Totp => {
            let mut uri = OtpAuthUri::totp(secret, args.account);
            uri.kind = OtpKind::Totp {
                period: args.period.unwrap_or(30),
            };
            uri
        }
        OtpType::Hotp => OtpAuthUri::hotp(secret, args.account, args.counter.unwrap_or(0)),
    }
    .with_algorithm(Algorithm::from(args.params.algorithm))
    .with_digits(args.params.digits);
    uri.issuer = args.issuer;
    uri.image = args.image;
    let text = uri.to_uri().map_err(|error| {
        let flag = match &error {
            Error::InvalidUri {
                field: "issuer", ..
            } => "--issuer",
            Error::InvalidUri {
                field: "period", ..
            } => "--period",
            _ => "--account",
        };
        Failure::InvalidArg { flag, error }
    })?;
    writeln!(out, "{}", text.as_str()).map_err(Failure::stdout)
}
