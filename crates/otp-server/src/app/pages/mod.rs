//! The server's own pages: home, sign-up, password change, and the stylesheet; and the
//! modules of the pages to come ([`enrollment`], [`admin`]).

pub mod admin;
pub mod enrollment;

use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::{Extensions, HeaderMap, StatusCode, header};
use otp_axum::OtpSession;
use serde::Deserialize;

use super::templates::{APP_CSS, URLS};
use super::users::{NewUser, UserError};
use super::{AppState, CurrentUser, Error, no_store};

/// The routes of this module.
pub(crate) fn routes() -> Router<AppState> {
    let password = Router::new()
        .route(URLS.password, get(password_page).post(password_submit))
        // Users with a confirmed device must have verified this session with it.
        .route_layer(otp_axum::otp_required().if_configured(true));
    Router::new()
        .route(URLS.home, get(home))
        .route(URLS.signup, get(signup_page).post(signup_submit))
        .route(URLS.app_css, get(stylesheet))
        .merge(password)
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        APP_CSS,
    )
        .into_response()
}

fn see_other(to: &str) -> Response {
    no_store(Redirect::to(to).into_response())
}

// ---------------------------------------------------------------------------------------------
// Home.

async fn home(State(state): State<AppState>, otp: OtpSession) -> Result<Response, Error> {
    let page = state.page(&otp).await?;
    let has_device = match &page.user {
        Some(user) => state.otp().user_has_device(&user.key(), Some(true)).await?,
        None => false,
    };
    let device_name = otp.device().map(|device| device.name.clone());
    Ok(state.render(
        "home.html",
        StatusCode::OK,
        &page,
        minijinja::context! { has_device, device_name },
    ))
}

// ---------------------------------------------------------------------------------------------
// Sign-up.

/// The sign-up form. Not `Debug`: it holds the password.
#[derive(Default, Deserialize)]
#[serde(default)]
struct SignupForm {
    username: String,
    email: String,
    password: String,
    password_confirm: String,
    csrf_token: Option<String>,
}

/// The 404 of a closed sign-up.
async fn signup_closed(state: &AppState, otp: &OtpSession) -> Response {
    state
        .error_page(
            otp,
            StatusCode::NOT_FOUND,
            "Sign-up is closed",
            "New accounts are not taken here. Ask an administrator for one.",
            None,
        )
        .await
}

async fn signup_page(State(state): State<AppState>, otp: OtpSession) -> Result<Response, Error> {
    if !state.config.signup_enabled {
        return Ok(signup_closed(&state, &otp).await);
    }
    if otp.is_authenticated() {
        return Ok(see_other(URLS.home));
    }
    let page = state.form_page(&otp).await?;
    Ok(state.render("signup.html", StatusCode::OK, &page, ()))
}

/// A message for people about a refused username, password or email address.
fn user_message(err: &UserError) -> Option<String> {
    Some(match err {
        UserError::InvalidUsername(why) => format!("The username is not valid: {why}."),
        UserError::UsernameTaken => "That username is taken. Please choose another.".into(),
        UserError::InvalidPassword(why) => format!("The password is not valid: {why}."),
        UserError::InvalidEmail => "The email address is not valid.".into(),
        _ => return None,
    })
}

