//! The `otp` command line: its arguments ([`Cli`] and one [`Command`] per subcommand) and
//! [`run`], which parses them and carries the command out.
//!
//! ## Commands
//!
//! Tools for credentials, which need no database:
//!
//! | command | prints on standard output |
//! |---|---|
//! | `otp code totp --secret B32 [--time T] [--step S] [--t0 T0] [--digits D] [--algorithm A]` | the code, alone on one line |
//! | `otp code hotp --secret B32 --counter N [--digits D] [--algorithm A]` | the code |
//! | `otp code --uri URI [--time T] [--counter N]` | the code of that credential |
//! | `otp uri parse URI` | the URI's fields as one pretty-printed JSON object |
//! | `otp uri build --type totp\|hotp --account A [...]` | the URI (with a newly generated secret unless `--secret` is given) |
//! | `otp qr URI [--png FILE \| --svg FILE]` | the QR code drawn in the terminal, or nothing when writing a file |
//!
//! Operator commands, on the database of the framework (see [Operator
//! commands](#operator-commands)):
//!
//! | command | prints on standard output |
//! |---|---|
//! | `otp migrate` | `the database schema is up to date` |
//! | `otp device add totp\|hotp --user U [--name N] [--digits D] [--step S] [--algorithm A] [--unconfirmed] [--json]` | the device id, the otpauth:// URI and its QR code |
//! | `otp device add static --user U [--count N] [--json]` | the device id and its backup codes, shown this once |
//! | `otp device add email --user U --email ADDRESS [--name N] [--unconfirmed] [--json]` | the device id |
//! | `otp device list --user U [--json]` | a table of the user's devices, or a JSON array |
//! | `otp device remove ID` | `removed ID` |
//! | `otp device reset ID` | `cleared the throttling of ID` |
//! | `otp user add USERNAME [--email ADDRESS] [--password-stdin] [--staff]` | `added user USERNAME (key ID)`, and `password: …` when it made one |
//! | `otp user reset --user U` | how many failures were cleared from the account |
//! | `otp static-token add --user U [--token T]` | the code, alone on one line |
//! | `otp challenge --user U --device ID` | where the code was sent |
//! | `otp verify --user U --device ID TOKEN` | `verified` |
//! | `otp keys rotate` | how many devices were examined and re-sealed |
//! | `otp serve [--addr IP:PORT] [--config FILE]` | `otp serve: listening on http://ADDR`, then serves until Ctrl-C or SIGTERM (see [`crate::app`]) |
//! | `otp bench verify [--database-url URL] [--seconds S] [--clients N] [--shared-device] [--json]` | `verify_token: N ops/s (p50 X us, p99 Y us)` for wrong codes, then the same for right codes, on a fresh database (see `bench.rs`) |
//! | `otp bench hotp [--seconds S] [--json]` | `hotp: N codes/s (p50 X us, p99 Y us)`, in process |
//! | `otp bench login-timing [--database-url URL] [--samples N] [--json]` | the median wrong-password login of a known user and of an unknown name, their difference and a Mann-Whitney U test (see `bench.rs`) |
//!
//! `otp uri parse` prints, for example:
//!
//! ```json
//! {
//!   "type": "totp",
//!   "issuer": "Example",
//!   "account": "alice@example.com",
//!   "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
//!   "algorithm": "SHA1",
//!   "digits": 6,
//!   "period": 30,
//!   "image": null
//! }
//! ```
//!
//! `issuer` and `image` are `null` when absent; an HOTP URI has `counter` in place of `period`;
//! `secret` is upper-case base32 without padding.
//!
//! ## Weak secrets
//!
//! Making codes for a credential that already exists (`otp code`, `otp qr`, `otp uri parse`)
//! accepts secrets shorter than the 128 bits of RFC 4226: the credential is what it is, and
//! 80-bit secrets are common. Issuing a new one (`otp uri build --secret`) refuses them unless
//! `--allow-weak-secret` is given.
//!
//! ## Operator commands
//!
//! The operator commands work on the database of the framework, the one the server uses:
//!
//! * **Users**: every `--user U` takes a username of the server's users or a user key. A
//!   value of digits only is always a key (the server's user id; no username is digits only);
//!   any other value is the username of a user if one has it, in any case, else a key as
//!   given (for users that the server's table does not hold). `otp user add` creates users:
//!   with `--password-stdin` it reads the password from the first line of standard input,
//!   otherwise it makes a random one and prints it once.
//! * **Database**: `--database-url URL` (before or after the subcommand), else the environment
//!   variable `OTP_DATABASE_URL`, else `sqlite://otp.db` in the working directory. URLs are
//!   `sqlite://PATH` or `postgres://USER@HOST/DATABASE`; they are never printed, since a
//!   PostgreSQL URL may hold a password.
//! * **Schema**: every operator command applies the migrations not applied yet before it does
//!   anything else (they are idempotent and cheap), so a fresh machine works without a separate
//!   step; `otp migrate` does only that, for deployments that migrate explicitly. The schema is
//!   the whole app's: the framework's devices, and the sessions and users of `otp serve`.
//! * **Keys**: `OTP_SECRET_KEY` (`ID:HEX` entries, newest last), else the key file
//!   `OTP_KEY_FILE`, else, for SQLite, the key file beside the database (`otp.db.key`),
//!   created with one fresh key on first use. PostgreSQL without a key is an error: a database
//!   shared by several servers never gets a key made up by one of them. `otp migrate` needs no
//!   key.
//! * **Mail**: `otp challenge` sends through `OTP_SMTP_URL` (`smtp://[USER:PASSWORD@]HOST[:PORT]`).
//!   Without it the development mailer writes the message, code included, to the log on
//!   standard error, and the command says that no mail was sent.
//! * **Settings**: environment variables of django-otp's names (`OTP_TOTP_ISSUER`,
//!   `OTP_FAILURE_BUDGET`, `OTP_EMAIL_COOLDOWN_DURATION`, ...) override the defaults, as
//!   `otp_core::Settings::from_env` reads them; a bad value is an error (status 2).
//! * **Log**: events of the framework go to standard error, filtered by `OTP_LOG` (directives
//!   such as `warn` or `otp_core=info,sqlx=warn`). By default only the development mailer's
//!   messages are shown, so that every failure stays one line.
//! * **Concurrency**: concurrent commands on one SQLite file wait for each other (30-second busy
//!   timeout) instead of failing with "database is locked"; a token is accepted at most once
//!   however many `otp verify` run at the same time.
//!
//! Empty environment variables count as unset.
//!
//! With `--json`, `otp device add` prints one pretty-printed JSON object:
//!
//! | kind | keys |
//! |---|---|
//! | `totp`, `hotp` | `id`, `kind`, `name`, `confirmed`, `uri` |
//! | `static` | `id`, `kind`, `name`, `confirmed`, `codes` (an array of strings) |
//! | `email` | `id`, `kind`, `name`, `confirmed`, `email` |
//!
//! and `otp device list --json` prints an array of objects with the keys `id` (such as
//! `"totp/1"`), `kind`, `name`, `confirmed`, `created_at` and `last_used_at` (Unix time in
//! whole seconds, `last_used_at` `null` if never used), `throttle_failures` (consecutive
//! failures of the device), and for `static` devices `codes_remaining`. The table without
//! `--json` shows times in RFC 3339, UTC.
//!
//! ## Exit statuses and messages
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success (`otp verify`: the token was accepted) |
//! | 1 | a token was rejected (`otp verify`: wrong, replayed, throttled, or not allowed) or a challenge was refused (`otp challenge`: cooldown, or not allowed); or the output could not be written |
//! | 2 | usage or input error, unknown device, missing key, database or mail server failure |
//!
//! Every failure is reported as exactly one line on standard error, beginning with `otp: `,
//! except a closed pipe on standard output (`otp qr URI | head`), which only sets status 1.
//! The reasons of `otp verify` are `invalid token`, `throttled: retry in N s` and
//! `not allowed: REASON`; those of `otp challenge` are `cooldown: retry in N s` and
//! `not allowed: REASON`. An unknown device is `otp: no such device` (status 2), as is a
//! device of another user.
//!
//! No message ever repeats a secret: secrets are parsed by this module, not by clap, and parse
//! errors only give a position; argument values that clap rejects (an unexpected word, an
//! unknown subcommand, a bad value) are named by their flag, not repeated, since a secret with
//! unquoted spaces (`--secret abcd efgh`) would otherwise end up on the screen and in logs.
//!
//! ## Adding a command
//!
//! Add a variant to [`Command`] whose fields are a `clap::Args` struct, in a module of its own
//! next to `code.rs` with a `run(args, out) -> Result<(), Failure>` function, and one arm to
//! `Command::execute`. A command that needs the database takes the global options and the
//! `Streams` instead, and opens a `Session` (in `session.rs`): it builds the runtime, the key
//! ring and the framework, runs the migrations, and closes the database when dropped. Report
//! problems as a `Failure` so that the exit status and the one-line message rule hold for it
//! too.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, Subcommand};

