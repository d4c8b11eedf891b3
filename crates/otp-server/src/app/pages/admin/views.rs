//! Users and devices as the admin's pages show them.

use otp_core::{Device, Timestamp};
use serde::Serialize;

use super::plumbing::{device_url, user_url};
use crate::app::{AppState, User};
use crate::dates::utc_minutes;

/// Unix time as `2024-05-01 12:34 UTC`.
pub(crate) fn utc(at: Timestamp) -> String {
    format!("{} UTC", utc_minutes(at.unix_secs()))
}

/// A kind's name for people ([`otp_core::DeviceKind::label`]), or its name for a kind this
/// program does not register.
pub(super) fn kind_label(state: &AppState, kind: &str) -> String {
    state
        .otp()
        .kind(kind)
        .map_or_else(|_| kind.to_owned(), |k| k.label().to_owned())
}

/// Whether the device has a provisioning URI (and so a config page).
pub(super) fn has_uri(state: &AppState, device: &Device) -> bool {
    state
        .otp()
        .kind(device.kind())
        .is_ok_and(|kind| kind.enrolment() == otp_core::Enrolment::GeneratedSecret)
}

/// The otpauth:// URI of a TOTP or HOTP device, as the device pages make it.
pub(super) fn uri_text(
    state: &AppState,
    owner: &User,
    device: &Device,
) -> Result<zeroize::Zeroizing<String>, otp_core::Error> {
    let uri = otp_axum::manage::otpauth_uri(&state.web, device, &owner.username)?;
    Ok(uri.to_uri()?)
}

/// One line of a device's settings.
#[derive(Serialize)]
struct Setting {
    label: &'static str,
    value: String,
}

/// The settings of a device that are not secret, read from its state by an allow-list (the
/// secret, code hashes and replay state are never read).
fn settings(device: &Device) -> Vec<Setting> {
    let fields: &[(&str, &'static str)] = match device.kind() {
        "totp" => &[
            ("algorithm", "Algorithm"),
            ("digits", "Digits"),
            ("step", "Step (seconds)"),
            ("t0", "T0"),
            ("tolerance", "Tolerance (steps)"),
            ("drift", "Drift (steps)"),
        ],
        "hotp" => &[
            ("algorithm", "Algorithm"),
            ("digits", "Digits"),
            ("tolerance", "Tolerance (codes)"),
            ("counter", "Next counter"),
        ],
        "email" => &[("address", "Sends to")],
        _ => &[],
    };
    fields
        .iter()
        .filter_map(|(field, label)| {
            let value = match device.state().get(field)? {
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Number(number) => number.to_string(),
                _ => return None,
            };
            Some(Setting { label, value })
        })
        .collect()
}

/// A device as the pages show it.
#[derive(Serialize)]
pub(super) struct DeviceView {
    id: String,
    kind: String,
    kind_label: String,
    name: String,
    confirmed: bool,
    created_at: String,
    last_used_at: Option<String>,
    failures: u32,
    last_failure_at: Option<String>,
    codes_remaining: Option<usize>,
    settings: Vec<Setting>,
    pub(super) url: String,
    /// `None` for kinds without a URI and when sensitive data is hidden.
    config_url: Option<String>,
}

pub(super) fn device_view(
    state: &AppState,
    device: &Device,
) -> Result<DeviceView, otp_core::Error> {
    let url = device_url(&device.id);
    let codes_remaining = state.otp().codes_remaining(device)?;
    let config_url = (has_uri(state, device) && !state.config.admin_hide_sensitive_data)
        .then(|| format!("{url}/config"));
    Ok(DeviceView {
        id: device.id.to_string(),
        kind: device.kind().to_owned(),
        kind_label: kind_label(state, device.kind()),
        name: device.name.clone(),
        confirmed: device.confirmed,
        created_at: utc(device.created_at),
        last_used_at: device.last_used_at.map(utc),
        failures: device.throttle.failure_count,
        last_failure_at: device.throttle.last_failure_at.map(utc),
        codes_remaining,
        settings: settings(device),
        url,
        config_url,
    })
}

/// A user as the pages show it.
#[derive(Serialize)]
pub(super) struct AccountView {
    id: i64,
    key: String,
    username: String,
    email: Option<String>,
    is_staff: bool,
    created_at: String,
    url: String,
}

impl AccountView {
    pub(super) fn of(user: &User) -> Self {
        Self {
            id: user.id,
            key: user.key(),
            username: user.username.clone(),
            email: user.email.clone(),
            is_staff: user.is_staff,
            created_at: utc(user.created_at),
            url: user_url(user.id),
        }
    }
}
