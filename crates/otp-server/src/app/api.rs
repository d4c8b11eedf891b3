//! JSON endpoints of the server beyond the library's login API, nested at `/api/v1` next to
//! [`otp_axum::json::routes`] (`/session`, `/me`, `/otp/challenge`, `/otp/verify`): the user's
//! devices, which are the library's ([`otp_axum::manage::json`] documents them: any kind users
//! enrol, with the step-up rule and the limits), and `GET /openapi.json`, describing the whole
//! `/api/v1`.

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header;

use crate::app::AppState;

/// The server's own JSON routes, nested at `/api/v1`: the library's device management
/// ([`otp_axum::manage::json::routes`]) and the OpenAPI document.
pub fn routes() -> Router<AppState> {
    otp_axum::manage::json::routes().route("/openapi.json", get(openapi))
}

// =============================================================================================
// OpenAPI: `GET /openapi.json`, describing the whole `/api/v1` (the library's endpoints and
// the ones above).
// =============================================================================================

/// The OpenAPI 3.0 description of `/api/v1`, written by hand next to the code it describes
/// (`crates/otp-server/api/openapi.json`); `tests/app.rs` checks that it parses and that every
/// route it names answers.
pub const OPENAPI: &str = include_str!("../../api/openapi.json");

/// `GET /openapi.json`.
async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}
