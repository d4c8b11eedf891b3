//! A tiny HTTP/1.1 client over `std::net::TcpStream` with one cookie (the session), for tests
//! against a real `otp serve`: every request opens a connection, sends `Connection: close`, and
//! reads the whole response.

use std::io::{Read, Write};
use std::net::TcpStream;
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
        }
    }

    /// The same session, on another server (a load balancer's view).
    pub(crate) fn with_cookie_of(url: &str, other: &Client) -> Self {
        Self {
            cookie: other.cookie.clone(),
            ..Self::new(url)
        }
    }

    pub(crate) fn get(&mut self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    /// A form post, with the `Origin` a browser would send.
    pub(crate) fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        let body = fields
            .iter()
            .map(|(key, value)| format!("{}={}", form_encode(key), form_encode(value)))
            .collect::<Vec<_>>()
            .join("&");
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
        let body = value.to_string();
        self.request(
            method,
            path,
            &[
                ("content-type", "application/json"),
                ("accept", "application/json"),
            ],
            body.as_bytes(),
        )
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
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n",
            self.authority
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(cookie) = &self.cookie {
            head.push_str(&format!("cookie: {SESSION_COOKIE}={cookie}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let response = self.raw(&request);
        self.take_cookie(&response);
        response
    }

    /// Sends `bytes` as they are and reads the response.
    pub(crate) fn raw(&self, bytes: &[u8]) -> Response {
        let mut stream = TcpStream::connect(&self.authority)
            .unwrap_or_else(|err| panic!("connect to {}: {err}", self.authority));
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        // The server may answer (413) and close before the whole body is sent.
        let _ = stream.write_all(bytes);
        let mut raw = Vec::new();
        if let Err(err) = stream.read_to_end(&mut raw)
            && raw.is_empty()
        {
            panic!("read a response from {}: {err}", self.authority);
        }
        parse_response(&raw)
    }

    fn take_cookie(&mut self, response: &Response) {
        for (name, value) in &response.headers {
            if name != "set-cookie" {
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

/// `application/x-www-form-urlencoded` encoding of one name or value.
fn form_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
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
