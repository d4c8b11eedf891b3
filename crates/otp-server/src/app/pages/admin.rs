//! The admin (django-otp's `OTPAdminSite` and the device admins): staff users whose session
//! is OTP-verified list and search the users, and create, edit, reset and delete the devices of
//! every kind for any of them.
//!
//! ## Access
//!
//! Every page and action requires a logged-in user with the staff flag whose session is
//! verified by a device (django-otp's `has_permission`: `is_staff` **and** `is_verified()`):
//!
//! | who | browser | JSON client (`Accept: application/json`) |
//! |---|---|---|
//! | nobody logged in | 303 to the login page with `next` | 401 `{"error": "login_required"}` |
//! | logged in, not staff | 403 page | 403 `{"error": "staff_required"}` |
//! | staff, session not verified, with a confirmed device | 303 to `/account/verify` with `next` (the page asked for; `/admin` for a form post) | 403 `{"error": "otp_required"}` |
//! | staff without a confirmed device | 403 page saying the admin needs a second factor, linking to `/account/devices` | 403 `{"error": "otp_required"}` |
//! | staff, verified | the page | the page |
//!
//! Access is decided before anything else, so nobody else learns which ids exist.
//!
//! ## Routes
//!
//! | method and path | what |
//! |---|---|
//! | `GET /admin` | users, `q` searches usernames and email addresses, `page` pages (25 a page): devices, staff flag, account failures |
//! | `GET /admin/users/{id}` | a user: devices (kind, name, confirmed, created, last used, throttling), account failures, actions |
//! | `POST /admin/users/{id}/staff` | `is_staff=true\|false`: grants or withdraws the staff flag (not one's own) |
//! | `POST /admin/users/{id}/reset-account` | restores the account's failure budget and its challenges of the hour |
//! | `POST /admin/users/{id}/backup-code` | adds one backup code to the user's first backup-code device (creating one), shown once (django-otp's `addstatictoken`) |
//! | `GET, POST /admin/users/{id}/devices/new/{kind}` | creates a `totp`, `hotp`, `email` or `static` device; the response shows its secret once |
//! | `GET, POST /admin/devices/{kind}/{number}` | a device; the form changes its name and confirmation |
//! | `POST /admin/devices/{kind}/{number}/reset-throttle` | clears the device's throttling |
//! | `GET, POST /admin/devices/{kind}/{number}/delete` | asks, then deletes the device |
//! | `GET /admin/devices/{kind}/{number}/config` | TOTP and HOTP: the QR code and the otpauth:// URI |
//! | `GET /admin/devices/{kind}/{number}/qr.svg` | TOTP and HOTP: the QR code, `image/svg+xml` |
//!
//! A user id that is not a user's number, an unknown user, a device id whose kind is not
//! registered or whose number is malformed, a device nobody has, a device whose owner is not
//! a user of the app, and a config page of a device that is neither TOTP nor HOTP are all the
//! 404 page, never a 500. Every `POST` checks the form's CSRF token and the origin (403 page
//! otherwise). Every response is `Cache-Control: no-store` (pages with secrets and QR codes
//! above all). The pages carry no script and no `style` attribute (the Content-Security-Policy
//! forbids both); QR codes are images.
//!
//! ## Sensitive data (`OTP_ADMIN_HIDE_SENSITIVE_DATA`)
//!
//! Secrets of **existing** devices are never needed to run an admin, and whoever can read them
//! can copy a user's authenticator. With
//! [`admin_hide_sensitive_data`](crate::app::ServerConfig::admin_hide_sensitive_data) on (the
//! default here, unlike django-otp, whose default is off), as django-otp hides `key`, the QR
//! link and the config views of existing devices:
//!
//! - the config page and the QR code are 403 (before the device is even looked up);
//! - no page links to them, and no page shows an otpauth:// URI, a secret or a QR code of a
//!   stored device.
//!
//! The settings that are not secret (algorithm, digits, step, tolerance, drift, HOTP counter,
//! the email address, the number of backup codes left) are shown in both modes. Backup codes
//! and email codes are stored only as hashes, so no mode can show them.
//!
//! **Decision: a secret is shown once when the admin makes it, in both modes.** Creating a
//! device (like django-otp's add form, which always shows the key) answers the `POST` with the
//! new TOTP or HOTP device's URI and QR code (an inline `data:` image, so there is no URL to
//! fetch it again), or the new backup codes; adding one backup code shows that code. This
//! reveals nothing that was stored before, the response is `no-store`, and each such action
//! is logged (`admin created a device`, `admin added a backup code`) with the staff user, the
//! user and the device. A device created with its secret never shown would be useless.
//! Reloading that response re-submits the form (the browser asks first) and makes another
//! device.

