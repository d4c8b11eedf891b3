//! The HTML pages of the login and verification flows: the same flows as the
//! [JSON API](crate::json), rendered as forms.
//!
//! | method and path | page | success |
//! |---|---|---|
//! | `GET {mount}/login` | `login.html`: username and password | 200 |
//! | `POST {mount}/login` | `username`, `password`, `csrf_token`, `next` | 303 to `{mount}/login/otp` (second factor awaited), else to `next` or the default redirect |
//! | `GET {mount}/login/otp` | `login_otp.html`: device, code, "Send me a code" | 200; 303 to the login page when no login is under way |
//! | `POST {mount}/login/otp` | `device`, `token`, `action` (`verify` or `challenge`), `csrf_token`, `next` | 303 to `next` or the default redirect; the page again with "A code was sent." after a challenge |
//! | `GET {mount}/verify` | `verify.html`: the same form, for a user who is logged in but not verified (django-otp's `OTPTokenForm`) | 200; 303 to the login page when nobody is logged in |
//! | `POST {mount}/verify` | as `POST {mount}/login/otp` | 303 to `next` or the default redirect |
//! | `POST {mount}/logout` | `csrf_token` | 303 to the login page |
//! | `GET {mount}/otp.css` | the stylesheet of the pages | 200 |
//!
//! ## Assembling an app
//!
//! The pages need [`OtpLayer`](crate::OtpLayer) inside tower-sessions' `SessionManagerLayer`,
//! as every part of this crate does. Their paths are fixed when the router is built, so
//! [`routes`] takes the [`WebConfig`] (its [`mount`](WebConfig::mount)): pass the
//! configuration of the [`OtpWeb`](crate::OtpWeb) that the layer holds, and *merge* the router
//! (its paths already include the mount) rather than nesting it. The pages link to one another
//! under that same mount.
//!
//! ```
//! use axum::Router;
//! use otp_axum::{OtpLayer, OtpWeb, PasswordVerifier, SessionAccounts};
//! use otp_core::{BoxFuture, KeyRing, Otp, Store};
//! use tower_sessions::{MemoryStore, SessionManagerLayer};
//!
//! #[derive(Debug)]
//! struct Passwords;
//!
//! impl PasswordVerifier for Passwords {
//!     fn verify_password<'a>(
//!         &'a self,
//!         username: &'a str,
//!         password: &'a str,
//!     ) -> BoxFuture<'a, Result<Option<String>, otp_axum::AccountsError>> {
//!         // A real app checks a password hash, in constant time.
//!         let ok = username == "alice" && password == "correct horse";
//!         Box::pin(async move { Ok(ok.then(|| "alice".to_owned())) })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let url = format!("sqlite://{}", dir.path().join("otp.db").display());
//! let store = Store::connect(&url).await?;
//! store.migrate().await?;
//! let otp = Otp::builder(store, KeyRing::generate()).build()?;
//! let web = OtpWeb::new(otp, SessionAccounts::new(Passwords))?;
//!
//! let app: Router = Router::new()
//!     .merge(otp_axum::html::routes(web.config()))
//!     .layer(OtpLayer::new(web))
//!     .layer(SessionManagerLayer::new(MemoryStore::default()));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! ## Templates
//!
//! The pages are minijinja templates, built in and HTML-escaped. A file of the same name in
//! [`WebConfig::template_dir`] replaces one of them and leaves the others built in; it may
//! `{% extends "base.html" %}` and fill its blocks (`title`, `heading`, `messages`, `content`,
//! `footer`, `head`, `lang`). Templates are parsed when the [`OtpWeb`](crate::OtpWeb) is made.
//!
//! | template | what it is |
//! |---|---|
//! | `base.html` | the layout: the card, the error box (`role="alert"`), the notice, the stylesheet link |
//! | `login.html` | step 1: username and password |
//! | `login_otp.html` | step 2 of a login: includes `otp_form.html` |
//! | `verify.html` | the second factor for a user already logged in: includes `otp_form.html`, and a log-out button |
//! | `otp_form.html` | the device choice, the code, "Verify" and "Send me a code" |
//! | `error.html` | a refused or unreadable form (403, 400) |
//! | `otp.css` | the stylesheet, served at `{mount}/otp.css` |
//!
//! Every page gets these variables:
//!
//! | variable | value |
//! |---|---|
//! | `site_name` | [`WebConfig::site_name`] |
//! | `urls` | `login`, `login_otp`, `verify`, `logout`, `css`: the paths of the pages |
//! | `csrf_field`, `csrf_token` | the hidden field every `POST` form must carry |
//! | `next` | where to go afterwards, only if [`safe_next`] accepts it; carried in a hidden `next` field |
//! | `user` | the logged-in user's key, if any |
//! | `error`, `error_code`, `retry_after` | a [`FlowError`]'s message, code and seconds to wait |
//! | `notice` | an information message ("A code was sent.") |
//!
//! and these where they apply: `username` (`login.html`, after a failed attempt; never the
//! password), `devices` (a list of [`DeviceChoice`]), `device` and `device_kind` (the selected
//! one), `has_interactive`, `token_inputmode` (`numeric`, or `text` when backup codes are
//! selected), `backup_url`, `form_url`, `back_url`, `verified` (`verify.html`), `heading`
//! (`error.html`).
//!
//! ## Behaviour
//!
//! - Every page and redirect is sent with `Cache-Control: no-store` and may not be framed.
//! - Every `POST` checks the session's CSRF token (and the `Origin`) before anything else: a
//!   failure is a 403 page, and the password is not looked at. A body that is not a form is a
//!   400 page.
//! - A failed step shows the form again with the error's message and its HTTP status (401
//!   for a wrong password or code, 429 with `Retry-After` when throttled, ...). Messages
//!   never carry internal detail (a mail server's error, say).
//! - `next` is followed only if it is a path on this site; the query parameter on `GET` is
//!   [`WebConfig::redirect_field`], the hidden form field is always `next`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, Request, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};

