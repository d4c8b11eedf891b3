//! The built-in login pages on a local server, to look at them: `cargo run -p otp-axum
//! --example html_pages [PORT]`, then open `http://127.0.0.1:PORT/account/login`.
//!
//! Users (password `secret`): `alice` has an authenticator app (RFC 6238's key, base32
//! `GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ`), an email device and backup codes (printed at start);
//! `bob` has no device. Emailed codes are printed instead of sent. Sessions live in memory.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use otp_axum::{AccountsError, OtpLayer, OtpSession, OtpWeb, PasswordVerifier, SessionAccounts};
use otp_core::{BoxFuture, KeyRing, Mailer, Otp, OutgoingEmail, Store, TotpOptions};
use otp_oath::Secret;
use tower_sessions::{MemoryStore, SessionManagerLayer};

#[derive(Debug)]
struct DemoPasswords;

impl PasswordVerifier for DemoPasswords {
    fn verify_password<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, AccountsError>> {
        let ok = matches!(username, "alice" | "bob") && password == "secret";
        Box::pin(async move { Ok(ok.then(|| username.to_owned())) })
    }
}

/// Prints emails instead of sending them.
#[derive(Debug)]
struct PrintMailer;

impl Mailer for PrintMailer {
    fn send<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<(), otp_core::Error>> {
        println!("email to {}: {}", email.to, email.text_body.trim());
        Box::pin(async { Ok(()) })
    }
}

async fn home(otp: OtpSession) -> String {
    match (otp.user_key(), otp.device()) {
        (Some(user), Some(device)) => format!("{user}, verified by {}", device.id),
        (Some(user), None) => format!("{user}, not verified"),
        (None, _) => "anonymous: see /account/login".into(),
    }
}

fn app(web: OtpWeb) -> Router {
    Router::new()
        .route("/", get(home))
        .merge(otp_axum::html::routes(web.config()))
        .layer(OtpLayer::new(web))
        .layer(SessionManagerLayer::new(MemoryStore::default()).with_secure(false))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(0);
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("otp.db").display());
    let store = Store::connect(&url).await?;
    store.migrate().await?;
    let otp = Otp::builder(store, KeyRing::generate())
        .with_mailer(Arc::new(PrintMailer))
        .build()?;
    otp.create_totp_device(
        "alice",
        "Phone",
        Some(Secret::from_bytes(b"12345678901234567890")?),
        TotpOptions::default(),
        true,
    )
    .await?;
    otp.create_email_device("alice", "Work email", "alice@example.com", true)
        .await?;
    let (_, codes) = otp
        .create_backup_codes("alice", "Backup codes", None)
        .await?;
    let codes: Vec<String> = codes.iter().map(ToString::to_string).collect();
    println!("alice's backup codes: {}", codes.join(" "));

    let web = OtpWeb::new(otp, SessionAccounts::new(DemoPasswords))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "listening on http://{}/account/login",
        listener.local_addr()?
    );
    axum::serve(listener, app(web)).await?;
    Ok(())
}
