//! CSRF protection: a token for forms, and for JSON an `Origin` check plus a required JSON
//! content type (a cross-site form cannot send `application/json`).
//!
//! A form's token is bound to the session once the session holds something (a login, its
//! first half, or an app's data). Before that, a login or sign-up form of a visitor nobody
//! knows yet stores nothing: its token is a keyed hash (with the application key) of a random
//! nonce in the browser's `otp_csrf` cookie (`HttpOnly`, `SameSite=Lax`, `Secure` on an HTTPS
//! site), a signed double-submit cookie. So a crawler's or an attacker's cookie-less requests
//! of the login page leave no session row behind.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use otp_core::HashedCode;
use subtle::ConstantTimeEq;

use crate::state::PENDING_SESSION_KEY;
use crate::{OtpSession, WebConfig, WebError};

/// The name of the hidden form field that carries the token.
pub const CSRF_FIELD: &str = "csrf_token";
/// The name of the cookie whose nonce signs the forms of visitors without a session.
pub const CSRF_COOKIE: &str = "otp_csrf";
const CSRF_SESSION_KEY: &str = "otp_csrf_token";
/// The context of the keyed hash of an anonymous form's token.
const ANONYMOUS_CONTEXT: &[u8] = b"otp-axum/anonymous-csrf-token";

/// Whether the session holds nothing to bind a token to: no user, no half-done login, no
/// session token yet.
async fn is_anonymous(otp: &OtpSession) -> Result<bool, WebError> {
    Ok(otp.user_key().is_none()
        && otp.session.get_value(PENDING_SESSION_KEY).await?.is_none()
        && otp.session.get_value(CSRF_SESSION_KEY).await?.is_none())
}

/// The CSRF token for the forms of this request's page: the session's (made on first use), or
/// for a visitor with nothing in the session, one signed from the browser's `otp_csrf` cookie
/// (set on this response if the browser had none), which stores nothing.
///
/// # Errors
///
/// [`WebError::Session`] if the session store fails.
pub async fn csrf_token(otp: &OtpSession) -> Result<String, WebError> {
    if let Some(token) = otp.session.get::<String>(CSRF_SESSION_KEY).await? {
        return Ok(token);
    }
    if is_anonymous(otp).await? {
        let nonce = otp.request.csrf_cookie.nonce();
        let keys = otp.web().otp().key_ring();
        return Ok(keys
            .hash_code(ANONYMOUS_CONTEXT, nonce.as_bytes())
            .to_stored());
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system random number generator failed");
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    otp.session.insert(CSRF_SESSION_KEY, &token).await?;
    Ok(token)
}

/// A request refused by the CSRF checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CsrfRejection {
    /// The form's token is missing or wrong.
    BadToken,
    /// The request comes from another site.
    CrossOrigin,
    /// A JSON endpoint got another content type.
    NotJson,
}

impl CsrfRejection {
    /// The error code in JSON bodies.
    pub fn code(self) -> &'static str {
        match self {
            Self::BadToken | Self::CrossOrigin => "csrf_failed",
            Self::NotJson => "unsupported_media_type",
        }
    }

    /// The status: 403, or 415 for a wrong content type.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadToken | Self::CrossOrigin => StatusCode::FORBIDDEN,
            Self::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    /// A message for people.
    pub fn message(self) -> &'static str {
        match self {
            Self::BadToken => {
                "The form has expired or did not come from this site. Please try again."
            }
            Self::CrossOrigin => "Requests from other sites are not accepted.",
            Self::NotJson => "This endpoint takes application/json.",
        }
    }
}

impl IntoResponse for CsrfRejection {
    fn into_response(self) -> Response {
        (
            self.status(),
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(serde_json::json!({ "error": self.code(), "message": self.message() })),
        )
            .into_response()
    }
}

/// Refuses a request whose `Origin` (or `Sec-Fetch-Site`) says it comes from another site.
///
/// The request's own origin is `scheme://{Host}`: the `Host` header (which
/// [`OtpLayer`](crate::OtpLayer) supplies from the URI for HTTP/2), and the scheme that
/// [`WebConfig::https`] declares. Scheme and host must both match: `https://host` and
/// `http://host` are different sites (a page served over plain HTTP, which anyone on the
/// network can rewrite, must not post to the HTTPS site). The scheme is the app's
/// configuration, never the request's: behind a proxy that terminates TLS the app sees plain
/// HTTP, an HTTP/1.1 request line carries no scheme, and `X-Forwarded-Proto` is the client's to
/// forge unless a trusted proxy overwrites it. [`WebConfig::allowed_origins`] lists more
/// origins, as `scheme://host[:port]`. Requests without these headers (non-browser clients)
/// pass.
pub fn check_origin(headers: &HeaderMap, config: &WebConfig) -> Result<(), CsrfRejection> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site.eq_ignore_ascii_case("cross-site")
    {
        return Err(CsrfRejection::CrossOrigin);
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| CsrfRejection::CrossOrigin)?;
    if config
        .allowed_origins
        .iter()
        .any(|a| a.eq_ignore_ascii_case(origin))
    {
        return Ok(());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or(CsrfRejection::CrossOrigin)?;
    let (scheme, other) = if config.https {
        ("https://", "http://")
    } else {
        ("http://", "https://")
    };
    let origin_host = match strip_prefix_ignore_case(origin, scheme) {
        Some(origin_host) => origin_host,
        None => {
            if strip_prefix_ignore_case(origin, other)
                .is_some_and(|origin_host| origin_host.eq_ignore_ascii_case(host))
            {
                tracing::debug!(
                    origin,
                    https = config.https,
                    "refused: the Origin's scheme is not the site's (is WebConfig::https right?)"
                );
            }
            return Err(CsrfRejection::CrossOrigin);
        }
    };
    if origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(CsrfRejection::CrossOrigin)
    }
}

