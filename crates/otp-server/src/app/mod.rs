//! The reference server: a complete app on the framework, with its own accounts, that `otp
//! serve` runs.
//!
//! ## Assembly
//!
//! [`build`] turns a [`ServerConfig`] into a [`Router`] and its [`AppState`]:
//!
//! 1. the application keys, by the rules of [`KeyRing::for_database`]: `OTP_SECRET_KEY`, else
//!    `OTP_KEY_FILE`, else (SQLite) the key file beside the database, created on first run
//!    (PostgreSQL without a key is an error);
//! 2. the mailer: SMTP at `OTP_SMTP_URL`, else the development mailer, which writes each
//!    message, code included, to the log (a WARN at start-up says so);
//! 3. the database ([`Store::connect`]; a SQLite file is created on first run) and every
//!    migration: the framework's devices, the sessions ([`SqlSessionStore`]) and the users
//!    ([`Users`]), all in that one database, so that several servers on one PostgreSQL
//!    database share users, devices and sessions;
//! 4. the framework ([`Otp`]) and its web layer ([`OtpWeb`], with [`SessionAccounts`] over
//!    [`Users`]), and the router below.
//!
//! [`serve`] runs it on a listener until a shutdown signal, with a background task that
//! deletes expired sessions every minute, then lets requests in flight finish and closes the
//! database.
//!
//! ## Routes
//!
//! | method and path | what |
//! |---|---|
//! | `GET /` | home: who is logged in, whether the session is verified, links |
//! | `GET, POST /signup` | make an account (404 when `OTP_SIGNUP=false`); logs the new user in |
//! | `GET, POST /account/password` | change the password; ends the user's other sessions |
//! | `GET /static/app.css` | the pages' stylesheet |
//! | `/account/login`, `/account/login/otp`, `/account/verify`, `POST /account/logout`, `/account/otp.css` | the library's pages ([`otp_axum::html`]) |
//! | `/api/v1/session`, `/api/v1/me`, `/api/v1/otp/challenge`, `/api/v1/otp/verify` | the library's JSON API ([`otp_axum::json`]) |
//! | [`pages::enrollment`], [`pages::admin`], [`api`] | self-service devices, the admin, more JSON (to come) |
//!
//! ## Security
//!
//! Every response carries `Content-Security-Policy:` [`CONTENT_SECURITY_POLICY`] (no inline
//! scripts or styles anywhere), `X-Content-Type-Options: nosniff`, `Referrer-Policy:
//! same-origin`, `X-Frame-Options: DENY` and `Cross-Origin-Opener-Policy: same-origin`, and
//! `Cache-Control: no-store` unless its handler chose otherwise (only the stylesheets do).
//! Request bodies over `OTP_BODY_LIMIT` (64 KiB) get 413, requests slower than
//! `OTP_REQUEST_TIMEOUT` (30 s) get 408. Each client (IP address; the /64 network for IPv6)
//! may post to the login endpoints (`POST /api/v1/session`, `/account/login`, `/signup`,
//! `/account/password`) and, separately, to the verification endpoints (`POST
//! /api/v1/otp/verify`, `/api/v1/otp/challenge`, `/account/login/otp`, `/account/verify`)
//! `OTP_RATE_LIMIT_PER_MINUTE` (60) times at once, and that many times a minute after that;
//! more get 429 with `Retry-After` (`{"error": "rate_limited"}` for JSON clients). On
//! PostgreSQL the budgets are kept in the database (one statement per allowed request), so
//! that every server on it counts a client's requests together; on SQLite they are in the
//! server's memory (`OTP_RATE_LIMIT_SHARED` chooses). A client the database refused is refused
//! from memory until its wait ends; while the database fails, each server limits on its own.
//! The client is the TCP peer, or with `OTP_TRUST_FORWARDED_FOR=true` (behind one reverse
//! proxy that appends the address it saw) the last `X-Forwarded-For` address. [`serve`] gives
//! the router the peer address; a router served without
//! `into_make_service_with_connect_info::<SocketAddr>()` puts all its clients in one bucket
//! (and says so in a WARN). Every form carries the session's CSRF token; the
//! JSON API requires a JSON content type and a same-site `Origin` (same scheme and host: `https`
//! when `OTP_SECURE_COOKIES=true`, `http` otherwise). The session cookie is
//! `HttpOnly`, `SameSite=Lax`, and `Secure` when `OTP_SECURE_COOKIES=true` (off by default
//! for `http://127.0.0.1` development: turn it on behind HTTPS; see [`config`]).
//!
//! ## Adding pages
//!
//! Handlers take `State<AppState>` and [`OtpSession`] (or [`CurrentUser`] for logged-in users
//! only); [`AppState::page`] gives the common context, [`AppState::render`] renders a
//! template with it and extra values, [`AppState::check_form`] checks a form's CSRF token.
//! Templates go in `crates/otp-server/templates/` and into `templates::BUILT_IN`.

