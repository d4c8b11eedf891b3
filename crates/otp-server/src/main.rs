//! The `otp` command-line tool. All of it lives in [`otp_server::cli`]; this is only the door.

use std::io;
use std::process::ExitCode;

fn main() -> ExitCode {
    // The streams are not locked for the whole run: `otp serve` logs to standard error from
    // every worker thread, which would wait forever on a lock the main thread holds.
    otp_server::cli::run(std::env::args_os(), &mut io::stdout(), &mut io::stderr())
}
