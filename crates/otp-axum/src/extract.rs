//! Extractors: [`OtpSession`] (always there) and [`Verified`] (only for verified sessions), with
//! rejections that render themselves.

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Redirect, Response};
use http::request::Parts;
use http::{Extensions, HeaderMap, StatusCode, header};
use otp_core::Device;
use tower_sessions::Session;

use crate::state::{OtpState, RequestOtp};
use crate::{OtpWeb, WebError};

/// The OTP state of the request and what can be done with it: django-otp's `request.user`
/// with `is_verified()` and `otp_device`, plus `login` and `logout`.
///
/// ```
/// use otp_axum::OtpSession;
///
/// async fn home(otp: OtpSession) -> String {
///     match (otp.user_key(), otp.device()) {
///         (Some(user), Some(device)) => format!("{user}, verified by {}", device.id),
///         (Some(user), None) => format!("{user}, not verified"),
///         (None, _) => "anonymous".into(),
///     }
/// }
/// ```
#[derive(Clone)]
pub struct OtpSession {
    pub(crate) request: RequestOtp,
    pub(crate) session: Session,
    pub(crate) extensions: Extensions,
    pub(crate) state: OtpState,
}

impl std::fmt::Debug for OtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtpSession")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl OtpSession {
    /// The logged-in user's key.
    pub fn user_key(&self) -> Option<&str> {
        self.state.user_key.as_deref()
    }

    /// The device that verified the session.
    pub fn device(&self) -> Option<&Device> {
        self.state.device.as_ref()
    }

    /// Whether a user is logged in.
    pub fn is_authenticated(&self) -> bool {
        self.state.is_authenticated()
    }

    /// Whether the session is OTP-verified.
    pub fn is_verified(&self) -> bool {
        self.state.is_verified()
    }

    /// The whole state.
    pub fn state(&self) -> &OtpState {
        &self.state
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The web layer.
    pub fn web(&self) -> &OtpWeb {
        &self.request.web
    }

    /// Marks the session as verified by `device` if it is the logged-in user's confirmed device
    /// (after the app verified a token against it), and cycles the session id. Returns whether
    /// it did.
    ///
    /// # Errors
    ///
    /// [`WebError::Session`] if the session store fails.
    pub async fn login(&mut self, device: &Device) -> Result<bool, WebError> {
        let Some(user) = self.state.user_key.clone() else {
            return Ok(false);
        };
        let now = self.web().now();
        if !crate::state::login_at(&self.session, &user, device, now).await? {
            return Ok(false);
        }
        self.state.device = Some(device.clone());
        self.state.verified_at = Some(now);
        self.request.set(self.state.clone()).await;
        Ok(true)
    }

    /// Logs the user out: the app's accounts first, then the whole session is deleted.
    ///
    /// # Errors
    ///
    /// [`WebError`] if the accounts or the session store fail.
    pub async fn logout(&mut self) -> Result<(), WebError> {
        self.web()
            .accounts()
            .log_out(&self.extensions, &self.session)
            .await?;
        self.session.flush().await?;
        self.state = OtpState::default();
        self.request.set(self.state.clone()).await;
        Ok(())
    }

    /// Takes `user_key` as the logged-in user for the rest of this request, unverified (after
    /// a flow logged them in: the app's own record may only show it from the next request).
    pub(crate) async fn assume_user(&mut self, user_key: &str) {
        self.state = OtpState {
            user_key: Some(user_key.to_owned()),
            ..OtpState::default()
        };
        self.request.set(self.state.clone()).await;
    }

    /// Ends every other session of the logged-in user, and every login of theirs that is half
    /// done, on every server (after a password change, say): the account's session epoch moves
    /// on, this session takes the new one and a new id. Returns `false` if nobody is logged
    /// in. The rows of the ended sessions may stay in the session store until they expire
    /// ([`SqlSessionStore::delete_user_sessions`](crate::SqlSessionStore::delete_user_sessions)
    /// removes them): they are refused when presented.
    ///
    /// # Errors
    ///
    /// [`WebError`] if the store or the session fails.
    pub async fn end_other_sessions(&mut self) -> Result<bool, WebError> {
        let Some(user) = self.state.user_key.clone() else {
            return Ok(false);
        };
        let epoch = self.web().otp().end_sessions(&user).await?;
        self.session
            .insert(crate::state::SESSION_EPOCH_SESSION_KEY, epoch)
            .await?;
        self.session.cycle_id().await?;
        Ok(true)
    }

    /// Reads the state again from the session (after the app logged a user in or out).
    ///
    /// # Errors
    ///
    /// [`WebError`] if the accounts, the session store or the framework fail.
    pub async fn refresh(&mut self) -> Result<(), WebError> {
        *self.request.cache.lock().await = None;
        self.state = self.request.state(&self.extensions, &self.session).await?;
        Ok(())
    }
}