use crate::csrf::{CSRF_FIELD, check_form, csrf_token};
use crate::extract::MissingLayer;
use crate::flow::{self, DeviceChoice, FlowError, PasswordOutcome, Stage, StepError};
use crate::state::RequestOtp;
use crate::{OtpSession, WebConfig, WebError, safe_next};

/// The HTML pages' routes at `config.mount` (see the [module docs](self)): merge them into the
/// app's router, under the [`OtpLayer`](crate::OtpLayer) of an [`OtpWeb`](crate::OtpWeb)
/// made with the same configuration.
pub fn routes<S: Clone + Send + Sync + 'static>(config: &WebConfig) -> Router<S> {
    let urls = Arc::new(Urls::new(&config.mount));
    Router::new()
        .route(&urls.login, get(login_page).post(login_submit))
        .route(&urls.login_otp, get(login_otp_page).post(login_otp_submit))
        .route(&urls.verify, get(verify_page).post(verify_submit))
        .route(&urls.logout, post(logout))
        .route(&urls.css, get(stylesheet))
        .with_state(urls)
}

/// The paths of the pages, fixed when the routes are made.
#[derive(Debug, Clone, Default, Serialize)]
struct Urls {
    login: String,
    login_otp: String,
    verify: String,
    logout: String,
    css: String,
}

impl Urls {
    fn new(mount: &str) -> Self {
        let mount = mount.trim_end_matches('/');
        let mount = if mount.is_empty() || mount.starts_with('/') {
            mount.to_owned()
        } else {
            format!("/{mount}")
        };
        Self {
            login: format!("{mount}/login"),
            login_otp: format!("{mount}/login/otp"),
            verify: format!("{mount}/verify"),
            logout: format!("{mount}/logout"),
            css: format!("{mount}/otp.css"),
        }
    }
}

/// `path` with a query of `pairs` (values percent-encoded; pairs without a value left out).
fn with_query(path: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let mut url = path.to_owned();
    let mut separator = if path.contains('?') { '&' } else { '?' };
    for (key, value) in pairs {
        if let Some(value) = value {
            let key = percent_encoding::utf8_percent_encode(key, crate::QUERY_VALUE);
            let value = percent_encoding::utf8_percent_encode(value, crate::QUERY_VALUE);
            url.push_str(&format!("{separator}{key}={value}"));
            separator = '&';
        }
    }
    url
}

/// `path` carrying `next` in the configured query parameter.
fn with_next(otp: &OtpSession, path: &str, next: Option<&str>) -> String {
    with_query(path, &[(&otp.web().config().redirect_field, next)])
}

