//! The `otp` command-line tool. All of it lives in [`otp_server::cli`]; this is only the door.

use std::io;
use std::process::ExitCode;

fn main() -> ExitCode {
    otp_server::cli::run(
        std::env::args_os(),
        &mut io::stdout().lock(),
        &mut io::stderr().lock(),
    )
}