/// A misconfigured app: the extractor's layer is not there. Renders a 500 that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissingLayer {
    /// `OtpLayer` is not on the route.
    OtpLayer,
    /// tower-sessions' `SessionManagerLayer` is not outside `OtpLayer`.
    SessionLayer,
}

impl IntoResponse for MissingLayer {
    fn into_response(self) -> Response {
        let message = match self {
            Self::OtpLayer => "Can't extract the OTP state. Is `otp_axum::OtpLayer` enabled?",
            Self::SessionLayer => {
                "Can't extract the session. Is tower-sessions' `SessionManagerLayer` enabled outside `otp_axum::OtpLayer`?"
            }
        };
        tracing::error!("{message}");
        (StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
    }
}

/// Why [`OtpSession`] could not be extracted.
#[derive(Debug)]
#[non_exhaustive]
pub enum OtpSessionRejection {
    /// A layer is missing.
    Missing(MissingLayer),
    /// Reading the state failed.
    Failed(WebError),
}

impl IntoResponse for OtpSessionRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Missing(missing) => missing.into_response(),
            Self::Failed(err) => err.into_response(),
        }
    }
}

pub(crate) async fn otp_session_from_parts(
    parts: &Parts,
) -> Result<OtpSession, OtpSessionRejection> {
    let request = parts
        .extensions
        .get::<RequestOtp>()
        .cloned()
        .ok_or(OtpSessionRejection::Missing(MissingLayer::OtpLayer))?;
    let session = parts
        .extensions
        .get::<Session>()
        .cloned()
        .ok_or(OtpSessionRejection::Missing(MissingLayer::SessionLayer))?;
    let state = request
        .state(&parts.extensions, &session)
        .await
        .map_err(OtpSessionRejection::Failed)?;
    Ok(OtpSession {
        request,
        session,
        extensions: parts.extensions.clone(),
        state,
    })
}

impl<S: Send + Sync> FromRequestParts<S> for OtpSession {
    type Rejection = OtpSessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        otp_session_from_parts(parts).await
    }
}

/// Succeeds only for an OTP-verified session: the extractor counterpart of django-otp's
/// `otp_required`. Others get [`OtpRequired`]: a redirect to the login page for browsers, a 403
/// `{"error": "otp_required"}` for JSON clients.
///
/// ```
/// use otp_axum::Verified;
///
/// async fn secret_page(Verified(otp): Verified) -> String {
///     format!("hello {}", otp.user_key().unwrap_or_default())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Verified(pub OtpSession);

/// The rejection of [`Verified`] and of [`otp_required`](crate::otp_required).
#[derive(Debug)]
#[non_exhaustive]
pub enum OtpRequired {
    /// Send a browser to the login page.
    Redirect(String),
    /// Tell a JSON client.
    Json,
    /// A layer is missing or the state could not be read.
    Failed(OtpSessionRejection),
}

impl IntoResponse for OtpRequired {
    fn into_response(self) -> Response {
        match self {
            Self::Redirect(to) => Redirect::to(&to).into_response(),
            Self::Json => (
                StatusCode::FORBIDDEN,
                [(header::CACHE_CONTROL, "no-store")],
                axum::Json(serde_json::json!({ "error": "otp_required" })),
            )
                .into_response(),
            Self::Failed(rejection) => rejection.into_response(),
        }
    }
}

/// Whether a request wants JSON rather than HTML: it sent JSON, or it accepts JSON and not
/// HTML.
pub(crate) fn wants_json(headers: &HeaderMap) -> bool {
    let value = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let accept = value(header::ACCEPT);
    value(header::CONTENT_TYPE).starts_with("application/json")
        || (accept.contains("application/json") && !accept.contains("text/html"))
}

/// The path and query the client asked for: inside `Router::nest` the URI has lost its
/// prefix, and the original one has it.
pub(crate) fn original_path_and_query(parts: &Parts) -> &str {
    parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or(&parts.uri, |original| &original.0)
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
}

/// The rejection for a request that needs a verified session, given where to log in.
pub(crate) fn otp_required_rejection(parts: &Parts, login_url: &str, field: &str) -> OtpRequired {
    if wants_json(&parts.headers) {
        return OtpRequired::Json;
    }
    let here = original_path_and_query(parts);
    let separator = if login_url.contains('?') { '&' } else { '?' };
    let next = percent_encoding::utf8_percent_encode(here, crate::QUERY_VALUE);
    OtpRequired::Redirect(format!("{login_url}{separator}{field}={next}"))
}

impl<S: Send + Sync> FromRequestParts<S> for Verified {
    type Rejection = OtpRequired;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let otp = otp_session_from_parts(parts)
            .await
            .map_err(OtpRequired::Failed)?;
        if otp.is_verified() {
            return Ok(Self(otp));
        }
        let config = otp.web().config();
        Err(otp_required_rejection(
            parts,
            &config.login_url,
            &config.redirect_field,
        ))
    }
}
