//! Test support for the web layer: real databases (a SQLite file in a temporary directory, a
//! fresh PostgreSQL database dropped afterwards), a test app on a frozen clock with the JSON API
//! and guarded test routes, a cookie-keeping client, an SMTP sink, and [`store_tests!`] to run
//! each scenario on both databases.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod client;
pub use otp_test_support::{TestDb, smtp};

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{Request, StatusCode};
use otp_axum::{
    OtpLayer, OtpSession, OtpWeb, PasswordVerifier, SessionAccounts, USER_KEY_SESSION_KEY,
    Verified, WebConfig,
};
use otp_core::{
    BoxFuture, Device, DeviceId, KeyRing, ManualClock, Otp, Settings, SmtpMailer, Store, Timestamp,
    TotpOptions,
};
use otp_oath::Secret;
use serde::Deserialize;
use serde_json::{Value, json};
use tower_sessions::{MemoryStore, SessionManagerLayer};

pub use client::{Client, Reply, SESSION_COOKIE, oneshot, serve};
use smtp::{Received, SmtpServer};

/// The frozen time every app starts at: a whole 30 s TOTP step boundary plus 5 s.
pub const T0: i64 = 1_700_000_010;

/// The TOTP key of every test device (RFC 6238's), so codes are the same on every run.
pub const TOTP_KEY: &str = "3132333435363738393031323334353637383930";

/// The test users: username, password, user key. The key differs from the username, so that
/// tests see which one travels where.
pub const USERS: &[(&str, &str, &str)] = &[
    ("alice", "alice-password", "u-alice"),
    ("bob", "bob-password", "u-bob"),
    ("carol", "carol-password", "u-carol"),
];

/// The password of a test user.
pub fn password_of(username: &str) -> &'static str {
    USERS
        .iter()
        .find(|(name, _, _)| *name == username)
        .map(|(_, password, _)| *password)
        .expect("a test user")
}

/// The app's password check: the fixed users above.
#[derive(Debug, Clone, Default)]
pub struct TestPasswords;

impl PasswordVerifier for TestPasswords {
    fn verify_password<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, otp_axum::AccountsError>> {
        Box::pin(async move {
            Ok(USERS
                .iter()
                .find(|(name, pass, _)| *name == username && *pass == password)
                .map(|(_, _, key)| (*key).to_owned()))
        })
    }
}

/// The framework on a test database with a frozen clock (shared by the framework and the web
/// layer), and the SMTP sink its mailer delivers to, if any.
pub struct Framework {
    pub otp: Otp,
    pub clock: ManualClock,
    pub smtp: Option<SmtpServer>,
}

/// Builds the framework on `db`: migrated store, fresh keys, a clock frozen at [`T0`].
pub async fn framework(db: &TestDb, settings: Settings, with_smtp: bool) -> Framework {
    framework_with_kinds(db, settings, with_smtp, Vec::new()).await
}

/// [`framework`] with more kinds registered after the built-in ones.
pub async fn framework_with_kinds(
    db: &TestDb,
    settings: Settings,
    with_smtp: bool,
    kinds: Vec<Arc<dyn otp_core::DeviceKind>>,
) -> Framework {
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let clock = ManualClock::new(Timestamp::from_unix_secs(T0));
    let mut builder = Otp::builder(store, KeyRing::generate())
        .with_settings(settings)
        .with_clock(Arc::new(clock.clone()));
    for kind in kinds {
        builder = builder.with_kind(kind);
    }
    let smtp = if with_smtp {
        let server = SmtpServer::start().await;
        builder = builder.with_mailer(Arc::new(SmtpMailer::from_url(&server.url()).unwrap()));
        Some(server)
    } else {
        None
    };
    Framework {
        otp: builder.build().expect("build the framework"),
        clock,
        smtp,
    }
}