/// The safe `next` of a query.
fn query_next(otp: &OtpSession, query: &HashMap<String, String>) -> Option<String> {
    query
        .get(&otp.web().config().redirect_field)
        .and_then(|next| safe_next(next))
        .map(str::to_owned)
}

fn query_map(
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> HashMap<String, String> {
    query.map(|Query(query)| query).unwrap_or_default()
}

/// Headers of every page and redirect: not stored, not framed.
fn page_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// A 303 to `to`.
fn see_other(to: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    page_headers(&mut response);
    response
}

/// Where a finished login or verification goes.
fn after_success(otp: &OtpSession, next: Option<&str>) -> Response {
    see_other(next.unwrap_or(&otp.web().config().default_redirect))
}

/// What a template sees (see the module docs). Not `Debug`: it holds the CSRF token.
#[derive(Default, Serialize)]
struct Context {
    site_name: String,
    urls: Urls,
    csrf_field: &'static str,
    csrf_token: String,
    next: Option<String>,
    user: Option<String>,
    error: Option<String>,
    error_code: Option<&'static str>,
    retry_after: Option<u64>,
    notice: Option<String>,
    username: Option<String>,
    devices: Vec<DeviceChoice>,
    device: Option<String>,
    device_kind: Option<String>,
    has_interactive: bool,
    token_inputmode: &'static str,
    backup_url: Option<String>,
    form_url: Option<String>,
    back_url: Option<String>,
    verified: bool,
    heading: Option<String>,
}

impl Context {
    async fn new(otp: &OtpSession, urls: &Urls, next: Option<String>) -> Result<Self, WebError> {
        Ok(Self {
            site_name: otp.web().config().site_name.clone(),
            urls: urls.clone(),
            csrf_field: CSRF_FIELD,
            csrf_token: csrf_token(otp).await?,
            next,
            user: otp.user_key().map(str::to_owned),
            token_inputmode: "numeric",
            ..Self::default()
        })
    }

    fn set_error(&mut self, err: &FlowError) {
        self.error = Some(err.message());
        self.error_code = Some(err.code());
        self.retry_after = err.retry_after();
    }
}

/// Renders `template` as a page with `status`, and `Retry-After` if the context has a wait.
fn render(otp: &OtpSession, template: &str, status: StatusCode, context: &Context) -> Response {
    let body = match otp
        .web()
        .templates()
        .render(template, minijinja::Value::from_serialize(context))
    {
        Ok(body) => body,
        Err(err) => return WebError::from(err).into_response(),
    };
    let mut response = (status, Html(body)).into_response();
    page_headers(&mut response);
    if let Some(seconds) = context.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// `error.html`: a form that was refused or could not be read, with a link to try again.
async fn error_page(
    otp: &OtpSession,
    urls: &Urls,
    status: StatusCode,
    heading: &str,
    message: &str,
    back_url: String,
) -> Response {
    let mut context = match Context::new(otp, urls, None).await {
        Ok(context) => context,
        Err(err) => return err.into_response(),
    };
    context.heading = Some(heading.to_owned());
    context.error = Some(message.to_owned());
    context.back_url = Some(back_url);
    render(otp, "error.html", status, &context)
}

/// The 400 page of a body that is not the expected form.
async fn bad_form(otp: &OtpSession, urls: &Urls, back_url: String) -> Response {
    error_page(
        otp,
        urls,
        StatusCode::BAD_REQUEST,
        "The form could not be read",
        "The form that was sent is incomplete or malformed. Please try again.",
        back_url,
    )
    .await
}

/// Checks the CSRF token of a form (and the request's origin): `Err` is the 403 page (or a 500
/// if the session store fails).
async fn check_csrf(
    otp: &OtpSession,
    urls: &Urls,
    headers: &HeaderMap,
    submitted: Option<&str>,
    back_url: String,
) -> Result<(), Response> {
    match check_form(headers, otp, submitted).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(rejection)) => Err(error_page(
            otp,
            urls,
            rejection.status(),
            "Request refused",
            rejection.message(),
            back_url,
        )
        .await),
        Err(err) => Err(err.into_response()),
    }
}

// ---------------------------------------------------------------------------------------------
// Step 1: the password.

