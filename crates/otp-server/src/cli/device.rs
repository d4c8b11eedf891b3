//! `otp device add|list|remove|reset`.

use std::io::Write;

use clap::{Args, Subcommand};
use otp_core::{Device, DeviceId, HotpOptions, TotpOptions};
use otp_oath::{HotpParams, TotpParams, qr};
use serde::Serialize;

use super::params::{CodeParams, parse_step};
use super::session::{Mail, Session};
use super::user::USER_HELP;
use super::{Failure, GlobalArgs, Streams};
use crate::dates::rfc3339;

/// The subcommands of `otp device`.
#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Create a device for a user
    #[command(subcommand, arg_required_else_help = false)]
    Add(DeviceAddCommand),
    /// List a user's devices
    ///
    /// The table shows times in RFC 3339 (UTC). With --json: an array of objects with id, kind,
    /// name, confirmed, created_at and last_used_at (Unix seconds; null if never used),
    /// throttle_failures, and for backup-code devices codes_remaining.
    List(DeviceListArgs),
    /// Delete a device
    Remove(DeviceIdArgs),
    /// Clear a device's throttling after failed verifications
    Reset(DeviceIdArgs),
}

/// The kinds of `otp device add`.
#[derive(Subcommand)]
pub enum DeviceAddCommand {
    /// A TOTP device (authenticator app) with a new 160-bit secret; prints its otpauth:// URI
    /// and QR code
    Totp(TotpAddArgs),
    /// An HOTP device with a new 160-bit secret; prints its otpauth:// URI and QR code
    Hotp(HotpAddArgs),
    /// A backup-code device with new codes, printed this once (only their hashes are kept)
    Static(StaticAddArgs),
    /// An email device that sends codes to an address (see otp challenge)
    Email(EmailAddArgs),
}

/// What every `otp device add` takes.
#[derive(Args)]
pub struct AddCommon {
    /// The user: a username, or a user key (see 'otp user add')
    #[arg(long, value_name = "USER", long_help = USER_HELP)]
    pub user: String,
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `otp device add totp`.
#[derive(Args)]
pub struct TotpAddArgs {
    /// The user and the output format.
    #[command(flatten)]
    pub common: AddCommon,
    /// A name for people
    #[arg(long, default_value = "TOTP")]
    pub name: String,
    /// Seconds per time step
    #[arg(long, value_name = "SECONDS", value_parser = parse_step, default_value_t = 30)]
    pub step: u64,
    /// Hash function and digits.
    #[command(flatten)]
    pub params: CodeParams,
    /// Leave the device unconfirmed: it verifies no login until the app confirms it with a
    /// first code
    #[arg(long)]
    pub unconfirmed: bool,
}

/// Arguments of `otp device add hotp`.
#[derive(Args)]
pub struct HotpAddArgs {
    /// The user and the output format.
    #[command(flatten)]
    pub common: AddCommon,
    /// A name for people
    #[arg(long, default_value = "HOTP")]
    pub name: String,
    /// Hash function and digits.
    #[command(flatten)]
    pub params: CodeParams,
    /// Leave the device unconfirmed: it verifies no login until the app confirms it with a
    /// first code
    #[arg(long)]
    pub unconfirmed: bool,
}

/// Arguments of `otp device add static`.
#[derive(Args)]
pub struct StaticAddArgs {
    /// The user and the output format.
    #[command(flatten)]
    pub common: AddCommon,
    /// A name for people
    #[arg(long, default_value = "Backup Code")]
    pub name: String,
    /// How many codes, 1 to 100 [default: 10]
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
}

/// Arguments of `otp device add email`.
#[derive(Args)]
pub struct EmailAddArgs {
    /// The user and the output format.
    #[command(flatten)]
    pub common: AddCommon,
    /// The address codes are sent to
    #[arg(long, value_name = "ADDRESS")]
    pub email: String,
    /// A name for people
    #[arg(long, default_value = "Email")]
    pub name: String,
    /// Leave the device unconfirmed: it verifies no login until the app confirms it with a
    /// first code
    #[arg(long)]
    pub unconfirmed: bool,
}

/// Arguments of `otp device list`.
#[derive(Args)]
pub struct DeviceListArgs {
    /// The user: a username, or a user key (see 'otp user add')
    #[arg(long, value_name = "USER", long_help = USER_HELP)]
    pub user: String,
    /// Print a JSON array
    #[arg(long)]
    pub json: bool,
}

/// A device id argument.
#[derive(Args)]
pub struct DeviceIdArgs {
    /// The device, such as totp/42
    #[arg(value_name = "ID", value_parser = parse_device_id)]
    pub id: DeviceId,
}

/// A device id, for clap.
pub(crate) fn parse_device_id(text: &str) -> Result<DeviceId, otp_core::Error> {
    text.parse()
}

pub(super) fn run(
    command: DeviceCommand,
    global: &GlobalArgs,
    streams: &mut Streams<'_>,
) -> Result<(), Failure> {
    let session = Session::open(global, Mail::None)?;
    match command {
        DeviceCommand::Add(mut kind) => {
            let common = kind.common_mut();
            common.user = session.user_key(&common.user)?;
            add(&session, kind, streams.out)
        }
        DeviceCommand::List(mut args) => {
            args.user = session.user_key(&args.user)?;
            list(&session, &args, streams.out)
        }
        DeviceCommand::Remove(args) => {
            session.block_on(session.otp().remove_device(&args.id))?;
            writeln!(streams.out, "removed {}", args.id).map_err(Failure::stdout)
        }
        DeviceCommand::Reset(args) => {
            session.block_on(session.otp().reset_throttle(&args.id))?;
            writeln!(streams.out, "cleared the throttling of {}", args.id).map_err(Failure::stdout)
        }
    }
}

impl DeviceAddCommand {
    /// The user and output format, whatever the kind.
    fn common_mut(&mut self) -> &mut AddCommon {
        match self {
            Self::Totp(args) => &mut args.common,
            Self::Hotp(args) => &mut args.common,
            Self::Static(args) => &mut args.common,
            Self::Email(args) => &mut args.common,
        }
    }
}

/// The JSON form of a new device.
#[derive(Serialize)]
struct NewDeviceJson<'a> {
    id: String,
    kind: &'a str,
    name: &'a str,
    confirmed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    codes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
}

