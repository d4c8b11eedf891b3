//! `otp serve` as it runs in production: the real binary on a SQLite file or a fresh
//! PostgreSQL database, spoken to over TCP by a tiny HTTP/1 client.

mod common;

use std::process::Command;
use std::time::Duration;

use common::flows::{PASSWORD, add_device, add_user, html_login, json_login};
use common::http::{Client, Response, chunked};
use common::server::{SERVE, Server};
use common::{TestDb, clean_command, run, run_with_input};
use serde_json::{Value, json};

/// The Content-Security-Policy the issue asks for, written out here rather than taken from the
/// code under test.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

const NEW_PASSWORD: &str = "staple of the horse";

#[track_caller]
fn assert_security_headers(response: &Response, what: &str) {
    assert_eq!(
        response.header("content-security-policy"),
        Some(CSP),
        "{what}"
    );
    assert_eq!(
        response.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert!(
        matches!(
            response.header("referrer-policy"),
            Some("no-referrer" | "same-origin")
        ),
        "{what}: {:?}",
        response.header("referrer-policy")
    );
    assert_eq!(response.header("x-frame-options"), Some("DENY"), "{what}");
}

/// Runs `command`, an `otp serve` that must refuse to start with status 2; returns its
/// standard error.
#[track_caller]
fn refused(command: &mut Command) -> String {
    let out = run(command);
    assert_eq!(out.code, Some(2), "{out:?}");
    out.stderr
}

/// `GET /api/v1/me`.
fn me(client: &mut Client) -> Response {
    client.request("GET", "/api/v1/me", &[("accept", "application/json")], b"")
}

fn home_page_sends_the_security_headers(db: &mut TestDb) {
    let server = Server::start(db, &[]);
    let mut client = server.client();
    let home = client.get("/");
    home.assert_status(200, "GET /");
    assert_security_headers(&home, "GET /");
    assert!(
        home.body.contains("You are not logged in."),
        "{}",
        home.body
    );
    assert!(
        !home.body.contains("<script") && !home.body.contains("style="),
        "{}",
        home.body
    );
    // An anonymous visit to the home page does not make a session.
    assert_eq!(home.header("set-cookie"), None);
    // Every response: the library's pages, the stylesheets, JSON, errors, a missing page.
    for path in [
        "/account/login",
        "/account/otp.css",
        "/static/app.css",
        "/api/v1/me",
        "/signup",
        "/no/such/page",
    ] {
        let response = client.get(path);
        assert_security_headers(&response, path);
    }
    let css = client.get("/static/app.css");
    css.assert_status(200, "app.css");
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    client
        .get("/no/such/page")
        .assert_status(404, "a missing page");
    let me = me(&mut client);
    me.assert_status(401, "anonymous /api/v1/me");
    assert_security_headers(&me, "401");
}

fn signup_then_json_login(db: &mut TestDb) {
    let server = Server::start(db, &[]);
    let mut browser = server.client();
    let form = browser.get("/signup");
    form.assert_status(200, "GET /signup");
    let token = form.csrf_token();
    let signup =
        |browser: &mut Client, token: &str, username: &str, password: &str, confirm: &str| {
            browser.post_form(
                "/signup",
                &[
                    ("csrf_token", token),
                    ("username", username),
                    ("email", "alice@example.com"),
                    ("password", password),
                    ("password_confirm", confirm),
                ],
            )
        };
    // Refusals show the form again with the reason, and keep the username.
    let refused = signup(&mut browser, &token, "Alice", PASSWORD, "something else");
    refused.assert_status(400, "mismatched passwords");
    assert!(refused.body.contains("do not match"), "{}", refused.body);
    assert!(refused.body.contains("value=\"Alice\""), "{}", refused.body);
    assert!(
        !refused.body.contains(PASSWORD),
        "the password is never echoed"
    );
    let refused = signup(&mut browser, &token, "Alice", "short", "short");
    refused.assert_status(400, "short password");
    assert!(
        refused.body.contains("at least 8 characters"),
        "{}",
        refused.body
    );
    let refused = signup(&mut browser, &token, "12345", PASSWORD, PASSWORD);
    refused.assert_status(400, "digits only");
    let refused = signup(&mut browser, "forged", "Alice", PASSWORD, PASSWORD);
    refused.assert_status(403, "a bad CSRF token");

    let created = signup(&mut browser, &token, "Alice", PASSWORD, PASSWORD);
    created.assert_status(303, "sign-up");
    assert_eq!(created.header("location"), Some("/"));
    let home = browser.get("/");
    assert!(home.body.contains("Welcome, Alice"), "{}", home.body);
    assert!(home.body.contains("no two-factor device"), "{}", home.body);

    // The name is taken, in any case.
    let mut other = server.client();
    let token = other.get("/signup").csrf_token();
    let taken = signup(&mut other, &token, "ALICE", PASSWORD, PASSWORD);
    taken.assert_status(409, "a taken username");
    assert!(taken.body.contains("taken"), "{}", taken.body);

    // The JSON API logs the new user in, whatever the case of the username.
    let mut api = server.client();
    let wrong = json_login(&mut api, "alice", "wrong password");
    wrong.assert_status(401, "a wrong password");
    assert_eq!(wrong.json()["error"], "invalid_credentials");
    json_login(&mut api, "nobody", PASSWORD).assert_status(401, "an unknown user");
    let logged_in = json_login(&mut api, "aLiCe", PASSWORD);
    logged_in.assert_status(200, "JSON login");
    assert_eq!(
        logged_in.json(),
        json!({ "otp_required": false, "devices": [] })
    );
    let me = me(&mut api);
    me.assert_status(200, "/api/v1/me");
    assert_eq!(me.json()["verified"], Value::Bool(false));
    let key = me.json()["user"].as_str().unwrap().to_owned();
    assert!(
        key.parse::<u64>().is_ok(),
        "the key is the numeric id: {key}"
    );
    // The CLI finds the user by name.
    let listed = db.otp(["device", "list", "--user", "alice", "--json"]);
    assert_eq!(listed.code, Some(0), "{listed:?}");
    // Logging out ends the session.
    api.request("DELETE", "/api/v1/session", &[], b"")
        .assert_status(204, "logout");
    me_status(&mut api, 401);

    // The library's HTML pages log the same user in, and the home page's form out.
    let mut html = server.client();
    let logged_in = html_login(&mut html, "alice", &[]);
    logged_in.assert_status(303, "HTML login");
    assert_eq!(logged_in.header("location"), Some("/"));
    let home = html.get("/");
    assert!(home.body.contains("Welcome, Alice"), "{}", home.body);
    let token = home.csrf_token();
    html.post_form("/account/logout", &[("csrf_token", &token)])
        .assert_status(303, "HTML logout");
    let home = html.get("/");
    assert!(
        home.body.contains("You are not logged in."),
        "{}",
        home.body
    );
}

#[track_caller]
fn me_status(client: &mut Client, status: u16) -> Response {
    let response = me(client);
    response.assert_status(status, "/api/v1/me");
    response
}

fn password_change_ends_other_sessions(db: &mut TestDb) {
    add_user(db, "bob", &[]);
    let server = Server::start(db, &[]);
    let mut anonymous = server.client();
    let redirect = anonymous.get("/account/password");
    redirect.assert_status(303, "anonymous password page");
    assert_eq!(
        redirect.header("location"),
        Some("/account/login?next=/account/password")
    );

    let mut a = server.client();
    let mut b = server.client();
    json_login(&mut a, "bob", PASSWORD).assert_status(200, "login a");
    json_login(&mut b, "bob", PASSWORD).assert_status(200, "login b");
    let page = a.get("/account/password");
    page.assert_status(200, "password page");
    let token = page.csrf_token();
    let change = |a: &mut Client, current: &str, new: &str, confirm: &str| {
        a.post_form(
            "/account/password",
            &[
                ("csrf_token", token.as_str()),
                ("current_password", current),
                ("new_password", new),
                ("new_password_confirm", confirm),
            ],
        )
    };
    let refused = change(&mut a, PASSWORD, NEW_PASSWORD, "typo");
    refused.assert_status(400, "mismatch");
    assert!(refused.body.contains("do not match"), "{}", refused.body);
    let refused = change(&mut a, "not my password", NEW_PASSWORD, NEW_PASSWORD);
    refused.assert_status(400, "wrong current password");
    assert!(refused.body.contains("not right"), "{}", refused.body);
    let refused = change(&mut a, PASSWORD, "short", "short");
    refused.assert_status(400, "short new password");
    me_status(&mut b, 200);

    let before = a.cookie.clone();
    let changed = change(&mut a, PASSWORD, NEW_PASSWORD, NEW_PASSWORD);
    changed.assert_status(200, "password change");
    assert!(
        changed.body.contains("your other session was logged out"),
        "{}",
        changed.body
    );
    assert_ne!(a.cookie, before, "the session id is cycled");
    me_status(&mut a, 200);
    me_status(&mut b, 401);
    let mut c = server.client();
    json_login(&mut c, "bob", PASSWORD).assert_status(401, "the old password");
    json_login(&mut c, "bob", NEW_PASSWORD).assert_status(200, "the new password");
}

fn two_factor_login_over_json(db: &mut TestDb) {
    let key = add_user(db, "carol", &[]);
    let device = add_device(db, "totp", "Carol", &[]);
    let (id, uri) = (
        device["id"].as_str().unwrap(),
        device["uri"].as_str().unwrap(),
    );
    let server = Server::start(db, &[]);
    let mut client = server.client();
    let started = json_login(&mut client, "carol", PASSWORD);
    started.assert_status(200, "password step");
    assert_eq!(started.json()["otp_required"], Value::Bool(true));
    assert_eq!(started.json()["devices"][0]["id"], id);
    // Not logged in until the second factor.
    me_status(&mut client, 401);
    let code = db.otp(["code", "--uri", uri]);
    assert_eq!(code.code, Some(0), "{code:?}");
    let verified = client.json(
        "POST",
        "/api/v1/otp/verify",
        &json!({ "device": id, "token": code.stdout.trim() }),
    );
    verified.assert_status(200, "verify");
    let me = me_status(&mut client, 200).json();
    assert_eq!(me, json!({ "user": key, "verified": true, "device": id }));
    let home = client.get("/");
    assert!(
        home.body
            .contains("This session is verified by your device"),
        "{}",
        home.body
    );
}

fn oversized_bodies_get_413_and_slow_ones_408(db: &mut TestDb) {
    let server = Server::start(db, &[("OTP_REQUEST_TIMEOUT", "1")]);
    let mut client = server.client();
    let big = vec![b'a'; 100 * 1024];
    let response = client.request(
        "POST",
        "/api/v1/session",
        &[("content-type", "application/json")],
        &big,
    );
    response.assert_status(413, "100 KiB with Content-Length");
    assert_security_headers(&response, "413");
    // Chunked, so that only reading tells.
    let request = chunked(
        "POST /signup HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
         content-type: application/x-www-form-urlencoded\r\ntransfer-encoding: chunked\r\n\r\n",
        3,
        &[b'a'; 30 * 1024],
    );
    client.raw(&request).assert_status(413, "90 KiB, chunked");
    // Below the limit: the handler sees it (and refuses it as not JSON).
    let fits = vec![b'a'; 60 * 1024];
    client
        .request(
            "POST",
            "/api/v1/session",
            &[("content-type", "application/json")],
            &fits,
        )
        .assert_status(400, "60 KiB of not JSON");
    // A body that never comes: the request times out.
    let slow = client.raw(
        b"POST /api/v1/session HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          content-length: 100\r\n\r\n{",
    );
    slow.assert_status(408, "a body that never ends");
}

fn sigterm_stops_the_server_with_status_0(db: &mut TestDb) {
    let mut server = Server::start(db, &[]);
    server.client().get("/").assert_status(200, "GET /");
    let status = server.terminate(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status:?}; log:\n{}", server.log());
    let log = server.log();
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

fn user_add_then_device_list_by_username(db: &mut TestDb) {
    let added = run_with_input(
        db.command(["user", "add", "dave", "--password-stdin"])
            .args(["--email", "dave@example.com", "--staff"]),
        &format!("{PASSWORD}\r\n"),
    );
    assert_eq!(
        (added.code, added.stdout.as_str()),
        (Some(0), "added staff user dave (key 1)\n"),
        "{}",
        added.stderr
    );
    let added = db.otp(["device", "add", "static", "--user", "DAVE", "--json"]);
    assert_eq!(added.code, Some(0), "{added:?}");
    for user in ["dave", "Dave", "1"] {
        let listed = db.otp(["device", "list", "--user", user, "--json"]);
        assert_eq!(listed.code, Some(0), "{listed:?}");
        let devices: Value = serde_json::from_str(&listed.stdout).unwrap();
        assert_eq!(devices.as_array().map(Vec::len), Some(1), "--user {user}");
    }
    // A name no user has is a key as it is.
    let listed = db.otp(["device", "list", "--user", "erin"]);
    assert_eq!(
        (listed.code, listed.stdout.as_str()),
        (Some(0), "no devices\n")
    );
    let reset = db.otp(["user", "reset", "--user", "dave"]);
    assert_eq!(reset.code, Some(0), "{reset:?}");

    // Without --password-stdin: a new password, shown once, that works.
    let added = db.otp(["user", "add", "erin"]);
    assert_eq!(added.code, Some(0), "{added:?}");
    let mut lines = added.stdout.lines();
    assert_eq!(lines.next(), Some("added user erin (key 2)"));
    let password = lines
        .next()
        .and_then(|line| line.strip_prefix("password: "))
        .and_then(|line| line.strip_suffix(" (shown this once)"))
        .unwrap_or_else(|| panic!("{added:?}"))
        .to_owned();
    assert_eq!(password.len(), 20);
    let server = Server::start(db, &[]);
    json_login(&mut server.client(), "erin", &password).assert_status(200, "generated password");

    // Refusals: one line, status 2, before anything is written.
    for (args, stdin, message) in [
        (
            &["user", "add", "DAVE", "--password-stdin"][..],
            "another password\n",
            "otp: the username is already taken\n",
        ),
        (
            &["user", "add", "42"],
            "",
            "otp: invalid username: it must not be made of digits only (those are user keys)\n",
        ),
        (
            &["user", "add", "\u{430}dmin"],
            "",
            "otp: invalid username: it must not mix scripts (such as Latin and Cyrillic letters), \
             which could make it look like another user's name\n",
        ),
        (
            &[
                "user",
                "add",
                "\u{ff24}\u{ff21}\u{ff36}\u{ff25}",
                "--password-stdin",
            ],
            "another password\n",
            "otp: the username is already taken\n",
        ),
        (
            &["user", "add", "frank", "--password-stdin"],
            "short\n",
            "otp: invalid password: it must be at least 8 characters long\n",
        ),
        (
            &["user", "add", "frank", "--password-stdin"],
            "",
            "otp: --password-stdin: standard input holds no password\n",
        ),
        (
            &["user", "add", "frank", "--email", "not an address"],
            "",
            "otp: invalid email address\n",
        ),
    ] {
        let refused = run_with_input(&mut db.command(args), stdin);
        assert_eq!(refused.code, Some(2), "{args:?}");
        assert_eq!(refused.stderr, message, "{args:?}");
        assert!(refused.stdout.is_empty(), "{args:?}");
    }
}

fn servers_share_users_devices_and_sessions(db: &mut TestDb) {
    add_user(db, "grace", &[]);
    let one = Server::start(db, &[]);
    let two = Server::start(db, &[]);
    let mut on_one = one.client();
    json_login(&mut on_one, "grace", PASSWORD).assert_status(200, "login on one");
    let key = me_status(&mut on_one, 200).json()["user"].clone();
    // The same cookie on the other server: the same session.
    let mut on_two = Client::with_cookie_of(&two.url, &on_one);
    assert_eq!(me_status(&mut on_two, 200).json()["user"], key);
    // A device added through one server's database shows on the other.
    let added = db.otp(["device", "add", "totp", "--user", "grace", "--json"]);
    assert_eq!(added.code, Some(0), "{added:?}");
    let mut fresh = two.client();
    let started = json_login(&mut fresh, "grace", PASSWORD);
    assert_eq!(started.json()["otp_required"], Value::Bool(true));
    // Logging out on two ends the session on one.
    on_two
        .request("DELETE", "/api/v1/session", &[], b"")
        .assert_status(204, "logout on two");
    let mut again_on_one = Client::with_cookie_of(&one.url, &on_one);
    me_status(&mut again_on_one, 401);
}

fn settings_errors_are_named_and_signup_can_be_closed(db: &mut TestDb) {
    assert_eq!(
        refused(db.command(SERVE).env("OTP_SIGNUP", "maybe")),
        "otp: invalid setting OTP_SIGNUP: expected true, false, 1, 0, yes or no, got \"maybe\"\n"
    );
    let file = db.dir().join("otp.toml");
    std::fs::write(&file, "[server]\nsinup = false\n").unwrap();
    let stderr = refused(db.command(SERVE).arg("--config").arg(&file));
    assert!(
        stderr
            .starts_with("otp: invalid setting server.sinup: unknown setting; the [server] table"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);
    let stderr = refused(
        db.command(SERVE)
            .env("OTP_CONFIG", &file)
            .env("OTP_TOTP_TOLERANCE", "99"),
    );
    assert!(
        stderr.starts_with("otp: invalid setting server.sinup"),
        "the file is read first: {stderr}"
    );

    // A file that closes sign-up, with the framework's settings beside the server's.
    std::fs::write(
        &file,
        "[server]\nsignup = false\nsite_name = \"Example\"\n\n[totp]\nissuer = \"Example\"\n",
    )
    .unwrap();
    let server = Server::start_with(db, &["--config", file.to_str().unwrap()], &[]);
    let mut client = server.client();
    let home = client.get("/");
    assert!(
        home.body.contains("<title>Example</title>"),
        "{}",
        home.body
    );
    assert!(!home.body.contains("Sign up"), "{}", home.body);
    client.get("/signup").assert_status(404, "closed sign-up");
    client
        .post_form("/signup", &[("username", "x"), ("password", PASSWORD)])
        .assert_status(404, "closed sign-up, POST");
}

database_tests!(
    home_page_sends_the_security_headers,
    signup_then_json_login,
    password_change_ends_other_sessions,
    two_factor_login_over_json,
    oversized_bodies_get_413_and_slow_ones_408,
    sigterm_stops_the_server_with_status_0,
    user_add_then_device_list_by_username,
    servers_share_users_devices_and_sessions,
    settings_errors_are_named_and_signup_can_be_closed,
);

#[test]
fn first_run_creates_the_database_and_a_private_key_file() {
    let dir = tempfile::tempdir().unwrap();
    // No --database-url and no OTP_DATABASE_URL: otp.db in the working directory.
    let mut command = clean_command(dir.path());
    command.args(SERVE);
    let mut server = Server::spawn(command, dir.path());
    assert!(dir.path().join("otp.db").is_file());
    let key_file = dir.path().join("otp.db.key");
    assert!(key_file.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = key_file.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
    }
    let log = server.log();
    assert!(
        log.contains("WARN") && log.contains("DEVELOPMENT MAILER"),
        "the development mailer is announced: {log}"
    );
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    assert_ne!(server.url, "http://127.0.0.1:0");
    let keys = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(server.terminate(Duration::from_secs(10)).code(), Some(0));
    // A second run keeps the key.
    let mut command = clean_command(dir.path());
    command.args(SERVE);
    let mut again = Server::spawn(command, dir.path());
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), keys);
    assert_eq!(again.terminate(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn postgres_without_a_key_is_refused() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let stderr = refused(db.command(SERVE).env_remove("OTP_SECRET_KEY"));
    assert!(
        stderr.starts_with("otp: no application key: set OTP_SECRET_KEY"),
        "{stderr}"
    );
}
