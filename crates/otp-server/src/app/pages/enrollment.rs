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
use otp_axum::{FlowError, OtpSession};
use otp_core::{
    BackupCode, ChallengeOutcome, Device, DeviceId, EnrolInput, Enrolment, NotAllowedReason,
    Timestamp, VerifyOutcome,
};
use otp_oath::OtpAuthUri;
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
    /// Whether the user has a confirmed device (then the session is verified).
    pub(crate) has_confirmed: bool,
}

impl Owner {
    /// The user's key in the framework.
    pub(crate) fn key(&self) -> String {
        self.user.key()
    }

    /// Whether the session may change the user's second factor now (the library's
    /// [step-up rule](otp_axum::step_up)).
    pub(crate) async fn may_change_devices(&self) -> Result<bool, Error> {
        Ok(self.otp.step_up().await?.allows_change())
    }

    /// [`Refusal::FreshVerificationRequired`] unless the session may change the user's
    /// second factor now.
    pub(crate) async fn require_step_up(&self) -> Result<(), Failure> {
        if self.may_change_devices().await? {
            Ok(())
        } else {
            Err(Refusal::FreshVerificationRequired.into())
        }
    }
}

/// The step-up window in whole minutes (at least 1), for messages.
pub(crate) fn step_up_minutes(otp: &OtpSession) -> u64 {
    (otp.web().config().step_up_window.as_secs() / 60).max(1)
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
    Ok(Access::Granted(Owner {
        user,
        otp,
        has_confirmed,
    }))
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
// Refusals.

/// Why an operation on devices was refused: the user's doing, with a stable code, a status
/// and a message for people. Server failures are [`Error`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No device of the user's has that id (or it is not of a kind the operation takes).
    NotFound,
    /// The user has [`MAX_DEVICES`] devices.
    TooManyDevices,
    /// The user has [`MAX_UNCONFIRMED_DELIVERED`] devices waiting for a delivered code.
    TooManyUnconfirmed,
    /// The user has a device of a kind that allows one per user (backup codes: new ones
    /// replace them); with the kind's label.
    OnePerUser(String),
    /// A device name that is blank, too long or holds control characters.
    InvalidName,
    /// An email address that cannot be one.
    InvalidEmail,
    /// A number of backup codes outside 1 to 100.
    InvalidCount,
    /// The device is confirmed already.
    AlreadyConfirmed,
    /// The session must verify again (the step-up rule) for this.
    FreshVerificationRequired,
    /// A refusal of the verification flows: a wrong code, throttling, a cooldown.
    Flow(FlowError),
}

impl Refusal {
    /// The stable code, as in JSON bodies.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::TooManyDevices => "too_many_devices",
            Self::TooManyUnconfirmed => "too_many_unconfirmed_devices",
            Self::OnePerUser(_) => "one_per_user",
            Self::InvalidName => "invalid_name",
            Self::InvalidEmail => "invalid_email",
            Self::InvalidCount => "invalid_count",
            Self::AlreadyConfirmed => "already_confirmed",
            Self::FreshVerificationRequired => "fresh_verification_required",
            Self::Flow(flow) => flow.code(),
        }
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::TooManyDevices
            | Self::TooManyUnconfirmed
            | Self::OnePerUser(_)
            | Self::AlreadyConfirmed => StatusCode::CONFLICT,
            Self::InvalidName | Self::InvalidEmail | Self::InvalidCount => StatusCode::BAD_REQUEST,
            Self::FreshVerificationRequired => StatusCode::FORBIDDEN,
            Self::Flow(flow) => flow.status(),
        }
    }

    /// A message for people.
    pub(crate) fn message(&self) -> String {
        match self {
            Self::NotFound => "You have no such device.".into(),
            Self::TooManyDevices => {
                format!("You have {MAX_DEVICES} devices, the most there may be. Remove one first.")
            }
            Self::TooManyUnconfirmed => format!(
                "You have {MAX_UNCONFIRMED_DELIVERED} devices waiting for their code. Confirm or \
                 remove one first."
            ),
            Self::OnePerUser(label) => format!(
                "You have {} already. Make new ones instead: they replace the old.",
                label.to_lowercase()
            ),
            Self::InvalidName => {
                "The name must be 1 to 64 characters, without control characters.".into()
            }
            Self::InvalidEmail => "The email address is not valid.".into(),
            Self::InvalidCount => "The number of backup codes must be 1 to 100.".into(),
            Self::AlreadyConfirmed => "This device is set up already.".into(),
            Self::FreshVerificationRequired => "Please verify it's you again, with a device \
                 you had before this session: changes to your second factor need a recent \
                 verification."
                .into(),
            Self::Flow(flow) => match flow.retry_after() {
                Some(seconds) => format!("{} (Wait {seconds} s.)", flow.message()),
                None => flow.message(),
            },
        }
    }

    /// Seconds to wait, for `Retry-After`.
    pub(crate) fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Flow(flow) => flow.retry_after(),
            _ => None,
        }
    }
}