impl<'a> NewDeviceJson<'a> {
    fn of(device: &'a Device) -> Self {
        Self {
            id: device.id.to_string(),
            kind: device.kind(),
            name: &device.name,
            confirmed: device.confirmed,
            uri: None,
            codes: None,
            email: None,
        }
    }
}

fn add(session: &Session, command: DeviceAddCommand, out: &mut dyn Write) -> Result<(), Failure> {
    let otp = session.otp();
    match command {
        DeviceAddCommand::Totp(args) => {
            let options = TotpOptions {
                params: TotpParams::default()
                    .with_algorithm(args.params.algorithm.into())
                    .with_digits(args.params.digits)
                    .with_step(args.step),
                ..TotpOptions::default()
            };
            let device = session.block_on(otp.create_totp_device(
                &args.common.user,
                &args.name,
                None,
                options,
                !args.unconfirmed,
            ))?;
            print_credential(session, &device, args.common.json, out)
        }
        DeviceAddCommand::Hotp(args) => {
            let options = HotpOptions {
                params: HotpParams::default()
                    .with_algorithm(args.params.algorithm.into())
                    .with_digits(args.params.digits),
                ..HotpOptions::default()
            };
            let device = session.block_on(otp.create_hotp_device(
                &args.common.user,
                &args.name,
                None,
                options,
                !args.unconfirmed,
            ))?;
            print_credential(session, &device, args.common.json, out)
        }
        DeviceAddCommand::Static(args) => {
            let (device, codes) = session.block_on(otp.create_backup_codes(
                &args.common.user,
                &args.name,
                args.count,
            ))?;
            let codes: Vec<String> = codes.iter().map(ToString::to_string).collect();
            if args.common.json {
                let json = NewDeviceJson {
                    codes: Some(codes),
                    ..NewDeviceJson::of(&device)
                };
                return print_json(&json, out);
            }
            let mut text = format!(
                "device: {}\nbackup codes (each works once; they are not shown again):\n",
                device.id
            );
            for code in &codes {
                text.push_str(&format!("  {code}\n"));
            }
            out.write_all(text.as_bytes()).map_err(Failure::stdout)
        }
        DeviceAddCommand::Email(args) => {
            let device = session.block_on(otp.create_email_device(
                &args.common.user,
                &args.name,
                &args.email,
                !args.unconfirmed,
            ))?;
            if args.common.json {
                let json = NewDeviceJson {
                    email: Some(&args.email),
                    ..NewDeviceJson::of(&device)
                };
                return print_json(&json, out);
            }
            writeln!(out, "device: {}", device.id).map_err(Failure::stdout)
        }
    }
}

