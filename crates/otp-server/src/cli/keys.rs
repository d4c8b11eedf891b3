//! `otp keys rotate`.

use std::io::Write;

use clap::Subcommand;
use otp_core::RotationReport;

use super::session::{Mail, Session};
use super::{Failure, GlobalArgs, Streams};

/// The subcommands of `otp keys`.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Re-seal every device's secret under the newest application key
    ///
    /// Add the new key to OTP_SECRET_KEY or the key file (ID:HEX, with a higher id than the
    /// others), run this, and only then remove old keys. Backup codes and outstanding email
    /// codes are kept as keyed hashes, which cannot be re-made: keep an old key until the codes
    /// hashed under it are used or regenerated. Shows its progress on standard error when that
    /// is a terminal.
    Rotate,
}

pub(super) fn run(
    command: KeysCommand,
    global: &GlobalArgs,
    streams: &mut Streams<'_>,
) -> Result<(), Failure> {
    let KeysCommand::Rotate = command;
    let session = Session::open(global, Mail::None)?;
    let progress = streams.err_is_terminal;
    let err = &mut *streams.err;
    let show = |err: &mut dyn Write, report: RotationReport| {
        // Progress is a courtesy: a terminal that cannot be written to changes nothing.
        let _ = write!(
            err,
            "\rre-sealing: {} devices examined, {} re-sealed",
            report.examined, report.resealed
        );
        let _ = err.flush();
    };
    let result = session.block_on(session.otp().rotate_keys(|report| {
        if progress {
            show(&mut *err, report);
        }
    }));
    if progress {
        // End the progress line, whatever happened.
        let _ = writeln!(err);
    }
    let report = result?;
    writeln!(
        streams.out,
        "examined {} device{}, re-sealed {} under key {}",
        report.examined,
        if report.examined == 1 { "" } else { "s" },
        report.resealed,
        session.current_key_id()
    )
    .map_err(Failure::stdout)
}
