//! The admin (`/admin`), in-process with `oneshot` and a cookie-keeping client, on SQLite and
//! (with `OTP_TEST_POSTGRES_URL`) PostgreSQL: who gets in, search, devices of every kind made,
//! changed, reset and deleted for another user, the account's failure budget, hidden secrets,
//! 404s for bad ids, CSRF, and caching.

mod common;

use std::future::Future;

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use otp_core::{Device, DeviceId, VerifyOutcome};
use otp_oath::{Secret, Totp, TotpParams};
use otp_server::app::{self, AppState, NewUser, ServerConfig, User};
use tower::ServiceExt;
use zeroize::Zeroizing;

const PASSWORD: &str = "correct horse battery";
const HOST: &str = "localhost";
const ORIGIN: &str = "http://localhost";

/// Where a test's database is, owned so that the test's future can hold it.
#[derive(Clone)]
struct Db {
    url: String,
    secret_key: Option<String>,
}

/// Runs `test` on a database from `db`, in a runtime of its own (the PostgreSQL database is
/// created and dropped outside it).
fn run<F, Fut>(db: &mut common::TestDb, test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    common::block_on(test(Db {
        url: db.url.clone(),
        secret_key: db.is_postgres().then(|| db.keys()),
    }));
}

crate::database_tests!(
    run: run;
    access_is_for_verified_staff_only,
    users_are_searched_and_paged,
    devices_of_every_kind_are_created_for_another_user,
    devices_are_edited_reset_and_deleted,
    the_account_budget_is_restored,
    backup_codes_are_added_and_the_staff_flag_toggled,
    hidden_sensitive_data_stays_hidden,
    bad_ids_are_404,
    state_changes_need_the_csrf_token,
    secrets_are_never_cached,
);

// ---------------------------------------------------------------------------------------------
// Harness.

struct World {
    router: Router,
    state: AppState,
}

/// The default configuration on `db`.
fn config(db: &Db) -> ServerConfig {
    ServerConfig {
        database_url: db.url.clone(),
        secret_key: db.secret_key.clone().map(Zeroizing::new),
        ..ServerConfig::default()
    }
}

async fn world(db: &Db, hide_sensitive: bool) -> World {
    world_with(ServerConfig {
        admin_hide_sensitive_data: hide_sensitive,
        ..config(db)
    })
    .await
}

async fn world_with(config: ServerConfig) -> World {
    let (router, state) = app::build(config).await.expect("the app builds");
    World { router, state }
}

impl World {
    async fn user(&self, username: &str, email: Option<&str>, staff: bool) -> User {
        self.state
            .users
            .create(
                NewUser::new(username, PASSWORD)
                    .with_email(email)
                    .with_staff(staff),
            )
            .await
            .expect("user created")
    }

    /// A confirmed TOTP device of `user` with a secret made from `seed`.
    async fn totp(&self, user: &User, seed: u8) -> (DeviceId, Secret) {
        let secret = Secret::from_bytes(&[seed; 20]).unwrap();
        let device = common::add_phone(self.state.otp(), &user.key(), &secret).await;
        (device.id, secret)
    }

    /// A confirmed HOTP device "Token" of `user`.
    async fn hotp(&self, user: &User) -> DeviceId {
        self.state
            .otp()
            .create_hotp_device(&user.key(), "Token", None, Default::default(), true)
            .await
            .unwrap()
            .id
    }

    /// A confirmed email device "Mail" of the user key `owner`.
    async fn email(&self, owner: &str, address: &str) -> DeviceId {
        self.state
            .otp()
            .create_email_device(owner, "Mail", address, true)
            .await
            .unwrap()
            .id
    }

    /// The devices of `user_key`.
    async fn devices(&self, user_key: &str) -> Vec<Device> {
        self.state
            .otp()
            .devices_for_user(user_key, None)
            .await
            .unwrap()
    }

    /// Whether the user `id` is staff now.
    async fn is_staff(&self, id: i64) -> bool {
        self.state
            .users
            .find_by_id(id)
            .await
            .unwrap()
            .expect("the user")
            .is_staff
    }

    /// A client logged in as `username` with the password (and no second factor yet).
    async fn logged_in(&self, username: &str) -> Browser {
        let mut browser = Browser::new(&self.router);
        let response = browser
            .post_json(
                "/api/v1/session",
                &serde_json::json!({ "username": username, "password": PASSWORD }),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        browser
    }

    /// A staff user, logged in and verified by a TOTP device.
    async fn admin(&self) -> (Browser, User) {
        let admin = self.user("root", Some("root@example.com"), true).await;
        let mut browser = self.logged_in("root").await;
        let (device, secret) = self.totp(&admin, 0xad).await;
        browser.verify(&device, &secret).await;
        (browser, admin)
    }

    async fn close(self) {
        self.state.otp().store().close().await;
    }
}

/// The current TOTP code of `secret` (default parameters).
fn totp_code(secret: &Secret) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Totp::new(secret, TotpParams::default())
        .unwrap()
        .code_at(i64::try_from(now).unwrap())
        .unwrap()
        .to_string()
}