use std::fmt::Write as _;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequestParts, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode, header};
use otp_axum::OtpSession;
use otp_core::{Device, DeviceId, HotpOptions, Timestamp, TotpOptions};
use otp_oath::{Algorithm, Digits, HotpParams, Secret, TotpParams};
use serde::{Deserialize, Serialize};

use super::{bad_form, see_other};
use crate::app::templates::URLS;
use crate::app::users::parse_key;
use crate::app::{
    AppState, CurrentUser, Error, Reply, Stop, User, UserQuery, encode_query_value, no_store,
    wants_json,
};
use crate::dates::utc_minutes;

/// The admin's home: the users.
pub const ADMIN_URL: &str = URLS.admin;
/// Users per page of the list.
const PER_PAGE: u32 = 25;
/// The kinds the admin can create, in the order of its links.
const CREATABLE: [&str; 4] = ["totp", "hotp", "email", "static"];

/// The routes of the admin pages, merged into the app's router (paths are absolute).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(ADMIN_URL, get(user_list))
        .route("/admin/", get(|| async { see_other(ADMIN_URL) }))
        .route("/admin/users/{id}", get(user_page))
        .route("/admin/users/{id}/staff", post(set_staff))
        .route("/admin/users/{id}/reset-account", post(reset_account))
        .route("/admin/users/{id}/backup-code", post(add_backup_code))
        .route(
            "/admin/users/{id}/devices/new/{kind}",
            get(new_device_page).post(create_device),
        )
        .route(
            "/admin/devices/{kind}/{number}",
            get(device_page).post(edit_device),
        )
        .route(
            "/admin/devices/{kind}/{number}/reset-throttle",
            post(reset_throttle),
        )
        .route(
            "/admin/devices/{kind}/{number}/delete",
            get(delete_page).post(delete_device),
        )
        .route("/admin/devices/{kind}/{number}/config", get(config_page))
        .route("/admin/devices/{kind}/{number}/qr.svg", get(qr_code))
}

// ---------------------------------------------------------------------------------------------
// Access.

/// A staff user whose session is OTP-verified: the extractor of every admin handler. Others
/// are refused as the [module docs](self) say.
#[derive(Debug, Clone)]
pub struct Staff {
    /// The staff user.
    pub user: User,
    /// Their OTP session.
    pub otp: OtpSession,
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let CurrentUser { user, otp } = CurrentUser::from_request_parts(parts, state).await?;
        let json = wants_json(&parts.headers);
        if !user.is_staff {
            if json {
                return Err(json_refusal(
                    "staff_required",
                    "The admin is for staff users only.",
                ));
            }
            return Err(state
                .error_page(
                    &otp,
                    StatusCode::FORBIDDEN,
                    "Staff only",
                    "The admin is for staff users only.",
                    None,
                )
                .await);
        }
        if otp.is_verified() {
            return Ok(Self { user, otp });
        }
        if json {
            return Err(json_refusal(
                "otp_required",
                "The admin needs a session verified by a second factor.",
            ));
        }
        let has_device = match state.otp().user_has_device(&user.key(), Some(true)).await {
            Ok(has_device) => has_device,
            Err(err) => return Err(Error::from(err).into_response()),
        };
        if has_device {
            // After a form post, come back to the admin's home rather than to a POST route.
            let here = match parts.method {
                Method::GET | Method::HEAD => parts
                    .uri
                    .path_and_query()
                    .map_or(ADMIN_URL, |pq| pq.as_str()),
                _ => ADMIN_URL,
            };
            let to = format!(
                "{}?{}={}",
                URLS.verify,
                state.web.config().redirect_field,
                encode_query_value(here)
            );
            return Err(see_other(&to));
        }
        let page = match state.page(&otp).await {
            Ok(page) => page,
            Err(err) => return Err(err.into_response()),
        };
        Err(state.render(
            "admin/second_factor.html",
            StatusCode::FORBIDDEN,
            &page,
            minijinja::context! { devices_url => URLS.devices },
        ))
    }
}

fn json_refusal(code: &str, message: &str) -> Response {
    no_store(
        (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({ "error": code, "message": message })),
        )
            .into_response(),
    )
}

// ---------------------------------------------------------------------------------------------
// Plumbing.

fn user_url(id: i64) -> String {
    format!("/admin/users/{id}")
}

fn device_url(id: &DeviceId) -> String {
    format!("/admin/devices/{}/{}", id.kind(), id.number())
}

async fn not_found(state: &AppState, otp: &OtpSession, what: &str) -> Stop {
    Stop::from(
        state
            .error_page(
                otp,
                StatusCode::NOT_FOUND,
                "Not found",
                &format!("There is no such {what}."),
                None,
            )
            .await,
    )
}

async fn forbidden(state: &AppState, otp: &OtpSession, message: &str, back: &str) -> Stop {
    Stop::from(
        state
            .error_page(
                otp,
                StatusCode::FORBIDDEN,
                "Not allowed",
                message,
                Some(back),
            )
            .await,
    )
}

