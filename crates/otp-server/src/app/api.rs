//! JSON endpoints of the server beyond the library's login API: the user's devices (below),
//! and `/openapi.json` describing the whole `/api/v1`.
//!
//! These routes are nested at `/api/v1` next to [`otp_axum::json::routes`] (`/session`,
//! `/me`, `/otp/challenge`, `/otp/verify`), so their paths here are relative to it
//! (`/devices` is served at `/api/v1/devices`).
//!
//! ## Devices
//!
//! The self-service operations of the [device pages](crate::app::pages::enrollment), with the
//! same rules, for the cookie session of the JSON login:
//!
//! | method and path | body | success |
//! |---|---|---|
//! | `GET /devices` | — | 200 `[{"id", "name", "kind", "confirmed", "created_at", "last_used_at", "codes_remaining"?}]` (times in seconds since the epoch; `codes_remaining` for backup codes only) |
//! | `GET /devices/{kind}/{number}` | — | 200 one device, as in the list |
//! | `POST /devices/{kind}` | `{"name"?, "email"?, "count"?}`, each kind taking what it needs | (fresh second factor, once the user has a confirmed device) 201, and as the kind's enrolment says: |
//! | … a generated secret (`totp`, `hotp`) | | `{"id", "name", "uri", "secret", "qr_svg_url"}`: an unconfirmed device, its `otpauth://` URI, its secret in base32 and the URL of its QR code (an `image/svg+xml` for the same session) |
//! | … a delivered code (`email`) | `email`: the user's address by default | `{"id", "name", "sent"}`: an unconfirmed device, and whether its code went out |
//! | … codes shown once (`static`) | `count`: `OTP_STATIC_COUNT` by default | `{"id", "name", "codes"}`: backup codes, the only time they are shown |
//! | `POST /devices/{kind}/{number}/confirm` | `{"token"}` | 200 `{"confirmed": true}`; 401 `invalid_token` for a wrong code (the device stays unconfirmed) |
//! | `POST /devices/{kind}/{number}/challenge` | `{}` or none | 200 `{"sent": true}`: another code for an unconfirmed email device; 429 `challenge_cooldown` too soon |
//! | `POST /devices/{kind}/{number}/regenerate` | `{"count"?}` | 200 `{"id", "name", "codes"}`: new backup codes replace the old (fresh second factor) |
//! | `PATCH /devices/{kind}/{number}` | `{"name"}` | 200 the device |
//! | `DELETE /devices/{kind}/{number}` | — | 204 (a confirmed device: fresh second factor) |
//!
//! Errors are `{"error": code, "message": text}`, with `retry_after` and a `Retry-After`
//! header when waiting helps:
//!
//! | status | `error` |
//! |---|---|
//! | 400 | `bad_request` (a body that is not the expected JSON object), `invalid_name`, `invalid_email`, `invalid_count`, `token_required` |
//! | 401 | `login_required` (nobody is logged in), `invalid_token` |
//! | 403 | `otp_required` (the user has a confirmed device and the session is not verified), `fresh_verification_required` (a change to the second factor needs a verification within `OTP_STEP_UP_SECONDS`, by a device this session did not add: verify again with `POST /otp/verify`), `csrf_failed` (another site), `verification_not_allowed` |
//! | 404 | `not_found`: a malformed id, or a device that is not the user's |
//! | 409 | `already_confirmed`, `one_per_user` (backup codes exist: regenerate them), `too_many_devices`, `too_many_unconfirmed_devices` (three addresses await their code) |
//! | 415 | `unsupported_media_type`: a body that is not `application/json` |
//! | 429 | `n_failed_attempts`, `challenge_cooldown` |
//!
//! Every request that changes state must be `application/json` and come from this site (or
//! an allowed origin), as `otp_axum::csrf::check_json_request` checks; `DELETE` has no body,
//! so only its origin is checked (as the library's `DELETE /session`). Every response is sent
//! with `Cache-Control: no-store`.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use otp_axum::OtpSession;
use otp_axum::csrf::{check_json_request, check_origin};
use otp_axum::manage;
use otp_core::{BackupCode, Device, DeviceId, EnrolInput, Enrolment};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use zeroize::Zeroizing;

