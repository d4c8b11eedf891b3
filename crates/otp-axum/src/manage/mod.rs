//! Self-service device management: what a logged-in user may do with their own devices, for
//! any kind in the registry, with the rules every app needs. HTML pages and a JSON API call
//! these same operations (the reference server's do), so the rules live here once.
//!
//! - Every operation is on the session's user's own devices: another user's device, a
//!   malformed id and a missing device are one [`Refusal::NotFound`].
//! - Changes to the second factor (enrolling, confirming, removing a confirmed device, new
//!   codes) follow the [step-up rule](crate::step_up); renaming needs nothing.
//! - A user has at most [`MAX_DEVICES`] devices, at most [`MAX_UNCONFIRMED_DELIVERED`] of them
//!   waiting for a delivered code, and one device of a kind that allows one.
//! - A device confirmed by the user's first proof (the first factor beyond the password)
//!   marks the session verified by it, so that enrolling does not lock the user out of these
//!   operations; before it the password was the only factor anyway.
//!
//! ```
//! use otp_axum::OtpSession;
//! use otp_axum::manage::{self, ManageError};
//! use otp_core::EnrolInput;
//!
//! /// Backup codes for the logged-in user, shown once.
//! async fn backup_codes(mut otp: OtpSession) -> Result<Vec<String>, ManageError> {
//!     let (_device, codes) =
//!         manage::enrol(&mut otp, "static", None, &EnrolInput::count(Some(10))).await?;
//!     Ok(codes.iter().map(ToString::to_string).collect())
//! }
//! ```

use http::StatusCode;
use otp_core::{
    BackupCode, ChallengeOutcome, Device, DeviceId, EnrolInput, Enrolment, NotAllowedReason,
    Timestamp, VerifyOutcome,
};
use serde::Serialize;

use otp_oath::OtpAuthUri;

use crate::{FlowError, OtpSession, Profile, WebError};

/// The most devices a user may have, confirmed or not.
pub const MAX_DEVICES: usize = 20;

/// The most unconfirmed devices waiting for a delivered code (email) a user may have: each
/// sends a code to an address nobody has shown to be theirs yet.
pub const MAX_UNCONFIRMED_DELIVERED: usize = 3;

/// Why an operation on devices was refused: the user's doing, with a stable code, a status
/// and a message for people. Failures of the server are [`ManageError::Failed`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Nobody is logged in.
    LoginRequired,
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
    pub fn code(&self) -> &'static str {
        match self {
            Self::LoginRequired => "login_required",
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
    pub fn status(&self) -> StatusCode {
        match self {
            Self::LoginRequired => StatusCode::UNAUTHORIZED,
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
    pub fn message(&self) -> String {
        match self {
            Self::LoginRequired => "Please log in first.".into(),
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
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Flow(flow) => flow.retry_after(),
            _ => None,
        }
    }
}

/// A failed operation on devices: refused (the user's doing), or failed (the server's).
#[derive(Debug)]
pub enum ManageError {
    /// The user's doing.
    Refused(Refusal),
    /// The server's: a database or session failure.
    Failed(WebError),
}

impl From<Refusal> for ManageError {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

impl From<FlowError> for ManageError {
    fn from(flow: FlowError) -> Self {
        Self::Refused(Refusal::Flow(flow))
    }
}

impl From<WebError> for ManageError {
    fn from(err: WebError) -> Self {
        Self::Failed(err)
    }
}

impl From<otp_core::Error> for ManageError {
    fn from(err: otp_core::Error) -> Self {
        use otp_core::Error as Core;
        match err {
            Core::DeviceNotFound
            | Core::UnknownKind(_)
            | Core::InvalidDeviceId(_)
            | Core::NotSelfService(_) => Refusal::NotFound.into(),
            Core::InvalidDeviceName => Refusal::InvalidName.into(),
            Core::InvalidEmailAddress => Refusal::InvalidEmail.into(),
            Core::InvalidCodeCount(_) => Refusal::InvalidCount.into(),
            // otp-core logged the detail, which is for operators only.
            Core::Delivery(_) => FlowError::ChallengeFailed.into(),
            other => Self::Failed(other.into()),
        }
    }
}

impl std::fmt::Display for ManageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(refusal) => f.write_str(&refusal.message()),
            Self::Failed(err) => std::fmt::Display::fmt(err, f),
        }
    }
}