/// The session layer of the test apps: in memory, plain HTTP.
pub fn session_layer() -> SessionManagerLayer<MemoryStore> {
    SessionManagerLayer::new(MemoryStore::default())
        .with_secure(false)
        .with_name(SESSION_COOKIE)
}

/// The routes of the test app that need `OtpLayer` (not added here), besides the JSON API:
///
/// | route | what |
/// |---|---|
/// | `GET /touch` | writes to the session (an anonymous session with an id before login) |
/// | `GET /protected` | behind `otp_required()` |
/// | `GET /protected-if-configured` | behind `otp_required().if_configured(true)` |
/// | `GET /custom-guard` | behind `otp_required()` with its own login URL and field |
/// | `GET /verified-only` | the `Verified` extractor; returns the user key |
/// | `GET /whoami` | `OtpSession`: `{"user", "verified", "device"}` |
/// | `POST /test/login?user=K[&device=ID]` | the app logs `K` in by itself, then calls `otp_axum::login` |
/// | `POST /test/unverify` | calls `otp_axum::unverify` |
/// | `POST /test/end-other-sessions` | calls `OtpSession::end_other_sessions` (a password change) |
/// | `GET`, `POST /test/stepped-up` | the `SteppedUp` extractor; returns the user key |
/// | `POST /test/manage/{kind}` | `manage::enrol` with `{"count"?}`: `{"id", "confirmed", "codes"}` |
/// | `POST /test/manage/{kind}/{number}/confirm` | `manage::confirm` with `{"token"}` |
/// | `DELETE /test/manage/{kind}/{number}` | `manage::remove` |
/// | (any of the three, refused) | the refusal's status and `{"error": code}` |
pub fn test_routes() -> Router {
    let protected = Router::new()
        .route("/protected", get(protected_page))
        .route_layer(otp_axum::otp_required());
    let if_configured = Router::new()
        .route("/protected-if-configured", get(protected_page))
        .route_layer(otp_axum::otp_required().if_configured(true));
    let custom = Router::new()
        .route("/custom-guard", get(protected_page))
        .route_layer(
            otp_axum::otp_required()
                .login_url("/signin?from=guard")
                .redirect_field("return_to"),
        );
    Router::new()
        .merge(protected)
        .merge(if_configured)
        .merge(custom)
        .route("/touch", get(touch))
        .route("/verified-only", get(verified_only))
        .route("/whoami", get(show_whoami))
        .route("/test/login", post(test_login))
        .route("/test/unverify", post(test_unverify))
        .route("/test/end-other-sessions", post(test_end_other_sessions))
        .route("/test/stepped-up", get(stepped_up).post(stepped_up))
        .route("/test/manage/{kind}", post(manage_enrol))
        .route("/test/manage/{kind}/{number}/confirm", post(manage_confirm))
        .route(
            "/test/manage/{kind}/{number}",
            axum::routing::delete(manage_remove),
        )
}

/// Routes that use the extractors and the guard without `OtpLayer`.
pub fn bare_routes() -> Router {
    Router::new()
        .route("/bare/whoami", get(show_whoami))
        .route("/bare/verified-only", get(verified_only))
        .merge(
            Router::new()
                .route("/bare/protected", get(protected_page))
                .route_layer(otp_axum::otp_required()),
        )
}

async fn protected_page() -> &'static str {
    "protected content"
}

async fn touch(session: tower_sessions::Session) -> Result<&'static str, StatusCode> {
    session
        .insert("touched", true)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok("touched")
}

async fn verified_only(Verified(otp): Verified) -> String {
    format!("verified {}", otp.user_key().unwrap_or("?"))
}