/// A failed operation on devices: refused, or the server failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The user's doing.
    Refused(Refusal),
    /// The server's.
    Server(Error),
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
        use otp_core::Error as Core;
        match err {
            Core::DeviceNotFound | Core::UnknownKind(_) | Core::InvalidDeviceId(_) => {
                Refusal::NotFound.into()
            }
            Core::InvalidDeviceName => Refusal::InvalidName.into(),
            Core::InvalidEmailAddress => Refusal::InvalidEmail.into(),
            Core::InvalidCodeCount(_) => Refusal::InvalidCount.into(),
            Core::NotSelfService(_) => Refusal::NotFound.into(),
            // otp-core logged the detail, which is for operators only.
            Core::Delivery(_) => FlowError::ChallengeFailed.into(),
            other => Self::Server(other.into()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The operations, shared by the pages and the JSON API.

/// A device id from the two path segments `KIND/NUMBER`; `None` if they break the grammar.
pub(crate) fn parse_id(kind: &str, number: &str) -> Option<DeviceId> {
    format!("{kind}/{number}").parse().ok()
}

/// A device as the user sees it (the JSON API's representation): no secret, no code.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DeviceInfo {
    /// `KIND/NUMBER`.
    pub(crate) id: String,
    /// The user's name for it.
    pub(crate) name: String,
    /// The kind's name.
    pub(crate) kind: String,
    /// Whether enrolment finished.
    pub(crate) confirmed: bool,
    /// When it was made, in seconds since the epoch.
    pub(crate) created_at: i64,
    /// When it last verified a code, in seconds since the epoch.
    pub(crate) last_used_at: Option<i64>,
    /// Unused backup codes (backup codes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) codes_remaining: Option<usize>,
}

impl DeviceInfo {
    /// The view of `device`.
    ///
    /// # Errors
    ///
    /// Broken stored state of backup codes.
    pub(crate) fn new(state: &AppState, device: &Device) -> Result<Self, Error> {
        let codes_remaining = state.otp().codes_remaining(device)?;
        Ok(Self {
            id: device.id.to_string(),
            name: device.name.clone(),
            kind: device.kind().to_owned(),
            confirmed: device.confirmed,
            created_at: device.created_at.unix_secs(),
            last_used_at: device.last_used_at.map(Timestamp::unix_secs),
            codes_remaining,
        })
    }
}

/// The user's devices, in the kinds' order.
///
/// # Errors
///
/// A database failure.
pub(crate) async fn devices(state: &AppState, owner: &Owner) -> Result<Vec<Device>, Error> {
    Ok(state.otp().devices_for_user(&owner.key(), None).await?)
}

/// The user's device `id`, or [`Refusal::NotFound`].
///
/// # Errors
///
/// [`Refusal::NotFound`]; a database failure.
pub(crate) async fn find(
    state: &AppState,
    owner: &Owner,
    id: &DeviceId,
) -> Result<Device, Failure> {
    state
        .otp()
        .device_of(&owner.key(), id)
        .await?
        .ok_or(Failure::Refused(Refusal::NotFound))
}

/// The devices of the user if there is room for another.
async fn check_room(state: &AppState, owner: &Owner) -> Result<Vec<Device>, Failure> {
    let devices = devices(state, owner).await?;
    if devices.len() >= MAX_DEVICES {
        return Err(Refusal::TooManyDevices.into());
    }
    Ok(devices)
}

/// What the kind is called on these pages: its label ([`otp_core::DeviceKind::label`]), or its
/// name for a kind this program does not register.
fn kind_label<'a>(state: &AppState, kind: &'a str) -> &'a str {
    state.otp().kind(kind).map_or(kind, |kind| kind.label())
}