pub mod api;
pub mod config;
mod connections;
mod layers;
pub mod pages;
pub mod password_backoff;
mod shared_limits;
pub mod templates;
pub mod users;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{Html, IntoResponse, Redirect, Response};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use otp_axum::csrf::{CSRF_FIELD, check_form, csrf_token};
use otp_axum::{OtpLayer, OtpSession, OtpWeb, SessionAccounts, SqlSessionStore, WebConfig};
use otp_core::{DevelopmentLogMailer, KeyRing, Mailer, Otp, SmtpMailer, Store};
use serde::Serialize;
use tokio::net::TcpListener;
use tower_sessions::session_store::ExpiredDeletion;

use shared_limits::SharedBuckets;

pub use config::ServerConfig;
pub use layers::CONTENT_SECURITY_POLICY;
pub use password_backoff::PasswordBackoff;
pub use templates::{Page, Pages, URLS, Urls};
pub use users::{NewUser, User, UserError, UserPage, UserQuery, Users};

/// Everything that can stop the server from starting or running. No variant carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is unknown or unusable, or the configuration file cannot be read.
    #[error("invalid setting {name}: {problem}")]
    Config {
        /// The setting as its source spells it (`OTP_SIGNUP`, `server.signup`), or `file PATH`.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The framework failed: keys, the database, migrations.
    #[error(transparent)]
    Core(#[from] otp_core::Error),
    /// The users failed.
    #[error(transparent)]
    Users(#[from] UserError),
    /// The web layer failed (its templates).
    #[error(transparent)]
    Web(#[from] otp_axum::WebError),
    /// A template of the server's pages failed.
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "request failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CACHE_CONTROL, "no-store")],
            "internal error\n",
        )
            .into_response()
    }
}

/// What every handler can reach. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The web layer, and through it the framework (`web.otp()`).
    pub web: OtpWeb,
    /// The app's users.
    pub users: Users,
    /// The sessions, in the same database.
    pub sessions: SqlSessionStore,
    /// The configuration.
    pub config: Arc<ServerConfig>,
    /// The server's page templates.
    pub pages: Pages,
    /// The rate limit's budgets in the database, when they are kept there
    /// ([`ServerConfig::rate_limit_is_shared`]).
    rate_limit_buckets: Option<SharedBuckets>,
}

impl AppState {
    /// The framework.
    pub fn otp(&self) -> &Otp {
        self.web.otp()
    }

    /// The logged-in user of `otp`, if any (and if the users table still has them).
    ///
    /// # Errors
    ///
    /// A database failure.
    pub async fn current_user(&self, otp: &OtpSession) -> Result<Option<User>, Error> {
        match otp.user_key() {
            Some(key) => Ok(self.users.find_by_key(key).await?),
            None => Ok(None),
        }
    }

    /// The context every page gets, for this request. The CSRF token (which makes the session
    /// stored) is there only for a logged-in user, whose navigation has a log-out form: use
    /// [`AppState::form_page`] for a page with a form of its own.
    ///
    /// # Errors
    ///
    /// A failure of the session store or the database.
    pub async fn page(&self, otp: &OtpSession) -> Result<Page, Error> {
        let user = self.current_user(otp).await?;
        let csrf_token = match user {
            Some(_) => csrf_token(otp).await?,
            None => String::new(),
        };
        Ok(Page {
            site_name: self.config.site_name.clone(),
            urls: URLS,
            csrf_field: CSRF_FIELD,
            csrf_token,
            user,
            verified: otp.is_verified(),
            signup_enabled: self.config.signup_enabled,
            error: None,
            notice: None,
        })
    }

