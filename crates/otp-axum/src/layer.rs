//! [`OtpLayer`]: puts the request's OTP state, resolved at most once, within reach of the
//! extractors and guards.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, header};
use tokio::sync::Mutex;
use tower::{Layer, Service};

use crate::OtpWeb;
use crate::csrf::CSRF_COOKIE;
use crate::state::{CsrfCookie, RequestOtp};

/// The tower layer of this crate. Put it inside tower-sessions' `SessionManagerLayer` (and
/// inside axum-login's layer, if the app uses it): it needs the session.
///
/// For HTTP/2 requests, which carry their host in the URI, it adds the `Host` header that the
/// CSRF checks compare `Origin` with.
///
/// It does no other work by itself: the OTP state (the user, the verified device) is read from the
/// session and the store the first time an extractor or guard asks for it, and at most once
/// per request.
#[derive(Debug, Clone)]
pub struct OtpLayer {
    web: OtpWeb,
}

impl OtpLayer {
    /// A layer for `web`.
    pub fn new(web: OtpWeb) -> Self {
        Self { web }
    }
}

impl<S> Layer<S> for OtpLayer {
    type Service = OtpService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OtpService {
            inner,
            web: self.web.clone(),
        }
    }
}

/// The service of [`OtpLayer`].
#[derive(Debug, Clone)]
pub struct OtpService<S> {
    inner: S,
    web: OtpWeb,
}

impl<S, B, ResBody> Service<Request<B>> for OtpService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // HTTP/2 carries the host in the URI (`:authority`), not in a `Host` header; supply it,
        // so that the same-site checks of `csrf` see every request's own origin.
        if !request.headers().contains_key(http::header::HOST)
            && let Some(authority) = request.uri().authority()
            && let Ok(host) = http::HeaderValue::from_str(authority.as_str())
        {
            request.headers_mut().insert(http::header::HOST, host);
        }
        let csrf_cookie = Arc::new(CsrfCookie {
            presented: presented_csrf_nonce(request.headers()),
            issued: std::sync::Mutex::new(None),
        });
        request.extensions_mut().insert(RequestOtp {
            web: self.web.clone(),
            cache: Arc::new(Mutex::new(None)),
            csrf_cookie: csrf_cookie.clone(),
        });
        let secure = self.web.config().https;
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            let issued = csrf_cookie
                .issued
                .lock()
                .unwrap_or_else(|err| err.into_inner())
                .take();
            if let Some(nonce) = issued {
                let secure = if secure { "; Secure" } else { "" };
                let cookie =
                    format!("{CSRF_COOKIE}={nonce}; Path=/; HttpOnly; SameSite=Lax{secure}");
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().append(header::SET_COOKIE, value);
                }
            }
            Ok(response)
        })
    }
}

/// The CSRF nonce of the request's `otp_csrf` cookie, if it has a well-formed one (64 hex
/// digits).
fn presented_csrf_nonce(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == CSRF_COOKIE)
        .map(|(_, nonce)| nonce.to_owned())
        .filter(|nonce| nonce.len() == 64 && nonce.bytes().all(|b| b.is_ascii_hexdigit()))
}
