//! The JSON API of device management, for any kind in the registry: [`routes`], to nest
//! where the app's API lives (next to [`crate::json::routes`]).
//!
//! | method and path | body | success |
//! |---|---|---|
//! | `GET /devices` | — | 200 `[{"id", "name", "kind", "confirmed", "created_at", "last_used_at", "codes_remaining"?}]` (times in seconds since the epoch; `codes_remaining` for kinds made of codes) |
//! | `GET /devices/{kind}/{number}` | — | 200 one device, as in the list |
//! | `POST /devices/{kind}` | `{"name"?, "email"?, "count"?}`, each kind taking what it needs | 201, as the kind's [`Enrolment`] says: a generated secret: `{"id", "name", "uri", "secret", "qr_svg_url"}` (an unconfirmed device); a delivered code: `{"id", "name", "sent"}` (`email`: the user's address by default); codes shown once: `{"id", "name", "codes"}` |
//! | `POST /devices/{kind}/{number}/confirm` | `{"token"}` | 200 `{"confirmed": true}` |
//! | `POST /devices/{kind}/{number}/challenge` | `{}` or none | 200 `{"sent": true}`: another code for an unconfirmed device confirmed by a delivered code |
//! | `POST /devices/{kind}/{number}/regenerate` | `{"count"?}` | 200 `{"id", "name", "codes"}`: new codes replace the old |
//! | `PATCH /devices/{kind}/{number}` | `{"name"}` | 200 the device |
//! | `DELETE /devices/{kind}/{number}` | — | 204 |
//!
//! The rules are [`super`]'s (the step-up rule for changes to the second factor, the limits).
//! A user with a confirmed device must have verified the session (403 `otp_required`); nobody
//! logged in is 401 `login_required`. Refusals are `{"error": code, "message": text}` with the
//! [`Refusal`]'s status, and `retry_after` and a `Retry-After` header when waiting helps.
//! Requests that change state must be `application/json` from this site (`DELETE`: from this
//! site), as [`crate::csrf::check_json_request`] checks. `qr_svg_url` is
//! `{mount}/devices/{id}/qr.svg`, the device pages' QR code of the same session.

use axum::Router;
use axum::body::Bytes;
use axum::extract::OriginalUri;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use otp_core::{BackupCode, Device, DeviceId, EnrolInput, Enrolment};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use zeroize::Zeroizing;

use super::{DeviceInfo, ManageError, Refusal};
use crate::csrf::{check_json_request, check_origin};
use crate::state::RequestOtp;
use crate::{MissingLayer, OtpSession, WebError};

/// The device-management routes, relative to where they are nested (`/devices`, ...).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/devices", get(list))
        .route("/devices/{kind}", post(add))
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
    no_store(
        (
            status,
            axum::Json(json!({ "error": code, "message": message })),
        )
            .into_response(),
    )
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A JSON body with `status`, not stored.
fn json_ok(status: StatusCode, body: serde_json::Value) -> Response {
    no_store((status, axum::Json(body)).into_response())
}

