//! Self-service devices: a logged-in user lists their devices, adds an authenticator app
//! (TOTP), a hardware token (HOTP), email codes or backup codes, renames and removes them.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /account/devices` | the devices (name, kind, status, created, last used, backup codes left) with rename, remove and "new backup codes" forms, and the forms that add devices |
//! | `POST /account/devices/{kind}` | a new device of any kind users enrol ([`otp_core::DeviceKind::enrol`]), named `name`; then, as the kind's [`Enrolment`] says: |
//! | … a generated secret (`totp`, `hotp`) | an **unconfirmed** device with a fresh secret; 303 to its confirmation page |
//! | … a delivered code (`email`) | `email` (the user's address by default): an unconfirmed device, and a code sent to it; 303 to its confirmation page |
//! | … codes shown once (`static`) | codes, shown on the response page this once, with a download link |
//! | `GET /account/devices/{kind}/{number}/confirm` | TOTP and HOTP: the QR code (an `<img>` of `qr.svg`), the secret in base32 in groups of four, the `otpauth://` URI; email: where the code went, a "send another code" button; both: the code field |
//! | `POST /account/devices/{kind}/{number}/confirm` | `token`: confirms the device if the code is right (the code is spent, as at a login); else the page again with the error, the device still unconfirmed |
//! | `POST /account/devices/{kind}/{number}/resend` | email: another code, if the cooldown allows |
//! | `GET /account/devices/{kind}/{number}/qr.svg` | the QR code of an unconfirmed TOTP or HOTP device, made here (`image/svg+xml`) |
//! | `POST /account/devices/{kind}/{number}/regenerate` | backup codes: new codes replace the old ones (fresh second factor) |
//! | `POST /account/devices/{kind}/{number}/rename` | `name` |
//! | `POST /account/devices/{kind}/{number}/remove` | removes the device (fresh second factor if it is the last confirmed one) |
//! | `GET /static/devices.css` | the stylesheet of these pages |
//!
//! Device ids are `KIND/NUMBER` (`totp/42`), so they take two path segments. Every form
//! carries the session's CSRF token. The JSON API ([`crate::app::api`]) offers the same
//! operations, with the same rules, which live here.
//!
//! ## Who may do what
//!
//! - Every page is for a logged-in user (others go to the login page). A user with at least
//!   one **confirmed** device must have verified this session with one (others go to
//!   `/account/verify?next=...`); a user with none, such as one who has just signed up, may
//!   enrol their first device with the password alone.
//! - A device id that is malformed, unknown or another user's is a 404, whatever is asked of
//!   it: another user's device is never shown, changed or told apart from a missing one.
//! - Every change to the second factor (adding a device, confirming one, removing a confirmed
//!   one, new backup codes) follows the library's [step-up rule](otp_axum::step_up): the
//!   session must have been verified within `OTP_STEP_UP_SECONDS` (5 minutes) by a device it
//!   did not enrol itself. Otherwise the user is sent to `/account/verify`, which verifies the
//!   session again (and cycles its id) and comes back. A session left open, verified hours
//!   ago, or stolen, cannot so add its own device and then switch the owner's off. Renaming
//!   and removing an unconfirmed device never need it, nor does anything for a user without a
//!   confirmed device (there is nothing to verify with).
//! - Confirming a device does not refresh the session's verification: a code of a device the
//!   user has just added proves nothing about the session. Only the **first** confirmed
//!   device (a new TOTP, HOTP or email device confirmed with its code, or new backup codes) of
//!   a user who had none marks the session verified by it, so that the user is not locked out
//!   of these pages by their own enrolment; before it the password was the only factor anyway.
//!
//! ## Secrets
//!
//! - The secret of a TOTP or HOTP device is shown (QR code, base32, URI) only while the
//!   device is unconfirmed: once confirmed, its confirmation page and QR code are gone (303 to
//!   the list and 404). The QR code is drawn here by `otp_oath::qr::svg`: the secret goes to
//!   no chart service. The URI names the user by username and the site by `OTP_TOTP_ISSUER`,
//!   else the site name.
//! - The confirmation code is spent: for TOTP its time step is the device's last, so the same
//!   code is refused at the next login.
//! - New backup codes are shown once, on the response to the `POST` that made them. Its
//!   download link carries them in the page itself (a `data:` URL), so they are never stored
//!   anywhere, not even in the session: only their hashes are kept in the database.
//! - Pages and images that show a secret or a code, like every page, are sent with
//!   `Cache-Control: no-store`. The pages hold no script and no inline style (the CSP forbids
//!   both); the QR code is an `<img>` of a same-site SVG.
//!
//! A user has at most [`MAX_DEVICES`] devices, confirmed or not, and one set of backup codes.

