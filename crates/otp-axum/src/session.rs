//! Session cookies with secure defaults.

use tower_sessions::cookie::SameSite;
use tower_sessions::cookie::time::Duration;
use tower_sessions::{Expiry, SessionManagerLayer, SessionStore};

/// The name of the session cookie made by [`session_layer`].
pub const SESSION_COOKIE: &str = "otp_session";

/// tower-sessions' layer with the defaults a login needs: `HttpOnly`, `SameSite=Lax`, `Secure`
/// unless `secure` is false (plain-HTTP development only), a cookie named `otp_session`, and
/// sessions that end after two weeks without activity.
pub fn session_layer<S: SessionStore + Clone>(store: S, secure: bool) -> SessionManagerLayer<S> {
    SessionManagerLayer::new(store)
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure)
        .with_expiry(Expiry::OnInactivity(Duration::weeks(2)))
}