/// The JSON answer of a failed operation: the refusal's, or a 500 whose detail goes to the
/// log only.
fn failure_response(failure: impl Into<ManageError>) -> Response {
    match failure.into() {
        ManageError::Refused(Refusal::Flow(flow)) => flow.into_response(),
        ManageError::Refused(refusal) => {
            let mut response = json_error(refusal.status(), refusal.code(), &refusal.message());
            if let Some(seconds) = refusal.retry_after() {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
        ManageError::Failed(err) => server_error(&err),
    }
}

fn server_error(err: &WebError) -> Response {
    tracing::error!(error = %err, "request failed");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "The server failed. Please try again later.",
    )
}

/// A JSON response that ends a handler early, so that `?` can return it: only a response
/// converts into it, so every failure is turned into its JSON answer first. Boxed: a
/// `Response` is large.
struct Stop(Box<Response>);

impl From<Response> for Stop {
    fn from(response: Response) -> Self {
        Self(Box::new(response))
    }
}

impl IntoResponse for Stop {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// What a handler that ends early with `?` returns.
type JsonReply = Result<Response, Stop>;

/// A logged-in user who may manage their devices: one with a confirmed device must have
/// verified the session.
struct Manager(OtpSession);

impl<S: Send + Sync> FromRequestParts<S> for Manager {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let otp = OtpSession::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Some(user) = otp.user_key() else {
            return Err(failure_response(Refusal::LoginRequired));
        };
        let has_confirmed = otp
            .web()
            .otp()
            .user_has_device(user, Some(true))
            .await
            .map_err(failure_response)?;
        if has_confirmed && !otp.is_verified() {
            return Err(json_error(
                StatusCode::FORBIDDEN,
                "otp_required",
                "This needs a session verified by your second factor.",
            ));
        }
        Ok(Self(otp))
    }
}

/// The web configuration of the request, from [`crate::OtpLayer`].
fn config_of(parts: &Parts) -> Option<&crate::WebConfig> {
    parts
        .extensions
        .get::<RequestOtp>()
        .map(|request| request.web.config())
}

/// A request that changes state with a body: `application/json` from this site (415 or 403
/// before anything else is looked at).
struct JsonRequest;

impl<S: Send + Sync> FromRequestParts<S> for JsonRequest {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let config = config_of(parts).ok_or_else(|| MissingLayer::OtpLayer.into_response())?;
        check_json_request(&parts.headers, config).map_err(IntoResponse::into_response)?;
        Ok(Self)
    }
}

/// A request without a body that changes state (`DELETE`): from this site.
struct SameSite;

impl<S: Send + Sync> FromRequestParts<S> for SameSite {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let config = config_of(parts).ok_or_else(|| MissingLayer::OtpLayer.into_response())?;
        check_origin(&parts.headers, config).map_err(IntoResponse::into_response)?;
        Ok(Self)
    }
}

/// The body as `T`; 400 if it is not.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Stop> {
    serde_json::from_slice(body).map_err(|_| {
        json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The body is not the expected JSON object.",
        )
        .into()
    })
}

/// The body as `T`, whose fields are all optional: an empty body is `T::default()`.
fn parse_optional<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, Stop> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse(body)
}

/// The user's device of the path; 404 for a malformed id or another user's device.
async fn path_device(
    otp: &OtpSession,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Device, Stop> {
    let id = path
        .ok()
        .and_then(|Path((kind, number))| format!("{kind}/{number}").parse::<DeviceId>().ok())
        .ok_or_else(|| failure_response(Refusal::NotFound))?;
    Ok(super::find(otp, &id).await.map_err(failure_response)?)
}

/// A 200 with `device`, as in the list.
fn device_ok(otp: &OtpSession, device: &Device) -> JsonReply {
    let info = DeviceInfo::new(otp, device).map_err(failure_response)?;
    Ok(json_ok(StatusCode::OK, json!(info)))
}

/// The body of new codes. The codes' text is wiped when dropped.
fn codes_body(device: &Device, codes: &[BackupCode]) -> serde_json::Value {
    let shown: Zeroizing<Vec<String>> =
        Zeroizing::new(codes.iter().map(ToString::to_string).collect());
    json!({ "id": device.id.to_string(), "name": device.name, "codes": *shown })
}

async fn list(Manager(otp): Manager) -> JsonReply {
    let devices = super::devices(&otp).await.map_err(failure_response)?;
    let infos = devices
        .iter()
        .map(|device| DeviceInfo::new(&otp, device))
        .collect::<Result<Vec<_>, _>>()
        .map_err(failure_response)?;
    Ok(json_ok(StatusCode::OK, json!(infos)))
}

async fn show(
    Manager(otp): Manager,
    path: Result<Path<(String, String)>, PathRejection>,
) -> JsonReply {
    let device = path_device(&otp, path).await?;
    device_ok(&otp, &device)
}

/// What a client gives to enrol a device; each kind takes what it needs.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct NewDevice {
    name: Option<String>,
    /// Where codes go, for a kind that delivers them (the user's address by default).
    email: Option<String>,
    /// How many codes, for a kind made of codes (the settings' by default).
    count: Option<usize>,
}