use crate::app::pages::enrollment::{
    self, Access, DeviceInfo, Failure, Owner, Refusal, with_retry_after,
};
use crate::app::templates::URLS;
use crate::app::{AppState, Error, no_store};

/// The server's own JSON routes, nested at `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(device_routes())
        .route("/openapi.json", get(openapi))
}

// =============================================================================================
// Devices: self-service enrolment.
// =============================================================================================

/// The device routes, relative to `/api/v1`.
fn device_routes() -> Router<AppState> {
    Router::new()
        .route("/devices", get(list))
        .route("/devices/{kind}", post(add_device))
        .route(
            "/devices/{kind}/{number}",
            get(show).patch(rename).delete(remove),
        )
        .route("/devices/{kind}/{number}/confirm", post(confirm))
        .route("/devices/{kind}/{number}/challenge", post(challenge))
        .route("/devices/{kind}/{number}/regenerate", post(regenerate))
}

/// `{"error": code, "message": text}` with `status`, not stored.
fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    no_store((status, Json(json!({ "error": code, "message": message }))).into_response())
}

/// A JSON response that ends a handler early, so that `?` can return it. Unlike the pages'
/// [`Stop`](crate::app::Stop), only a [`Response`] converts into it: every failure must be
/// turned into its JSON answer first ([`failure_response`], [`server_error`]), so a `?` on an
/// error cannot answer a JSON client with the pages' plain-text 500. Boxed: a `Response` is
/// large.
struct JsonStop(Box<Response>);

impl From<Response> for JsonStop {
    fn from(response: Response) -> Self {
        Self(Box::new(response))
    }
}

impl IntoResponse for JsonStop {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// What a JSON handler that ends early with `?` returns.
type JsonReply = Result<Response, JsonStop>;

/// A JSON body with `status`, not stored.
fn json_ok(status: StatusCode, body: serde_json::Value) -> Response {
    no_store((status, Json(body)).into_response())
}

/// The response of a failed operation.
fn failure_response(failure: impl Into<Failure>) -> Response {
    match failure.into() {
        Failure::Refused(Refusal::Flow(flow)) => flow.into_response(),
        Failure::Refused(refusal) => with_retry_after(
            json_error(refusal.status(), refusal.code(), &refusal.message()),
            &refusal,
        ),
        Failure::Server(err) => server_error(err),
    }
}

/// A 500 in JSON; the detail goes to the log only.
fn server_error(err: Error) -> Response {
    tracing::error!(error = %err, "request failed");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "The server failed. Please try again later.",
    )
}

fn not_found() -> Response {
    failure_response(Refusal::NotFound)
}

/// The logged-in user who may manage their devices, for JSON clients: others get 401
/// `login_required` or 403 `otp_required`.
struct ApiOwner(Owner);

impl FromRequestParts<AppState> for ApiOwner {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let otp = OtpSession::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let user = match state.current_user(&otp).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                return Err(json_error(
                    StatusCode::UNAUTHORIZED,
                    "login_required",
                    "Please log in first.",
                ));
            }
            Err(err) => return Err(server_error(err)),
        };
        match enrollment::access(state, user, otp).await {
            Ok(Access::Granted(owner)) => Ok(Self(owner)),
            Ok(Access::OtpRequired(_)) => Err(json_error(
                StatusCode::FORBIDDEN,
                "otp_required",
                "This needs a session verified by your second factor.",
            )),
            Err(err) => Err(server_error(err)),
        }
    }
}

/// A request that may change state: `application/json` from this site (415 or 403 before
/// anything else is looked at).
struct JsonRequest;

