//! Every built-in kind against the conformance suite of `otp_test_support::conformance`, on
//! SQLite and PostgreSQL: ownership, confirmation, exactly once, throttling and the failure
//! budget, key rotation.

use std::sync::{Arc, Mutex};

use otp_core::{
    BoxFuture, Device, HotpOptions, Mailer, ManualClock, Otp, OtpBuilder, OutgoingEmail,
    TotpOptions,
};
use otp_oath::{Hotp, HotpParams, Secret, Totp, TotpParams};
use otp_test_support::conformance::KindFixture;
use otp_test_support::kind_conformance;

/// The RFC 6238 key: codes are known in advance.
const KEY: &str = "3132333435363738393031323334353637383930";

fn secret() -> Secret {
    Secret::from_hex(KEY).unwrap()
}

struct TotpFixture;

impl KindFixture for TotpFixture {
    const KIND: &'static str = "totp";

    fn new() -> Self {
        Self
    }

    async fn create(&self, otp: &Otp, user: &str) -> Device {
        otp.create_totp_device(user, "phone", Some(secret()), TotpOptions::default(), true)
            .await
            .unwrap()
    }

    async fn valid_token(&self, _: &Otp, _: &Device, clock: &ManualClock) -> String {
        use otp_core::Clock;
        Totp::new(&secret(), TotpParams::default())
            .unwrap()
            .code_at(clock.now().unix_secs())
            .unwrap()
            .to_string()
    }

    fn wrong_token(&self) -> String {
        // Not the code of any step near the frozen time (checked by the RFC's vectors).
        "000000".into()
    }
}

struct HotpFixture;

impl KindFixture for HotpFixture {
    const KIND: &'static str = "hotp";

    fn new() -> Self {
        Self
    }

    async fn create(&self, otp: &Otp, user: &str) -> Device {
        otp.create_hotp_device(user, "token", Some(secret()), HotpOptions::default(), true)
            .await
            .unwrap()
    }

    async fn valid_token(&self, otp: &Otp, device: &Device, _: &ManualClock) -> String {
        let stored = otp.device(&device.id).await.unwrap().unwrap();
        let counter = stored.state()["counter"].as_u64().unwrap();
        Hotp::new(&secret(), HotpParams::default())
            .code(counter)
            .to_string()
    }

    fn wrong_token(&self) -> String {
        // RFC 4226's codes of counters 0 to 9 are all other than this.
        "000000".into()
    }
}

/// Backup codes: the codes made with the device, each used once.
struct StaticFixture(Mutex<Vec<String>>);

impl KindFixture for StaticFixture {
    const KIND: &'static str = "static";

    fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    async fn create(&self, otp: &Otp, user: &str) -> Device {
        let (device, codes) = otp
            .create_backup_codes(user, "codes", Some(10))
            .await
            .unwrap();
        *self.0.lock().unwrap() = codes.iter().map(ToString::to_string).collect();
        device
    }

    async fn valid_token(&self, _: &Otp, _: &Device, _: &ManualClock) -> String {
        self.0.lock().unwrap().pop().expect("a code left")
    }

    fn wrong_token(&self) -> String {
        "aaaaa-aaaaa".into()
    }

    fn seals_secrets(&self) -> bool {
        false
    }
}

/// A mailer that keeps the codes it is asked to send.
#[derive(Debug, Default)]
struct Outbox(Mutex<Vec<String>>);

impl Mailer for Outbox {
    fn send<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<(), otp_core::Error>> {
        let code = email
            .text_body
            .split(|c: char| !c.is_ascii_digit())
            .find(|word| word.len() == 6)
            .expect("a 6-digit code in the email")
            .to_owned();
        self.0.lock().unwrap().push(code);
        Box::pin(async { Ok(()) })
    }
}

struct EmailFixture(Arc<Outbox>);

impl KindFixture for EmailFixture {
    const KIND: &'static str = "email";

    fn new() -> Self {
        Self(Arc::new(Outbox::default()))
    }

    fn configure(&self, builder: OtpBuilder) -> OtpBuilder {
        let mut settings = otp_core::Settings::default();
        settings.failure_budget.limit = 3;
        settings.email.cooldown = std::time::Duration::ZERO;
        builder.with_settings(settings).with_mailer(self.0.clone())
    }

    async fn create(&self, otp: &Otp, user: &str) -> Device {
        otp.create_email_device(user, "mail", &format!("{user}@example.com"), true)
            .await
            .unwrap()
    }

    async fn valid_token(&self, otp: &Otp, device: &Device, _: &ManualClock) -> String {
        match otp
            .generate_challenge(&device.user_key, &device.id)
            .await
            .unwrap()
        {
            otp_core::ChallengeOutcome::Sent { .. } => {
                self.0.0.lock().unwrap().pop().expect("a code sent")
            }
            // A locked account gets no code: the lock refuses any token before reading it.
            otp_core::ChallengeOutcome::NotAllowed {
                reason: otp_core::NotAllowedReason::AccountLocked,
            } => self.wrong_token(),
            other => panic!("no code sent: {other:?}"),
        }
    }

    fn wrong_token(&self) -> String {
        "000000".into()
    }

    fn seals_secrets(&self) -> bool {
        false
    }
}

kind_conformance!(totp, TotpFixture);
kind_conformance!(hotp, HotpFixture);
kind_conformance!(backup_codes, StaticFixture);
kind_conformance!(email, EmailFixture);
