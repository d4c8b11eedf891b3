//! A small SMTP server on 127.0.0.1 for tests: it speaks enough of RFC 5321 (EHLO/HELO, MAIL,
//! RCPT, DATA, RSET, NOOP, QUIT) for a real client to deliver to it, and keeps what it received.
//! `fail_next` makes it refuse the next message with a 554, to test failed deliveries.
//! [`BlockingSmtpServer`] is the same server on a runtime of its own, for a test that is not
//! async (whose code under test delivers from another process, say).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One received message.
#[derive(Debug, Clone)]
pub struct Received {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The DATA section, dot-unstuffed, with CRLF line ends.
    pub data: String,
}

impl Received {
    /// The value of a header (first occurrence), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let prefix = format!("{}:", name.to_ascii_lowercase());
        let mut lines = head.split("\r\n").peekable();
        while let Some(line) = lines.next() {
            if line.to_ascii_lowercase().starts_with(&prefix) {
                let mut value = line[prefix.len()..].trim().to_owned();
                while lines.peek().is_some_and(|l| l.starts_with([' ', '\t'])) {
                    value.push(' ');
                    value.push_str(lines.next().unwrap().trim());
                }
                return Some(value);
            }
        }
        None
    }

    /// The body, after the headers.
    pub fn body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body)
    }
}

/// The server; clones share what it received.
#[derive(Clone, Default)]
pub struct SmtpServer {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    fail_next: Arc<Mutex<bool>>,
}

impl SmtpServer {
    /// Starts the server on an ephemeral port of 127.0.0.1; it runs until the test's runtime
    /// ends.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind SMTP");
        let server = Self {
            port: listener.local_addr().unwrap().port(),
            ..Self::default()
        };
        let accepting = server.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let session = accepting.clone();
                tokio::spawn(async move {
                    let _ = session.serve(socket).await;
                });
            }
        });
        server
    }

    /// `smtp://127.0.0.1:PORT`, for `otp_core::SmtpMailer::from_url`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Makes the server refuse the next message with a 554.
    pub fn fail_next(&self) {
        *self.fail_next.lock().unwrap() = true;
    }

    async fn serve(&self, socket: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 localhost test SMTP\r\n").await?;
        let mut from = String::new();
        let mut to = Vec::new();
        while let Some(line) = lines.next_line().await? {
            let upper = line.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") {
                b"250-localhost\r\n250 8BITMIME\r\n"
            } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
                b"250 OK\r\n"
            } else if upper.starts_with("MAIL FROM:") {
                from = address(&line[10..]);
                to.clear();
                b"250 OK\r\n"
            } else if upper.starts_with("RCPT TO:") {
                to.push(address(&line[8..]));
                b"250 OK\r\n"
            } else if upper.starts_with("RSET") {
                from.clear();
                to.clear();
                b"250 OK\r\n"
            } else if upper.starts_with("DATA") {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                while let Some(line) = lines.next_line().await? {
                    if line == "." {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                    data.push_str("\r\n");
                }
                let fail = std::mem::take(&mut *self.fail_next.lock().unwrap());
                if fail {
                    b"554 Transaction failed (test)\r\n"
                } else {
                    self.received.lock().unwrap().push(Received {
                        from: from.clone(),
                        to: to.clone(),
                        data,
                    });
                    b"250 OK queued\r\n"
                }
            } else if upper.starts_with("QUIT") {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            } else {
                b"502 Command not implemented\r\n"
            };
            write.write_all(reply).await?;
        }
        Ok(())
    }
}

/// An [`SmtpServer`] on a runtime of its own, for a test that is not async; it stops when
/// dropped. It derefs to the server.
pub struct BlockingSmtpServer {
    server: SmtpServer,
    runtime: Option<tokio::runtime::Runtime>,
}

impl BlockingSmtpServer {
    /// Starts the server on an ephemeral port of 127.0.0.1, on a runtime of one worker thread.
    ///
    /// # Panics
    ///
    /// Inside an async context (there, use [`SmtpServer::start`]).
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_io()
            .build()
            .expect("SMTP runtime");
        let server = runtime.block_on(SmtpServer::start());
        Self {
            server,
            runtime: Some(runtime),
        }
    }
}

impl std::ops::Deref for BlockingSmtpServer {
    type Target = SmtpServer;

    fn deref(&self) -> &SmtpServer {
        &self.server
    }
}

impl Drop for BlockingSmtpServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn address(text: &str) -> String {
    let text = text.trim();
    let text = text.split_whitespace().next().unwrap_or(text);
    text.trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}
