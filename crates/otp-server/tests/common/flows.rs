//! The steps the reliability tests repeat: users and devices made with the CLI, the JSON login
//! and second factor, and codes computed from a device's `otpauth://` URI (right ones, and
//! wrong ones that are certainly wrong).

use std::collections::HashSet;
use std::io::{self, Write};
use std::process::Stdio;

use otp_oath::{Hotp, OtpAuthUri, Totp};
use serde_json::{Value, json};

use super::http::{Client, Response};
use super::{SplitMix64, TestDb};

/// The password of every test user.
pub(crate) const PASSWORD: &str = "correct horse battery";

/// `otp user add USERNAME --password-stdin EXTRA...`; returns the user key it printed.
#[track_caller]
pub(crate) fn add_user(db: &TestDb, username: &str, extra: &[&str]) -> String {
    let mut child = db
        .command(["user", "add", username, "--password-stdin"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run otp user add");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "otp user add {username}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .split("(key ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no key in {stdout:?}"))
        .to_owned()
}

/// `otp device add KIND --user USER --json EXTRA...`: the JSON object it printed.
#[track_caller]
pub(crate) fn add_device(db: &TestDb, kind: &str, user: &str, extra: &[&str]) -> Value {
    let mut args = vec!["device", "add", kind, "--user", user, "--json"];
    args.extend_from_slice(extra);
    let added = db.otp(&args);
    assert_eq!(added.code, Some(0), "{args:?}: {added:?}");
    serde_json::from_str(&added.stdout).unwrap_or_else(|err| panic!("{err}: {added:?}"))
}

/// `otp device list --user USER --json`.
#[track_caller]
pub(crate) fn list_devices(db: &TestDb, user: &str) -> Vec<Value> {
    let listed = db.otp(["device", "list", "--user", user, "--json"]);
    assert_eq!(listed.code, Some(0), "{listed:?}");
    serde_json::from_str(&listed.stdout).unwrap_or_else(|err| panic!("{err}: {listed:?}"))
}

/// The listed device `id` of `user`.
#[track_caller]
pub(crate) fn listed_device(db: &TestDb, user: &str, id: &str) -> Value {
    list_devices(db, user)
        .into_iter()
        .find(|device| device["id"] == id)
        .unwrap_or_else(|| panic!("{user} has no device {id}"))
}

/// `otp user reset --user USER`: how many failures it cleared.
#[track_caller]
pub(crate) fn reset_account(db: &TestDb, user: &str) -> u64 {
    let reset = db.otp(["user", "reset", "--user", user]);
    assert_eq!(reset.code, Some(0), "{reset:?}");
    reset
        .stdout
        .strip_prefix("cleared ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{reset:?}"))
}

/// `POST /api/v1/session`.
pub(crate) fn try_login(client: &mut Client, username: &str) -> io::Result<Response> {
    client.try_json(
        "POST",
        "/api/v1/session",
        &json!({ "username": username, "password": PASSWORD }),
    )
}

/// `POST /api/v1/session`, which must say that a second factor is awaited.
#[track_caller]
pub(crate) fn login_pending(client: &mut Client, username: &str) {
    let response = try_login(client, username).expect("login");
    response.assert_status(200, "password step");
    assert_eq!(
        response.json()["otp_required"],
        true,
        "{username} has a device"
    );
}

/// `POST /api/v1/otp/verify`.
pub(crate) fn try_verify(client: &mut Client, device: &str, token: &str) -> io::Result<Response> {
    client.try_json(
        "POST",
        "/api/v1/otp/verify",
        &json!({ "device": device, "token": token }),
    )
}

/// `POST /api/v1/otp/verify`, which must get an answer.
#[track_caller]
pub(crate) fn verify(client: &mut Client, device: &str, token: &str) -> Response {
    try_verify(client, device, token).expect("verify")
}

/// The `error` code of a JSON error response, or `""`.
pub(crate) fn error_code(response: &Response) -> String {
    serde_json::from_str::<Value>(&response.body)
        .ok()
        .and_then(|body| body["error"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `(status, error code)` of a response, for assertions and tallies.
pub(crate) fn outcome(response: &Response) -> (u16, String) {
    (response.status, error_code(response))
}

/// The HOTP generator of a device's URI.
#[track_caller]
pub(crate) fn hotp(device: &Value) -> Hotp {
    uri(device).to_hotp()
}

/// The TOTP generator of a device's URI.
#[track_caller]
pub(crate) fn totp(device: &Value) -> Totp {
    uri(device).to_totp().expect("a TOTP URI")
}

/// The parsed `uri` of a device added with `--json`.
#[track_caller]
pub(crate) fn uri(device: &Value) -> OtpAuthUri {
    let text = device["uri"].as_str().expect("a uri");
    OtpAuthUri::parse(text).unwrap_or_else(|err| panic!("{err}: {text}"))
}

/// Seconds since the Unix epoch.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The codes of `totp` from three steps before now to three after (more than any tolerance
/// the tests use): a guess outside them is certainly wrong for the next minute and more.
pub(crate) fn totp_codes_near_now(totp: &Totp) -> HashSet<String> {
    let now = now_unix();
    (-3..=3)
        .map(|offset| {
            totp.code_at(now + offset * 30)
                .expect("a time after t0")
                .to_string()
        })
        .collect()
}

/// The next `count` HOTP codes from `counter` (the tolerance window and then some).
pub(crate) fn hotp_codes_from(hotp: &Hotp, counter: u64, count: u64) -> HashSet<String> {
    (counter..counter + count)
        .map(|c| hotp.code(c).to_string())
        .collect()
}

/// A six-digit code that is none of `avoid`.
pub(crate) fn wrong_code(rng: &mut SplitMix64, avoid: &HashSet<String>) -> String {
    loop {
        let code = format!("{:06}", rng.in_range(0..=999_999));
        if !avoid.contains(&code) {
            return code;
        }
    }
}
