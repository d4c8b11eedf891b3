//! The server's own middleware, written with `axum::middleware` rather than pulled in:
//! security headers on every response, a request body limit, a request timeout, a request
//! log, and per-client rate limiting of the login and verification endpoints.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::shared_limits::{SharedBuckets, Taken, now_micros};

/// The Content-Security-Policy of every response: scripts and styles only from files of this
/// site (no inline ones), images also as `data:` URIs (QR codes), no framing, forms only to
/// this site, no `<base>`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; \
     base-uri 'none'";

/// Sets the security headers on every response, replacing any a handler set (the library's
/// pages send a narrower CSP of their own); and `Cache-Control: no-store` on every response
/// whose handler did not choose a caching policy (the stylesheets do), so that a page that
/// shows a secret cannot be stored by forgetting to say so.
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        http::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

fn too_large() -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        [(header::CACHE_CONTROL, "no-store")],
        "request body too large\n",
    )
        .into_response()
}

/// Refuses bodies over `limit` bytes with 413: at once when `Content-Length` says so, else
/// after reading at most `limit + 1` bytes. The body is read whole here (it is small), so
/// every handler sees a body that fits, and a chunked body that does not fit gets the same 413
/// whatever the handler would have done with it.
pub(crate) async fn limit_body(
    State(limit): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<LengthLimitError>() => return too_large(),
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                "the request body could not be read\n",
            )
                .into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Answers 408 when a request (reading its body included) takes longer than the timeout.
pub(crate) async fn timeout(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            [(header::CACHE_CONTROL, "no-store")],
            "request timed out\n",
        )
            .into_response(),
    }
}

/// Logs each request at INFO: method, path (never the query, which may carry a `next` URL or
/// more), status and duration.
pub(crate) async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        target: "otp_server::http",
        %method,
        path = %path,
        status = response.status().as_u16(),
        millis = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

// ---------------------------------------------------------------------------------------------
// Per-client rate limiting.

/// What a rate-limited endpoint is for: each client has one bucket per class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Class {
    /// Password checks: the JSON and HTML logins, sign-up, the password change.
    Login,
    /// Code checks and challenges: the JSON and HTML second-factor steps.
    Verify,
    /// Changes to devices: adding one, confirming it, sending it a code (HTML and JSON).
    Devices,
}

impl Class {
    /// The class's name in the shared buckets' table.
    fn name(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Verify => "verify",
            Self::Devices => "devices",
        }
    }
}

/// Which requests are limited, and how: the `POST` paths of each [`Class`], and the paths
/// under which every request but a `GET` or `HEAD` is limited.
#[derive(Debug, Clone)]
pub(crate) struct LimitedPaths {
    paths: Vec<(String, Class)>,
    trees: Vec<(String, Class)>,
}

impl LimitedPaths {
    /// The server's login and verification endpoints, with the library's pages under `mount`
    /// (`/account` by default).
    pub(crate) fn for_mount(mount: &str) -> Self {
        let mount = mount.trim_end_matches('/');
        let mount = if mount.is_empty() || mount.starts_with('/') {
            mount.to_owned()
        } else {
            format!("/{mount}")
        };
        let paths = vec![
            ("/api/v1/session".to_owned(), Class::Login),
            (format!("{mount}/login"), Class::Login),
            (super::URLS.signup.to_owned(), Class::Login),
            (super::URLS.password.to_owned(), Class::Login),
            ("/api/v1/otp/verify".to_owned(), Class::Verify),
            ("/api/v1/otp/challenge".to_owned(), Class::Verify),
            (format!("{mount}/login/otp"), Class::Verify),
            (format!("{mount}/verify"), Class::Verify),
        ];
        let trees = vec![
            (format!("{}/", super::URLS.devices), Class::Devices),
            ("/api/v1/devices".to_owned(), Class::Devices),
        ];
        Self { paths, trees }
    }