/// A six-digit code that is none of `secret`'s codes around now: certainly a failure.
fn wrong_code(secret: &Secret) -> String {
    let near =
        common::flows::totp_codes_near_now(&Totp::new(secret, TotpParams::default()).unwrap());
    (0..)
        .map(|n| format!("{n:06}"))
        .find(|code| !near.contains(code))
        .expect("a code")
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    #[track_caller]
    fn assert(&self, status: StatusCode) -> &Self {
        assert_eq!(self.status, status, "{}", self.body);
        self
    }

    /// Asserts a redirect (303) to `location`.
    #[track_caller]
    fn assert_redirect(&self, location: impl AsRef<str>) {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.body);
        assert_eq!(self.location(), location.as_ref());
    }

    #[track_caller]
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("{err}: {}", self.body))
    }

    /// The value of the page's first CSRF field.
    #[track_caller]
    fn csrf_token(&self) -> String {
        let marker = "name=\"csrf_token\" value=\"";
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no CSRF field: {}", self.body))
            + marker.len();
        let end = start + self.body[start..].find('"').unwrap();
        self.body[start..end].to_owned()
    }
}

/// A browser of the in-process app: keeps the session cookie, sends `Host` and, on posts, the
/// `Origin` a browser would.
struct Browser {
    router: Router,
    cookie: Option<String>,
    /// `otp_csrf=NONCE`: the cookie that signs the forms shown before a login.
    csrf_cookie: Option<String>,
}

impl Browser {
    fn new(router: &Router) -> Self {
        Self {
            router: router.clone(),
            cookie: None,
            csrf_cookie: None,
        }
    }