/// Whether devices of `kind` are enrolled with a proof of possession, which confirms them
/// ([`otp_core::Enrolment::needs_confirmation`]).
fn is_confirmed_by_proof(state: &AppState, kind: &str) -> bool {
    state
        .otp()
        .kind(kind)
        .is_ok_and(|kind| kind.enrolment().needs_confirmation())
}

/// Whether `device` waits for its confirmation on these pages.
fn awaits_confirmation(state: &AppState, device: &Device) -> bool {
    !device.confirmed && is_confirmed_by_proof(state, device.kind())
}

/// `name` trimmed, or `label` (the kind's) if it is blank.
fn device_name(name: Option<&str>, label: &str) -> String {
    name.map(str::trim)
        .filter(|name| !name.is_empty())
        .unwrap_or(label)
        .to_owned()
}

/// Enrols a device of `kind` for the user, with what they gave (`input`), for any kind users
/// enrol by themselves ([`otp_core::DeviceKind::enrol`]): the step-up rule, the room left,
/// one device of a kind that allows one, at most [`MAX_UNCONFIRMED_DELIVERED`] devices waiting
/// for a delivered code. Returns the device (unconfirmed unless its kind has nothing to prove)
/// and the codes to show once; a device confirmed from the start that is the user's first
/// marks the session verified by it.
///
/// # Errors
///
/// [`Refusal::NotFound`] for a kind users do not enrol, [`Refusal::FreshVerificationRequired`],
/// [`Refusal::TooManyDevices`], [`Refusal::OnePerUser`], [`Refusal::TooManyUnconfirmed`],
/// [`Refusal::InvalidName`], [`Refusal::InvalidEmail`], [`Refusal::InvalidCount`]; a database
/// or session failure.
pub(crate) async fn enrol(
    state: &AppState,
    owner: &mut Owner,
    kind: &str,
    name: Option<&str>,
    input: &EnrolInput,
) -> Result<(Device, Vec<BackupCode>), Failure> {
    let otp = state.otp();
    let enrolment = match otp.kind(kind) {
        Ok(kind) if kind.enrolment().is_self_service() => kind.enrolment(),
        _ => return Err(Refusal::NotFound.into()),
    };
    owner.require_step_up().await?;
    let devices = check_room(state, owner).await?;
    let kind_of = |device: &Device| otp.kind(device.kind()).ok().cloned();
    if enrolment == Enrolment::DeliveredCode {
        let waiting = devices
            .iter()
            .filter(|device| !device.confirmed)
            .filter(|device| {
                kind_of(device).is_some_and(|k| k.enrolment() == Enrolment::DeliveredCode)
            })
            .count();
        if waiting >= MAX_UNCONFIRMED_DELIVERED {
            return Err(Refusal::TooManyUnconfirmed.into());
        }
    }
    let name = device_name(name, kind_label(state, kind));
    let key = owner.key();
    let (device, codes) = match otp.enrol_device(&key, kind, &name, input).await {
        Ok(enrolled) => enrolled,
        Err(otp_core::Error::OnePerUser(_)) => {
            return Err(Refusal::OnePerUser(kind_label(state, kind).to_owned()).into());
        }
        Err(err) => return Err(err.into()),
    };
    owner.otp.record_enrolment(&device.id).await?;
    tracing::info!(
        user = %key,
        device = %device.id,
        confirmed = device.confirmed,
        "device added"
    );
    if device.confirmed {
        first_device_verifies(owner, &device).await?;
    }
    Ok((device, codes))
}