    /// The class of a request, if it is limited.
    fn class(&self, method: &http::Method, path: &str) -> Option<Class> {
        if method == http::Method::GET || method == http::Method::HEAD {
            return None;
        }
        let tree = self.trees.iter().find(|(root, _)| {
            path.strip_prefix(root.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || root.ends_with('/'))
        });
        if let Some((_, class)) = tree {
            return Some(*class);
        }
        if method != http::Method::POST {
            return None;
        }
        // `/api/v1/session/` is another route (a 404): only exact paths count.
        self.paths
            .iter()
            .find(|(limited, _)| limited == path)
            .map(|(_, class)| *class)
    }
}

/// Who a bucket belongs to: an IPv4 address, or the /64 network of an IPv6 address (one host
/// usually has a whole /64 to pick addresses from), with the class; `None` for requests whose
/// peer address is unknown (a router served without connect info), which share one bucket.
type BucketKey = (Option<IpAddr>, Class);

/// The client of a request as the limiter sees it.
fn client_ip(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(network))
        }
    }
}

/// One client's tokens: at most `capacity`, refilled continuously.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The most clients the limiter remembers at once (about 64 bytes each): past it, the buckets
/// that have refilled are forgotten first, then arbitrary ones.
const MAX_BUCKETS: usize = 100_000;

/// A keyed token bucket: each client may spend `per_minute` requests at once, which come back
/// at `per_minute` a minute. The buckets are in this process's memory, or, with
/// [`RateLimiter::shared`], in the database, where every server on it counts together. Memory
/// is bounded: a bucket that has refilled is the same as none and is dropped when the table
/// grows, and the table never holds more than [`MAX_BUCKETS`] clients.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// Requests per minute (and the burst); 0 disables the limiter.
    per_minute: u32,
    /// Whether the client is the last address of `X-Forwarded-For` (behind one trusted
    /// reverse proxy) rather than the peer.
    trust_forwarded_for: bool,
    paths: LimitedPaths,
    buckets: Mutex<Buckets>,
    max_buckets: usize,
    /// The buckets in the database, used instead of `buckets` when set (`buckets` then only
    /// decide while the database fails).
    shared: Option<SharedBuckets>,
    /// With `shared`: the clients the database refused lately, and until when.
    refusals: Refusals,
    /// With `shared`: whether the database failed last time (and a WARN said so).
    shared_failing: AtomicBool,
    warned_without_peer: AtomicBool,
}

/// How long the shared limit waits for the database before this server's own bucket decides.
const SHARED_TIMEOUT: Duration = Duration::from_millis(250);

/// Clients refused until a time, at most `max` of them: past it, those whose time has passed
/// are forgotten, then all.
#[derive(Debug, Default)]
struct Refusals(Mutex<HashMap<BucketKey, Instant>>);

impl Refusals {
    /// How long `key` must still wait at `now`, if it was refused.
    fn waiting(&self, key: BucketKey, now: Instant) -> Option<Duration> {
        let mut refused = self.0.lock().unwrap_or_else(|err| err.into_inner());
        let until = *refused.get(&key)?;
        if until > now {
            Some(until - now)
        } else {
            refused.remove(&key);
            None
        }
    }

    fn remember(&self, key: BucketKey, until: Instant, max: usize) {
        let mut refused = self.0.lock().unwrap_or_else(|err| err.into_inner());
        if refused.len() >= max {
            let now = Instant::now();
            refused.retain(|_, until| *until > now);
            if refused.len() >= max {
                refused.clear();
            }
        }
        refused.insert(key, until);
    }
}

#[derive(Debug, Default)]
struct Buckets {
    map: HashMap<BucketKey, Bucket>,
    /// The size at which the next sweep of refilled buckets happens.
    sweep_at: usize,
}

/// How long a refused client must wait, rounded up to whole seconds (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryAfter(pub(crate) u64);

impl RetryAfter {
    /// `wait` in whole seconds, rounded up, at least 1.
    fn rounding_up(wait: Duration) -> Self {
        Self(
            u64::try_from(wait.as_micros().div_ceil(1_000_000))
                .unwrap_or(u64::MAX)
                .max(1),
        )
    }
}

