//! Hostile HTTP input against a real `otp serve` (SQLite and PostgreSQL), driven by one table:
//! malformed and oversized bodies, wrong content types, missing and forged CSRF tokens,
//! cross-origin posts, open-redirect `next` values, unknown and foreign device ids, huge
//! tokens, non-ASCII digits, NUL bytes. Every row is answered with a clear 4xx (or, for a page
//! that only shows, a 200 or a same-site redirect that drop what they were given), never a 5xx, with the security
//! headers, never a `Location` off this site; and the database is as it was (devices, account
//! failure counts, sessions, users) — except that a well-formed request with a malformed token
//! is a failed attempt like any wrong code (django-otp counts a token it cannot parse as a
//! failure too), which the row says, and which must count exactly one failure and change
//! nothing else.

mod common;

use common::TestDb;
use common::flows::{PASSWORD, add_device, add_user, html_login, pending_client, totp_code_now};
use common::http::{Client, Response, chunked};
use common::probe::{Probe, Snapshot};
use common::server::Server;
use serde_json::{Value, json};

/// Whose session a row uses.
#[derive(Debug, Clone, Copy)]
enum Who {
    /// Alice, past her password through the JSON API.
    Api,
    /// Alice, past her password through the HTML form (with the form's CSRF token).
    Browser,
}

/// What a row sends.
#[derive(Debug, Clone)]
enum Send {
    /// A request built by the client (`Content-Length` and the cookie added).
    Http {
        method: &'static str,
        path: String,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// Bytes as they are (the cookie is added after the request line).
    Raw(Vec<u8>),
}

/// The answer a row expects.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// This status, and if given this JSON `error` code.
    Status(u16, Option<&'static str>),
    /// Any 4xx.
    ClientError,
    /// A page that only shows: 200, or a redirect (303) to another page of this site.
    Page,
}

/// What a row may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Nothing.
    Nothing,
    /// One failed attempt on Alice's TOTP device: its failure count and the account's go up
    /// by one, nothing else changes.
    OneFailure,
}

/// One row of the table.
#[derive(Debug, Clone)]
struct Row {
    name: String,
    who: Who,
    send: Send,
    expect: Expect,
    effect: Effect,
    /// Whether the answer comes from the HTTP parser itself (hyper), before the app's layers:
    /// no security headers to check there.
    by_parser: bool,
    /// Text the answer must not contain (an off-site `next` echoed into a form, say).
    absent: Option<&'static str>,
}

impl Row {
    fn new(name: impl Into<String>, who: Who, send: Send, expect: Expect) -> Self {
        Self {
            name: name.into(),
            who,
            send,
            expect,
            effect: Effect::Nothing,
            by_parser: false,
            absent: None,
        }
    }

    fn counts_one_failure(mut self) -> Self {
        self.effect = Effect::OneFailure;
        self
    }

    fn by_parser(mut self) -> Self {
        self.by_parser = true;
        self
    }

    fn without(mut self, text: &'static str) -> Self {
        self.absent = Some(text);
        self
    }
}

const JSON: &str = "application/json";