use axum::Router;
use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Form, FromRequestParts, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use otp_axum::manage::{self, ManageError};
use otp_axum::{FlowError, OtpSession};
use otp_core::{BackupCode, Device, DeviceId, EnrolInput, Enrolment};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{bad_form, see_other};
use crate::app::templates::{DEVICES_CSS, URLS};
use crate::app::{AppState, CurrentUser, Error, Reply, User, encode_query_value, no_store};
use crate::dates::utc_minutes;

/// The most devices a user may have, confirmed or not.
pub const MAX_DEVICES: usize = 20;

/// The most unconfirmed devices waiting for a delivered code (email) a user may have: each
/// sends a code to an address nobody has shown to be theirs yet.
pub const MAX_UNCONFIRMED_DELIVERED: usize = 3;

// ---------------------------------------------------------------------------------------------
// Who may manage devices.

/// A logged-in user who may manage their devices in this request: the extractor of the device
/// pages (anonymous users are sent to the login page, users whose session lacks the second
/// factor they have to the verification page).
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    /// The user.
    pub(crate) user: User,
    /// The request's OTP state.
    pub(crate) otp: OtpSession,
}

impl Owner {
    /// Whether the session may change the user's second factor now (the library's
    /// [step-up rule](otp_axum::step_up)).
    pub(crate) async fn may_change_devices(&self) -> Result<bool, Error> {
        Ok(self.otp.step_up().await?.allows_change())
    }
}

/// The outcome of the access rule for a logged-in user.
pub(crate) enum Access {
    /// The user may manage their devices.
    Granted(Owner),
    /// The user has a confirmed device and this session is not verified.
    OtpRequired(OtpSession),
}

/// Applies the access rule to a logged-in `user`.
///
/// # Errors
///
/// A database failure.
pub(crate) async fn access(state: &AppState, user: User, otp: OtpSession) -> Result<Access, Error> {
    let has_confirmed = state.otp().user_has_device(&user.key(), Some(true)).await?;
    if has_confirmed && !otp.is_verified() {
        return Ok(Access::OtpRequired(otp));
    }
    Ok(Access::Granted(Owner { user, otp }))
}

impl FromRequestParts<AppState> for Owner {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let CurrentUser { user, otp } = CurrentUser::from_request_parts(parts, state).await?;
        match access(state, user, otp).await {
            Ok(Access::Granted(owner)) => Ok(owner),
            Ok(Access::OtpRequired(otp)) => {
                // After the verification the browser comes back with a GET: a form's target
                // cannot be it.
                let next = match parts.method {
                    Method::GET => parts
                        .uri
                        .path_and_query()
                        .map_or(URLS.devices, |pq| pq.as_str()),
                    _ => URLS.devices,
                };
                Err(to_verify(&otp, next))
            }
            Err(err) => Err(err.into_response()),
        }
    }
}

/// The redirect to the verification page, which comes back to `next`.
pub(crate) fn to_verify(otp: &OtpSession, next: &str) -> Response {
    let field = &otp.web().config().redirect_field;
    let to = format!("{}?{field}={}", URLS.verify, encode_query_value(next));
    no_store(Redirect::to(&to).into_response())
}