impl FromRequestParts<AppState> for JsonRequest {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        check_json_request(&parts.headers, state.web.config())
            .map_err(IntoResponse::into_response)?;
        Ok(Self)
    }
}

/// A request without a body that changes state (`DELETE`): from this site.
struct SameSite;

impl FromRequestParts<AppState> for SameSite {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        check_origin(&parts.headers, state.web.config()).map_err(IntoResponse::into_response)?;
        Ok(Self)
    }
}

fn bad_body() -> Response {
    json_error(
        StatusCode::BAD_REQUEST,
        "bad_request",
        "The body is not the expected JSON object.",
    )
}

/// The body as `T`; 400 if it is not.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, JsonStop> {
    serde_json::from_slice(body).map_err(|_| bad_body().into())
}

/// The body as `T`, whose fields are all optional: an empty body is `T::default()`.
fn parse_optional<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, JsonStop> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse(body)
}

/// The user's device of the path; 404 for a malformed id or another user's device.
async fn path_device(
    owner: &Owner,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Device, Response> {
    let id = enrollment::path_id(path).ok_or_else(not_found)?;
    manage::find(&owner.otp, &id)
        .await
        .map_err(failure_response)
}

/// Where the device is in this API.
fn location(id: &DeviceId) -> HeaderValue {
    HeaderValue::from_str(&format!("/api/v1/devices/{id}"))
        .unwrap_or_else(|_| HeaderValue::from_static("/api/v1/devices"))
}

/// A 201 for the new `device` with `body`.
fn created(device: &Device, body: serde_json::Value) -> Response {
    let mut response = json_ok(StatusCode::CREATED, body);
    response
        .headers_mut()
        .insert(header::LOCATION, location(&device.id));
    response
}

/// A 200 with `device`, as in the list.
fn device_ok(owner: &Owner, device: &Device) -> JsonReply {
    let info = DeviceInfo::new(&owner.otp, device).map_err(failure_response)?;
    Ok(json_ok(StatusCode::OK, json!(info)))
}

/// The body of new backup codes. The codes' text is wiped when dropped.
fn codes_body(device: &Device, codes: &[BackupCode]) -> serde_json::Value {
    let shown: Zeroizing<Vec<String>> =
        Zeroizing::new(codes.iter().map(ToString::to_string).collect());
    json!({ "id": device.id.to_string(), "name": device.name, "codes": *shown })
}

async fn list(ApiOwner(owner): ApiOwner) -> JsonReply {
    let devices = manage::devices(&owner.otp)
        .await
        .map_err(failure_response)?;
    let infos = devices
        .iter()
        .map(|device| DeviceInfo::new(&owner.otp, device))
        .collect::<Result<Vec<_>, _>>()
        .map_err(failure_response)?;
    Ok(json_ok(StatusCode::OK, json!(infos)))
}

async fn show(
    ApiOwner(owner): ApiOwner,
    path: Result<Path<(String, String)>, PathRejection>,
) -> JsonReply {
    let device = path_device(&owner, path).await?;
    device_ok(&owner, &device)
}

/// What a client gives to enrol a device; each kind takes what it needs.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct NewDevice {
    name: Option<String>,
    /// Where codes go, for a kind that delivers them (the user's address by default).
    email: Option<String>,
    /// How many codes, for a kind made of codes (`OTP_STATIC_COUNT` by default).
    count: Option<usize>,
}