    async fn send(&mut self, mut request: Request<Body>) -> Reply {
        let headers = request.headers_mut();
        headers.insert(header::HOST, HOST.parse().unwrap());
        let cookies: Vec<&str> = [&self.cookie, &self.csrf_cookie]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        if !cookies.is_empty() {
            headers.insert(header::COOKIE, cookies.join("; ").parse().unwrap());
        }
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        for value in parts.headers.get_all(header::SET_COOKIE) {
            let value = value.to_str().unwrap();
            let pair = value.split(';').next().unwrap_or_default();
            if pair.starts_with("otp_session=") {
                let removed = value.to_ascii_lowercase().contains("max-age=0");
                self.cookie = (!removed).then(|| pair.to_owned());
            } else if pair.starts_with("otp_csrf=") {
                self.csrf_cookie = Some(pair.to_owned());
            }
        }
        let body = body.collect().await.unwrap().to_bytes();
        // minijinja's HTML escaping writes `/` as `&#x2f;`: undone here, so that the tests
        // (those that look for what must not be there above all) see the text a browser sees.
        let body = String::from_utf8_lossy(&body).replace("&#x2f;", "/");
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    async fn get_json(&mut self, path: &str) -> Reply {
        self.send(
            Request::get(path)
                .header(header::ACCEPT, "application/json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        self.post_from(path, fields, ORIGIN).await
    }

    async fn post_from(&mut self, path: &str, fields: &[(&str, &str)], origin: &str) -> Reply {
        self.send(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ORIGIN, origin)
                .body(Body::from(common::form_body(fields)))
                .unwrap(),
        )
        .await
    }

    /// A form post with the CSRF token of `page` (fetched first).
    async fn submit(&mut self, page: &str, path: &str, fields: &[(&str, &str)]) -> Reply {
        let token = self.get(page).await.assert(StatusCode::OK).csrf_token();
        let mut fields = fields.to_vec();
        fields.push(("csrf_token", &token));
        self.post(path, &fields).await
    }

    /// The form of `page` posted back to it.
    async fn fill_in(&mut self, page: &str, fields: &[(&str, &str)]) -> Reply {
        self.submit(page, page, fields).await
    }

    /// The staff flag of the user of `user_page` set to `value`.
    async fn set_staff(&mut self, user_page: &str, value: &str) -> Reply {
        self.submit(
            user_page,
            &format!("{user_page}/staff"),
            &[("is_staff", value)],
        )
        .await
    }

    async fn post_json(&mut self, path: &str, value: &serde_json::Value) -> Reply {
        self.send(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ACCEPT, "application/json")
                .body(Body::from(value.to_string()))
                .unwrap(),
        )
        .await
    }

    /// Verifies the session with a TOTP device.
    async fn verify(&mut self, device: &DeviceId, secret: &Secret) {
        let response = self
            .post_json(
                "/api/v1/otp/verify",
                &serde_json::json!({ "device": device.to_string(), "token": totp_code(secret) }),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    }
}

fn device_path(id: &DeviceId) -> String {
    format!("/admin/devices/{}/{}", id.kind(), id.number())
}

/// No script and no inline style on an admin page (the CSP forbids both).
#[track_caller]
fn assert_csp_clean(reply: &Reply) {
    assert_eq!(
        reply.header(header::CONTENT_SECURITY_POLICY),
        app::CONTENT_SECURITY_POLICY
    );
    for forbidden in [
        "<script",
        "style=",
        "<style",
        "onerror=",
        "onclick=",
        "javascript:",
    ] {
        assert!(
            !reply.body.contains(forbidden),
            "{forbidden}: {}",
            reply.body
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tests.

async fn access_is_for_verified_staff_only(db: Db) {
    let world = world(&db, false).await;
    let staff = world.user("staff", None, true).await;
    world.user("alice", None, false).await;

    // Nobody logged in: to the login page (browsers), 401 (JSON).
    let mut anonymous = Browser::new(&world.router);
    let reply = anonymous.get("/admin/users/1?x=1").await;
    reply.assert_redirect("/account/login?next=/admin/users/1%3Fx%3D1");
    let reply = anonymous.get_json("/admin").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["error"], "login_required");

    // Not staff: 403.
    let mut alice = world.logged_in("alice").await;
    let reply = alice.get("/admin").await;
    reply.assert(StatusCode::FORBIDDEN);
    assert!(reply.body.contains("Staff only"), "{}", reply.body);
    assert_eq!(reply.header(header::CACHE_CONTROL), "no-store");
    let reply = alice.get_json("/admin").await;
    reply.assert(StatusCode::FORBIDDEN);
    assert_eq!(reply.json()["error"], "staff_required");

    // Staff without a device: told to get one.
    let mut browser = world.logged_in("staff").await;
    let reply = browser.get("/admin").await;
    reply.assert(StatusCode::FORBIDDEN);
    assert!(reply.body.contains("A second factor is required"));
    assert!(reply.body.contains("href=\"/account/devices\""));
    assert_csp_clean(&reply);

    // Staff with a device, session not verified: to the verification page, refused until then.
    let (device, secret) = world.totp(&staff, 7).await;
    let reply = browser.get("/admin/users/1").await;
    reply.assert_redirect("/account/verify?next=/admin/users/1");
    let reply = browser.get_json("/admin").await;
    reply.assert(StatusCode::FORBIDDEN);
    assert_eq!(reply.json()["error"], "otp_required");
    let reply = browser
        .post("/admin/users/2/reset-account", &[("csrf_token", "x")])
        .await;
    reply.assert_redirect("/account/verify?next=/admin");

    // Verified: allowed.
    browser.verify(&device, &secret).await;
    let reply = browser.get("/admin").await;
    reply.assert(StatusCode::OK);
    assert!(reply.body.contains("alice"), "{}", reply.body);
    assert_csp_clean(&reply);
    browser.get("/admin/users/1").await.assert(StatusCode::OK);

    // The staff flag withdrawn: refused at once, verified or not.
    world.state.users.set_staff(staff.id, false).await.unwrap();
    browser.get("/admin").await.assert(StatusCode::FORBIDDEN);
    world.close().await;
}

async fn users_are_searched_and_paged(db: Db) {
    let world = world(&db, false).await;
    let (mut browser, _) = world.admin().await;
    let alice = world.user("Alice", Some("alice@example.com"), false).await;
    world.user("bob", Some("bob@corp.example"), true).await;
    for n in 0..24 {
        world.user(&format!("user{n:02}"), None, false).await;
    }
    world.totp(&alice, 1).await;
    world.email(&alice.key(), "alice@example.com").await;

    // 27 users: two pages.
    let reply = browser.get("/admin").await;
    reply.assert(StatusCode::OK);
    assert!(
        reply.body.contains("27 users, page 1 of 2"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("href=\"/admin?page=2\""));
    assert!(!reply.body.contains("user23"));
    let reply = browser.get("/admin?page=2").await;
    assert!(reply.body.contains("user23"));
    assert!(reply.body.contains("href=\"/admin\" rel=\"prev\""));
    // A page that is not a number is the first; one past the end is empty, not an error.
    browser.get("/admin?page=abc").await.assert(StatusCode::OK);
    browser.get("/admin?page=99").await.assert(StatusCode::OK);

    // By username, in any case, with the device count.
    let reply = browser.get("/admin?q=ALI").await;
    reply.assert(StatusCode::OK);
    assert!(reply.body.contains("1 user matches"), "{}", reply.body);
    assert!(
        reply
            .body
            .contains(&format!("href=\"/admin/users/{}\"", alice.id))
    );
    assert!(reply.body.contains("<td>2</td>"), "{}", reply.body);
    assert!(!reply.body.contains(">bob<"));
    // By email address.
    let reply = browser.get("/admin?q=corp.example").await;
    assert!(reply.body.contains(">bob<"), "{}", reply.body);
    assert!(
        reply
            .body
            .contains("<td><span class=\"app-badge\">staff</span></td>")
    );
    assert!(!reply.body.contains(">Alice<"));
    // No match; LIKE wildcards are plain text.
    let reply = browser.get("/admin?q=%25").await;
    assert!(reply.body.contains("No user matches"), "{}", reply.body);
    // The search text is escaped.
    let reply = browser.get("/admin?q=%3Cb%3E").await;
    assert!(!reply.body.contains("<b>"));
    assert!(reply.body.contains("&lt;b&gt;"));
    world.close().await;
}

async fn devices_of_every_kind_are_created_for_another_user(db: Db) {
    let world = world(&db, false).await;
    let (mut browser, _) = world.admin().await;
    let alice = world.user("alice", Some("alice@example.com"), false).await;
    let user_page = format!("/admin/users/{}", alice.id);
    let reply = browser.get(&user_page).await;
    reply.assert(StatusCode::OK);
    for kind in ["totp", "hotp", "email", "static"] {
        assert!(
            reply
                .body
                .contains(&format!("{user_page}/devices/new/{kind}")),
            "{kind}"
        );
    }

    // TOTP: the URI and the QR code, once.
    let new_totp = format!("{user_page}/devices/new/totp");
    let reply = browser
        .fill_in(
            &new_totp,
            &[
                ("name", "Work phone"),
                ("algorithm", "SHA256"),
                ("digits", "8"),
                ("step", "60"),
                ("secret", ""),
                ("confirmed", "on"),
            ],
        )
        .await;
    reply.assert(StatusCode::CREATED);
    assert!(reply.body.contains("otpauth://totp/"), "{}", reply.body);
    assert!(reply.body.contains("algorithm=SHA256"));
    assert!(reply.body.contains("digits=8"));
    assert!(reply.body.contains("period=60"));
    assert!(reply.body.contains("src=\"data:image/svg+xml,"));
    assert_eq!(reply.header(header::CACHE_CONTROL), "no-store");
    assert_csp_clean(&reply);

    // HOTP with a chosen secret, unconfirmed.
    let new_hotp = format!("{user_page}/devices/new/hotp");
    let secret = common::base32(&[0x42; 20]);
    let reply = browser
        .fill_in(
            &new_hotp,
            &[
                ("name", "Token"),
                ("algorithm", "SHA1"),
                ("digits", "6"),
                ("secret", &secret),
            ],
        )
        .await;
    reply.assert(StatusCode::CREATED);
    assert!(reply.body.contains("otpauth://hotp/"), "{}", reply.body);
    assert!(reply.body.contains(secret.trim_end_matches('=')));

    // Email.
    let new_email = format!("{user_page}/devices/new/email");
    let page = browser.get(&new_email).await;
    assert!(page.body.contains("value=\"alice@example.com\""));
    let reply = browser
        .fill_in(
            &new_email,
            &[
                ("name", "Mail"),
                ("email", "alice@mail.example"),
                ("confirmed", "on"),
            ],
        )
        .await;
    reply.assert(StatusCode::CREATED);
    assert!(!reply.body.contains("otpauth://"));

    // Backup codes: shown once, and they work.
    let new_static = format!("{user_page}/devices/new/static");
    let reply = browser
        .fill_in(&new_static, &[("name", "Backup"), ("count", "3")])
        .await;
    reply.assert(StatusCode::CREATED);
    let codes: Vec<String> = reply
        .body
        .split("<li><code>")
        .skip(1)
        .map(|rest| rest.split('<').next().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 3, "{}", reply.body);

    let devices = world.devices(&alice.key()).await;
    let summary: Vec<_> = devices
        .iter()
        .map(|d| (d.kind().to_owned(), d.name.clone(), d.confirmed))
        .collect();
    assert_eq!(
        summary,
        [
            ("totp".to_owned(), "Work phone".to_owned(), true),
            ("hotp".to_owned(), "Token".to_owned(), false),
            ("email".to_owned(), "Mail".to_owned(), true),
            ("static".to_owned(), "Backup".to_owned(), true),
        ]
    );
    let backup = devices.iter().find(|d| d.kind() == "static").unwrap();
    let outcome = world
        .state
        .otp()
        .verify_token(&alice.key(), &backup.id, &codes[0])
        .await
        .unwrap();
    assert!(matches!(outcome, VerifyOutcome::Verified(_)), "{outcome:?}");

    // The user page lists them, with what is not secret.
    let reply = browser.get(&user_page).await;
    assert!(reply.body.contains("Work phone"));
    assert!(reply.body.contains("2 codes left"), "{}", reply.body);
    let totp = devices.iter().find(|d| d.kind() == "totp").unwrap();
    let reply = browser.get(&device_path(&totp.id)).await;
    reply.assert(StatusCode::OK);
    assert!(reply.body.contains("SHA256"));
    assert!(reply.body.contains("<dd>60</dd>"), "{}", reply.body);

    // Refused values: the form again with a message, nothing made.
    let reply = browser
        .fill_in(&new_email, &[("name", "Mail"), ("email", "not an address")])
        .await;
    reply.assert(StatusCode::BAD_REQUEST);
    assert!(reply.body.contains("The email address is not valid."));
    for (fields, message) in [
        (
            vec![
                ("name", ""),
                ("digits", "6"),
                ("step", "30"),
                ("algorithm", "SHA1"),
            ],
            "The name must be",
        ),
        (
            vec![
                ("name", "x"),
                ("digits", "5"),
                ("step", "30"),
                ("algorithm", "SHA1"),
            ],
            "digits must be",
        ),
        (
            vec![
                ("name", "x"),
                ("digits", "6"),
                ("step", "0"),
                ("algorithm", "SHA1"),
            ],
            "The step must be",
        ),
        (
            vec![
                ("name", "x"),
                ("digits", "6"),
                ("step", "30"),
                ("algorithm", "MD5"),
            ],
            "The algorithm must be",
        ),
        (
            vec![
                ("name", "x"),
                ("digits", "6"),
                ("step", "30"),
                ("algorithm", "SHA1"),
                ("secret", "GEZDGNBV"),
            ],
            "The secret must be",
        ),
    ] {
        let reply = browser.fill_in(&new_totp, &fields).await;
        reply.assert(StatusCode::BAD_REQUEST);
        assert!(reply.body.contains(message), "{message}: {}", reply.body);
        assert!(!reply.body.contains("otpauth://"));
    }
    let reply = browser
        .fill_in(&new_static, &[("name", "B"), ("count", "101")])
        .await;
    reply.assert(StatusCode::BAD_REQUEST);
    let count = world.devices(&alice.key()).await.len();
    assert_eq!(count, 4);
    world.close().await;
}

async fn devices_are_edited_reset_and_deleted(db: Db) {
    let world = world(&db, false).await;
    let (mut browser, _) = world.admin().await;
    let alice = world.user("alice", None, false).await;
    let (device, secret) = world.totp(&alice, 3).await;
    let path = device_path(&device);
    let otp = world.state.otp();

    // Edit: name and confirmation.
    let reply = browser.fill_in(&path, &[("name", "  Old phone  ")]).await;
    reply.assert_redirect(format!("{path}?done=saved"));
    let stored = otp.device(&device).await.unwrap().unwrap();
    assert_eq!(
        (stored.name.as_str(), stored.confirmed),
        ("Old phone", false)
    );
    let reply = browser.get(reply.location()).await;
    assert!(reply.body.contains("The device was saved."));
    let reply = browser
        .fill_in(&path, &[("name", "Phone"), ("confirmed", "on")])
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert!(otp.device(&device).await.unwrap().unwrap().confirmed);
    let reply = browser.fill_in(&path, &[("name", "")]).await;
    reply.assert(StatusCode::BAD_REQUEST);
    assert!(reply.body.contains("The name must be"));

    // Throttling after a failure, and its reset (back to the user's page or the device's).
    let outcome = otp
        .verify_token(&alice.key(), &device, &wrong_code(&secret))
        .await
        .unwrap();
    assert!(
        matches!(outcome, VerifyOutcome::Invalid { .. }),
        "{outcome:?}"
    );
    let user_page = format!("/admin/users/{}", alice.id);
    let reply = browser.get(&user_page).await;
    assert!(reply.body.contains("<td>1</td>"), "{}", reply.body);
    let reply = browser
        .submit(&user_page, &format!("{path}/reset-throttle"), &[])
        .await;
    reply.assert_redirect(format!("{user_page}?done=throttle-reset"));
    let stored = otp.device(&device).await.unwrap().unwrap();
    assert_eq!(stored.throttle.failure_count, 0);
    let reply = browser
        .submit(
            &path,
            &format!("{path}/reset-throttle"),
            &[("back", "device")],
        )
        .await;
    assert_eq!(reply.location(), format!("{path}?done=throttle-reset"));

    // Delete: asked first, then gone.
    let reply = browser.get(&format!("{path}/delete")).await;
    reply.assert(StatusCode::OK);
    assert!(reply.body.contains("cannot be undone"));
    let reply = browser.fill_in(&format!("{path}/delete"), &[]).await;
    reply.assert_redirect(format!("{user_page}?done=deleted"));
    assert!(otp.device(&device).await.unwrap().is_none());
    browser.get(&path).await.assert(StatusCode::NOT_FOUND);
    let reply = browser.get(&format!("{user_page}?done=deleted")).await;
    assert!(reply.body.contains("The device was deleted."));
    assert!(reply.body.contains("No devices."));
    world.close().await;
}

async fn the_account_budget_is_restored(db: Db) {
    let world = world(&db, false).await;
    let (mut browser, _) = world.admin().await;
    let alice = world.user("alice", None, false).await;
    let (device, secret) = world.totp(&alice, 4).await;
    let otp = world.state.otp();
    otp.verify_token(&alice.key(), &device, &wrong_code(&secret))
        .await
        .unwrap();
    assert_eq!(otp.account_failures(&alice.key()).await.unwrap(), 1);

    let reply = browser.get("/admin?q=alice").await;
    assert!(reply.body.contains("<td>1</td>"), "{}", reply.body);
    let user_page = format!("/admin/users/{}", alice.id);
    let reply = browser.get(&user_page).await;
    assert!(reply.body.contains("1 of 100"), "{}", reply.body);
    let reply = browser
        .submit(&user_page, &format!("{user_page}/reset-account"), &[])
        .await;
    reply.assert_redirect(format!("{user_page}?done=account-reset"));
    assert_eq!(otp.account_failures(&alice.key()).await.unwrap(), 0);
    let reply = browser.get(reply.location()).await;
    assert!(reply.body.contains("0 of 100"));
    assert!(reply.body.contains("failure budget was restored"));
    world.close().await;
}

async fn backup_codes_are_added_and_the_staff_flag_toggled(db: Db) {
    let world = world(&db, false).await;
    let (mut browser, admin) = world.admin().await;
    let alice = world.user("alice", None, false).await;
    let user_page = format!("/admin/users/{}", alice.id);
    let otp = world.state.otp();

    // One code, with a backup-code device made for it; then the button on that device.
    let reply = browser
        .submit(&user_page, &format!("{user_page}/backup-code"), &[])
        .await;
    reply.assert(StatusCode::OK);
    assert_eq!(reply.header(header::CACHE_CONTROL), "no-store");
    let code = reply
        .body
        .split("<li><code>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap()
        .to_owned();
    let devices = world.devices(&alice.key()).await;
    assert_eq!(devices.len(), 1);
    assert_eq!(otp.backup_codes_remaining(&devices[0]).unwrap(), 1);
    let reply = browser.get(&user_page).await;
    assert!(reply.body.contains("Add a code"));
    let outcome = otp
        .verify_token(&alice.key(), &devices[0].id, &code)
        .await
        .unwrap();
    assert!(outcome.is_verified());

    // The staff flag: granted, withdrawn, never one's own.
    let reply = browser.set_staff(&user_page, "true").await;
    assert_eq!(reply.location(), format!("{user_page}?done=staff-granted"));
    assert!(world.is_staff(alice.id).await);
    let reply = browser.set_staff(&user_page, "false").await;
    assert_eq!(
        reply.location(),
        format!("{user_page}?done=staff-withdrawn")
    );
    assert!(!world.is_staff(alice.id).await);
    let reply = browser.set_staff(&user_page, "maybe").await;
    reply.assert(StatusCode::BAD_REQUEST);
    let own = format!("/admin/users/{}", admin.id);
    let reply = browser.get(&own).await;
    assert!(!reply.body.contains(&format!("{own}/staff")));
    let reply = browser.set_staff(&own, "false").await;
    reply.assert(StatusCode::FORBIDDEN);
    assert!(world.is_staff(admin.id).await);
    world.close().await;
}

/// Hidden by default (issue #10): no admin page shows a confirmed device's secret unless the
/// server is told to.
async fn hidden_sensitive_data_stays_hidden(db: Db) {
    let world = world_with(config(&db)).await;
    assert!(world.state.config.admin_hide_sensitive_data, "the default");
    let (mut browser, _) = world.admin().await;
    let alice = world.user("alice", None, false).await;
    let (totp, secret) = world.totp(&alice, 5).await;
    let secret_base32 = common::base32(secret.as_bytes());
    let secret_base32 = secret_base32.trim_end_matches('=');
    let hotp = world.hotp(&alice).await;
    let user_page = format!("/admin/users/{}", alice.id);

    for page in [
        user_page.clone(),
        device_path(&totp),
        device_path(&hotp),
        "/admin".to_owned(),
    ] {
        let reply = browser.get(&page).await;
        reply.assert(StatusCode::OK);
        for hidden in [
            "otpauth://",
            "/config",
            "qr.svg",
            "secret=",
            "QR code",
            secret_base32,
        ] {
            assert!(
                !reply.body.contains(hidden),
                "{page}: {hidden}: {}",
                reply.body
            );
        }
    }
    for id in [&totp, &hotp] {
        for suffix in ["config", "qr.svg"] {
            let reply = browser.get(&format!("{}/{suffix}", device_path(id))).await;
            reply.assert(StatusCode::FORBIDDEN);
            assert!(!reply.body.contains("otpauth://"));
            assert!(!reply.body.contains("<svg"));
        }
    }
    // Even for a device that does not exist (as django-otp: the setting is checked first).
    browser
        .get("/admin/devices/totp/999999/config")
        .await
        .assert(StatusCode::FORBIDDEN);

    // Making a device still works, and shows the new secret this once.
    let new_totp = format!("{user_page}/devices/new/totp");
    let reply = browser
        .fill_in(
            &new_totp,
            &[
                ("name", "New phone"),
                ("algorithm", "SHA1"),
                ("digits", "6"),
                ("step", "30"),
                ("confirmed", "on"),
            ],
        )
        .await;
    reply.assert(StatusCode::CREATED);
    assert!(reply.body.contains("otpauth://totp/"));
    assert!(!reply.body.contains("/config"));
    assert_eq!(reply.header(header::CACHE_CONTROL), "no-store");
    let reply = browser.get(&user_page).await;
    assert!(reply.body.contains("New phone"));
    assert!(!reply.body.contains("otpauth://"));
    world.close().await;
}

async fn bad_ids_are_404(db: Db) {
    let world = world(&db, false).await;
    let (mut browser, _) = world.admin().await;
    let alice = world.user("alice", None, false).await;
    let email = world.email(&alice.key(), "alice@example.com").await;
    // A device whose owner is no user of the app.
    let orphan = world.email("424242", "nobody@example.com").await;
    let user_page = format!("/admin/users/{}", alice.id);
    let mut pages = vec![
        "/admin/users/abc".to_owned(),
        "/admin/users/0".to_owned(),
        "/admin/users/-1".to_owned(),
        "/admin/users/01".to_owned(),
        "/admin/users/999999".to_owned(),
        "/admin/users/99999999999999999999999".to_owned(),
        "/admin/users/abc/devices/new/totp".to_owned(),
        format!("{user_page}/devices/new/nope"),
        format!("{user_page}/devices/new/TOTP"),
        "/admin/devices/nope/1".to_owned(),
        "/admin/devices/TOTP/1".to_owned(),
        "/admin/devices/totp/abc".to_owned(),
        "/admin/devices/totp/0".to_owned(),
        "/admin/devices/totp/01".to_owned(),
        "/admin/devices/totp/-1".to_owned(),
        "/admin/devices/totp/99999999999999999999".to_owned(),
        "/admin/devices/totp/999999".to_owned(),
        "/admin/devices/totp/999999/config".to_owned(),
        "/admin/devices/totp/999999/qr.svg".to_owned(),
        "/admin/devices/totp/999999/delete".to_owned(),
        format!("{}/config", device_path(&email)),
        format!("{}/qr.svg", device_path(&email)),
    ];
    pages.push(device_path(&orphan));
    for page in &pages {
        let reply = browser.get(page).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{page}: {}",
            reply.body
        );
        assert!(
            reply.body.contains("There is no such"),
            "{page}: {}",
            reply.body
        );
        assert_csp_clean(&reply);
    }
    // Actions on missing ids, with a valid CSRF token: 404, and nothing made.
    let token = browser.get("/admin").await.csrf_token();
    for path in [
        "/admin/users/abc/reset-account",
        "/admin/users/999999/staff",
        "/admin/users/999999/backup-code",
        "/admin/users/999999/devices/new/static",
        "/admin/devices/totp/999999",
        "/admin/devices/totp/999999/reset-throttle",
        "/admin/devices/nope/1/delete",
        "/admin/devices/totp/x/delete",
    ] {
        let reply = browser
            .post(
                path,
                &[
                    ("csrf_token", &token),
                    ("name", "x"),
                    ("is_staff", "true"),
                    ("count", "2"),
                ],
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            reply.body
        );
    }
    let reply = browser
        .post(
            &format!("{user_page}/devices/new/nope"),
            &[("csrf_token", &token), ("name", "x")],
        )
        .await;
    reply.assert(StatusCode::NOT_FOUND);
    assert!(world.devices("999999").await.is_empty());
    world.close().await;
}

async fn state_changes_need_the_csrf_token(db: Db) {
    let world = world(&db, false).await;
    let (mut browser, _) = world.admin().await;
    let alice = world.user("alice", None, false).await;
    let (device, secret) = world.totp(&alice, 6).await;
    let otp = world.state.otp();
    otp.verify_token(&alice.key(), &device, &wrong_code(&secret))
        .await
        .unwrap();
    let user_page = format!("/admin/users/{}", alice.id);
    let path = device_path(&device);
    let token = browser.get(&user_page).await.csrf_token();

    let actions: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("{user_page}/staff"), vec![("is_staff", "true")]),
        (format!("{user_page}/reset-account"), vec![]),
        (format!("{user_page}/backup-code"), vec![]),
        (
            format!("{user_page}/devices/new/static"),
            vec![("name", "B"), ("count", "2")],
        ),
        (path.clone(), vec![("name", "Renamed")]),
        (format!("{path}/reset-throttle"), vec![]),
        (format!("{path}/delete"), vec![]),
    ];
    for (action, fields) in &actions {
        // No token, a wrong token, the right token from another site.
        let reply = browser.post(action, fields).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{action}: {}",
            reply.body
        );
        let mut wrong = fields.clone();
        wrong.push(("csrf_token", "not-the-token"));
        let reply = browser.post(action, &wrong).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{action}: {}",
            reply.body
        );
        let mut right = fields.clone();
        right.push(("csrf_token", &token));
        let reply = browser
            .post_from(action, &right, "http://evil.example")
            .await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{action}: {}",
            reply.body
        );
    }
    // Nothing changed.
    let stored = otp.device(&device).await.unwrap().unwrap();
    assert_eq!(stored.name, "Phone");
    assert_eq!(stored.throttle.failure_count, 1);
    assert_eq!(otp.account_failures(&alice.key()).await.unwrap(), 1);
    assert_eq!(world.devices(&alice.key()).await.len(), 1);
    assert!(!world.is_staff(alice.id).await);
    world.close().await;
}