/// The `otpauth://` URI of an unconfirmed TOTP or HOTP device of the user; see
/// [`otpauth_uri`].
///
/// # Errors
///
/// [`Refusal::NotFound`] for a confirmed device or one of another kind; broken stored state.
pub(crate) fn provisioning_uri(
    state: &AppState,
    owner: &Owner,
    device: &Device,
) -> Result<OtpAuthUri, Failure> {
    if device.confirmed || device.user_key != owner.key() {
        return Err(Refusal::NotFound.into());
    }
    Ok(otpauth_uri(state, &owner.user, device)?)
}

/// The `otpauth://` URI of a TOTP or HOTP device of `user` (here and in the admin): the
/// account is the username (the user key if nothing of it is left), the issuer
/// `OTP_TOTP_ISSUER` (`OTP_HOTP_ISSUER`) or else the site name.
///
/// # Errors
///
/// A device of another kind; broken stored state.
pub(crate) fn otpauth_uri(
    state: &AppState,
    user: &User,
    device: &Device,
) -> Result<OtpAuthUri, otp_core::Error> {
    let mut uri = state.otp().provisioning_uri(device)?;
    // A label part may not hold a colon nor begin or end with white space.
    let account = user.username.replace(':', "");
    uri.account = match account.trim() {
        "" => user.key(),
        account => account.to_owned(),
    };
    if uri.issuer.is_none() {
        let site = state.config.site_name.replace(':', "");
        let site = site.trim();
        if !site.is_empty() {
            uri.issuer = Some(site.to_owned());
        }
    }
    Ok(uri)
}

/// Sends a confirmation code to an unconfirmed email device of the user's; returns where it
/// went.
///
/// # Errors
///
/// [`Refusal::AlreadyConfirmed`]; a cooldown, a device that sends no code, a failed delivery
/// ([`Refusal::Flow`]); a database failure.
pub(crate) async fn send_code(
    state: &AppState,
    owner: &Owner,
    device: &Device,
) -> Result<String, Failure> {
    if device.confirmed {
        return Err(Refusal::AlreadyConfirmed.into());
    }
    match state
        .otp()
        .generate_challenge(&owner.key(), &device.id)
        .await?
    {
        ChallengeOutcome::Sent { recipient, .. } => Ok(recipient),
        ChallengeOutcome::Cooldown { retry_after } => {
            Err(FlowError::ChallengeCooldown { retry_after }.into())
        }
        ChallengeOutcome::NotAllowed {
            reason: NotAllowedReason::NotInteractive,
        } => Err(FlowError::NotInteractive.into()),
        ChallengeOutcome::NotAllowed { reason } => Err(FlowError::NotAllowed(reason).into()),
        _ => Err(FlowError::ChallengeFailed.into()),
    }
}

/// Confirms an unconfirmed TOTP, HOTP or email device of the user's with `token`, which is
/// spent. If it is the user's first confirmed device, the session is marked verified by it
/// (and its id cycled).
///
/// # Errors
///
/// [`Refusal::NotFound`] for another kind, [`Refusal::AlreadyConfirmed`], a wrong code or
/// throttling ([`Refusal::Flow`]); a database or session failure.
pub(crate) async fn confirm(
    state: &AppState,
    owner: &mut Owner,
    device: &Device,
    token: &str,
) -> Result<Device, Failure> {
    if device.confirmed {
        return Err(Refusal::AlreadyConfirmed.into());
    }
    if !awaits_confirmation(state, device) {
        return Err(Refusal::NotFound.into());
    }
    owner.require_step_up().await?;
    let token = token.trim();
    if token.is_empty() {
        return Err(FlowError::TokenRequired.into());
    }
    let key = owner.key();
    let device = match state.otp().confirm_device(&key, &device.id, token).await? {
        VerifyOutcome::Verified(device) => device,
        VerifyOutcome::Invalid { .. } => return Err(FlowError::InvalidToken.into()),
        VerifyOutcome::Throttled {
            failure_count,
            retry_after,
        } => {
            return Err(FlowError::Throttled {
                failure_count,
                retry_after,
            }
            .into());
        }
        VerifyOutcome::NotAllowed {
            reason: NotAllowedReason::AlreadyConfirmed,
        } => return Err(Refusal::AlreadyConfirmed.into()),
        VerifyOutcome::NotAllowed { reason } => return Err(FlowError::NotAllowed(reason).into()),
        _ => return Err(FlowError::InvalidToken.into()),
    };
    tracing::info!(user = %key, device = %device.id, "device confirmed");
    first_device_verifies(owner, &device).await?;
    Ok(device)
}

