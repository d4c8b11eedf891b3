//! # otp-axum: OTP-verified sessions for axum and tower
//!
//! The web layer of the otp two-factor framework, django-otp's middleware, `otp_required`,
//! forms and views done the axum way: a tower layer on top of tower-sessions, extractors, a
//! route guard, and the login and verification flows as HTML pages and as a JSON API.
//!
//! ## Two-factor login in a few lines
//!
//! ```
//! use axum::{Router, routing::get};
//! use otp_axum::{OtpLayer, OtpWeb, PasswordVerifier, SessionAccounts, Verified, AccountsError};
//! use otp_core::{BoxFuture, KeyRing, Otp, Store};
//!
//! /// The app's own password check (here: one user, for the example).
//! #[derive(Debug)]
//! struct Passwords;
//!
//! impl PasswordVerifier for Passwords {
//!     fn verify_password<'a>(&'a self, username: &'a str, password: &'a str)
//!         -> BoxFuture<'a, Result<Option<String>, AccountsError>> {
//!         let ok = username == "alice" && password == "correct horse";
//!         Box::pin(async move { Ok(ok.then(|| "user-1".to_owned())) })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let url = format!("sqlite://{}", dir.path().join("otp.db").display());
//! let store = Store::connect(&url).await?;
//! store.migrate().await?;
//! let otp = Otp::builder(store, KeyRing::generate()).build()?;
//! let web = OtpWeb::new(otp, SessionAccounts::new(Passwords))?;
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "public" }))
//!     // Only for OTP-verified sessions: others are sent to the login page (or get a 403
//!     // `{"error": "otp_required"}` if they speak JSON).
//!     .route("/secret", get(|Verified(otp): Verified| async move {
//!         format!("hello {}", otp.user_key().unwrap_or_default())
//!     }))
//!     // Login and verification, then self-service devices of every registered kind
//!     // (`GET /api/v1/devices`, `POST /api/v1/devices/totp`, ...).
//!     .nest(
//!         "/api/v1",
//!         otp_axum::json::routes().merge(otp_axum::manage::json::routes()),
//!     )
//!     .layer(OtpLayer::new(web))
//!     .layer(otp_axum::session_layer(tower_sessions::MemoryStore::default(), false));
//!
//! // An anonymous JSON client is refused.
//! use tower::ServiceExt;
//! let request = http::Request::get("/secret")
//!     .header("accept", "application/json")
//!     .body(axum::body::Body::empty())?;
//! let response = app.oneshot(request).await?;
//! assert_eq!(response.status(), http::StatusCode::FORBIDDEN);
//! # Ok(())
//! # }
//! ```
//!
//! ## The pieces
//!
//! - [`OtpLayer`] (inside tower-sessions' layer) makes the OTP state of each request available,
//!   reading it at most once: the logged-in user and the device that verified the session
//!   (session key `otp_device_id`, as in django-otp). A device that was deleted, is not the
//!   user's or is unconfirmed is dropped from the session.
//! - [`OtpSession`] extracts that state (always); [`Verified`] only for verified sessions.
//! - [`otp_required`] guards routes, with django-otp's `login_url`, `redirect_field_name` and
//!   `if_configured`; `next` values are followed only when [`safe_next`] accepts them.
//! - [`login`] marks a session verified by a device of its user and cycles the session id;
//!   [`OtpSession::logout`] ends it.
//! - The flows, as HTML pages ([`html::routes`]) and as a JSON API ([`json::routes`]), share
//!   one implementation ([`flow`]): password first (through [`Accounts`]: [`SessionAccounts`]
//!   with the app's [`PasswordVerifier`], or `AxumLoginAccounts` with the `axum-login`
//!   feature), then the second factor, with the half-done login held in the session for at
//!   most ten minutes.
//! - [`csrf`]: a session-bound token for forms (a token signed from an `otp_csrf` cookie for
//!   a visitor's login form, so that it stores no session); for JSON, a JSON content type and
//!   a same-site `Origin` (same scheme and host: set [`WebConfig::https`] on an HTTPS site).
//! - [`step_up`]: changes to the second factor and other sensitive actions need a recent
//!   verification by a device the session did not enrol ([`OtpSession::step_up`], the
//!   [`step_up::SteppedUp`] extractor).
//! - [`manage`]: self-service device management for any kind in the registry (enrol, confirm,
//!   rename, remove, new codes), with the rules every app needs, and its JSON API
//!   ([`manage::json::routes`], nested beside [`json::routes`]). The app says what to show of
//!   its users through [`Accounts::profile`].
//! - [`SqlSessionStore`]: sessions in the framework's database, keyed by a hash of the cookie;
//!   [`OtpSession::end_other_sessions`] ends every other session of the user (a password
//!   change) on every server, whatever the session store.
//!
//! ## Sensitive actions of your own
//!
//! ```
//! use axum::{Router, routing::post};
//! use otp_axum::step_up::SteppedUp;
//!
//! /// Reached only by a session verified in the last five minutes (`WebConfig::step_up_window`)
//! /// by a device it did not add; others re-verify at `/account/verify` and come back.
//! async fn change_email(SteppedUp(otp): SteppedUp) -> &'static str {
//!     "changed"
//! }
//!
//! let app: Router = Router::new().route("/account/email", post(change_email));
//! ```
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `axum-login` | no | `AxumLoginAccounts`: the flows on top of axum-login |

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod accounts;
#[cfg(feature = "axum-login")]
mod axum_login;
pub mod csrf;
mod error;
mod extract;
pub mod flow;
mod guard;
pub mod html;
pub mod json;
mod layer;
pub mod manage;
mod redirect;
mod session;
mod session_store;
mod state;
pub mod step_up;
mod templates;
mod web;

pub use accounts::{
    Accounts, AccountsError, PasswordVerifier, Profile, SessionAccounts, USER_KEY_SESSION_KEY,
};
#[cfg(feature = "axum-login")]
pub use axum_login::{AxumLoginAccounts, UsernamePassword};
pub use error::WebError;
pub use extract::{MissingLayer, OtpRequired, OtpSession, OtpSessionRejection, Verified};
pub use flow::{DeviceChoice, FlowError};
pub use guard::{OtpRequiredLayer, OtpRequiredService, otp_required};
pub use layer::{OtpLayer, OtpService};
pub use redirect::safe_next;
pub use session::{SESSION_COOKIE, session_layer};
pub use session_store::SqlSessionStore;
pub use state::{
    DEVICE_ID_SESSION_KEY, OtpState, SESSION_EPOCH_SESSION_KEY, VERIFIED_AT_SESSION_KEY,
    VERIFIED_SEEN_AT_SESSION_KEY, login, unverify,
};
pub use step_up::StepUp;
pub use web::{OtpWeb, WebConfig};

/// Characters percent-encoded in a query value.
pub(crate) const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');
