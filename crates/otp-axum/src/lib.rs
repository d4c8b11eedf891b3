//! # otp-axum: OTP-verified sessions for axum and tower

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
pub mod json;
mod layer;
mod redirect;
mod state;
mod templates;
mod web;

pub use accounts::{
    Accounts, AccountsError, PasswordVerifier, SessionAccounts, USER_KEY_SESSION_KEY,
};
#[cfg(feature = "axum-login")]
pub use axum_login::{AxumLoginAccounts, UsernamePassword};
pub use error::WebError;
pub use extract::{MissingLayer, OtpRequired, OtpSession, OtpSessionRejection, Verified};
pub use flow::{DeviceChoice, FlowError};
pub use guard::{OtpRequiredLayer, OtpRequiredService, otp_required};
pub use layer::{OtpLayer, OtpService};
pub use redirect::safe_next;
pub use state::{DEVICE_ID_SESSION_KEY, OtpState, VERIFIED_AT_SESSION_KEY, login, unverify};
pub use web::{OtpWeb, WebConfig};

/// Characters percent-encoded in a query value.
pub(crate) const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');