/// `text` without `prefix`, compared in any ASCII case.
fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// The checks of a JSON endpoint that changes state: a JSON content type and a same-site
/// origin.
pub fn check_json_request(headers: &HeaderMap, config: &WebConfig) -> Result<(), CsrfRejection> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(CsrfRejection::NotJson);
    }
    check_origin(headers, config)
}

/// The checks of a form that changes state: a same-site origin and the token of
/// [`csrf_token`] (the session's, or for a visitor with nothing in the session, the one signed
/// from the browser's `otp_csrf` cookie).
///
/// # Errors
///
/// `Ok(Err(_))` for a refused request; `Err(_)` if the session store fails.
pub async fn check_form(
    headers: &HeaderMap,
    otp: &OtpSession,
    submitted: Option<&str>,
) -> Result<Result<(), CsrfRejection>, WebError> {
    if let Err(rejection) = check_origin(headers, otp.web().config()) {
        return Ok(Err(rejection));
    }
    let submitted = submitted.unwrap_or("");
    let matches: bool = match otp.session.get::<String>(CSRF_SESSION_KEY).await? {
        Some(expected) => submitted.as_bytes().ct_eq(expected.as_bytes()).into(),
        None if is_anonymous(otp).await? => {
            match (
                &otp.request.csrf_cookie.presented,
                HashedCode::from_stored(submitted),
            ) {
                (Some(nonce), Ok(token)) => otp
                    .web()
                    .otp()
                    .key_ring()
                    .verify_code(&token, ANONYMOUS_CONTEXT, nonce.as_bytes())
                    .unwrap_or(false),
                _ => false,
            }
        }
        None => false,
    };
    Ok(if matches {
        Ok(())
    } else {
        Err(CsrfRejection::BadToken)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    fn allowing(origins: &[&str]) -> WebConfig {
        WebConfig {
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            ..WebConfig::default()
        }
    }

    #[test]
    fn origins_are_compared_with_the_host() {
        let plain = WebConfig::default();
        let same = headers(&[
            ("host", "127.0.0.1:8000"),
            ("origin", "http://127.0.0.1:8000"),
        ]);
        assert_eq!(check_origin(&same, &plain), Ok(()));
        let other = headers(&[
            ("host", "127.0.0.1:8000"),
            ("origin", "http://evil.example"),
        ]);
        assert_eq!(
            check_origin(&other, &plain),
            Err(CsrfRejection::CrossOrigin)
        );
        let allowed = allowing(&["http://evil.example"]);
        assert_eq!(check_origin(&other, &allowed), Ok(()));
        let null = headers(&[("host", "a"), ("origin", "null")]);
        assert_eq!(check_origin(&null, &plain), Err(CsrfRejection::CrossOrigin));
        let fetch = headers(&[("sec-fetch-site", "cross-site")]);
        assert_eq!(
            check_origin(&fetch, &plain),
            Err(CsrfRejection::CrossOrigin)
        );
        assert_eq!(check_origin(&HeaderMap::new(), &plain), Ok(()));
    }

    /// Issue #10: `https://host` was accepted for a site at `http://host`, and the reverse.
    #[test]
    fn origins_are_compared_with_the_scheme_too() {
        let http = WebConfig::default();
        let https = WebConfig {
            https: true,
            ..WebConfig::default()
        };
        let from = |origin: &str| headers(&[("host", "app.example"), ("origin", origin)]);
        for (origin, site, expected) in [
            ("http://app.example", &http, Ok(())),
            ("HTTP://App.Example", &http, Ok(())),
            (
                "https://app.example",
                &http,
                Err(CsrfRejection::CrossOrigin),
            ),
            ("https://app.example", &https, Ok(())),
            (
                "http://app.example",
                &https,
                Err(CsrfRejection::CrossOrigin),
            ),
            ("ws://app.example", &https, Err(CsrfRejection::CrossOrigin)),
            ("app.example", &https, Err(CsrfRejection::CrossOrigin)),
            ("https://", &https, Err(CsrfRejection::CrossOrigin)),
            (
                "https://app.example.evil",
                &https,
                Err(CsrfRejection::CrossOrigin),
            ),
        ] {
            assert_eq!(
                check_origin(&from(origin), site),
                expected,
                "{origin} for a site with https = {}",
                site.https
            );
        }
        // A listed origin is allowed whatever the site's scheme: it names its own.
        let listed = WebConfig {
            https: true,
            ..allowing(&["http://app.example"])
        };
        assert_eq!(check_origin(&from("http://app.example"), &listed), Ok(()));
    }

    #[test]
    fn json_endpoints_need_a_json_content_type() {
        let json = headers(&[("content-type", "application/json; charset=utf-8")]);
        assert_eq!(check_json_request(&json, &WebConfig::default()), Ok(()));
        for other in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ] {
            let h = headers(&[("content-type", other)]);
            assert_eq!(
                check_json_request(&h, &WebConfig::default()),
                Err(CsrfRejection::NotJson),
                "{other}"
            );
        }
        assert_eq!(
            check_json_request(&HeaderMap::new(), &WebConfig::default()),
            Err(CsrfRejection::NotJson)
        );
    }
}
