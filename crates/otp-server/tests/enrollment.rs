//! Self-service devices, in-process: the whole app (`otp_server::app::build`, every layer) is
//! called with `oneshot` by a small cookie-keeping client, on a SQLite file and on a fresh
//! PostgreSQL database (with `OTP_TEST_POSTGRES_URL`), with an SMTP sink for email codes.
//!
//! Codes are computed with `otp_oath` from the secret the page shows. A session verified long
//! ago is made by moving its `otp_verified_at` back in the session store.

mod common;

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use common::TestDb;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use otp_core::{DeviceId, TotpOptions};
use otp_oath::{Hotp, HotpParams, Secret, Totp, TotpParams};
use otp_server::app::{self, AppState, NewUser, ServerConfig};
use otp_test_support::smtp::SmtpServer;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_sessions::SessionStore;
use tower_sessions::session::Id;
use zeroize::Zeroizing;

const PASSWORD: &str = "correct horse battery";
const HOST: &str = "localhost";
const ORIGIN: &str = "http://localhost";
/// How long the default throttling (1 s after one failure) keeps a device closed, and a bit.
const THROTTLE: Duration = Duration::from_millis(1100);

// ---------------------------------------------------------------------------------------------
// The app and a client.

struct App {
    router: Router,
    state: AppState,
    smtp: SmtpServer,
}

impl App {
    async fn start(db: &TestDb) -> Self {
        let smtp = SmtpServer::start().await;
        let config = ServerConfig {
            database_url: db.url.clone(),
            // SQLite: the key file beside the database, made on first run.
            secret_key: db.is_postgres().then(|| Zeroizing::new(db.keys())),
            smtp_url: Some(Zeroizing::new(smtp.url())),
            site_name: "Example".to_owned(),
            ..ServerConfig::default()
        };
        let (router, state) = app::build(config).await.unwrap();
        Self {
            router,
            state,
            smtp,
        }
    }

    fn browser(&self) -> Browser {
        Browser {
            router: self.router.clone(),
            cookie: None,
            csrf_cookie: None,
        }
    }

    /// A user made directly in the users table; returns their key.
    async fn user(&self, username: &str, email: Option<&str>) -> String {
        self.state
            .users
            .create(NewUser::new(username, PASSWORD).with_email(email))
            .await
            .unwrap()
            .key()
    }

    /// Moves the verification of `browser`'s session `ago` into the past.
    async fn age_verification(&self, browser: &Browser, ago: Duration) {
        let id = Id::from_str(browser.cookie.as_deref().expect("a session")).unwrap();
        let mut record = self
            .state
            .sessions
            .load(&id)
            .await
            .unwrap()
            .expect("stored");
        let at = record
            .data
            .get(otp_axum::VERIFIED_AT_SESSION_KEY)
            .and_then(Value::as_i64)
            .expect("a verified session");
        let earlier = at - i64::try_from(ago.as_millis()).unwrap();
        record
            .data
            .insert(otp_axum::VERIFIED_AT_SESSION_KEY.to_owned(), json!(earlier));
        self.state.sessions.save(&record).await.unwrap();
    }

    /// Asserts that no text of `secrets` is in the stored data of `browser`'s session.
    async fn assert_session_lacks(&self, browser: &Browser, secrets: &[String]) {
        let id = Id::from_str(browser.cookie.as_deref().expect("a session")).unwrap();
        let record = self
            .state
            .sessions
            .load(&id)
            .await
            .unwrap()
            .expect("stored");
        let data = serde_json::to_string(&record.data).unwrap();
        for secret in secrets {
            assert!(
                !data.contains(secret.as_str()),
                "{secret} in the session: {data}"
            );
        }
    }

    /// How many devices the user `key` has.
    async fn device_count(&self, key: &str) -> usize {
        self.state
            .otp()
            .devices_for_user(key, None)
            .await
            .unwrap()
            .len()
    }

    async fn device(&self, id: &str) -> Option<otp_core::Device> {
        self.state
            .otp()
            .device(&id.parse::<DeviceId>().unwrap())
            .await
            .unwrap()
    }

    /// The 6-digit code of the last message to `to`.
    fn last_code_to(&self, to: &str) -> String {
        let mails = self.smtp.received();
        let mail = mails
            .iter()
            .rev()
            .find(|mail| mail.to.iter().any(|address| address == to))
            .unwrap_or_else(|| panic!("no message to {to}"));
        mail.body()
            .lines()
            .map(str::trim)
            .find(|line| line.len() == 6 && line.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or_else(|| panic!("no code in {:?}", mail.body()))
            .to_owned()
    }

    async fn close(self) {
        self.state.otp().store().close().await;
    }
}

/// A browser (or a JSON client) of the in-process app that keeps the session cookie.
#[derive(Clone)]
struct Browser {
    router: Router,
    cookie: Option<String>,
    /// `otp_csrf=NONCE`: the cookie that signs the forms shown before a login.
    csrf_cookie: Option<String>,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    /// The body as sent.
    raw: String,
    /// The body with the HTML escapes of the templates undone (`&#x2f;` is `/`).
    body: String,
}

impl Reply {
    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    fn location(&self) -> &str {
        self.header(header::LOCATION)
            .unwrap_or_else(|| panic!("no Location in a {} reply: {}", self.status, self.body))
    }

    #[track_caller]
    fn status(&self, status: u16, what: &str) -> &Self {
        assert_eq!(self.status.as_u16(), status, "{what}: {}", self.body);
        self
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body))
    }

    /// The CSRF field's value of the page's first form.
    #[track_caller]
    fn csrf_token(&self) -> String {
        between(&self.body, "name=\"csrf_token\" value=\"", "\"")
            .unwrap_or_else(|| panic!("no CSRF field in: {}", self.body))
            .to_owned()
    }

    /// A page that is not stored, has the CSP, and holds no script and no inline style.
    #[track_caller]
    fn assert_safe_page(&self, what: &str) {
        assert_eq!(
            self.header(header::CACHE_CONTROL),
            Some("no-store"),
            "{what}"
        );
        assert!(
            self.header(header::CONTENT_SECURITY_POLICY)
                .is_some_and(|csp| csp.contains("script-src 'self'")),
            "{what}"
        );
        for forbidden in ["<script", "style=", "<style", "<svg"] {
            assert!(!self.raw.contains(forbidden), "{what}: {forbidden}");
        }
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = from + text[from..].find(end)?;
    Some(&text[from..to])
}

/// The value of the last `href` before `marker`.
fn href_before<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let end = text.find(marker)?;
    let start = text[..end].rfind("href=\"")? + "href=\"".len();
    text[start..end].split('"').next()
}

