//! The login and verification flows, once: the HTML pages and the JSON API both call these and
//! only render the outcome differently.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use otp_core::{ChallengeOutcome, DeviceId, NotAllowedReason, VerifyOutcome};
use serde::Serialize;

use crate::state::{PENDING_SESSION_KEY, PendingLogin, SESSION_EPOCH_SESSION_KEY, pending_expired};
use crate::{OtpSession, WebError};

/// Why a step of a flow did not succeed. Each has a stable code (django-otp's where it had
/// one), an HTTP status for JSON clients, and a message for people that reveals nothing
/// internal.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlowError {
    /// The username or password is wrong (the two are not told apart).
    InvalidCredentials,
    /// Nobody is logged in and no login is under way.
    LoginRequired,
    /// The login waited too long for its second factor.
    LoginExpired,
    /// No token was given.
    TokenRequired,
    /// No device, or one that is not the user's confirmed device.
    InvalidDevice,
    /// The token is wrong.
    InvalidToken,
    /// Too many failures: verification is paused.
    Throttled {
        /// Consecutive failures of the device.
        failure_count: u32,
        /// How long until the next attempt.
        retry_after: Duration,
    },
    /// Verification is not allowed now (the account is locked, say).
    NotAllowed(NotAllowedReason),
    /// The device does not send challenges.
    NotInteractive,
    /// A challenge was sent too recently.
    ChallengeCooldown {
        /// How long until the next one.
        retry_after: Duration,
    },
    /// The challenge could not be delivered (the detail is in the log only).
    ChallengeFailed,
    /// The request itself is malformed.
    BadRequest(&'static str),
}

impl FlowError {
    /// The stable code, as in JSON bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidCredentials => "invalid_credentials",
            Self::LoginRequired => "login_required",
            Self::LoginExpired => "login_expired",
            Self::TokenRequired => "token_required",
            Self::InvalidDevice => "invalid_device",
            Self::InvalidToken => "invalid_token",
            Self::Throttled { .. } => "n_failed_attempts",
            Self::NotAllowed(_) => "verification_not_allowed",
            Self::NotInteractive => "not_interactive",
            Self::ChallengeCooldown { .. } => "challenge_cooldown",
            Self::ChallengeFailed => "challenge_exception",
            Self::BadRequest(_) => "bad_request",
        }
    }

    /// The HTTP status for JSON clients.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidCredentials
            | Self::LoginRequired
            | Self::LoginExpired
            | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::TokenRequired
            | Self::InvalidDevice
            | Self::NotInteractive
            | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Throttled { .. } | Self::ChallengeCooldown { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::NotAllowed(_) => StatusCode::FORBIDDEN,
            Self::ChallengeFailed => StatusCode::BAD_GATEWAY,
        }
    }

    /// Seconds to wait, for `Retry-After`.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Throttled { retry_after, .. } | Self::ChallengeCooldown { retry_after } => {
                Some(retry_after.as_millis().div_ceil(1000) as u64)
            }
            _ => None,
        }
    }

    /// A message for people (django-otp's wording where it had one).
    pub fn message(&self) -> String {
        match self {
            Self::InvalidCredentials => "Please enter a correct username and password.".into(),
            Self::LoginRequired => "Please log in first.".into(),
            Self::LoginExpired => "Your login took too long. Please enter your password again.".into(),
            Self::TokenRequired => "Please enter your OTP token.".into(),
            Self::InvalidDevice => "Please choose one of your devices.".into(),
            Self::InvalidToken => {
                "Invalid token. Please make sure you have entered it correctly.".into()
            }
            Self::Throttled { failure_count, .. } => {
                let attempts = if *failure_count == 1 { "attempt" } else { "attempts" };
                format!(
                    "Verification temporarily disabled because of {failure_count} failed {attempts}, please try again soon."
                )
            }
            Self::NotAllowed(NotAllowedReason::AccountLocked) => {
                "Verification is disabled for this account after too many failed attempts. Use a backup code or contact support.".into()
            }
            Self::NotAllowed(_) => "Verification of the token is currently disabled".into(),
            Self::NotInteractive => "The selected OTP device is not interactive".into(),
            Self::ChallengeCooldown { .. } => {
                "A code was sent recently. Please wait before asking for another.".into()
            }
            Self::ChallengeFailed => "The code could not be sent. Please try again later.".into(),
            Self::BadRequest(what) => (*what).into(),
        }
    }
}

