//! The HTML pages of the login and verification flows, in process: a real router (otp-core on a
//! temporary SQLite file, tower-sessions' memory store, `OtpLayer`) driven with `oneshot`, and
//! a small client that keeps the session cookie between requests.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode, header};
use otp_axum::{AccountsError, OtpLayer, OtpWeb, PasswordVerifier, SessionAccounts, WebConfig};
use otp_core::{
    BoxFuture, Device, KeyRing, Mailer, ManualClock, Otp, OutgoingEmail, Settings, Store,
    Timestamp, TotpOptions,
};
use otp_oath::{Secret, Totp, TotpParams};
use tower::ServiceExt;
use tower_sessions::{MemoryStore, SessionManagerLayer};

/// RFC 6238's key: every TOTP device of these tests has it.
const TOTP_KEY: &[u8] = b"12345678901234567890";

// ---------------------------------------------------------------------------------------------
// The app.

/// Passwords: `secret` for alice, bob, carol and dave; their user key is their name.
#[derive(Debug)]
struct TestPasswords;

impl PasswordVerifier for TestPasswords {
    fn verify_password<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, AccountsError>> {
        let known = ["alice", "bob", "carol", "dave"].contains(&username);
        let ok = known && password == "secret";
        Box::pin(async move { Ok(ok.then(|| username.to_owned())) })
    }
}

/// A mailer that keeps what it is given.
#[derive(Debug, Default)]
struct Outbox(Mutex<Vec<String>>);

impl Mailer for Outbox {
    fn send<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<(), otp_core::Error>> {
        self.0
            .lock()
            .unwrap()
            .push(email.text_body.trim().to_owned());
        Box::pin(async { Ok(()) })
    }
}

struct TestApp {
    router: Router,
    otp: Otp,
    /// The clock of the web layer (partial-login timeouts); the framework's is the system's.
    web_clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

struct Options {
    settings: Settings,
    mailer: Option<Arc<dyn Mailer>>,
    config: WebConfig,
}

impl Default for Options {
    fn default() -> Self {
        let mut settings = Settings::default();
        // No throttling unless a test asks for it: a wrong code may be followed by the right one.
        settings.totp.throttle_factor = Duration::ZERO;
        settings.static_codes.throttle_factor = Duration::ZERO;
        settings.email.throttle_factor = Duration::ZERO;
        Self {
            settings,
            mailer: None,
            config: WebConfig::default(),
        }
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn app_with(options: Options) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("otp.db").display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let mut builder = Otp::builder(store, KeyRing::generate()).with_settings(options.settings);
    if let Some(mailer) = options.mailer {
        builder = builder.with_mailer(mailer);
    }
    let otp = builder.build().unwrap();
    let web_clock = Arc::new(ManualClock::new(Timestamp::from_unix_millis(
        now_secs() * 1000,
    )));
    let web = OtpWeb::with_config(
        otp.clone(),
        SessionAccounts::new(TestPasswords),
        options.config,
    )
    .unwrap()
    .with_clock(web_clock.clone());
    let router = Router::new()
        .merge(otp_axum::html::routes(web.config()))
        .layer(OtpLayer::new(web))
        .layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false));
    TestApp {
        router,
        otp,
        web_clock,
        _dir: dir,
    }
}

async fn app() -> TestApp {
    app_with(Options::default()).await
}

impl TestApp {
    fn client(&self) -> Client {
        Client {
            router: self.router.clone(),
            cookie: None,
            csrf_cookie: None,
        }
    }

    /// A confirmed email device of `user`, sending to `{user}@example.com`.
    async fn email_device(&self, user: &str, name: &str) -> Device {
        self.otp
            .create_email_device(user, name, &format!("{user}@example.com"), true)
            .await
            .unwrap()
    }

    async fn totp_device(&self, user: &str) -> Device {
        self.otp
            .create_totp_device(
                user,
                "phone",
                Some(Secret::from_bytes(TOTP_KEY).unwrap()),
                TotpOptions::default(),
                true,
            )
            .await
            .unwrap()
    }
}

