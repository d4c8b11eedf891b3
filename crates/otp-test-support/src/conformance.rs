//! The conformance suite of a device kind: the guarantees the framework gives for every kind,
//! checked on a real database for one kind, built in or written in another crate. A kind
//! provides a [`KindFixture`] (how to make a device and a token it accepts); then
//! [`kind_conformance!`](crate::kind_conformance) runs every scenario on SQLite and PostgreSQL:
//!
//! - only the owner's device verifies, and another user's is "not found";
//! - an unconfirmed device does not verify a login;
//! - a token is accepted once, however many verifications race for it;
//! - a wrong token throttles the device, and failures count against the account's budget,
//!   which only a recovery kind may pass;
//! - a kind that seals secrets still verifies after the keys were rotated and the old key
//!   dropped.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use otp_core::{
    Device, KeyRing, ManualClock, NotAllowedReason, Otp, OtpBuilder, Settings, Store, Timestamp,
    VerifyOutcome,
};

use crate::TestDb;

/// The time every scenario starts at: a whole 30-second step plus 5 seconds.
pub const T0: i64 = 1_700_000_010;

/// How a kind takes part in the suite. One fixture is made per scenario.
pub trait KindFixture: Send + Sync + Sized + 'static {
    /// The kind's name.
    const KIND: &'static str;

    /// A fixture for one scenario.
    fn new() -> Self;

    /// Registers what the kind needs on the framework (an outside kind itself, a mailer).
    fn configure(&self, builder: OtpBuilder) -> OtpBuilder {
        builder
    }

    /// Makes a confirmed device of the kind for `user`.
    fn create(&self, otp: &Otp, user: &str) -> impl Future<Output = Device> + Send;

    /// A token `device` accepts at the clock's time (sending a challenge first, if it must).
    fn valid_token(
        &self,
        otp: &Otp,
        device: &Device,
        clock: &ManualClock,
    ) -> impl Future<Output = String> + Send;

    /// A well-formed token the device refuses.
    fn wrong_token(&self) -> String;

    /// Whether the kind's secrets are sealed with the application keys (and so re-sealed by
    /// a key rotation); kinds that keep only hashes of codes are not.
    fn seals_secrets(&self) -> bool {
        true
    }
}

/// The framework of a scenario: on `db`, with `keys`, a frozen clock and `settings`.
pub async fn framework<F: KindFixture>(
    fixture: &F,
    db: &TestDb,
    keys: KeyRing,
    settings: Settings,
) -> (Otp, ManualClock) {
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let clock = ManualClock::new(Timestamp::from_unix_secs(T0));
    let builder = Otp::builder(store, keys)
        .with_settings(settings)
        .with_clock(Arc::new(clock.clone()));
    let otp = fixture.configure(builder).build().expect("build");
    (otp, clock)
}

fn settings() -> Settings {
    let mut settings = Settings::default();
    settings.failure_budget.limit = 3;
    settings
}

/// Only the owner's device verifies; another user's is not found and stays unchanged.
pub async fn only_the_owner_verifies<F: KindFixture>(db: TestDb) {
    let fixture = F::new();
    let (otp, clock) = framework(&fixture, &db, KeyRing::generate(), settings()).await;
    let device = fixture.create(&otp, "alice").await;
    assert_eq!(device.kind(), F::KIND);
    let token = fixture.valid_token(&otp, &device, &clock).await;
    let theft = otp.verify_token("mallory", &device.id, &token).await;
    assert!(
        matches!(theft, Err(otp_core::Error::DeviceNotFound)),
        "{theft:?}"
    );
    assert!(
        otp.device_of("mallory", &device.id)
            .await
            .unwrap()
            .is_none()
    );
    let outcome = otp.verify_token("alice", &device.id, &token).await.unwrap();
    assert!(outcome.is_verified(), "{outcome:?}");
    otp.store().close().await;
}

/// An unconfirmed device does not verify a login.
pub async fn unconfirmed_devices_do_not_verify<F: KindFixture>(db: TestDb) {
    let fixture = F::new();
    let (otp, clock) = framework(&fixture, &db, KeyRing::generate(), settings()).await;
    let device = fixture.create(&otp, "alice").await;
    let device = otp
        .update_device(&device.id, None, Some(false))
        .await
        .unwrap();
    let token = fixture.valid_token(&otp, &device, &clock).await;
    let outcome = otp.verify_token("alice", &device.id, &token).await.unwrap();
    assert!(
        matches!(
            outcome,
            VerifyOutcome::NotAllowed {
                reason: NotAllowedReason::Unconfirmed
            }
        ),
        "{outcome:?}"
    );
    otp.store().close().await;
}

/// A token is accepted once, however many verifications race for it.
pub async fn a_token_is_accepted_once<F: KindFixture>(db: TestDb) {
    let fixture = F::new();
    let (otp, clock) = framework(&fixture, &db, KeyRing::generate(), settings()).await;
    let device = fixture.create(&otp, "alice").await;
    let token = fixture.valid_token(&otp, &device, &clock).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let otp = otp.clone();
            let id = device.id.clone();
            let token = token.clone();
            tokio::spawn(async move { otp.verify_token("alice", &id, &token).await })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        if task.await.unwrap().unwrap().is_verified() {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1, "a {} token accepted {accepted} times", F::KIND);
    otp.store().close().await;
}