/// Marks the session verified by `device` if the user had no confirmed device before it.
async fn first_device_verifies(owner: &mut Owner, device: &Device) -> Result<(), Failure> {
    if !owner.has_confirmed && !owner.otp.is_verified() {
        owner.otp.login(device).await?;
    }
    owner.has_confirmed = true;
    Ok(())
}

/// Replaces the codes of the user's backup-code device `device` with new ones and returns
/// them. Needs a fresh second factor.
///
/// # Errors
///
/// [`Refusal::NotFound`] for another kind, [`Refusal::FreshVerificationRequired`],
/// [`Refusal::InvalidCount`]; a database failure.
pub(crate) async fn regenerate_backup_codes(
    state: &AppState,
    owner: &Owner,
    device: &Device,
    count: Option<usize>,
) -> Result<Vec<BackupCode>, Failure> {
    if device.kind() != "static" {
        return Err(Refusal::NotFound.into());
    }
    owner.require_step_up().await?;
    let key = owner.key();
    let codes = state
        .otp()
        .regenerate_backup_codes(&key, &device.id, count)
        .await?;
    tracing::info!(user = %key, device = %device.id, count = codes.len(), "backup codes replaced");
    Ok(codes)
}

/// Renames the user's device.
///
/// # Errors
///
/// [`Refusal::InvalidName`], [`Refusal::NotFound`] if it went away; a database failure.
pub(crate) async fn rename(
    state: &AppState,
    owner: &Owner,
    device: &Device,
    name: &str,
) -> Result<Device, Failure> {
    let device = state
        .otp()
        .update_device(&device.id, Some(name.trim()), None)
        .await?;
    tracing::info!(user = %owner.key(), device = %device.id, "device renamed");
    Ok(device)
}