/// The JSON body of an error: `{"error": code, "message": text, "retry_after"?: seconds,
/// "failure_count"?: n}`.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorBody {
    error: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_count: Option<u32>,
}

impl IntoResponse for FlowError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code(),
            message: self.message(),
            retry_after: self.retry_after(),
            failure_count: match self {
                Self::Throttled { failure_count, .. } => Some(failure_count),
                _ => None,
            },
        };
        let mut response = (self.status(), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(seconds) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// A step's failure: the user's ([`FlowError`]) or the server's ([`WebError`]).
#[derive(Debug)]
pub(crate) enum StepError {
    Flow(FlowError),
    Web(WebError),
}

impl From<FlowError> for StepError {
    fn from(err: FlowError) -> Self {
        Self::Flow(err)
    }
}

impl<E: Into<WebError>> From<E> for StepError {
    fn from(err: E) -> Self {
        Self::Web(err.into())
    }
}

/// A device as offered to choose from.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceChoice {
    /// The device id, such as `totp/42`.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its kind's name.
    pub kind: String,
    /// Whether it sends challenges (a "send me a code" button).
    pub interactive: bool,
    /// Whether it is a recovery device (backup codes: [`otp_core::DeviceKind::is_recovery`]),
    /// offered apart as "use a backup code", with a text keyboard.
    pub recovery: bool,
}

/// Where the password step left the login.
#[derive(Debug, Clone)]
pub(crate) enum PasswordOutcome {
    /// The user has no confirmed device: logged in with the password alone.
    LoggedIn,
    /// The second factor is awaited.
    SecondFactor(Vec<DeviceChoice>),
}

/// Whose second factor is awaited, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The password passed in this session; the app has not logged the user in yet.
    Pending,
    /// The app has logged the user in; the session is to be verified (the "verify" page).
    LoggedIn,
}

/// The user's confirmed devices, in the kinds' order.
pub(crate) async fn device_choices(
    otp: &OtpSession,
    user_key: &str,
) -> Result<Vec<DeviceChoice>, WebError> {
    let framework = otp.web().otp();
    let devices = framework.devices_for_user(user_key, Some(true)).await?;
    Ok(devices
        .into_iter()
        .map(|device| DeviceChoice {
            interactive: framework
                .kind(device.kind())
                .is_ok_and(|k| k.is_interactive()),
            recovery: framework.kind(device.kind()).is_ok_and(|k| k.is_recovery()),
            id: device.id.to_string(),
            name: device.name.clone(),
            kind: device.kind().to_owned(),
        })
        .collect())
}

/// Step one of the two-step login: the password.
pub(crate) async fn password_step(
    otp: &mut OtpSession,
    username: &str,
    password: &str,
) -> Result<PasswordOutcome, StepError> {
    if username.is_empty() || password.is_empty() {
        return Err(FlowError::InvalidCredentials.into());
    }
    let web = otp.web().clone();
    let Some(user_key) = web.accounts().authenticate(username, password).await? else {
        return Err(FlowError::InvalidCredentials.into());
    };
    let epoch = web.otp().session_epoch(&user_key).await?;
    let devices = device_choices(otp, &user_key).await?;
    if devices.is_empty() {
        web.accounts()
            .log_in(&otp.extensions, &otp.session, &user_key)
            .await?;
        otp.session.insert(SESSION_EPOCH_SESSION_KEY, epoch).await?;
        otp.session.remove_value(PENDING_SESSION_KEY).await?;
        otp.session.cycle_id().await?;
        otp.assume_user(&user_key).await;
        return Ok(PasswordOutcome::LoggedIn);
    }
    let pending = PendingLogin {
        user_key,
        started_at: web.now().unix_millis(),
        epoch,
    };
    otp.session.insert(PENDING_SESSION_KEY, &pending).await?;
    otp.session.cycle_id().await?;
    Ok(PasswordOutcome::SecondFactor(devices))
}

/// The user whose second factor is awaited: a pending login of this session, else the
/// logged-in user.
pub(crate) async fn second_factor_user(otp: &OtpSession) -> Result<(String, Stage), StepError> {
    if let Some(pending) = otp.session.get::<PendingLogin>(PENDING_SESSION_KEY).await? {
        let web = otp.web();
        if pending_expired(&pending, web.config().partial_login_timeout, web.now())
            || pending.epoch < web.otp().session_epoch(&pending.user_key).await?
        {
            // Too old, or the account's sessions were ended since the password passed (a
            // password change): the password must be given again.
            otp.session.remove_value(PENDING_SESSION_KEY).await?;
            return Err(FlowError::LoginExpired.into());
        }
        return Ok((pending.user_key, Stage::Pending));
    }
    match otp.user_key() {
        Some(user) => Ok((user.to_owned(), Stage::LoggedIn)),
        None => Err(FlowError::LoginRequired.into()),
    }
}

