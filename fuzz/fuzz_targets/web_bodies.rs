//! The bodies the web layer reads from the network: the JSON API (`POST /api/v1/session`,
//! `/api/v1/otp/verify`, `/api/v1/otp/challenge`) and the HTML forms (`POST /account/login`,
//! `/account/login/otp`), with arbitrary bytes under arbitrary content types, origins and
//! cookies, in sessions at each stage of a login.
//!
//! The app is built once (a `static OnceLock`): otp-core on a SQLite file in a directory of its
//! own (on `/dev/shm` where it exists, see `database_dir`), the SQL session store and
//! `otp_axum::session_layer` as `otp-server` uses them (cookies without `Secure`, for plain
//! HTTP), `OtpLayer`, the JSON routes and the HTML pages, driven in-process with
//! `tower::ServiceExt::oneshot` on a current-thread tokio runtime.
//!
//! Users: `alice` (password `secret`) has a TOTP device, an email device and backup codes;
//! `bob` (password `secret`) has none. Throttling is off and the failure budget is huge, so
//! that wrong codes do not lock the fuzzer out of the deeper states.
//!
//! Before the fuzzed request the harness may open a session (`GET /account/login`, keeping the
//! cookie and the CSRF token) and log alice or bob in with the password form. In the body,
//! `{csrf}`, `{totp}`, `{email}`, `{static}` and `{code}` become the session's CSRF token,
//! alice's device ids and her current TOTP code, and the CSRF field can be appended to a form.
//!
//! Checks: no panic, and no response is a 5xx. `FUZZ_WEB_TRACE=1` prints each answer.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use axum::Router;
use axum::body::Body;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use otp_axum::{
    AccountsError, OtpLayer, OtpWeb, PasswordVerifier, SessionAccounts, SqlSessionStore, WebConfig,
};
use otp_core::{
    BoxFuture, Device, FailureBudget, KeyRing, Mailer, Otp, OutgoingEmail, Settings, Store,
    TotpOptions,
};
use otp_oath::{Secret, Totp, TotpParams};
use tower::ServiceExt;

const TOTP_KEY: &[u8] = b"12345678901234567890";

#[derive(Debug)]
struct Passwords;

impl PasswordVerifier for Passwords {
    fn verify_password<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, AccountsError>> {
        let ok = ["alice", "bob"].contains(&username) && password == "secret";
        Box::pin(async move { Ok(ok.then(|| username.to_owned())) })
    }
}

/// A mailer that accepts every message and keeps none.
#[derive(Debug)]
struct NullMailer;

impl Mailer for NullMailer {
    fn send<'a>(&'a self, _email: &'a OutgoingEmail) -> BoxFuture<'a, Result<(), otp_core::Error>> {
        Box::pin(async { Ok(()) })
    }
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    router: Router,
    totp: Totp,
    devices: [String; 3],
    /// `FUZZ_WEB_TRACE=1`: print each fuzzed request's route and answer (to check seeds).
    trace: bool,
}

const DIR_PREFIX: &str = "otp-fuzz-web_bodies-";