    /// [`AppState::page`] with the session's CSRF token in any case, for a page with a form.
    ///
    /// # Errors
    ///
    /// A failure of the session store or the database.
    pub async fn form_page(&self, otp: &OtpSession) -> Result<Page, Error> {
        let mut page = self.page(otp).await?;
        if page.csrf_token.is_empty() {
            page.csrf_token = csrf_token(otp).await?;
        }
        Ok(page)
    }

    /// Renders `template` with the common context `page` and `extra` (a serializable map or
    /// struct whose fields are added to the context and win over `page`'s; `()` for none), as
    /// an HTML response with `status` that caches never store.
    pub fn render(
        &self,
        template: &str,
        status: StatusCode,
        page: &Page,
        extra: impl Serialize,
    ) -> Response {
        let context = minijinja::value::merge_maps([
            minijinja::Value::from_serialize(&extra),
            minijinja::Value::from_serialize(page),
        ]);
        match self.pages.render(template, context) {
            Ok(body) => no_store((status, Html(body)).into_response()),
            Err(err) => Error::Template(err).into_response(),
        }
    }

    /// `error.html` with `status`, a heading, a message and a link back.
    pub async fn error_page(
        &self,
        otp: &OtpSession,
        status: StatusCode,
        heading: &str,
        message: &str,
        back_url: Option<&str>,
    ) -> Response {
        let mut page = match self.page(otp).await {
            Ok(page) => page,
            Err(err) => return err.into_response(),
        };
        page.error = Some(message.to_owned());
        self.render(
            "error.html",
            status,
            &page,
            minijinja::context! { heading => heading, back_url => back_url },
        )
    }

    /// Checks a form's CSRF token and the request's origin: `Err` is the 403 page to send
    /// (or a 500 if the session store fails).
    pub async fn check_form(
        &self,
        otp: &OtpSession,
        headers: &HeaderMap,
        submitted: Option<&str>,
        back_url: &str,
    ) -> Result<(), Response> {
        match check_form(headers, otp, submitted).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(rejection)) => Err(self
                .error_page(
                    otp,
                    rejection.status(),
                    "Request refused",
                    rejection.message(),
                    Some(back_url),
                )
                .await),
            Err(err) => Err(err.into_response()),
        }
    }
}

/// A response that ends a handler early, so that `?` can return it: a refusal, or a failure
/// as [`Error`]'s 500 (the JSON API maps its failures to JSON responses before `?`). Boxed: a
/// `Response` is large.
pub(crate) struct Stop(Box<Response>);

impl IntoResponse for Stop {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl From<Response> for Stop {
    fn from(response: Response) -> Self {
        Self(Box::new(response))
    }
}

impl From<Error> for Stop {
    fn from(err: Error) -> Self {
        err.into_response().into()
    }
}

impl From<otp_core::Error> for Stop {
    fn from(err: otp_core::Error) -> Self {
        Error::from(err).into()
    }
}

impl From<otp_axum::manage::ManageError> for Stop {
    fn from(err: otp_axum::manage::ManageError) -> Self {
        use otp_axum::manage::ManageError;
        match err {
            ManageError::Refused(refusal) => {
                (refusal.status(), refusal.message()).into_response().into()
            }
            ManageError::Failed(err) => Error::from(err).into(),
        }
    }
}

impl From<UserError> for Stop {
    fn from(err: UserError) -> Self {
        Error::from(err).into()
    }
}

/// What a handler that ends early with `?` returns.
pub(crate) type Reply = Result<Response, Stop>;

/// `Cache-Control: no-store` on `response`.
pub(crate) fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A logged-in user of the app, with their OTP session: the extractor of pages for logged-in
/// users only. Others are sent to the login page with `next` (browsers) or get 401
/// `{"error": "login_required"}` (JSON clients).
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// The user.
    pub user: User,
    /// The request's OTP state.
    pub otp: OtpSession,
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let otp = OtpSession::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        match state.current_user(&otp).await {
            Ok(Some(user)) => Ok(Self { user, otp }),
            Ok(None) => Err(login_required(parts, state)),
            Err(err) => Err(err.into_response()),
        }
    }
}