/// Adds a device of the kind in the path; the answer holds what its enrolment needs next: the
/// secret to scan (a generated secret), whether the code went out (a delivered code), the
/// codes to keep (codes shown once).
async fn add_device(
    State(state): State<AppState>,
    _: JsonRequest,
    ApiOwner(mut owner): ApiOwner,
    path: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> JsonReply {
    let Ok(Path(kind)) = path else {
        return Err(failure_response(Refusal::NotFound).into());
    };
    let request: NewDevice = parse_optional(&body)?;
    let mut input = EnrolInput::count(request.count);
    if let Some(address) = request.email.or_else(|| owner.user.email.clone()) {
        input = input.with_address(address);
    }
    let (device, codes) = manage::enrol(&mut owner.otp, &kind, request.name.as_deref(), &input)
        .await
        .map_err(failure_response)?;
    let enrolment = state
        .otp()
        .kind(device.kind())
        .map_err(|err| server_error(err.into()))?
        .enrolment();
    let body = match enrolment {
        Enrolment::GeneratedSecret => {
            let uri =
                enrollment::provisioning_uri(&state, &owner, &device).map_err(failure_response)?;
            let text = uri
                .to_uri()
                .map_err(|err| server_error(otp_core::Error::from(err).into()))?;
            let secret = uri.secret.to_base32();
            json!({
                "id": device.id.to_string(),
                "name": device.name,
                "uri": text.as_str(),
                "secret": secret.as_str(),
                "qr_svg_url": format!("{}/{}/qr.svg", URLS.devices, device.id),
            })
        }
        Enrolment::DeliveredCode => {
            // The device stays if the code did not go out: `challenge` sends another.
            let sent = match manage::send_code(&owner.otp, &device)
                .await
                .map_err(Failure::from)
            {
                Ok(_) => true,
                Err(Failure::Refused(_)) => false,
                Err(Failure::Server(err)) => return Err(server_error(err).into()),
            };
            json!({ "id": device.id.to_string(), "name": device.name, "sent": sent })
        }
        _ if !codes.is_empty() => codes_body(&device, &codes),
        _ => json!({ "id": device.id.to_string(), "name": device.name }),
    };
    Ok(created(&device, body))
}

/// Not `Debug`: it holds a code.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmRequest {
    token: String,
}

async fn confirm(
    _: JsonRequest,
    ApiOwner(mut owner): ApiOwner,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> JsonReply {
    let device = path_device(&owner, path).await?;
    let request: ConfirmRequest = parse(&body)?;
    manage::confirm(&mut owner.otp, &device, &request.token)
        .await
        .map_err(failure_response)?;
    Ok(json_ok(StatusCode::OK, json!({ "confirmed": true })))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

async fn challenge(
    _: JsonRequest,
    ApiOwner(owner): ApiOwner,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> JsonReply {
    let device = path_device(&owner, path).await?;
    parse_optional::<Empty>(&body)?;
    if device.kind() != "email" {
        return Err(not_found().into());
    }
    manage::send_code(&owner.otp, &device)
        .await
        .map_err(failure_response)?;
    Ok(json_ok(StatusCode::OK, json!({ "sent": true })))
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RegenerateRequest {
    count: Option<usize>,
}

async fn regenerate(
    _: JsonRequest,
    ApiOwner(owner): ApiOwner,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> JsonReply {
    let device = path_device(&owner, path).await?;
    let request: RegenerateRequest = parse_optional(&body)?;
    let codes = manage::regenerate_codes(&owner.otp, &device, request.count)
        .await
        .map_err(failure_response)?;
    Ok(json_ok(StatusCode::OK, codes_body(&device, &codes)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameRequest {
    name: String,
}

async fn rename(
    _: JsonRequest,
    ApiOwner(owner): ApiOwner,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> JsonReply {
    let device = path_device(&owner, path).await?;
    let request: RenameRequest = parse(&body)?;
    let renamed = manage::rename(&owner.otp, &device, &request.name)
        .await
        .map_err(failure_response)?;
    device_ok(&owner, &renamed)
}

async fn remove(
    _: SameSite,
    ApiOwner(owner): ApiOwner,
    path: Result<Path<(String, String)>, PathRejection>,
) -> JsonReply {
    let device = path_device(&owner, path).await?;
    manage::remove(&owner.otp, &device)
        .await
        .map_err(failure_response)?;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
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
