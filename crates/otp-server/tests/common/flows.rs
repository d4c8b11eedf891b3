//! The steps the reliability tests repeat: users and devices made with the CLI, the JSON login
//! and second factor, and codes computed from a device's `otpauth://` URI (right ones, and
//! wrong ones that are certainly wrong).

use std::collections::HashSet;
use std::io;

use otp_oath::{Hotp, OtpAuthUri, Totp};
use serde_json::{Value, json};

use super::http::{Client, Response};
use super::server::Server;
use super::{SplitMix64, TestDb, run_with_input};

/// The password of every test user.
pub(crate) const PASSWORD: &str = "correct horse battery";

/// `otp user add USERNAME --password-stdin EXTRA...` with [`PASSWORD`]; returns the user key
/// it printed.
#[track_caller]
pub(crate) fn add_user(db: &TestDb, username: &str, extra: &[&str]) -> String {
    let added = run_with_input(
        db.command(["user", "add", username, "--password-stdin"])
            .args(extra),
        &format!("{PASSWORD}\n"),
    );
    assert!(
        added.code == Some(0),
        "otp user add {username}: {}{}",
        added.stdout,
        added.stderr
    );
    added
        .stdout
        .split("(key ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no key in {:?}", added.stdout))
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

/// Like [`add_device`] for an HOTP device whose codes of counters `0..counters` each differ
/// from the codes of the `window` counters after them. A test that presents spent codes again
/// (and picks wrong codes away from the next ones) needs this: otherwise a spent code whose six
/// digits equal those of a counter in the server's window is rightly accepted, one time in
/// 10^6 per counter, which a long test meets. A random secret has such a coincidence with
/// probability about `counters * window / 10^6`; then the device is removed and another one
/// added.
#[track_caller]
pub(crate) fn add_hotp_device_without_coincidences(
    db: &TestDb,
    user: &str,
    counters: u64,
    window: u64,
) -> Value {
    loop {
        let device = add_device(db, "hotp", user, &[]);
        let generator = hotp(&device);
        let codes: Vec<String> = (0..counters + window)
            .map(|counter| generator.code(counter).to_string())
            .collect();
        let coincidence = codes
            .windows(window as usize + 1)
            .any(|run| run[1..].contains(&run[0]));
        if !coincidence {
            return device;
        }
        let id = device["id"].as_str().expect("an id");
        let removed = db.otp(["device", "remove", id]);
        assert_eq!(removed.code, Some(0), "{removed:?}");
    }
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

/// `POST /api/v1/session` with `password`.
pub(crate) fn json_login(client: &mut Client, username: &str, password: &str) -> Response {
    client.json(
        "POST",
        "/api/v1/session",
        &json!({ "username": username, "password": password }),
    )
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

/// `POST /account/login` with the login page's CSRF token, [`PASSWORD`] and `extra` fields.
pub(crate) fn html_login(client: &mut Client, username: &str, extra: &[(&str, &str)]) -> Response {
    let token = client.get("/account/login").csrf_token();
    let mut fields = vec![
        ("csrf_token", token.as_str()),
        ("username", username),
        ("password", PASSWORD),
    ];
    fields.extend_from_slice(extra);
    client.post_form("/account/login", &fields)
}

/// A new client of `server`, past the password of `username` who has a device
/// ([`login_pending`]).
#[track_caller]
pub(crate) fn pending_client(server: &Server, username: &str) -> Client {
    let mut client = server.client();
    login_pending(&mut client, username);
    client
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

/// The `Retry-After` of a response, in seconds.
#[track_caller]
pub(crate) fn retry_after(response: &Response) -> u64 {
    response
        .header("retry-after")
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After in {:?}", response.headers))
}

/// Asserts that a verification was refused because the device is throttled; returns the
/// `Retry-After`.
#[track_caller]
pub(crate) fn assert_throttled(response: &Response) -> u64 {
    assert_eq!(
        outcome(response),
        (429, "n_failed_attempts".to_owned()),
        "{}",
        response.body
    );
    retry_after(response)
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

/// The code of a TOTP device's URI now.
#[track_caller]
pub(crate) fn totp_code_now(device: &Value) -> String {
    totp(device).code_at(now_unix()).unwrap().to_string()
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
