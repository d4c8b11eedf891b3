//! Secrets hygiene: a full flow against `otp serve` with `OTP_LOG=trace`, its standard error
//! captured and searched. Sign-up, enrolment (self-service and with the CLI), logins with the
//! password and a TOTP code, a wrong password, a wrong code, a backup code, an email code from
//! the development mailer, the admin: no TOTP secret (base32 or hex), no code submitted (right
//! or wrong), no password, no session cookie, no CSRF token and no application key may appear
//! in the log. The development mailer writes each email, code included, to the log on purpose
//! (it is the only way to read the code without SMTP, and it says so at start-up): that one
//! labelled event is left out of the search, and must be the only place the email code is.
//!
//! Every response of the flow carries the security headers (a CSP without inline scripts or
//! styles and with `frame-ancestors 'none'`, `nosniff`, a referrer policy), and every page and
//! JSON answer — those that show secrets above all — `Cache-Control: no-store`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::flows::{
    PASSWORD, add_device, add_user, error_code, now_unix, totp, totp_codes_near_now, uri,
    wrong_code,
};
use common::http::{Client, Response};
use common::server::Server;
use common::{SplitMix64, TestDb, hex};
use serde_json::{Value, json};

/// The password of the user who signs up: distinctive, so that any trace of it is found.
const SIGNUP_PASSWORD: &str = "Quartz-Lantern-7731-Owl";

/// The label of the development mailer's event (otp-core's `DevelopmentLogMailer`).
const MAILER_LABEL: &str = "DEVELOPMENT MAILER: email not sent";

/// Everything the flow sent or received, and the secrets to look for.
#[derive(Default)]
struct Flow {
    /// Each response, with what it answered.
    responses: Vec<(String, Response)>,
    /// Secrets that must not be in the log, with what they are.
    secrets: Vec<(String, String)>,
    /// Codes (digits only) that must not be in the log.
    codes: BTreeSet<String>,
}

impl Flow {
    fn secret(&mut self, what: &str, value: &str) {
        assert!(!value.is_empty(), "{what}");
        self.secrets.push((what.to_owned(), value.to_owned()));
    }

    /// Records a response, and the session cookie it left in `client`.
    fn record(&mut self, what: &str, client: &Client, response: Response) -> Response {
        if let Some(cookie) = &client.cookie {
            self.secret("a session cookie", cookie);
        }
        self.responses.push((what.to_owned(), response.clone()));
        response
    }

    fn get(&mut self, client: &mut Client, path: &str) -> Response {
        let response = client.get(path);
        self.record(&format!("GET {path}"), client, response)
    }

    fn json(&mut self, client: &mut Client, method: &str, path: &str, body: &Value) -> Response {
        let response = client.json(method, path, body);
        self.record(&format!("{method} {path}"), client, response)
    }

    /// A request without a body, asking for JSON.
    fn bare(&mut self, client: &mut Client, method: &str, path: &str) -> Response {
        let response = client.request(method, path, &[("accept", "application/json")], b"");
        self.record(&format!("{method} {path}"), client, response)
    }

    fn form(&mut self, client: &mut Client, path: &str, fields: &[(&str, &str)]) -> Response {
        let response = client.post_form(path, fields);
        self.record(&format!("POST {path} (form)"), client, response)
    }

    fn login(&mut self, client: &mut Client, username: &str, password: &str) -> Response {
        self.json(
            client,
            "POST",
            "/api/v1/session",
            &json!({ "username": username, "password": password }),
        )
    }

    /// Presents a code (remembered for the search).
    fn verify(&mut self, client: &mut Client, device: &str, token: &str) -> Response {
        if token.bytes().all(|b| b.is_ascii_digit()) {
            self.codes.insert(token.to_owned());
        } else {
            self.secret("a backup code", token);
        }
        self.json(
            client,
            "POST",
            "/api/v1/otp/verify",
            &json!({ "device": device, "token": token }),
        )
    }

    /// A TOTP device's secret, in base32 (as in its URI) and in hex, in both cases.
    fn totp_secret(&mut self, device: &Value) {
        let parsed = uri(device);
        let base32 = parsed.secret.to_base32();
        let hex = hex(parsed.secret.as_bytes());
        self.secret("a TOTP secret (base32)", base32.trim_end_matches('='));
        self.secret("a TOTP secret (hex)", &hex);
        self.secret("a TOTP secret (HEX)", &hex.to_ascii_uppercase());
    }
}