/// The login form. Not `Debug`: it holds the password.
#[derive(Default, Deserialize)]
#[serde(default)]
struct LoginForm {
    username: String,
    password: String,
    csrf_token: Option<String>,
    next: String,
}

async fn login_page(
    State(urls): State<Arc<Urls>>,
    otp: OtpSession,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let query = query_map(query);
    let mut context = match Context::new(&otp, &urls, query_next(&otp, &query)).await {
        Ok(context) => context,
        Err(err) => return err.into_response(),
    };
    // Only fixed messages for fixed flags: nothing from the query is shown.
    if query.contains_key("expired") {
        context.notice = Some(FlowError::LoginExpired.message());
    } else if query.contains_key("logged_out") {
        context.notice = Some("You have been logged out.".into());
    }
    render(&otp, "login.html", StatusCode::OK, &context)
}

async fn login_submit(
    State(urls): State<Arc<Urls>>,
    mut otp: OtpSession,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return bad_form(&otp, &urls, urls.login.clone()).await;
    };
    let next = safe_next(&form.next).map(str::to_owned);
    let back_url = with_next(&otp, &urls.login, next.as_deref());
    if let Err(refused) =
        check_csrf(&otp, &urls, &headers, form.csrf_token.as_deref(), back_url).await
    {
        return refused;
    }
    match flow::password_step(&mut otp, &form.username, &form.password).await {
        Ok(PasswordOutcome::LoggedIn) => after_success(&otp, next.as_deref()),
        Ok(PasswordOutcome::SecondFactor(_)) => {
            see_other(&with_next(&otp, &urls.login_otp, next.as_deref()))
        }
        Err(StepError::Flow(err)) => {
            let mut context = match Context::new(&otp, &urls, next).await {
                Ok(context) => context,
                Err(err) => return err.into_response(),
            };
            context.set_error(&err);
            context.username = Some(form.username);
            render(&otp, "login.html", err.status(), &context)
        }
        Err(StepError::Web(err)) => err.into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Step 2: the second factor, during a login (`login/otp`) or for a logged-in user (`verify`).

/// Which second-factor page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    /// `{mount}/login/otp`: the password passed in this session.
    LoginOtp,
    /// `{mount}/verify`: the user is logged in, the session is to be verified.
    Verify,
}

impl Page {
    fn template(self) -> &'static str {
        match self {
            Self::LoginOtp => "login_otp.html",
            Self::Verify => "verify.html",
        }
    }

    fn url(self, urls: &Urls) -> &str {
        match self {
            Self::LoginOtp => &urls.login_otp,
            Self::Verify => &urls.verify,
        }
    }
}

/// The second-factor form. Not `Debug`: it holds the code.
#[derive(Default, Deserialize)]
#[serde(default)]
struct OtpForm {
    device: String,
    token: String,
    action: String,
    csrf_token: Option<String>,
    next: String,
}

/// The redirect to the login page for a login that is not (or no longer) under way.
fn to_login(otp: &OtpSession, urls: &Urls, expired: bool, next: Option<&str>) -> Response {
    let field = &otp.web().config().redirect_field;
    see_other(&with_query(
        &urls.login,
        &[("expired", expired.then_some("1")), (field, next)],
    ))
}

/// The user whose second factor `page` asks for, or the redirect to the page that fits.
async fn page_user(
    page: Page,
    otp: &OtpSession,
    urls: &Urls,
    next: Option<&str>,
) -> Result<String, Response> {
    match (page, flow::second_factor_user(otp).await) {
        (Page::LoginOtp, Ok((user, Stage::Pending)))
        | (Page::Verify, Ok((user, Stage::LoggedIn))) => Ok(user),
        // A login under way takes precedence over the user logged in before it.
        (Page::Verify, Ok((_, Stage::Pending))) => {
            Err(see_other(&with_next(otp, &urls.login_otp, next)))
        }
        (Page::LoginOtp, Ok((_, Stage::LoggedIn))) => {
            Err(see_other(&with_next(otp, &urls.verify, next)))
        }
        // The expired login is gone; a user logged in before it stays.
        (Page::Verify, Err(StepError::Flow(FlowError::LoginExpired))) => match otp.user_key() {
            Some(user) => Ok(user.to_owned()),
            None => Err(to_login(otp, urls, true, next)),
        },
        (Page::LoginOtp, Err(StepError::Flow(FlowError::LoginExpired))) => {
            Err(to_login(otp, urls, true, next))
        }
        (_, Err(StepError::Flow(_))) => Err(to_login(otp, urls, false, next)),
        (_, Err(StepError::Web(err))) => Err(err.into_response()),
    }
}

