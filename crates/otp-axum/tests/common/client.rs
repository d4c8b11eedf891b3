//! A cookie-keeping HTTP/1 client for multi-step flows against an app served on 127.0.0.1:0,
//! and [`Reply`], the response both it and in-process `oneshot` calls give back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The name of the session cookie of the test apps.
pub const SESSION_COOKIE: &str = "session";

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON; panics (naming the status and body) if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "the body of a {} response is not JSON ({err}): {:?}",
                self.status,
                self.text()
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text.
    pub fn header(&self, name: impl http::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `error` field of a JSON error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {}: {}", self.status, self.text()))
            .to_owned()
    }

    /// Asserts the status, showing the body if it is another.
    #[track_caller]
    pub fn assert_status(&self, status: StatusCode) {
        assert_eq!(self.status, status, "{}", self.text());
    }

    /// Asserts the status and the JSON error code (`what` names the step in the failure).
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, code: &str, what: &str) {
        assert_eq!(self.status, status, "{what}: {}", self.text());
        assert_eq!(self.error_code(), code, "{what}: {}", self.text());
    }
}

/// Calls `router` in-process with `request`.
pub async fn oneshot(router: &Router, request: Request<axum::body::Body>) -> Reply {
    use tower::ServiceExt;
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("read the body");
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Serves `router` on an ephemeral port of 127.0.0.1 until the test's runtime ends; returns
/// its base URL (`http://127.0.0.1:PORT`).
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    format!("http://{addr}")
}

/// A client that keeps the cookies it is given (by name, as `name=value`) and sends them back,
/// as a browser would on one site.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: HyperClient<HttpConnector, Full<Bytes>>,
    cookies: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Client {
    /// A client without cookies for the app at `base`.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            // A connection per request: a server that answers early and closes the connection
            // cannot race a pooled one.
            http: HyperClient::builder(TokioExecutor::new())
                .pool_max_idle_per_host(0)
                .build_http(),
            cookies: Arc::default(),
        }
    }

    /// Another client of the same app, without cookies (another browser).
    pub fn fresh(&self) -> Self {
        Self::new(&self.base)
    }

    /// The app's origin, as a browser would send it in `Origin`.
    pub fn origin(&self) -> &str {
        &self.base
    }

    /// The current value of the session cookie.
    pub fn session_cookie(&self) -> Option<String> {
        self.cookie(SESSION_COOKIE)
    }

    /// The current value of a cookie.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    /// Sets a cookie by hand (an attacker planting a session id, an old cookie replayed).
    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies
            .lock()
            .unwrap()
            .insert(name.to_owned(), value.to_owned());
    }

    /// A request to `path` (`/…`).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder<'_> {
        RequestBuilder {
            client: self,
            method,
            path: path.to_owned(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// `GET path` as a JSON client (`Accept: application/json`).
    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path)
            .header(header::ACCEPT, "application/json")
            .send()
            .await
    }

    /// `GET path` as a browser (`Accept: text/html`).
    pub async fn get_html(&self, path: &str) -> Reply {
        self.request(Method::GET, path)
            .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
            .send()
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.request(Method::POST, path).json(body).send().await
    }

    /// `POST path` with `body` as `content_type`.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<Bytes>) -> Reply {
        self.request(Method::POST, path)
            .raw(content_type, body)
            .send()
            .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Reply {
        self.request(Method::DELETE, path).send().await
    }

    fn keep_cookies(&self, headers: &HeaderMap) {
        let mut cookies = self.cookies.lock().unwrap();
        for value in headers.get_all(header::SET_COOKIE) {
            let text = value.to_str().expect("a Set-Cookie header is ASCII");
            let mut attributes = text.split(';').map(str::trim);
            let pair = attributes.next().unwrap_or("");
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let removed = value.is_empty()
                || attributes.any(|a| {
                    a.split_once('=').is_some_and(|(k, v)| {
                        k.eq_ignore_ascii_case("max-age") && v.trim().starts_with(['0', '-'])
                    })
                });
            if removed {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }
}

/// A request being built.
pub struct RequestBuilder<'a> {
    client: &'a Client,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl RequestBuilder<'_> {
    /// Adds a header.
    pub fn header(mut self, name: HeaderName, value: &str) -> Self {
        self.headers
            .append(name, HeaderValue::from_str(value).expect("a header value"));
        self
    }

    /// A JSON body, with its content type.
    pub fn json(self, body: &Value) -> Self {
        self.raw("application/json", serde_json::to_vec(body).unwrap())
    }

    /// A body of any content type.
    pub fn raw(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).expect("a content type"),
        );
        self.body = body.into();
        self
    }

    /// A body without a content type.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends the request with the client's cookies, keeps the cookies of the response, and
    /// reads it whole.
    pub async fn send(self) -> Reply {
        let client = self.client;
        let mut request = Request::builder()
            .method(self.method)
            .uri(format!("{}{}", client.base, self.path))
            .body(Full::new(self.body))
            .expect("a request");
        *request.headers_mut() = self.headers;
        let cookie_header = {
            let cookies = client.cookies.lock().unwrap();
            cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if !cookie_header.is_empty() {
            request.headers_mut().insert(
                header::COOKIE,
                HeaderValue::from_str(&cookie_header).expect("cookies are ASCII"),
            );
        }
        let response = client
            .http
            .request(request)
            .await
            .expect("the test server answers");
        let (parts, body) = response.into_parts();
        client.keep_cookies(&parts.headers);
        let body = body.collect().await.expect("read the body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}