/// The code of the test key now, and one that is wrong around now.
fn totp_codes() -> (String, String) {
    let totp = Totp::new(
        &Secret::from_bytes(TOTP_KEY).unwrap(),
        TotpParams::default(),
    )
    .unwrap();
    let now = now_secs();
    let near: Vec<String> = (-2..=2)
        .map(|i| totp.code_at(now + i * 30).unwrap().to_string())
        .collect();
    let right = near[2].clone();
    let wrong = (0..1_000_000)
        .map(|n| format!("{:06}", (right.parse::<u32>().unwrap() + 1 + n) % 1_000_000))
        .find(|code| !near.contains(code))
        .unwrap();
    (right, wrong)
}

/// Whether `word` stands in `text` on its own, not inside a longer run of letters and digits
/// (such as the 64 hex digits of a CSRF token, where a code's digits may appear by chance).
fn contains_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|part| part == word)
}

// ---------------------------------------------------------------------------------------------
// A client that keeps the session cookie, and the CSRF cookie of forms before a login.

struct Client {
    router: Router,
    /// `name=value` of the session cookie.
    cookie: Option<String>,
    /// `name=value` of the `otp_csrf` cookie.
    csrf_cookie: Option<String>,
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    /// The body, with `&#x2f;` read as `/`.
    body: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .expect("a Location header")
            .to_str()
            .unwrap()
    }

    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The value of the hidden CSRF field.
    fn csrf(&self) -> String {
        let marker = r#"name="csrf_token" value=""#;
        let start = self.body.find(marker).expect("a csrf_token field") + marker.len();
        let end = start + self.body[start..].find('"').unwrap();
        self.body[start..end].to_owned()
    }

    /// The whole `<input …>` tag whose `id` is `id`.
    fn input(&self, id: &str) -> &str {
        let marker = format!(r#"<input id="{id}""#);
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no input {id}"));
        let end = start + self.body[start..].find('>').unwrap();
        &self.body[start..=end]
    }

    /// The `Retry-After` header, in seconds.
    fn retry_after(&self) -> u64 {
        self.header(header::RETRY_AFTER)
            .expect("Retry-After")
            .parse()
            .unwrap()
    }

    fn assert_page(&self, status: StatusCode) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.header(header::CACHE_CONTROL), Some("no-store"));
        assert!(
            self.header(header::CONTENT_TYPE)
                .is_some_and(|t| t.starts_with("text/html")),
            "{:?}",
            self.headers
        );
    }

    fn assert_redirect(&self, to: &str) {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.body);
        assert_eq!(self.location(), to);
        assert_eq!(self.header(header::CACHE_CONTROL), Some("no-store"));
    }
}