/// What a second-factor page shows besides the user's devices.
#[derive(Default)]
struct Shown {
    /// The safe `next`.
    next: Option<String>,
    /// The device to select, if it is one of the user's.
    device: Option<String>,
    notice: Option<String>,
    error: Option<FlowError>,
}

/// Renders a second-factor page for `user`.
async fn second_factor_page(
    page: Page,
    otp: &OtpSession,
    urls: &Urls,
    user: &str,
    shown: Shown,
) -> Response {
    let Shown {
        next,
        device,
        notice,
        error,
    } = shown;
    let devices = match flow::device_choices(otp, user).await {
        Ok(devices) => devices,
        Err(err) => return err.into_response(),
    };
    let mut context = match Context::new(otp, urls, next).await {
        Ok(context) => context,
        Err(err) => return err.into_response(),
    };
    let selected = device
        .and_then(|id| devices.iter().find(|d| d.id == id.trim()))
        .or(devices.first());
    // Backup codes are letters and digits: no numeric keyboard for them.
    if selected.is_some_and(|d| d.recovery) {
        context.token_inputmode = "text";
    }
    let page_url = page.url(urls);
    let field = &otp.web().config().redirect_field;
    context.backup_url = devices
        .iter()
        .find(|d| d.recovery && selected.is_none_or(|s| s.id != d.id))
        .map(|d| {
            with_query(
                page_url,
                &[("device", Some(&d.id)), (field, context.next.as_deref())],
            )
        });
    context.device = selected.map(|d| d.id.clone());
    context.device_kind = selected.map(|d| d.kind.clone());
    context.has_interactive = devices.iter().any(|d| d.interactive);
    context.form_url = Some(page_url.to_owned());
    context.back_url = Some(with_next(otp, &urls.login, context.next.as_deref()));
    context.verified = otp.is_verified();
    context.devices = devices;
    context.notice = notice;
    if page == Page::Verify && context.verified && context.notice.is_none() {
        // Sent here by the step-up rule, or coming by choice.
        let stale = matches!(otp.step_up().await, Ok(crate::StepUp::Required));
        context.notice = Some(if stale {
            "Changes to your second factor need a recent verification: please enter a code \
             again."
                .into()
        } else {
            "This session is already verified.".into()
        });
    }
    let status = error.as_ref().map_or(StatusCode::OK, FlowError::status);
    if let Some(err) = &error {
        context.set_error(err);
    }
    render(otp, page.template(), status, &context)
}

async fn second_factor_get(
    page: Page,
    urls: &Urls,
    otp: &OtpSession,
    query: HashMap<String, String>,
) -> Response {
    let next = query_next(otp, &query);
    let user = match page_user(page, otp, urls, next.as_deref()).await {
        Ok(user) => user,
        Err(redirect) => return redirect,
    };
    let shown = Shown {
        next,
        device: query.get("device").cloned(),
        ..Shown::default()
    };
    second_factor_page(page, otp, urls, &user, shown).await
}