/// The path of the form or link in `html` whose target ends with `suffix`.
fn href_or_action(html: &str, suffix: &str) -> String {
    let end = html.find(&format!("{suffix}\"")).expect("the target") + suffix.len();
    let start = html[..end].rfind('"').unwrap() + 1;
    unescape(&html[start..end])
}

/// `text` with its `%XX` escapes decoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The escapes minijinja writes in HTML.
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl Browser {
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, HOST);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut cookies: Vec<String> = self
            .cookie
            .iter()
            .map(|cookie| format!("otp_session={cookie}"))
            .collect();
        cookies.extend(self.csrf_cookie.clone());
        if !cookies.is_empty() {
            request = request.header(header::COOKIE, cookies.join("; "));
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        for value in parts.headers.get_all(header::SET_COOKIE) {
            let value = value.to_str().unwrap();
            if let Some(rest) = value.strip_prefix("otp_session=") {
                let cookie = rest.split(';').next().unwrap_or_default();
                let removed = value.to_ascii_lowercase().contains("max-age=0") || cookie.is_empty();
                self.cookie = (!removed).then(|| cookie.to_owned());
            } else if value.starts_with("otp_csrf=") {
                self.csrf_cookie = value.split(';').next().map(str::to_owned);
            }
        }
        let body = body.collect().await.unwrap().to_bytes();
        let raw = String::from_utf8_lossy(&body).into_owned();
        let html = parts
            .headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(b"text/html"));
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: if html { unescape(&raw) } else { raw.clone() },
            raw,
        }
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send(Method::GET, path, &[("accept", "text/html")], Vec::new())
            .await
    }

    /// A form post from this site.
    async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        self.send(
            Method::POST,
            path,
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", ORIGIN),
            ],
            common::form_body(fields).into_bytes(),
        )
        .await
    }

    /// A form post with the CSRF token of `page`.
    async fn submit(&mut self, page: &Reply, path: &str, fields: &[(&str, &str)]) -> Reply {
        let token = page.csrf_token();
        let mut all = vec![("csrf_token", token.as_str())];
        all.extend_from_slice(fields);
        self.post_form(path, &all).await
    }

    /// A JSON request from this site (`body: None` sends none).
    async fn json(&mut self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let body = body.map(|value| value.to_string()).unwrap_or_default();
        self.send(
            method,
            path,
            &[
                ("content-type", "application/json"),
                ("accept", "application/json"),
                ("origin", ORIGIN),
            ],
            body.into_bytes(),
        )
        .await
    }

    /// A JSON post from this site.
    async fn post_json(&mut self, path: &str, body: Value) -> Reply {
        self.json(Method::POST, path, Some(body)).await
    }

    /// Logs in over JSON, with the password alone.
    async fn log_in_json(&mut self, username: &str) -> Reply {
        self.post_json(
            "/api/v1/session",
            json!({ "username": username, "password": PASSWORD }),
        )
        .await
    }

    async fn api_get(&mut self, path: &str) -> Reply {
        self.send(
            Method::GET,
            path,
            &[("accept", "application/json")],
            Vec::new(),
        )
        .await
    }

    /// Logs in through the login page; returns the reply to the password step.
    async fn log_in(&mut self, username: &str) -> Reply {
        let page = self.get("/account/login").await;
        self.submit(
            &page,
            "/account/login",
            &[("username", username), ("password", PASSWORD)],
        )
        .await
    }

    /// The second step of a login (`/account/login/otp`) or a new verification
    /// (`/account/verify`), with `next` if given.
    async fn second_factor(&mut self, page_url: &str, device: &str, token: &str) -> Reply {
        let page = self.get(page_url).await;
        self.submit(
            &page,
            page_url.split('?').next().unwrap(),
            &[
                ("device", device),
                ("token", token),
                ("action", "verify"),
                (
                    "next",
                    page_url.split_once("next=").map_or("", |(_, next)| next),
                ),
            ],
        )
        .await
    }

    async fn log_out(&mut self) {
        let home = self.get("/").await;
        self.submit(&home, "/account/logout", &[])
            .await
            .status(303, "log out");
    }

    async fn api_me(&mut self) -> Value {
        self.api_get("/api/v1/me").await.json()
    }
}

// ---------------------------------------------------------------------------------------------
// Codes.

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The secret shown on a confirmation page, in groups of four.
#[track_caller]
fn shown_secret(page: &Reply) -> Secret {
    let grouped = between(&page.body, "id=\"app-secret\">", "<").expect("the secret");
    let groups: Vec<&str> = grouped.split(' ').collect();
    assert!(
        groups.iter().all(|group| group.len() == 4),
        "groups of four: {grouped}"
    );
    Secret::from_base32(&groups.concat()).unwrap()
}

fn totp_at(secret: &Secret, unix_time: i64) -> String {
    Totp::new(secret, TotpParams::default())
        .unwrap()
        .code_at(unix_time)
        .unwrap()
        .to_string()
}

/// A TOTP code that is wrong now (for a time far away, and none of the accepted ones).
fn wrong_totp(secret: &Secret) -> String {
    let t = now();
    let accepted: Vec<String> = (-2..=2).map(|k| totp_at(secret, t + 30 * k)).collect();
    (1..)
        .map(|hours| totp_at(secret, t - 3600 * hours))
        .find(|code| !accepted.contains(code))
        .unwrap()
}

/// The device id in a path such as `/account/devices/totp/3/confirm`.
fn id_in(path: &str) -> String {
    let rest = path
        .strip_prefix("/account/devices/")
        .expect("a device path");
    let mut parts = rest.split('/');
    format!("{}/{}", parts.next().unwrap(), parts.next().unwrap())
}

