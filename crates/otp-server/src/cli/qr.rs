//! `otp qr`: the QR code of an otpauth:// URI, drawn in the terminal or written to a file.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use otp_oath::{OtpAuthUri, qr};

use super::Failure;

/// Arguments of `otp qr`.
#[derive(Args)]
pub struct QrArgs {
    /// The otpauth:// URI to encode, as given less surrounding white space (weak secrets
    /// accepted)
    #[arg(value_name = "OTPAUTH-URI")]
    pub uri: String,
    /// Write a PNG image to FILE instead of drawing in the terminal
    #[arg(long, value_name = "FILE", conflicts_with = "svg")]
    pub png: Option<PathBuf>,
    /// Write an SVG image to FILE instead of drawing in the terminal
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

pub(super) fn run(args: QrArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let text = args.uri.trim();
    // Only a URI that an app would accept is worth showing.
    OtpAuthUri::parse_legacy_weak(text).map_err(Failure::Input)?;
    match (&args.png, &args.svg) {
        (Some(path), _) => write_private_file(path, &qr::png(text).map_err(Failure::Input)?),
        (None, Some(path)) => {
            write_private_file(path, qr::svg(text).map_err(Failure::Input)?.as_bytes())
        }
        (None, None) => {
            let drawing = qr::terminal(text).map_err(Failure::Input)?;
            writeln!(out, "{}", drawing.as_str()).map_err(Failure::stdout)
        }
    }
}

/// Writes `bytes` to `path`, creating the file with mode 0600 on Unix.
fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options
        .open(path)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.flush()));
    written.map_err(|error: io::Error| Failure::Write {
        target: path.display().to_string(),
        error,
    })
}
