//! A tiny HTTP/1.1 client over `std::net::TcpStream` with one cookie (the session), for tests
//! against a real `otp serve`: every request opens a connection, sends `Connection: close`, and
//! reads the whole response.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// The session cookie's name (`otp_axum::SESSION_COOKIE`).
pub(crate) const SESSION_COOKIE: &str = "otp_session";

/// A response, read whole.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub(crate) status: u16,
    /// Header names in lower case, in the order received.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Response {
    /// The first value of a header.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON; panics naming the status and body if it is not.
    #[track_caller]
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| {
            panic!(
                "the body of a {} response is not JSON ({err}): {:?}",
                self.status, self.body
            )
        })
    }

    /// The value of the hidden CSRF field of the page's first form.
    #[track_caller]
    pub(crate) fn csrf_token(&self) -> String {
        let marker = "name=\"csrf_token\" value=\"";
        let start =
            self.body.find(marker).unwrap_or_else(|| {
                panic!("no CSRF field in a {} page: {}", self.status, self.body)
            }) + marker.len();
        let end = start + self.body[start..].find('"').expect("the value ends");
        self.body[start..end].to_owned()
    }

    /// Asserts the status, showing the body if it differs.
    #[track_caller]
    pub(crate) fn assert_status(&self, status: u16, what: &str) -> &Self {
        assert_eq!(self.status, status, "{what}: {}", self.body);
        self
    }
}

/// A client of one server that keeps the session cookie.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    /// `127.0.0.1:PORT`.
    authority: String,
    /// The session cookie's value.
    pub(crate) cookie: Option<String>,
    /// The value of the cookie that signs the forms shown before a login (`otp_csrf`).
    pub(crate) csrf_cookie: Option<String>,
    /// The local address to connect from (another loopback address, `127.0.0.2`, is another
    /// client to the server); `None` for the system's choice.
    pub(crate) local_ip: Option<IpAddr>,
}