/// The backup codes of a page.
fn codes_on(page: &Reply) -> Vec<String> {
    page.body
        .split("<li><code>")
        .skip(1)
        .map(|rest| rest.split('<').next().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The scenarios.

async fn totp_through_the_pages_then_a_two_factor_login(db: &TestDb) {
    let app = App::start(db).await;
    let mut alice = app.browser();
    // Sign-up logs the user in with the password alone: the first device may be added now.
    let form = alice.get("/signup").await;
    alice
        .submit(
            &form,
            "/signup",
            &[
                ("username", "alice"),
                ("email", "alice@example.com"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await
        .status(303, "sign-up");
    let list = alice.get("/account/devices").await;
    list.status(200, "the list");
    list.assert_safe_page("the empty list");
    assert!(
        list.body.contains("no two-factor device yet"),
        "{}",
        list.body
    );
    assert!(
        list.body.contains("value=\"alice@example.com\""),
        "{}",
        list.body
    );

    let added = alice
        .submit(&list, "/account/devices/totp", &[("name", "Phone")])
        .await;
    added.status(303, "add TOTP");
    let confirm_url = added.location().to_owned();
    assert!(confirm_url.ends_with("/confirm"), "{confirm_url}");
    let id = id_in(&confirm_url);
    assert!(id.starts_with("totp/"), "{id}");
    assert!(!app.device(&id).await.unwrap().confirmed);

    let page = alice.get(&confirm_url).await;
    page.status(200, "the confirmation page");
    page.assert_safe_page("the confirmation page");
    let qr_url = format!("/account/devices/{id}/qr.svg");
    assert!(
        page.body.contains(&format!("<img src=\"{qr_url}\"")),
        "{}",
        page.body
    );
    let secret = shown_secret(&page);
    let uri = between(&page.body, "readonly spellcheck=\"false\">", "<").expect("the URI");
    assert!(
        uri.starts_with("otpauth://totp/Example:alice?secret="),
        "{uri}"
    );
    assert!(
        uri.contains(&format!("secret={}&", &*secret.to_base32())),
        "{uri}"
    );
    assert!(uri.contains("&issuer=Example"), "{uri}");

    let qr = alice.get(&qr_url).await;
    qr.status(200, "the QR code");
    assert_eq!(qr.header(header::CONTENT_TYPE), Some("image/svg+xml"));
    assert_eq!(qr.header(header::CACHE_CONTROL), Some("no-store"));
    assert!(qr.body.contains("<svg"), "{}", qr.body);

    // A wrong code: the page again, the device still unconfirmed.
    let refused = alice
        .submit(&page, &confirm_url, &[("token", &wrong_totp(&secret))])
        .await;
    refused.status(401, "a wrong code");
    assert!(refused.body.contains("Invalid token"), "{}", refused.body);
    assert!(
        refused.body.contains("id=\"app-secret\""),
        "the key is shown again"
    );
    assert!(!app.device(&id).await.unwrap().confirmed);
    assert!(!alice.api_me().await["verified"].as_bool().unwrap());

    tokio::time::sleep(THROTTLE).await;
    let confirmed_at = now();
    let code = totp_at(&secret, confirmed_at);
    let confirmed = alice.submit(&page, &confirm_url, &[("token", &code)]).await;
    confirmed.status(303, "the right code");
    assert_eq!(confirmed.location(), "/account/devices?done=confirmed");
    assert!(app.device(&id).await.unwrap().confirmed);
    // The first device verifies the session, so the pages stay open.
    let me = alice.api_me().await;
    assert_eq!(
        (me["verified"].as_bool(), me["device"].as_str()),
        (Some(true), Some(id.as_str()))
    );
    let list = alice.get(confirmed.location()).await;
    list.status(200, "the list after confirmation");
    assert!(list.body.contains("Your device is set up"), "{}", list.body);
    assert!(
        list.body.contains("<strong>Phone</strong>"),
        "{}",
        list.body
    );
    assert!(list.body.contains("Confirmed"), "{}", list.body);
    // The key is not shown any more.
    let gone = alice.get(&confirm_url).await;
    gone.status(303, "the confirmation page of a confirmed device");
    assert_eq!(gone.location(), "/account/devices");
    alice
        .get(&qr_url)
        .await
        .status(404, "the QR code of a confirmed device");

    // The confirmation code was spent: the next login refuses it, and takes the next step's.
    alice.log_out().await;
    let step = alice.log_in("alice").await;
    step.status(303, "password step");
    assert!(
        step.location().starts_with("/account/login/otp"),
        "{}",
        step.location()
    );
    let again = alice.second_factor("/account/login/otp", &id, &code).await;
    let totp = Totp::new(&secret, TotpParams::default()).unwrap();
    if otp_test_support::totp_code_repeats(&totp, &code, confirmed_at) {
        // By chance the code is also that of a later step, which the server may rightly
        // accept: the rest of this login proves nothing.
        app.close().await;
        return;
    }
    again.status(401, "the confirmation code at login");
    tokio::time::sleep(THROTTLE).await;
    let next_code = totp_at(&secret, confirmed_at + 30);
    let login = alice
        .second_factor("/account/login/otp", &id, &next_code)
        .await;
    login.status(303, "the next step's code at login");
    assert_eq!(alice.api_me().await["verified"], Value::Bool(true));
    app.close().await;
}

async fn backup_codes_are_shown_once_and_kept_nowhere(db: &TestDb) {
    let app = App::start(db).await;
    app.user("bob", None).await;
    let mut bob = app.browser();
    bob.log_in("bob").await.status(303, "password-only login");
    let list = bob.get("/account/devices").await;
    let made = bob.submit(&list, "/account/devices/static", &[]).await;
    made.status(200, "new backup codes");
    made.assert_safe_page("the codes page");
    assert!(made.body.contains("shown only this once"), "{}", made.body);
    let codes = codes_on(&made);
    assert_eq!(codes.len(), 10, "{}", made.body);
    assert!(
        codes
            .iter()
            .all(|code| code.len() == 11 && code.as_bytes()[5] == b'-')
    );
    // The download is in the page itself; the codes are kept nowhere for a later request,
    // not even in the session.
    let download_url = unescape(href_before(&made.body, "\" download=").unwrap());
    let text = download_url
        .strip_prefix("data:text/plain;charset=utf-8,")
        .map(percent_decode)
        .expect("a data: URL");
    let listed: Vec<&str> = text.lines().filter(|line| line.len() == 11).collect();
    assert_eq!(listed, codes.iter().map(String::as_str).collect::<Vec<_>>());
    app.assert_session_lacks(&bob, &codes).await;

    // The codes are the first device: the session is verified by them.
    let list = bob.get("/account/devices").await;
    list.status(200, "the list");
    assert!(list.body.contains("Backup codes"), "{}", list.body);
    assert!(list.body.contains("10 codes left"), "{}", list.body);
    let second = bob.submit(&list, "/account/devices/static", &[]).await;
    second.status(409, "a second set");
    assert!(
        second.body.contains("You have backup codes already"),
        "{}",
        second.body
    );

    // New codes right away (the verification is fresh).
    let regenerate_url = href_or_action(&list.body, "/regenerate");
    let id = id_in(&regenerate_url);
    let new = bob.submit(&list, &regenerate_url, &[]).await;
    new.status(200, "new codes");
    assert!(
        new.body.contains("the old ones no longer work"),
        "{}",
        new.body
    );
    let new_codes = codes_on(&new);
    assert_eq!(new_codes.len(), 10);
    assert!(new_codes.iter().all(|code| !codes.contains(code)));
    app.assert_session_lacks(&bob, &new_codes).await;

    // A verification older than five minutes: new codes need a fresh one.
    app.age_verification(&bob, Duration::from_secs(6 * 60))
        .await;
    let stale = bob.submit(&list, &regenerate_url, &[]).await;
    stale.status(303, "new codes with a stale verification");
    assert_eq!(stale.location(), "/account/verify?next=/account/devices");
    let verify = bob
        .second_factor("/account/verify?next=/account/devices", &id, &codes[0])
        .await;
    verify.status(401, "an old code");
    tokio::time::sleep(THROTTLE).await;
    let verify = bob
        .second_factor("/account/verify?next=/account/devices", &id, &new_codes[0])
        .await;
    verify.status(303, "a new code");
    assert_eq!(verify.location(), "/account/devices");
    let list = bob.get("/account/devices").await;
    assert!(list.body.contains("9 codes left"), "{}", list.body);
    bob.submit(&list, &regenerate_url, &[])
        .await
        .status(200, "new codes after verifying again");
    app.close().await;
}

async fn rename_remove_and_the_last_device_needs_a_fresh_factor(db: &TestDb) {
    let app = App::start(db).await;
    let carol_key = app.user("carol", None).await;
    let secret = Secret::generate();
    let totp = common::add_phone(app.state.otp(), &carol_key, &secret).await;
    let totp_id = totp.id.to_string();
    let mut carol = app.browser();
    carol.log_in("carol").await.status(303, "password step");
    let login_time = now();
    carol
        .second_factor(
            "/account/login/otp",
            &totp_id,
            &totp_at(&secret, login_time),
        )
        .await
        .status(303, "second factor");

    // Rename, and names that cannot be.
    let list = carol.get("/account/devices").await;
    let rename_url = format!("/account/devices/{totp_id}/rename");
    let renamed = carol
        .submit(&list, &rename_url, &[("name", " Work phone ")])
        .await;
    renamed.status(303, "rename");
    assert_eq!(renamed.location(), "/account/devices?done=renamed");
    assert_eq!(app.device(&totp_id).await.unwrap().name, "Work phone");
    for bad in ["   ".to_owned(), "x".repeat(65)] {
        let refused = carol.submit(&list, &rename_url, &[("name", &bad)]).await;
        refused.status(400, "a bad name");
        assert!(
            refused.body.contains("1 to 64 characters"),
            "{}",
            refused.body
        );
    }
    assert_eq!(app.device(&totp_id).await.unwrap().name, "Work phone");
    // A forged form is refused before anything.
    carol
        .post_form(&rename_url, &[("csrf_token", "forged"), ("name", "Evil")])
        .await
        .status(403, "a bad CSRF token");

    // An HOTP token, confirmed with its first code.
    let added = carol
        .submit(&list, "/account/devices/hotp", &[("name", "Fob")])
        .await;
    added.status(303, "add HOTP");
    let hotp_id = id_in(added.location());
    let page = carol.get(added.location()).await;
    page.status(200, "the HOTP confirmation page");
    assert!(page.body.contains("counter-based"), "{}", page.body);
    let hotp_secret = shown_secret(&page);
    let first = Hotp::new(&hotp_secret, HotpParams::default())
        .code(0)
        .to_string();
    carol
        .submit(&page, added.location(), &[("token", &first)])
        .await
        .status(303, "confirm HOTP");
    assert!(app.device(&hotp_id).await.unwrap().confirmed);

    // An unconfirmed device is removed without a fresh factor.
    let pending = carol.submit(&list, "/account/devices/totp", &[]).await;
    let pending_id = id_in(pending.location());
    assert_eq!(
        app.device(&pending_id).await.unwrap().name,
        "Authenticator app"
    );
    // Older than the step-up window (5 minutes), within the idle limit (30 minutes).
    app.age_verification(&carol, Duration::from_secs(6 * 60))
        .await;
    let list = carol.get("/account/devices").await;
    list.status(200, "a stale but verified session still sees the list");
    let removed = carol
        .submit(&list, &format!("/account/devices/{pending_id}/remove"), &[])
        .await;
    removed.status(303, "remove an unconfirmed device");
    assert_eq!(removed.location(), "/account/devices?done=removed");
    assert!(app.device(&pending_id).await.is_none());
    // A confirmed one, even when it is not the last, needs a fresh verification.
    let stale = carol
        .submit(&list, &format!("/account/devices/{hotp_id}/remove"), &[])
        .await;
    stale.status(303, "remove a confirmed device with a stale verification");
    assert_eq!(stale.location(), "/account/verify?next=/account/devices");
    assert!(app.device(&hotp_id).await.is_some());
    let list = carol.get("/account/devices").await;
    assert!(
        list.body.contains("You will be asked to verify"),
        "{}",
        list.body
    );
    let remove_url = format!("/account/devices/{totp_id}/remove");
    let stale = carol.submit(&list, &remove_url, &[]).await;
    stale.status(303, "remove the last device with a stale verification");
    assert_eq!(stale.location(), "/account/verify?next=/account/devices");
    assert!(app.device(&totp_id).await.is_some());
    let before = carol.cookie.clone();
    carol
        .second_factor(
            "/account/verify?next=/account/devices",
            &totp_id,
            &totp_at(&secret, login_time + 30),
        )
        .await
        .status(303, "verify again");
    assert_ne!(
        carol.cookie, before,
        "a new verification cycles the session id"
    );
    let list = carol.get("/account/devices").await;
    assert!(
        !list.body.contains("You will be asked to verify"),
        "{}",
        list.body
    );
    carol
        .submit(&list, &format!("/account/devices/{hotp_id}/remove"), &[])
        .await
        .status(303, "remove a confirmed device with a fresh verification");
    assert!(app.device(&hotp_id).await.is_none());
    let list = carol.get("/account/devices").await;
    assert!(
        list.body.contains("This is your last confirmed device"),
        "{}",
        list.body
    );
    carol
        .submit(&list, &remove_url, &[])
        .await
        .status(303, "remove the last device");
    assert!(app.device(&totp_id).await.is_none());
    let list = carol.get("/account/devices").await;
    assert!(
        list.body.contains("no two-factor device yet"),
        "{}",
        list.body
    );
    app.close().await;
}

async fn other_users_devices_and_bad_ids_are_404(db: &TestDb) {
    let app = App::start(db).await;
    let dave_key = app.user("dave", None).await;
    app.user("erin", None).await;
    let otp = app.state.otp();
    let daves_totp = otp
        .create_totp_device(&dave_key, "Dave's", None, TotpOptions::default(), false)
        .await
        .unwrap();
    let (daves_codes, _) = otp
        .create_backup_codes(&dave_key, "Codes", None)
        .await
        .unwrap();
    let mut erin = app.browser();
    erin.log_in("erin").await.status(303, "login");
    let list = erin.get("/account/devices").await;
    assert!(!list.body.contains("Dave"), "{}", list.body);
    for id in [daves_totp.id.to_string(), daves_codes.id.to_string()] {
        for action in ["confirm", "qr.svg"] {
            erin.get(&format!("/account/devices/{id}/{action}"))
                .await
                .status(404, &format!("GET {action} of {id}"));
        }
        for (action, fields) in [
            ("confirm", &[("token", "123456")][..]),
            ("rename", &[("name", "Mine")]),
            ("remove", &[]),
            ("regenerate", &[]),
            ("resend", &[]),
        ] {
            erin.submit(&list, &format!("/account/devices/{id}/{action}"), fields)
                .await
                .status(404, &format!("POST {action} of {id}"));
        }
        let json = format!("/api/v1/devices/{id}");
        erin.api_get(&json).await.status(404, "GET JSON");
        let reply = erin
            .json(Method::PATCH, &json, Some(json!({ "name": "Mine" })))
            .await;
        reply.status(404, "PATCH JSON");
        assert_eq!(reply.json()["error"], "not_found");
        erin.json(Method::DELETE, &json, None)
            .await
            .status(404, "DELETE JSON");
        erin.post_json(&format!("{json}/confirm"), json!({ "token": "123456" }))
            .await
            .status(404, "confirm JSON");
    }
    let unchanged = app.device(&daves_totp.id.to_string()).await.unwrap();
    assert_eq!(
        (unchanged.name.as_str(), unchanged.confirmed),
        ("Dave's", false)
    );
    assert!(app.device(&daves_codes.id.to_string()).await.is_some());
    // Malformed and unknown ids: 404, never 500.
    for path in [
        "/account/devices/totp/0/confirm",
        "/account/devices/totp/01/confirm",
        "/account/devices/TOTP/1/confirm",
        "/account/devices/totp/abc/qr.svg",
        "/account/devices/nosuchkind/1/confirm",
        "/account/devices/totp/99999999999999999999/codes.txt",
        "/account/devices/totp/999999/confirm",
        "/account/devices/static/1/confirm",
    ] {
        erin.get(path).await.status(404, path);
    }
    for path in [
        "/api/v1/devices/totp/0",
        "/api/v1/devices/x-y/1",
        "/api/v1/devices/totp/999999",
    ] {
        erin.api_get(path).await.status(404, path);
    }
    app.close().await;
}

async fn a_user_with_a_device_must_verify_the_session_first(db: &TestDb) {
    let app = App::start(db).await;
    // Anonymous: the login page, or 401 for JSON.
    let mut anonymous = app.browser();
    let redirect = anonymous.get("/account/devices").await;
    redirect.status(303, "anonymous");
    assert_eq!(redirect.location(), "/account/login?next=/account/devices");
    let reply = anonymous.api_get("/api/v1/devices").await;
    reply.status(401, "anonymous JSON");
    assert_eq!(reply.json()["error"], "login_required");

    // Logged in by password, then a device appears (an operator, another session).
    let key = app.user("frank", None).await;
    let mut frank = app.browser();
    frank
        .log_in("frank")
        .await
        .status(303, "password-only login");
    frank
        .get("/account/devices")
        .await
        .status(200, "no device yet");
    let secret = Secret::generate();
    let device = common::add_phone(app.state.otp(), &key, &secret).await;
    let redirect = frank.get("/account/devices").await;
    redirect.status(303, "unverified session");
    assert_eq!(redirect.location(), "/account/verify?next=/account/devices");
    let redirect = frank
        .get(&format!("/account/devices/{}/qr.svg", device.id))
        .await;
    assert_eq!(
        redirect.location(),
        format!("/account/verify?next=/account/devices/{}/qr.svg", device.id)
    );
    let refused = frank
        .post_form("/account/devices/totp", &[("name", "Mine")])
        .await;
    refused.status(303, "a form of an unverified session");
    assert_eq!(refused.location(), "/account/verify?next=/account/devices");
    let delete_url = format!("/api/v1/devices/{}", device.id);
    for (method, path, body) in [
        (Method::GET, "/api/v1/devices", None),
        (Method::POST, "/api/v1/devices/totp", Some(json!({}))),
        (Method::POST, "/api/v1/devices/static", Some(json!({}))),
        (Method::DELETE, delete_url.as_str(), None),
    ] {
        let reply = frank.json(method.clone(), path, body).await;
        reply.status(403, &format!("{method} {path}"));
        assert_eq!(reply.json()["error"], "otp_required", "{method} {path}");
        assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
    }
    assert_eq!(app.device_count(&key).await, 1);
    // After the verification, the page it came from.
    let verified = frank
        .second_factor(
            "/account/verify?next=/account/devices",
            &device.id.to_string(),
            &totp_at(&secret, now()),
        )
        .await;
    verified.status(303, "verify");
    assert_eq!(verified.location(), "/account/devices");
    frank.get("/account/devices").await.status(200, "verified");
    frank
        .api_get("/api/v1/devices")
        .await
        .status(200, "verified JSON");
    app.close().await;
}

async fn email_through_the_pages(db: &TestDb) {
    let app = App::start(db).await;
    app.user("gina", Some("gina@example.com")).await;
    let mut gina = app.browser();
    gina.log_in("gina").await.status(303, "login");
    let list = gina.get("/account/devices").await;
    assert!(
        list.body.contains("value=\"gina@example.com\""),
        "{}",
        list.body
    );
    let refused = gina
        .submit(
            &list,
            "/account/devices/email",
            &[("email", "not an address")],
        )
        .await;
    refused.status(400, "a bad address");
    assert!(refused.body.contains("not valid"), "{}", refused.body);
    assert!(app.smtp.received().is_empty());

    let added = gina
        .submit(
            &list,
            "/account/devices/email",
            &[("email", "gina@example.com"), ("name", "")],
        )
        .await;
    added.status(303, "add an email device");
    assert!(
        added.location().ends_with("/confirm?sent=1"),
        "{}",
        added.location()
    );
    let id = id_in(added.location());
    let code = app.last_code_to("gina@example.com");
    let page = gina.get(added.location()).await;
    page.status(200, "the confirmation page");
    page.assert_safe_page("the email confirmation page");
    assert!(
        page.body
            .contains("We sent a code to <strong>gina@example.com</strong>")
    );
    assert!(page.body.contains("A code was sent."), "{}", page.body);
    assert!(!page.body.contains("app-secret"), "no key for email");
    // Another code at once: the cooldown says when.
    let confirm_url = format!("/account/devices/{id}/confirm");
    let resend = gina
        .submit(&page, &format!("/account/devices/{id}/resend"), &[])
        .await;
    resend.status(429, "a second code too soon");
    assert!(resend.body.contains("Please wait"), "{}", resend.body);
    assert!(resend.header(header::RETRY_AFTER).is_some());
    assert_eq!(app.smtp.received().len(), 1);

    let wrong = if code == "000000" { "111111" } else { "000000" };
    gina.submit(&page, &confirm_url, &[("token", wrong)])
        .await
        .status(401, "a wrong code");
    assert!(!app.device(&id).await.unwrap().confirmed);
    tokio::time::sleep(THROTTLE).await;
    let done = gina.submit(&page, &confirm_url, &[("token", &code)]).await;
    done.status(303, "the emailed code");
    assert_eq!(done.location(), "/account/devices?done=confirmed");
    let device = app.device(&id).await.unwrap();
    assert!(device.confirmed);
    assert_eq!(device.name, "Email codes");
    app.close().await;
}

async fn enrolment_over_json(db: &TestDb) {
    let app = App::start(db).await;
    let henry_key = app.user("henry", Some("henry@example.com")).await;
    let mut henry = app.browser();
    henry.log_in_json("henry").await.status(200, "JSON login");
    let listed = henry.api_get("/api/v1/devices").await;
    listed.status(200, "empty list");
    assert_eq!(listed.json(), json!([]));

    // TOTP: the URI, the secret, the QR code of the same session.
    let created = henry
        .post_json("/api/v1/devices/totp", json!({ "name": "Phone" }))
        .await;
    created.status(201, "add TOTP");
    assert_eq!(created.header(header::CACHE_CONTROL), Some("no-store"));
    let body = created.json();
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.location(), format!("/api/v1/devices/{id}"));
    let secret = Secret::from_base32(body["secret"].as_str().unwrap()).unwrap();
    assert!(
        body["uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Example:henry?secret=")
    );
    let qr_url = body["qr_svg_url"].as_str().unwrap();
    assert_eq!(qr_url, format!("/account/devices/{id}/qr.svg"));
    let qr = henry.get(qr_url).await;
    qr.status(200, "QR code");
    assert_eq!(qr.header(header::CONTENT_TYPE), Some("image/svg+xml"));
    assert_eq!(qr.header(header::CACHE_CONTROL), Some("no-store"));
    // An empty body takes the defaults.
    let defaulted = henry.json(Method::POST, "/api/v1/devices/hotp", None).await;
    defaulted.status(201, "add HOTP with no body");
    assert_eq!(defaulted.json()["name"], "Hardware token");
    let hotp_id = defaulted.json()["id"].as_str().unwrap().to_owned();

    let confirm_url = format!("/api/v1/devices/{id}/confirm");
    let wrong = henry
        .post_json(&confirm_url, json!({ "token": wrong_totp(&secret) }))
        .await;
    wrong.status(401, "a wrong code");
    assert_eq!(wrong.json()["error"], "invalid_token");
    assert!(wrong.json()["message"].is_string());
    henry
        .post_json(&confirm_url, json!({ "code": "123456" }))
        .await
        .status(400, "an unknown field");
    henry
        .post_json(&confirm_url, json!({ "token": "" }))
        .await
        .status(400, "an empty code");
    tokio::time::sleep(THROTTLE).await;
    let confirmed_at = now();
    let ok = henry
        .post_json(
            &confirm_url,
            json!({ "token": totp_at(&secret, confirmed_at) }),
        )
        .await;
    ok.status(200, "the right code");
    assert_eq!(ok.json(), json!({ "confirmed": true }));
    assert_eq!(henry.api_me().await["verified"], Value::Bool(true));
    let again = henry
        .post_json(&confirm_url, json!({ "token": "123456" }))
        .await;
    again.status(409, "confirmed already");
    assert_eq!(again.json()["error"], "already_confirmed");
    henry
        .get(qr_url)
        .await
        .status(404, "the QR code of a confirmed device");

    // Backup codes.
    let refused = henry
        .post_json("/api/v1/devices/static", json!({ "count": 0 }))
        .await;
    refused.status(400, "no codes");
    assert_eq!(refused.json()["error"], "invalid_count");
    let made = henry
        .post_json("/api/v1/devices/static", json!({ "count": 5 }))
        .await;
    made.status(201, "backup codes");
    let static_id = made.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(made.json()["codes"].as_array().unwrap().len(), 5);
    let twice = henry.post_json("/api/v1/devices/static", json!({})).await;
    twice.status(409, "a second set");
    assert_eq!(twice.json()["error"], "one_per_user");

    // Email: the user's address by default; the cooldown holds the next code back.
    let email = henry
        .json(Method::POST, "/api/v1/devices/email", None)
        .await;
    email.status(201, "add email");
    assert_eq!(email.json()["sent"], Value::Bool(true));
    let email_id = email.json()["id"].as_str().unwrap().to_owned();
    let code = app.last_code_to("henry@example.com");
    let soon = henry
        .json(
            Method::POST,
            &format!("/api/v1/devices/{email_id}/challenge"),
            None,
        )
        .await;
    soon.status(429, "a second code too soon");
    assert_eq!(soon.json()["error"], "challenge_cooldown");
    assert!(soon.header(header::RETRY_AFTER).is_some());
    henry
        .post_json(
            &format!("/api/v1/devices/{email_id}/confirm"),
            json!({ "token": code }),
        )
        .await
        .status(200, "the emailed code");
    let bad = henry
        .post_json("/api/v1/devices/email", json!({ "email": "nope" }))
        .await;
    bad.status(400, "a bad address");
    assert_eq!(bad.json()["error"], "invalid_email");

    // Rename.
    let device_url = format!("/api/v1/devices/{id}");
    let renamed = henry
        .json(
            Method::PATCH,
            &device_url,
            Some(json!({ "name": "Work phone" })),
        )
        .await;
    renamed.status(200, "rename");
    assert_eq!(renamed.json()["name"], "Work phone");
    let blank = henry
        .json(Method::PATCH, &device_url, Some(json!({ "name": " " })))
        .await;
    blank.status(400, "a blank name");
    assert_eq!(blank.json()["error"], "invalid_name");
    let malformed = henry
        .send(
            Method::PATCH,
            &device_url,
            &[("content-type", "application/json"), ("origin", ORIGIN)],
            b"{\"name\":".to_vec(),
        )
        .await;
    malformed.status(400, "malformed JSON");
    assert_eq!(malformed.json()["error"], "bad_request");
    let form = henry
        .send(
            Method::POST,
            "/api/v1/devices/totp",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", ORIGIN),
            ],
            b"name=x".to_vec(),
        )
        .await;
    form.status(415, "not JSON");
    assert_eq!(form.json()["error"], "unsupported_media_type");
    let cross = henry
        .send(
            Method::POST,
            "/api/v1/devices/totp",
            &[
                ("content-type", "application/json"),
                ("origin", "http://evil.example"),
            ],
            b"{}".to_vec(),
        )
        .await;
    cross.status(403, "another site");
    assert_eq!(cross.json()["error"], "csrf_failed");
    let cross_delete = henry
        .send(
            Method::DELETE,
            &device_url,
            &[("origin", "http://evil.example")],
            Vec::new(),
        )
        .await;
    cross_delete.status(403, "DELETE from another site");

    // The list.
    let listed = henry.api_get("/api/v1/devices").await.json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 4, "{listed:?}");
    for device in listed {
        let is_static = device["id"] == static_id.as_str();
        assert_eq!(
            device.get("codes_remaining").is_some(),
            is_static,
            "{device}"
        );
        assert!(device["created_at"].is_i64());
        assert!(device.get("secret").is_none() && device.get("state").is_none());
    }
    let phone = listed.iter().find(|d| d["id"] == id.as_str()).unwrap();
    assert_eq!(
        (&phone["name"], &phone["kind"], &phone["confirmed"]),
        (&json!("Work phone"), &json!("totp"), &json!(true))
    );
    assert!(phone["last_used_at"].is_i64(), "the confirmation used it");
    let codes = listed
        .iter()
        .find(|d| d["id"] == static_id.as_str())
        .unwrap();
    assert_eq!(codes["codes_remaining"], 5);

    // Removal; with a stale verification, only unconfirmed devices go.
    henry
        .json(Method::DELETE, &format!("/api/v1/devices/{hotp_id}"), None)
        .await
        .status(204, "remove the unconfirmed HOTP");
    app.age_verification(&henry, Duration::from_secs(600)).await;
    let stale = henry
        .json(
            Method::POST,
            &format!("/api/v1/devices/{static_id}/regenerate"),
            None,
        )
        .await;
    stale.status(403, "new codes with a stale verification");
    assert_eq!(stale.json()["error"], "fresh_verification_required");
    for other in [&email_id, &static_id] {
        let refused = henry
            .json(Method::DELETE, &format!("/api/v1/devices/{other}"), None)
            .await;
        refused.status(403, "a confirmed device with a stale verification");
        assert_eq!(refused.json()["error"], "fresh_verification_required");
    }
    let last = henry.json(Method::DELETE, &device_url, None).await;
    last.status(403, "the last device with a stale verification");
    assert_eq!(last.json()["error"], "fresh_verification_required");
    assert_eq!(app.device_count(&henry_key).await, 3);
    // Verified again over JSON, the devices go. The code is of a step after the
    // confirmation's, and in the window even when the confirmation was checked in the next step
    // (the server then learned a drift of one step back).
    let later = (confirmed_at + 30).max(now());
    henry
        .post_json(
            "/api/v1/otp/verify",
            json!({ "device": id, "token": totp_at(&secret, later) }),
        )
        .await
        .status(200, "verify again");
    for other in [&email_id, &static_id] {
        henry
            .json(Method::DELETE, &format!("/api/v1/devices/{other}"), None)
            .await
            .status(204, "a confirmed device with a fresh verification");
    }
    henry
        .json(Method::DELETE, &device_url, None)
        .await
        .status(204, "remove the last device");
    assert_eq!(henry.api_get("/api/v1/devices").await.json(), json!([]));
    app.close().await;
}

async fn a_user_has_at_most_twenty_devices(db: &TestDb) {
    let app = App::start(db).await;
    app.user("ivan", None).await;
    let mut ivan = app.browser();
    ivan.log_in_json("ivan").await.status(200, "login");
    for n in 0..20 {
        ivan.json(Method::POST, "/api/v1/devices/totp", None)
            .await
            .status(201, &format!("device {n}"));
    }
    let full = ivan.json(Method::POST, "/api/v1/devices/totp", None).await;
    full.status(409, "the 21st");
    assert_eq!(full.json()["error"], "too_many_devices");
    let list = ivan.get("/account/devices").await;
    assert!(list.body.contains("the most there may be"), "{}", list.body);
    app.close().await;
}

/// The step-up rule (security review, issue 10, finding 2): a session verified long ago, or
/// stolen, cannot add a device of its own, nor, having added one while it was fresh, use that
/// device to become fresh again and regenerate or remove the owner's devices or change the
/// password.
async fn a_stale_session_cannot_take_over_the_second_factor(db: &TestDb) {
    let app = App::start(db).await;
    let vera_key = app.user("vera", Some("vera@example.com")).await;
    let vera_secret = Secret::generate();
    let phone = app
        .state
        .otp()
        .create_totp_device(
            &vera_key,
            "Phone",
            Some(vera_secret.clone()),
            TotpOptions::default(),
            true,
        )
        .await
        .unwrap();
    let (codes, _) = app
        .state
        .otp()
        .create_backup_codes(&vera_key, "Paper", None)
        .await
        .unwrap();
    let mut thief = app.browser();
    thief.log_in_json("vera").await.status(200, "password");
    let start = now();
    thief
        .post_json(
            "/api/v1/otp/verify",
            json!({ "device": phone.id.to_string(), "token": totp_at(&vera_secret, start) }),
        )
        .await
        .status(200, "the owner's second factor");
    let devices_before = app.device_count(&vera_key).await;

    // Verified long ago: nothing may be added, over JSON or on the pages.
    app.age_verification(&thief, Duration::from_secs(6 * 60))
        .await;
    for (path, body) in [
        ("/api/v1/devices/totp", json!({})),
        ("/api/v1/devices/hotp", json!({})),
        (
            "/api/v1/devices/email",
            json!({ "email": "thief@example.com" }),
        ),
    ] {
        let refused = thief.post_json(path, body).await;
        refused.status(403, &format!("{path} with a stale verification"));
        assert_eq!(refused.json()["error"], "fresh_verification_required");
    }
    let list = thief.get("/account/devices").await;
    list.status(200, "the list");
    let refused = thief.submit(&list, "/account/devices/totp", &[]).await;
    refused.status(303, "add on the page with a stale verification");
    assert_eq!(refused.location(), "/account/verify?next=/account/devices");
    assert_eq!(app.device_count(&vera_key).await, devices_before);
    let password = thief
        .submit(
            &list,
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a brand new passphrase"),
                ("new_password_confirm", "a brand new passphrase"),
            ],
        )
        .await;
    password.status(303, "a password change with a stale verification");
    assert_eq!(
        password.location(),
        "/account/verify?next=/account/password"
    );

    // Fresh for a moment (say, just stolen): a device of the thief's is added and confirmed.
    thief
        .post_json(
            "/api/v1/otp/verify",
            json!({ "device": phone.id.to_string(), "token": totp_at(&vera_secret, start + 30) }),
        )
        .await
        .status(200, "verified again");
    let added = thief.post_json("/api/v1/devices/totp", json!({})).await;
    added.status(201, "a fresh session adds a device");
    let thiefs_id = added.json()["id"].as_str().unwrap().to_owned();
    let thiefs_secret = Secret::from_base32(added.json()["secret"].as_str().unwrap()).unwrap();
    let confirmed_at = now();
    thief
        .post_json(
            &format!("/api/v1/devices/{thiefs_id}/confirm"),
            json!({ "token": totp_at(&thiefs_secret, confirmed_at) }),
        )
        .await
        .status(200, "and confirms it");

    // Later, the thief's own device makes the session verified, but never fresh for changes.
    app.age_verification(&thief, Duration::from_secs(6 * 60))
        .await;
    thief
        .post_json(
            "/api/v1/otp/verify",
            json!({ "device": thiefs_id, "token": totp_at(&thiefs_secret, confirmed_at + 30) }),
        )
        .await
        .status(200, "the thief's device verifies the session");
    assert_eq!(thief.api_me().await["verified"], Value::Bool(true));
    let regenerate = thief
        .json(
            Method::POST,
            &format!("/api/v1/devices/{}/regenerate", codes.id),
            None,
        )
        .await;
    regenerate.status(403, "new codes, verified by a device this session enrolled");
    assert_eq!(regenerate.json()["error"], "fresh_verification_required");
    for id in [phone.id.to_string(), codes.id.to_string()] {
        let removal = thief
            .json(Method::DELETE, &format!("/api/v1/devices/{id}"), None)
            .await;
        removal.status(403, &format!("removing the owner's {id}"));
        assert_eq!(removal.json()["error"], "fresh_verification_required");
    }
    let another = thief.post_json("/api/v1/devices/hotp", json!({})).await;
    another.status(403, "another device");
    assert!(app.device(&phone.id.to_string()).await.is_some());
    assert!(app.device(&codes.id.to_string()).await.is_some());
    app.close().await;
}

/// Security review, issue 10, finding 3: open sign-up cannot be turned into a mail bomb. Six
/// accounts adding email devices for one victim send it at most `OTP_EMAIL_PER_ADDRESS_PER_HOUR`
/// (5) codes; an account has at most three unconfirmed email devices; an address with angle
/// brackets is refused as at sign-up.
async fn accounts_cannot_flood_one_address(db: &TestDb) {
    let app = App::start(db).await;
    let mut sent = 0;
    for n in 0..6 {
        let name = format!("bomber{n}");
        app.user(&name, None).await;
        let mut bomber = app.browser();
        bomber.log_in_json(&name).await.status(200, "login");
        let added = bomber
            .post_json(
                "/api/v1/devices/email",
                json!({ "email": "victim@example.com" }),
            )
            .await;
        added.status(201, "an email device");
        if added.json()["sent"] == Value::Bool(true) {
            sent += 1;
        }
    }
    assert_eq!(sent, 5);
    let to_victim = app
        .smtp
        .received()
        .iter()
        .filter(|mail| mail.to.iter().any(|to| to.contains("victim@example.com")))
        .count();
    assert_eq!(to_victim, 5);

    app.user("mallory", None).await;
    let mut mallory = app.browser();
    mallory.log_in_json("mallory").await.status(200, "login");
    let bad = mallory
        .post_json(
            "/api/v1/devices/email",
            json!({ "email": "<victim@example.com>" }),
        )
        .await;
    bad.status(400, "an address in angle brackets");
    assert_eq!(bad.json()["error"], "invalid_email");
    for n in 0..3 {
        mallory
            .post_json(
                "/api/v1/devices/email",
                json!({ "email": format!("box{n}@example.com") }),
            )
            .await
            .status(201, "an unconfirmed email device");
    }
    let fourth = mallory
        .post_json(
            "/api/v1/devices/email",
            json!({ "email": "box3@example.com" }),
        )
        .await;
    fourth.status(409, "a fourth unconfirmed email device");
    assert_eq!(fourth.json()["error"], "too_many_unconfirmed_devices");
    app.close().await;
}

/// Issue #10: a username that looks like another (letters of another script, invisible or
/// text-direction characters) is refused at sign-up, with a message that says why; a
/// compatibility form (full-width letters) is the name it stands for, at sign-up and at login.
async fn lookalike_usernames_are_refused_at_sign_up(db: &TestDb) {
    let app = App::start(db).await;
    app.user("admin", None).await;
    for (username, why, status) in [
        ("\u{430}dmin", "must not mix scripts", 400),
        ("ad\u{200b}min", "invisible", 400),
        ("ad\u{200d}min", "invisible", 400),
        ("admin\u{202e}", "invisible", 400),
        ("\u{2067}admin", "invisible", 400),
        ("adm\u{ad}in", "invisible", 400),
        ("\u{ff21}\u{ff24}\u{ff2d}\u{ff29}\u{ff2e}", "taken", 409),
        ("\u{ff11}\u{ff12}", "digits only", 400),
    ] {
        let mut browser = app.browser();
        let form = browser.get("/signup").await;
        let reply = browser
            .submit(
                &form,
                "/signup",
                &[
                    ("username", username),
                    ("email", ""),
                    ("password", PASSWORD),
                    ("password_confirm", PASSWORD),
                ],
            )
            .await;
        reply.status(status, &format!("{username:?}"));
        assert!(reply.body.contains(why), "{username:?}: {}", reply.body);
        reply.assert_safe_page("the refused sign-up");
    }
    // Full-width letters are stored as the letters they stand for.
    let mut carol = app.browser();
    let form = carol.get("/signup").await;
    carol
        .submit(
            &form,
            "/signup",
            &[
                ("username", "\u{ff43}arol"),
                ("email", ""),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await
        .status(303, "a full-width c");
    let carol = app.state.users.find_by_username("carol").await.unwrap();
    assert_eq!(carol.expect("stored as carol").username, "carol");
    // Login normalises the typed name the same way.
    for typed in ["\u{ff21}DMIN", "Admin", "\u{ff43}arol"] {
        let reply = app.browser().log_in_json(typed).await;
        reply.status(200, &format!("log in as {typed:?}"));
    }
    let users = app
        .state
        .users
        .list(&Default::default())
        .await
        .unwrap()
        .users;
    let names: Vec<&str> = users.iter().map(|user| user.username.as_str()).collect();
    assert_eq!(names, ["admin", "carol"]);
    app.close().await;
}

/// Runs an async scenario on a runtime of its own (the PostgreSQL database is made and
/// dropped outside it).
fn run<'a, F>(db: &'a TestDb, scenario: impl FnOnce(&'a TestDb) -> F)
where
    F: std::future::Future<Output = ()>,
{
    common::block_on(scenario(db));
}

crate::database_tests!(
    run: run;
    totp_through_the_pages_then_a_two_factor_login,
    backup_codes_are_shown_once_and_kept_nowhere,
    rename_remove_and_the_last_device_needs_a_fresh_factor,
    other_users_devices_and_bad_ids_are_404,
    a_user_with_a_device_must_verify_the_session_first,
    email_through_the_pages,
    enrolment_over_json,
    a_user_has_at_most_twenty_devices,
    a_stale_session_cannot_take_over_the_second_factor,
    accounts_cannot_flood_one_address,
    lookalike_usernames_are_refused_at_sign_up,
);
