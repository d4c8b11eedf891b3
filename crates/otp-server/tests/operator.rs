//! The operator commands of the `otp` binary, run as an operator runs them, against a real
//! SQLite file and (with `OTP_TEST_POSTGRES_URL`) a fresh PostgreSQL database: output, JSON
//! shapes, exit statuses and messages, mail over SMTP on loopback, concurrent processes, key
//! rotation.

mod common;

use std::collections::BTreeSet;

use common::{
    Output, TestDb, application_key, assert_one_line_error, clean_command, run, run_concurrently,
};
use otp_oath::OtpAuthUri;
use otp_test_support::smtp::BlockingSmtpServer;
use serde_json::Value;

/// Asserts status 0 and nothing on stderr; returns stdout.
fn ok(db: &TestDb, args: &[&str]) -> String {
    let out = db.otp(args);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (Some(0), ""),
        "otp {args:?}: {out:?}"
    );
    out.stdout
}

/// Asserts `status`, nothing on stdout and one `otp: ` line on stderr; returns that line.
fn fails(db: &TestDb, args: &[&str], status: i32) -> String {
    let out = db.otp(args);
    assert_one_line_error(&out, status, args);
    out.stderr
}

/// Runs a command that succeeds and prints JSON; returns it.
fn json(db: &TestDb, args: &[&str]) -> Value {
    let out = ok(db, args);
    serde_json::from_str(&out).unwrap_or_else(|err| panic!("otp {args:?}: {err}: {out}"))
}

/// The keys of a JSON object.
fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn set(items: &[&'static str]) -> BTreeSet<&'static str> {
    items.iter().copied().collect()
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {value}"))
}

/// The current code of an otpauth:// URI, made by `otp code --uri` (TOTP: now; HOTP: the
/// URI's counter, or `counter`).
fn code_of(db: &TestDb, uri: &str, counter: Option<u64>) -> String {
    let mut command = clean_command(db.dir());
    command.args(["code", "--uri", uri]);
    if let Some(counter) = counter {
        command.args(["--counter", &counter.to_string()]);
    }
    let out = run(&mut command);
    assert_eq!(out.code, Some(0), "otp code: {out:?}");
    out.stdout.trim_end().to_owned()
}

/// `otp device add KIND --user USER OPTIONS... --json`, which must succeed quietly: the
/// device.
fn add_device(db: &TestDb, kind: &str, user: &str, options: &[&str]) -> Value {
    let mut args = vec!["device", "add", kind, "--user", user];
    args.extend_from_slice(options);
    args.push("--json");
    json(db, &args)
}

/// `otp device add totp --user USER --json`: the id and the URI.
fn add_totp(db: &TestDb, user: &str) -> (String, String) {
    let device = add_device(db, "totp", user, &[]);
    (
        str_of(&device, "id").to_owned(),
        str_of(&device, "uri").to_owned(),
    )
}

fn verify(db: &TestDb, user: &str, device: &str, token: &str) -> Output {
    db.otp(["verify", "--user", user, "--device", device, token])
}

fn assert_verified(db: &TestDb, user: &str, device: &str, token: &str) {
    let out = verify(db, user, device, token);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), "verified\n", ""),
        "verify {device} {token}"
    );
}

/// Asserts status 1 with `reason`; returns the message.
fn assert_rejected(db: &TestDb, user: &str, device: &str, token: &str) -> String {
    let args = ["verify", "--user", user, "--device", device, token];
    let out = db.otp(args);
    assert_one_line_error(&out, 1, &args);
    out.stderr
}

/// The user's devices, as `otp device list --json` shows them.
fn list(db: &TestDb, user: &str) -> Vec<Value> {
    match json(db, &["device", "list", "--user", user, "--json"]) {
        Value::Array(devices) => devices,
        other => panic!("not an array: {other}"),
    }
}

fn listed<'a>(devices: &'a [Value], id: &str) -> &'a Value {
    devices
        .iter()
        .find(|device| device["id"] == id)
        .unwrap_or_else(|| panic!("{id} is not listed in {devices:?}"))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Whether `code`, made from the TOTP `uri` since `since`, may rightly be accepted again by
/// chance (see [`otp_test_support::totp_code_repeats`]).
fn totp_code_repeats(uri: &str, code: &str, since: i64) -> bool {
    let totp = OtpAuthUri::parse(uri).unwrap().to_totp().unwrap();
    otp_test_support::totp_code_repeats(&totp, code, since)
}