async fn second_factor_post(
    page: Page,
    urls: &Urls,
    mut otp: OtpSession,
    headers: &HeaderMap,
    form: Result<Form<OtpForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return bad_form(&otp, urls, page.url(urls).to_owned()).await;
    };
    let next = safe_next(&form.next).map(str::to_owned);
    let back_url = with_next(&otp, page.url(urls), next.as_deref());
    if let Err(refused) =
        check_csrf(&otp, urls, headers, form.csrf_token.as_deref(), back_url).await
    {
        return refused;
    }
    let user = match page_user(page, &otp, urls, next.as_deref()).await {
        Ok(user) => user,
        Err(redirect) => return redirect,
    };
    let mut shown = Shown {
        next: next.clone(),
        device: Some(form.device.clone()),
        ..Shown::default()
    };
    if form.action == "challenge" {
        match flow::challenge_step(&otp, &form.device).await {
            Ok(()) => shown.notice = Some("A code was sent.".to_owned()),
            Err(StepError::Flow(err)) => shown.error = Some(err),
            Err(StepError::Web(err)) => return err.into_response(),
        }
        return second_factor_page(page, &otp, urls, &user, shown).await;
    }
    match flow::verify_step(&mut otp, &form.device, &form.token).await {
        Ok(()) => after_success(&otp, next.as_deref()),
        Err(StepError::Flow(FlowError::LoginExpired)) => {
            to_login(&otp, urls, true, next.as_deref())
        }
        Err(StepError::Flow(FlowError::LoginRequired)) => {
            to_login(&otp, urls, false, next.as_deref())
        }
        Err(StepError::Flow(err)) => {
            shown.error = Some(err);
            second_factor_page(page, &otp, urls, &user, shown).await
        }
        Err(StepError::Web(err)) => err.into_response(),
    }
}

async fn login_otp_page(
    State(urls): State<Arc<Urls>>,
    otp: OtpSession,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    second_factor_get(Page::LoginOtp, &urls, &otp, query_map(query)).await
}

async fn login_otp_submit(
    State(urls): State<Arc<Urls>>,
    otp: OtpSession,
    headers: HeaderMap,
    form: Result<Form<OtpForm>, FormRejection>,
) -> Response {
    second_factor_post(Page::LoginOtp, &urls, otp, &headers, form).await
}

async fn verify_page(
    State(urls): State<Arc<Urls>>,
    otp: OtpSession,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    second_factor_get(Page::Verify, &urls, &otp, query_map(query)).await
}

async fn verify_submit(
    State(urls): State<Arc<Urls>>,
    otp: OtpSession,
    headers: HeaderMap,
    form: Result<Form<OtpForm>, FormRejection>,
) -> Response {
    second_factor_post(Page::Verify, &urls, otp, &headers, form).await
}

// ---------------------------------------------------------------------------------------------
// Log out and the stylesheet.

#[derive(Default, Deserialize)]
#[serde(default)]
struct LogoutForm {
    csrf_token: Option<String>,
}

async fn logout(
    State(urls): State<Arc<Urls>>,
    mut otp: OtpSession,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return bad_form(&otp, &urls, urls.login.clone()).await;
    };
    if let Err(refused) = check_csrf(
        &otp,
        &urls,
        &headers,
        form.csrf_token.as_deref(),
        urls.login.clone(),
    )
    .await
    {
        return refused;
    }
    match otp.logout().await {
        Ok(()) => see_other(&with_query(&urls.login, &[("logged_out", Some("1"))])),
        Err(err) => err.into_response(),
    }
}

/// `otp.css`, rendered like the pages (so it can be overridden), without touching the session.
async fn stylesheet(request: Request) -> Response {
    let Some(otp) = request.extensions().get::<RequestOtp>() else {
        return MissingLayer::OtpLayer.into_response();
    };
    match otp
        .web
        .templates()
        .render("otp.css", minijinja::Value::UNDEFINED)
    {
        Ok(css) => (
            [
                (header::CONTENT_TYPE, "text/css; charset=utf-8"),
                (header::CACHE_CONTROL, "public, max-age=3600"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            css,
        )
            .into_response(),
        Err(err) => WebError::from(err).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_mount() {
        for mount in ["/account", "/account/", "account"] {
            let urls = Urls::new(mount);
            assert_eq!(urls.login, "/account/login", "{mount}");
            assert_eq!(urls.login_otp, "/account/login/otp", "{mount}");
            assert_eq!(urls.css, "/account/otp.css", "{mount}");
        }
        assert_eq!(Urls::new("/").verify, "/verify");
        assert_eq!(Urls::new("").logout, "/logout");
    }

    #[test]
    fn queries_are_encoded_and_skip_missing_values() {
        assert_eq!(
            with_query("/a/login", &[("expired", None), ("next", Some("/x?y=1&z"))]),
            "/a/login?next=/x%3Fy%3D1%26z"
        );
        assert_eq!(
            with_query("/a", &[("expired", Some("1")), ("next", Some("/b"))]),
            "/a?expired=1&next=/b"
        );
        assert_eq!(with_query("/a", &[("next", None)]), "/a");
    }
}