mod bench;
mod code;
mod device;
mod keys;
mod params;
mod qr;
mod serve;
mod session;
mod uri;
mod user;
mod verify;

pub use bench::{BenchCommand, BenchHotpArgs, BenchLoginTimingArgs, BenchVerifyArgs};
pub use code::{CodeArgs, CodeKind, HotpCodeArgs, TotpCodeArgs};
pub use device::{
    AddCommon, DeviceAddCommand, DeviceCommand, DeviceIdArgs, DeviceListArgs, EmailAddArgs,
    HotpAddArgs, StaticAddArgs, TotpAddArgs,
};
pub use keys::KeysCommand;
pub use params::{CodeParams, HashAlgorithm};
pub use qr::QrArgs;
pub use serve::ServeArgs;
pub use uri::{OtpType, UriBuildArgs, UriCommand, UriParseArgs};
pub use user::{StaticTokenAddArgs, StaticTokenCommand, UserAddArgs, UserCommand, UserResetArgs};
pub use verify::{ChallengeArgs, VerifyArgs};

/// Exit status of a usage, input or system error.
const EXIT_USAGE: u8 = 2;
/// Exit status when output cannot be written.
const EXIT_OUTPUT: u8 = 1;
/// Exit status of a rejected token or a refused challenge.
const EXIT_REJECTED: u8 = 1;