impl std::error::Error for ManageError {}

/// A device as its user sees it (the JSON API's representation): no secret, no code.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct DeviceInfo {
    /// `KIND/NUMBER`.
    pub id: String,
    /// The user's name for it.
    pub name: String,
    /// The kind's name.
    pub kind: String,
    /// Whether enrolment finished.
    pub confirmed: bool,
    /// When it was made, in seconds since the epoch.
    pub created_at: i64,
    /// When it last verified a code, in seconds since the epoch.
    pub last_used_at: Option<i64>,
    /// Unused codes, for kinds made of codes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codes_remaining: Option<usize>,
}

impl DeviceInfo {
    /// The view of `device`.
    ///
    /// # Errors
    ///
    /// Broken stored state of a kind made of codes.
    pub fn new(otp: &OtpSession, device: &Device) -> Result<Self, otp_core::Error> {
        Ok(Self {
            id: device.id.to_string(),
            name: device.name.clone(),
            kind: device.kind().to_owned(),
            confirmed: device.confirmed,
            created_at: device.created_at.unix_secs(),
            last_used_at: device.last_used_at.map(Timestamp::unix_secs),
            codes_remaining: otp.web().otp().codes_remaining(device)?,
        })
    }
}

pub mod json;

/// The session's user, or [`Refusal::LoginRequired`].
fn user(otp: &OtpSession) -> Result<String, ManageError> {
    otp.user_key()
        .map(str::to_owned)
        .ok_or(ManageError::Refused(Refusal::LoginRequired))
}

/// [`Refusal::FreshVerificationRequired`] unless the session may change the second factor now.
///
/// # Errors
///
/// [`Refusal::FreshVerificationRequired`]; a database or session failure.
pub async fn require_step_up(otp: &OtpSession) -> Result<(), ManageError> {
    if otp.step_up().await?.allows_change() {
        Ok(())
    } else {
        Err(Refusal::FreshVerificationRequired.into())
    }
}

/// The user's devices, in the kinds' order.
///
/// # Errors
///
/// [`Refusal::LoginRequired`]; a database failure.
pub async fn devices(otp: &OtpSession) -> Result<Vec<Device>, ManageError> {
    Ok(otp.web().otp().devices_for_user(&user(otp)?, None).await?)
}

/// The user's device `id`.
///
/// # Errors
///
/// [`Refusal::NotFound`], [`Refusal::LoginRequired`]; a database failure.
pub async fn find(otp: &OtpSession, id: &DeviceId) -> Result<Device, ManageError> {
    otp.web()
        .otp()
        .device_of(&user(otp)?, id)
        .await?
        .ok_or(ManageError::Refused(Refusal::NotFound))
}

/// A kind users may add, as a page's "add a device" section shows it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct AddableKind {
    /// The kind's name, the last segment of the enrolment's path (`/devices/{kind}`).
    pub name: &'static str,
    /// Its label.
    pub label: &'static str,
    /// One sentence on it.
    pub description: &'static str,
    /// How it is enrolled, which says what the form asks: `generated_secret`,
    /// `delivered_code` (an address), `codes_shown_once`, `client_ceremony`.
    pub enrolment: &'static str,
    /// The text of the button that starts it.
    pub action: &'static str,
    /// Whether the user has the one device of a kind that allows one.
    pub has_one: bool,
}

