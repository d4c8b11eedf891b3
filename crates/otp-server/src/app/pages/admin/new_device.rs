//! The pages that create a device: the creation form of each kind and its answer, which shows
//! the new device's secret once.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde::Serialize;

use super::create::{Made, NewDeviceForm, Refused, make_device};
use super::plumbing::{checked_form, load_user, not_found, user_url};
use super::views::{AccountView, device_view, kind_label, uri_text};
use super::{ADMIN_URL, CREATABLE, LOG_TARGET, Staff};
use crate::app::{AppState, Reply, User, encode_query_value};

/// What the creation form shows (the submitted values after a refusal, never the secret).
#[derive(Serialize)]
struct NewDeviceValues {
    name: String,
    confirmed: bool,
    algorithm: String,
    digits: String,
    step: String,
    email: String,
    count: String,
}

fn default_values(state: &AppState, kind: &str, account: &User) -> NewDeviceValues {
    NewDeviceValues {
        name: match kind {
            "totp" => "TOTP",
            "hotp" => "HOTP",
            "email" => "Email",
            _ => "Backup Code",
        }
        .to_owned(),
        confirmed: true,
        algorithm: "SHA1".to_owned(),
        digits: "6".to_owned(),
        step: "30".to_owned(),
        email: account.email.clone().unwrap_or_default(),
        count: state.otp().settings().static_codes.count.to_string(),
    }
}

/// Whether `kind` is one the admin creates and is registered.
fn creatable(state: &AppState, kind: &str) -> bool {
    CREATABLE.contains(&kind) && state.otp().kind(kind).is_ok()
}

fn render_new_device(
    state: &AppState,
    page: &crate::app::Page,
    status: StatusCode,
    account: &User,
    kind: &str,
    values: &NewDeviceValues,
) -> Response {
    state.render(
        "admin/device_new.html",
        status,
        page,
        minijinja::context! {
            account => AccountView::of(account),
            kind,
            kind_label => kind_label(state, kind),
            values,
            action => format!("{}/devices/new/{kind}", user_url(account.id)),
        },
    )
}

pub(super) async fn new_device_page(
    State(state): State<AppState>,
    Staff { otp, .. }: Staff,
    Path((id, kind)): Path<(String, String)>,
) -> Reply {
    let account = load_user(&state, &otp, &id).await?;
    if !creatable(&state, &kind) {
        return Err(not_found(&state, &otp, "kind of device").await);
    }
    let page = state.page(&otp).await?;
    let values = default_values(&state, &kind, &account);
    Ok(render_new_device(
        &state,
        &page,
        StatusCode::OK,
        &account,
        &kind,
        &values,
    ))
}

pub(super) async fn create_device(
    State(state): State<AppState>,
    Staff { user: me, otp }: Staff,
    Path((id, kind)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<NewDeviceForm>, FormRejection>,
) -> Reply {
    let form = checked_form(&state, &otp, &headers, form, ADMIN_URL).await?;
    let account = load_user(&state, &otp, &id).await?;
    if !creatable(&state, &kind) {
        return Err(not_found(&state, &otp, "kind of device").await);
    }
    let made = match make_device(&state, &account, &kind, &form).await? {
        Ok(made) => made,
        Err(Refused(message)) => {
            let mut page = state.page(&otp).await?;
            page.error = Some(message);
            let values = NewDeviceValues {
                name: form.name.clone(),
                confirmed: form.confirmed.is_some(),
                algorithm: form.algorithm.clone(),
                digits: form.digits.clone(),
                step: form.step.clone(),
                email: form.email.clone(),
                count: form.count.clone(),
            };
            return Ok(render_new_device(
                &state,
                &page,
                StatusCode::BAD_REQUEST,
                &account,
                &kind,
                &values,
            ));
        }
    };
    let (device, codes, uri) = match made {
        Made::Uri(device) => {
            let text = uri_text(&state, &account, &device)?;
            let svg = otp_oath::qr::svg(&text).map_err(otp_core::Error::from)?;
            let image = format!("data:image/svg+xml,{}", encode_query_value(&svg));
            (device, None, Some((text.to_string(), image)))
        }
        Made::Codes(device, codes) => (device, Some(codes), None),
        Made::Plain(device) => (device, None, None),
    };
    tracing::info!(target: LOG_TARGET,
        admin = %me.key(),
        user = %account.key(),
        device = %device.id,
        "admin created a device"
    );
    let page = state.page(&otp).await?;
    let (uri, qr_image) = uri.unzip();
    Ok(state.render(
        "admin/device_created.html",
        StatusCode::CREATED,
        &page,
        minijinja::context! {
            account => AccountView::of(&account),
            device => device_view(&state, &device)?,
            codes,
            uri,
            qr_image,
            added_code => false,
        },
    ))
}