/// The exit statuses, for `--help`.
const EXIT_HELP: &str = "Exit status: 0 on success, 1 if a token is rejected or a challenge refused \
                         (or output cannot be written), 2 for usage, input and system errors (one \
                         line on standard error, never containing a secret).";

/// Command-line tool of the otp two-factor framework: one-time codes, otpauth:// URIs and QR
/// codes, and the operator commands of its database.
#[derive(Parser)]
#[command(
    name = "otp",
    bin_name = "otp",
    version,
    // A missing subcommand is a usage error like any other: one line, not the whole help.
    arg_required_else_help = false,
    after_help = EXIT_HELP,
    after_long_help = concat!(
        "Exit status: 0 on success, 1 if a token is rejected or a challenge refused (or output \
         cannot be written), 2 for usage, input and system errors (one line on standard error, \
         never containing a secret).\n\n",
        "Operator commands use the database of --database-url, else OTP_DATABASE_URL, else \
         sqlite://otp.db in the working directory, and apply its migrations first. --user takes \
         a username or a user key (digits only: always the key). Keys come from \
         OTP_SECRET_KEY, else OTP_KEY_FILE, else (SQLite) the key file beside the database, \
         created on first use. Mail goes through OTP_SMTP_URL, else to the log. Settings come from \
         django-otp's variables (OTP_TOTP_ISSUER, OTP_FAILURE_BUDGET, ...). OTP_LOG filters the \
         log on standard error.\n\n",
        "Secrets given on the command line are visible to other users of this machine (ps, \
         /proc) and may be kept in the shell history."
    )
)]
pub struct Cli {
    /// Options of the operator commands.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every operator command takes, before or after its name.
#[derive(Args, Clone, Debug, Default)]
pub struct GlobalArgs {
    /// Database of the operator commands: sqlite://PATH or postgres://USER@HOST/DATABASE
    /// [default: $OTP_DATABASE_URL, else sqlite://otp.db]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
}

/// The subcommands of `otp`.
#[derive(Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Print the one-time code of a credential
    #[command(long_about = code::LONG_ABOUT)]
    Code(CodeArgs),
    /// Parse or build otpauth:// URIs
    #[command(subcommand, arg_required_else_help = false)]
    Uri(UriCommand),
    /// Show an otpauth:// URI as a QR code, in the terminal or as a PNG or SVG file
    ///
    /// Without --png or --svg the code is drawn with Unicode half blocks for a terminal with a
    /// dark background. The URI is encoded as given, after checking that it parses
    /// (weak secrets accepted). The image holds the secret: new files are created readable by
    /// their owner only (on Unix); an existing file is overwritten.
    Qr(QrArgs),
    /// Create or update the database schema
    ///
    /// Every other operator command does this first too; this command does nothing else, for
    /// deployments that migrate as a separate step. It needs no application key.
    Migrate,
    /// Add, list, remove and reset devices
    #[command(subcommand, arg_required_else_help = false)]
    Device(DeviceCommand),
    /// Add a backup code to a user's backup-code device (django-otp's addstatictoken)
    #[command(subcommand, arg_required_else_help = false)]
    StaticToken(StaticTokenCommand),
    /// Operations on a user's account
    #[command(subcommand, arg_required_else_help = false)]
    User(UserCommand),
    /// Send a code to an email device
    ///
    /// Exit status 1 if the challenge is refused: within the cooldown after the last code
    /// (60 s by default), or not allowed (a device that sends no codes, a locked account).
    Challenge(ChallengeArgs),
    /// Verify a token against a user's device
    ///
    /// Exit status 0 if the token is accepted (it is then never accepted again), 1 if it is
    /// rejected, with the reason on standard error: "invalid token", "throttled: retry in N s",
    /// "not allowed: REASON".
    Verify(VerifyArgs),
    /// Manage the application keys that seal the secrets in the database
    #[command(subcommand, arg_required_else_help = false)]
    Keys(KeysCommand),
    /// Run the reference server
    #[command(long_about = serve::LONG_ABOUT)]
    Serve(ServeArgs),
    /// Measure throughput on this machine: verify_token against a fresh database, HOTP codes
    #[command(subcommand, arg_required_else_help = false, long_about = bench::LONG_ABOUT)]
    Bench(BenchCommand),
}