/// The kinds users may add, in the registry's order: every kind that says users enrol it,
/// with whether `devices` (the user's) hold the one device of a kind that allows one.
pub fn addable_kinds(otp: &OtpSession, devices: &[Device]) -> Vec<AddableKind> {
    otp.web()
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

/// What the app shows of the session's user ([`crate::Accounts::profile`]), if it says.
///
/// # Errors
///
/// [`Refusal::LoginRequired`]; a failure of the app's accounts.
pub async fn profile(otp: &OtpSession) -> Result<Option<Profile>, ManageError> {
    let key = user(otp)?;
    Ok(otp
        .web()
        .accounts()
        .profile(&key)
        .await
        .map_err(WebError::from)?)
}

/// The `otpauth://` URI of the user's unconfirmed device provisioned with a shared secret:
/// the account is the user's display name ([`crate::Accounts::profile`]; the user key if the
/// app says none), the issuer the kind's setting or else the site's name. A confirmed device's
/// secret is never shown again.
///
/// # Errors
///
/// [`Refusal::NotFound`] for a confirmed device, another user's, or a kind without a URI;
/// broken stored state.
pub async fn provisioning_uri(
    otp: &OtpSession,
    device: &Device,
) -> Result<OtpAuthUri, ManageError> {
    let key = user(otp)?;
    if device.confirmed || device.user_key != key {
        return Err(Refusal::NotFound.into());
    }
    let name = profile(otp)
        .await?
        .map(|profile| profile.display_name)
        .unwrap_or_default();
    Ok(otpauth_uri(otp.web(), device, &name)?)
}

/// The `otpauth://` URI of `device` with `account` as its account name (a label part may not
/// hold a colon nor begin or end with white space: those are dropped; the user key if nothing
/// is left) and the site's name as issuer if the kind's settings give none. For the device's
/// user, and for an admin showing it.
///
/// # Errors
///
/// [`otp_core::Error::DeviceNotFound`] for a kind without a URI; broken stored state.
pub fn otpauth_uri(
    web: &crate::OtpWeb,
    device: &Device,
    account: &str,
) -> Result<OtpAuthUri, otp_core::Error> {
    let mut uri = web.otp().provisioning_uri(device)?;
    let account = account.replace(':', "");
    uri.account = match account.trim() {
        "" => device.user_key.clone(),
        account => account.to_owned(),
    };
    if uri.issuer.is_none() {
        let site = web.config().site_name.replace(':', "");
        let site = site.trim();
        if !site.is_empty() {
            uri.issuer = Some(site.to_owned());
        }
    }
    Ok(uri)
}

/// What the kind called `kind` is called for people: its label
/// ([`otp_core::DeviceKind::label`]), or its name for a kind the registry lacks.
pub fn kind_label<'a>(otp: &OtpSession, kind: &'a str) -> &'a str {
    otp.web().otp().kind(kind).map_or(kind, |kind| kind.label())
}

/// Whether `device` waits for its confirmation: unconfirmed, of a kind enrolled with a proof
/// of possession ([`Enrolment::needs_confirmation`]).
pub fn awaits_confirmation(otp: &OtpSession, device: &Device) -> bool {
    !device.confirmed && is_confirmed_by_proof(otp, device.kind())
}

/// Whether devices of `kind` are confirmed by a proof of possession.
pub fn is_confirmed_by_proof(otp: &OtpSession, kind: &str) -> bool {
    otp.web()
        .otp()
        .kind(kind)
        .is_ok_and(|kind| kind.enrolment().needs_confirmation())
}

/// `name` trimmed, or `label` (the kind's) if it is blank.
fn device_name(name: Option<&str>, label: &str) -> String {
    name.map(str::trim)
        .filter(|name| !name.is_empty())
        .unwrap_or(label)
        .to_owned()
}

