//! The app's accounts, as the login flows need them: check a password, say who is logged in,
//! log someone in and out. Users are the app's; this crate only handles their keys.

use std::fmt;
use std::sync::Arc;

use http::Extensions;
use otp_core::BoxFuture;
use tower_sessions::Session;

/// An error of the app's accounts (its database is down, say). Its text is logged, never shown.
#[derive(Debug)]
pub struct AccountsError(pub Box<dyn std::error::Error + Send + Sync>);

impl fmt::Display for AccountsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for AccountsError {}

impl AccountsError {
    /// Wraps any error.
    pub fn new(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(err.into())
    }
}

/// What the login flows need from the app.
///
/// Implement [`PasswordVerifier`] alone and use [`SessionAccounts`] if this crate's flows are
/// the app's login; use `AxumLoginAccounts` (feature `axum-login`) if axum-login logs users in.
pub trait Accounts: Send + Sync + fmt::Debug + 'static {
    /// Checks a username and password: `Ok(Some(user_key))` if they are right, `Ok(None)` if
    /// not. A wrong password is not an error.
    fn authenticate<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, AccountsError>>;

    /// The key of the user logged in on this request, if any.
    fn current_user<'a>(
        &'a self,
        extensions: &'a Extensions,
        session: &'a Session,
    ) -> BoxFuture<'a, Result<Option<String>, AccountsError>>;

    /// Logs the user in for the app, once every factor has passed. The session id is cycled
    /// afterwards by the caller.
    fn log_in<'a>(
        &'a self,
        extensions: &'a Extensions,
        session: &'a Session,
        user_key: &'a str,
    ) -> BoxFuture<'a, Result<(), AccountsError>>;

    /// Logs the user out for the app.
    fn log_out<'a>(
        &'a self,
        extensions: &'a Extensions,
        session: &'a Session,
    ) -> BoxFuture<'a, Result<(), AccountsError>>;

    /// What to show of the user `user_key`: the name in `otpauth://` URIs, the default address
    /// of email codes. By default nothing (the URI then names the user key).
    fn profile<'a>(
        &'a self,
        _user_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Profile>, AccountsError>> {
        Box::pin(async { Ok(None) })
    }
}

/// Checks passwords: the one thing an app must write when this crate's flows log users in.
pub trait PasswordVerifier: Send + Sync + fmt::Debug + 'static {
    /// `Ok(Some(user_key))` if the password is right, `Ok(None)` if not. Implementations
    /// should take the same time whether or not the user exists.
    fn verify_password<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, AccountsError>>;

    /// What to show of the user `user_key` (see [`Accounts::profile`]); by default nothing.
    fn profile<'a>(
        &'a self,
        _user_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Profile>, AccountsError>> {
        Box::pin(async { Ok(None) })
    }
}

/// What the device pages and `otpauth://` URIs show of a user. The app's, never this crate's:
/// it comes from [`Accounts::profile`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Profile {
    /// The name an authenticator app shows for the account (a username, an email address).
    pub display_name: String,
    /// Where email codes go by default.
    pub email: Option<String>,
}

impl Profile {
    /// A profile with a display name and no email address.
    pub fn new(display_name: impl Into<String>) -> Self {
        Self {
            display_name: display_name.into(),
            email: None,
        }
    }

    /// This profile with an email address.
    pub fn with_email(mut self, email: Option<String>) -> Self {
        self.email = email;
        self
    }
}

/// The session key under which [`SessionAccounts`] keeps the logged-in user's key.
pub const USER_KEY_SESSION_KEY: &str = "otp_user_key";

/// Accounts whose login state is this crate's own: the user's key in the session, the password
/// checked by the app's [`PasswordVerifier`].
#[derive(Debug, Clone)]
pub struct SessionAccounts {
    passwords: Arc<dyn PasswordVerifier>,
}

impl SessionAccounts {
    /// Accounts that check passwords with `passwords`.
    pub fn new(passwords: impl PasswordVerifier) -> Self {
        Self {
            passwords: Arc::new(passwords),
        }
    }
}

fn session_error(err: tower_sessions::session::Error) -> AccountsError {
    AccountsError::new(err)
}

impl Accounts for SessionAccounts {
    fn authenticate<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, AccountsError>> {
        self.passwords.verify_password(username, password)
    }

    fn current_user<'a>(
        &'a self,
        _extensions: &'a Extensions,
        session: &'a Session,
    ) -> BoxFuture<'a, Result<Option<String>, AccountsError>> {
        Box::pin(async move {
            session
                .get::<String>(USER_KEY_SESSION_KEY)
                .await
                .map_err(session_error)
        })
    }

    fn log_in<'a>(
        &'a self,
        _extensions: &'a Extensions,
        session: &'a Session,
        user_key: &'a str,
    ) -> BoxFuture<'a, Result<(), AccountsError>> {
        Box::pin(async move {
            session
                .insert(USER_KEY_SESSION_KEY, user_key)
                .await
                .map_err(session_error)
        })
    }

    fn log_out<'a>(
        &'a self,
        _extensions: &'a Extensions,
        session: &'a Session,
    ) -> BoxFuture<'a, Result<(), AccountsError>> {
        Box::pin(async move {
            session
                .remove::<String>(USER_KEY_SESSION_KEY)
                .await
                .map(|_| ())
                .map_err(session_error)
        })
    }

    fn profile<'a>(
        &'a self,
        user_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Profile>, AccountsError>> {
        self.passwords.profile(user_key)
    }
}
