//! # otp-server: the reference server and the `otp` command-line tool
//!
//! Two parts:
//!
//! - [`app`]: the reference server, a complete app on the framework with its own users
//!   (argon2id passwords, sign-up, password change, a staff flag), the library's login pages
//!   and JSON API, security headers and limits; `otp serve` runs it. It needs no set-up: on
//!   first run it creates a SQLite database and its key file in the working directory.
//! - [`cli`]: the `otp` command-line tool: tools for credentials (codes, otpauth:// URIs, QR
//!   codes), the operator commands of the framework's database (devices, verification,
//!   challenges, account resets, key rotation, users), and `otp serve`.
//!
//! ```text
//! $ otp serve
//! otp serve: listening on http://127.0.0.1:8000
//! $ echo 'correct horse battery' | otp user add alice --password-stdin
//! added user alice (key 1)
//! $ otp device add totp --user alice
//! ```
//!
//! The binary is a thin wrapper around [`cli::run`], which takes the arguments and the two
//! output streams, so every command can be run and checked in-process:
//!
//! ```
//! use std::process::ExitCode;
//!
//! let (mut out, mut err) = (Vec::new(), Vec::new());
//! let args = [
//!     "otp", "code", "totp", "--secret", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
//!     "--time", "59", "--digits", "8",
//! ];
//! let status = otp_server::cli::run(args, &mut out, &mut err);
//! assert_eq!(status, ExitCode::SUCCESS);
//! assert_eq!(out, b"94287082\n"); // RFC 6238 Appendix B, SHA-1
//!
//! // Input errors exit with status 2 and one line on standard error, without the secret.
//! let (mut out, mut err) = (Vec::new(), Vec::new());
//! let status = otp_server::cli::run(["otp", "code", "totp", "--secret", "GE1D"], &mut out, &mut err);
//! assert_eq!(status, ExitCode::from(2));
//! assert_eq!(
//!     String::from_utf8(err).unwrap(),
//!     "otp: invalid --secret: invalid base32 character at position 2 (expected A-Z and 2-7)\n",
//! );
//! ```
//!
//! See [`cli`] for the commands, their output formats and exit statuses.

#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
mod dates;