/// Adds a device of the kind in the path; the answer holds what its enrolment needs next.
async fn add(
    _: JsonRequest,
    Manager(mut otp): Manager,
    OriginalUri(uri): OriginalUri,
    path: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> JsonReply {
    let Ok(Path(kind)) = path else {
        return Err(failure_response(Refusal::NotFound).into());
    };
    let request: NewDevice = parse_optional(&body)?;
    let mut input = EnrolInput::count(request.count);
    let address = match request.email {
        Some(address) => Some(address),
        None => super::profile(&otp)
            .await
            .map_err(failure_response)?
            .and_then(|profile| profile.email),
    };
    if let Some(address) = address {
        input = input.with_address(address);
    }
    let (device, codes) = super::enrol(&mut otp, &kind, request.name.as_deref(), &input)
        .await
        .map_err(failure_response)?;
    let enrolment = otp
        .web()
        .otp()
        .kind(device.kind())
        .map_err(failure_response)?
        .enrolment();
    let body = match enrolment {
        Enrolment::GeneratedSecret => {
            let uri = super::provisioning_uri(&otp, &device)
                .await
                .map_err(failure_response)?;
            let text = uri
                .to_uri()
                .map_err(|err| failure_response(otp_core::Error::from(err)))?;
            let secret = uri.secret.to_base32();
            json!({
                "id": device.id.to_string(),
                "name": device.name,
                "uri": text.as_str(),
                "secret": secret.as_str(),
                "qr_svg_url": format!("{}/devices/{}/qr.svg", otp.web().config().mount, device.id),
            })
        }
        Enrolment::DeliveredCode => {
            // The device stays if the code did not go out: `challenge` sends another.
            let sent = match super::send_code(&otp, &device).await {
                Ok(_) => true,
                Err(ManageError::Refused(_)) => false,
                Err(ManageError::Failed(err)) => return Err(server_error(&err).into()),
            };
            json!({ "id": device.id.to_string(), "name": device.name, "sent": sent })
        }
        _ if !codes.is_empty() => codes_body(&device, &codes),
        _ => json!({ "id": device.id.to_string(), "name": device.name }),
    };
    let mut response = json_ok(StatusCode::CREATED, body);
    // Where the device is: this request's path with the device's id for its kind.
    let devices = uri
        .path()
        .rsplit_once('/')
        .map_or("", |(devices, _)| devices);
    if let Ok(location) = HeaderValue::from_str(&format!("{devices}/{}", device.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Not `Debug`: it holds a code.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmRequest {
    token: String,
}

async fn confirm(
    _: JsonRequest,
    Manager(mut otp): Manager,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> JsonReply {
    let device = path_device(&otp, path).await?;
    let request: ConfirmRequest = parse(&body)?;
    super::confirm(&mut otp, &device, &request.token)
        .await
        .map_err(failure_response)?;
    Ok(json_ok(StatusCode::OK, json!({ "confirmed": true })))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

async fn challenge(
    _: JsonRequest,
    Manager(otp): Manager,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> JsonReply {
    let device = path_device(&otp, path).await?;
    parse_optional::<Empty>(&body)?;
    let delivered = otp
        .web()
        .otp()
        .kind(device.kind())
        .is_ok_and(|kind| kind.enrolment() == Enrolment::DeliveredCode);
    if !delivered {
        return Err(failure_response(Refusal::NotFound).into());
    }
    super::send_code(&otp, &device)
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
    Manager(otp): Manager,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> JsonReply {
    let device = path_device(&otp, path).await?;
    let request: RegenerateRequest = parse_optional(&body)?;
    let codes = super::regenerate_codes(&otp, &device, request.count)
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
    Manager(otp): Manager,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> JsonReply {
    let device = path_device(&otp, path).await?;
    let request: RenameRequest = parse(&body)?;
    let renamed = super::rename(&otp, &device, &request.name)
        .await
        .map_err(failure_response)?;
    device_ok(&otp, &renamed)
}

async fn remove(
    _: SameSite,
    Manager(otp): Manager,
    path: Result<Path<(String, String)>, PathRejection>,
) -> JsonReply {
    let device = path_device(&otp, path).await?;
    super::remove(&otp, &device)
        .await
        .map_err(failure_response)?;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}