/// Enrols a device of `kind` for the user, with what they gave (`input`), for any kind users
/// enrol by themselves ([`otp_core::DeviceKind::enrol`]). Returns the device (unconfirmed
/// unless its kind has nothing to prove) and the codes to show once; a device confirmed from
/// the start that is the user's first marks the session verified by it.
///
/// # Errors
///
/// [`Refusal::NotFound`] for a kind users do not enrol, [`Refusal::FreshVerificationRequired`],
/// [`Refusal::TooManyDevices`], [`Refusal::OnePerUser`], [`Refusal::TooManyUnconfirmed`],
/// [`Refusal::InvalidName`], [`Refusal::InvalidEmail`], [`Refusal::InvalidCount`]; a database
/// or session failure.
pub async fn enrol(
    otp: &mut OtpSession,
    kind: &str,
    name: Option<&str>,
    input: &EnrolInput,
) -> Result<(Device, Vec<BackupCode>), ManageError> {
    let key = user(otp)?;
    let framework = otp.web().otp().clone();
    let enrolment = match framework.kind(kind) {
        Ok(kind) if kind.enrolment().is_self_service() => kind.enrolment(),
        _ => return Err(Refusal::NotFound.into()),
    };
    require_step_up(otp).await?;
    let devices = framework.devices_for_user(&key, None).await?;
    if devices.len() >= MAX_DEVICES {
        return Err(Refusal::TooManyDevices.into());
    }
    if enrolment == Enrolment::DeliveredCode {
        let waiting = devices
            .iter()
            .filter(|device| !device.confirmed)
            .filter(|device| {
                framework
                    .kind(device.kind())
                    .is_ok_and(|k| k.enrolment() == Enrolment::DeliveredCode)
            })
            .count();
        if waiting >= MAX_UNCONFIRMED_DELIVERED {
            return Err(Refusal::TooManyUnconfirmed.into());
        }
    }
    let had_confirmed = devices.iter().any(|device| device.confirmed);
    let name = device_name(name, kind_label(otp, kind));
    let (device, codes) = match framework.enrol_device(&key, kind, &name, input).await {
        Ok(enrolled) => enrolled,
        Err(otp_core::Error::OnePerUser(_)) => {
            return Err(Refusal::OnePerUser(kind_label(otp, kind).to_owned()).into());
        }
        Err(err) => return Err(err.into()),
    };
    otp.record_enrolment(&device.id).await?;
    tracing::info!(
        user = %key,
        device = %device.id,
        confirmed = device.confirmed,
        "device added"
    );
    if device.confirmed && !had_confirmed && !otp.is_verified() {
        otp.login(&device).await?;
    }
    Ok((device, codes))
}