/// A fresh directory for the database, `otp-fuzz-web_bodies-PID` on `/dev/shm` (else the
/// temporary directory). libFuzzer ends the process with `exit`, so statics are never dropped
/// and the directory stays behind: each start removes those of processes that are gone.
fn database_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let parent = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    for entry in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = parent.join(format!("{DIR_PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = database_dir();
        let url = format!("sqlite://{}", dir.join("otp.db").display());
        let (router, devices) = runtime.block_on(async {
            let store = Store::connect(&url).await.unwrap();
            store.migrate().await.unwrap();
            let sessions = SqlSessionStore::new(store.clone());
            sessions.migrate().await.unwrap();
            let mut settings = Settings::default();
            settings.totp.throttle_factor = Duration::ZERO;
            settings.hotp.throttle_factor = Duration::ZERO;
            settings.static_codes.throttle_factor = Duration::ZERO;
            settings.email.throttle_factor = Duration::ZERO;
            settings.email.cooldown = Duration::ZERO;
            settings.failure_budget = FailureBudget { limit: u32::MAX };
            let otp = Otp::builder(store, KeyRing::generate())
                .with_settings(settings)
                .with_mailer(std::sync::Arc::new(NullMailer))
                .build()
                .unwrap();
            let totp: Device = otp
                .create_totp_device(
                    "alice",
                    "phone",
                    Some(Secret::from_bytes(TOTP_KEY).unwrap()),
                    TotpOptions::default(),
                    true,
                )
                .await
                .unwrap();
            let email = otp
                .create_email_device("alice", "mail", "alice@example.com", true)
                .await
                .unwrap();
            let (backup, _codes) = otp
                .create_backup_codes("alice", "backup", None)
                .await
                .unwrap();
            let web =
                OtpWeb::with_config(otp, SessionAccounts::new(Passwords), WebConfig::default())
                    .unwrap();
            let router = Router::new()
                .nest("/api/v1", otp_axum::json::routes())
                .merge(otp_axum::html::routes(web.config()))
                .layer(OtpLayer::new(web))
                .layer(otp_axum::session_layer(sessions, false));
            (
                router,
                [
                    totp.id.to_string(),
                    email.id.to_string(),
                    backup.id.to_string(),
                ],
            )
        });
        let totp = Totp::new(
            &Secret::from_bytes(TOTP_KEY).unwrap(),
            TotpParams::default(),
        )
        .unwrap();
        Harness {
            runtime,
            router,
            totp,
            devices,
            trace: std::env::var_os("FUZZ_WEB_TRACE").is_some_and(|v| v == "1"),
        }
    })
}

#[derive(Debug, Arbitrary, Clone, Copy)]
enum Route {
    ApiSession,
    ApiVerify,
    ApiChallenge,
    LoginForm,
    LoginOtpForm,
}

impl Route {
    fn path(self) -> &'static str {
        match self {
            Self::ApiSession => "/api/v1/session",
            Self::ApiVerify => "/api/v1/otp/verify",
            Self::ApiChallenge => "/api/v1/otp/challenge",
            Self::LoginForm => "/account/login",
            Self::LoginOtpForm => "/account/login/otp",
        }
    }

    fn is_form(self) -> bool {
        matches!(self, Self::LoginForm | Self::LoginOtpForm)
    }
}

#[derive(Debug, Arbitrary)]
enum ContentType {
    Absent,
    Json,
    JsonCharset,
    Form,
    FormCharset,
    Multipart,
    Text,
    /// The first line of the rest of the input.
    Other,
}

impl ContentType {
    fn header(&self, rest: &mut &[u8]) -> Option<HeaderValue> {
        let text = match self {
            Self::Absent => return None,
            Self::Json => "application/json",
            Self::JsonCharset => "application/json; charset=utf-8",
            Self::Form => "application/x-www-form-urlencoded",
            Self::FormCharset => "application/x-www-form-urlencoded; charset=UTF-8",
            Self::Multipart => "multipart/form-data; boundary=x",
            Self::Text => "text/plain",
            Self::Other => return HeaderValue::from_bytes(take_line(rest)).ok(),
        };
        Some(HeaderValue::from_static(text))
    }
}

#[derive(Debug, Arbitrary)]
enum Stage {
    /// No cookie.
    NoSession,
    /// A session with a CSRF token (the login page was shown).
    Fresh,
    /// Alice past the password step: a second factor is awaited.
    AlicePartial,
    /// Bob, who has no device, logged in by his password.
    BobLoggedIn,
}

#[derive(Debug, Arbitrary)]
enum Cookie {
    /// The session's own cookie, if it has one.
    Session,
    None,
    /// The next line of the rest of the input.
    Arbitrary,
}

#[derive(Debug, Arbitrary)]
enum Origin {
    Absent,
    SameSite,
    CrossSite,
    CrossFetch,
    /// The next line of the rest of the input.
    Arbitrary,
}

/// Five 4-byte enum tags and a byte, then the rest: the lines that `Other` and `Arbitrary`
/// choices take, in the order content type, cookie, origin, and then the body (see
/// `fuzz/seeds.py`).
#[derive(Debug, Arbitrary)]
struct Input<'a> {
    route: Route,
    stage: Stage,
    content_type: ContentType,
    cookie: Cookie,
    origin: Origin,
    append_csrf: bool,
    rest: &'a [u8],
}

/// The bytes up to the first `\n` (or all), which are removed from `rest` with the `\n`.
fn take_line<'a>(rest: &mut &'a [u8]) -> &'a [u8] {
    let (line, after) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (*rest, &[][..]),
    };
    *rest = after;
    line
}