crate::database_tests!(
    commands_migrate_by_themselves_and_migrate_is_idempotent,
    totp_device_verifies_a_code_from_its_uri_once,
    device_add_options_and_plain_output,
    hotp_device_verifies_its_codes,
    static_codes_work_once,
    static_token_add_reuses_the_backup_code_device,
    email_device_add,
    device_list_is_a_json_array_of_the_users_devices,
    remove_reset_and_unknown_devices,
    unconfirmed_device_does_not_verify,
    user_reset_unlocks_a_locked_account,
    challenge_sends_a_code_over_smtp_with_a_cooldown,
    challenge_without_smtp_writes_the_code_to_the_log,
    challenge_refusals_and_delivery_failures,
    concurrent_verifies_accept_a_code_once,
    keys_rotate_reseals_under_the_newest_key,
    usage_errors_are_one_line,
);

fn commands_migrate_by_themselves_and_migrate_is_idempotent(db: &mut TestDb) {
    // A fresh database: any command creates the schema first.
    assert_eq!(
        ok(db, &["device", "list", "--user", "alice"]),
        "no devices\n"
    );
    assert_eq!(
        json(db, &["device", "list", "--user", "alice", "--json"]),
        Value::Array(vec![])
    );
    for _ in 0..2 {
        assert_eq!(ok(db, &["migrate"]), "the database schema is up to date\n");
    }
    // SQLite: the key file beside the database, readable by its owner only.
    if let Some(key_file) = db.key_file() {
        assert!(db.dir().join("otp.db").is_file());
        let keys = db.keys();
        assert!(keys.lines().any(|line| line.starts_with("1:")), "{keys}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}

fn totp_device_verifies_a_code_from_its_uri_once(db: &mut TestDb) {
    let device = add_device(db, "totp", "alice", &[]);
    assert_eq!(
        keys(&device),
        set(&["id", "kind", "name", "confirmed", "uri"])
    );
    assert_eq!(device["kind"], "totp");
    assert_eq!(device["name"], "TOTP");
    assert_eq!(device["confirmed"], true);
    let id = str_of(&device, "id");
    assert!(id.starts_with("totp/"), "{id}");
    let uri = str_of(&device, "uri");
    assert!(
        uri.starts_with("otpauth://totp/alice?secret=")
            && uri.ends_with("&algorithm=SHA1&digits=6&period=30"),
        "{uri}"
    );

    let since = now();
    let code = code_of(db, uri, None);
    assert_verified(db, "alice", id, &code);
    let replay = ["verify", "--user", "alice", "--device", id, &code];
    let (second, third) = (db.otp(replay), db.otp(replay));
    let devices = list(db, "alice");
    let listed = listed(&devices, id);
    assert!(listed["last_used_at"].as_i64().unwrap() >= listed["created_at"].as_i64().unwrap());
    // Replayed: refused, and counted as a failure (unless the code is by chance also that of a
    // later step, which the server may rightly accept).
    if !totp_code_repeats(uri, &code, since) {
        assert_one_line_error(&second, 1, &replay);
        assert_eq!(second.stderr, "otp: invalid token\n");
        // Within the 1-second throttle delay this is refused unseen; after it, as a replay.
        assert_one_line_error(&third, 1, &replay);
        assert!(
            third.stderr == "otp: invalid token\n"
                || third.stderr == "otp: throttled: retry in 1 s\n",
            "{}",
            third.stderr
        );
        assert!(listed["throttle_failures"].as_u64().unwrap() >= 1);
    }
}

fn device_add_options_and_plain_output(db: &mut TestDb) {
    let device = add_device(
        db,
        "totp",
        "alice",
        &[
            "--name",
            "Phone",
            "--digits",
            "8",
            "--algorithm",
            "sha256",
            "--step",
            "60",
        ],
    );
    assert_eq!(device["name"], "Phone");
    let uri = str_of(&device, "uri");
    assert!(
        uri.ends_with("&algorithm=SHA256&digits=8&period=60"),
        "{uri}"
    );
    let code = code_of(db, uri, None);
    assert_eq!(code.len(), 8);
    assert_verified(db, "alice", str_of(&device, "id"), &code);

    // Without --json: the id, the URI and its QR code.
    let out = ok(db, &["device", "add", "totp", "--user", "bob"]);
    let mut lines = out.lines();
    let id = lines.next().unwrap().strip_prefix("device: totp/");
    assert!(id.is_some_and(|n| n.parse::<u64>().is_ok()), "{out}");
    let uri = lines.next().unwrap().strip_prefix("uri: ").unwrap();
    assert!(uri.starts_with("otpauth://totp/bob?secret="), "{out}");
    let drawing: Vec<&str> = lines.collect();
    assert!(drawing.len() > 10, "{out}");
    assert!(
        drawing
            .iter()
            .all(|line| line.chars().all(|c| matches!(c, '█' | '▀' | '▄' | ' '))),
        "{out}"
    );
}

fn hotp_device_verifies_its_codes(db: &mut TestDb) {
    // Once code 0 is spent, a replay is compared with the codes of counters 1 to 6 (the default
    // tolerance is 5). A device whose code 0 is by chance also one of those (one in a million
    // each) would rightly accept it again, so another is made then.
    let device = loop {
        let device = add_device(db, "hotp", "alice", &[]);
        let hotp = OtpAuthUri::parse(str_of(&device, "uri")).unwrap().to_hotp();
        if (1..=6).all(|counter| hotp.code(counter) != hotp.code(0)) {
            break device;
        }
        ok(db, &["device", "remove", str_of(&device, "id")]);
    };
    assert_eq!(
        keys(&device),
        set(&["id", "kind", "name", "confirmed", "uri"])
    );
    assert_eq!(device["kind"], "hotp");
    let uri = str_of(&device, "uri");
    assert!(
        uri.starts_with("otpauth://hotp/alice?secret=") && uri.ends_with("&counter=0"),
        "{uri}"
    );
    let id = str_of(&device, "id");
    let first = code_of(db, uri, Some(0));
    assert_verified(db, "alice", id, &first);
    assert_eq!(
        assert_rejected(db, "alice", id, &first),
        "otp: invalid token\n"
    );
    // The failure throttles the device for a second; an operator clears that.
    ok(db, &["device", "reset", id]);
    assert_verified(db, "alice", id, &code_of(db, uri, Some(1)));
    // Plain output, with --digits.
    let out = ok(
        db,
        &["device", "add", "hotp", "--user", "bob", "--digits", "7"],
    );
    assert!(out.starts_with("device: hotp/"), "{out}");
    assert!(out.lines().nth(1).unwrap().contains("&digits=7&"), "{out}");
}

fn static_codes_work_once(db: &mut TestDb) {
    let device = add_device(db, "static", "alice", &["--count", "3"]);
    assert_eq!(
        keys(&device),
        set(&["id", "kind", "name", "confirmed", "codes"])
    );
    assert_eq!(device["kind"], "static");
    let id = str_of(&device, "id");
    let codes: Vec<&str> = device["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 3);
    for code in &codes {
        assert_eq!(code.len(), 11, "{code}");
        assert_eq!(code.as_bytes()[5], b'-', "{code}");
    }
    assert_verified(db, "alice", id, codes[0]);
    assert_eq!(
        assert_rejected(db, "alice", id, codes[0]),
        "otp: invalid token\n"
    );
    ok(db, &["device", "reset", id]);
    // Case and dashes do not matter.
    assert_verified(db, "alice", id, &codes[1].to_uppercase().replace('-', ""));
    assert_eq!(listed(&list(db, "alice"), id)["codes_remaining"], 1);

    // The default count, in plain output.
    let out = ok(db, &["device", "add", "static", "--user", "bob"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("device: static/"), "{out}");
    assert_eq!(lines.len(), 12, "{out}");
    assert!(lines[2..].iter().all(|line| line.len() == 13), "{out}");
}

fn static_token_add_reuses_the_backup_code_device(db: &mut TestDb) {
    let first = ok(db, &["static-token", "add", "--user", "alice"]);
    let second = ok(db, &["static-token", "add", "--user", "alice"]);
    assert_ne!(first, second);
    for code in [&first, &second] {
        assert_eq!(code.len(), 12, "{code:?}"); // xxxxx-xxxxx and a new line
    }
    let chosen = ok(
        db,
        &[
            "static-token",
            "add",
            "--user",
            "alice",
            "--token",
            "ABCD 2345",
        ],
    );
    assert_eq!(chosen, "abcd-2345\n");
    let devices = list(db, "alice");
    assert_eq!(devices.len(), 1, "{devices:?}");
    let device = &devices[0];
    assert_eq!(
        (device["kind"].as_str(), device["name"].as_str()),
        (Some("static"), Some("Backup Code"))
    );
    assert_eq!(device["codes_remaining"], 3);
    let id = str_of(device, "id");
    assert_verified(db, "alice", id, "abcd2345");
    assert_verified(db, "alice", id, first.trim_end());
    assert_eq!(listed(&list(db, "alice"), id)["codes_remaining"], 1);

    let err = fails(
        db,
        &["static-token", "add", "--user", "alice", "--token", "short"],
        2,
    );
    assert!(err.starts_with("otp: invalid backup code: "), "{err}");
}

fn email_device_add(db: &mut TestDb) {
    let device = add_device(db, "email", "alice", &["--email", "alice@example.com"]);
    assert_eq!(
        keys(&device),
        set(&["id", "kind", "name", "confirmed", "email"])
    );
    assert_eq!(
        (device["kind"].as_str(), device["email"].as_str()),
        (Some("email"), Some("alice@example.com"))
    );
    let out = ok(
        db,
        &[
            "device",
            "add",
            "email",
            "--user",
            "alice",
            "--email",
            "a@example.com",
            "--name",
            "Work mail",
        ],
    );
    assert!(
        out.starts_with("device: email/") && out.lines().count() == 1,
        "{out}"
    );
    assert_eq!(
        fails(
            db,
            &[
                "device", "add", "email", "--user", "alice", "--email", "nobody"
            ],
            2
        ),
        "otp: invalid email address\n"
    );
}

fn device_list_is_a_json_array_of_the_users_devices(db: &mut TestDb) {
    let before = now();
    let (totp, _) = add_totp(db, "alice");
    let hotp = add_device(db, "hotp", "alice", &["--unconfirmed"]);
    let backup = add_device(db, "static", "alice", &[]);
    add_totp(db, "bob");
    let after = now();

    let devices = list(db, "alice");
    assert_eq!(devices.len(), 3, "{devices:?}");
    let ids: Vec<&str> = devices.iter().map(|d| str_of(d, "id")).collect();
    // The kinds' order: totp, hotp, email, static.
    assert_eq!(
        ids,
        [totp.as_str(), str_of(&hotp, "id"), str_of(&backup, "id")]
    );
    let common = [
        "id",
        "kind",
        "name",
        "confirmed",
        "created_at",
        "last_used_at",
        "throttle_failures",
    ];
    for device in &devices {
        let mut expected = set(&common);
        if device["kind"] == "static" {
            expected.insert("codes_remaining");
        }
        assert_eq!(keys(device), expected, "{device}");
        let created = device["created_at"].as_i64().unwrap();
        assert!((before..=after).contains(&created), "{device}");
        assert_eq!(device["last_used_at"], Value::Null);
        assert_eq!(device["throttle_failures"], 0);
    }
    assert_eq!(devices[0]["confirmed"], true);
    assert_eq!(devices[1]["confirmed"], false);
    assert_eq!(devices[2]["codes_remaining"], 10);

    // The table.
    let table = ok(db, &["device", "list", "--user", "alice"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("ID "), "{table}");
    assert!(lines[1].starts_with(&format!("{totp} ")), "{table}");
    assert!(lines[1].contains("Z  -  "), "{table}"); // RFC 3339 created, never used
}

fn remove_reset_and_unknown_devices(db: &mut TestDb) {
    let (id, uri) = add_totp(db, "alice");
    let (other, _) = add_totp(db, "bob");
    // Another user's device does not exist for this user.
    let code = code_of(db, &uri, None);
    assert_eq!(
        fails(db, &["verify", "--user", "bob", "--device", &id, &code], 2),
        "otp: no such device\n"
    );
    // A failure throttles; reset clears the count.
    assert_eq!(
        assert_rejected(db, "alice", &id, "000000x"),
        "otp: invalid token\n"
    );
    assert_eq!(listed(&list(db, "alice"), &id)["throttle_failures"], 1);
    assert_eq!(
        ok(db, &["device", "reset", &id]),
        format!("cleared the throttling of {id}\n")
    );
    assert_eq!(listed(&list(db, "alice"), &id)["throttle_failures"], 0);

    assert_eq!(
        ok(db, &["device", "remove", &id]),
        format!("removed {id}\n")
    );
    assert!(list(db, "alice").is_empty());
    assert_eq!(list(db, "bob").len(), 1);
    for args in [
        &["device", "remove", id.as_str()][..],
        &["device", "reset", &id],
        &["verify", "--user", "alice", "--device", &id, &code],
        &[
            "challenge",
            "--user",
            "alice",
            "--device",
            "email/9223372036854775807",
        ],
        &["device", "reset", "totp/9223372036854775807"],
    ] {
        assert_eq!(fails(db, args, 2), "otp: no such device\n", "{args:?}");
    }
    assert_eq!(list(db, "bob")[0]["id"], other.as_str());

    // Bad id syntax: the parse error.
    assert_eq!(
        fails(db, &["device", "remove", "totp/01"], 2),
        "otp: invalid value for '<ID>': invalid device id: the number must be 1 to \
         9223372036854775807 without sign or leading zeros\n"
    );
    assert_eq!(
        fails(
            db,
            &["verify", "--user", "alice", "--device", "totp", "123456"],
            2
        ),
        "otp: invalid value for '--device <ID>': invalid device id: expected KIND/NUMBER\n"
    );
}

fn unconfirmed_device_does_not_verify(db: &mut TestDb) {
    let device = add_device(db, "totp", "alice", &["--unconfirmed"]);
    assert_eq!(device["confirmed"], false);
    let code = code_of(db, str_of(&device, "uri"), None);
    assert_eq!(
        assert_rejected(db, "alice", str_of(&device, "id"), &code),
        "otp: not allowed: the device is not confirmed\n"
    );
}

fn user_reset_unlocks_a_locked_account(db: &mut TestDb) {
    // A budget of 3 failures, spent on three devices (each failure throttles only its own).
    db.set_env("OTP_FAILURE_BUDGET", "3");
    let devices: Vec<(String, String)> = (0..4).map(|_| add_totp(db, "alice")).collect();
    for (id, _) in &devices[..3] {
        assert_eq!(
            assert_rejected(db, "alice", id, "abc"),
            "otp: invalid token\n"
        );
    }
    let (id, uri) = &devices[3];
    let code = code_of(db, uri, None);
    assert_eq!(
        assert_rejected(db, "alice", id, &code),
        "otp: not allowed: the account is locked after too many failed verifications\n"
    );
    // Other users are not affected.
    let (bob, bob_uri) = add_totp(db, "bob");
    assert_verified(db, "bob", &bob, &code_of(db, &bob_uri, None));

    assert_eq!(
        ok(db, &["user", "reset", "--user", "alice"]),
        "cleared 3 failed verifications of the account\n"
    );
    assert_verified(db, "alice", id, &code);
    assert_eq!(
        ok(db, &["user", "reset", "--user", "alice"]),
        "cleared 0 failed verifications of the account\n"
    );
    // A bad setting is an input error.
    db.set_env("OTP_FAILURE_BUDGET", "none");
    let err = fails(db, &["user", "reset", "--user", "alice"], 2);
    assert!(
        err.starts_with("otp: invalid setting OTP_FAILURE_BUDGET: "),
        "{err}"
    );
}

/// The 6-digit code of a received message.
fn code_in_mail(body: &str) -> String {
    let code: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|line| line.len() == 6 && line.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    assert_eq!(code.len(), 1, "no single 6-digit code in {body:?}");
    code[0].to_owned()
}

fn add_email(db: &TestDb, user: &str, address: &str) -> String {
    let device = add_device(db, "email", user, &["--email", address]);
    str_of(&device, "id").to_owned()
}

fn challenge_sends_a_code_over_smtp_with_a_cooldown(db: &mut TestDb) {
    let sink = BlockingSmtpServer::start();
    db.set_env("OTP_SMTP_URL", &sink.url());
    let id = add_email(db, "alice", "alice@example.com");
    let challenge = ["challenge", "--user", "alice", "--device", id.as_str()];
    assert_eq!(
        ok(db, &challenge),
        "sent a code to alice@example.com, valid for 300 s\n"
    );
    let received = sink.received();
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    assert_eq!(mail.to, ["alice@example.com"]);
    assert_eq!(mail.from, "webmaster@localhost");
    assert_eq!(mail.header("Subject").as_deref(), Some("OTP token"));
    let code = code_in_mail(mail.body());

    // At once again: refused, nothing sent.
    let err = fails(db, &challenge, 1);
    let seconds = err
        .strip_prefix("otp: cooldown: retry in ")
        .and_then(|rest| rest.strip_suffix(" s\n"))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(seconds.is_some_and(|n| (1..=60).contains(&n)), "{err}");
    assert_eq!(sink.received().len(), 1);

    assert_verified(db, "alice", &id, &code);
    assert_eq!(
        assert_rejected(db, "alice", &id, &code),
        "otp: invalid token\n"
    );

    // The settings come from the environment.
    db.set_env("OTP_EMAIL_SUBJECT", "Your code");
    db.set_env("OTP_EMAIL_COOLDOWN_DURATION", "0");
    let id = add_email(db, "bob", "bob@example.com");
    let challenge = ["challenge", "--user", "bob", "--device", id.as_str()];
    ok(db, &challenge);
    ok(db, &challenge);
    let received = sink.received();
    assert_eq!(received.len(), 3);
    assert_eq!(received[2].header("Subject").as_deref(), Some("Your code"));
    // The newest code replaces the one before.
    assert_verified(db, "bob", &id, &code_in_mail(received[2].body()));
}

fn challenge_without_smtp_writes_the_code_to_the_log(db: &mut TestDb) {
    let id = add_email(db, "alice", "alice@example.com");
    let out = db.otp(["challenge", "--user", "alice", "--device", &id]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        out.stdout,
        "sent a code to alice@example.com, valid for 300 s\n"
    );
    assert!(
        out.stderr.ends_with(
            "otp: no mail was sent: OTP_SMTP_URL is not set, so the message and its code \
             were written to the log above\n"
        ),
        "{}",
        out.stderr
    );
    let log = out.stderr.lines().next().unwrap();
    assert!(
        log.contains("DEVELOPMENT MAILER") && log.contains("to=alice@example.com"),
        "{log}"
    );
    let code = log
        .split("body=")
        .nth(1)
        .map(|rest| rest.chars().take(6).collect::<String>())
        .unwrap_or_default();
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "{log}"
    );
    assert_verified(db, "alice", &id, &code);
}

fn challenge_refusals_and_delivery_failures(db: &mut TestDb) {
    let (totp, _) = add_totp(db, "alice");
    assert_eq!(
        fails(db, &["challenge", "--user", "alice", "--device", &totp], 1),
        "otp: not allowed: the device does not send challenges\n"
    );
    // A mail server that is not there: a system error, and no cooldown starts. The port is
    // held by a socket that does not listen (connections are refused), so that no other test
    // can start a server on it meanwhile.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    db.set_env("OTP_SMTP_URL", &format!("smtp://127.0.0.1:{closed_port}"));
    let id = add_email(db, "alice", "alice@example.com");
    let challenge = ["challenge", "--user", "alice", "--device", id.as_str()];
    let err = fails(db, &challenge, 2);
    assert!(err.starts_with("otp: delivery failed: "), "{err}");
    drop(closed);
    let sink = BlockingSmtpServer::start();
    db.set_env("OTP_SMTP_URL", &sink.url());
    ok(db, &challenge);
    assert_eq!(sink.received().len(), 1);
    // A URL that is not SMTP.
    db.set_env("OTP_SMTP_URL", "http://127.0.0.1");
    let err = fails(db, &challenge, 2);
    assert!(err.starts_with("otp: invalid SMTP URL: "), "{err}");
}

fn concurrent_verifies_accept_a_code_once(db: &mut TestDb) {
    const PROCESSES: usize = 8;
    let (id, uri) = add_totp(db, "alice");
    let since = now();
    let code = code_of(db, &uri, None);
    let outputs = run_concurrently(
        (0..PROCESSES).map(|_| db.command(["verify", "--user", "alice", "--device", &id, &code])),
    );
    let mut statuses = [0; 3];
    for output in &outputs {
        let stderr = &output.stderr;
        assert!(!stderr.contains("database is locked"), "{stderr}");
        match output.code {
            Some(status @ 0..=2) => statuses[status as usize] += 1,
            other => panic!("status {other:?}: {stderr}"),
        }
        if output.code == Some(1) {
            assert!(
                stderr == "otp: invalid token\n" || stderr.starts_with("otp: throttled: retry in "),
                "{stderr}"
            );
        }
    }
    // One winner, unless the code is by chance also that of a later step, which the server may
    // rightly accept from a loser.
    if !totp_code_repeats(&uri, &code, since) {
        assert_eq!(statuses, [1, PROCESSES - 1, 0], "{outputs:?}");
    }
}

fn keys_rotate_reseals_under_the_newest_key(db: &mut TestDb) {
    let (totp, totp_uri) = add_totp(db, "alice");
    let hotp = add_device(db, "hotp", "alice", &[]);
    let (hotp, hotp_uri) = (str_of(&hotp, "id"), str_of(&hotp, "uri"));
    let backup = add_device(db, "static", "alice", &["--count", "2"]);
    let backup_code = backup["codes"][0].as_str().unwrap().to_owned();
    let backup_id = str_of(&backup, "id").to_owned();
    // Nothing to do while there is one key.
    assert_eq!(
        ok(db, &["keys", "rotate"]),
        "examined 3 devices, re-sealed 0 under key 1\n"
    );

    let old_keys = db.keys();
    let new_key = application_key(2, 2);
    db.set_keys(&format!("{old_keys}\n{new_key}\n"));
    assert_eq!(
        ok(db, &["keys", "rotate"]),
        "examined 3 devices, re-sealed 2 under key 2\n"
    );
    assert_eq!(
        ok(db, &["keys", "rotate"]),
        "examined 3 devices, re-sealed 0 under key 2\n"
    );

    // Without the old key, the re-sealed secrets still open.
    db.set_keys(&new_key);
    assert_verified(db, "alice", &totp, &code_of(db, &totp_uri, None));
    assert_verified(db, "alice", hotp, &code_of(db, hotp_uri, Some(0)));
    // Backup codes are hashes, which cannot be re-made: they need the old key.
    let err = fails(
        db,
        &[
            "verify",
            "--user",
            "alice",
            "--device",
            &backup_id,
            &backup_code,
        ],
        2,
    );
    assert!(
        err.starts_with("otp: no application key with id 1"),
        "{err}"
    );
    db.set_keys(&format!("{old_keys}\n{new_key}\n"));
    assert_verified(db, "alice", &backup_id, &backup_code);
}

fn usage_errors_are_one_line(db: &mut TestDb) {
    for args in [
        &["device", "add", "totp"][..],
        &["device"],
        &["device", "add"],
        &["device", "add", "static", "--user", "a", "--count", "x"],
        &["verify", "--user", "a", "--device", "totp/1"],
        &["keys"],
        &["user", "reset"],
    ] {
        fails(db, args, 2);
    }
    assert_eq!(
        fails(
            db,
            &["device", "add", "static", "--user", "a", "--count", "101"],
            2
        ),
        "otp: invalid number of backup codes: 101 (expected 1 to 100)\n"
    );
    assert_eq!(
        fails(db, &["device", "add", "totp", "--user", ""], 2),
        "otp: invalid user key: it must be 1 to 255 bytes without control characters\n"
    );
}

#[test]
fn postgresql_without_a_key_is_refused() {
    const MESSAGE: &str = "otp: no application key: set OTP_SECRET_KEY (ID:HEX, 64 hex digits) \
                           or OTP_KEY_FILE; a shared PostgreSQL database never gets a key made \
                           up by one server\n";
    // Refused before connecting: nothing listens on port 1.
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--database-url",
        "postgres://postgres@127.0.0.1:1/otp",
        "device",
        "list",
        "--user",
        "alice",
    ];
    let out = run(clean_command(dir.path()).args(args));
    assert_one_line_error(&out, 2, &args);
    assert_eq!(out.stderr, MESSAGE);

    // And on a real server, with a key file that is not there.
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let mut command = clean_command(db.dir());
    command.args([
        "--database-url",
        &db.url,
        "device",
        "list",
        "--user",
        "alice",
    ]);
    let out = run(&mut command);
    assert_one_line_error(&out, 2, &args);
    assert_eq!(out.stderr, MESSAGE);
    let missing = db.dir().join("missing.key");
    let out = run(command.env("OTP_KEY_FILE", &missing));
    assert_one_line_error(&out, 2, &args);
    assert!(
        out.stderr
            .starts_with(&format!("otp: key file {}: ", missing.display())),
        "{}",
        out.stderr
    );
    // Migrating needs no key.
    let out = run(clean_command(db.dir()).args(["--database-url", &db.url, "migrate"]));
    assert_eq!(out.code, Some(0), "{out:?}");
}

#[test]
fn the_database_defaults_to_the_environment_then_otp_db_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(clean_command(dir.path()).args(["static-token", "add", "--user", "alice"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(dir.path().join("otp.db").is_file());
    assert!(dir.path().join("otp.db.key").is_file());

    let other = dir.path().join("other.db");
    let url = format!("sqlite://{}", other.display());
    let out = run(clean_command(dir.path())
        .env("OTP_DATABASE_URL", &url)
        .args(["device", "list", "--user", "alice"]));
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), "no devices\n"));
    assert!(other.is_file() && dir.path().join("other.db.key").is_file());
    // The flag wins over the environment.
    let out = run(clean_command(dir.path())
        .env("OTP_DATABASE_URL", &url)
        .args(["--database-url", "sqlite://otp.db", "device", "list"])
        .args(["--user", "alice", "--json"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    let devices: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(devices.as_array().unwrap().len(), 1);

    let out = run(clean_command(dir.path())
        .env("OTP_DATABASE_URL", "mysql://localhost/otp")
        .arg("migrate"));
    assert_one_line_error(&out, 2, &["migrate"]);
    assert_eq!(
        out.stderr,
        "otp: invalid database URL: expected sqlite://PATH or postgres://USER@HOST/DATABASE\n"
    );
}

#[test]
fn keys_from_the_environment_and_a_key_file() {
    // OTP_SECRET_KEY wins over the key file beside the database; OTP_KEY_FILE over that file.
    let dir = tempfile::tempdir().unwrap();
    let key = application_key(7, 7);
    let key_file = dir.path().join("keys.txt");
    std::fs::write(&key_file, format!("# a comment\n{key}\n")).unwrap();
    let url = format!("sqlite://{}", dir.path().join("otp.db").display());
    let otp = |env: &[(&str, &str)], args: &[&str]| {
        let mut command = clean_command(dir.path());
        command.arg("--database-url").arg(&url).args(args);
        command.envs(env.iter().copied());
        run(&mut command)
    };
    let out = otp(
        &[("OTP_SECRET_KEY", &key)],
        &["device", "add", "totp", "--user", "alice", "--json"],
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(!dir.path().join("otp.db.key").exists());
    let device: Value = serde_json::from_str(&out.stdout).unwrap();
    let id = str_of(&device, "id");
    let out = otp(
        &[("OTP_KEY_FILE", key_file.to_str().unwrap())],
        &["keys", "rotate"],
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "examined 1 device, re-sealed 0 under key 7\n")
    );
    // A malformed key is refused without repeating it.
    let out = otp(
        &[("OTP_SECRET_KEY", "7:abcd")],
        &["device", "list", "--user", "alice"],
    );
    assert_one_line_error(&out, 2, &[]);
    assert_eq!(
        out.stderr,
        "otp: invalid application key: key 7 must be 64 hex digits (256 bits)\n"
    );
    // The wrong key opens nothing: verifying is a system error, not a rejected token.
    let out = otp(
        &[("OTP_SECRET_KEY", &application_key(7, 8))],
        &["verify", "--user", "alice", "--device", id, "123456"],
    );
    assert_one_line_error(&out, 2, &[]);
}

#[test]
fn concurrent_commands_on_a_fresh_machine_share_one_database_and_key() {
    // Eight first commands at once: one creates the database and its key file, the others
    // wait for them instead of failing.
    const PROCESSES: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    let outputs = run_concurrently((0..PROCESSES).map(|n| {
        let mut command = clean_command(dir.path());
        command.args(["static-token", "add", "--user", &format!("user{n}")]);
        command
    }));
    let codes: Vec<String> = outputs
        .into_iter()
        .map(|output| {
            assert_eq!((output.code, output.stderr.as_str()), (Some(0), ""));
            output.stdout.trim_end().to_owned()
        })
        .collect();
    // Every code was hashed under the one key now in the file.
    for (n, code) in codes.iter().enumerate() {
        let user = format!("user{n}");
        let out =
            run(clean_command(dir.path()).args(["device", "list", "--user", &user, "--json"]));
        let devices: Value = serde_json::from_str(&out.stdout).unwrap();
        let id = str_of(&devices[0], "id");
        let out =
            run(clean_command(dir.path()).args(["verify", "--user", &user, "--device", id, code]));
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (Some(0), "verified\n"),
            "{out:?}"
        );
    }
}
