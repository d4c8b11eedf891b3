//! What the session says about OTP: which device verified it, when, and a half-finished login.

use std::sync::Arc;
use std::time::Duration;

use http::Extensions;
use otp_core::{Clock, Device, DeviceId, SystemClock, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tower_sessions::Session;

use crate::{OtpWeb, WebError};

/// The session key of the verified device's id, as in django-otp.
pub const DEVICE_ID_SESSION_KEY: &str = "otp_device_id";
/// The session key of the time of verification (milliseconds since the epoch).
pub const VERIFIED_AT_SESSION_KEY: &str = "otp_verified_at";
/// The session key of the last noted request of a verified session (milliseconds since the
/// epoch), for [`WebConfig::max_verification_idle`](crate::WebConfig::max_verification_idle).
pub const VERIFIED_SEEN_AT_SESSION_KEY: &str = "otp_verified_seen_at";
/// The session key of the account's session epoch when the user logged in (see
/// [`Otp::end_sessions`](otp_core::Otp::end_sessions)). A session whose epoch is behind the
/// account's is ended when it is next used; one without it counts as epoch 0.
pub const SESSION_EPOCH_SESSION_KEY: &str = "otp_session_epoch";
/// The session key of a login whose password passed and whose second factor is awaited.
pub(crate) const PENDING_SESSION_KEY: &str = "otp_pending_login";

/// A login half done: the password was right, the second factor is awaited. Kept server-side
/// in the session; the password itself is never kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingLogin {
    pub(crate) user_key: String,
    pub(crate) started_at: i64,
    /// The account's session epoch when the password passed: if it moved on since (the
    /// password was changed), the second factor cannot finish this login.
    #[serde(default)]
    pub(crate) epoch: i64,
}

/// The OTP state of a request, resolved once from the session.
#[derive(Debug, Clone, Default)]
pub struct OtpState {
    /// The logged-in user, if any.
    pub user_key: Option<String>,
    /// The confirmed device of that user that verified the session, if any.
    pub device: Option<Device>,
    /// When the session was verified.
    pub verified_at: Option<Timestamp>,
}

impl OtpState {
    /// Whether a user is logged in.
    pub fn is_authenticated(&self) -> bool {
        self.user_key.is_some()
    }

    /// Whether the session is OTP-verified (django-otp's `user.is_verified()`).
    pub fn is_verified(&self) -> bool {
        self.device.is_some()
    }
}

/// The per-request cache that [`OtpLayer`](crate::OtpLayer) puts in the request's extensions.
#[derive(Clone)]
pub(crate) struct RequestOtp {
    pub(crate) web: OtpWeb,
    pub(crate) cache: Arc<Mutex<Option<OtpState>>>,
    pub(crate) csrf_cookie: Arc<CsrfCookie>,
}

/// The browser's CSRF cookie for forms shown before a login (see [`crate::csrf`]): the nonce
/// the request presented, and one issued for the response if it presented none.
#[derive(Debug, Default)]
pub(crate) struct CsrfCookie {
    pub(crate) presented: Option<String>,
    pub(crate) issued: std::sync::Mutex<Option<String>>,
}

impl CsrfCookie {
    /// The nonce of this browser: the one it presented, else a new one that the response
    /// will set.
    pub(crate) fn nonce(&self) -> String {
        if let Some(nonce) = &self.presented {
            return nonce.clone();
        }
        let mut issued = self.issued.lock().unwrap_or_else(|err| err.into_inner());
        issued
            .get_or_insert_with(|| {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes)
                    .expect("the operating system random number generator failed");
                bytes.iter().map(|b| format!("{b:02x}")).collect()
            })
            .clone()
    }
}

impl RequestOtp {
    /// The state, read from the session and the store on first use only.
    pub(crate) async fn state(
        &self,
        extensions: &Extensions,
        session: &Session,
    ) -> Result<OtpState, WebError> {
        let mut cache = self.cache.lock().await;
        if let Some(state) = cache.as_ref() {
            return Ok(state.clone());
        }
        let state = resolve(&self.web, extensions, session).await?;
        *cache = Some(state.clone());
        Ok(state)
    }

    pub(crate) async fn set(&self, state: OtpState) {
        *self.cache.lock().await = Some(state);
    }
}

