//! [`otp_required`]: a route layer that lets only OTP-verified sessions through.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::Request;
use tower::{Layer, Service};

use crate::extract::{OtpRequired, otp_required_rejection, otp_session_from_parts};

/// A guard for routes that need a verified session (django-otp's `@otp_required`).
///
/// ```
/// use axum::{Router, routing::get};
///
/// let app: Router = Router::new()
///     .route("/settings", get(|| async { "only for verified sessions" }))
///     .route_layer(otp_axum::otp_required().if_configured(true));
/// ```
///
/// Browsers are redirected to the login URL with the page they asked for in `next`; JSON
/// clients get 403 `{"error": "otp_required"}`. With `if_configured`, logged-in users who have
/// no confirmed device pass too (anonymous users never do).
pub fn otp_required() -> OtpRequiredLayer {
    OtpRequiredLayer::default()
}

/// The layer made by [`otp_required`].
#[derive(Debug, Clone, Default)]
pub struct OtpRequiredLayer {
    login_url: Option<String>,
    redirect_field: Option<String>,
    if_configured: bool,
}

impl OtpRequiredLayer {
    /// Where to send browsers (default: the web layer's `login_url`).
    pub fn login_url(mut self, url: impl Into<String>) -> Self {
        self.login_url = Some(url.into());
        self
    }

    /// The query parameter that carries the page asked for (default: `next`).
    pub fn redirect_field(mut self, field: impl Into<String>) -> Self {
        self.redirect_field = Some(field.into());
        self
    }

    /// Lets logged-in users without a confirmed device through.
    pub fn if_configured(mut self, if_configured: bool) -> Self {
        self.if_configured = if_configured;
        self
    }
}

impl<S> Layer<S> for OtpRequiredLayer {
    type Service = OtpRequiredService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OtpRequiredService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`OtpRequiredLayer`].
#[derive(Debug, Clone)]
pub struct OtpRequiredService<S> {
    inner: S,
    layer: OtpRequiredLayer,
}

impl<S> Service<Request<Body>> for OtpRequiredService<S>
where
    S: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The clone that was made ready goes into the future; a fresh clone stays here.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let otp = match otp_session_from_parts(&parts).await {
                Ok(otp) => otp,
                Err(rejection) => return Ok(OtpRequired::Failed(rejection).into_response()),
            };
            let mut pass = otp.is_verified();
            if !pass
                && layer.if_configured
                && let Some(user) = otp.user_key()
            {
                match otp.web().otp().user_has_device(user, Some(true)).await {
                    Ok(has_device) => pass = !has_device,
                    Err(err) => return Ok(crate::WebError::from(err).into_response()),
                }
            }
            if pass {
                return inner.call(Request::from_parts(parts, body)).await;
            }
            let config = otp.web().config();
            let login_url = layer.login_url.as_deref().unwrap_or(&config.login_url);
            let field = layer
                .redirect_field
                .as_deref()
                .unwrap_or(&config.redirect_field);
            Ok(otp_required_rejection(&parts, login_url, field).into_response())
        })
    }
}
