//! `otp user reset` and `otp static-token add`.

use clap::{Args, Subcommand};

use super::session::{Mail, Session};
use super::{Failure, GlobalArgs, Streams};

/// The subcommands of `otp user`.
#[derive(Subcommand)]
pub enum UserCommand {
    /// Restore a user's failure budget after the account was locked by failed verifications
    Reset(UserResetArgs),
}

/// Arguments of `otp user reset`.
#[derive(Args)]
pub struct UserResetArgs {
    /// The app's key of the user
    #[arg(long, value_name = "USER")]
    pub user: String,
}

/// The subcommands of `otp static-token`.
#[derive(Subcommand)]
pub enum StaticTokenCommand {
    /// Add a code to the user's backup-code device, creating the device if the user has none,
    /// and print the code
    Add(StaticTokenAddArgs),
}

/// Arguments of `otp static-token add`.
#[derive(Args)]
pub struct StaticTokenAddArgs {
    /// The app's key of the user
    #[arg(long, value_name = "USER")]
    pub user: String,
    /// The code to add: 8 to 32 of 0-9 and a-z without i, l, o and u (case, spaces and dashes
    /// ignored) [default: a new random code]
    #[arg(long, value_name = "CODE")]
    pub token: Option<String>,
}

pub(super) fn run(
    command: UserCommand,
    global: &GlobalArgs,
    streams: &mut Streams<'_>,
) -> Result<(), Failure> {
    let UserCommand::Reset(args) = command;
    let session = Session::open(global, Mail::None)?;
    let otp = session.otp();
    let failures = session.block_on(async {
        let failures = otp.account_failures(&args.user).await?;
        otp.reset_account(&args.user).await?;
        Ok::<_, otp_core::Error>(failures)
    })?;
    writeln!(
        streams.out,
        "cleared {failures} failed verification{} of the account",
        if failures == 1 { "" } else { "s" }
    )
    .map_err(Failure::stdout)
}

pub(super) fn run_static_token(
    command: StaticTokenCommand,
    global: &GlobalArgs,
    streams: &mut Streams<'_>,
) -> Result<(), Failure> {
    let StaticTokenCommand::Add(args) = command;
    let session = Session::open(global, Mail::None)?;
    let (_, code) = session.block_on(
        session
            .otp()
            .add_static_token(&args.user, args.token.as_deref()),
    )?;
    writeln!(streams.out, "{code}").map_err(Failure::stdout)
}
