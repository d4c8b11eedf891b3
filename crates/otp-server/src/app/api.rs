//! JSON endpoints of the server beyond the library's login API (to come): the user's devices,
//! sign-up, password change, and `/openapi.json` describing the whole `/api/v1`.
//!
//! These routes are nested at `/api/v1` next to [`otp_axum::json::routes`] (`/session`,
//! `/me`, `/otp/challenge`, `/otp/verify`), so their paths here are relative to it
//! (`/openapi.json` is served at `/api/v1/openapi.json`). Like the library's, every endpoint
//! that changes state must check `otp_axum::csrf::check_json_request`.

use axum::Router;

use crate::app::AppState;

/// The server's own JSON routes, nested at `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
}
