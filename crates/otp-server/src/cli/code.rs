//! `otp code`: the one-time code of a credential, given by its parameters or by its URI.

use std::io::Write;

use clap::{Args, Subcommand};
use otp_oath::{Code, Hotp, HotpParams, OtpAuthUri, OtpKind, Secret, Totp, TotpParams};

use super::Failure;
use super::params::{CodeParams, now, parse_step};

/// The text of `otp code --help`.
pub(super) const LONG_ABOUT: &str = "\
Print the one-time code of a credential

Three forms:

  otp code totp --secret <BASE32> [--time <UNIX>] [--step 30] [--t0 0] [--digits 6] [--algorithm sha1]

  otp code hotp --secret <BASE32> --counter <N> [--digits 6] [--algorithm sha1]

  otp code --uri <OTPAUTH-URI> [--time <UNIX>] [--counter <N>]

The code is printed alone on one line. Secrets shorter than 128 bits are accepted here: codes
are made for credentials that already exist, and strength is enforced where credentials are
issued (otp uri build).";

/// Arguments of `otp code`: either `--uri` (with `--time` or `--counter`) or a subcommand.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CodeArgs {
    /// otpauth:// URI of the credential (weak secrets accepted)
    #[arg(long, value_name = "OTPAUTH-URI")]
    pub uri: Option<String>,
    /// Unix time for a TOTP URI [default: now]
    #[arg(
        long,
        value_name = "UNIX",
        requires = "uri",
        allow_negative_numbers = true
    )]
    pub time: Option<i64>,
    /// Counter for an HOTP URI [default: the URI's counter]
    #[arg(long, value_name = "N", requires = "uri")]
    pub counter: Option<u64>,
    /// The kind of credential, when it is given by its parameters instead of a URI.
    #[command(subcommand)]
    pub kind: Option<CodeKind>,
}

/// The credential kinds of `otp code`.
#[derive(Subcommand)]
pub enum CodeKind {
    /// Time-based code (TOTP, RFC 6238)
    Totp(TotpCodeArgs),
    /// Counter-based code (HOTP, RFC 4226)
    Hotp(HotpCodeArgs),
}

/// Arguments of `otp code totp`.
#[derive(Args)]
pub struct TotpCodeArgs {
    /// Shared secret in base32; any case, spaces, dashes and padding allowed, weak (under 128
    /// bits) accepted
    #[arg(long, value_name = "BASE32")]
    pub secret: String,
    /// Unix time to make the code for [default: now]
    #[arg(long, value_name = "UNIX", allow_negative_numbers = true)]
    pub time: Option<i64>,
    /// Seconds per time step
    #[arg(long, value_name = "SECONDS", value_parser = parse_step, default_value_t = 30)]
    pub step: u64,
    /// Unix time at which step 0 begins
    #[arg(
        long,
        value_name = "UNIX",
        allow_negative_numbers = true,
        default_value_t = 0
    )]
    pub t0: i64,
    /// Hash function and digits.
    #[command(flatten)]
    pub params: CodeParams,
}

/// Arguments of `otp code hotp`.
#[derive(Args)]
pub struct HotpCodeArgs {
    /// Shared secret in base32; any case, spaces, dashes and padding allowed, weak (under 128
    /// bits) accepted
    #[arg(long, value_name = "BASE32")]
    pub secret: String,
    /// Counter to make the code for
    #[arg(long, value_name = "N")]
    pub counter: u64,
    /// Hash function and digits.
    #[command(flatten)]
    pub params: CodeParams,
}

pub(super) fn run(args: CodeArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let code = match (args.kind, args.uri) {
        (Some(CodeKind::Totp(totp)), _) => totp_code(&totp)?,
        (Some(CodeKind::Hotp(hotp)), _) => hotp_code(&hotp)?,
        (None, Some(uri)) => uri_code(&uri, args.time, args.counter)?,
        (None, None) => {
            return Err(Failure::Usage(
                "'otp code' needs --uri <OTPAUTH-URI> or a subcommand, totp or hotp \
                 (see 'otp code --help')",
            ));
        }
    };
    writeln!(out, "{code}").map_err(Failure::stdout)
}

/// Parses a secret of an existing credential: weak ones are accepted.
fn existing_secret(text: &str) -> Result<Secret, Failure> {
    Secret::from_base32_legacy_weak(text).map_err(|error| Failure::InvalidArg {
        flag: "--secret",
        error,
    })
}

fn totp_code(args: &TotpCodeArgs) -> Result<Code, Failure> {
    let secret = existing_secret(&args.secret)?;
    let params = TotpParams::default()
        .with_algorithm(args.params.algorithm.into())
        .with_digits(args.params.digits)
        .with_step(args.step)
        .with_t0(args.t0);
    let totp = Totp::new(&secret, params).map_err(|error| Failure::InvalidArg {
        flag: "--step",
        error,
    })?;
    totp_code_at(&totp, args.time)
}

fn totp_code_at(totp: &Totp, time: Option<i64>) -> Result<Code, Failure> {
    totp.code_at(time.unwrap_or_else(now))
        .map_err(|error| Failure::InvalidArg {
            flag: "--time",
            error,
        })
}

fn hotp_code(args: &HotpCodeArgs) -> Result<Code, Failure> {
    let secret = existing_secret(&args.secret)?;
    let params = HotpParams::default()
        .with_algorithm(args.params.algorithm.into())
        .with_digits(args.params.digits);
    Ok(Hotp::new(&secret, params).code(args.counter))
}

fn uri_code(uri: &str, time: Option<i64>, counter: Option<u64>) -> Result<Code, Failure> {
    let uri = OtpAuthUri::parse_legacy_weak(uri).map_err(Failure::Input)?;
    match uri.kind {
        OtpKind::Totp { .. } => {
            if counter.is_some() {
                return Err(Failure::Usage(
                    "--counter applies to HOTP URIs, and this one is TOTP (use --time)",
                ));
            }
            let totp = uri.to_totp().map_err(Failure::Input)?;
            totp_code_at(&totp, time)
        }
        OtpKind::Hotp {
            counter: uri_counter,
        } => {
            if time.is_some() {
                return Err(Failure::Usage(
                    "--time applies to TOTP URIs, and this one is HOTP (use --counter)",
                ));
            }
            Ok(uri.to_hotp().code(counter.unwrap_or(uri_counter)))
        }
    }
}