/// Reads the state from the session, dropping a device id that no longer stands: a device that
/// was deleted, is not the user's, is not confirmed, or verified longer ago than the maximum age.
async fn resolve(
    web: &OtpWeb,
    extensions: &Extensions,
    session: &Session,
) -> Result<OtpState, WebError> {
    let user_key = web.accounts().current_user(extensions, session).await?;
    let Some(user) = user_key.clone() else {
        return Ok(OtpState::default());
    };
    let epoch = session
        .get::<i64>(SESSION_EPOCH_SESSION_KEY)
        .await?
        .unwrap_or(0);
    if epoch < web.otp().session_epoch(&user).await? {
        // Ended (by a password change, say) after it was made: whatever its store still
        // holds, or a request in flight wrote back, it is logged out.
        web.accounts().log_out(extensions, session).await?;
        session.flush().await?;
        return Ok(OtpState::default());
    }
    let Some(id_text) = session.get::<String>(DEVICE_ID_SESSION_KEY).await? else {
        return Ok(OtpState {
            user_key,
            ..OtpState::default()
        });
    };
    let verified_at = session
        .get::<i64>(VERIFIED_AT_SESSION_KEY)
        .await?
        .map(Timestamp::from_unix_millis);
    let device = match id_text.parse::<DeviceId>() {
        Ok(id) => web
            .otp()
            .device_of(&user, &id)
            .await?
            .filter(|d| d.confirmed),
        Err(_) => None,
    };
    let now = web.now();
    let lapsed = match (web.config().max_verification_age, verified_at) {
        (Some(max_age), Some(at)) => now.since(at) > max_age,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let idle = match (web.config().max_verification_idle, verified_at) {
        (Some(max_idle), Some(at)) => {
            let seen_at = session
                .get::<i64>(VERIFIED_SEEN_AT_SESSION_KEY)
                .await?
                .map_or(at, Timestamp::from_unix_millis);
            let quiet = now.since(seen_at);
            if quiet <= max_idle && quiet > (max_idle / 10).min(Duration::from_secs(60)) {
                session
                    .insert(VERIFIED_SEEN_AT_SESSION_KEY, now.unix_millis())
                    .await?;
            }
            quiet > max_idle
        }
        _ => false,
    };
    if device.is_none() || lapsed || idle {
        session.remove_value(DEVICE_ID_SESSION_KEY).await?;
        session.remove_value(VERIFIED_AT_SESSION_KEY).await?;
        session.remove_value(VERIFIED_SEEN_AT_SESSION_KEY).await?;
        return Ok(OtpState {
            user_key,
            ..OtpState::default()
        });
    }
    Ok(OtpState {
        user_key,
        device,
        verified_at,
    })
}

/// Marks the session as verified by `device` (django-otp's `otp_login`), but only if `device`
/// belongs to `user_key` and is confirmed; returns whether it did. The session id is cycled,
/// so a session fixed by an attacker before the verification is worthless after it.
///
/// # Errors
///
/// [`WebError::Session`] if the session store fails.
pub async fn login(session: &Session, user_key: &str, device: &Device) -> Result<bool, WebError> {
    login_at(session, user_key, device, SystemClock.now()).await
}

pub(crate) async fn login_at(
    session: &Session,
    user_key: &str,
    device: &Device,
    now: Timestamp,
) -> Result<bool, WebError> {
    if device.user_key != user_key || !device.confirmed {
        return Ok(false);
    }
    session
        .insert(DEVICE_ID_SESSION_KEY, device.id.to_string())
        .await?;
    session
        .insert(VERIFIED_AT_SESSION_KEY, now.unix_millis())
        .await?;
    session.remove_value(VERIFIED_SEEN_AT_SESSION_KEY).await?;
    session.cycle_id().await?;
    Ok(true)
}

/// Removes the verification from the session and cycles its id. (A full logout is
/// [`OtpSession::logout`](crate::OtpSession::logout).)
///
/// # Errors
///
/// [`WebError::Session`] if the session store fails.
pub async fn unverify(session: &Session) -> Result<(), WebError> {
    let had = session.remove_value(DEVICE_ID_SESSION_KEY).await?.is_some();
    session.remove_value(VERIFIED_AT_SESSION_KEY).await?;
    if had {
        session.cycle_id().await?;
    }
    Ok(())
}

/// Whether a pending login has outlived `timeout` at `now`.
pub(crate) fn pending_expired(pending: &PendingLogin, timeout: Duration, now: Timestamp) -> bool {
    now.since(Timestamp::from_unix_millis(pending.started_at)) > timeout
}
