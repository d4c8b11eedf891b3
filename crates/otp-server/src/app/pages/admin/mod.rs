//! The admin (django-otp's `OTPAdminSite` and the device admins): staff users whose session
//! is OTP-verified list and search the users, and create, edit, reset and delete the devices of
//! every kind for any of them.
//!
//! ## Access
//!
//! Every page and action requires a logged-in user with the staff flag whose session is
//! verified by a device (django-otp's `has_permission`: `is_staff` **and** `is_verified()`):
//!
//! | who | browser | JSON client (`Accept: application/json`) |
//! |---|---|---|
//! | nobody logged in | 303 to the login page with `next` | 401 `{"error": "login_required"}` |
//! | logged in, not staff | 403 page | 403 `{"error": "staff_required"}` |
//! | staff, session not verified, with a confirmed device | 303 to `/account/verify` with `next` (the page asked for; `/admin` for a form post) | 403 `{"error": "otp_required"}` |
//! | staff without a confirmed device | 403 page saying the admin needs a second factor, linking to `/account/devices` | 403 `{"error": "otp_required"}` |
//! | staff, verified | the page | the page |
//!
//! Access is decided before anything else, so nobody else learns which ids exist.
//!
//! ## Routes
//!
//! | method and path | what |
//! |---|---|
//! | `GET /admin` | users, `q` searches usernames and email addresses, `page` pages (25 a page): devices, staff flag, account failures |
//! | `GET /admin/users/{id}` | a user: devices (kind, name, confirmed, created, last used, throttling), account failures, actions |
//! | `POST /admin/users/{id}/staff` | `is_staff=true\|false`: grants or withdraws the staff flag (not one's own) |
//! | `POST /admin/users/{id}/reset-account` | restores the account's failure budget and its challenges of the hour |
//! | `POST /admin/users/{id}/backup-code` | adds one backup code to the user's first backup-code device (creating one), shown once (django-otp's `addstatictoken`) |
//! | `GET, POST /admin/users/{id}/devices/new/{kind}` | creates a `totp`, `hotp`, `email` or `static` device; the response shows its secret once |
//! | `GET, POST /admin/devices/{kind}/{number}` | a device; the form changes its name and confirmation |
//! | `POST /admin/devices/{kind}/{number}/reset-throttle` | clears the device's throttling |
//! | `GET, POST /admin/devices/{kind}/{number}/delete` | asks, then deletes the device |
//! | `GET /admin/devices/{kind}/{number}/config` | TOTP and HOTP: the QR code and the otpauth:// URI |
//! | `GET /admin/devices/{kind}/{number}/qr.svg` | TOTP and HOTP: the QR code, `image/svg+xml` |
//!
//! A user id that is not a user's number, an unknown user, a device id whose kind is not
//! registered or whose number is malformed, a device nobody has, a device whose owner is not
//! a user of the app, and a config page of a device that is neither TOTP nor HOTP are all the
//! 404 page, never a 500. Every `POST` checks the form's CSRF token and the origin (403 page
//! otherwise). Every response is `Cache-Control: no-store` (pages with secrets and QR codes
//! above all). The pages carry no script and no `style` attribute (the Content-Security-Policy
//! forbids both); QR codes are images.
//!
//! ## Sensitive data (`OTP_ADMIN_HIDE_SENSITIVE_DATA`)
//!
//! Secrets of **existing** devices are never needed to run an admin, and whoever can read them
//! can copy a user's authenticator. With
//! [`admin_hide_sensitive_data`](crate::app::ServerConfig::admin_hide_sensitive_data) on (the
//! default here, unlike django-otp, whose default is off), as django-otp hides `key`, the QR
//! link and the config views of existing devices:
//!
//! - the config page and the QR code are 403 (before the device is even looked up);
//! - no page links to them, and no page shows an otpauth:// URI, a secret or a QR code of a
//!   stored device.
//!
//! The settings that are not secret (algorithm, digits, step, tolerance, drift, HOTP counter,
//! the email address, the number of backup codes left) are shown in both modes. Backup codes
//! and email codes are stored only as hashes, so no mode can show them.
//!
//! **Decision: a secret is shown once when the admin makes it, in both modes.** Creating a
//! device (like django-otp's add form, which always shows the key) answers the `POST` with the
//! new TOTP or HOTP device's URI and QR code (an inline `data:` image, so there is no URL to
//! fetch it again), or the new backup codes; adding one backup code shows that code. This
//! reveals nothing that was stored before, the response is `no-store`, and each such action
//! is logged (`admin created a device`, `admin added a backup code`) with the staff user, the
//! user and the device. A device created with its secret never shown would be useless.
//! Reloading that response re-submits the form (the browser asks first) and makes another
//! device.