async fn signup_submit(
    State(state): State<AppState>,
    otp: OtpSession,
    extensions: Extensions,
    headers: HeaderMap,
    form: Result<Form<SignupForm>, FormRejection>,
) -> Result<Response, Error> {
    if !state.config.signup_enabled {
        return Ok(signup_closed(&state, &otp).await);
    }
    let Ok(Form(form)) = form else {
        return Ok(bad_form(&state, &otp, URLS.signup).await);
    };
    if let Err(refused) = state
        .check_form(&otp, &headers, form.csrf_token.as_deref(), URLS.signup)
        .await
    {
        return Ok(refused);
    }
    if otp.is_authenticated() {
        return Ok(see_other(URLS.home));
    }
    let refused = |message: String, status: StatusCode| {
        let state = state.clone();
        let otp = otp.clone();
        let (username, email) = (form.username.clone(), form.email.clone());
        async move {
            let mut page = state.form_page(&otp).await?;
            page.error = Some(message);
            Ok::<_, Error>(state.render(
                "signup.html",
                status,
                &page,
                minijinja::context! { username, email },
            ))
        }
    };
    if form.password != form.password_confirm {
        return refused(
            "The two passwords do not match.".into(),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let new = NewUser::new(&form.username, &form.password).with_email(Some(&form.email));
    let user = match state.users.create(new).await {
        Ok(user) => user,
        Err(err) => {
            let status = match err {
                UserError::UsernameTaken => StatusCode::CONFLICT,
                _ => StatusCode::BAD_REQUEST,
            };
            return match user_message(&err) {
                Some(message) => refused(message, status).await,
                None => Err(err.into()),
            };
        }
    };
    tracing::info!(user = %user.key(), "account created by sign-up");
    // A new account has no device: the password is its only factor, so it is logged in now.
    state
        .web
        .accounts()
        .log_in(&extensions, otp.session(), &user.key())
        .await
        .map_err(otp_axum::WebError::from)?;
    otp.session()
        .cycle_id()
        .await
        .map_err(otp_axum::WebError::from)?;
    Ok(see_other(URLS.home))
}

/// The 400 page of a body that is not the expected form.
async fn bad_form(state: &AppState, otp: &OtpSession, back_url: &str) -> Response {
    state
        .error_page(
            otp,
            StatusCode::BAD_REQUEST,
            "The form could not be read",
            "The form that was sent is incomplete or malformed. Please try again.",
            Some(back_url),
        )
        .await
}

// ---------------------------------------------------------------------------------------------
// Password change.

/// The password form. Not `Debug`: it holds passwords.
#[derive(Default, Deserialize)]
#[serde(default)]
struct PasswordForm {
    current_password: String,
    new_password: String,
    new_password_confirm: String,
    csrf_token: Option<String>,
}

async fn password_page(
    State(state): State<AppState>,
    CurrentUser { otp, .. }: CurrentUser,
) -> Result<Response, Error> {
    // A password change follows the step-up rule of the second factor: verified first, so
    // that the form is not typed in for nothing.
    if !otp.step_up().await?.allows_change() {
        return Ok(enrollment::to_verify(&otp, URLS.password));
    }
    let page = state.page(&otp).await?;
    Ok(state.render("password.html", StatusCode::OK, &page, ()))
}

async fn password_submit(
    State(state): State<AppState>,
    CurrentUser { user, otp }: CurrentUser,
    headers: HeaderMap,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Result<Response, Error> {
    let Ok(Form(form)) = form else {
        return Ok(bad_form(&state, &otp, URLS.password).await);
    };
    if let Err(refused) = state
        .check_form(&otp, &headers, form.csrf_token.as_deref(), URLS.password)
        .await
    {
        return Ok(refused);
    }
    // A stolen or long-idle session cannot change the password (and so end the owner's
    // sessions) without a recent second factor.
    if !otp.step_up().await?.allows_change() {
        return Ok(enrollment::to_verify(&otp, URLS.password));
    }
    let refused = |message: String| {
        let state = state.clone();
        let otp = otp.clone();
        async move {
            let mut page = state.page(&otp).await?;
            page.error = Some(message);
            Ok::<_, Error>(state.render("password.html", StatusCode::BAD_REQUEST, &page, ()))
        }
    };
    if form.new_password != form.new_password_confirm {
        return refused("The two new passwords do not match.".into()).await;
    }
    if let Err(err) = super::users::check_password(&form.new_password) {
        return refused(user_message(&err).unwrap_or_default()).await;
    }
    if !state
        .users
        .check_password(user.id, &form.current_password)
        .await?
    {
        return refused("Your current password is not right.".into()).await;
    }
    state
        .users
        .set_password(user.id, &form.new_password)
        .await?;
    // Every other session and half-done login of the user ends, on every server, even one
    // with a request in flight; this one takes a new id: whoever knew the old one knows
    // nothing now. The ended sessions' rows go too.
    let mut otp = otp;
    otp.end_other_sessions().await?;
    let ended = state
        .sessions
        .delete_user_sessions(&user.key(), otp.session().id())
        .await?;
    tracing::info!(user = %user.key(), sessions_ended = ended, "password changed");
    let mut page = state.page(&otp).await?;
    page.notice = Some(match ended {
        0 => "Your password was changed.".to_owned(),
        1 => "Your password was changed, and your other session was logged out.".to_owned(),
        n => format!("Your password was changed, and your {n} other sessions were logged out."),
    });
    Ok(state.render("password.html", StatusCode::OK, &page, ()))
}
