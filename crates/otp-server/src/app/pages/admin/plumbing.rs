//! The plumbing of the admin's handlers: URLs, refusal pages, checked forms, loading users
//! and devices by their path, and the messages after a redirect.

use axum::extract::Form;
use axum::extract::rejection::FormRejection;
use http::{HeaderMap, StatusCode};
use otp_axum::OtpSession;
use otp_core::{Device, DeviceId};
use serde::Deserialize;

use super::create::NewDeviceForm;
use super::devices::EditForm;
use super::users::StaffForm;
use crate::app::pages::bad_form;
use crate::app::users::parse_key;
use crate::app::{AppState, Stop, User};

pub(super) fn user_url(id: i64) -> String {
    format!("/admin/users/{id}")
}

pub(super) fn device_url(id: &DeviceId) -> String {
    format!("/admin/devices/{}/{}", id.kind(), id.number())
}

pub(super) async fn not_found(state: &AppState, otp: &OtpSession, what: &str) -> Stop {
    Stop::from(
        state
            .error_page(
                otp,
                StatusCode::NOT_FOUND,
                "Not found",
                &format!("There is no such {what}."),
                None,
            )
            .await,
    )
}

pub(super) async fn forbidden(
    state: &AppState,
    otp: &OtpSession,
    message: &str,
    back: &str,
) -> Stop {
    Stop::from(
        state
            .error_page(
                otp,
                StatusCode::FORBIDDEN,
                "Not allowed",
                message,
                Some(back),
            )
            .await,
    )
}

/// The form of a request, with its CSRF token checked; a 400 or 403 page otherwise.
pub(super) async fn checked_form<T: CsrfForm>(
    state: &AppState,
    otp: &OtpSession,
    headers: &HeaderMap,
    form: Result<Form<T>, FormRejection>,
    back: &str,
) -> Result<T, Stop> {
    let Ok(Form(form)) = form else {
        return Err(bad_form(state, otp, back).await.into());
    };
    state
        .check_form(otp, headers, form.csrf_token(), back)
        .await?;
    Ok(form)
}

/// A form with the CSRF field.
pub(super) trait CsrfForm {
    fn csrf_token(&self) -> Option<&str>;
}

macro_rules! csrf_form {
    ($($form:ty),*) => {
        $(impl CsrfForm for $form {
            fn csrf_token(&self) -> Option<&str> {
                self.csrf_token.as_deref()
            }
        })*
    };
}

csrf_form!(ActionForm, StaffForm, EditForm, NewDeviceForm);

/// A form with nothing but the CSRF field (and where to go back to).
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct ActionForm {
    csrf_token: Option<String>,
    /// `device` to come back to the device's page rather than the user's.
    pub(super) back: Option<String>,
}

/// The user named by a path's id: 404 unless it is a user's number.
pub(super) async fn load_user(state: &AppState, otp: &OtpSession, raw: &str) -> Result<User, Stop> {
    let found = match parse_key(raw) {
        Some(id) => state.users.find_by_id(id).await?,
        None => None,
    };
    match found {
        Some(user) => Ok(user),
        None => Err(not_found(state, otp, "user").await),
    }
}

/// The device named by a path's kind and number, and its owner: 404 unless the kind is
/// registered, the number well formed, the device there and its owner a user.
pub(super) async fn load_device(
    state: &AppState,
    otp: &OtpSession,
    kind: &str,
    number: &str,
) -> Result<(Device, User), Stop> {
    let id = format!("{kind}/{number}")
        .parse::<DeviceId>()
        .ok()
        .filter(|id| state.otp().kind(id.kind()).is_ok());
    let device = match id {
        Some(id) => state.otp().device(&id).await?,
        None => None,
    };
    let owner = match &device {
        Some(device) => state.users.find_by_key(&device.user_key).await?,
        None => None,
    };
    match (device, owner) {
        (Some(device), Some(owner)) => Ok((device, owner)),
        _ => Err(not_found(state, otp, "device").await),
    }
}

/// The outcome of a change to a loaded device: the 404 page if it is gone meanwhile.
pub(super) async fn still_there<T>(
    state: &AppState,
    otp: &OtpSession,
    outcome: Result<T, otp_core::Error>,
) -> Result<T, Stop> {
    match outcome {
        Err(otp_core::Error::DeviceNotFound) => Err(not_found(state, otp, "device").await),
        outcome => Ok(outcome?),
    }
}

/// Messages after a redirect, by the code in `?done=` (unknown codes show nothing, so no text
/// of the URL reaches the page).
pub(super) fn done_message(code: Option<&str>) -> Option<String> {
    Some(
        match code? {
            "staff-granted" => "The user is staff now.",
            "staff-withdrawn" => "The user is not staff any more.",
            "account-reset" => "The account's failure budget was restored.",
            "throttle-reset" => "The device's throttling was cleared.",
            "deleted" => "The device was deleted.",
            "saved" => "The device was saved.",
            _ => return None,
        }
        .to_owned(),
    )
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct DoneQuery {
    pub(super) done: Option<String>,
}