mod create;
mod devices;
mod new_device;
mod plumbing;
mod users;
mod views;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::request::Parts;
use http::{Method, StatusCode};
use otp_axum::OtpSession;

use self::devices::{
    config_page, delete_device, delete_page, device_page, edit_device, qr_code, reset_throttle,
};
use self::new_device::{create_device, new_device_page};
use self::users::{add_backup_code, reset_account, set_staff, user_list, user_page};
use super::see_other;
use crate::app::templates::URLS;
use crate::app::{AppState, CurrentUser, Error, User, encode_query_value, no_store, wants_json};

/// The admin's home: the users.
pub const ADMIN_URL: &str = URLS.admin;
/// The target of the admin's log events: this module's path, whichever of its files logs.
const LOG_TARGET: &str = module_path!();
/// The kinds the admin can create, in the order of its links.
const CREATABLE: [&str; 4] = ["totp", "hotp", "email", "static"];

/// The routes of the admin pages, merged into the app's router (paths are absolute).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(ADMIN_URL, get(user_list))
        .route("/admin/", get(|| async { see_other(ADMIN_URL) }))
        .route("/admin/users/{id}", get(user_page))
        .route("/admin/users/{id}/staff", post(set_staff))
        .route("/admin/users/{id}/reset-account", post(reset_account))
        .route("/admin/users/{id}/backup-code", post(add_backup_code))
        .route(
            "/admin/users/{id}/devices/new/{kind}",
            get(new_device_page).post(create_device),
        )
        .route(
            "/admin/devices/{kind}/{number}",
            get(device_page).post(edit_device),
        )
        .route(
            "/admin/devices/{kind}/{number}/reset-throttle",
            post(reset_throttle),
        )
        .route(
            "/admin/devices/{kind}/{number}/delete",
            get(delete_page).post(delete_device),
        )
        .route("/admin/devices/{kind}/{number}/config", get(config_page))
        .route("/admin/devices/{kind}/{number}/qr.svg", get(qr_code))
}

// ---------------------------------------------------------------------------------------------
// Access.

/// A staff user whose session is OTP-verified: the extractor of every admin handler. Others
/// are refused as the [module docs](self) say.
#[derive(Debug, Clone)]
pub struct Staff {
    /// The staff user.
    pub user: User,
    /// Their OTP session.
    pub otp: OtpSession,
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let CurrentUser { user, otp } = CurrentUser::from_request_parts(parts, state).await?;
        let json = wants_json(&parts.headers);
        if !user.is_staff {
            if json {
                return Err(json_refusal(
                    "staff_required",
                    "The admin is for staff users only.",
                ));
            }
            return Err(state
                .error_page(
                    &otp,
                    StatusCode::FORBIDDEN,
                    "Staff only",
                    "The admin is for staff users only.",
                    None,
                )
                .await);
        }
        if otp.is_verified() {
            return Ok(Self { user, otp });
        }
        if json {
            return Err(json_refusal(
                "otp_required",
                "The admin needs a session verified by a second factor.",
            ));
        }
        let has_device = match state.otp().user_has_device(&user.key(), Some(true)).await {
            Ok(has_device) => has_device,
            Err(err) => return Err(Error::from(err).into_response()),
        };
        if has_device {
            // After a form post, come back to the admin's home rather than to a POST route.
            let here = match parts.method {
                Method::GET | Method::HEAD => parts
                    .uri
                    .path_and_query()
                    .map_or(ADMIN_URL, |pq| pq.as_str()),
                _ => ADMIN_URL,
            };
            let to = format!(
                "{}?{}={}",
                URLS.verify,
                state.web.config().redirect_field,
                encode_query_value(here)
            );
            return Err(see_other(&to));
        }
        let page = match state.page(&otp).await {
            Ok(page) => page,
            Err(err) => return Err(err.into_response()),
        };
        Err(state.render(
            "admin/second_factor.html",
            StatusCode::FORBIDDEN,
            &page,
            minijinja::context! { devices_url => URLS.devices },
        ))
    }
}

fn json_refusal(code: &str, message: &str) -> Response {
    no_store(
        (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({ "error": code, "message": message })),
        )
            .into_response(),
    )
}