/// Whether a request wants JSON rather than HTML.
fn wants_json(headers: &HeaderMap) -> bool {
    let value = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let accept = value(header::ACCEPT);
    value(header::CONTENT_TYPE).starts_with("application/json")
        || (accept.contains("application/json") && !accept.contains("text/html"))
}

/// Sends a browser to the login page with the page it asked for; tells a JSON client.
fn login_required(parts: &Parts, state: &AppState) -> Response {
    if wants_json(&parts.headers) {
        return no_store(
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({
                    "error": "login_required",
                    "message": "Please log in first.",
                })),
            )
                .into_response(),
        );
    }
    let config = state.web.config();
    let here = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let to = format!(
        "{}?{}={}",
        config.login_url,
        config.redirect_field,
        encode_query_value(here)
    );
    no_store(Redirect::to(&to).into_response())
}

/// Percent-encodes everything but unreserved characters and `/`.
pub(crate) fn encode_query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Connects, migrates and assembles the app (see the [module docs](self)).
///
/// # Errors
///
/// [`Error::Core`] for a missing or malformed key, an unusable key file, a database that
/// cannot be reached or migrated, or an SMTP URL that cannot be used; [`Error::Web`] or
/// [`Error::Template`] for a template that does not parse.
pub async fn build(config: ServerConfig) -> Result<(Router, AppState), Error> {
    let database = config.database()?;
    // Keys first: a missing key is reported without touching the database.
    let keys = KeyRing::for_database(
        &database,
        config.secret_key.as_deref().map(String::as_str),
        config.key_file.as_deref(),
    )?;
    let mailer: Arc<dyn Mailer> = match &config.smtp_url {
        Some(url) => Arc::new(SmtpMailer::from_url(url)?),
        None => {
            tracing::warn!(
                "DEVELOPMENT MAILER active: email codes are written to this log, not sent; set \
                 OTP_SMTP_URL to send mail"
            );
            Arc::new(DevelopmentLogMailer)
        }
    };
    if !config.secure_cookies && !config.addr.ip().is_loopback() {
        tracing::warn!(
            addr = %config.addr,
            "session cookies are sent without the Secure flag on an address other machines can \
             reach; serve over HTTPS and set OTP_SECURE_COOKIES=true"
        );
    }
    let store = Store::connect(&config.database_url).await?;
    let mut private = database.private_files();
    private.extend(config.key_file.iter().cloned());
    for path in otp_core::files_open_to_others(&private) {
        tracing::warn!(
            path = %path.display(),
            "this file of the database or its key may be read by other local users: \
             chmod 600 it"
        );
    }
    match assemble(config, store.clone(), keys, mailer).await {
        Ok(built) => Ok(built),
        Err(err) => {
            store.close().await;
            Err(err)
        }
    }
}

async fn assemble(
    config: ServerConfig,
    store: Store,
    keys: KeyRing,
    mailer: Arc<dyn Mailer>,
) -> Result<(Router, AppState), Error> {
    let sessions = SqlSessionStore::new(store.clone());
    let users = Users::new(store.clone()).with_backoff(config.password_backoff);
    store.migrate().await?;
    sessions.migrate().await?;
    users.migrate().await?;
    // Created whatever the setting, so that turning it on later needs no migration.
    let buckets = SharedBuckets::new(store.clone());
    buckets.migrate().await?;
    let rate_limit_buckets = config.rate_limit_is_shared().then_some(buckets);
    let otp = Otp::builder(store, keys)
        .with_settings(config.settings.clone())
        .with_mailer(mailer)
        .build()?;
    let web_config = WebConfig {
        site_name: config.site_name.clone(),
        allowed_origins: config.allowed_origins.clone(),
        step_up_window: config.step_up_window,
        max_verification_age: Some(config.verification_max_age),
        max_verification_idle: config.verification_idle,
        // Secure cookies are sent over HTTPS only: the site is an HTTPS one.
        https: config.secure_cookies,
        ..WebConfig::default()
    };
    let web = OtpWeb::with_config(otp, SessionAccounts::new(users.clone()), web_config)?;
    let state = AppState {
        web,
        users,
        sessions,
        config: Arc::new(config),
        pages: Pages::new()?,
        rate_limit_buckets,
    };
    Ok((router(&state), state))
}