/// The form of a request, with its CSRF token checked; a 400 or 403 page otherwise.
async fn checked_form<T: CsrfForm>(
    state: &AppState,
    otp: &OtpSession,
    headers: &HeaderMap,
    form: Result<Form<T>, FormRejection>,
    back: &str,
) -> Result<T, Stop> {
    let Ok(Form(form)) = form else {
        return Err(bad_form(state, otp, back).await.into());
    };
    state
        .check_form(otp, headers, form.csrf_token(), back)
        .await?;
    Ok(form)
}

/// A form with the CSRF field.
trait CsrfForm {
    fn csrf_token(&self) -> Option<&str>;
}

macro_rules! csrf_form {
    ($($form:ty),*) => {
        $(impl CsrfForm for $form {
            fn csrf_token(&self) -> Option<&str> {
                self.csrf_token.as_deref()
            }
        })*
    };
}

csrf_form!(ActionForm, StaffForm, EditForm, NewDeviceForm);

/// A form with nothing but the CSRF field (and where to go back to).
#[derive(Default, Deserialize)]
#[serde(default)]
struct ActionForm {
    csrf_token: Option<String>,
    /// `device` to come back to the device's page rather than the user's.
    back: Option<String>,
}

/// The user named by a path's id: 404 unless it is a user's number.
async fn load_user(state: &AppState, otp: &OtpSession, raw: &str) -> Result<User, Stop> {
    let found = match parse_key(raw) {
        Some(id) => state.users.find_by_id(id).await?,
        None => None,
    };
    match found {
        Some(user) => Ok(user),
        None => Err(not_found(state, otp, "user").await),
    }
}

/// The device named by a path's kind and number, and its owner: 404 unless the kind is
/// registered, the number well formed, the device there and its owner a user.
async fn load_device(
    state: &AppState,
    otp: &OtpSession,
    kind: &str,
    number: &str,
) -> Result<(Device, User), Stop> {
    let id = format!("{kind}/{number}")
        .parse::<DeviceId>()
        .ok()
        .filter(|id| state.otp().kind(id.kind()).is_ok());
    let device = match id {
        Some(id) => state.otp().device(&id).await?,
        None => None,
    };
    let owner = match &device {
        Some(device) => state.users.find_by_key(&device.user_key).await?,
        None => None,
    };
    match (device, owner) {
        (Some(device), Some(owner)) => Ok((device, owner)),
        _ => Err(not_found(state, otp, "device").await),
    }
}

/// The outcome of a change to a loaded device: the 404 page if it is gone meanwhile.
async fn still_there<T>(
    state: &AppState,
    otp: &OtpSession,
    outcome: Result<T, otp_core::Error>,
) -> Result<T, Stop> {
    match outcome {
        Err(otp_core::Error::DeviceNotFound) => Err(not_found(state, otp, "device").await),
        outcome => Ok(outcome?),
    }
}