/// `application/x-www-form-urlencoded` of `fields`.
fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let value =
                percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC);
            format!("{k}={value}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl Client {
    async fn send(&mut self, mut request: Request<Body>) -> Reply {
        let cookies: Vec<&str> = [&self.cookie, &self.csrf_cookie]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        if !cookies.is_empty() {
            request
                .headers_mut()
                .insert(header::COOKIE, cookies.join("; ").parse().unwrap());
        }
        let response = self.router.clone().oneshot(request).await.unwrap();
        for set in response.headers().get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap().trim().to_owned();
            if pair.starts_with(&format!("{}=", otp_axum::csrf::CSRF_COOKIE)) {
                self.csrf_cookie = Some(pair);
                continue;
            }
            let removed = set.to_ascii_lowercase().contains("max-age=0");
            self.cookie = if removed { None } else { Some(pair) };
        }
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        // minijinja escapes `/` as `&#x2f;`: undone here so paths read as paths.
        let body = String::from_utf8(bytes.to_vec()).unwrap();
        Reply {
            status,
            headers,
            body: body.replace("&#x2f;", "/"),
        }
    }

    async fn get(&mut self, uri: &str) -> Reply {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    async fn post(&mut self, uri: &str, fields: &[(&str, &str)]) -> Reply {
        self.post_raw(uri, "application/x-www-form-urlencoded", form_body(fields))
            .await
    }

    /// `POST uri` with `body` as `content_type`.
    async fn post_raw(&mut self, uri: &str, content_type: &str, body: impl Into<Body>) -> Reply {
        self.send(
            Request::post(uri)
                .header(header::CONTENT_TYPE, content_type)
                .body(body.into())
                .unwrap(),
        )
        .await
    }

    /// Step one: the login page, then its form. Returns the reply to the form.
    async fn log_in(&mut self, user: &str, password: &str, next: Option<&str>) -> Reply {
        let page = self.get("/account/login").await;
        let csrf = page.csrf();
        let mut fields = vec![
            ("username", user),
            ("password", password),
            ("csrf_token", csrf.as_str()),
        ];
        if let Some(next) = next {
            fields.push(("next", next));
        }
        self.post("/account/login", &fields).await
    }

    /// Step two: the form of `page` with `action`. Returns the reply to the form.
    async fn second_factor(
        &mut self,
        page: &str,
        device: &str,
        token: &str,
        action: &str,
        next: Option<&str>,
    ) -> Reply {
        let form = self.get(page).await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let csrf = form.csrf();
        let mut fields = vec![
            ("device", device),
            ("token", token),
            ("action", action),
            ("csrf_token", csrf.as_str()),
        ];
        if let Some(next) = next {
            fields.push(("next", next));
        }
        self.post(page, &fields).await
    }

    /// Logs `user` in with the right password, up to the redirect to step two.
    async fn log_in_pending(&mut self, user: &str) {
        self.log_in(user, "secret", None)
            .await
            .assert_redirect("/account/login/otp");
    }

    /// Step two of the login: `token` for `device`.
    async fn step_two(&mut self, device: &str, token: &str, next: Option<&str>) -> Reply {
        self.second_factor("/account/login/otp", device, token, "verify", next)
            .await
    }

    /// Step two of the login: "Send me a code" for `device`.
    async fn challenge(&mut self, device: &str, next: Option<&str>) -> Reply {
        self.second_factor("/account/login/otp", device, "", "challenge", next)
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// Step one.

#[tokio::test]
async fn the_login_page_has_labels_a_csrf_field_and_no_password_value() {
    let app = app().await;
    let mut client = app.client();
    let page = client.get("/account/login").await;
    page.assert_page(StatusCode::OK);
    assert_eq!(page.header(header::X_FRAME_OPTIONS), Some("DENY"));
    assert!(page.body.contains(r#"<label for="otp-username">"#));
    assert!(page.body.contains(r#"<label for="otp-password">"#));
    assert!(
        page.body
            .contains(r#"<link rel="stylesheet" href="/account/otp.css">"#)
    );
    let csrf = page.csrf();
    assert!(csrf.len() >= 64, "{csrf}");
    let password = page.input("otp-password");
    assert!(!password.contains("value"), "{password}");
    assert!(password.contains(r#"autocomplete="current-password""#));
    assert!(page.input("otp-username").contains("autofocus"));
    assert!(!page.body.contains("<script"));
    assert!(!page.body.contains(r#"name="next""#));
    assert!(!page.body.contains(r#"role="alert""#));
    // Security review, issue 10, finding 8: a visitor's login page stores no session; its
    // token is signed from a cookie of its own.
    assert!(client.cookie.is_none(), "the login page made a session");
    let csrf_cookie = page
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|value| value.to_str().unwrap())
        .find(|value| value.starts_with("otp_csrf="))
        .expect("the CSRF cookie");
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Lax"));
    // The same browser keeps its cookie, and so its token.
    let again = client.get("/account/login").await;
    assert_eq!(again.csrf(), csrf);
    assert!(again.headers.get(header::SET_COOKIE).is_none());

    let css = client.get("/account/otp.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(
        css.header(header::CONTENT_TYPE),
        Some("text/css; charset=utf-8")
    );
    assert!(css.body.contains(".otp-card"));
}

#[tokio::test]
async fn forms_without_the_right_csrf_token_are_refused_before_the_password_is_read() {
    let app = app().await;
    let mut client = app.client();
    let page = client.get("/account/login").await;
    let csrf = page.csrf();

    let missing = client
        .post(
            "/account/login",
            &[("username", "bob"), ("password", "secret")],
        )
        .await;
    missing.assert_page(StatusCode::FORBIDDEN);
    assert!(missing.body.contains(r#"role="alert""#));
    assert!(!missing.body.contains("secret"));

    let wrong = client
        .post(
            "/account/login",
            &[
                ("username", "bob"),
                ("password", "secret"),
                ("csrf_token", &"0".repeat(64)),
            ],
        )
        .await;
    wrong.assert_page(StatusCode::FORBIDDEN);

    // The right token from another site.
    let cross_site = client
        .send(
            Request::post("/account/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::HOST, "app.example")
                .header(header::ORIGIN, "https://evil.example")
                .body(Body::from(form_body(&[
                    ("username", "bob"),
                    ("password", "secret"),
                    ("csrf_token", &csrf),
                ])))
                .unwrap(),
        )
        .await;
    cross_site.assert_page(StatusCode::FORBIDDEN);

    // The right token in a browser without the cookie it was signed from, and in one with
    // a cookie of its own.
    let mut other = app.client();
    let bob = [
        ("username", "bob"),
        ("password", "secret"),
        ("csrf_token", &csrf),
    ];
    other
        .post("/account/login", &bob)
        .await
        .assert_page(StatusCode::FORBIDDEN);
    other.get("/account/login").await;
    assert!(other.csrf_cookie.is_some() && other.csrf_cookie != client.csrf_cookie);
    other
        .post("/account/login", &bob)
        .await
        .assert_page(StatusCode::FORBIDDEN);

    // Nobody was logged in: the verify page still sends to the login page.
    client
        .get("/account/verify")
        .await
        .assert_redirect("/account/login");

    // A logout needs the token too.
    client
        .post("/account/logout", &[])
        .await
        .assert_page(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_wrong_password_shows_the_form_again_without_the_password() {
    let app = app().await;
    let mut client = app.client();
    let reply = client
        .log_in("alice", "not-the-password-xyz", Some("/settings"))
        .await;
    reply.assert_page(StatusCode::UNAUTHORIZED);
    assert!(reply.body.contains(r#"role="alert""#));
    assert!(
        reply
            .body
            .contains("Please enter a correct username and password.")
    );
    assert!(!reply.body.contains("not-the-password-xyz"));
    let password = reply.input("otp-password");
    assert!(!password.contains("value"), "{password}");
    assert!(password.contains(r#"aria-invalid="true""#));
    assert!(password.contains("autofocus"), "the username is filled in");
    assert!(reply.input("otp-username").contains(r#"value="alice""#));
    // `next` is carried on.
    assert!(
        reply
            .body
            .contains(r#"<input type="hidden" name="next" value="/settings">"#),
        "{}",
        reply.body
    );
    // An empty form is the same failure.
    let csrf = reply.csrf();
    client
        .post("/account/login", &[("csrf_token", &csrf)])
        .await
        .assert_page(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_user_without_devices_is_logged_in_by_the_password() {
    let app = app().await;
    let mut client = app.client();
    let before = client.get("/account/login").await;
    let cookie = client.cookie.clone();
    let csrf = before.csrf();
    let reply = client
        .post(
            "/account/login",
            &[
                ("username", "bob"),
                ("password", "secret"),
                ("csrf_token", &csrf),
                ("next", "/dashboard?tab=2"),
            ],
        )
        .await;
    reply.assert_redirect("/dashboard?tab=2");
    assert_ne!(client.cookie, cookie, "the session id is cycled");

    // Logged in, with nothing to verify with.
    let verify = client.get("/account/verify").await;
    verify.assert_page(StatusCode::OK);
    assert!(verify.body.contains("You have no device"));
    assert!(!verify.body.contains(r#"name="token""#));

    // Without `next`: the default redirect.
    let mut other = app.client();
    other
        .log_in("bob", "secret", None)
        .await
        .assert_redirect("/");
}

// ---------------------------------------------------------------------------------------------
// Step two.

#[tokio::test]
async fn a_totp_login_takes_two_steps_and_its_code_only_once() {
    let app = app().await;
    let device = app.totp_device("alice").await;
    let id = device.id.to_string();
    let mut client = app.client();

    let reply = client.log_in("alice", "secret", Some("/settings")).await;
    reply.assert_redirect("/account/login/otp?next=/settings");

    let page = client.get("/account/login/otp?next=/settings").await;
    page.assert_page(StatusCode::OK);
    assert!(page.body.contains("<strong>phone</strong>"));
    assert!(
        page.body
            .contains(&format!(r#"name="device" value="{id}""#))
    );
    let token = page.input("otp-token");
    for attribute in [
        r#"autocomplete="one-time-code""#,
        r#"inputmode="numeric""#,
        "autofocus",
        r#"name="token""#,
    ] {
        assert!(token.contains(attribute), "{attribute} in {token}");
    }
    assert!(!token.contains("pattern"), "backup codes have letters");
    assert!(!token.contains("value="));
    assert!(page.body.contains(r#"<label for="otp-token">"#));
    assert!(page.body.contains("A backup code works too."));
    assert!(page.body.contains(r#"name="action" value="verify""#));
    assert!(
        !page.body.contains(r#"value="challenge""#),
        "no interactive device, no challenge button"
    );
    assert!(page.body.contains(r#"name="next" value="/settings""#));
    assert!(
        page.body
            .contains(r#"href="/account/login?next=/settings""#)
    );

    let since = now_secs();
    let (right, wrong) = totp_codes();
    let reply = client.step_two(&id, &wrong, Some("/settings")).await;
    reply.assert_page(StatusCode::UNAUTHORIZED);
    assert!(reply.body.contains(r#"role="alert""#));
    assert!(reply.body.contains("Invalid token."));
    assert!(reply.input("otp-token").contains(r#"aria-invalid="true""#));
    assert!(
        !contains_word(&reply.body, &wrong),
        "the code is not echoed"
    );

    let cookie = client.cookie.clone();
    let reply = client.step_two(&id, &right, Some("/settings")).await;
    reply.assert_redirect("/settings");
    assert_ne!(client.cookie, cookie, "the session id is cycled");

    // Verified now; step two is over.
    let verify = client.get("/account/verify").await;
    verify.assert_page(StatusCode::OK);
    assert!(verify.body.contains("This session is already verified."));
    client
        .get("/account/login/otp")
        .await
        .assert_redirect("/account/verify");

    // Log out, log in again, and replay the spent code.
    let csrf = verify.csrf();
    client
        .post("/account/logout", &[("csrf_token", &csrf)])
        .await
        .assert_redirect("/account/login?logged_out=1");
    assert_eq!(client.cookie, None, "the session cookie is removed");
    let page = client.get("/account/login?logged_out=1").await;
    assert!(page.body.contains("You have been logged out."));
    client
        .get("/account/verify")
        .await
        .assert_redirect("/account/login");

    client.log_in_pending("alice").await;
    let replay = client.step_two(&id, &right, None).await;
    // Unless the code is by chance also that of a later step, which the server may rightly
    // accept.
    let totp = Totp::new(
        &Secret::from_bytes(TOTP_KEY).unwrap(),
        TotpParams::default(),
    )
    .unwrap();
    if !otp_test_support::totp_code_repeats(&totp, &right, since) {
        replay.assert_page(StatusCode::UNAUTHORIZED);
        assert!(replay.body.contains("Invalid token."));
    }
}

#[tokio::test]
async fn next_is_followed_only_on_this_site() {
    let app = app().await;
    let device = app.totp_device("alice").await;
    let mut client = app.client();

    let page = client.get("/account/login?next=//evil.example").await;
    page.assert_page(StatusCode::OK);
    assert!(!page.body.contains(r#"name="next""#));
    assert!(!page.body.contains("evil.example"));

    for evil in ["//evil.example", "https://evil.example/", "/\\evil.example"] {
        let mut client = app.client();
        client
            .log_in("bob", "secret", Some(evil))
            .await
            .assert_redirect("/");
    }

    client
        .log_in("alice", "secret", Some("//evil.example"))
        .await
        .assert_redirect("/account/login/otp");
    let (right, _) = totp_codes();
    client
        .step_two(&device.id.to_string(), &right, Some("//evil.example"))
        .await
        .assert_redirect("/");
}

#[tokio::test]
async fn the_verify_page_verifies_a_logged_in_user() {
    let app = app().await;
    let mut client = app.client();

    // Anonymous: to the login page, with `next`.
    client
        .get("/account/verify?next=/reports")
        .await
        .assert_redirect("/account/login?next=/reports");

    // Logged in by the password alone; a device is added afterwards.
    client
        .log_in("bob", "secret", None)
        .await
        .assert_redirect("/");
    let device = app.totp_device("bob").await;
    let id = device.id.to_string();

    let page = client.get("/account/verify?next=/reports").await;
    page.assert_page(StatusCode::OK);
    assert!(page.body.contains(r#"action="/account/verify""#));
    assert!(page.body.contains(r#"<label for="otp-token">"#));
    assert!(
        page.input("otp-token")
            .contains(r#"autocomplete="one-time-code""#)
    );
    assert!(page.body.contains(r#"name="next" value="/reports""#));
    assert!(!page.body.contains("already verified"));
    // A log-out button, with its own CSRF field.
    assert!(page.body.contains(r#"action="/account/logout""#));

    let (right, wrong) = totp_codes();
    let reply = client
        .second_factor("/account/verify", &id, &wrong, "verify", Some("/reports"))
        .await;
    reply.assert_page(StatusCode::UNAUTHORIZED);
    assert!(reply.body.contains("Invalid token."));

    // A device of someone else, or none at all.
    let reply = client
        .second_factor("/account/verify", "totp/999", &right, "verify", None)
        .await;
    reply.assert_page(StatusCode::BAD_REQUEST);
    assert!(reply.body.contains("Please choose one of your devices."));
    let reply = client
        .second_factor("/account/verify", &id, "", "verify", None)
        .await;
    reply.assert_page(StatusCode::BAD_REQUEST);
    assert!(reply.body.contains("Please enter your OTP token."));

    let cookie = client.cookie.clone();
    client
        .second_factor("/account/verify", &id, &right, "verify", Some("/reports"))
        .await
        .assert_redirect("/reports");
    assert_ne!(client.cookie, cookie);
    let page = client.get("/account/verify").await;
    assert!(page.body.contains("This session is already verified."));
}

#[tokio::test]
async fn step_two_without_a_login_under_way_goes_back_to_step_one() {
    let app = app().await;
    app.totp_device("alice").await;
    let mut client = app.client();
    client
        .get("/account/login/otp?next=/x")
        .await
        .assert_redirect("/account/login?next=/x");

    client.log_in_pending("alice").await;
    let page = client.get("/account/login/otp").await;
    let csrf = page.csrf();

    // Eleven minutes later (the default timeout is ten).
    app.web_clock.advance(Duration::from_secs(11 * 60));
    client
        .post(
            "/account/login/otp",
            &[
                ("device", "totp/1"),
                ("token", "123456"),
                ("csrf_token", &csrf),
                ("next", "/x"),
            ],
        )
        .await
        .assert_redirect("/account/login?expired=1&next=/x");
    let page = client.get("/account/login?expired=1&next=/x").await;
    page.assert_page(StatusCode::OK);
    assert!(page.body.contains("Your login took too long."));
    assert!(page.body.contains(r#"role="status""#));
    // The pending login is gone.
    client
        .get("/account/login/otp")
        .await
        .assert_redirect("/account/login");
}

#[tokio::test]
async fn repeated_failures_are_throttled_with_retry_after() {
    let mut options = Options::default();
    options.settings.totp.throttle_factor = Duration::from_secs(60);
    let app = app_with(options).await;
    let device = app.totp_device("alice").await;
    let id = device.id.to_string();
    let mut client = app.client();
    client.log_in_pending("alice").await;
    let (right, wrong) = totp_codes();
    client
        .step_two(&id, &wrong, None)
        .await
        .assert_page(StatusCode::UNAUTHORIZED);
    let reply = client.step_two(&id, &right, None).await;
    reply.assert_page(StatusCode::TOO_MANY_REQUESTS);
    let seconds = reply.retry_after();
    assert!((1..=60).contains(&seconds), "{seconds}");
    assert!(
        reply
            .body
            .contains("Verification temporarily disabled because of 1 failed attempt")
    );
    assert!(reply.body.contains("You can try again in"));
}

/// The account's challenges of the hour used up: the wait is told in minutes.
#[tokio::test]
async fn the_hourly_challenge_limit_is_told_in_minutes() {
    let outbox = Arc::new(Outbox::default());
    let mut options = Options {
        mailer: Some(outbox.clone()),
        ..Options::default()
    };
    options.settings.challenges_per_hour = 1;
    let app = app_with(options).await;
    let mut devices = Vec::new();
    for name in ["work mail", "home mail"] {
        let device = app.email_device("carol", name).await;
        devices.push(device.id.to_string());
    }
    let mut client = app.client();
    client.log_in("carol", "secret", None).await;
    let sent = client.challenge(&devices[0], None).await;
    sent.assert_page(StatusCode::OK);
    // The other device has no cooldown of its own, but the hour's one challenge is spent.
    let refused = client.challenge(&devices[1], None).await;
    refused.assert_page(StatusCode::TOO_MANY_REQUESTS);
    let seconds = refused.retry_after();
    assert!((3_590..=3_600).contains(&seconds), "{seconds}");
    assert!(refused.body.contains("You can try again in 60 minutes."));
    assert_eq!(outbox.0.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_email_device_gets_a_send_me_a_code_button() {
    let outbox = Arc::new(Outbox::default());
    let app = app_with(Options {
        mailer: Some(outbox.clone()),
        ..Options::default()
    })
    .await;
    let email = app.email_device("carol", "work mail").await;
    let totp = app.totp_device("carol").await;
    let mut client = app.client();
    client
        .log_in("carol", "secret", Some("/inbox"))
        .await
        .assert_redirect("/account/login/otp?next=/inbox");

    let page = client.get("/account/login/otp?next=/inbox").await;
    page.assert_page(StatusCode::OK);
    assert!(page.body.contains(r#"<label for="otp-device">"#));
    assert!(
        page.body
            .contains(r#"<select id="otp-device" name="device">"#)
    );
    assert!(page.body.contains("work mail (email)"));
    assert!(page.body.contains("phone (authenticator app)"));
    assert!(page.body.contains(
        r#"<button type="submit" name="action" value="challenge" class="otp-button otp-secondary" formnovalidate>Send me a code</button>"#
    ));

    let email_id = email.id.to_string();
    let reply = client.challenge(&email_id, Some("/inbox")).await;
    reply.assert_page(StatusCode::OK);
    assert!(reply.body.contains("A code was sent."));
    assert!(
        reply
            .body
            .contains(&format!(r#"value="{email_id}" selected"#)),
        "the challenged device stays selected"
    );
    let code = outbox.0.lock().unwrap().pop().expect("an email");

    // Asking again at once: the cooldown, with Retry-After.
    let again = client.challenge(&email_id, None).await;
    again.assert_page(StatusCode::TOO_MANY_REQUESTS);
    assert!(again.header(header::RETRY_AFTER).is_some());
    assert!(again.body.contains("A code was sent recently."));
    assert!(again.body.contains("You can try again in 60 seconds."));

    // Challenging a device that is not interactive.
    let not_interactive = client.challenge(&totp.id.to_string(), None).await;
    not_interactive.assert_page(StatusCode::BAD_REQUEST);
    assert!(not_interactive.body.contains("not interactive"));

    client
        .step_two(&email_id, &code, Some("/inbox"))
        .await
        .assert_redirect("/inbox");
}

#[tokio::test]
async fn a_failed_challenge_does_not_leak_the_mailers_error() {
    // No mailer: otp-core fails the delivery with "no mailer is configured".
    let app = app().await;
    let email = app.email_device("dave", "mail").await;
    let mut client = app.client();
    client.log_in_pending("dave").await;
    let reply = client.challenge(&email.id.to_string(), None).await;
    reply.assert_page(StatusCode::BAD_GATEWAY);
    assert!(reply.body.contains("The code could not be sent."));
    assert!(!reply.body.to_lowercase().contains("mailer"));
}

#[tokio::test]
async fn backup_codes_get_a_text_keyboard_and_work_in_step_two() {
    let app = app().await;
    app.totp_device("alice").await;
    let (backup, codes) = app
        .otp
        .create_backup_codes("alice", "backup", Some(3))
        .await
        .unwrap();
    let backup_id = backup.id.to_string();
    let mut client = app.client();
    client.log_in_pending("alice").await;
    let page = client.get("/account/login/otp").await;
    let link = format!(r#"href="/account/login/otp?device={backup_id}""#);
    assert!(page.body.contains(&link), "{}", page.body);
    assert!(page.input("otp-token").contains(r#"inputmode="numeric""#));

    let page = client
        .get(&format!("/account/login/otp?device={backup_id}"))
        .await;
    page.assert_page(StatusCode::OK);
    assert!(page.input("otp-token").contains(r#"inputmode="text""#));
    assert!(!page.body.contains("Use a backup code"));

    client
        .step_two(&backup_id, &codes[0].to_string(), None)
        .await
        .assert_redirect("/");
}

// ---------------------------------------------------------------------------------------------
// Malformed requests and overrides.

#[tokio::test]
async fn malformed_forms_get_a_400_page() {
    let app = app().await;
    let mut client = app.client();
    client.get("/account/login").await;
    for path in [
        "/account/login",
        "/account/login/otp",
        "/account/verify",
        "/account/logout",
    ] {
        // Not a form at all.
        let reply = client
            .post_raw(path, "application/json", r#"{"username": "alice"}"#)
            .await;
        reply.assert_page(StatusCode::BAD_REQUEST);
        assert!(reply.body.contains("The form could not be read"), "{path}");
        // No body, no content type.
        let reply = client
            .send(Request::post(path).body(Body::empty()).unwrap())
            .await;
        reply.assert_page(StatusCode::BAD_REQUEST);
    }
    // A field given twice.
    let reply = client
        .post_raw(
            "/account/login",
            "application/x-www-form-urlencoded",
            "username=a&username=b&password=x",
        )
        .await;
    reply.assert_page(StatusCode::BAD_REQUEST);
    // Bytes that are not UTF-8.
    let reply = client
        .post_raw(
            "/account/login",
            "application/x-www-form-urlencoded",
            &b"username=%FF%FE&password=\xff"[..],
        )
        .await;
    assert!(
        reply.status == StatusCode::BAD_REQUEST || reply.status == StatusCode::FORBIDDEN,
        "{}",
        reply.status
    );
}

#[tokio::test]
async fn templates_are_overridden_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("login.html"),
        r#"{% extends "base.html" %}{% block heading %}Welcome back{% endblock %}{% block content %}<p>{{ site_name }} custom</p>{% endblock %}"#,
    )
    .unwrap();
    let config = WebConfig {
        template_dir: Some(dir.path().to_owned()),
        site_name: "Example <Corp>".into(),
        ..WebConfig::default()
    }
    .with_mount("/auth");
    let app = app_with(Options {
        config,
        ..Options::default()
    })
    .await;
    let mut client = app.client();
    let page = client.get("/auth/login").await;
    page.assert_page(StatusCode::OK);
    assert!(page.body.contains("Welcome back"));
    assert!(page.body.contains("<p>Example &lt;Corp&gt; custom</p>"));
    assert!(page.body.contains(r#"href="/auth/otp.css""#));
    assert!(
        !page.body.contains(r#"name="csrf_token""#),
        "the override has no form"
    );

    // The other pages are still the built-in ones, under the new mount.
    let reply = client
        .post(
            "/auth/login",
            &[("username", "alice"), ("password", "secret")],
        )
        .await;
    reply.assert_page(StatusCode::FORBIDDEN);
    assert!(reply.body.contains(r#"href="/auth/login""#));

    // A template that does not parse is refused when the web layer is made.
    std::fs::write(dir.path().join("verify.html"), "{% block %}").unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("otp.db").display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let otp = Otp::builder(store, KeyRing::generate()).build().unwrap();
    let broken = WebConfig {
        template_dir: Some(dir.path().to_owned()),
        ..WebConfig::default()
    };
    assert!(matches!(
        OtpWeb::with_config(otp, SessionAccounts::new(TestPasswords), broken),
        Err(otp_axum::WebError::Template(_))
    ));
}
