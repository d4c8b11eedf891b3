//! [`AxumLoginAccounts`]: the login flows on top of axum-login (feature `axum-login`).

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use axum_login::{AuthSession, AuthUser, AuthnBackend, UserId};
use http::Extensions;
use otp_core::BoxFuture;
use tower_sessions::Session;

use crate::{Accounts, AccountsError};

/// What the password form collects, for backends whose credentials can be made from it.
#[derive(Clone, PartialEq, Eq)]
pub struct UsernamePassword {
    /// The username.
    pub username: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for UsernamePassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsernamePassword")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// [`Accounts`] through axum-login: passwords are checked by the backend, users are logged in
/// and out through the request's `AuthSession`, and a user's key is their id as text.
///
/// Requirements: the backend's credentials can be built from [`UsernamePassword`], its user id
/// prints with `Display` and parses back with `FromStr`, and axum-login's layer is outside
/// `OtpLayer`.
pub struct AxumLoginAccounts<B: AuthnBackend> {
    backend: B,
    _marker: PhantomData<fn() -> B>,
}

impl<B: AuthnBackend> AxumLoginAccounts<B> {
    /// Accounts of `backend` (the same backend as the app's `AuthManagerLayer`).
    pub fn new(backend: B) -> Self {
        Self {
            backend,
            _marker: PhantomData,
        }
    }
}

impl<B: AuthnBackend> fmt::Debug for AxumLoginAccounts<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AxumLoginAccounts").finish_non_exhaustive()
    }
}

fn auth_session<B: AuthnBackend + 'static>(
    extensions: &Extensions,
) -> Result<AuthSession<B>, AccountsError> {
    extensions.get::<AuthSession<B>>().cloned().ok_or_else(|| {
        AccountsError::new(
            "no AuthSession in the request: is axum-login's AuthManagerLayer outside OtpLayer?",
        )
    })
}

impl<B> Accounts for AxumLoginAccounts<B>
where
    B: AuthnBackend + 'static,
    B::Credentials: From<UsernamePassword>,
    UserId<B>: fmt::Display + FromStr,
{
    fn authenticate<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, AccountsError>> {
        Box::pin(async move {
            let credentials = B::Credentials::from(UsernamePassword {
                username: username.to_owned(),
                password: password.to_owned(),
            });
            let user = self
                .backend
                .authenticate(credentials)
                .await
                .map_err(AccountsError::new)?;
            Ok(user.map(|u| u.id().to_string()))
        })
    }

    fn current_user<'a>(
        &'a self,
        extensions: &'a Extensions,
        _session: &'a Session,
    ) -> BoxFuture<'a, Result<Option<String>, AccountsError>> {
        Box::pin(async move {
            let auth = auth_session::<B>(extensions)?;
            Ok(auth.user.map(|u| u.id().to_string()))
        })
    }

    fn log_in<'a>(
        &'a self,
        extensions: &'a Extensions,
        _session: &'a Session,
        user_key: &'a str,
    ) -> BoxFuture<'a, Result<(), AccountsError>> {
        Box::pin(async move {
            let id = UserId::<B>::from_str(user_key)
                .map_err(|_| AccountsError::new("a user key is not a user id of the backend"))?;
            let user = self
                .backend
                .get_user(&id)
                .await
                .map_err(AccountsError::new)?
                .ok_or_else(|| AccountsError::new("the user disappeared during login"))?;
            let mut auth = auth_session::<B>(extensions)?;
            auth.login(&user).await.map_err(AccountsError::new)
        })
    }

    fn log_out<'a>(
        &'a self,
        extensions: &'a Extensions,
        _session: &'a Session,
    ) -> BoxFuture<'a, Result<(), AccountsError>> {
        Box::pin(async move {
            let mut auth = auth_session::<B>(extensions)?;
            auth.logout().await.map(|_| ()).map_err(AccountsError::new)
        })
    }
}