impl RateLimiter {
    /// A limiter of `per_minute` requests per client and class (0: no limit).
    pub(crate) fn new(per_minute: u32, trust_forwarded_for: bool, paths: LimitedPaths) -> Self {
        Self {
            per_minute,
            trust_forwarded_for,
            paths,
            buckets: Mutex::new(Buckets::default()),
            max_buckets: MAX_BUCKETS,
            shared: None,
            refusals: Refusals::default(),
            shared_failing: AtomicBool::new(false),
            warned_without_peer: AtomicBool::new(false),
        }
    }

    /// Keeps the buckets in the database, shared by every server on it.
    pub(crate) fn shared(mut self, buckets: SharedBuckets) -> Self {
        self.shared = Some(buckets);
        self
    }

    #[cfg(test)]
    fn with_max_buckets(mut self, max: usize) -> Self {
        self.max_buckets = max;
        self
    }

    fn capacity(&self) -> f64 {
        f64::from(self.per_minute)
    }

    /// Tokens per second.
    fn rate(&self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }

    /// Takes one token of `key`'s bucket at `now`, or says how long until there is one.
    fn take(&self, key: BucketKey, now: Instant) -> Result<(), RetryAfter> {
        let capacity = self.capacity();
        let rate = self.rate();
        let refill = |bucket: &Bucket| {
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            (bucket.tokens + elapsed * rate).min(capacity)
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|err| err.into_inner());
        if !buckets.map.contains_key(&key) {
            if buckets.map.len() >= buckets.sweep_at.max(1024).min(self.max_buckets) {
                // A full bucket is the same as none.
                buckets.map.retain(|_, bucket| refill(bucket) < capacity);
                if buckets.map.len() >= self.max_buckets {
                    // Still full of clients that are spending: forget an arbitrary eighth.
                    let drop = (self.max_buckets / 8).max(1);
                    let victims: Vec<BucketKey> = buckets.map.keys().take(drop).copied().collect();
                    for victim in victims {
                        buckets.map.remove(&victim);
                    }
                }
                buckets.sweep_at = buckets.map.len().saturating_mul(2);
            }
            buckets.map.insert(
                key,
                Bucket {
                    tokens: capacity,
                    updated: now,
                },
            );
        }
        let bucket = buckets.map.get_mut(&key).expect("inserted above");
        let tokens = refill(bucket);
        bucket.updated = now;
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            Ok(())
        } else {
            bucket.tokens = tokens;
            let wait = ((1.0 - tokens) / rate).ceil().max(1.0);
            Err(RetryAfter(wait as u64))
        }
    }

    /// Takes one request of `key`'s budget in the database. A client the database refused is
    /// then refused here, from memory, until its wait is over: a flood from one address costs
    /// the database one refusal per wait, not one per request. If the database fails or does
    /// not answer within [`SHARED_TIMEOUT`], this server's own bucket decides (a limit per
    /// server rather than none), and a WARN says so once until the database works again.
    async fn take_shared(&self, buckets: &SharedBuckets, key: BucketKey) -> Result<(), RetryAfter> {
        let now = Instant::now();
        if let Some(wait) = self.refusals.waiting(key, now) {
            return Err(RetryAfter::rounding_up(wait));
        }
        let (client, class) = key;
        let client = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let taken = buckets.take(&client, class.name(), self.per_minute, now_micros());
        match tokio::time::timeout(SHARED_TIMEOUT, taken).await {
            Ok(Ok(Taken::Allowed)) => {
                self.shared_answers();
                Ok(())
            }
            Ok(Ok(Taken::Refused { wait_micros })) => {
                self.shared_answers();
                let wait = Duration::from_micros(u64::try_from(wait_micros).unwrap_or(0));
                self.refusals.remember(key, now + wait, self.max_buckets);
                Err(RetryAfter::rounding_up(wait))
            }
            Ok(Err(err)) => {
                self.shared_fails(&err.to_string());
                self.take(key, now)
            }
            Err(_) => {
                self.shared_fails("no answer in time");
                self.take(key, now)
            }
        }
    }

    fn shared_answers(&self) {
        if self.shared_failing.swap(false, Ordering::Relaxed) {
            tracing::info!("the shared rate limit's database answers again");
        }
    }

    fn shared_fails(&self, problem: &str) {
        if !self.shared_failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                problem,
                "the shared rate limit's database failed; this server limits clients on its \
                 own until it answers again"
            );
        }
    }

    /// The client of a request: the last `X-Forwarded-For` address if trusted, else the peer.
    fn client(&self, request: &Request) -> Option<IpAddr> {
        if self.trust_forwarded_for
            && let Some(ip) = request
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .next_back()
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.rsplit(',').next())
                .and_then(|last| last.trim().parse::<IpAddr>().ok())
        {
            return Some(client_ip(ip));
        }
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| client_ip(addr.ip()));
        if peer.is_none() && !self.warned_without_peer.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "requests without a peer address share one rate-limit bucket: serve the router \
                 with into_make_service_with_connect_info::<SocketAddr>()"
            );
        }
        peer
    }

    /// Number of clients remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.lock().unwrap().map.len()
    }
}