/// Where a command writes.
pub(crate) struct Streams<'a> {
    /// Standard output.
    pub(crate) out: &'a mut dyn Write,
    /// Standard error, for notices and progress; failures are returned as [`Failure`]s.
    pub(crate) err: &'a mut dyn Write,
    /// Whether the process's standard error is a terminal (progress lines are shown then only).
    pub(crate) err_is_terminal: bool,
}

impl Command {
    fn execute(self, global: &GlobalArgs, streams: &mut Streams<'_>) -> Result<(), Failure> {
        match self {
            Self::Code(args) => code::run(args, streams.out),
            Self::Uri(command) => uri::run(command, streams.out),
            Self::Qr(args) => qr::run(args, streams.out),
            Self::Migrate => session::migrate(global, streams),
            Self::Device(command) => device::run(command, global, streams),
            Self::StaticToken(command) => user::run_static_token(command, global, streams),
            Self::User(command) => user::run(command, global, streams),
            Self::Challenge(args) => verify::challenge(args, global, streams),
            Self::Verify(args) => verify::verify(args, global, streams),
            Self::Keys(command) => keys::run(command, global, streams),
            Self::Serve(args) => serve::run(args, global, streams),
            Self::Bench(command) => bench::run(command, global, streams),
        }
    }
}

/// Parses `args` (the first one is the program name, as in [`std::env::args_os`]), runs the
/// command, writes its output to `stdout` and any error, as one line, to `stderr`, and returns
/// the exit status: 0 on success, 1 if a token is rejected, a challenge refused or output
/// cannot be written, 2 for usage, input and system errors.
///
/// `--help` and `--version` go to `stdout` with status 0. The operator commands read their
/// configuration from the environment, and the framework's log is written to the process's
/// standard error (not to `stderr`), as is the progress of `otp keys rotate` when that is a
/// terminal.
pub fn run<I, T>(args: I, stdout: &mut dyn Write, stderr: &mut dyn Write) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => return report_clap_error(&err, stdout, stderr),
    };
    let mut streams = Streams {
        out: stdout,
        err: stderr,
        err_is_terminal: io::stderr().is_terminal(),
    };
    let result = cli
        .command
        .execute(&cli.global, &mut streams)
        .and_then(|()| streams.out.flush().map_err(Failure::stdout));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // A reader that has gone away (`otp qr … | head`) has seen all it wanted: no message.
            // Nothing sensible is left to do if standard error cannot be written either.
            if !failure.is_broken_pipe() {
                let message = failure.to_string();
                let _ = writeln!(streams.err, "otp: {}", one_line(&message));
            }
            ExitCode::from(failure.exit_status())
        }
    }
}

