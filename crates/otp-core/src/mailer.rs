//! Sending email: the [`Mailer`] abstraction, its SMTP implementation, and a development mailer
//! that writes messages to the log.

use std::fmt;

use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use zeroize::Zeroizing;

use crate::{BoxFuture, Error};

/// A message to send. `Debug` leaves the bodies out: they hold the code.
pub struct OutgoingEmail {
    /// The From address.
    pub from: String,
    /// The recipient.
    pub to: String,
    /// The subject.
    pub subject: String,
    /// The plain-text body.
    pub text_body: Zeroizing<String>,
    /// An HTML alternative.
    pub html_body: Option<Zeroizing<String>>,
}

impl fmt::Debug for OutgoingEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingEmail")
            .field("from", &self.from)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

/// Something that sends email.
pub trait Mailer: Send + Sync + fmt::Debug + 'static {
    /// Hands `email` over for delivery.
    ///
    /// # Errors
    ///
    /// [`Error::Delivery`] with a description that carries no part of the message.
    fn send<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<(), Error>>;
}

/// Sends through an SMTP server, configured by a URL such as `smtp://127.0.0.1:2525`
/// (`OTP_SMTP_URL`): `smtp://[user:password@]host[:port]` (port 25 by default). TLS is not
/// built in: point it at a local relay (the usual set-up), never at a server across a network.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for the server at `url`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSmtpUrl`] if the URL is not `smtp://host[:port]`.
    pub fn from_url(url: &str) -> Result<Self, Error> {
        const SHAPE: &str = "expected smtp://[USER:PASSWORD@]HOST[:PORT]";
        let rest = url
            .strip_prefix("smtp://")
            .ok_or(Error::InvalidSmtpUrl(SHAPE))?;
        let rest = rest.trim_end_matches('/');
        let (credentials, server) = match rest.rsplit_once('@') {
            Some((credentials, server)) => (Some(credentials), server),
            None => (None, rest),
        };
        let (host, port) = match server.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>().map_err(|_| {
                    Error::InvalidSmtpUrl("the port must be a number from 1 to 65535")
                })?,
            ),
            None => (server, 25),
        };
        if host.is_empty() || host.contains(['/', '?', '#']) || port == 0 {
            return Err(Error::InvalidSmtpUrl(SHAPE));
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(std::time::Duration::from_secs(10)));
        if let Some(credentials) = credentials {
            let (user, password) = credentials
                .split_once(':')
                .ok_or(Error::InvalidSmtpUrl(SHAPE))?;
            let decode = |text: &str| {
                percent_encoding::percent_decode_str(text)
                    .decode_utf8()
                    .map(|decoded| decoded.into_owned())
                    .map_err(|_| {
                        Error::InvalidSmtpUrl(
                            "the user or password is not valid percent-encoded UTF-8",
                        )
                    })
            };
            builder = builder.credentials(Credentials::new(decode(user)?, decode(password)?));
        }
        Ok(Self {
            transport: builder.build(),
            server: format!("{host}:{port}"),
        })
    }
}

fn mailbox(address: &str, role: &'static str) -> Result<Mailbox, Error> {
    address
        .parse()
        .map_err(|_| Error::Delivery(format!("the {role} address is not valid")))
}

impl Mailer for SmtpMailer {
    fn send<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let builder = Message::builder()
                .from(mailbox(&email.from, "sender")?)
                .to(mailbox(&email.to, "recipient")?)
                .subject(email.subject.clone());
            let text = SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(email.text_body.to_string());
            let message = match &email.html_body {
                None => builder.singlepart(text),
                Some(html) => builder.multipart(
                    MultiPart::alternative().singlepart(text).singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html.to_string()),
                    ),
                ),
            }
            .map_err(|_| Error::Delivery("the message could not be built".into()))?;
            self.transport.send(message).await.map_err(|err| {
                // lettre's errors describe the transport, never the message.
                Error::Delivery(format!("SMTP server {}: {err}", self.server))
            })?;
            Ok(())
        })
    }
}

/// For development only: writes each message, code included, to the log at WARN level, clearly
/// labelled, instead of sending it.
#[derive(Debug, Clone, Default)]
pub struct DevelopmentLogMailer;

impl Mailer for DevelopmentLogMailer {
    fn send<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            tracing::warn!(
                to = %email.to,
                subject = %email.subject,
                body = %email.text_body.as_str(),
                "DEVELOPMENT MAILER: email not sent, shown here instead (set OTP_SMTP_URL to send mail)"
            );
            Ok(())
        })
    }
}