/// Messages after a redirect, by the code in `?done=` (unknown codes show nothing, so no text
/// of the URL reaches the page).
fn done_message(code: Option<&str>) -> Option<String> {
    Some(
        match code? {
            "staff-granted" => "The user is staff now.",
            "staff-withdrawn" => "The user is not staff any more.",
            "account-reset" => "The account's failure budget was restored.",
            "throttle-reset" => "The device's throttling was cleared.",
            "deleted" => "The device was deleted.",
            "saved" => "The device was saved.",
            _ => return None,
        }
        .to_owned(),
    )
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct DoneQuery {
    done: Option<String>,
}

/// Unix time as `2024-05-01 12:34 UTC`.
pub(crate) fn utc(at: Timestamp) -> String {
    format!("{} UTC", utc_minutes(at.unix_secs()))
}

/// A kind's name for people ([`otp_core::DeviceKind::label`]), or its name for a kind this
/// program does not register.
fn kind_label(state: &AppState, kind: &str) -> String {
    state
        .otp()
        .kind(kind)
        .map_or_else(|_| kind.to_owned(), |k| k.label().to_owned())
}

/// Whether the device has a provisioning URI (and so a config page).
fn has_uri(state: &AppState, device: &Device) -> bool {
    state
        .otp()
        .kind(device.kind())
        .is_ok_and(|kind| kind.enrolment() == otp_core::Enrolment::GeneratedSecret)
}

/// The otpauth:// URI of a TOTP or HOTP device, as the device pages make it.
fn uri_text(
    state: &AppState,
    owner: &User,
    device: &Device,
) -> Result<zeroize::Zeroizing<String>, otp_core::Error> {
    let uri = otp_axum::manage::otpauth_uri(&state.web, device, &owner.username)?;
    Ok(uri.to_uri()?)
}

/// One line of a device's settings.
#[derive(Serialize)]
struct Setting {
    label: &'static str,
    value: String,
}

/// The settings of a device that are not secret, read from its state by an allow-list (the
/// secret, code hashes and replay state are never read).
fn settings(device: &Device) -> Vec<Setting> {
    let fields: &[(&str, &'static str)] = match device.kind() {
        "totp" => &[
            ("algorithm", "Algorithm"),
            ("digits", "Digits"),
            ("step", "Step (seconds)"),
            ("t0", "T0"),
            ("tolerance", "Tolerance (steps)"),
            ("drift", "Drift (steps)"),
        ],
        "hotp" => &[
            ("algorithm", "Algorithm"),
            ("digits", "Digits"),
            ("tolerance", "Tolerance (codes)"),
            ("counter", "Next counter"),
        ],
        "email" => &[("address", "Sends to")],
        _ => &[],
    };
    fields
        .iter()
        .filter_map(|(field, label)| {
            let value = match device.state().get(field)? {
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Number(number) => number.to_string(),
                _ => return None,
            };
            Some(Setting { label, value })
        })
        .collect()
}

/// A device as the pages show it.
#[derive(Serialize)]
struct DeviceView {
    id: String,
    kind: String,
    kind_label: String,
    name: String,
    confirmed: bool,
    created_at: String,
    last_used_at: Option<String>,
    failures: u32,
    last_failure_at: Option<String>,
    codes_remaining: Option<usize>,
    settings: Vec<Setting>,
    url: String,
    /// `None` for kinds without a URI and when sensitive data is hidden.
    config_url: Option<String>,
}

fn device_view(state: &AppState, device: &Device) -> Result<DeviceView, otp_core::Error> {
    let url = device_url(&device.id);
    let codes_remaining = state.otp().codes_remaining(device)?;
    let config_url = (has_uri(state, device) && !state.config.admin_hide_sensitive_data)
        .then(|| format!("{url}/config"));
    Ok(DeviceView {
        id: device.id.to_string(),
        kind: device.kind().to_owned(),
        kind_label: kind_label(state, device.kind()),
        name: device.name.clone(),
        confirmed: device.confirmed,
        created_at: utc(device.created_at),
        last_used_at: device.last_used_at.map(utc),
        failures: device.throttle.failure_count,
        last_failure_at: device.throttle.last_failure_at.map(utc),
        codes_remaining,
        settings: settings(device),
        url,
        config_url,
    })
}

/// A user as the pages show it.
#[derive(Serialize)]
struct AccountView {
    id: i64,
    key: String,
    username: String,
    email: Option<String>,
    is_staff: bool,
    created_at: String,
    url: String,
}

impl AccountView {
    fn of(user: &User) -> Self {
        Self {
            id: user.id,
            key: user.key(),
            username: user.username.clone(),
            email: user.email.clone(),
            is_staff: user.is_staff,
            created_at: utc(user.created_at),
            url: user_url(user.id),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Users.

#[derive(Default, Deserialize)]
#[serde(default)]
struct ListQuery {
    q: Option<String>,
    page: Option<String>,
}

/// A row of the users' list.
#[derive(Serialize)]
struct UserRow {
    #[serde(flatten)]
    account: AccountView,
    devices: usize,
    failures: u32,
}

fn list_url(search: &str, page: u64) -> String {
    let mut url = ADMIN_URL.to_owned();
    let mut sep = '?';
    if !search.is_empty() {
        let _ = write!(url, "{sep}q={}", encode_query_value(search));
        sep = '&';
    }
    if page > 1 {
        let _ = write!(url, "{sep}page={page}");
    }
    url
}

async fn user_list(
    State(state): State<AppState>,
    Staff { otp, .. }: Staff,
    Query(query): Query<ListQuery>,
) -> Reply {
    let search = query.q.unwrap_or_default().trim().to_owned();
    let page_number = query
        .page
        .and_then(|page| page.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let listed = state
        .users
        .list(&UserQuery {
            search: Some(search.clone()).filter(|s| !s.is_empty()),
            page: page_number,
            per_page: PER_PAGE,
        })
        .await?;
    let mut rows = Vec::with_capacity(listed.users.len());
    for user in &listed.users {
        let key = user.key();
        rows.push(UserRow {
            account: AccountView::of(user),
            devices: state.otp().devices_for_user(&key, None).await?.len(),
            failures: state.otp().account_failures(&key).await?,
        });
    }
    let pages = listed.pages();
    let current = u64::from(listed.page);
    let previous_url = (current > 1).then(|| list_url(&search, current.min(pages + 1) - 1));
    let next_url = (current < pages).then(|| list_url(&search, current + 1));
    let page = state.page(&otp).await?;
    Ok(state.render(
        "admin/users.html",
        StatusCode::OK,
        &page,
        minijinja::context! {
            rows,
            search,
            total => listed.total,
            page_number => listed.page,
            pages,
            previous_url,
            next_url,
        },
    ))
}

async fn user_page(
    State(state): State<AppState>,
    Staff { user: me, otp }: Staff,
    Path(id): Path<String>,
    Query(done): Query<DoneQuery>,
) -> Reply {
    let account = load_user(&state, &otp, &id).await?;
    let mut page = state.page(&otp).await?;
    page.notice = done_message(done.done.as_deref());
    render_user(&state, page, &me, &account, StatusCode::OK).await
}

async fn render_user(
    state: &AppState,
    page: crate::app::Page,
    me: &User,
    account: &User,
    status: StatusCode,
) -> Result<Response, Stop> {
    let key = account.key();
    let devices = state.otp().devices_for_user(&key, None).await?;
    let views = devices
        .iter()
        .map(|device| device_view(state, device))
        .collect::<Result<Vec<_>, _>>()?;
    // Codes are added to the first backup-code device (django-otp's `add_static_token`).
    let backup_device = devices
        .iter()
        .find(|device| device.kind() == "static")
        .map(|device| device.id.to_string());
    let failures = state.otp().account_failures(&key).await?;
    let budget = state.otp().settings().failure_budget;
    let url = user_url(account.id);
    let add_links: Vec<_> = CREATABLE
        .iter()
        .filter(|kind| state.otp().kind(kind).is_ok())
        .map(|kind| {
            minijinja::context! {
                label => kind_label(state, kind),
                url => format!("{url}/devices/new/{kind}"),
            }
        })
        .collect();
    Ok(state.render(
        "admin/user.html",
        status,
        &page,
        minijinja::context! {
            account => AccountView::of(account),
            devices => views,
            backup_device,
            failures,
            budget => budget.limit,
            locked => budget.is_exhausted(failures),
            is_self => me.id == account.id,
            hide_sensitive => state.config.admin_hide_sensitive_data,
            add_links,
        },
    ))
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct StaffForm {
    csrf_token: Option<String>,
    is_staff: String,
}

async fn set_staff(
    State(state): State<AppState>,
    Staff { user: me, otp }: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<StaffForm>, FormRejection>,
) -> Reply {
    let form = checked_form(&state, &otp, &headers, form, ADMIN_URL).await?;
    let account = load_user(&state, &otp, &id).await?;
    let back = user_url(account.id);
    if account.id == me.id {
        return Err(forbidden(
            &state,
            &otp,
            "You cannot change your own staff flag: ask another staff user.",
            &back,
        )
        .await);
    }
    let is_staff = match form.is_staff.as_str() {
        "true" => true,
        "false" => false,
        _ => {
            return Err(Stop::from(
                state
                    .error_page(
                        &otp,
                        StatusCode::BAD_REQUEST,
                        "The form could not be read",
                        "The staff flag must be true or false.",
                        Some(&back),
                    )
                    .await,
            ));
        }
    };
    state.users.set_staff(account.id, is_staff).await?;
    tracing::info!(admin = %me.key(), user = %account.key(), is_staff, "admin set the staff flag");
    let done = if is_staff {
        "staff-granted"
    } else {
        "staff-withdrawn"
    };
    Ok(see_other(&format!("{back}?done={done}")))
}

async fn reset_account(
    State(state): State<AppState>,
    Staff { user: me, otp }: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Reply {
    checked_form(&state, &otp, &headers, form, ADMIN_URL).await?;
    let account = load_user(&state, &otp, &id).await?;
    state.otp().reset_account(&account.key()).await?;
    tracing::info!(admin = %me.key(), user = %account.key(), "admin reset the account's failure budget");
    Ok(see_other(&format!(
        "{}?done=account-reset",
        user_url(account.id)
    )))
}

async fn add_backup_code(
    State(state): State<AppState>,
    Staff { user: me, otp }: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Reply {
    checked_form(&state, &otp, &headers, form, ADMIN_URL).await?;
    let account = load_user(&state, &otp, &id).await?;
    let (device, code) = state.otp().add_static_token(&account.key(), None).await?;
    tracing::info!(
        admin = %me.key(),
        user = %account.key(),
        device = %device.id,
        "admin added a backup code"
    );
    let page = state.page(&otp).await?;
    let codes = vec![code.to_string()];
    Ok(state.render(
        "admin/device_created.html",
        StatusCode::OK,
        &page,
        minijinja::context! {
            account => AccountView::of(&account),
            device => device_view(&state, &device)?,
            codes,
            added_code => true,
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// New devices.

/// The creation form of every kind; each kind reads its own fields. Not `Debug`: it may hold
/// a secret.
#[derive(Default, Deserialize)]
#[serde(default)]
struct NewDeviceForm {
    csrf_token: Option<String>,
    name: String,
    confirmed: Option<String>,
    /// TOTP and HOTP: base32, empty for a new random secret.
    secret: String,
    algorithm: String,
    digits: String,
    /// TOTP.
    step: String,
    /// Email.
    email: String,
    /// Backup codes.
    count: String,
}

/// What the creation form shows (the submitted values after a refusal, never the secret).
#[derive(Serialize)]
struct NewDeviceValues {
    name: String,
    confirmed: bool,
    algorithm: String,
    digits: String,
    step: String,
    email: String,
    count: String,
}

fn default_values(state: &AppState, kind: &str, account: &User) -> NewDeviceValues {
    NewDeviceValues {
        name: match kind {
            "totp" => "TOTP",
            "hotp" => "HOTP",
            "email" => "Email",
            _ => "Backup Code",
        }
        .to_owned(),
        confirmed: true,
        algorithm: "SHA1".to_owned(),
        digits: "6".to_owned(),
        step: "30".to_owned(),
        email: account.email.clone().unwrap_or_default(),
        count: state.otp().settings().static_codes.count.to_string(),
    }
}

/// Whether `kind` is one the admin creates and is registered.
fn creatable(state: &AppState, kind: &str) -> bool {
    CREATABLE.contains(&kind) && state.otp().kind(kind).is_ok()
}

fn render_new_device(
    state: &AppState,
    page: &crate::app::Page,
    status: StatusCode,
    account: &User,
    kind: &str,
    values: &NewDeviceValues,
) -> Response {
    state.render(
        "admin/device_new.html",
        status,
        page,
        minijinja::context! {
            account => AccountView::of(account),
            kind,
            kind_label => kind_label(state, kind),
            values,
            action => format!("{}/devices/new/{kind}", user_url(account.id)),
        },
    )
}

async fn new_device_page(
    State(state): State<AppState>,
    Staff { otp, .. }: Staff,
    Path((id, kind)): Path<(String, String)>,
) -> Reply {
    let account = load_user(&state, &otp, &id).await?;
    if !creatable(&state, &kind) {
        return Err(not_found(&state, &otp, "kind of device").await);
    }
    let page = state.page(&otp).await?;
    let values = default_values(&state, &kind, &account);
    Ok(render_new_device(
        &state,
        &page,
        StatusCode::OK,
        &account,
        &kind,
        &values,
    ))
}

/// A refused field of the creation form, for people.
struct Refused(String);

/// The message for people of a creation the form's values made fail; `None` for a failure
/// that is not the form's.
fn refusal(err: &otp_core::Error) -> Option<&'static str> {
    Some(match err {
        otp_core::Error::InvalidDeviceName => {
            "The name must be 1 to 64 characters without control characters."
        }
        otp_core::Error::InvalidEmailAddress => "The email address is not valid.",
        otp_core::Error::InvalidCodeCount(_) => "The number of codes must be from 1 to 100.",
        otp_core::Error::Oath(_) => "These settings cannot make codes.",
        _ => return None,
    })
}

fn parse_algorithm(text: &str) -> Result<Algorithm, Refused> {
    text.parse()
        .map_err(|_| Refused("The algorithm must be SHA1, SHA256 or SHA512.".to_owned()))
}

fn parse_digits(text: &str) -> Result<Digits, Refused> {
    text.trim()
        .parse::<u32>()
        .ok()
        .and_then(|n| Digits::new(n).ok())
        .ok_or_else(|| Refused("The number of digits must be from 6 to 10.".to_owned()))
}

fn parse_secret(text: &str) -> Result<Option<Secret>, Refused> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    Secret::from_base32(text).map(Some).map_err(|_| {
        Refused(
            "The secret must be base32 (A-Z and 2-7) of at least 128 bits (26 characters), or \
             empty for a new one."
                .to_owned(),
        )
    })
}

/// The fields TOTP and HOTP share: algorithm, digits and secret (the first refused is shown).
fn parse_oath_fields(form: &NewDeviceForm) -> Result<(Algorithm, Digits, Option<Secret>), Refused> {
    Ok((
        parse_algorithm(&form.algorithm)?,
        parse_digits(&form.digits)?,
        parse_secret(&form.secret)?,
    ))
}

/// What a created device shows once.
enum Made {
    Uri(Device),
    Codes(Device, Vec<String>),
    Plain(Device),
}

async fn make_device(
    state: &AppState,
    account: &User,
    kind: &str,
    form: &NewDeviceForm,
) -> Result<Result<Made, Refused>, Stop> {
    let otp = state.otp();
    let key = account.key();
    let confirmed = form.confirmed.is_some();
    let name = form.name.trim();
    let made = match kind {
        "totp" => {
            let step = match form.step.trim().parse::<u64>() {
                Ok(step @ 1..=86_400) => step,
                _ => {
                    return Ok(Err(Refused(
                        "The step must be a number of seconds from 1 to 86400.".to_owned(),
                    )));
                }
            };
            let (algorithm, digits, secret) = match parse_oath_fields(form) {
                Ok(fields) => fields,
                Err(refused) => return Ok(Err(refused)),
            };
            let options = TotpOptions {
                params: TotpParams::default()
                    .with_algorithm(algorithm)
                    .with_digits(digits)
                    .with_step(step),
                ..TotpOptions::default()
            };
            otp.create_totp_device(&key, name, secret, options, confirmed)
                .await
                .map(Made::Uri)
        }
        "hotp" => {
            let (algorithm, digits, secret) = match parse_oath_fields(form) {
                Ok(fields) => fields,
                Err(refused) => return Ok(Err(refused)),
            };
            let options = HotpOptions {
                params: HotpParams::default()
                    .with_algorithm(algorithm)
                    .with_digits(digits),
                ..HotpOptions::default()
            };
            otp.create_hotp_device(&key, name, secret, options, confirmed)
                .await
                .map(Made::Uri)
        }
        "email" => otp
            .create_email_device(&key, name, form.email.trim(), confirmed)
            .await
            .map(Made::Plain),
        _ => {
            let Ok(count) = form.count.trim().parse::<usize>() else {
                return Ok(Err(Refused(
                    "The number of codes must be from 1 to 100.".to_owned(),
                )));
            };
            otp.create_backup_codes(&key, name, Some(count))
                .await
                .map(|(device, codes)| {
                    Made::Codes(device, codes.iter().map(ToString::to_string).collect())
                })
        }
    };
    match made {
        Ok(made) => Ok(Ok(made)),
        Err(err) => match refusal(&err) {
            Some(message) => Ok(Err(Refused(message.to_owned()))),
            None => Err(err.into()),
        },
    }
}

async fn create_device(
    State(state): State<AppState>,
    Staff { user: me, otp }: Staff,
    Path((id, kind)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<NewDeviceForm>, FormRejection>,
) -> Reply {
    let form = checked_form(&state, &otp, &headers, form, ADMIN_URL).await?;
    let account = load_user(&state, &otp, &id).await?;
    if !creatable(&state, &kind) {
        return Err(not_found(&state, &otp, "kind of device").await);
    }
    let made = match make_device(&state, &account, &kind, &form).await? {
        Ok(made) => made,
        Err(Refused(message)) => {
            let mut page = state.page(&otp).await?;
            page.error = Some(message);
            let values = NewDeviceValues {
                name: form.name.clone(),
                confirmed: form.confirmed.is_some(),
                algorithm: form.algorithm.clone(),
                digits: form.digits.clone(),
                step: form.step.clone(),
                email: form.email.clone(),
                count: form.count.clone(),
            };
            return Ok(render_new_device(
                &state,
                &page,
                StatusCode::BAD_REQUEST,
                &account,
                &kind,
                &values,
            ));
        }
    };
    let (device, codes, uri) = match made {
        Made::Uri(device) => {
            let text = uri_text(&state, &account, &device)?;
            let svg = otp_oath::qr::svg(&text).map_err(otp_core::Error::from)?;
            let image = format!("data:image/svg+xml,{}", encode_query_value(&svg));
            (device, None, Some((text.to_string(), image)))
        }
        Made::Codes(device, codes) => (device, Some(codes), None),
        Made::Plain(device) => (device, None, None),
    };
    tracing::info!(
        admin = %me.key(),
        user = %account.key(),
        device = %device.id,
        "admin created a device"
    );
    let page = state.page(&otp).await?;
    let (uri, qr_image) = uri.unzip();
    Ok(state.render(
        "admin/device_created.html",
        StatusCode::CREATED,
        &page,
        minijinja::context! {
            account => AccountView::of(&account),
            device => device_view(&state, &device)?,
            codes,
            uri,
            qr_image,
            added_code => false,
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// Devices.

fn render_device(
    state: &AppState,
    page: &crate::app::Page,
    status: StatusCode,
    account: &User,
    device: &Device,
) -> Result<Response, Stop> {
    Ok(state.render(
        "admin/device.html",
        status,
        page,
        minijinja::context! {
            account => AccountView::of(account),
            device => device_view(state, device)?,
            hide_sensitive => state.config.admin_hide_sensitive_data,
        },
    ))
}

async fn device_page(
    State(state): State<AppState>,
    Staff { otp, .. }: Staff,
    Path((kind, number)): Path<(String, String)>,
    Query(done): Query<DoneQuery>,
) -> Reply {
    let (device, account) = load_device(&state, &otp, &kind, &number).await?;
    let mut page = state.page(&otp).await?;
    page.notice = done_message(done.done.as_deref());
    render_device(&state, &page, StatusCode::OK, &account, &device)
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct EditForm {
    csrf_token: Option<String>,
    name: String,
    confirmed: Option<String>,
}

async fn edit_device(
    State(state): State<AppState>,
    Staff { user: me, otp }: Staff,
    Path((kind, number)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<EditForm>, FormRejection>,
) -> Reply {
    let form = checked_form(&state, &otp, &headers, form, ADMIN_URL).await?;
    let (device, account) = load_device(&state, &otp, &kind, &number).await?;
    let confirmed = form.confirmed.is_some();
    let updated = state
        .otp()
        .update_device(&device.id, Some(form.name.trim()), Some(confirmed))
        .await;
    if let Err(otp_core::Error::InvalidDeviceName) = updated {
        let mut page = state.page(&otp).await?;
        page.error = Some("The name must be 1 to 64 characters without control characters.".into());
        return render_device(&state, &page, StatusCode::BAD_REQUEST, &account, &device);
    }
    still_there(&state, &otp, updated).await?;
    tracing::info!(admin = %me.key(), user = %account.key(), device = %device.id, confirmed, "admin changed a device");
    Ok(see_other(&format!("{}?done=saved", device_url(&device.id))))
}

async fn reset_throttle(
    State(state): State<AppState>,
    Staff { user: me, otp }: Staff,
    Path((kind, number)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Reply {
    let form = checked_form(&state, &otp, &headers, form, ADMIN_URL).await?;
    let (device, account) = load_device(&state, &otp, &kind, &number).await?;
    still_there(&state, &otp, state.otp().reset_throttle(&device.id).await).await?;
    tracing::info!(admin = %me.key(), user = %account.key(), device = %device.id, "admin cleared a device's throttling");
    let back = match form.back.as_deref() {
        Some("device") => device_url(&device.id),
        _ => user_url(account.id),
    };
    Ok(see_other(&format!("{back}?done=throttle-reset")))
}

async fn delete_page(
    State(state): State<AppState>,
    Staff { otp, .. }: Staff,
    Path((kind, number)): Path<(String, String)>,
) -> Reply {
    let (device, account) = load_device(&state, &otp, &kind, &number).await?;
    let page = state.page(&otp).await?;
    Ok(state.render(
        "admin/delete.html",
        StatusCode::OK,
        &page,
        minijinja::context! {
            account => AccountView::of(&account),
            device => device_view(&state, &device)?,
        },
    ))
}

async fn delete_device(
    State(state): State<AppState>,
    Staff { user: me, otp }: Staff,
    Path((kind, number)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Reply {
    checked_form(&state, &otp, &headers, form, ADMIN_URL).await?;
    let (device, account) = load_device(&state, &otp, &kind, &number).await?;
    still_there(&state, &otp, state.otp().remove_device(&device.id).await).await?;
    tracing::info!(admin = %me.key(), user = %account.key(), device = %device.id, "admin deleted a device");
    Ok(see_other(&format!("{}?done=deleted", user_url(account.id))))
}

/// The device of a config page or QR code: 403 when sensitive data is hidden (before any
/// lookup, as django-otp), 404 for a device without a URI.
async fn uri_device(
    state: &AppState,
    otp: &OtpSession,
    kind: &str,
    number: &str,
) -> Result<(Device, User), Stop> {
    if state.config.admin_hide_sensitive_data {
        return Err(Stop::from(
            state
                .error_page(
                    otp,
                    StatusCode::FORBIDDEN,
                    "Hidden",
                    "This server hides the secrets of devices from the admin \
                     (OTP_ADMIN_HIDE_SENSITIVE_DATA).",
                    None,
                )
                .await,
        ));
    }
    let (device, account) = load_device(state, otp, kind, number).await?;
    if !has_uri(state, &device) {
        return Err(not_found(state, otp, "configuration").await);
    }
    Ok((device, account))
}

async fn config_page(
    State(state): State<AppState>,
    Staff { user: me, otp }: Staff,
    Path((kind, number)): Path<(String, String)>,
) -> Reply {
    let (device, account) = uri_device(&state, &otp, &kind, &number).await?;
    let text = uri_text(&state, &account, &device)?;
    tracing::info!(admin = %me.key(), user = %account.key(), device = %device.id, "admin viewed a device's configuration");
    let page = state.page(&otp).await?;
    let view = device_view(&state, &device)?;
    Ok(state.render(
        "admin/config.html",
        StatusCode::OK,
        &page,
        minijinja::context! {
            account => AccountView::of(&account),
            qr_url => format!("{}/qr.svg", view.url),
            device => view,
            uri => text.as_str(),
        },
    ))
}

async fn qr_code(
    State(state): State<AppState>,
    Staff { otp, .. }: Staff,
    Path((kind, number)): Path<(String, String)>,
) -> Reply {
    let (device, account) = uri_device(&state, &otp, &kind, &number).await?;
    let text = uri_text(&state, &account, &device)?;
    let svg = otp_oath::qr::svg(&text).map_err(otp_core::Error::from)?;
    Ok(no_store(
        (
            [(header::CONTENT_TYPE, "image/svg+xml")],
            svg.as_str().to_owned(),
        )
            .into_response(),
    ))
}