fn post(path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Send {
    Send::Http {
        method: "POST",
        path: path.to_owned(),
        headers: vec![
            ("content-type", content_type.to_owned()),
            ("accept", JSON.to_owned()),
        ],
        body: body.into(),
    }
}

fn post_json(path: &str, value: &Value) -> Send {
    post(path, JSON, value.to_string())
}

fn with_header(mut send: Send, name: &'static str, value: &str) -> Send {
    if let Send::Http { headers, .. } = &mut send {
        headers.push((name, value.to_owned()));
    }
    send
}

fn request(method: &'static str, path: &str) -> Send {
    Send::Http {
        method,
        path: path.to_owned(),
        headers: vec![("accept", JSON.to_owned())],
        body: Vec::new(),
    }
}

fn status(code: u16) -> Expect {
    Expect::Status(code, None)
}

fn error(code: u16, error: &'static str) -> Expect {
    Expect::Status(code, Some(error))
}

/// `application/x-www-form-urlencoded` of `pairs`, in order (repeats kept).
fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let encode = |text: &str| {
        let mut out = String::new();
        for byte in text.bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    out.push(char::from(byte));
                }
                other => out.push_str(&format!("%{other:02X}")),
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

const FORM: &str = "application/x-www-form-urlencoded";

/// A form posted to the second step of the HTML login.
fn otp_form(fields: &[(&str, &str)]) -> Send {
    post("/account/login/otp", FORM, form(fields))
}

/// The table. `totp_id` is Alice's TOTP device, `bob_id` Bob's, `csrf` the browser session's
/// token, `origin` this server's origin.
fn rows(totp_id: &str, bob_id: &str, csrf: &str, origin: &str) -> Vec<Row> {
    use Who::{Api, Browser};
    let verify = "/api/v1/otp/verify";
    let with = |device: &str, token: &str| json!({ "device": device, "token": token });
    let mut rows = vec![
        // Sizes.
        Row::new(
            "a 100 KiB body",
            Api,
            post(verify, JSON, vec![b' '; 100 * 1024]),
            status(413),
        ),
        Row::new(
            "a 1 MiB token",
            Api,
            post_json(verify, &with(totp_id, &"1".repeat(1024 * 1024))),
            status(413),
        ),
        Row::new(
            "a Content-Length of 100 GB over a short body",
            Api,
            Send::Raw(
                format!(
                    "POST {verify} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
                     content-type: application/json\r\ncontent-length: 100000000000\r\n\r\n{{}}"
                )
                .into_bytes(),
            ),
            status(413),
        ),
        Row::new(
            "90 KiB chunked",
            Api,
            Send::Raw(chunked(
                &format!(
                    "POST {verify} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
                     content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
                ),
                3,
                &[b' '; 30 * 1024],
            )),
            status(413),
        ),
        Row::new(
            "a Content-Length that is not a number",
            Api,
            Send::Raw(
                format!(
                    "POST {verify} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
                     content-type: application/json\r\ncontent-length: twelve\r\n\r\n{{}}"
                )
                .into_bytes(),
            ),
            status(400),
        )
        .by_parser(),
        Row::new(
            "two hundred headers",
            Api,
            Send::Raw({
                let mut raw = format!("POST {verify} HTTP/1.1\r\nhost: x\r\n").into_bytes();
                for n in 0..200 {
                    raw.extend_from_slice(format!("x-filler-{n}: {n}\r\n").as_bytes());
                }
                raw.extend_from_slice(b"connection: close\r\ncontent-length: 0\r\n\r\n");
                raw
            }),
            status(431),
        )
        .by_parser(),
        // Bodies that are not the JSON object asked for.
        Row::new(
            "invalid UTF-8",
            Api,
            post(
                verify,
                JSON,
                b"{\"device\": \"\xff\xfe\", \"token\": \"123456\"}".to_vec(),
            ),
            error(400, "bad_request"),
        ),
        Row::new(
            "a byte-order mark",
            Api,
            post(verify, JSON, format!("\u{feff}{}", with(totp_id, "123456"))),
            error(400, "bad_request"),
        ),
        Row::new(
            "an empty body",
            Api,
            post(verify, JSON, ""),
            error(400, "bad_request"),
        ),
        Row::new(
            "null",
            Api,
            post(verify, JSON, "null"),
            error(400, "bad_request"),
        ),
        Row::new(
            "an array",
            Api,
            post(verify, JSON, "[]"),
            error(400, "bad_request"),
        ),
        Row::new(
            "numbers for strings",
            Api,
            post_json(verify, &json!({ "device": 1, "token": 123456 })),
            error(400, "bad_request"),
        ),
        Row::new(
            "a huge number",
            Api,
            post(
                verify,
                JSON,
                format!(r#"{{"device": "{totp_id}", "token": 1e999999}}"#),
            ),
            error(400, "bad_request"),
        ),
        Row::new(
            "a 40-digit number",
            Api,
            post(
                verify,
                JSON,
                format!(r#"{{"device": "{totp_id}", "token": {}}}"#, "9".repeat(40)),
            ),
            error(400, "bad_request"),
        ),
        Row::new(
            "an extra field",
            Api,
            post_json(
                verify,
                &json!({ "device": totp_id, "token": "123456", "remember": true }),
            ),
            error(400, "bad_request"),
        ),
        Row::new(
            "a repeated field",
            Api,
            post(
                verify,
                JSON,
                format!(r#"{{"device": "{totp_id}", "device": "{bob_id}", "token": "123456"}}"#),
            ),
            error(400, "bad_request"),
        ),
        Row::new(
            "a missing field",
            Api,
            post_json(verify, &json!({ "device": totp_id })),
            error(400, "bad_request"),
        ),
        Row::new(
            "20000 levels of nesting",
            Api,
            post(
                verify,
                JSON,
                format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)),
            ),
            error(400, "bad_request"),
        ),
        Row::new(
            "nesting in a field",
            Api,
            post(
                verify,
                JSON,
                format!(
                    r#"{{"device": "{totp_id}", "token": {}{}}}"#,
                    "{\"a\":".repeat(5_000),
                    "}".repeat(5_000)
                ),
            ),
            error(400, "bad_request"),
        ),
        // Content types and origins.
        Row::new(
            "text/plain",
            Api,
            post(verify, "text/plain", with(totp_id, "123456").to_string()),
            error(415, "unsupported_media_type"),
        ),
        Row::new(
            "a form to a JSON endpoint",
            Api,
            post(
                verify,
                FORM,
                form(&[("device", totp_id), ("token", "123456")]),
            ),
            error(415, "unsupported_media_type"),
        ),
        Row::new(
            "no content type",
            Api,
            Send::Http {
                method: "POST",
                path: verify.to_owned(),
                headers: Vec::new(),
                body: with(totp_id, "123456").to_string().into_bytes(),
            },
            error(415, "unsupported_media_type"),
        ),
        Row::new(
            "application/json-seq",
            Api,
            post(
                verify,
                "application/json-seq",
                with(totp_id, "123456").to_string(),
            ),
            error(415, "unsupported_media_type"),
        ),
        Row::new(
            "JSON from another origin",
            Api,
            with_header(
                post_json(verify, &with(totp_id, "123456")),
                "origin",
                "http://evil.example",
            ),
            error(403, "csrf_failed"),
        ),
        Row::new(
            "JSON from an opaque origin",
            Api,
            with_header(
                post_json(verify, &with(totp_id, "123456")),
                "origin",
                "null",
            ),
            error(403, "csrf_failed"),
        ),
        Row::new(
            "Sec-Fetch-Site: cross-site",
            Api,
            with_header(
                post_json(verify, &with(totp_id, "123456")),
                "sec-fetch-site",
                "cross-site",
            ),
            error(403, "csrf_failed"),
        ),
        Row::new(
            "a password login from another origin",
            Api,
            with_header(
                post_json(
                    "/api/v1/session",
                    &json!({ "username": "alice", "password": PASSWORD }),
                ),
                "origin",
                "http://evil.example",
            ),
            error(403, "csrf_failed"),
        ),
        Row::new(
            "a logout from another origin",
            Api,
            with_header(
                request("DELETE", "/api/v1/session"),
                "origin",
                "http://evil.example",
            ),
            error(403, "csrf_failed"),
        ),
        // Device ids.
        Row::new(
            "an unknown device",
            Api,
            post_json(verify, &with("totp/999999", "123456")),
            error(400, "invalid_device"),
        ),
        Row::new(
            "an unknown kind",
            Api,
            post_json(verify, &with("nope/1", "123456")),
            error(400, "invalid_device"),
        ),
        Row::new(
            "a path as a device",
            Api,
            post_json(verify, &with("../x", "123456")),
            error(400, "invalid_device"),
        ),
        Row::new(
            "a device id of 10000 characters",
            Api,
            post_json(
                verify,
                &with(&format!("totp/{}", "9".repeat(10_000)), "123456"),
            ),
            error(400, "invalid_device"),
        ),
        Row::new(
            "a device id with a NUL byte",
            Api,
            post_json(verify, &with(&format!("{totp_id}\u{0}"), "123456")),
            error(400, "invalid_device"),
        ),
        Row::new(
            "an empty device id",
            Api,
            post_json(verify, &with("", "123456")),
            error(400, "invalid_device"),
        ),
        Row::new(
            "another user's device",
            Api,
            post_json(verify, &with(bob_id, "123456")),
            error(400, "invalid_device"),
        ),
        Row::new(
            "another user's device, challenged",
            Api,
            post_json("/api/v1/otp/challenge", &json!({ "device": bob_id })),
            error(400, "invalid_device"),
        ),
        Row::new(
            "a device that sends nothing, challenged",
            Api,
            post_json("/api/v1/otp/challenge", &json!({ "device": totp_id })),
            error(400, "not_interactive"),
        ),
        // Tokens.
        Row::new(
            "an empty token",
            Api,
            post_json(verify, &with(totp_id, "")),
            error(400, "token_required"),
        ),
        Row::new(
            "a token of spaces",
            Api,
            post_json(verify, &with(totp_id, " \t ")),
            error(400, "token_required"),
        ),
        Row::new(
            "a 10 KB token",
            Api,
            post_json(verify, &with(totp_id, &"1".repeat(10 * 1024))),
            error(401, "invalid_token"),
        )
        .counts_one_failure(),
        Row::new(
            "Arabic-Indic digits",
            Api,
            post_json(verify, &with(totp_id, "١٢٣٤٥٦")),
            error(401, "invalid_token"),
        )
        .counts_one_failure(),
        Row::new(
            "full-width digits",
            Api,
            post_json(verify, &with(totp_id, "６６６６６６")),
            error(401, "invalid_token"),
        )
        .counts_one_failure(),
        Row::new(
            "NUL bytes in a token",
            Api,
            post_json(verify, &with(totp_id, "123\u{0}456")),
            error(401, "invalid_token"),
        )
        .counts_one_failure(),
        // Credentials.
        Row::new(
            "a NUL byte in a username",
            Api,
            post_json(
                "/api/v1/session",
                &json!({ "username": "ali\u{0}ce", "password": PASSWORD }),
            ),
            error(401, "invalid_credentials"),
        ),
        Row::new(
            "a 60 KB password",
            Api,
            post_json(
                "/api/v1/session",
                &json!({ "username": "alice", "password": "x".repeat(60_000) }),
            ),
            error(401, "invalid_credentials"),
        ),
        // Methods.
        Row::new("PUT on verify", Api, request("PUT", verify), status(405)),
        Row::new("GET on verify", Api, request("GET", verify), status(405)),
        // Forms: CSRF, origins, shapes.
        Row::new(
            "a form without its CSRF token",
            Browser,
            otp_form(&[("device", totp_id), ("token", "123456")]),
            status(403),
        ),
        Row::new(
            "a forged CSRF token",
            Browser,
            otp_form(&[
                ("device", totp_id),
                ("token", "123456"),
                ("csrf_token", "forged"),
            ]),
            status(403),
        ),
        Row::new(
            "the right CSRF token from another origin",
            Browser,
            with_header(
                otp_form(&[
                    ("device", totp_id),
                    ("token", "123456"),
                    ("csrf_token", csrf),
                ]),
                "origin",
                "http://evil.example",
            ),
            status(403),
        ),
        Row::new(
            "two CSRF tokens",
            Browser,
            otp_form(&[
                ("csrf_token", "forged"),
                ("device", totp_id),
                ("token", "123456"),
                ("csrf_token", csrf),
            ]),
            Expect::ClientError,
        ),
        Row::new(
            "a repeated device field",
            Browser,
            otp_form(&[
                ("csrf_token", csrf),
                ("device", totp_id),
                ("device", bob_id),
                ("token", "123456"),
            ]),
            Expect::ClientError,
        ),
        Row::new(
            "a form of invalid UTF-8",
            Browser,
            post("/account/login/otp", FORM, {
                let mut body = form(&[("csrf_token", csrf), ("device", totp_id)]);
                body.extend_from_slice(b"&token=%ff%fe%00");
                body
            }),
            Expect::ClientError,
        )
        .counts_one_failure(),
        Row::new(
            "JSON to a form",
            Browser,
            post(
                "/account/login/otp",
                JSON,
                json!({ "device": totp_id, "token": "123456", "csrf_token": csrf }).to_string(),
            ),
            status(400),
        ),
        Row::new(
            "a form of 100 KiB",
            Browser,
            otp_form(&[("csrf_token", csrf), ("token", &"1".repeat(100 * 1024))]),
            status(413),
        ),
        Row::new(
            "an unknown device in a form",
            Browser,
            otp_form(&[
                ("csrf_token", csrf),
                ("device", "totp/999999"),
                ("token", "123456"),
            ]),
            status(400),
        ),
        Row::new(
            "another user's device in a form",
            Browser,
            otp_form(&[
                ("csrf_token", csrf),
                ("device", bob_id),
                ("token", "123456"),
            ]),
            status(400),
        ),
        Row::new(
            "a 10 KB token in a form",
            Browser,
            otp_form(&[
                ("csrf_token", csrf),
                ("device", totp_id),
                ("token", &"7".repeat(10 * 1024)),
            ]),
            status(401),
        )
        .counts_one_failure(),
        Row::new(
            "a logout without its CSRF token",
            Browser,
            post("/account/logout", FORM, ""),
            status(403),
        ),
        Row::new(
            "a sign-up with a forged CSRF token",
            Browser,
            post(
                "/signup",
                FORM,
                form(&[
                    ("csrf_token", "forged"),
                    ("username", "mallory"),
                    ("password", PASSWORD),
                    ("password_confirm", PASSWORD),
                ]),
            ),
            status(403),
        ),
        Row::new(
            "a sign-up from another origin",
            Browser,
            with_header(
                post(
                    "/signup",
                    FORM,
                    form(&[
                        ("csrf_token", csrf),
                        ("username", "mallory"),
                        ("password", PASSWORD),
                        ("password_confirm", PASSWORD),
                    ]),
                ),
                "origin",
                "http://evil.example",
            ),
            status(403),
        ),
        Row::new(
            "a NUL byte in a sign-up",
            Browser,
            post(
                "/signup",
                FORM,
                form(&[
                    ("csrf_token", csrf),
                    ("username", "mal\u{0}lory"),
                    ("email", "m\u{0}@example.com"),
                    ("password", PASSWORD),
                    ("password_confirm", PASSWORD),
                ]),
            ),
            status(400),
        ),
    ];
    // Open redirects: a `next` that leaves the site is dropped, on the forms and in links.
    for next in [
        "//evil.example",
        "https://evil.example",
        "/\\evil.example",
        "///evil.example/",
        "/\t/evil.example",
        "http:evil.example",
    ] {
        rows.push(
            Row::new(
                format!("a wrong password with next={next:?}"),
                Browser,
                with_header(
                    post(
                        "/account/login",
                        FORM,
                        form(&[
                            ("csrf_token", csrf),
                            ("username", "alice"),
                            ("password", "not the password"),
                            ("next", next),
                        ]),
                    ),
                    "origin",
                    origin,
                ),
                status(401),
            )
            .without("evil.example"),
        );
        let query = form(&[("next", next)]);
        let query = String::from_utf8(query).unwrap();
        for page in ["/account/login", "/account/login/otp", "/account/verify"] {
            rows.push(
                Row::new(
                    format!("GET {page}?{query}"),
                    Browser,
                    Send::Http {
                        method: "GET",
                        path: format!("{page}?{query}"),
                        headers: Vec::new(),
                        body: Vec::new(),
                    },
                    Expect::Page,
                )
                .without("evil.example"),
            );
        }
    }
    rows
}

/// Sends a row with the session's cookie.
fn send(client: &mut Client, send: &Send) -> Response {
    match send {
        Send::Http {
            method,
            path,
            headers,
            body,
        } => {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .collect();
            let saved = client.cookie.clone();
            let response = client.request(method, path, &headers, body);
            // A row must not change the session; if it did, the snapshot says so. Keep the
            // cookie the table started with either way.
            client.cookie = saved;
            response
        }
        Send::Raw(bytes) => {
            let cookie = client.cookie.as_deref().expect("a session");
            let end_of_line = bytes
                .windows(2)
                .position(|window| window == b"\r\n")
                .expect("a request line")
                + 2;
            let mut raw = bytes[..end_of_line].to_vec();
            raw.extend_from_slice(format!("cookie: otp_session={cookie}\r\n").as_bytes());
            raw.extend_from_slice(&bytes[end_of_line..]);
            client.raw(&raw)
        }
    }
}

/// Whether a `Location` stays on this site: a path, not `//host`, no backslash, no control
/// characters or white space.
fn on_site(location: &str) -> bool {
    location.starts_with('/')
        && !location.starts_with("//")
        && !location.contains('\\')
        && !location
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
}

#[track_caller]
fn check_headers(response: &Response, what: &str) {
    let csp = response.header("content-security-policy").unwrap_or("");
    assert!(
        csp.contains("frame-ancestors 'none'")
            && csp.contains("script-src 'self'")
            && !csp.contains("unsafe-inline"),
        "{what}: CSP {csp:?}"
    );
    assert_eq!(
        response.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(response.header("x-frame-options"), Some("DENY"), "{what}");
    assert!(response.header("referrer-policy").is_some(), "{what}");
}

/// The snapshot after a row with `effect`, from the one before: for a failed attempt, Alice's
/// TOTP device counts one more failure (its failure time and version move) and her account
/// one more.
#[track_caller]
fn assert_effect(
    before: &Snapshot,
    after: &Snapshot,
    effect: Effect,
    totp_id: &str,
    alice: &str,
    what: &str,
) {
    assert_eq!(
        before.sessions, after.sessions,
        "{what}: the sessions changed"
    );
    assert_eq!(before.users, after.users, "{what}: the users changed");
    if effect == Effect::Nothing {
        assert_eq!(before.devices, after.devices, "{what}: a device changed");
        assert_eq!(
            before.accounts, after.accounts,
            "{what}: an account changed"
        );
        return;
    }
    let number = totp_id.strip_prefix("totp/").unwrap();
    let count = |row: &Vec<Option<String>>, i: usize| -> u64 {
        row[i].as_deref().unwrap_or("0").parse().unwrap()
    };
    assert_eq!(before.devices.len(), after.devices.len(), "{what}");
    for (old, new) in before.devices.iter().zip(&after.devices) {
        if old[0].as_deref() != Some(number) {
            assert_eq!(old, new, "{what}: another device changed");
            continue;
        }
        // id, user_key, kind, name, confirmed, last_used_at | throttle_failures,
        // throttle_failed_at, | last_challenge_at, state | version
        assert_eq!(
            old[..6],
            new[..6],
            "{what}: more than the failure count changed"
        );
        assert_eq!(old[8..10], new[8..10], "{what}: the device's state changed");
        assert_eq!(count(new, 6), count(old, 6) + 1, "{what}: one failure");
        assert_eq!(count(new, 10), count(old, 10) + 1, "{what}: one write");
    }
    let failures = |snapshot: &Snapshot| -> u64 {
        snapshot
            .accounts
            .iter()
            .find(|row| row[0].as_deref() == Some(alice))
            .map_or(0, |row| count(row, 1))
    };
    assert_eq!(
        failures(after),
        failures(before) + 1,
        "{what}: one failure of the account"
    );
    let others = |snapshot: &Snapshot| -> Vec<Vec<Option<String>>> {
        snapshot
            .accounts
            .iter()
            .filter(|row| row[0].as_deref() != Some(alice))
            .cloned()
            .collect()
    };
    assert_eq!(
        others(before),
        others(after),
        "{what}: another account changed"
    );
}

/// The sessions of the rows.
struct Sessions<'a> {
    api: &'a mut Client,
    browser: &'a mut Client,
}

/// Sends every row of `table` and checks its answer and the database.
fn run(table: &[Row], sessions: &mut Sessions<'_>, probe: &mut Probe, totp_id: &str, alice: &str) {
    for row in table {
        let what = format!("{} ({:?})", row.name, row.who);
        let before = probe.snapshot();
        let client = match row.who {
            Who::Api => &mut *sessions.api,
            Who::Browser => &mut *sessions.browser,
        };
        let response = send(client, &row.send);
        assert!(
            response.status < 500,
            "{what}: {} {}",
            response.status,
            response.body
        );
        match row.expect {
            Expect::Status(status, code) => {
                assert_eq!(response.status, status, "{what}: {}", response.body);
                if let Some(code) = code {
                    assert_eq!(
                        common::flows::error_code(&response),
                        code,
                        "{what}: {}",
                        response.body
                    );
                }
            }
            Expect::ClientError => assert!(
                (400..500).contains(&response.status),
                "{what}: {} {}",
                response.status,
                response.body
            ),
            Expect::Page => assert!(
                matches!(response.status, 200 | 303),
                "{what}: {} {}",
                response.status,
                response.body
            ),
        }
        if !row.by_parser {
            check_headers(&response, &what);
        }
        if let Some(location) = response.header("location") {
            assert!(on_site(location), "{what}: Location {location:?}");
        }
        if let Some(text) = row.absent {
            assert!(
                !response.body.contains(text),
                "{what}: {text:?} in the answer: {}",
                response.body
            );
        }
        assert!(
            !response.body.contains("panicked"),
            "{what}: {}",
            response.body
        );
        let after = probe.snapshot();
        assert_effect(&before, &after, row.effect, totp_id, alice, &what);
        eprintln!("{:>3} {what}", response.status);
    }
}

fn hostile_input(db: &mut TestDb) {
    let alice = add_user(db, "alice", &[]);
    add_user(db, "bob", &[]);
    add_user(db, "carol", &[]);
    let alice_totp = add_device(db, "totp", "alice", &[]);
    let alice_backup = add_device(db, "static", "alice", &[]);
    let bob_totp = add_device(db, "totp", "bob", &[]);
    let totp_id = alice_totp["id"].as_str().unwrap();
    let bob_id = bob_totp["id"].as_str().unwrap();
    let server = Server::start(
        db,
        &[
            ("OTP_REQUEST_TIMEOUT", "2"),
            // Failed attempts must not delay the next rows, nor the limit refuse them.
            ("OTP_TOTP_THROTTLE_FACTOR", "0"),
            ("OTP_STATIC_THROTTLE_FACTOR", "0"),
            ("OTP_RATE_LIMIT_PER_MINUTE", "0"),
        ],
    );
    let origin = server.url.clone();
    let mut api = pending_client(&server, "alice");
    let mut browser = server.client();
    html_login(&mut browser, "alice", &[]).assert_status(303, "HTML password step");
    let page = browser.get("/account/login/otp");
    page.assert_status(200, "the second-factor page");
    let csrf = page.csrf_token();

    let mut probe = Probe::open(db);
    let table = rows(totp_id, bob_id, &csrf, &origin);
    let mut sessions = Sessions {
        api: &mut api,
        browser: &mut browser,
    };
    run(&table, &mut sessions, &mut probe, totp_id, &alice);

    // A body that never comes is cut off by the request timeout.
    let slow = api.raw(
        format!(
            "POST /api/v1/otp/verify HTTP/1.1\r\nhost: x\r\ncookie: otp_session={}\r\n\
             content-type: application/json\r\ncontent-length: 100\r\n\r\n{{",
            api.cookie.as_deref().unwrap()
        )
        .as_bytes(),
    );
    slow.assert_status(408, "a body that never ends");

    // The sessions the table used are intact: both finish their login.
    let code = totp_code_now(&alice_totp);
    common::flows::verify(&mut api, totp_id, &code).assert_status(200, "the API session");

    // Verified, the API session may manage its devices: ids that are malformed, unknown or
    // Bob's are all "not found", and change nothing.
    let mut device_rows = Vec::new();
    for (label, id) in [
        ("an unknown device", "totp/999999".to_owned()),
        ("an unknown kind", "nope/1".to_owned()),
        ("a path", "..%2Fx".to_owned()),
        (
            "a 10000-digit number",
            format!("totp/{}", "9".repeat(10_000)),
        ),
        ("a NUL byte", "totp/%00".to_owned()),
        ("Bob's device", bob_id.to_owned()),
    ] {
        let path = format!("/api/v1/devices/{id}");
        device_rows.extend([
            Row::new(
                format!("GET {label}"),
                Who::Api,
                request("GET", &path),
                Expect::ClientError,
            ),
            Row::new(
                format!("rename {label}"),
                Who::Api,
                Send::Http {
                    method: "PATCH",
                    path: path.clone(),
                    headers: vec![("content-type", JSON.to_owned())],
                    body: json!({ "name": "pwned" }).to_string().into_bytes(),
                },
                Expect::ClientError,
            ),
            Row::new(
                format!("confirm {label}"),
                Who::Api,
                post_json(&format!("{path}/confirm"), &json!({ "token": "123456" })),
                Expect::ClientError,
            ),
            Row::new(
                format!("DELETE {label}"),
                Who::Api,
                request("DELETE", &path),
                Expect::ClientError,
            ),
        ]);
    }
    let mut sessions = Sessions {
        api: &mut api,
        browser: &mut browser,
    };
    run(&device_rows, &mut sessions, &mut probe, totp_id, &alice);
    let backup_code = alice_backup["codes"][0].as_str().unwrap();
    let done = browser.post_form(
        "/account/login/otp",
        &[
            ("csrf_token", &csrf),
            ("device", alice_backup["id"].as_str().unwrap()),
            ("token", backup_code),
            ("next", "/account/password"),
        ],
    );
    done.assert_status(303, "the browser session");
    assert_eq!(done.header("location"), Some("/account/password"));
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains(" ERROR "), "{log}");
}

/// A login that succeeds never sends the browser off-site, whatever `next` says.
fn successful_logins_stay_on_the_site(db: &mut TestDb) {
    add_user(db, "carol", &[]);
    add_user(db, "dave", &[]);
    let dave_backup = add_device(db, "static", "dave", &[]);
    let server = Server::start(db, &[("OTP_RATE_LIMIT_PER_MINUTE", "0")]);
    let nexts = [
        "//evil.example",
        "https://evil.example/",
        "/\\evil.example",
        "///evil.example",
        " //evil.example",
        "http:evil.example",
    ];
    for (index, next) in nexts.iter().enumerate() {
        // The password alone (Carol has no device).
        let mut client = server.client();
        let done = html_login(&mut client, "carol", &[("next", next)]);
        done.assert_status(303, next);
        assert_eq!(done.header("location"), Some("/"), "next={next:?}");
        // The second factor (Dave's backup codes, one each).
        let mut client = server.client();
        let started = html_login(&mut client, "dave", &[("next", next)]);
        started.assert_status(303, next);
        let location = started.header("location").unwrap().to_owned();
        assert_eq!(location, "/account/login/otp", "next={next:?}");
        let page = client.get(&location);
        let done = client.post_form(
            "/account/login/otp",
            &[
                ("csrf_token", &page.csrf_token()),
                ("device", dave_backup["id"].as_str().unwrap()),
                ("token", dave_backup["codes"][index].as_str().unwrap()),
                ("next", next),
            ],
        );
        done.assert_status(303, next);
        assert_eq!(done.header("location"), Some("/"), "next={next:?}");
    }
}

database_tests!(hostile_input, successful_logins_stay_on_the_site);

/// Headers that never end, or never start, do not hold a connection past the request timeout
/// (hyper's header read timeout, with a timer; the request timeout starts after the headers).
#[test]
fn slow_headers_are_cut_off() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    let db = TestDb::sqlite();
    let server = Server::start(&db, &[("OTP_REQUEST_TIMEOUT", "1")]);
    let authority = server.url.strip_prefix("http://").unwrap().to_owned();
    let held_for = |first: &[u8], trickle: bool| {
        let mut stream = std::net::TcpStream::connect(&authority).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        stream.write_all(first).unwrap();
        let started = Instant::now();
        if trickle {
            // One byte of a header every half second: each read makes progress.
            for _ in 0..20 {
                std::thread::sleep(Duration::from_millis(500));
                if stream.write_all(b"x").is_err() {
                    break;
                }
            }
        }
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        (started.elapsed(), rest)
    };
    for (what, first, trickle) in [
        (
            "half a request",
            &b"POST /api/v1/session HTTP/1.1\r\nhost: x\r\n"[..],
            false,
        ),
        ("nothing", &b""[..], false),
        (
            "a trickle",
            &b"GET / HTTP/1.1\r\nhost: x\r\nx-slow: "[..],
            true,
        ),
    ] {
        let (elapsed, rest) = held_for(first, trickle);
        assert!(
            elapsed < Duration::from_secs(5),
            "{what}: the connection was held for {elapsed:?}"
        );
        assert!(
            rest.is_empty() || rest.starts_with(b"HTTP/1.1 4"),
            "{what}: {}",
            String::from_utf8_lossy(&rest)
        );
    }
    // A client that keeps its word is served as before.
    server
        .client()
        .get("/")
        .assert_status(200, "GET / after the slow clients");
}