async fn secrets_are_never_cached(db: Db) {
    let world = world(&db, false).await;
    let (mut browser, _) = world.admin().await;
    let alice = world.user("alice", None, false).await;
    let (totp, secret) = world.totp(&alice, 8).await;
    let path = device_path(&totp);

    let reply = browser.get(&path).await;
    assert!(reply.body.contains(&format!("href=\"{path}/config\"")));
    let reply = browser.get(&format!("{path}/config")).await;
    reply.assert(StatusCode::OK);
    assert_eq!(reply.header(header::CACHE_CONTROL), "no-store");
    assert!(reply.body.contains(&format!("src=\"{path}/qr.svg\"")));
    let base32 = common::base32(secret.as_bytes());
    assert!(
        reply.body.contains(base32.trim_end_matches('=')),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("otpauth://totp/otp:alice?secret="),
        "{}",
        reply.body
    );
    assert_csp_clean(&reply);

    let reply = browser.get(&format!("{path}/qr.svg")).await;
    reply.assert(StatusCode::OK);
    assert_eq!(reply.header(header::CONTENT_TYPE), "image/svg+xml");
    assert_eq!(reply.header(header::CACHE_CONTROL), "no-store");
    assert!(reply.body.contains("<svg"), "{}", reply.body);

    // HOTP too.
    let hotp = world.hotp(&alice).await;
    let reply = browser.get(&format!("{}/config", device_path(&hotp))).await;
    reply.assert(StatusCode::OK);
    assert!(reply.body.contains("otpauth://hotp/"));
    assert!(reply.body.contains("counter=0"));
    // Every admin page, not only these.
    for page in [
        "/admin".to_owned(),
        format!("/admin/users/{}", alice.id),
        path,
    ] {
        let reply = browser.get(&page).await;
        assert_eq!(reply.header(header::CACHE_CONTROL), "no-store", "{page}");
    }
    world.close().await;
}
