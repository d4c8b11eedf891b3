//! Errors of the web layer that are the server's fault: they become a 500 with a generic body,
//! and their detail goes to the log only.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::AccountsError;

/// A failure of the session store, the app's accounts, or the framework.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// The session store failed.
    #[error("session store: {0}")]
    Session(#[from] tower_sessions::session::Error),
    /// The app's accounts failed.
    #[error("accounts: {0}")]
    Accounts(#[from] AccountsError),
    /// The framework failed (the database, a mail server, broken stored state).
    #[error(transparent)]
    Core(#[from] otp_core::Error),
    /// A template failed to render.
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "otp web layer failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(http::header::CACHE_CONTROL, "no-store")],
            "internal error",
        )
            .into_response()
    }
}
