//! The admin for staff users (to come): users (search, pages, the staff flag) and their
//! devices (throttling reset, removal, account failure reset), leaving out secrets and codes
//! when `ServerConfig::admin_hide_sensitive_data` is set.
//!
//! Suggested paths: `/admin` and below. Users come from
//! [`Users::list`](crate::app::Users::list); a handler should require a logged-in staff user
//! ([`CurrentUser`](crate::app::CurrentUser) and `user.is_staff`) whose session is verified
//! when they have a device.

use axum::Router;

use crate::app::AppState;

/// The routes of the admin pages, merged into the app's router (paths are absolute).
pub fn routes() -> Router<AppState> {
    Router::new()
}