/// Removes the user's device; a confirmed one only if the session may change the second
/// factor (the step-up rule). An unconfirmed device is no factor yet: it goes freely.
///
/// # Errors
///
/// [`Refusal::FreshVerificationRequired`], [`Refusal::NotFound`] if it went away; a database
/// failure.
pub(crate) async fn remove(
    state: &AppState,
    owner: &Owner,
    device: &Device,
) -> Result<(), Failure> {
    if device.confirmed {
        owner.require_step_up().await?;
    }
    state.otp().remove_device(&device.id).await?;
    tracing::info!(user = %owner.key(), device = %device.id, "device removed");
    Ok(())
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
    fn new(state: &AppState, device: &Device, confirmed: usize) -> Result<Self, Error> {
        let url = device_url(&device.id);
        let confirmable = awaits_confirmation(state, device);
        Ok(Self {
            info: DeviceInfo::new(state, device)?,
            kind_label: kind_label(state, device.kind()).to_owned(),
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
    match find(state, owner, &id).await {
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

/// A kind users may add, as the list's "Add a device" section shows it.
#[derive(Serialize)]
struct AddableKind {
    /// The kind's name, the last segment of the form's target.
    name: &'static str,
    label: &'static str,
    description: &'static str,
    /// How it is enrolled, which says what the form asks: `generated_secret`,
    /// `delivered_code` (an address), `codes_shown_once`, `client_ceremony`.
    enrolment: &'static str,
    /// The submit button's text.
    action: &'static str,
    /// Whether the user has the one device of a kind that allows one.
    has_one: bool,
}

/// The kinds users may add, in the registry's order: every kind that says users enrol it.
fn addable_kinds(state: &AppState, devices: &[Device]) -> Vec<AddableKind> {
    state
        .otp()
        .device_kinds()
        .filter_map(|kind| {
            let (enrolment, action) = match kind.enrolment() {
                Enrolment::GeneratedSecret => ("generated_secret", "Set up"),
                Enrolment::DeliveredCode => ("delivered_code", "Send a code to confirm"),
                Enrolment::CodesShownOnce => ("codes_shown_once", "Generate codes"),
                Enrolment::ClientCeremony => ("client_ceremony", "Register"),
                _ => return None,
            };
            Some(AddableKind {
                name: kind.name(),
                label: kind.label(),
                description: kind.description(),
                enrolment,
                action,
                has_one: kind.one_per_user()
                    && devices.iter().any(|device| device.kind() == kind.name()),
            })
        })
        .collect()
}

/// The list, with a status and messages.
async fn devices_page(
    state: &AppState,
    owner: &Owner,
    status: StatusCode,
    error: Option<String>,
    notice: Option<String>,
) -> Reply {
    let devices = devices(state, owner).await?;
    let confirmed = devices.iter().filter(|device| device.confirmed).count();
    let views = devices
        .iter()
        .map(|device| DeviceView::new(state, device, confirmed))
        .collect::<Result<Vec<_>, _>>()?;
    let addable = addable_kinds(state, &devices);
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
            fresh_minutes => step_up_minutes(&owner.otp),
        },
    ))
}

/// What a refused action on the list shows: the list with the message, the verification page
/// for a stale session, the 404 page for a device that is not the user's.
async fn refused_on_list(state: &AppState, owner: &Owner, failure: Failure) -> Reply {
    let refusal = match failure {
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
    let (device, codes) = match enrol(&state, &mut owner, &kind, Some(&form.name), &input).await {
        Ok(enrolled) => enrolled,
        Err(failure) => return refused_on_list(&state, &owner, failure).await,
    };
    let url = confirm_url(&device.id);
    match state.otp().kind(device.kind())?.enrolment() {
        Enrolment::DeliveredCode => match send_code(&state, &owner, &device).await {
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
            device => DeviceInfo::new(state, device)?,
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
    match regenerate_backup_codes(&state, &owner, &device, None).await {
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
    if !is_confirmed_by_proof(state, device.kind()) {
        return Ok(not_found(state, owner).await);
    }
    let url = device_url(&device.id);
    let mut page = state.page(&owner.otp).await?;
    page.error = error;
    page.notice = notice;
    let base = minijinja::context! {
        device => DeviceView::new(state, device, 0)?,
        form_url => format!("{url}/confirm"),
        resend_url => format!("{url}/resend"),
        remove_url => format!("{url}/remove"),
    };
    let extra = if device.kind() == "email" {
        let address = device.state()["address"].as_str().unwrap_or_default();
        minijinja::context! { address, ..base }
    } else {
        let uri = match provisioning_uri(state, owner, device) {
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
    match confirm(&state, &mut owner, &device, &form.token).await {
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
    if device.kind() != "email" {
        return Ok(not_found(&state, &owner).await);
    }
    match send_code(&state, &owner, &device).await {
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
    State(state): State<AppState>,
    owner: Owner,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, Error> {
    let not_found = || no_store((StatusCode::NOT_FOUND, "no such device\n").into_response());
    let Some(id) = path_id(path) else {
        return Ok(not_found());
    };
    let device = match find(&state, &owner, &id).await {
        Ok(device) => device,
        Err(Failure::Refused(_)) => return Ok(not_found()),
        Err(Failure::Server(err)) => return Err(err),
    };
    let uri = match provisioning_uri(&state, &owner, &device) {
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
    match rename(&state, &owner, &device, &form.name).await {
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
    match remove(&state, &owner, &device).await {
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

    #[test]
    fn blank_names_take_the_kind_label() {
        assert_eq!(
            device_name(Some("  "), "Authenticator app"),
            "Authenticator app"
        );
        assert_eq!(device_name(None, "Backup codes"), "Backup codes");
        assert_eq!(device_name(Some(" Phone "), "Authenticator app"), "Phone");
    }
}