/// Sends a confirmation code to an unconfirmed device of the user's that is confirmed with a
/// delivered code; returns where it went.
///
/// # Errors
///
/// [`Refusal::AlreadyConfirmed`]; a cooldown, a device that sends no code, a failed delivery
/// ([`Refusal::Flow`]); a database failure.
pub async fn send_code(otp: &OtpSession, device: &Device) -> Result<String, ManageError> {
    if device.confirmed {
        return Err(Refusal::AlreadyConfirmed.into());
    }
    match otp
        .web()
        .otp()
        .generate_challenge(&user(otp)?, &device.id)
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

/// Confirms an unconfirmed device of the user's with `token`, which is spent. If it is the
/// user's first confirmed device, the session is marked verified by it (and its id cycled).
///
/// # Errors
///
/// [`Refusal::NotFound`] for a kind not confirmed by a code, [`Refusal::AlreadyConfirmed`],
/// [`Refusal::FreshVerificationRequired`], a wrong code or throttling ([`Refusal::Flow`]); a
/// database or session failure.
pub async fn confirm(
    otp: &mut OtpSession,
    device: &Device,
    token: &str,
) -> Result<Device, ManageError> {
    if device.confirmed {
        return Err(Refusal::AlreadyConfirmed.into());
    }
    if !awaits_confirmation(otp, device) {
        return Err(Refusal::NotFound.into());
    }
    require_step_up(otp).await?;
    let token = token.trim();
    if token.is_empty() {
        return Err(FlowError::TokenRequired.into());
    }
    let key = user(otp)?;
    let framework = otp.web().otp().clone();
    let had_confirmed = framework.user_has_device(&key, Some(true)).await?;
    let device = match framework.confirm_device(&key, &device.id, token).await? {
        VerifyOutcome::NotAllowed {
            reason: NotAllowedReason::AlreadyConfirmed,
        } => return Err(Refusal::AlreadyConfirmed.into()),
        outcome => crate::flow::verified_device(outcome)?,
    };
    tracing::info!(user = %key, device = %device.id, "device confirmed");
    if !had_confirmed && !otp.is_verified() {
        otp.login(&device).await?;
    }
    Ok(device)
}

/// Replaces the codes of the user's device `device`, of a kind made of codes shown once, with
/// `count` new ones (`None`: the settings') and returns them.
///
/// # Errors
///
/// [`Refusal::NotFound`] for another kind, [`Refusal::FreshVerificationRequired`],
/// [`Refusal::InvalidCount`]; a database failure.
pub async fn regenerate_codes(
    otp: &OtpSession,
    device: &Device,
    count: Option<usize>,
) -> Result<Vec<BackupCode>, ManageError> {
    let framework = otp.web().otp();
    let made_of_codes = framework
        .kind(device.kind())
        .is_ok_and(|kind| kind.enrolment() == Enrolment::CodesShownOnce);
    if !made_of_codes {
        return Err(Refusal::NotFound.into());
    }
    require_step_up(otp).await?;
    let key = user(otp)?;
    let codes = framework
        .regenerate_backup_codes(&key, &device.id, count)
        .await?;
    tracing::info!(user = %key, device = %device.id, count = codes.len(), "codes replaced");
    Ok(codes)
}

/// Renames the user's device.
///
/// # Errors
///
/// [`Refusal::InvalidName`], [`Refusal::NotFound`] if it went away; a database failure.
pub async fn rename(otp: &OtpSession, device: &Device, name: &str) -> Result<Device, ManageError> {
    let key = user(otp)?;
    let device = otp
        .web()
        .otp()
        .update_device(&device.id, Some(name.trim()), None)
        .await?;
    tracing::info!(user = %key, device = %device.id, "device renamed");
    Ok(device)
}

/// Removes the user's device; a confirmed one only if the session may change the second
/// factor (the step-up rule). An unconfirmed device is no factor yet: it goes freely.
///
/// # Errors
///
/// [`Refusal::FreshVerificationRequired`], [`Refusal::NotFound`] if it went away; a database
/// failure.
pub async fn remove(otp: &OtpSession, device: &Device) -> Result<(), ManageError> {
    let key = user(otp)?;
    if device.confirmed {
        require_step_up(otp).await?;
    }
    otp.web().otp().remove_device(&device.id).await?;
    tracing::info!(user = %key, device = %device.id, "device removed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_names_take_the_kind_label() {
        assert_eq!(
            device_name(Some("  "), "Authenticator app"),
            "Authenticator app"
        );
        assert_eq!(device_name(None, "Backup codes"), "Backup codes");
        assert_eq!(device_name(Some(" Phone "), "Authenticator app"), "Phone");
    }

    #[test]
    fn refusals_have_stable_codes_and_statuses() {
        for (refusal, code, status) in [
            (Refusal::NotFound, "not_found", StatusCode::NOT_FOUND),
            (
                Refusal::OnePerUser("Backup codes".into()),
                "one_per_user",
                StatusCode::CONFLICT,
            ),
            (
                Refusal::FreshVerificationRequired,
                "fresh_verification_required",
                StatusCode::FORBIDDEN,
            ),
            (
                Refusal::LoginRequired,
                "login_required",
                StatusCode::UNAUTHORIZED,
            ),
        ] {
            assert_eq!((refusal.code(), refusal.status()), (code, status));
            assert!(!refusal.message().is_empty());
        }
        assert!(
            Refusal::OnePerUser("Backup codes".into())
                .message()
                .starts_with("You have backup codes already")
        );
    }
}