/// A wrong token throttles the device; failures count against the account's budget, which
/// only a recovery kind may pass (and then restores).
pub async fn failures_throttle_and_lock<F: KindFixture>(db: TestDb) {
    let fixture = F::new();
    let (otp, clock) = framework(&fixture, &db, KeyRing::generate(), settings()).await;
    let device = fixture.create(&otp, "alice").await;
    let wrong = otp
        .verify_token("alice", &device.id, &fixture.wrong_token())
        .await
        .unwrap();
    assert!(!wrong.is_verified(), "{wrong:?}");
    let token = fixture.valid_token(&otp, &device, &clock).await;
    let throttled = otp.verify_token("alice", &device.id, &token).await.unwrap();
    assert!(
        matches!(throttled, VerifyOutcome::Throttled { .. }),
        "{throttled:?}"
    );
    // Two more failures, each after the device's delay: the budget of 3 is spent.
    for _ in 0..2 {
        clock.advance(Duration::from_secs(3600));
        let wrong = otp
            .verify_token("alice", &device.id, &fixture.wrong_token())
            .await
            .unwrap();
        assert!(!wrong.is_verified(), "{wrong:?}");
    }
    clock.advance(Duration::from_secs(3600));
    let token = fixture.valid_token(&otp, &device, &clock).await;
    let outcome = otp.verify_token("alice", &device.id, &token).await.unwrap();
    let recovery = otp.kind(F::KIND).unwrap().is_recovery();
    if recovery {
        assert!(outcome.is_verified(), "a recovery kind passes: {outcome:?}");
    } else {
        assert!(
            matches!(
                outcome,
                VerifyOutcome::NotAllowed {
                    reason: NotAllowedReason::AccountLocked
                }
            ),
            "{outcome:?}"
        );
        otp.reset_account("alice").await.unwrap();
        let token = fixture.valid_token(&otp, &device, &clock).await;
        let outcome = otp.verify_token("alice", &device.id, &token).await.unwrap();
        assert!(outcome.is_verified(), "after a reset: {outcome:?}");
    }
    otp.store().close().await;
}

/// A kind that seals secrets still verifies after the keys were rotated and the old key
/// dropped.
pub async fn devices_survive_key_rotation<F: KindFixture>(db: TestDb) {
    let fixture = F::new();
    if !fixture.seals_secrets() {
        return;
    }
    let (old, new) = (random_key(), random_key());
    let ring = |lines: &[String]| KeyRing::parse(&lines.join("\n")).expect("a key ring");
    let (otp, _) = framework(&fixture, &db, ring(&[format!("1:{old}")]), settings()).await;
    let device = fixture.create(&otp, "alice").await;
    otp.store().close().await;

    let both = ring(&[format!("1:{old}"), format!("2:{new}")]);
    let (otp, _) = framework(&fixture, &db, both, settings()).await;
    let report = otp.rotate_keys(|_| {}).await.expect("rotation");
    assert!(report.resealed >= 1, "{report:?}");
    otp.store().close().await;

    let only_new = ring(&[format!("2:{new}")]);
    let (otp, clock) = framework(&fixture, &db, only_new, settings()).await;
    let device = otp.device(&device.id).await.unwrap().expect("the device");
    let token = fixture.valid_token(&otp, &device, &clock).await;
    let outcome = otp.verify_token("alice", &device.id, &token).await.unwrap();
    assert!(outcome.is_verified(), "after the rotation: {outcome:?}");
    otp.store().close().await;
}

/// A fresh application key, 256 bits in hex.
fn random_key() -> String {
    let hex = format!(
        "{}{}",
        otp_oath::Secret::generate().to_hex().as_str(),
        otp_oath::Secret::generate().to_hex().as_str()
    );
    hex[..64].to_owned()
}

/// Runs the conformance suite of a kind on SQLite and PostgreSQL: `kind_conformance!(module,
/// Fixture)` makes a module of tests named after the scenarios of [`conformance`](self).
#[macro_export]
macro_rules! kind_conformance {
    ($module:ident, $fixture:ty) => {
        mod $module {
            use super::*;

            async fn only_the_owner_verifies(db: $crate::TestDb) {
                $crate::conformance::only_the_owner_verifies::<$fixture>(db).await;
            }
            async fn unconfirmed_devices_do_not_verify(db: $crate::TestDb) {
                $crate::conformance::unconfirmed_devices_do_not_verify::<$fixture>(db).await;
            }
            async fn a_token_is_accepted_once(db: $crate::TestDb) {
                $crate::conformance::a_token_is_accepted_once::<$fixture>(db).await;
            }
            async fn failures_throttle_and_lock(db: $crate::TestDb) {
                $crate::conformance::failures_throttle_and_lock::<$fixture>(db).await;
            }
            async fn devices_survive_key_rotation(db: $crate::TestDb) {
                $crate::conformance::devices_survive_key_rotation::<$fixture>(db).await;
            }

            $crate::store_tests!(
                only_the_owner_verifies,
                unconfirmed_devices_do_not_verify,
                a_token_is_accepted_once,
                failures_throttle_and_lock,
                devices_survive_key_rotation,
            );
        }
    };
}