/// The log's events: each starts on a line with a timestamp (`2025-01-31T...`); the lines of a
/// field that holds line breaks (an email body) belong to the event before.
fn events(log: &str) -> Vec<String> {
    let mut events: Vec<String> = Vec::new();
    for line in log.lines() {
        let starts_event = line.len() > 11
            && line.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && line.as_bytes()[4] == b'-'
            && line.as_bytes()[10] == b'T';
        match events.last_mut() {
            Some(event) if !starts_event => {
                event.push('\n');
                event.push_str(line);
            }
            _ => events.push(line.to_owned()),
        }
    }
    events
}

/// Whether `code` occurs in `text` as a number of its own (not inside a longer run of letters
/// and digits, such as a timestamp's fraction of a second).
fn contains_code(text: &str, code: &str) -> bool {
    let bytes = text.as_bytes();
    text.match_indices(code).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + code.len()).copied();
        !before.is_some_and(|b| b.is_ascii_alphanumeric())
            && !after.is_some_and(|b| b.is_ascii_alphanumeric())
    })
}

/// The event without its timestamp (whose digits are not the flow's).
fn without_timestamp(event: &str) -> &str {
    event.split_once(' ').map_or(event, |(_, rest)| rest)
}

#[track_caller]
fn assert_security_headers(response: &Response, what: &str) {
    let csp = response.header("content-security-policy").unwrap_or("");
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    assert!(
        directives.contains(&"frame-ancestors 'none'"),
        "{what}: CSP {csp:?}"
    );
    assert!(
        directives
            .iter()
            .any(|d| *d == "script-src 'self'" || *d == "default-src 'self'")
            && !csp.contains("'unsafe-inline'")
            && !csp.contains("'unsafe-eval'"),
        "{what}: CSP {csp:?}"
    );
    assert_eq!(
        response.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert!(
        matches!(
            response.header("referrer-policy"),
            Some("no-referrer" | "same-origin" | "strict-origin-when-cross-origin")
        ),
        "{what}: {:?}",
        response.header("referrer-policy")
    );
    assert_eq!(response.header("x-frame-options"), Some("DENY"), "{what}");
}

/// The email code of the development mailer's event: `body=NNNNNN`.
fn mailed_code(event: &str) -> String {
    let at = event.find("body=").expect("a body field") + "body=".len();
    event[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

fn secrets_stay_out_of_the_log(db: &mut TestDb) {
    let mut flow = Flow::default();
    let mut rng = SplitMix64::new(0x10c);
    let mut server = Server::start(
        db,
        &[
            ("OTP_LOG", "trace"),
            // A wrong code and then the right one, without waiting.
            ("OTP_TOTP_THROTTLE_FACTOR", "0"),
            ("OTP_STATIC_THROTTLE_FACTOR", "0"),
            // The admin's config and QR pages show secrets: they must not be logged either.
            ("OTP_ADMIN_HIDE_SENSITIVE_DATA", "false"),
        ],
    );
    flow.secret("the password of the sign-up", SIGNUP_PASSWORD);
    flow.secret("the password of the CLI's users", PASSWORD);
    let keys = db.keys();
    let lines = keys.lines().map(str::trim);
    for line in lines.filter(|line| !line.is_empty() && !line.starts_with('#')) {
        let (_, key) = line.split_once(':').expect("ID:HEX");
        flow.secret("the application key", key);
        flow.secret("the application key (HEX)", &key.to_ascii_uppercase());
    }

    // Sign-up through the form.
    let mut browser = server.client();
    let page = flow.get(&mut browser, "/signup");
    let csrf = page.csrf_token();
    flow.secret("a CSRF token", &csrf);
    let signed_up = flow.form(
        &mut browser,
        "/signup",
        &[
            ("csrf_token", &csrf),
            ("username", "alice"),
            ("email", "alice@example.com"),
            ("password", SIGNUP_PASSWORD),
            ("password_confirm", SIGNUP_PASSWORD),
        ],
    );
    signed_up.assert_status(303, "sign-up");

    // Self-service enrolment of a TOTP device (the new user has no device yet), through the
    // JSON API and its confirmation page, confirmed with a code.
    let added = flow.json(&mut browser, "POST", "/api/v1/devices/totp", &json!({}));
    added.assert_status(201, "a new TOTP device");
    let app_device = added.json();
    flow.totp_secret(&app_device);
    let app_id = app_device["id"].as_str().unwrap().to_owned();
    let confirm_page = flow.get(&mut browser, &format!("/account/devices/{app_id}/confirm"));
    confirm_page.assert_status(200, "the confirmation page");
    let qr = flow.get(&mut browser, &format!("/account/devices/{app_id}/qr.svg"));
    qr.assert_status(200, "the QR code");
    let code = totp(&app_device).code_at(now_unix()).unwrap().to_string();
    flow.codes.insert(code.clone());
    flow.json(
        &mut browser,
        "POST",
        &format!("/api/v1/devices/{app_id}/confirm"),
        &json!({ "token": code }),
    )
    .assert_status(200, "confirmed");

    // More devices with the CLI: another authenticator, backup codes, email codes.
    let cli_totp = add_device(db, "totp", "alice", &[]);
    flow.totp_secret(&cli_totp);
    let backup = add_device(db, "static", "alice", &[]);
    for code in backup["codes"].as_array().unwrap() {
        flow.secret("a backup code", code.as_str().unwrap());
    }
    let email = add_device(db, "email", "alice", &["--email", "alice@example.com"]);
    let totp_id = cli_totp["id"].as_str().unwrap();

    // Logins through the JSON API: a wrong password, a wrong code, the right code.
    let mut api = server.client();
    let refused = flow.login(&mut api, "alice", "Not-The-Password-9");
    flow.secret("a wrong password", "Not-The-Password-9");
    assert_eq!(error_code(&refused), "invalid_credentials");
    flow.login(&mut api, "alice", SIGNUP_PASSWORD)
        .assert_status(200, "the password");
    let avoid = totp_codes_near_now(&totp(&cli_totp));
    let wrong = wrong_code(&mut rng, &avoid);
    let refused = flow.verify(&mut api, totp_id, &wrong);
    assert_eq!(error_code(&refused), "invalid_token");
    let right = totp(&cli_totp).code_at(now_unix()).unwrap().to_string();
    flow.verify(&mut api, totp_id, &right)
        .assert_status(200, "the right code");
    flow.bare(&mut api, "GET", "/api/v1/me")
        .assert_status(200, "me");

    // A backup code, a wrong one first.
    let mut second = server.client();
    flow.login(&mut second, "alice", SIGNUP_PASSWORD)
        .assert_status(200, "the password");
    let backup_id = backup["id"].as_str().unwrap();
    flow.verify(&mut second, backup_id, "wrongcode99");
    let code = backup["codes"][0].as_str().unwrap();
    flow.verify(&mut second, backup_id, code)
        .assert_status(200, "a backup code");

    // An email code from the development mailer.
    let mut third = server.client();
    flow.login(&mut third, "alice", SIGNUP_PASSWORD)
        .assert_status(200, "the password");
    let email_id = email["id"].as_str().unwrap();
    flow.json(
        &mut third,
        "POST",
        "/api/v1/otp/challenge",
        &json!({ "device": email_id }),
    )
    .assert_status(200, "the challenge");
    // The event is written before the answer goes out; give the writer a moment.
    let mut email_code = String::new();
    for _ in 0..50 {
        if let Some(event) = events(&server.log())
            .into_iter()
            .find(|event| event.contains(MAILER_LABEL))
        {
            email_code = mailed_code(&event);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(email_code.len(), 6, "the mailed code: {email_code:?}");
    flow.verify(&mut third, email_id, &email_code)
        .assert_status(200, "the email code");
    flow.bare(&mut third, "DELETE", "/api/v1/session")
        .assert_status(204, "log out");

    // The HTML pages of a verified session, and the admin of a staff user.
    add_user(db, "root", &["--staff"]);
    let root_totp = add_device(db, "totp", "root", &[]);
    flow.totp_secret(&root_totp);
    let mut admin = server.client();
    flow.login(&mut admin, "root", PASSWORD)
        .assert_status(200, "root's password");
    let code = totp(&root_totp).code_at(now_unix()).unwrap().to_string();
    flow.verify(&mut admin, root_totp["id"].as_str().unwrap(), &code)
        .assert_status(200, "root's code");
    let alice_key = flow.bare(&mut api, "GET", "/api/v1/me").json()["user"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in [
        "/".to_owned(),
        "/account/devices".to_owned(),
        "/account/password".to_owned(),
        "/admin".to_owned(),
        format!("/admin/users/{alice_key}"),
        format!("/admin/devices/{totp_id}"),
        format!("/admin/devices/{totp_id}/config"),
        format!("/admin/devices/{totp_id}/qr.svg"),
        "/api/v1/devices".to_owned(),
        "/static/app.css".to_owned(),
    ] {
        let page = flow.get(&mut admin, &path);
        assert!(page.status < 500, "{path}: {}", page.status);
    }
    // The admin makes Alice a TOTP device with a secret it types in: the form's secret must not
    // be logged either, and the page that shows it back is not stored.
    let typed_secret = common::base32(&rng.bytes(20));
    flow.secret("a TOTP secret typed into the admin", &typed_secret);
    let new_device = format!("/admin/users/{alice_key}/devices/new/totp");
    let new_page = flow.get(&mut admin, &new_device);
    new_page.assert_status(200, "the admin's new device form");
    let made = flow.form(
        &mut admin,
        &new_device,
        &[
            ("csrf_token", &new_page.csrf_token()),
            ("name", "Typed in"),
            ("secret", &typed_secret),
            ("algorithm", "SHA1"),
            ("digits", "6"),
            ("step", "30"),
            ("confirmed", "on"),
        ],
    );
    assert!(made.status < 400, "{}: {}", made.status, made.body);
    // Root makes backup codes for themself: shown once on the answer, with their download.
    let devices_page = flow.get(&mut admin, "/account/devices");
    devices_page.assert_status(200, "root's devices");
    let codes_page = flow.form(
        &mut admin,
        "/account/devices/static",
        &[
            ("csrf_token", &devices_page.csrf_token()),
            ("name", "Paper"),
        ],
    );
    codes_page.assert_status(200, "new backup codes");
    let shown: Vec<String> = codes_page
        .body
        .split("<li><code>")
        .skip(1)
        .map(|rest| rest.split('<').next().unwrap_or_default().to_owned())
        .collect();
    assert!(!shown.is_empty(), "codes in {:?}", codes_page.body);
    for code in &shown {
        flow.secret("a backup code made on the page", code);
    }
    for path in [
        "/account/login",
        "/account/login/otp",
        "/signup",
        "/nowhere",
    ] {
        flow.get(&mut server.client(), path);
    }

    // Stop the server, so that its log is complete.
    assert_eq!(
        server.terminate(Duration::from_secs(10)).code(),
        Some(0),
        "{}",
        server.log()
    );
    let log = server.log();
    let events = events(&log);
    assert!(
        events.len() > 50,
        "OTP_LOG=trace logs the flow: {} events",
        events.len()
    );
    let (mailer, searched): (Vec<&String>, Vec<&String>) = events
        .iter()
        .partition(|event| event.contains(MAILER_LABEL));
    assert_eq!(mailer.len(), 1, "one email was sent: {mailer:#?}");
    assert!(mailer[0].contains(&email_code));
    flow.codes.insert(email_code);
    flow.secret("a session cookie", api.cookie.as_deref().unwrap());
    let mut leaks = Vec::new();
    for event in &searched {
        let text = without_timestamp(event);
        let lower = text.to_ascii_lowercase();
        for (what, secret) in &flow.secrets {
            if text.contains(secret.as_str())
                || (secret.len() >= 8 && lower.contains(&secret.to_ascii_lowercase()))
            {
                leaks.push(format!("{what} ({secret}) in: {text}"));
            }
        }
        for code in &flow.codes {
            if contains_code(text, code) {
                leaks.push(format!("the code {code} in: {text}"));
            }
        }
        if text.contains("$argon2") {
            leaks.push(format!("a password hash in: {text}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets in the log:\n{}",
        leaks.join("\n")
    );
    // The mailer's event holds the code and nothing else secret.
    for (what, secret) in &flow.secrets {
        assert!(
            !mailer[0].contains(secret.as_str()),
            "{what} in {}",
            mailer[0]
        );
    }

    // Headers of every response of the flow.
    for (what, response) in &flow.responses {
        assert_security_headers(response, what);
        let static_file = what.ends_with(".css");
        if !static_file {
            assert_eq!(
                response.header("cache-control"),
                Some("no-store"),
                "{what}: {}",
                response.status
            );
        }
        for (name, value) in &response.headers {
            for (secret_what, secret) in &flow.secrets {
                if secret_what.starts_with("a session cookie") && name == "set-cookie" {
                    continue;
                }
                assert!(
                    !value.contains(secret.as_str()),
                    "{what}: {secret_what} in the header {name}"
                );
            }
        }
    }
    // Pages that show secrets were really looked at (the checks above are not vacuous).
    for (what, needle) in [
        ("POST /api/v1/devices/totp", "\"secret\""),
        ("/confirm", "otpauth:"),
        ("/devices/new/totp (form)", "otpauth:"),
        ("/config", "otpauth:"),
        ("/qr.svg", "<svg"),
        ("/account/devices/static (form)", "href=\"data:text"),
    ] {
        assert!(
            flow.responses
                .iter()
                .any(|(w, r)| w.contains(what) && r.status < 300 && r.body.contains(needle)),
            "{what} showed no {needle}"
        );
    }
}

database_tests!(secrets_stay_out_of_the_log);