/// Refuses a client's login or verification request with 429 when it has spent its budget
/// (see [`RateLimiter`]); other requests pass untouched.
pub(crate) async fn rate_limit(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    if limiter.per_minute == 0 {
        return next.run(request).await;
    }
    let Some(class) = limiter.paths.class(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let client = limiter.client(&request);
    let verdict = match &limiter.shared {
        Some(buckets) => limiter.take_shared(buckets, (client, class)).await,
        None => limiter.take((client, class), Instant::now()),
    };
    match verdict {
        Ok(()) => next.run(request).await,
        Err(RetryAfter(seconds)) => {
            // The request log has the 429 already (at INFO); this says whose, for diagnosis.
            tracing::debug!(
                target: "otp_server::rate_limit",
                client = ?client,
                path = %request.uri().path(),
                retry_after = seconds,
                "rate limited"
            );
            too_many_requests(super::wants_json(request.headers()), seconds)
        }
    }
}

/// The 429 of a client over its budget: JSON for JSON clients, a small page otherwise.
fn too_many_requests(json: bool, seconds: u64) -> Response {
    let message = format!(
        "Too many attempts from your address. Please wait {seconds} second{} and try again.",
        if seconds == 1 { "" } else { "s" }
    );
    let mut response = if json {
        (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(serde_json::json!({
                "error": "rate_limited",
                "message": message,
                "retry_after": seconds,
            })),
        )
            .into_response()
    } else {
        let page = format!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>Too many requests</title>\n\
             <link rel=\"stylesheet\" href=\"{css}\">\n</head>\n<body>\n<main>\n\
             <h1>Too many requests</h1>\n<p role=\"alert\">{message}</p>\n\
             <p><a href=\"{home}\">Back to the home page</a></p>\n</main>\n</body>\n</html>\n",
            css = super::URLS.app_css,
            home = super::URLS.home,
        );
        (StatusCode::TOO_MANY_REQUESTS, Html(page)).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limiter(per_minute: u32) -> RateLimiter {
        RateLimiter::new(per_minute, false, LimitedPaths::for_mount("/account"))
    }

    fn key(last: u8, class: Class) -> BucketKey {
        (Some(IpAddr::from([192, 0, 2, last])), class)
    }

    #[test]
    fn a_client_spends_its_burst_then_one_request_per_interval() {
        let limiter = limiter(6); // one token every 10 s
        let start = Instant::now();
        let alice = key(1, Class::Login);
        for attempt in 0..6 {
            assert_eq!(limiter.take(alice, start), Ok(()), "attempt {attempt}");
        }
        assert_eq!(limiter.take(alice, start), Err(RetryAfter(10)));
        // Refused attempts do not dig the hole deeper.
        assert_eq!(
            limiter.take(alice, start + Duration::from_secs(1)),
            Err(RetryAfter(9))
        );
        assert_eq!(
            limiter.take(alice, start + Duration::from_millis(9_500)),
            Err(RetryAfter(1))
        );
        assert_eq!(limiter.take(alice, start + Duration::from_secs(10)), Ok(()));
        assert_eq!(
            limiter.take(alice, start + Duration::from_secs(10)),
            Err(RetryAfter(10))
        );
        // A minute later the whole burst is back, and no more.
        let later = start + Duration::from_secs(600);
        for _ in 0..6 {
            assert_eq!(limiter.take(alice, later), Ok(()));
        }
        assert!(limiter.take(alice, later).is_err());
    }

    #[test]
    fn clients_and_classes_have_buckets_of_their_own() {
        let limiter = limiter(1);
        let now = Instant::now();
        assert_eq!(limiter.take(key(1, Class::Login), now), Ok(()));
        assert_eq!(limiter.take(key(1, Class::Login), now), Err(RetryAfter(60)));
        assert_eq!(limiter.take(key(1, Class::Verify), now), Ok(()));
        assert_eq!(limiter.take(key(2, Class::Login), now), Ok(()));
        assert_eq!(limiter.take((None, Class::Login), now), Ok(()));
        assert!(limiter.take((None, Class::Login), now).is_err());
    }

    #[test]
    fn ipv6_clients_are_their_64_network_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_ip(a), client_ip(b));
        assert_ne!(client_ip(a), client_ip(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_ip(mapped), IpAddr::from([192, 0, 2, 7]));
    }

    #[test]
    fn memory_is_bounded() {
        let limiter = limiter(60).with_max_buckets(2048);
        let now = Instant::now();
        // Clients that made one request: after a second their buckets have room for 0.99
        // more, so they are not yet full; a minute later they are, and are swept.
        for n in 0..2048u32 {
            let ip = IpAddr::from(n.wrapping_add(0x0a00_0000).to_be_bytes());
            assert_eq!(limiter.take((Some(ip), Class::Login), now), Ok(()));
        }
        assert!(limiter.len() <= 2048);
        let later = now + Duration::from_secs(61);
        let newcomer = IpAddr::from([198, 51, 100, 1]);
        assert_eq!(limiter.take((Some(newcomer), Class::Login), later), Ok(()));
        assert_eq!(limiter.len(), 1, "refilled buckets are swept");
        // Clients still spending are kept until the cap, then an eighth is dropped.
        for n in 0..5000u32 {
            let ip = IpAddr::from(n.wrapping_add(0x0b00_0000).to_be_bytes());
            let _ = limiter.take((Some(ip), Class::Verify), later);
            assert!(limiter.len() <= 2048, "{} after {n}", limiter.len());
        }
    }

    #[test]
    fn only_posts_to_the_login_verification_and_device_paths_are_limited() {
        let paths = LimitedPaths::for_mount("/account/");
        let post = http::Method::POST;
        for (path, class) in [
            ("/api/v1/session", Class::Login),
            ("/account/login", Class::Login),
            ("/signup", Class::Login),
            ("/account/password", Class::Login),
            ("/api/v1/otp/verify", Class::Verify),
            ("/api/v1/otp/challenge", Class::Verify),
            ("/account/login/otp", Class::Verify),
            ("/account/verify", Class::Verify),
        ] {
            assert_eq!(paths.class(&post, path), Some(class), "{path}");
        }
        for (method, path) in [
            (post.clone(), "/account/devices/totp"),
            (post.clone(), "/account/devices/email/3/resend"),
            (post.clone(), "/api/v1/devices/email"),
            (post.clone(), "/api/v1/devices/email/3/challenge"),
            (http::Method::DELETE, "/api/v1/devices/totp/1"),
            (http::Method::PATCH, "/api/v1/devices/totp/1"),
        ] {
            assert_eq!(paths.class(&method, path), Some(Class::Devices), "{path}");
        }
        assert_eq!(
            paths.class(&http::Method::GET, "/account/devices/totp/1/qr.svg"),
            None
        );
        assert_eq!(paths.class(&http::Method::GET, "/api/v1/devices"), None);
        assert_eq!(paths.class(&post, "/api/v1/devicesx"), None);
        assert_eq!(paths.class(&http::Method::GET, "/account/login"), None);
        assert_eq!(paths.class(&post, "/account/logout"), None);
        assert_eq!(paths.class(&post, "/api/v1/session/"), None);
        assert_eq!(paths.class(&http::Method::DELETE, "/api/v1/session"), None);
    }

    #[test]
    fn forwarded_for_counts_only_when_trusted() {
        let request = |forwarded: &str| {
            let mut request = Request::new(Body::empty());
            request
                .headers_mut()
                .insert("x-forwarded-for", HeaderValue::from_str(forwarded).unwrap());
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 4000))));
            request
        };
        let paths = LimitedPaths::for_mount("/account");
        let untrusted = RateLimiter::new(10, false, paths.clone());
        let trusted = RateLimiter::new(10, true, paths);
        let loopback = Some(IpAddr::from([127, 0, 0, 1]));
        let forged = request("203.0.113.9, 198.51.100.4");
        assert_eq!(untrusted.client(&forged), loopback);
        // The proxy appends the address it saw: the last one is the one to believe.
        assert_eq!(
            trusted.client(&forged),
            Some(IpAddr::from([198, 51, 100, 4]))
        );
        assert_eq!(trusted.client(&request("not an address")), loopback);
    }

    #[test]
    fn the_refusal_says_how_long_to_wait() {
        let response = too_many_requests(true, 7);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        let page = too_many_requests(false, 1);
        assert!(
            page.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }

    /// A limiter of two a minute with its budgets in `db`'s database (migrated or not).
    async fn shared_limiter(db: &otp_test_support::TestDb, migrate: bool) -> RateLimiter {
        let store = otp_core::Store::connect(&db.url).await.unwrap();
        let buckets = SharedBuckets::new(store);
        if migrate {
            buckets.migrate().await.unwrap();
        }
        limiter(2).shared(buckets)
    }

    #[tokio::test]
    async fn a_client_refused_by_the_database_is_refused_from_memory_until_its_wait_ends() {
        let db = otp_test_support::TestDb::sqlite();
        let limiter = shared_limiter(&db, true).await;
        let alice = key(1, Class::Verify);
        let buckets = limiter.shared.clone().unwrap();
        assert_eq!(limiter.take_shared(&buckets, alice).await, Ok(()));
        assert_eq!(limiter.take_shared(&buckets, alice).await, Ok(()));
        let Err(RetryAfter(wait)) = limiter.take_shared(&buckets, alice).await else {
            panic!("the third of two a minute");
        };
        assert!((29..=30).contains(&wait), "{wait}");
        // Emptied in the database, the budget would allow her again: the memory of the
        // refusal still refuses, without asking.
        let store = otp_core::Store::connect(&db.url).await.unwrap();
        let otp_core::Pool::Sqlite(pool) = store.pool() else {
            unreachable!("SQLite")
        };
        sqlx::query("DELETE FROM app_rate_limits")
            .execute(pool)
            .await
            .unwrap();
        assert!(limiter.take_shared(&buckets, alice).await.is_err());
        // Another client asks the database.
        assert_eq!(
            limiter.take_shared(&buckets, key(2, Class::Verify)).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn a_failing_database_leaves_the_limit_to_the_server() {
        let db = otp_test_support::TestDb::sqlite();
        // No table: every statement fails.
        let limiter = shared_limiter(&db, false).await;
        let alice = key(1, Class::Login);
        let buckets = limiter.shared.clone().unwrap();
        assert_eq!(limiter.take_shared(&buckets, alice).await, Ok(()));
        assert_eq!(limiter.take_shared(&buckets, alice).await, Ok(()));
        assert_eq!(
            limiter.take_shared(&buckets, alice).await,
            Err(RetryAfter(30)),
            "the server's own bucket of two a minute"
        );
        assert!(limiter.shared_failing.load(Ordering::Relaxed));
        // The database works again.
        buckets.migrate().await.unwrap();
        assert_eq!(limiter.take_shared(&buckets, alice).await, Ok(()));
        assert!(!limiter.shared_failing.load(Ordering::Relaxed));
    }
}