fn parse_device(device: &str) -> Result<DeviceId, FlowError> {
    device.trim().parse().map_err(|_| FlowError::InvalidDevice)
}

/// The device of a successful verification, or why it did not succeed.
///
/// # Errors
///
/// The [`FlowError`] of a wrong code, throttling, or a verification not allowed.
pub(crate) fn verified_device(outcome: VerifyOutcome) -> Result<otp_core::Device, FlowError> {
    match outcome {
        VerifyOutcome::Verified(device) => Ok(device),
        VerifyOutcome::Throttled {
            failure_count,
            retry_after,
        } => Err(FlowError::Throttled {
            failure_count,
            retry_after,
        }),
        VerifyOutcome::NotAllowed { reason } => Err(FlowError::NotAllowed(reason)),
        _ => Err(FlowError::InvalidToken),
    }
}

/// Sends a challenge for one of the user's devices.
pub(crate) async fn challenge_step(otp: &OtpSession, device: &str) -> Result<(), StepError> {
    let (user_key, _) = second_factor_user(otp).await?;
    let id = parse_device(device)?;
    let framework = otp.web().otp();
    // Only confirmed devices of this user may be challenged on these pages.
    if !framework
        .device_of(&user_key, &id)
        .await?
        .is_some_and(|d| d.confirmed)
    {
        return Err(FlowError::InvalidDevice.into());
    }
    match framework.generate_challenge(&user_key, &id).await {
        Ok(ChallengeOutcome::Sent { .. }) => Ok(()),
        Ok(ChallengeOutcome::Cooldown { retry_after }) => {
            Err(FlowError::ChallengeCooldown { retry_after }.into())
        }
        Ok(ChallengeOutcome::NotAllowed {
            reason: NotAllowedReason::NotInteractive,
        }) => Err(FlowError::NotInteractive.into()),
        Ok(ChallengeOutcome::NotAllowed { reason }) => Err(FlowError::NotAllowed(reason).into()),
        Ok(_) => Err(FlowError::ChallengeFailed.into()),
        Err(otp_core::Error::Delivery(detail)) => {
            tracing::error!(device = %id, %detail, "challenge could not be delivered");
            Err(FlowError::ChallengeFailed.into())
        }
        Err(otp_core::Error::DeviceNotFound | otp_core::Error::UnknownKind(_)) => {
            Err(FlowError::InvalidDevice.into())
        }
        Err(err) => Err(err.into()),
    }
}

/// Verifies a token of one of the user's devices; on success the login is completed (for a
/// pending login) and the session is marked verified, with its id cycled.
pub(crate) async fn verify_step(
    otp: &mut OtpSession,
    device: &str,
    token: &str,
) -> Result<(), StepError> {
    let (user_key, stage) = second_factor_user(otp).await?;
    let id = parse_device(device)?;
    if token.trim().is_empty() {
        return Err(FlowError::TokenRequired.into());
    }
    let web = otp.web().clone();
    let outcome = match web.otp().verify_token(&user_key, &id, token).await {
        Ok(outcome) => outcome,
        Err(otp_core::Error::DeviceNotFound | otp_core::Error::UnknownKind(_)) => {
            return Err(FlowError::InvalidDevice.into());
        }
        Err(err) => return Err(err.into()),
    };
    let device = match outcome {
        // An unconfirmed device verifies only through its confirmation.
        VerifyOutcome::NotAllowed {
            reason: NotAllowedReason::Unconfirmed,
        } => return Err(FlowError::InvalidDevice.into()),
        outcome => verified_device(outcome)?,
    };
    if stage == Stage::Pending {
        let epoch = otp
            .session
            .remove::<PendingLogin>(PENDING_SESSION_KEY)
            .await?
            .map_or(0, |pending| pending.epoch);
        web.accounts()
            .log_in(&otp.extensions, &otp.session, &user_key)
            .await?;
        otp.session.insert(SESSION_EPOCH_SESSION_KEY, epoch).await?;
        otp.assume_user(&user_key).await;
    }
    // The user changed (pending login) or the verified state did: a new session id either way.
    otp.login(&device).await?;
    Ok(())
}