/// Prints a TOTP or HOTP device: its id, its provisioning URI and the URI's QR code, or JSON.
fn print_credential(
    session: &Session,
    device: &Device,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let uri = session.otp().provisioning_uri(device)?;
    let uri = uri.to_uri().map_err(Failure::Input)?;
    if json {
        let json = NewDeviceJson {
            uri: Some(uri.as_str()),
            ..NewDeviceJson::of(device)
        };
        return print_json(&json, out);
    }
    let drawing = qr::terminal(&uri).map_err(Failure::Input)?;
    writeln!(
        out,
        "device: {}\nuri: {}\n{}",
        device.id,
        uri.as_str(),
        drawing.as_str()
    )
    .map_err(Failure::stdout)
}

/// Writes `value` as pretty-printed JSON and a new line.
pub(crate) fn print_json(value: &impl Serialize, out: &mut dyn Write) -> Result<(), Failure> {
    serde_json::to_writer_pretty(&mut *out, value)
        .map_err(|error| Failure::stdout(error.into()))?;
    writeln!(out).map_err(Failure::stdout)
}

/// The JSON form of a listed device.
#[derive(Serialize)]
struct ListedDevice<'a> {
    id: String,
    kind: &'a str,
    name: &'a str,
    confirmed: bool,
    created_at: i64,
    last_used_at: Option<i64>,
    throttle_failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    codes_remaining: Option<usize>,
}

fn list(session: &Session, args: &DeviceListArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let otp = session.otp();
    let devices = session.block_on(otp.devices_for_user(&args.user, None))?;
    let listed = devices
        .iter()
        .map(|device| {
            let codes_remaining = otp.codes_remaining(device)?;
            Ok(ListedDevice {
                id: device.id.to_string(),
                kind: device.kind(),
                name: &device.name,
                confirmed: device.confirmed,
                created_at: device.created_at.unix_secs(),
                last_used_at: device.last_used_at.map(|at| at.unix_secs()),
                throttle_failures: device.throttle.failure_count,
                codes_remaining,
            })
        })
        .collect::<Result<Vec<_>, otp_core::Error>>()?;
    if args.json {
        return print_json(&listed, out);
    }
    if listed.is_empty() {
        return writeln!(out, "no devices").map_err(Failure::stdout);
    }
    let mut rows = vec![[
        "ID".to_owned(),
        "KIND".to_owned(),
        "NAME".to_owned(),
        "CONFIRMED".to_owned(),
        "CREATED".to_owned(),
        "LAST USED".to_owned(),
        "FAILURES".to_owned(),
        "CODES LEFT".to_owned(),
    ]];
    for device in &listed {
        rows.push([
            device.id.clone(),
            device.kind.to_owned(),
            device.name.to_owned(),
            if device.confirmed { "yes" } else { "no" }.to_owned(),
            rfc3339(device.created_at),
            device.last_used_at.map_or_else(|| "-".to_owned(), rfc3339),
            device.throttle_failures.to_string(),
            device
                .codes_remaining
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
        ]);
    }
    out.write_all(table(&rows).as_bytes())
        .map_err(Failure::stdout)
}

/// Rows as columns padded to their widest cell, two spaces apart.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            line.push_str(&format!("{cell:width$}  "));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns() {
        let rows = [
            ["ID".to_owned(), "NAME".to_owned()],
            ["totp/10".to_owned(), "a".to_owned()],
        ];
        assert_eq!(table(&rows), "ID       NAME\ntotp/10  a\n");
    }
}
