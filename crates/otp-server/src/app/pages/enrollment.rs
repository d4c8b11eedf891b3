//! Self-service device management for logged-in users (to come): list their devices, add a
//! TOTP device (QR code and confirmation code), an email device, backup codes (shown once),
//! rename and remove devices.
//!
//! Suggested paths: `/account/devices` and below. Handlers take `State<AppState>` and
//! [`CurrentUser`](crate::app::CurrentUser); they render templates with
//! [`AppState::render`](crate::app::AppState::render) and check forms with
//! [`AppState::check_form`](crate::app::AppState::check_form).

use axum::Router;

use crate::app::AppState;

/// The routes of the device pages, merged into the app's router (paths are absolute).
pub fn routes() -> Router<AppState> {
    Router::new()
}