/// `text` on one line: line breaks (which a database error may hold) become spaces.
fn one_line(text: &str) -> String {
    text.split(['\r', '\n'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a command failed. Every variant renders as one line without secrets.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The command line is wrong in a way clap cannot check.
    Usage(&'static str),
    /// The value of a flag cannot be used.
    InvalidArg {
        /// The flag, with its dashes.
        flag: &'static str,
        /// What is wrong with it.
        error: otp_oath::Error,
    },
    /// An input that names itself in its message: a URI, or a QR code that cannot be made.
    Input(otp_oath::Error),
    /// Output could not be written.
    Write {
        /// What was being written: a file name or "standard output".
        target: String,
        /// Why it failed.
        error: io::Error,
    },
    /// The framework failed or refused an input: an unknown device, a bad user key, a missing
    /// application key, the database, the mail server. Its message names the problem.
    Core(otp_core::Error),
    /// An environment variable cannot be used.
    Env {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The program cannot set itself up (the async runtime).
    System(String),
    /// A token was rejected or a challenge refused; the reason, such as "invalid token".
    Rejected(String),
    /// The server or the app's users failed, or refused an input (a setting, a username, a
    /// password). Its message names the problem.
    App(crate::app::Error),
}

impl From<otp_core::Error> for Failure {
    fn from(error: otp_core::Error) -> Self {
        Self::Core(error)
    }
}

impl From<crate::app::Error> for Failure {
    fn from(error: crate::app::Error) -> Self {
        match error {
            crate::app::Error::Core(error) => Self::Core(error),
            error => Self::App(error),
        }
    }
}

impl From<crate::app::UserError> for Failure {
    fn from(error: crate::app::UserError) -> Self {
        match error {
            crate::app::UserError::Core(error) => Self::Core(error),
            error => Self::App(error.into()),
        }
    }
}

impl Failure {
    fn exit_status(&self) -> u8 {
        match self {
            Self::Write { .. } => EXIT_OUTPUT,
            Self::Rejected(_) => EXIT_REJECTED,
            Self::Usage(_)
            | Self::InvalidArg { .. }
            | Self::Input(_)
            | Self::Core(_)
            | Self::Env { .. }
            | Self::System(_)
            | Self::App(_) => EXIT_USAGE,
        }
    }

    fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Write { error, .. } if error.kind() == io::ErrorKind::BrokenPipe)
    }

    /// A failure to write to standard output.
    pub(crate) fn stdout(error: io::Error) -> Self {
        Self::Write {
            target: "standard output".to_owned(),
            error,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(message) => f.write_str(message),
            Self::InvalidArg { flag, error } => match error {
                otp_oath::Error::SecretTooShort { bits, min_bits } => write!(
                    f,
                    "invalid {flag}: the secret has {bits} bits, fewer than the {min_bits} \
                     required (pass --allow-weak-secret to accept it anyway)"
                ),
                otp_oath::Error::InvalidUri {
                    problem: otp_oath::UriProblem::Missing,
                    ..
                } => write!(f, "invalid {flag}: must not be empty"),
                otp_oath::Error::InvalidUri { problem, .. } => {
                    write!(f, "invalid {flag}: {problem}")
                }
                error => write!(f, "invalid {flag}: {error}"),
            },
            Self::Input(error) => write!(f, "{error}"),
            Self::Write { target, error } => write!(f, "cannot write {target}: {error}"),
            Self::Core(error) => write!(f, "{error}"),
            Self::App(error) => write!(f, "{error}"),
            Self::Env { name, problem } => write!(f, "invalid {name}: {problem}"),
            Self::System(message) | Self::Rejected(message) => f.write_str(message),
        }
    }
}

/// Writes help and version to `stdout`, and every real error as one line to `stderr`.
fn report_clap_error(
    err: &clap::Error,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let written = write!(stdout, "{}", err.render()).and_then(|()| stdout.flush());
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    let failure = Failure::stdout(error);
                    if !failure.is_broken_pipe() {
                        let _ = writeln!(stderr, "otp: {failure}");
                    }
                    ExitCode::from(EXIT_OUTPUT)
                }
            }
        }
        // Only for commands that set `arg_required_else_help`, which none here does: clap would
        // print the whole help on stderr, so keep to the one-line rule instead.
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = writeln!(
                stderr,
                "otp: a subcommand or an argument is missing (see --help)"
            );
            ExitCode::from(EXIT_USAGE)
        }
        _ => {
            let _ = writeln!(stderr, "otp: {}", one_line_message(err));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Condenses a clap error into one line, naming the offending flag but never repeating a value
/// the user typed (it could be a secret, or part of one).
fn one_line_message(err: &clap::Error) -> String {
    let string = |kind| match err.get(kind) {
        Some(ContextValue::String(text)) => Some(text.as_str()),
        _ => None,
    };
    let arg = string(ContextKind::InvalidArg).unwrap_or("the argument");
    let mut message = match err.kind() {
        ErrorKind::InvalidValue if string(ContextKind::InvalidValue) == Some("") => {
            format!("a value is required for '{arg}' but none was supplied")
        }
        ErrorKind::InvalidValue => {
            let mut message = format!("invalid value for '{arg}'");
            if let Some(ContextValue::Strings(values)) = err.get(ContextKind::ValidValue) {
                message.push_str(&format!(" (possible values: {})", values.join(", ")));
            }
            message
        }
        ErrorKind::ValueValidation => match std::error::Error::source(err) {
            Some(source) => format!("invalid value for '{arg}': {source}"),
            None => format!("invalid value for '{arg}'"),
        },
        ErrorKind::TooManyValues => format!("unexpected value for '{arg}'"),
        ErrorKind::UnknownArgument if arg.starts_with('-') => {
            let flag = arg.split_once('=').map_or(arg, |(flag, _)| flag);
            let mut message = format!("unexpected argument '{flag}'");
            if let Some(suggestion) = first(err, ContextKind::SuggestedArg) {
                message.push_str(&format!(" (did you mean '{suggestion}'?)"));
            }
            message
        }
        ErrorKind::UnknownArgument => "unexpected argument (not repeated here in case it is \
                                       part of a secret; quote values that contain spaces)"
            .to_owned(),
        ErrorKind::InvalidSubcommand => {
            let mut message =
                "unrecognized subcommand (not repeated here in case it is a secret)".to_owned();
            if let Some(suggestion) = first(err, ContextKind::SuggestedSubcommand) {
                message.push_str(&format!("; did you mean '{suggestion}'?"));
            }
            message
        }
        // The other kinds only name arguments and subcommands: keep clap's wording.
        _ => flatten(&err.render().to_string()),
    };
    if let Some(command) = command_path(err) {
        message.push_str(&format!(" (see '{command} --help')"));
    }
    message
}

/// The first of the strings clap keeps as `kind`.
fn first(err: &clap::Error, kind: ContextKind) -> Option<&str> {
    match err.get(kind)? {
        ContextValue::String(text) => Some(text),
        ContextValue::Strings(texts) => texts.first().map(String::as_str),
        _ => None,
    }
}

/// Clap's rendering without the usage and the "for more information" lines, on one line.
fn flatten(rendered: &str) -> String {
    rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .filter(|line| !line.is_empty())
        .map(|line| line.strip_prefix("error: ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The subcommand path from the error's usage line: `otp code totp` from
/// `Usage: otp code totp [OPTIONS] --secret <BASE32>`.
fn command_path(err: &clap::Error) -> Option<String> {
    let Some(ContextValue::StyledStr(usage)) = err.get(ContextKind::Usage) else {
        return None;
    };
    let usage = usage.to_string();
    let first_line = usage.lines().map(str::trim).find(|line| !line.is_empty())?;
    let words: Vec<&str> = first_line
        .strip_prefix("Usage:")
        .unwrap_or(first_line)
        .split_whitespace()
        .take_while(|word| !word.starts_with(['[', '<', '-']))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// Runs `otp ARGS...` in process, for the tests: the exit code, stdout and stderr.
#[cfg(test)]
pub(crate) fn run_args(args: &[&str]) -> (ExitCode, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = run(
        std::iter::once("otp").chain(args.iter().copied()),
        &mut out,
        &mut err,
    );
    (
        status,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SHA1: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn usage_error(args: &[&str]) -> String {
        let (status, out, err) = run_args(args);
        assert_eq!(status, ExitCode::from(EXIT_USAGE), "{args:?}: {err}");
        assert_eq!(out, "", "{args:?}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("otp: ") && err.ends_with('\n'), "{err}");
        err
    }

    #[test]
    fn command_definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn no_command_answers_a_missing_argument_with_its_whole_help() {
        fn check(command: &clap::Command) {
            assert!(
                !command.is_arg_required_else_help_set(),
                "set arg_required_else_help = false on '{}'",
                command.get_name()
            );
            command.get_subcommands().for_each(check);
        }
        use clap::CommandFactory;
        check(&Cli::command());
    }

    #[test]
    fn help_and_version_go_to_stdout_with_status_0() {
        let (status, out, err) = run_args(&["--help"]);
        assert_eq!(status, ExitCode::SUCCESS);
        assert!(out.contains("Usage: otp [OPTIONS] <COMMAND>"), "{out}");
        assert_eq!(err, "");
        let (status, out, _) = run_args(&["--version"]);
        assert_eq!(status, ExitCode::SUCCESS);
        assert_eq!(out, format!("otp {}\n", env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn clap_errors_are_one_line_and_point_to_help() {
        assert_eq!(
            usage_error(&["code", "totp"]),
            "otp: the following required arguments were not provided: --secret <BASE32> \
             (see 'otp code totp --help')\n"
        );
        assert_eq!(
            usage_error(&["code", "totp", "--secret", RFC_SHA1, "--algorithm", "md5"]),
            "otp: invalid value for '--algorithm <ALGORITHM>' (possible values: sha1, sha256, \
             sha512)\n"
        );
        assert_eq!(
            usage_error(&["code", "totp", "--secret", RFC_SHA1, "--step", "0"]),
            "otp: invalid value for '--step <SECONDS>': the TOTP time step must be at least 1 \
             second\n"
        );
        assert_eq!(
            usage_error(&["code", "totp", "--secrt", RFC_SHA1]),
            "otp: unexpected argument '--secrt' (did you mean '--secret'?) \
             (see 'otp code totp --help')\n"
        );
        assert_eq!(
            usage_error(&["cdoe"]),
            "otp: unrecognized subcommand (not repeated here in case it is a secret); \
             did you mean 'code'? (see 'otp --help')\n"
        );
    }

    #[test]
    fn unquoted_grouped_secret_is_not_repeated() {
        for args in [
            &["code", "totp", "--secret", "gezd", "gnbv", "gy3t", "qojq"][..],
            &["code", "gezdgnbvgy3tqojq"],
            &[
                "code",
                "totp",
                "--secret",
                "x",
                "--time",
                "gezdgnbvgy3tqojq",
            ],
            &[
                "uri",
                "build",
                "--type",
                "totp",
                "--account",
                "a",
                "--allow-weak-secret=gezdgnbv",
            ],
        ] {
            let err = usage_error(args);
            assert!(!err.contains("gnbv"), "{args:?}: {err}");
            assert!(!err.contains("gezd"), "{args:?}: {err}");
        }
    }

    #[test]
    fn code_needs_a_uri_or_a_subcommand() {
        let err = usage_error(&["code"]);
        assert!(err.contains("--uri") && err.contains("totp"), "{err}");
        usage_error(&["code", "--uri", "otpauth://totp/a?secret=GEZDGNBV", "totp"]);
    }

    #[test]
    fn rfc_6238_vector_in_process() {
        let (status, out, err) = run_args(&[
            "code", "totp", "--secret", RFC_SHA1, "--time", "59", "--digits", "8",
        ]);
        assert_eq!(
            (status, out.as_str(), err.as_str()),
            (ExitCode::SUCCESS, "94287082\n", "")
        );
    }

    #[test]
    fn unwritable_stdout_is_status_1() {
        struct Failing(io::ErrorKind);
        impl Write for Failing {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from(self.0))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let args = [
            "otp",
            "code",
            "hotp",
            "--secret",
            RFC_SHA1,
            "--counter",
            "0",
        ];
        let mut err = Vec::new();
        let status = run(args, &mut Failing(io::ErrorKind::StorageFull), &mut err);
        assert_eq!(status, ExitCode::from(EXIT_OUTPUT));
        let err = String::from_utf8(err).unwrap();
        assert!(
            err.starts_with("otp: cannot write standard output: "),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1);

        // A closed pipe is not worth a message.
        for args in [&args[..], &["otp", "--help"]] {
            let mut err = Vec::new();
            let status = run(args, &mut Failing(io::ErrorKind::BrokenPipe), &mut err);
            assert_eq!(status, ExitCode::from(EXIT_OUTPUT));
            assert_eq!(err, b"");
        }
    }
}
