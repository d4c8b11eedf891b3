//! [`OtpLayer`]: puts the request's OTP state, resolved at most once, within reach of the
//! extractors and guards.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use tokio::sync::Mutex;
use tower::{Layer, Service};

use crate::OtpWeb;
use crate::state::RequestOtp;

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

impl<S, B> Service<Request<B>> for OtpService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

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
        request.extensions_mut().insert(RequestOtp {
            web: self.web.clone(),
            cache: Arc::new(Mutex::new(None)),
        });
        self.inner.call(request)
    }
}
