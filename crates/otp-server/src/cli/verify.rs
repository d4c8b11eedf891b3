//! `otp verify` and `otp challenge`.

use std::time::Duration;

use clap::Args;
use otp_core::{ChallengeOutcome, DeviceId, VerifyOutcome};

use super::device::parse_device_id;
use super::session::{Mail, Session};
use super::user::USER_HELP;
use super::{Failure, GlobalArgs, Streams};

/// Arguments of `otp verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The user: a username, or a user key (see 'otp user add')
    #[arg(long, value_name = "USER", long_help = USER_HELP)]
    pub user: String,
    /// The user's device, such as totp/42
    #[arg(long, value_name = "ID", value_parser = parse_device_id)]
    pub device: DeviceId,
    /// The token to check
    #[arg(value_name = "TOKEN")]
    pub token: String,
}

/// Arguments of `otp challenge`.
#[derive(Args)]
pub struct ChallengeArgs {
    /// The user: a username, or a user key (see 'otp user add')
    #[arg(long, value_name = "USER", long_help = USER_HELP)]
    pub user: String,
    /// The user's email device, such as email/7
    #[arg(long, value_name = "ID", value_parser = parse_device_id)]
    pub device: DeviceId,
}

/// Whole seconds, rounded up, so that "retry in 0 s" never tells to retry too early.
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

pub(super) fn verify(
    args: VerifyArgs,
    global: &GlobalArgs,
    streams: &mut Streams<'_>,
) -> Result<(), Failure> {
    let session = Session::open(global, Mail::None)?;
    let user = session.user_key(&args.user)?;
    let outcome = session.block_on(session.otp().verify_token(&user, &args.device, &args.token))?;
    let reason = match outcome {
        VerifyOutcome::Verified(_) => {
            return writeln!(streams.out, "verified").map_err(Failure::stdout);
        }
        VerifyOutcome::Invalid { .. } => "invalid token".to_owned(),
        VerifyOutcome::Throttled { retry_after, .. } => {
            format!("throttled: retry in {} s", whole_seconds(retry_after))
        }
        VerifyOutcome::NotAllowed { reason } => format!("not allowed: {reason}"),
        _ => "rejected".to_owned(),
    };
    Err(Failure::Rejected(reason))
}

pub(super) fn challenge(
    args: ChallengeArgs,
    global: &GlobalArgs,
    streams: &mut Streams<'_>,
) -> Result<(), Failure> {
    let session = Session::open(global, Mail::FromEnv)?;
    let user = session.user_key(&args.user)?;
    let outcome = session.block_on(session.otp().generate_challenge(&user, &args.device))?;
    let reason = match outcome {
        ChallengeOutcome::Sent {
            recipient,
            valid_for,
        } => {
            if session.uses_development_mailer() {
                let _ = writeln!(
                    streams.err,
                    "otp: no mail was sent: OTP_SMTP_URL is not set, so the message and its \
                     code were written to the log above"
                );
            }
            return writeln!(
                streams.out,
                "sent a code to {recipient}, valid for {} s",
                whole_seconds(valid_for)
            )
            .map_err(Failure::stdout);
        }
        ChallengeOutcome::Cooldown { retry_after } => {
            format!("cooldown: retry in {} s", whole_seconds(retry_after))
        }
        ChallengeOutcome::NotAllowed { reason } => format!("not allowed: {reason}"),
        _ => "refused".to_owned(),
    };
    Err(Failure::Rejected(reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up() {
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1000)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(59_001)), 60);
    }
}