// ---------------------------------------------------------------------------------------------
// Refusals: the library's ([`otp_axum::manage`]), and the server's failures.

pub(crate) use otp_axum::manage::{DeviceInfo, Refusal};

/// A failed operation on devices: refused, or the server failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The user's doing.
    Refused(Refusal),
    /// The server's.
    Server(Error),
}

impl From<ManageError> for Failure {
    fn from(err: ManageError) -> Self {
        match err {
            ManageError::Refused(refusal) => Self::Refused(refusal),
            ManageError::Failed(err) => Self::Server(err.into()),
        }
    }
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

impl From<FlowError> for Failure {
    fn from(flow: FlowError) -> Self {
        Self::Refused(Refusal::Flow(flow))
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Self::Server(err)
    }
}

impl From<otp_axum::WebError> for Failure {
    fn from(err: otp_axum::WebError) -> Self {
        Self::Server(err.into())
    }
}

impl From<otp_core::Error> for Failure {
    fn from(err: otp_core::Error) -> Self {
        ManageError::from(err).into()
    }
}

// ---------------------------------------------------------------------------------------------
// The operations are the library's ([`otp_axum::manage`]).

/// A device id from the two path segments `KIND/NUMBER`; `None` if they break the grammar.
pub(crate) fn parse_id(kind: &str, number: &str) -> Option<DeviceId> {
    format!("{kind}/{number}").parse().ok()
}

// ---------------------------------------------------------------------------------------------
// The pages.

/// The routes of the device pages, merged into the app's router (paths are absolute).
pub fn routes() -> Router<AppState> {
    let device = |action: &str| format!("{}/{{kind}}/{{number}}/{action}", URLS.devices);
    Router::new()
        .route(URLS.devices, get(list_page))
        .route(&format!("{}/{{kind}}", URLS.devices), post(add_device))
        .route(&device("confirm"), get(confirm_page).post(confirm_submit))
        .route(&device("resend"), post(resend))
        .route(&device("qr.svg"), get(qr_svg))
        .route(&device("regenerate"), post(regenerate))
        .route(&device("rename"), post(rename_submit))
        .route(&device("remove"), post(remove_submit))
        .route(URLS.devices_css, get(stylesheet))
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        DEVICES_CSS,
    )
        .into_response()
}

/// The page of a device and its actions: `/account/devices/KIND/NUMBER`.
fn device_url(id: &DeviceId) -> String {
    format!("{}/{id}", URLS.devices)
}

/// The confirmation page of a device.
fn confirm_url(id: &DeviceId) -> String {
    format!("{}/confirm", device_url(id))
}

/// `/account/devices?done=WHAT`, which shows a fixed notice.
fn list_with_notice(done: &str) -> Response {
    see_other(&format!("{}?done={done}", URLS.devices))
}

/// The notice of `/account/devices?done=WHAT`: fixed texts only, nothing from the query.
fn done_notice(done: &str) -> Option<&'static str> {
    Some(match done {
        "confirmed" => {
            "Your device is set up: you will be asked for a code from it when you log in."
        }
        "renamed" => "The device was renamed.",
        "removed" => "The device was removed.",
        _ => return None,
    })
}

/// A device as the list shows it.
#[derive(Serialize)]
struct DeviceView {
    #[serde(flatten)]
    info: DeviceInfo,
    kind_label: String,
    created: String,
    last_used: Option<String>,
    /// `/account/devices/KIND/NUMBER`, below which its actions are.
    url: String,
    /// Its confirmation page, while it is unconfirmed and of a kind confirmed here.
    confirm_url: Option<String>,
    /// Whether it is the user's only confirmed device.
    last_confirmed: bool,
}