async fn show_whoami(otp: OtpSession) -> Response {
    axum::Json(json!({
        "user": otp.user_key(),
        "authenticated": otp.is_authenticated(),
        "verified": otp.is_verified(),
        "device": otp.device().map(|d| d.id.to_string()),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct TestLogin {
    user: String,
    device: Option<String>,
}

async fn test_login(otp: OtpSession, Query(query): Query<TestLogin>) -> Response {
    let session = otp.session();
    if session
        .insert(USER_KEY_SESSION_KEY, &query.user)
        .await
        .is_err()
    {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let Some(device) = query.device else {
        return axum::Json(json!({ "logged_in": query.user })).into_response();
    };
    let id: DeviceId = device.parse().expect("a device id");
    let device = otp
        .web()
        .otp()
        .device(&id)
        .await
        .expect("the store answers")
        .expect("the device exists");
    let verified = otp_axum::login(session, &query.user, &device)
        .await
        .expect("the session store answers");
    axum::Json(json!({ "logged_in": query.user, "verified_now": verified })).into_response()
}

async fn test_unverify(otp: OtpSession) -> StatusCode {
    match otp_axum::unverify(otp.session()).await {
        Ok(()) => StatusCode::NO_CONTENT,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn manage_refused(err: otp_axum::manage::ManageError) -> Response {
    match err {
        otp_axum::manage::ManageError::Refused(refusal) => (
            refusal.status(),
            axum::Json(json!({ "error": refusal.code() })),
        )
            .into_response(),
        otp_axum::manage::ManageError::Failed(err) => err.into_response(),
    }
}

async fn manage_enrol(
    mut otp: OtpSession,
    axum::extract::Path(kind): axum::extract::Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let count = body["count"].as_u64().map(|n| n as usize);
    let input = otp_core::EnrolInput::count(count);
    match otp_axum::manage::enrol(&mut otp, &kind, None, &input).await {
        Ok((device, codes)) => axum::Json(json!({
            "id": device.id.to_string(),
            "confirmed": device.confirmed,
            "codes": codes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(err) => manage_refused(err),
    }
}

async fn manage_device(
    otp: &OtpSession,
    kind: &str,
    number: &str,
) -> Result<Device, otp_axum::manage::ManageError> {
    let id: DeviceId = format!("{kind}/{number}")
        .parse()
        .map_err(|_| otp_axum::manage::Refusal::NotFound)?;
    otp_axum::manage::find(otp, &id).await
}

async fn manage_confirm(
    mut otp: OtpSession,
    axum::extract::Path((kind, number)): axum::extract::Path<(String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let token = body["token"].as_str().unwrap_or_default().to_owned();
    let result = match manage_device(&otp, &kind, &number).await {
        Ok(device) => otp_axum::manage::confirm(&mut otp, &device, &token).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(device) => axum::Json(json!({ "confirmed": device.confirmed })).into_response(),
        Err(err) => manage_refused(err),
    }
}

async fn manage_remove(
    otp: OtpSession,
    axum::extract::Path((kind, number)): axum::extract::Path<(String, String)>,
) -> Response {
    let result = match manage_device(&otp, &kind, &number).await {
        Ok(device) => otp_axum::manage::remove(&otp, &device).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => manage_refused(err),
    }
}

async fn stepped_up(otp_axum::step_up::SteppedUp(otp): otp_axum::step_up::SteppedUp) -> String {
    format!("stepped up {}", otp.user_key().unwrap_or("?"))
}

async fn test_end_other_sessions(mut otp: OtpSession) -> StatusCode {
    match otp.end_other_sessions().await {
        Ok(true) => StatusCode::NO_CONTENT,
        Ok(false) => StatusCode::UNAUTHORIZED,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What a test app is made of.
pub struct AppBuilder {
    db: TestDb,
    settings: Settings,
    config: WebConfig,
    smtp: bool,
    kinds: Vec<Arc<dyn otp_core::DeviceKind>>,
}

impl AppBuilder {
    /// Registers a kind of device after the built-in ones.
    pub fn kind(mut self, kind: Arc<dyn otp_core::DeviceKind>) -> Self {
        self.kinds.push(kind);
        self
    }

    /// Changes the framework's settings.
    pub fn settings(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(&mut self.settings);
        self
    }

    /// Changes the web layer's configuration.
    pub fn config(mut self, change: impl FnOnce(&mut WebConfig)) -> Self {
        change(&mut self.config);
        self
    }

    /// Sends email through an SMTP sink on loopback.
    pub fn smtp(mut self) -> Self {
        self.smtp = true;
        self
    }

    pub async fn build(self) -> TestApp {
        let Framework { otp, clock, smtp } =
            framework_with_kinds(&self.db, self.settings, self.smtp, self.kinds).await;
        let web = OtpWeb::with_config(
            otp.clone(),
            SessionAccounts::new(TestPasswords),
            self.config,
        )
        .expect("the web layer")
        .with_clock(Arc::new(clock.clone()));
        let router = Router::new()
            .nest(
                "/api/v1",
                otp_axum::json::routes().merge(otp_axum::manage::json::routes()),
            )
            .merge(test_routes())
            .layer(OtpLayer::new(web.clone()))
            .merge(bare_routes())
            .layer(session_layer());
        TestApp {
            otp,
            web,
            clock,
            smtp,
            router,
            db: self.db,
        }
    }
}

/// A test app: the JSON API at `/api/v1`, the test routes, `OtpLayer` and the session layer.
pub struct TestApp {
    pub otp: Otp,
    pub web: OtpWeb,
    pub clock: ManualClock,
    pub smtp: Option<SmtpServer>,
    pub router: Router,
    pub db: TestDb,
}

impl TestApp {
    pub fn builder(db: TestDb) -> AppBuilder {
        AppBuilder {
            db,
            settings: Settings::default(),
            config: WebConfig::default(),
            smtp: false,
            kinds: Vec::new(),
        }
    }

    pub async fn new(db: TestDb) -> Self {
        Self::builder(db).build().await
    }

    /// Serves the app on 127.0.0.1:0 and returns a client of it without cookies.
    pub async fn client(&self) -> Client {
        Client::new(&serve(self.router.clone()).await)
    }

    /// Calls the app in-process.
    pub async fn oneshot(&self, request: Request<Body>) -> Reply {
        oneshot(&self.router, request).await
    }

    pub fn advance(&self, duration: Duration) {
        self.clock.advance(duration);
    }

    pub fn smtp(&self) -> &SmtpServer {
        self.smtp.as_ref().expect("the app was built with .smtp()")
    }

    /// A confirmed TOTP device with [`TOTP_KEY`].
    pub async fn totp_device(&self, user_key: &str, name: &str) -> Device {
        self.otp
            .create_totp_device(
                user_key,
                name,
                Some(Secret::from_hex(TOTP_KEY).unwrap()),
                TotpOptions::default(),
                true,
            )
            .await
            .expect("create a TOTP device")
    }

    /// An unconfirmed TOTP device (enrolment not finished).
    pub async fn unconfirmed_totp_device(&self, user_key: &str) -> Device {
        self.otp
            .create_totp_device(
                user_key,
                "new phone",
                Some(Secret::from_hex(TOTP_KEY).unwrap()),
                TotpOptions::default(),
                false,
            )
            .await
            .expect("create a TOTP device")
    }

    /// A confirmed email device named `mail`, sending to `address`.
    pub async fn email_device(&self, user_key: &str, address: &str) -> Device {
        self.otp
            .create_email_device(user_key, "mail", address, true)
            .await
            .expect("create an email device")
    }

    /// The device as stored now.
    pub async fn reload(&self, device: &Device) -> Device {
        self.otp
            .device(&device.id)
            .await
            .expect("the store answers")
            .expect("the device exists")
    }

    /// The device of id `id` (`KIND/NUMBER`), as stored.
    pub async fn reload_id(&self, id: &str) -> Device {
        let id: DeviceId = id.parse().expect("a device id");
        self.otp
            .device(&id)
            .await
            .expect("the store answers")
            .expect("the device exists")
    }

    /// The TOTP code of `device` at the clock's time.
    pub fn code(&self, device: &Device) -> String {
        totp_code(&self.otp, device, &self.clock)
    }

    /// A 6-digit code that no step near the clock's time accepts.
    pub fn wrong_code(&self, device: &Device) -> String {
        wrong_totp_code(&self.otp, device, &self.clock)
    }
}

fn code_at(otp: &Otp, device: &Device, unix_secs: i64) -> String {
    let totp = otp
        .provisioning_uri(device)
        .expect("a TOTP device")
        .to_totp()
        .expect("a TOTP");
    totp.code_at(unix_secs).expect("a code").to_string()
}

/// The TOTP code of `device` at `clock`'s time.
pub fn totp_code(otp: &Otp, device: &Device, clock: &ManualClock) -> String {
    use otp_core::Clock;
    code_at(otp, device, clock.now().unix_secs())
}

/// A 6-digit code that no step near `clock`'s time accepts for `device`.
pub fn wrong_totp_code(otp: &Otp, device: &Device, clock: &ManualClock) -> String {
    use otp_core::Clock;
    let now = clock.now().unix_secs();
    let near: Vec<String> = (-5..=5)
        .map(|step| code_at(otp, device, now + step * 30))
        .collect();
    (0..1_000_000u32)
        .map(|n| format!("{:06}", (n * 7919 + 123_457) % 1_000_000))
        .find(|candidate| !near.contains(candidate))
        .expect("a wrong code")
}

/// The code of a mail sent with the default body template (`{token}` alone on its line).
pub fn code_in(mail: &Received) -> String {
    let body = mail.data.split_once("\r\n\r\n").expect("a body").1;
    body.lines()
        .map(str::trim)
        .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no 6-digit code line in {body:?}"))
        .to_owned()
}

/// The JSON API's password step.
pub async fn post_password(client: &Client, username: &str, password: &str) -> Reply {
    client
        .post_json(
            "/api/v1/session",
            &json!({ "username": username, "password": password }),
        )
        .await
}

/// The JSON API's password step with the user's own password.
pub async fn post_right_password(client: &Client, username: &str) -> Reply {
    post_password(client, username, password_of(username)).await
}

/// The JSON API's verification step.
pub async fn post_token(client: &Client, device: &DeviceId, token: &str) -> Reply {
    client
        .post_json(
            "/api/v1/otp/verify",
            &json!({ "device": device.to_string(), "token": token }),
        )
        .await
}

/// The JSON API's challenge step.
pub async fn post_challenge(client: &Client, device: &DeviceId) -> Reply {
    client
        .post_json(
            "/api/v1/otp/challenge",
            &json!({ "device": device.to_string() }),
        )
        .await
}

/// `GET /api/v1/me` as JSON: `{"user", "verified", "device"}`.
pub async fn me(client: &Client) -> Value {
    client.get("/api/v1/me").await.json()
}

/// `GET /whoami` as JSON: `{"user", "authenticated", "verified", "device"}`.
pub async fn whoami(client: &Client) -> Value {
    client.get("/whoami").await.json()
}

/// Asserts that `GET path` (as a JSON client) is 403 `otp_required`.
pub async fn assert_otp_required(client: &Client, path: &str, what: &str) {
    client
        .get(path)
        .await
        .assert_error(StatusCode::FORBIDDEN, "otp_required", what);
}

/// Asserts that `GET /api/v1/me` is 401 `login_required`: nobody is logged in on `client`'s
/// session (a half-done login included).
pub async fn assert_not_logged_in(client: &Client, what: &str) {
    client
        .get("/api/v1/me")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "login_required", what);
}

/// Logs `username` in through the JSON API with `device`'s current TOTP code and checks that
/// the session ends verified.
pub async fn log_in_verified(app: &TestApp, client: &Client, username: &str, device: &Device) {
    let reply = post_right_password(client, username).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.json()["otp_required"], true);
    let reply = post_token(client, &device.id, &app.code(device)).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.json(), json!({ "verified": true }));
}
