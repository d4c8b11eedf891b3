//! Making a device from the creation form: the form, the operation on the user's devices and
//! its refusals (the form's values that cannot make a device, for people).

use otp_core::{Device, HotpOptions, TotpOptions};
use otp_oath::{Algorithm, Digits, HotpParams, Secret, TotpParams};
use serde::Deserialize;

use crate::app::{AppState, Stop, User};

/// The creation form of every kind; each kind reads its own fields. Not `Debug`: it may hold
/// a secret.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct NewDeviceForm {
    pub(super) csrf_token: Option<String>,
    pub(super) name: String,
    pub(super) confirmed: Option<String>,
    /// TOTP and HOTP: base32, empty for a new random secret.
    secret: String,
    pub(super) algorithm: String,
    pub(super) digits: String,
    /// TOTP.
    pub(super) step: String,
    /// Email.
    pub(super) email: String,
    /// Backup codes.
    pub(super) count: String,
}

/// A refused field of the creation form, for people.
pub(super) struct Refused(pub(super) String);

/// The message for people of a creation the form's values made fail; `None` for a failure
/// that is not the form's.
fn refusal(err: &otp_core::Error) -> Option<&'static str> {
    Some(match err {
        otp_core::Error::InvalidDeviceName => {
            "The name must be 1 to 64 characters without control characters."
        }
        otp_core::Error::InvalidEmailAddress => "The email address is not valid.",
        otp_core::Error::InvalidCodeCount(_) => "The number of codes must be from 1 to 100.",
        otp_core::Error::Oath(_) => "These settings cannot make codes.",
        _ => return None,
    })
}

fn parse_algorithm(text: &str) -> Result<Algorithm, Refused> {
    text.parse()
        .map_err(|_| Refused("The algorithm must be SHA1, SHA256 or SHA512.".to_owned()))
}

fn parse_digits(text: &str) -> Result<Digits, Refused> {
    text.trim()
        .parse::<u32>()
        .ok()
        .and_then(|n| Digits::new(n).ok())
        .ok_or_else(|| Refused("The number of digits must be from 6 to 10.".to_owned()))
}

fn parse_secret(text: &str) -> Result<Option<Secret>, Refused> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    Secret::from_base32(text).map(Some).map_err(|_| {
        Refused(
            "The secret must be base32 (A-Z and 2-7) of at least 128 bits (26 characters), or \
             empty for a new one."
                .to_owned(),
        )
    })
}

/// The fields TOTP and HOTP share: algorithm, digits and secret (the first refused is shown).
fn parse_oath_fields(form: &NewDeviceForm) -> Result<(Algorithm, Digits, Option<Secret>), Refused> {
    Ok((
        parse_algorithm(&form.algorithm)?,
        parse_digits(&form.digits)?,
        parse_secret(&form.secret)?,
    ))
}

/// What a created device shows once.
pub(super) enum Made {
    Uri(Device),
    Codes(Device, Vec<String>),
    Plain(Device),
}

pub(super) async fn make_device(
    state: &AppState,
    account: &User,
    kind: &str,
    form: &NewDeviceForm,
) -> Result<Result<Made, Refused>, Stop> {
    let otp = state.otp();
    let key = account.key();
    let confirmed = form.confirmed.is_some();
    let name = form.name.trim();
    let made = match kind {
        "totp" => {
            let step = match form.step.trim().parse::<u64>() {
                Ok(step @ 1..=86_400) => step,
                _ => {
                    return Ok(Err(Refused(
                        "The step must be a number of seconds from 1 to 86400.".to_owned(),
                    )));
                }
            };
            let (algorithm, digits, secret) = match parse_oath_fields(form) {
                Ok(fields) => fields,
                Err(refused) => return Ok(Err(refused)),
            };
            let options = TotpOptions {
                params: TotpParams::default()
                    .with_algorithm(algorithm)
                    .with_digits(digits)
                    .with_step(step),
                ..TotpOptions::default()
            };
            otp.create_totp_device(&key, name, secret, options, confirmed)
                .await
                .map(Made::Uri)
        }
        "hotp" => {
            let (algorithm, digits, secret) = match parse_oath_fields(form) {
                Ok(fields) => fields,
                Err(refused) => return Ok(Err(refused)),
            };
            let options = HotpOptions {
                params: HotpParams::default()
                    .with_algorithm(algorithm)
                    .with_digits(digits),
                ..HotpOptions::default()
            };
            otp.create_hotp_device(&key, name, secret, options, confirmed)
                .await
                .map(Made::Uri)
        }
        "email" => otp
            .create_email_device(&key, name, form.email.trim(), confirmed)
            .await
            .map(Made::Plain),
        _ => {
            let Ok(count) = form.count.trim().parse::<usize>() else {
                return Ok(Err(Refused(
                    "The number of codes must be from 1 to 100.".to_owned(),
                )));
            };
            otp.create_backup_codes(&key, name, Some(count))
                .await
                .map(|(device, codes)| {
                    Made::Codes(device, codes.iter().map(ToString::to_string).collect())
                })
        }
    };
    match made {
        Ok(made) => Ok(Ok(made)),
        Err(err) => match refusal(&err) {
            Some(message) => Ok(Err(Refused(message.to_owned()))),
            None => Err(err.into()),
        },
    }
}