impl DeviceView {
    fn new(otp: &OtpSession, device: &Device, confirmed: usize) -> Result<Self, Error> {
        let url = device_url(&device.id);
        let confirmable = manage::awaits_confirmation(otp, device);
        Ok(Self {
            info: DeviceInfo::new(otp, device)?,
            kind_label: manage::kind_label(otp, device.kind()).to_owned(),
            // In UTC: the table's headings say so.
            created: utc_minutes(device.created_at.unix_secs()),
            last_used: device.last_used_at.map(|at| utc_minutes(at.unix_secs())),
            confirm_url: confirmable.then(|| format!("{url}/confirm")),
            last_confirmed: device.confirmed && confirmed == 1,
            url,
        })
    }
}

/// The form of every device page (each uses some of the fields). Not `Debug`: it holds a code.
#[derive(Default, Deserialize)]
#[serde(default)]
struct DeviceForm {
    name: String,
    email: String,
    token: String,
    csrf_token: Option<String>,
}

/// The form, once its CSRF token and origin are checked; else the page to send.
async fn read_form(
    state: &AppState,
    owner: &Owner,
    headers: &HeaderMap,
    form: Result<Form<DeviceForm>, FormRejection>,
    back_url: &str,
) -> Result<DeviceForm, Response> {
    let Ok(Form(form)) = form else {
        return Err(bad_form(state, &owner.otp, back_url).await);
    };
    state
        .check_form(&owner.otp, headers, form.csrf_token.as_deref(), back_url)
        .await?;
    Ok(form)
}

/// The device id of the path; `None` for a malformed one.
pub(crate) fn path_id(path: Result<Path<(String, String)>, PathRejection>) -> Option<DeviceId> {
    let Path((kind, number)) = path.ok()?;
    parse_id(&kind, &number)
}

/// The 404 page of a device that is not the user's (or is not there, or not of the right kind).
async fn not_found(state: &AppState, owner: &Owner) -> Response {
    state
        .error_page(
            &owner.otp,
            StatusCode::NOT_FOUND,
            "No such device",
            &Refusal::NotFound.message(),
            None,
        )
        .await
}