/// A session as the harness set it up: its cookie (`name=value`) and CSRF token.
#[derive(Default)]
struct Session {
    cookie: Option<String>,
    csrf: String,
}

async fn call(router: &Router, request: Request<Body>) -> (StatusCode, Option<String>, String) {
    let response: Response<Body> = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, cookie, String::from_utf8_lossy(&body).into_owned())
}

fn csrf_in(page: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = page.find(marker).expect("a CSRF field on the login page") + marker.len();
    let end = page[start..].find('"').unwrap() + start;
    page[start..end].to_owned()
}

async fn open_session(router: &Router) -> Session {
    let request = Request::get("/account/login")
        .header(header::HOST, "localhost")
        .body(Body::empty())
        .unwrap();
    let (status, cookie, page) = call(router, request).await;
    assert_eq!(status, StatusCode::OK);
    Session {
        cookie: Some(cookie.expect("a session cookie")),
        csrf: csrf_in(&page),
    }
}

async fn log_in(router: &Router, session: &mut Session, username: &str) {
    let body = format!(
        "username={username}&password=secret&csrf_token={}",
        session.csrf
    );
    let request = Request::post("/account/login")
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, session.cookie.as_deref().unwrap())
        .body(Body::from(body))
        .unwrap();
    let (status, cookie, page) = call(router, request).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    if cookie.is_some() {
        session.cookie = cookie;
    }
}

fn substitute(body: Vec<u8>, h: &Harness, session: &Session) -> Vec<u8> {
    if !body.contains(&b'{') {
        return body;
    }
    let Ok(text) = String::from_utf8(body.clone()) else {
        return body;
    };
    let code = h
        .totp
        .code_at(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64,
        )
        .unwrap()
        .to_string();
    text.replace("{csrf}", &session.csrf)
        .replace("{totp}", &h.devices[0])
        .replace("{email}", &h.devices[1])
        .replace("{static}", &h.devices[2])
        .replace("{code}", &code)
        .into_bytes()
}

fuzz_target!(|input: Input<'_>| {
    let h = harness();
    h.runtime.block_on(async {
        let mut session = match input.stage {
            Stage::NoSession => Session::default(),
            _ => open_session(&h.router).await,
        };
        match input.stage {
            Stage::AlicePartial => log_in(&h.router, &mut session, "alice").await,
            Stage::BobLoggedIn => log_in(&h.router, &mut session, "bob").await,
            _ => {}
        }

        let mut rest = input.rest;
        let content_type = input.content_type.header(&mut rest);
        let cookie = match input.cookie {
            Cookie::Session => session.cookie.clone().map(String::into_bytes),
            Cookie::None => None,
            Cookie::Arbitrary => Some(take_line(&mut rest).to_vec()),
        };
        let origin = match input.origin {
            Origin::Absent => None,
            Origin::SameSite => Some(&b"http://localhost"[..]),
            Origin::CrossSite => Some(&b"https://evil.example"[..]),
            Origin::CrossFetch => None,
            Origin::Arbitrary => Some(take_line(&mut rest)),
        };
        let mut body = substitute(rest.to_vec(), h, &session);
        if input.append_csrf && input.route.is_form() {
            body.extend_from_slice(format!("&csrf_token={}", session.csrf).as_bytes());
        }
        let mut request = Request::post(input.route.path())
            .header(header::HOST, "localhost")
            .body(Body::from(body))
            .unwrap();
        let headers = request.headers_mut();
        if let Some(content_type) = content_type {
            headers.insert(header::CONTENT_TYPE, content_type);
        }
        if let Some(value) = cookie.and_then(|c| HeaderValue::from_bytes(&c).ok()) {
            headers.insert(header::COOKIE, value);
        }
        if let Some(value) = origin.and_then(|o| HeaderValue::from_bytes(o).ok()) {
            headers.insert(header::ORIGIN, value);
        }
        if matches!(input.origin, Origin::CrossFetch) {
            headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        }

        let (status, _, text) = call(&h.router, request).await;
        if h.trace {
            let short: String = text.chars().take(160).collect();
            eprintln!(
                "{} {:?} -> {status}: {short}",
                input.route.path(),
                input.stage
            );
        }
        assert!(
            !status.is_server_error(),
            "{} answered {status}: {text}",
            input.route.path()
        );
    });
});