impl Client {
    /// A client of `url` (`http://IP:PORT`), without a cookie.
    pub(crate) fn new(url: &str) -> Self {
        let authority = url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("not an http:// URL: {url}"))
            .trim_end_matches('/')
            .to_owned();
        Self {
            authority,
            cookie: None,
            csrf_cookie: None,
            local_ip: None,
        }
    }

    /// The same client, connecting from `ip` (a loopback address such as `127.0.0.2`).
    pub(crate) fn with_local_ip(mut self, ip: IpAddr) -> Self {
        self.local_ip = Some(ip);
        self
    }

    /// The same session, on another server (a load balancer's view).
    pub(crate) fn with_cookie_of(url: &str, other: &Client) -> Self {
        Self {
            cookie: other.cookie.clone(),
            csrf_cookie: other.csrf_cookie.clone(),
            ..Self::new(url)
        }
    }

    pub(crate) fn get(&mut self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    /// A form post, with the `Origin` a browser would send.
    pub(crate) fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        let body = super::form_body(fields);
        let origin = format!("http://{}", self.authority);
        self.request(
            "POST",
            path,
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", &origin),
            ],
            body.as_bytes(),
        )
    }

    /// A JSON request.
    pub(crate) fn json(&mut self, method: &str, path: &str, value: &Value) -> Response {
        self.try_json(method, path, value)
            .unwrap_or_else(|err| panic!("{method} {path} on {}: {err}", self.authority))
    }

    /// Sends one request with `headers` and `body` (with its `Content-Length`) and the cookie,
    /// and takes the session cookie of the response.
    pub(crate) fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|err| panic!("{method} {path} on {}: {err}", self.authority))
    }

    /// A JSON request that may fail (a server that is gone, or killed halfway through).
    pub(crate) fn try_json(
        &mut self,
        method: &str,
        path: &str,
        value: &Value,
    ) -> io::Result<Response> {
        let body = value.to_string();
        self.try_request(
            method,
            path,
            &[
                ("content-type", "application/json"),
                ("accept", "application/json"),
            ],
            body.as_bytes(),
        )
    }

    /// As [`Client::request`], but an error instead of a panic if no whole response comes:
    /// the connection is refused or reset, or the response ends early.
    pub(crate) fn try_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n",
            self.authority
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let mut cookies: Vec<String> = self
            .cookie
            .iter()
            .map(|cookie| format!("{SESSION_COOKIE}={cookie}"))
            .collect();
        cookies.extend(
            self.csrf_cookie
                .iter()
                .map(|nonce| format!("otp_csrf={nonce}")),
        );
        if !cookies.is_empty() {
            head.push_str(&format!("cookie: {}\r\n", cookies.join("; ")));
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let response = self.try_raw(&request)?;
        self.take_cookie(&response);
        Ok(response)
    }

    /// Sends `bytes` as they are and reads the response.
    pub(crate) fn raw(&self, bytes: &[u8]) -> Response {
        self.try_raw(bytes)
            .unwrap_or_else(|err| panic!("a response from {}: {err}", self.authority))
    }

    /// As [`Client::raw`], but an error if no whole response comes.
    pub(crate) fn try_raw(&self, bytes: &[u8]) -> io::Result<Response> {
        let mut stream = self.connect()?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        // The server may answer (413) and close before the whole body is sent.
        let _ = stream.write_all(bytes);
        let mut raw = Vec::new();
        if let Err(err) = stream.read_to_end(&mut raw)
            && raw.is_empty()
        {
            return Err(err);
        }
        try_parse_response(&raw)
    }

    fn connect(&self) -> io::Result<TcpStream> {
        let Some(local) = self.local_ip else {
            return TcpStream::connect(&self.authority);
        };
        // std cannot bind before connecting; tokio's socket can.
        let remote: SocketAddr = self
            .authority
            .parse()
            .map_err(|_| io::Error::other(format!("not IP:PORT: {}", self.authority)))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let stream = runtime.block_on(async {
            let socket = match remote {
                SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
            };
            socket.bind(SocketAddr::new(local, 0))?;
            socket.connect(remote).await?.into_std()
        })?;
        stream.set_nonblocking(false)?;
        Ok(stream)
    }

    fn take_cookie(&mut self, response: &Response) {
        for (name, value) in &response.headers {
            if name != "set-cookie" {
                continue;
            }
            if let Some(nonce) = value.strip_prefix("otp_csrf=") {
                self.csrf_cookie = nonce.split(';').next().map(str::to_owned);
                continue;
            }
            let Some(rest) = value.strip_prefix(&format!("{SESSION_COOKIE}=")) else {
                continue;
            };
            let cookie = rest.split(';').next().unwrap_or_default();
            let removed = value.to_ascii_lowercase().contains("max-age=0") || cookie.is_empty();
            self.cookie = (!removed).then(|| cookie.to_owned());
        }
    }
}

/// A request of `head` (the request line and headers, with the blank line after them) and a
/// chunked body: `count` chunks of `chunk`.
pub(crate) fn chunked(head: &str, count: usize, chunk: &[u8]) -> Vec<u8> {
    let mut raw = head.as_bytes().to_vec();
    for _ in 0..count {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    raw
}

/// A whole response, or an error naming what is missing: the end of the headers, a status,
/// or body bytes that `Content-Length` (or the last chunk) promised.
fn try_parse_response(raw: &[u8]) -> io::Result<Response> {
    let incomplete = |what: &str| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{what} in {:?}", String::from_utf8_lossy(raw)),
        )
    };
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| incomplete("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status_ok = head
        .split("\r\n")
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .is_some_and(|code| code.parse::<u16>().is_ok());
    if !status_ok {
        return Err(incomplete("no status"));
    }
    let response = parse_response(raw);
    let body_len = raw.len() - split - 4;
    if let Some(length) = response
        .header("content-length")
        .and_then(|value| value.parse::<usize>().ok())
        && body_len < length
    {
        return Err(incomplete("a body shorter than its Content-Length"));
    }
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|value| value.contains("chunked"));
    if chunked && !raw.ends_with(b"0\r\n\r\n") {
        return Err(incomplete("no last chunk"));
    }
    Ok(response)
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = end + 2;
        let stop = (start + size).min(data.len());
        out.extend_from_slice(&data[start..stop]);
        data = data.get(stop + 2..).unwrap_or_default();
    }
}