/// The routes and layers of the app.
fn router(state: &AppState) -> Router {
    let config = &state.config;
    let mut limiter = layers::RateLimiter::new(
        config.rate_limit_per_minute,
        config.trust_forwarded_for,
        layers::LimitedPaths::for_mount(&state.web.config().mount),
    );
    if let Some(buckets) = &state.rate_limit_buckets {
        limiter = limiter.shared(buckets.clone());
    }
    let limiter = Arc::new(limiter);
    Router::new()
        .merge(pages::routes())
        .merge(pages::enrollment::routes())
        .merge(pages::admin::routes())
        .merge(otp_axum::html::routes(state.web.config()))
        .nest(
            "/api/v1",
            otp_axum::json::routes::<AppState>().merge(api::routes()),
        )
        .with_state(state.clone())
        // Innermost first: the OTP state needs the session; the limits and headers cover
        // every response, errors included; the log sees the final status.
        .layer(OtpLayer::new(state.web.clone()))
        .layer(otp_axum::session_layer(
            state.sessions.clone(),
            config.secure_cookies,
        ))
        .layer(from_fn_with_state(config.body_limit, layers::limit_body))
        // Before the body is read and the session loaded: a refused client costs next to
        // nothing (with the budgets in the database, one statement per wait).
        .layer(from_fn_with_state(limiter, layers::rate_limit))
        .layer(from_fn_with_state(config.request_timeout, layers::timeout))
        .layer(from_fn(layers::security_headers))
        .layer(from_fn(layers::log_request))
}

/// Deletes expired sessions, the rate-limit buckets in the database that have refilled, and
/// the password failures of accounts left alone for a day, every `session_cleanup_interval` (a minute) until aborted. [`serve`] runs it; an app that
/// serves [`build`]'s router itself runs it too, or the tables grow.
pub fn spawn_cleanup(state: &AppState) -> tokio::task::JoinHandle<()> {
    let sessions = state.sessions.clone();
    let buckets = state.rate_limit_buckets.clone();
    let users = state.users.clone();
    let otp = state.otp().clone();
    let interval = state.config.session_cleanup_interval;
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(err) = sessions.delete_expired().await {
                tracing::warn!(error = %err, "deleting expired sessions failed");
            }
            if let Some(buckets) = &buckets
                && let Err(err) = buckets.forget(shared_limits::now_micros()).await
            {
                tracing::warn!(error = %err, "deleting refilled rate-limit buckets failed");
            }
            if let Err(err) = users.forget_password_failures().await {
                tracing::warn!(error = %err, "deleting forgotten password failures failed");
            }
            if let Err(err) = otp.forget_closed_challenge_windows().await {
                tracing::warn!(error = %err, "deleting closed challenge windows failed");
            }
        }
    })
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the requests in flight
/// finish, stops the clean-up of sessions and rate-limit buckets and closes the database.
///
/// Each request carries its peer address (`ConnectInfo<SocketAddr>`, the client of the rate
/// limit), and its headers must arrive within `OTP_REQUEST_TIMEOUT`, else the connection is
/// closed: a client that trickles its headers (slowloris) or opens connections and sends
/// nothing cannot hold them (see `connections.rs`; axum's own `serve` reads headers for as
/// long as the client likes).
///
/// # Errors
///
/// None so far: a failed `accept` is logged and retried. The `Result` is for the errors to
/// come.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let cleanup = spawn_cleanup(&state);
    connections::serve_connections(listener, router, state.config.request_timeout, shutdown).await;
    cleanup.abort();
    let _ = cleanup.await;
    state.otp().store().close().await;
    tracing::info!("stopped");
    Ok(())
}
