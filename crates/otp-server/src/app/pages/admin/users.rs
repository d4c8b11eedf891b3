//! The users: the list and its search, a user's page, and the actions on a user.

use std::fmt::Write as _;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query, State};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::plumbing::{
    ActionForm, DoneQuery, checked_form, done_message, forbidden, load_user, user_url,
};
use super::views::{AccountView, device_view, kind_label};
use super::{ADMIN_URL, CREATABLE, LOG_TARGET, Staff};
use crate::app::pages::see_other;
use crate::app::{AppState, Reply, Stop, User, UserQuery, encode_query_value};

/// Users per page of the list.
const PER_PAGE: u32 = 25;

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct ListQuery {
    q: Option<String>,
    page: Option<String>,
}

/// A row of the users' list.
#[derive(Serialize)]
struct UserRow {
    #[serde(flatten)]
    account: AccountView,
    devices: usize,
    failures: u32,
}

fn list_url(search: &str, page: u64) -> String {
    let mut url = ADMIN_URL.to_owned();
    let mut sep = '?';
    if !search.is_empty() {
        let _ = write!(url, "{sep}q={}", encode_query_value(search));
        sep = '&';
    }
    if page > 1 {
        let _ = write!(url, "{sep}page={page}");
    }
    url
}

pub(super) async fn user_list(
    State(state): State<AppState>,
    Staff { otp, .. }: Staff,
    Query(query): Query<ListQuery>,
) -> Reply {
    let search = query.q.unwrap_or_default().trim().to_owned();
    let page_number = query
        .page
        .and_then(|page| page.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    let listed = state
        .users
        .list(&UserQuery {
            search: Some(search.clone()).filter(|s| !s.is_empty()),
            page: page_number,
            per_page: PER_PAGE,
        })
        .await?;
    let mut rows = Vec::with_capacity(listed.users.len());
    for user in &listed.users {
        let key = user.key();
        rows.push(UserRow {
            account: AccountView::of(user),
            devices: state.otp().devices_for_user(&key, None).await?.len(),
            failures: state.otp().account_failures(&key).await?,
        });
    }
    let pages = listed.pages();
    let current = u64::from(listed.page);
    let previous_url = (current > 1).then(|| list_url(&search, current.min(pages + 1) - 1));
    let next_url = (current < pages).then(|| list_url(&search, current + 1));
    let page = state.page(&otp).await?;
    Ok(state.render(
        "admin/users.html",
        StatusCode::OK,
        &page,
        minijinja::context! {
            rows,
            search,
            total => listed.total,
            page_number => listed.page,
            pages,
            previous_url,
            next_url,
        },
    ))
}

pub(super) async fn user_page(
    State(state): State<AppState>,
    Staff { user: me, otp }: Staff,
    Path(id): Path<String>,
    Query(done): Query<DoneQuery>,
) -> Reply {
    let account = load_user(&state, &otp, &id).await?;
    let mut page = state.page(&otp).await?;
    page.notice = done_message(done.done.as_deref());
    render_user(&state, page, &me, &account, StatusCode::OK).await
}

async fn render_user(
    state: &AppState,
    page: crate::app::Page,
    me: &User,
    account: &User,
    status: StatusCode,
) -> Result<Response, Stop> {
    let key = account.key();
    let devices = state.otp().devices_for_user(&key, None).await?;
    let views = devices
        .iter()
        .map(|device| device_view(state, device))
        .collect::<Result<Vec<_>, _>>()?;
    // Codes are added to the first backup-code device (django-otp's `add_static_token`).
    let backup_device = devices
        .iter()
        .find(|device| device.kind() == "static")
        .map(|device| device.id.to_string());
    let failures = state.otp().account_failures(&key).await?;
    let budget = state.otp().settings().failure_budget;
    let url = user_url(account.id);
    let add_links: Vec<_> = CREATABLE
        .iter()
        .filter(|kind| state.otp().kind(kind).is_ok())
        .map(|kind| {
            minijinja::context! {
                label => kind_label(state, kind),
                url => format!("{url}/devices/new/{kind}"),
            }
        })
        .collect();
    Ok(state.render(
        "admin/user.html",
        status,
        &page,
        minijinja::context! {
            account => AccountView::of(account),
            devices => views,
            backup_device,
            failures,
            budget => budget.limit,
            locked => budget.is_exhausted(failures),
            is_self => me.id == account.id,
            hide_sensitive => state.config.admin_hide_sensitive_data,
            add_links,
        },
    ))
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct StaffForm {
    pub(super) csrf_token: Option<String>,
    is_staff: String,
}

pub(super) async fn set_staff(
    State(state): State<AppState>,
    Staff { user: me, otp }: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<StaffForm>, FormRejection>,
) -> Reply {
    let form = checked_form(&state, &otp, &headers, form, ADMIN_URL).await?;
    let account = load_user(&state, &otp, &id).await?;
    let back = user_url(account.id);
    if account.id == me.id {
        return Err(forbidden(
            &state,
            &otp,
            "You cannot change your own staff flag: ask another staff user.",
            &back,
        )
        .await);
    }
    let is_staff = match form.is_staff.as_str() {
        "true" => true,
        "false" => false,
        _ => {
            return Err(Stop::from(
                state
                    .error_page(
                        &otp,
                        StatusCode::BAD_REQUEST,
                        "The form could not be read",
                        "The staff flag must be true or false.",
                        Some(&back),
                    )
                    .await,
            ));
        }
    };
    state.users.set_staff(account.id, is_staff).await?;
    tracing::info!(target: LOG_TARGET, admin = %me.key(), user = %account.key(), is_staff, "admin set the staff flag");
    let done = if is_staff {
        "staff-granted"
    } else {
        "staff-withdrawn"
    };
    Ok(see_other(&format!("{back}?done={done}")))
}

pub(super) async fn reset_account(
    State(state): State<AppState>,
    Staff { user: me, otp }: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Reply {
    checked_form(&state, &otp, &headers, form, ADMIN_URL).await?;
    let account = load_user(&state, &otp, &id).await?;
    state.otp().reset_account(&account.key()).await?;
    tracing::info!(target: LOG_TARGET, admin = %me.key(), user = %account.key(), "admin reset the account's failure budget");
    Ok(see_other(&format!(
        "{}?done=account-reset",
        user_url(account.id)
    )))
}

pub(super) async fn add_backup_code(
    State(state): State<AppState>,
    Staff { user: me, otp }: Staff,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Reply {
    checked_form(&state, &otp, &headers, form, ADMIN_URL).await?;
    let account = load_user(&state, &otp, &id).await?;
    let (device, code) = state.otp().add_static_token(&account.key(), None).await?;
    tracing::info!(target: LOG_TARGET,
        admin = %me.key(),
        user = %account.key(),
        device = %device.id,
        "admin added a backup code"
    );
    let page = state.page(&otp).await?;
    let codes = vec![code.to_string()];
    Ok(state.render(
        "admin/device_created.html",
        StatusCode::OK,
        &page,
        minijinja::context! {
            account => AccountView::of(&account),
            device => device_view(&state, &device)?,
            codes,
            added_code => true,
        },
    ))
}
