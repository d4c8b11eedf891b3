//! Events: what happened to verifications and challenges, for an app to subscribe to (the
//! counterpart of django-otp's `otp_verification_failed` signal) and for the log.

use std::time::Duration;

use crate::{DeviceId, Timestamp};

/// Something that happened. Events carry ids and counts, never a token or a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtpEvent {
    /// A token was accepted.
    Verified {
        /// When.
        at: Timestamp,
        /// Whose device.
        user_key: String,
        /// Which device.
        device_id: DeviceId,
    },
    /// A token was refused.
    VerificationFailed {
        /// When.
        at: Timestamp,
        /// Whose device.
        user_key: String,
        /// Which device.
        device_id: DeviceId,
        /// Consecutive failures of the device.
        failure_count: u32,
    },
    /// A verification was refused unseen because the device is throttled.
    Throttled {
        /// When.
        at: Timestamp,
        /// Whose device.
        user_key: String,
        /// Which device.
        device_id: DeviceId,
        /// How long until the next attempt is allowed.
        retry_after: Duration,
    },
    /// The account used up its failure budget (sent when the failure that exhausts it happens,
    /// and for each attempt refused because of it).
    AccountLocked {
        /// When.
        at: Timestamp,
        /// Whose account.
        user_key: String,
    },
    /// A challenge was delivered.
    ChallengeSent {
        /// When.
        at: Timestamp,
        /// Whose device.
        user_key: String,
        /// Which device.
        device_id: DeviceId,
    },
    /// A challenge could not be delivered.
    ChallengeFailed {
        /// When.
        at: Timestamp,
        /// Whose device.
        user_key: String,
        /// Which device.
        device_id: DeviceId,
    },
}

impl OtpEvent {
    /// Writes the event to the `tracing` log.
    pub(crate) fn log(&self) {
        match self {
            Self::Verified {
                user_key,
                device_id,
                ..
            } => {
                tracing::info!(user = %user_key, device = %device_id, "otp verification succeeded");
            }
            Self::VerificationFailed {
                user_key,
                device_id,
                failure_count,
                ..
            } => {
                tracing::info!(user = %user_key, device = %device_id, failure_count, "otp verification failed");
            }
            Self::Throttled {
                user_key,
                device_id,
                retry_after,
                ..
            } => {
                tracing::warn!(user = %user_key, device = %device_id, retry_after_ms = retry_after.as_millis() as u64, "otp verification throttled");
            }
            Self::AccountLocked { user_key, .. } => {
                tracing::warn!(user = %user_key, "otp account locked: failure budget used up");
            }
            Self::ChallengeSent {
                user_key,
                device_id,
                ..
            } => {
                tracing::info!(user = %user_key, device = %device_id, "otp challenge sent");
            }
            Self::ChallengeFailed {
                user_key,
                device_id,
                ..
            } => {
                tracing::error!(user = %user_key, device = %device_id, "otp challenge could not be delivered");
            }
        }
    }
}
