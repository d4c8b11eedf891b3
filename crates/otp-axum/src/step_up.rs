//! Step-up: the rule for changes to the account's second factor.
//!
//! A session verified long ago, or stolen, must not be able to take over the account's second
//! factor. So every change to the set of devices (adding one, confirming one, removing a
//! confirmed one, new backup codes) and a password change need a **fresh** verification:
//! within [`WebConfig::step_up_window`](crate::WebConfig::step_up_window) (default 5 minutes),
//! by a device that was not enrolled in this same session. Renaming a device needs nothing.
//!
//! The second condition closes a path that freshness alone leaves open: a session that is
//! fresh for a moment adds a device of the attacker's, and later, once the window has lapsed,
//! verifies again with that device to become fresh and remove the owner's devices. A device
//! enrolled in a session is recorded in it ([`OtpSession::record_enrolment`]) and never makes
//! that session fresh; it counts from the next login on, which needs the password again.
//!
//! A user with no confirmed device has nothing to verify with: they may enrol their first
//! device with the password alone, and that device (not recorded: it is the account's first
//! factor) makes the session fresh.
//!
//! For an app's own sensitive actions (changing an email address, a payout), the
//! [`SteppedUp`] extractor applies the rule before the handler runs: a browser whose session
//! is not fresh is sent to the verification page (`{mount}/verify`), which comes back to the
//! page it was on; a JSON client gets 403 `{"error": "fresh_verification_required"}`.
//!
//! ```
//! use otp_axum::step_up::SteppedUp;
//!
//! async fn change_payout_account(SteppedUp(otp): SteppedUp) -> String {
//!     format!("{} may change it", otp.user_key().unwrap_or_default())
//! }
//! # let _ = axum::Router::<()>::new().route("/payout", axum::routing::post(change_payout_account));
//! ```
//!
//! Handlers that decide for themselves ask [`OtpSession::step_up`]:
//!
//! ```
//! use otp_axum::{OtpSession, StepUp};
//!
//! /// A handler's first lines before it removes a device.
//! async fn may_change_devices(otp: &OtpSession) -> Result<bool, otp_axum::WebError> {
//!     Ok(match otp.step_up().await? {
//!         StepUp::FirstDevice | StepUp::Fresh => true,
//!         // Send the user to the verification page, which comes back here.
//!         StepUp::Required => false,
//!     })
//! }
//! ```

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Redirect, Response};
use http::request::Parts;
use http::{Method, StatusCode, header};
use otp_core::DeviceId;

use crate::extract::{original_path_and_query, otp_session_from_parts, wants_json};
use crate::{OtpSession, OtpSessionRejection, WebError};

/// The session key of the devices enrolled in this session while the account had a confirmed
/// device already (their ids, as text).
pub const ENROLLED_HERE_SESSION_KEY: &str = "otp_enrolled_here";

/// Whether the session may change the account's second factor now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUp {
    /// The user has no confirmed device: the password was the only factor, and the first
    /// device may be enrolled with it.
    FirstDevice,
    /// The session was verified within the window by a device it did not enrol.
    Fresh,
    /// The user must verify again, with a device this session did not enrol.
    Required,
}

impl StepUp {
    /// Whether the change may go ahead.
    pub fn allows_change(self) -> bool {
        !matches!(self, Self::Required)
    }
}

impl OtpSession {
    /// Applies the [step-up rule](crate::step_up) to this session.
    ///
    /// # Errors
    ///
    /// [`WebError`] if the store or the session fails.
    pub async fn step_up(&self) -> Result<StepUp, WebError> {
        let Some(user) = self.user_key() else {
            return Ok(StepUp::Required);
        };
        if !self.web().otp().user_has_device(user, Some(true)).await? {
            return Ok(StepUp::FirstDevice);
        }
        let (Some(device), Some(at)) = (self.device(), self.state().verified_at) else {
            return Ok(StepUp::Required);
        };
        let window = self.web().config().step_up_window;
        if self.web().now().since(at) > window {
            return Ok(StepUp::Required);
        }
        let enrolled_here = self.enrolled_here().await?;
        if enrolled_here.contains(&device.id.to_string()) {
            return Ok(StepUp::Required);
        }
        Ok(StepUp::Fresh)
    }

