//! A device: its page and form, throttling, deletion, and (when sensitive data is shown) its
//! configuration and QR code.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use otp_axum::OtpSession;
use otp_core::Device;
use serde::Deserialize;

use super::plumbing::{
    ActionForm, DoneQuery, checked_form, device_url, done_message, load_device, not_found,
    still_there, user_url,
};
use super::views::{AccountView, device_view, has_uri, uri_text};
use super::{ADMIN_URL, LOG_TARGET, Staff};
use crate::app::pages::see_other;
use crate::app::{AppState, Reply, Stop, User, no_store};

fn render_device(
    state: &AppState,
    page: &crate::app::Page,
    status: StatusCode,
    account: &User,
    device: &Device,
) -> Result<Response, Stop> {
    Ok(state.render(
        "admin/device.html",
        status,
        page,
        minijinja::context! {
            account => AccountView::of(account),
            device => device_view(state, device)?,
            hide_sensitive => state.config.admin_hide_sensitive_data,
        },
    ))
}

pub(super) async fn device_page(
    State(state): State<AppState>,
    Staff { otp, .. }: Staff,
    Path((kind, number)): Path<(String, String)>,
    Query(done): Query<DoneQuery>,
) -> Reply {
    let (device, account) = load_device(&state, &otp, &kind, &number).await?;
    let mut page = state.page(&otp).await?;
    page.notice = done_message(done.done.as_deref());
    render_device(&state, &page, StatusCode::OK, &account, &device)
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct EditForm {
    pub(super) csrf_token: Option<String>,
    name: String,
    confirmed: Option<String>,
}

pub(super) async fn edit_device(
    State(state): State<AppState>,
    Staff { user: me, otp }: Staff,
    Path((kind, number)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<EditForm>, FormRejection>,
) -> Reply {
    let form = checked_form(&state, &otp, &headers, form, ADMIN_URL).await?;
    let (device, account) = load_device(&state, &otp, &kind, &number).await?;
    let confirmed = form.confirmed.is_some();
    let updated = state
        .otp()
        .update_device(&device.id, Some(form.name.trim()), Some(confirmed))
        .await;
    if let Err(otp_core::Error::InvalidDeviceName) = updated {
        let mut page = state.page(&otp).await?;
        page.error = Some("The name must be 1 to 64 characters without control characters.".into());
        return render_device(&state, &page, StatusCode::BAD_REQUEST, &account, &device);
    }
    still_there(&state, &otp, updated).await?;
    tracing::info!(target: LOG_TARGET, admin = %me.key(), user = %account.key(), device = %device.id, confirmed, "admin changed a device");
    Ok(see_other(&format!("{}?done=saved", device_url(&device.id))))
}

pub(super) async fn reset_throttle(
    State(state): State<AppState>,
    Staff { user: me, otp }: Staff,
    Path((kind, number)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Reply {
    let form = checked_form(&state, &otp, &headers, form, ADMIN_URL).await?;
    let (device, account) = load_device(&state, &otp, &kind, &number).await?;
    still_there(&state, &otp, state.otp().reset_throttle(&device.id).await).await?;
    tracing::info!(target: LOG_TARGET, admin = %me.key(), user = %account.key(), device = %device.id, "admin cleared a device's throttling");
    let back = match form.back.as_deref() {
        Some("device") => device_url(&device.id),
        _ => user_url(account.id),
    };
    Ok(see_other(&format!("{back}?done=throttle-reset")))
}

pub(super) async fn delete_page(
    State(state): State<AppState>,
    Staff { otp, .. }: Staff,
    Path((kind, number)): Path<(String, String)>,
) -> Reply {
    let (device, account) = load_device(&state, &otp, &kind, &number).await?;
    let page = state.page(&otp).await?;
    Ok(state.render(
        "admin/delete.html",
        StatusCode::OK,
        &page,
        minijinja::context! {
            account => AccountView::of(&account),
            device => device_view(&state, &device)?,
        },
    ))
}

pub(super) async fn delete_device(
    State(state): State<AppState>,
    Staff { user: me, otp }: Staff,
    Path((kind, number)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Reply {
    checked_form(&state, &otp, &headers, form, ADMIN_URL).await?;
    let (device, account) = load_device(&state, &otp, &kind, &number).await?;
    still_there(&state, &otp, state.otp().remove_device(&device.id).await).await?;
    tracing::info!(target: LOG_TARGET, admin = %me.key(), user = %account.key(), device = %device.id, "admin deleted a device");
    Ok(see_other(&format!("{}?done=deleted", user_url(account.id))))
}

/// The device of a config page or QR code: 403 when sensitive data is hidden (before any
/// lookup, as django-otp), 404 for a device without a URI.
async fn uri_device(
    state: &AppState,
    otp: &OtpSession,
    kind: &str,
    number: &str,
) -> Result<(Device, User), Stop> {
    if state.config.admin_hide_sensitive_data {
        return Err(Stop::from(
            state
                .error_page(
                    otp,
                    StatusCode::FORBIDDEN,
                    "Hidden",
                    "This server hides the secrets of devices from the admin \
                     (OTP_ADMIN_HIDE_SENSITIVE_DATA).",
                    None,
                )
                .await,
        ));
    }
    let (device, account) = load_device(state, otp, kind, number).await?;
    if !has_uri(state, &device) {
        return Err(not_found(state, otp, "configuration").await);
    }
    Ok((device, account))
}

pub(super) async fn config_page(
    State(state): State<AppState>,
    Staff { user: me, otp }: Staff,
    Path((kind, number)): Path<(String, String)>,
) -> Reply {
    let (device, account) = uri_device(&state, &otp, &kind, &number).await?;
    let text = uri_text(&state, &account, &device)?;
    tracing::info!(target: LOG_TARGET, admin = %me.key(), user = %account.key(), device = %device.id, "admin viewed a device's configuration");
    let page = state.page(&otp).await?;
    let view = device_view(&state, &device)?;
    Ok(state.render(
        "admin/config.html",
        StatusCode::OK,
        &page,
        minijinja::context! {
            account => AccountView::of(&account),
            qr_url => format!("{}/qr.svg", view.url),
            device => view,
            uri => text.as_str(),
        },
    ))
}

pub(super) async fn qr_code(
    State(state): State<AppState>,
    Staff { otp, .. }: Staff,
    Path((kind, number)): Path<(String, String)>,
) -> Reply {
    let (device, account) = uri_device(&state, &otp, &kind, &number).await?;
    let text = uri_text(&state, &account, &device)?;
    let svg = otp_oath::qr::svg(&text).map_err(otp_core::Error::from)?;
    Ok(no_store(
        (
            [(header::CONTENT_TYPE, "image/svg+xml")],
            svg.as_str().to_owned(),
        )
            .into_response(),
    ))
}