/// The user's device of the path, or the 404 page.
async fn path_device(
    state: &AppState,
    owner: &Owner,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Device, Response> {
    let Some(id) = path_id(path) else {
        return Err(not_found(state, owner).await);
    };
    match manage::find(&owner.otp, &id).await.map_err(Failure::from) {
        Ok(device) => Ok(device),
        Err(Failure::Refused(_)) => Err(not_found(state, owner).await),
        Err(Failure::Server(err)) => Err(err.into_response()),
    }
}

/// Adds `Retry-After` when waiting helps.
pub(crate) fn with_retry_after(mut response: Response, refusal: &Refusal) -> Response {
    if let Some(seconds) = refusal.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The list, with a status and messages.
async fn devices_page(
    state: &AppState,
    owner: &Owner,
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
) -> Reply {
    let devices = manage::devices(&owner.otp).await?;
    let confirmed = devices.iter().filter(|device| device.confirmed).count();
    let views = devices
        .iter()
        .map(|device| DeviceView::new(&owner.otp, device, confirmed))
        .collect::<Result<Vec<_>, _>>()?;
    let addable = manage::addable_kinds(&owner.otp, &devices);
    let mut page = state.page(&owner.otp).await?;
    page.error = error;
    page.notice = notice;
    Ok(state.render(
        "devices.html",
        status,
        &page,
        minijinja::context! {
            devices => views,
            default_email => owner.user.email,
            addable,
            room => devices.len() < MAX_DEVICES,
            max_devices => MAX_DEVICES,
            fresh => owner.may_change_devices().await?,
        },
    ))
}

/// What a refused action on the list shows: the list with the message, the verification page
/// for a stale session, the 404 page for a device that is not the user's.
async fn refused_on_list(state: &AppState, owner: &Owner, failure: impl Into<Failure>) -> Reply {
    let refusal = match failure.into() {
        Failure::Refused(refusal) => refusal,
        Failure::Server(err) => return Err(err.into()),
    };
    Ok(match refusal {
        Refusal::NotFound => not_found(state, owner).await,
        Refusal::FreshVerificationRequired => to_verify(&owner.otp, URLS.devices),
        refusal => with_retry_after(
            devices_page(
                state,
                owner,
                refusal.status(),
                Some(refusal.message()),
                None,
            )
            .await?,
            &refusal,
        ),
    })
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ListQuery {
    done: String,
}

async fn list_page(
    State(state): State<AppState>,
    owner: Owner,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Reply {
    let notice = query
        .ok()
        .and_then(|Query(query)| done_notice(&query.done))
        .map(str::to_owned);
    devices_page(&state, &owner, StatusCode::OK, None, notice).await
}

/// Adds a device of the kind in the path, and answers as its enrolment goes on: the
/// confirmation page of a kind with a secret to show, the code sent for an address to
/// confirm, the codes shown once.
async fn add_device(
    State(state): State<AppState>,
    mut owner: Owner,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    form: Result<Form<DeviceForm>, FormRejection>,
) -> Reply {
    let Ok(Path(kind)) = path else {
        return Ok(not_found(&state, &owner).await);
    };
    let form = read_form(&state, &owner, &headers, form, URLS.devices).await?;
    let input = EnrolInput::none().with_address(form.email.clone());
    let (device, codes) = match manage::enrol(&mut owner.otp, &kind, Some(&form.name), &input).await
    {
        Ok(enrolled) => enrolled,
        Err(failure) => return refused_on_list(&state, &owner, failure).await,
    };
    let url = confirm_url(&device.id);
    match state.otp().kind(device.kind())?.enrolment() {
        Enrolment::DeliveredCode => match manage::send_code(&owner.otp, &device)
            .await
            .map_err(Failure::from)
        {
            Ok(_) => Ok(see_other(&format!("{url}?sent=1"))),
            // The device stays: its page offers to send again.
            Err(Failure::Refused(_)) => Ok(see_other(&format!("{url}?unsent=1"))),
            Err(Failure::Server(err)) => Err(err.into()),
        },
        _ if device.confirmed => codes_page(&state, &owner, &device, &codes, false).await,
        _ => Ok(see_other(&url)),
    }
}

/// The page of new backup codes, which shows them this once.
async fn codes_page(
    state: &AppState,
    owner: &Owner,
    device: &Device,
    codes: &[BackupCode],
    replaced: bool,
) -> Reply {
    let shown: Vec<Zeroizing<String>> = codes
        .iter()
        .map(|code| Zeroizing::new(code.to_string()))
        .collect();
    let plain: Zeroizing<Vec<String>> =
        Zeroizing::new(shown.iter().map(|code| code.to_string()).collect());
    let mut text = Zeroizing::new(format!(
        "Backup codes of {} at {}\nEach code works once. Keep them somewhere safe.\n\n",
        owner.user.username, state.config.site_name
    ));
    for code in plain.iter() {
        text.push_str(code);
        text.push('\n');
    }
    // The download is in the page: the codes are kept nowhere for a later request.
    let download_url = Zeroizing::new(format!(
        "data:text/plain;charset=utf-8,{}",
        encode_query_value(&text)
    ));
    let page = state.page(&owner.otp).await?;
    Ok(state.render(
        "backup_codes.html",
        StatusCode::OK,
        &page,
        minijinja::context! {
            device => DeviceInfo::new(&owner.otp, device)?,
            codes => &*plain,
            replaced,
            download_url => &*download_url,
        },
    ))
}

async fn regenerate(
    State(state): State<AppState>,
    owner: Owner,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    form: Result<Form<DeviceForm>, FormRejection>,
) -> Reply {
    let device = path_device(&state, &owner, path).await?;
    read_form(&state, &owner, &headers, form, URLS.devices).await?;
    match manage::regenerate_codes(&owner.otp, &device, None)
        .await
        .map_err(Failure::from)
    {
        Ok(codes) => codes_page(&state, &owner, &device, &codes, true).await,
        Err(failure) => refused_on_list(&state, &owner, failure).await,
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct ConfirmQuery {
    sent: Option<String>,
    unsent: Option<String>,
}

async fn confirm_page(
    State(state): State<AppState>,
    owner: Owner,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<ConfirmQuery>, QueryRejection>,
) -> Reply {
    let device = path_device(&state, &owner, path).await?;
    if device.confirmed {
        return Ok(see_other(URLS.devices));
    }
    let query = query.map(|Query(query)| query).unwrap_or_default();
    let (error, notice) = if query.unsent.is_some() {
        (Some(FlowError::ChallengeFailed.message()), None)
    } else if query.sent.is_some() {
        (None, Some("A code was sent.".to_owned()))
    } else {
        (None, None)
    };
    confirm_response(&state, &owner, &device, StatusCode::OK, error, notice).await
}

/// The confirmation page of `device` again, showing why the last step was refused (with
/// `Retry-After` when waiting helps).
async fn refused_on_confirm_page(
    state: &AppState,
    owner: &Owner,
    device: &Device,
    refusal: &Refusal,
) -> Reply {
    let page = confirm_response(
        state,
        owner,
        device,
        refusal.status(),
        Some(refusal.message()),
        None,
    )
    .await?;
    Ok(with_retry_after(page, refusal))
}

/// The confirmation page of `device`, with a status and messages.
async fn confirm_response(
    state: &AppState,
    owner: &Owner,
    device: &Device,
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
) -> Reply {
    if !manage::is_confirmed_by_proof(&owner.otp, device.kind()) {
        return Ok(not_found(state, owner).await);
    }
    let url = device_url(&device.id);
    let mut page = state.page(&owner.otp).await?;
    page.error = error;
    page.notice = notice;
    let base = minijinja::context! {
        device => DeviceView::new(&owner.otp, device, 0)?,
        form_url => format!("{url}/confirm"),
        resend_url => format!("{url}/resend"),
        remove_url => format!("{url}/remove"),
    };
    let recipient = owner
        .otp
        .web()
        .otp()
        .kind(device.kind())?
        .recipient(device.state())?;
    let extra = if let Some(address) = recipient {
        minijinja::context! { address, ..base }
    } else {
        let uri = match manage::provisioning_uri(&owner.otp, device)
            .await
            .map_err(Failure::from)
        {
            Ok(uri) => uri,
            Err(Failure::Refused(_)) => return Ok(not_found(state, owner).await),
            Err(Failure::Server(err)) => return Err(err.into()),
        };
        let text = uri.to_uri().map_err(otp_core::Error::from)?;
        let secret = uri.secret.to_base32();
        let groups: Zeroizing<String> = Zeroizing::new(
            secret
                .as_bytes()
                .chunks(4)
                .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
                .collect::<Vec<_>>()
                .join(" "),
        );
        minijinja::context! {
            secret_groups => &*groups,
            uri => &**text,
            qr_url => format!("{url}/qr.svg"),
            digits => uri.digits.get(),
            ..base
        }
    };
    Ok(state.render("device_confirm.html", status, &page, extra))
}

async fn confirm_submit(
    State(state): State<AppState>,
    mut owner: Owner,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    form: Result<Form<DeviceForm>, FormRejection>,
) -> Reply {
    let device = path_device(&state, &owner, path).await?;
    let form = read_form(&state, &owner, &headers, form, &confirm_url(&device.id)).await?;
    match manage::confirm(&mut owner.otp, &device, &form.token)
        .await
        .map_err(Failure::from)
    {
        Ok(_) | Err(Failure::Refused(Refusal::AlreadyConfirmed)) => {
            Ok(list_with_notice("confirmed"))
        }
        Err(Failure::Refused(Refusal::NotFound)) => Ok(not_found(&state, &owner).await),
        Err(Failure::Refused(refusal)) => {
            refused_on_confirm_page(&state, &owner, &device, &refusal).await
        }
        Err(Failure::Server(err)) => Err(err.into()),
    }
}

async fn resend(
    State(state): State<AppState>,
    owner: Owner,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    form: Result<Form<DeviceForm>, FormRejection>,
) -> Reply {
    let device = path_device(&state, &owner, path).await?;
    read_form(&state, &owner, &headers, form, &confirm_url(&device.id)).await?;
    let delivered = owner
        .otp
        .web()
        .otp()
        .kind(device.kind())
        .is_ok_and(|kind| kind.enrolment() == Enrolment::DeliveredCode);
    if !delivered {
        return Ok(not_found(&state, &owner).await);
    }
    match manage::send_code(&owner.otp, &device)
        .await
        .map_err(Failure::from)
    {
        Ok(recipient) => {
            let notice = format!("A new code was sent to {recipient}.");
            confirm_response(&state, &owner, &device, StatusCode::OK, None, Some(notice)).await
        }
        Err(Failure::Refused(Refusal::AlreadyConfirmed)) => Ok(see_other(URLS.devices)),
        Err(Failure::Refused(refusal)) => {
            refused_on_confirm_page(&state, &owner, &device, &refusal).await
        }
        Err(Failure::Server(err)) => Err(err.into()),
    }
}

async fn qr_svg(
    owner: Owner,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, Error> {
    let not_found = || no_store((StatusCode::NOT_FOUND, "no such device\n").into_response());
    let Some(id) = path_id(path) else {
        return Ok(not_found());
    };
    let device = match manage::find(&owner.otp, &id).await.map_err(Failure::from) {
        Ok(device) => device,
        Err(Failure::Refused(_)) => return Ok(not_found()),
        Err(Failure::Server(err)) => return Err(err),
    };
    let uri = match manage::provisioning_uri(&owner.otp, &device)
        .await
        .map_err(Failure::from)
    {
        Ok(uri) => uri,
        Err(Failure::Refused(_)) => return Ok(not_found()),
        Err(Failure::Server(err)) => return Err(err),
    };
    let text = uri.to_uri().map_err(otp_core::Error::from)?;
    let svg = otp_oath::qr::svg(&text).map_err(otp_core::Error::from)?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg.to_string(),
    )
        .into_response())
}

async fn rename_submit(
    State(state): State<AppState>,
    owner: Owner,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    form: Result<Form<DeviceForm>, FormRejection>,
) -> Reply {
    let device = path_device(&state, &owner, path).await?;
    let form = read_form(&state, &owner, &headers, form, URLS.devices).await?;
    match manage::rename(&owner.otp, &device, &form.name)
        .await
        .map_err(Failure::from)
    {
        Ok(_) => Ok(list_with_notice("renamed")),
        Err(failure) => refused_on_list(&state, &owner, failure).await,
    }
}

async fn remove_submit(
    State(state): State<AppState>,
    owner: Owner,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    form: Result<Form<DeviceForm>, FormRejection>,
) -> Reply {
    let device = path_device(&state, &owner, path).await?;
    read_form(&state, &owner, &headers, form, URLS.devices).await?;
    match manage::remove(&owner.otp, &device)
        .await
        .map_err(Failure::from)
    {
        Ok(()) => Ok(list_with_notice("removed")),
        Err(failure) => refused_on_list(&state, &owner, failure).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_take_two_segments_and_the_strict_grammar() {
        assert_eq!(parse_id("totp", "42"), Some("totp/42".parse().unwrap()));
        for (kind, number) in [
            ("totp", "0"),
            ("totp", "+1"),
            ("totp", "01"),
            ("TOTP", "1"),
            ("totp", "1/2"),
            ("", "1"),
            ("totp", "99999999999999999999"),
        ] {
            assert_eq!(parse_id(kind, number), None, "{kind}/{number}");
        }
    }

    #[test]
    fn notices_come_from_a_fixed_list() {
        assert!(done_notice("removed").is_some());
        assert_eq!(done_notice("<script>"), None);
    }
}