    /// Records that this session enrolled `device`, so that it never makes this session fresh
    /// for a change (see the [step-up rule](crate::step_up)). Nothing is recorded for the
    /// account's first device, made while the user had no confirmed one.
    ///
    /// # Errors
    ///
    /// [`WebError`] if the store or the session fails.
    pub async fn record_enrolment(&self, device: &DeviceId) -> Result<(), WebError> {
        let Some(user) = self.user_key() else {
            return Ok(());
        };
        let others_confirmed = self
            .web()
            .otp()
            .devices_for_user(user, Some(true))
            .await?
            .iter()
            .any(|other| other.id != *device);
        if !others_confirmed {
            return Ok(());
        }
        let mut enrolled = self.enrolled_here().await?;
        enrolled.push(device.to_string());
        self.session
            .insert(ENROLLED_HERE_SESSION_KEY, enrolled)
            .await?;
        Ok(())
    }

    async fn enrolled_here(&self) -> Result<Vec<String>, WebError> {
        Ok(self
            .session
            .get::<Vec<String>>(ENROLLED_HERE_SESSION_KEY)
            .await?
            .unwrap_or_default())
    }
}

/// Succeeds only for a session that may change the second factor or do another sensitive
/// action now (the [step-up rule](self)); others get [`StepUpRequired`].
#[derive(Debug, Clone)]
pub struct SteppedUp(pub OtpSession);

/// The rejection of [`SteppedUp`].
#[derive(Debug)]
#[non_exhaustive]
pub enum StepUpRequired {
    /// Nobody is logged in: a browser goes to the login page, a JSON client gets 401.
    LoginRequired {
        /// Where a browser goes.
        to: String,
        /// Whether the client wants JSON.
        json: bool,
    },
    /// Verify again: a browser goes to the verification page, a JSON client gets 403.
    VerifyAgain {
        /// Where a browser goes.
        to: String,
        /// Whether the client wants JSON.
        json: bool,
    },
    /// A layer is missing or the state could not be read.
    Failed(OtpSessionRejection),
}

impl IntoResponse for StepUpRequired {
    fn into_response(self) -> Response {
        let json = |status, code: &str, message: &str| {
            (
                status,
                [(header::CACHE_CONTROL, "no-store")],
                axum::Json(serde_json::json!({ "error": code, "message": message })),
            )
                .into_response()
        };
        match self {
            Self::LoginRequired { json: true, .. } => json(
                StatusCode::UNAUTHORIZED,
                "login_required",
                "Please log in first.",
            ),
            Self::VerifyAgain { json: true, .. } => json(
                StatusCode::FORBIDDEN,
                "fresh_verification_required",
                "Please verify it's you again, with a device you had before this session.",
            ),
            Self::LoginRequired { to, .. } | Self::VerifyAgain { to, .. } => {
                Redirect::to(&to).into_response()
            }
            Self::Failed(rejection) => rejection.into_response(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SteppedUp {
    type Rejection = StepUpRequired;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let otp = otp_session_from_parts(parts)
            .await
            .map_err(StepUpRequired::Failed)?;
        let step_up = otp
            .step_up()
            .await
            .map_err(|err| StepUpRequired::Failed(OtpSessionRejection::Failed(err)))?;
        if step_up.allows_change() {
            return Ok(Self(otp));
        }
        let config = otp.web().config();
        // After the verification the browser comes back with a GET: a form's target cannot
        // be it, so a post comes back to the page it came from, if that is on this site.
        let here = match parts.method {
            Method::GET | Method::HEAD => original_path_and_query(parts),
            _ => config.default_redirect.as_str(),
        };
        let next = percent_encoding::utf8_percent_encode(here, crate::QUERY_VALUE);
        let json = wants_json(&parts.headers);
        let field = &config.redirect_field;
        if otp.is_authenticated() {
            Err(StepUpRequired::VerifyAgain {
                to: format!("{}/verify?{field}={next}", config.mount),
                json,
            })
        } else {
            let separator = if config.login_url.contains('?') {
                '&'
            } else {
                '?'
            };
            Err(StepUpRequired::LoginRequired {
                to: format!("{}{separator}{field}={next}", config.login_url),
                json,
            })
        }
    }
}
