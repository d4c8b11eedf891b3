//! Devices and the outcomes of what is done with them.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::{DeviceId, ThrottleState, Timestamp};

/// A device of any kind, as stored: the columns every kind shares, and the kind's own state.
///
/// `Debug` leaves the kind's state out: it holds sealed secrets and code hashes.
#[derive(Clone)]
pub struct Device {
    /// Stable id, such as `totp/42`; its kind part names the device's kind.
    pub id: DeviceId,
    /// The app's key of the user who owns the device.
    pub user_key: String,
    /// A name for people.
    pub name: String,
    /// Whether enrolment finished; only confirmed devices verify a login.
    pub confirmed: bool,
    /// When the device was created.
    pub created_at: Timestamp,
    /// When the device last verified a token.
    pub last_used_at: Option<Timestamp>,
    /// Throttling state.
    pub throttle: ThrottleState,
    /// When the device last sent a challenge (for the cooldown).
    pub last_challenge_at: Option<Timestamp>,
    pub(crate) version: i64,
    pub(crate) state: Value,
}

impl Device {
    /// The kind's name.
    pub fn kind(&self) -> &str {
        self.id.kind()
    }

    /// The kind's own state, as stored (secrets in it are sealed).
    pub fn state(&self) -> &Value {
        &self.state
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .field("user_key", &self.user_key)
            .field("name", &self.name)
            .field("confirmed", &self.confirmed)
            .field("created_at", &self.created_at)
            .field("last_used_at", &self.last_used_at)
            .field("throttle", &self.throttle)
            .field("last_challenge_at", &self.last_challenge_at)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Device {
    /// `name (user)`, as django-otp's `__str__`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.user_key)
    }
}

/// Why a verification or challenge was not even attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotAllowedReason {
    /// The device has not finished enrolment; use the confirmation path.
    Unconfirmed,
    /// The account used up its failure budget; only recovery codes (and an operator) can
    /// unlock it.
    AccountLocked,
    /// The device is confirmed already (on the confirmation path).
    AlreadyConfirmed,
    /// The device does not send challenges.
    NotInteractive,
}

impl fmt::Display for NotAllowedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unconfirmed => "the device is not confirmed",
            Self::AccountLocked => "the account is locked after too many failed verifications",
            Self::AlreadyConfirmed => "the device is confirmed already",
            Self::NotInteractive => "the device does not send challenges",
        })
    }
}

/// The outcome of a verification. A wrong token is an outcome, not an error.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum VerifyOutcome {
    /// The token was right; it will never be accepted again. The device is as stored after the
    /// verification.
    Verified(Device),
    /// The token was wrong (or malformed).
    Invalid {
        /// Consecutive failures of the device, this one included.
        failure_count: u32,
    },
    /// Too many recent failures: the token was not looked at, and nothing was counted.
    Throttled {
        /// Consecutive failures of the device.
        failure_count: u32,
        /// How long until the next attempt is allowed.
        retry_after: Duration,
    },
    /// The verification was not attempted; nothing changed.
    NotAllowed {
        /// Why.
        reason: NotAllowedReason,
    },
}

impl VerifyOutcome {
    /// Whether the token was accepted.
    pub fn is_verified(&self) -> bool {
        matches!(self, Self::Verified(_))
    }
}

/// The outcome of a challenge request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ChallengeOutcome {
    /// The challenge was delivered; the message is for the user ("sent by email").
    Sent {
        /// Where it went, for example the email address.
        recipient: String,
        /// How long the code stays valid.
        valid_for: Duration,
    },
    /// The last challenge is too recent.
    Cooldown {
        /// How long until the next challenge is allowed.
        retry_after: Duration,
    },
    /// The challenge was not attempted; nothing changed.
    NotAllowed {
        /// Why.
        reason: NotAllowedReason,
    },
}
