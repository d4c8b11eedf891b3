//! The JSON API: the same flows as the HTML pages, for single-page apps and mobile clients.
//!
//! | method and path | body | success |
//! |---|---|---|
//! | `POST /session` | `{"username", "password"}` | 200 `{"otp_required": bool, "devices": [{"id", "name", "kind", "interactive"}]}` |
//! | `DELETE /session` | — | 204 |
//! | `GET /me` | — | 200 `{"user", "verified", "device"}`; 401 when nobody is logged in |
//! | `POST /otp/challenge` | `{"device"}` | 200 `{"sent": true}` |
//! | `POST /otp/verify` | `{"device", "token"}` | 200 `{"verified": true}` |
//!
//! Errors are `{"error": code, "message": text}` with `retry_after` (and a `Retry-After`
//! header) when waiting helps: see [`FlowError`] for codes and statuses.
//! Every request that changes state must be `application/json` and come from this site (or
//! an allowed origin): others get 415 or 403.

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use crate::OtpSession;
use crate::csrf::check_json_request;
use crate::flow::{self, FlowError, PasswordOutcome, StepError};

/// The JSON API's routes, to nest where the app wants them (for example `/api/v1`).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/session", post(create_session).delete(delete_session))
        .route("/me", get(me))
        .route("/otp/challenge", post(challenge))
        .route("/otp/verify", post(verify))
}

fn no_store(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

fn step_error(err: StepError) -> Response {
    match err {
        StepError::Flow(flow) => flow.into_response(),
        StepError::Web(web) => web.into_response(),
    }
}

/// Refuses cross-site and non-JSON requests, and bodies that are not the expected JSON. (The
/// refusal is boxed: a `Response` is large.)
fn checked<T>(
    otp: &OtpSession,
    headers: &HeaderMap,
    body: Result<Json<T>, JsonRejection>,
) -> Result<T, Box<Response>> {
    check_json_request(headers, otp.web().config())
        .map_err(|rejection| Box::new(rejection.into_response()))?;
    body.map(|Json(value)| value).map_err(|_| {
        Box::new(FlowError::BadRequest("The body is not the expected JSON object.").into_response())
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

async fn create_session(
    mut otp: OtpSession,
    headers: HeaderMap,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Response {
    let credentials = match checked(&otp, &headers, body) {
        Ok(credentials) => credentials,
        Err(response) => return *response,
    };
    match flow::password_step(&mut otp, &credentials.username, &credentials.password).await {
        Ok(PasswordOutcome::LoggedIn) => {
            no_store(Json(json!({ "otp_required": false, "devices": [] })))
        }
        Ok(PasswordOutcome::SecondFactor(devices)) => {
            no_store(Json(json!({ "otp_required": true, "devices": devices })))
        }
        Err(err) => step_error(err),
    }
}

async fn delete_session(mut otp: OtpSession, headers: HeaderMap) -> Response {
    if let Err(rejection) = crate::csrf::check_origin(&headers, otp.web().config()) {
        return rejection.into_response();
    }
    match otp.logout().await {
        Ok(()) => no_store(StatusCode::NO_CONTENT),
        Err(err) => err.into_response(),
    }
}

async fn me(otp: OtpSession) -> Response {
    match otp.user_key() {
        None => FlowError::LoginRequired.into_response(),
        Some(user) => no_store(Json(json!({
            "user": user,
            "verified": otp.is_verified(),
            "device": otp.device().map(|d| d.id.to_string()),
        }))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChallengeRequest {
    device: String,
}

async fn challenge(
    otp: OtpSession,
    headers: HeaderMap,
    body: Result<Json<ChallengeRequest>, JsonRejection>,
) -> Response {
    let request = match checked(&otp, &headers, body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    match flow::challenge_step(&otp, &request.device).await {
        Ok(()) => no_store(Json(json!({ "sent": true }))),
        Err(err) => step_error(err),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    device: String,
    token: String,
}

async fn verify(
    mut otp: OtpSession,
    headers: HeaderMap,
    body: Result<Json<VerifyRequest>, JsonRejection>,
) -> Response {
    let request = match checked(&otp, &headers, body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    match flow::verify_step(&mut otp, &request.device, &request.token).await {
        Ok(()) => no_store(Json(json!({ "verified": true }))),
        Err(err) => step_error(err),
    }
}
