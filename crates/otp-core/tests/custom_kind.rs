//! A device kind defined outside the crate: registered next to the built-in ones, stored in the
//! same table without a migration, and held to the same rules (ownership, confirmation,
//! throttling, exactly once, the failure budget).

mod common;

use otp_test_support::store_tests;

use std::sync::Arc;
use std::time::Duration;

use common::{Env, TestDb};
use otp_core::{
    DeviceKind, Error, KindContext, NotAllowedReason, Settings, ThrottlePolicy, TokenCheck,
    VerifyOutcome,
};
use serde_json::{Value, json};

/// A one-time word: the token is a word stored as a keyed hash, usable once.
#[derive(Debug)]
struct OneTimeWord;

impl DeviceKind for OneTimeWord {
    fn name(&self) -> &'static str {
        "word"
    }

    fn verbose_name(&self) -> &'static str {
        "one-time word"
    }

    fn throttle_policy(&self, settings: &Settings) -> ThrottlePolicy {
        settings.throttle(Duration::from_secs(2))
    }

    fn check_token(
        &self,
        ctx: &KindContext<'_>,
        state: &Value,
        token: &str,
    ) -> Result<TokenCheck, Error> {
        let Some(stored) = state["hash"].as_str() else {
            return Ok(TokenCheck::NoMatch { state: None });
        };
        if ctx.verify_code(stored, token.trim().as_bytes())? {
            Ok(TokenCheck::Matched {
                state: json!({ "hash": null }),
            })
        } else {
            Ok(TokenCheck::NoMatch { state: None })
        }
    }
}

async fn env(db: TestDb) -> Env {
    Env::with(db, Settings::default(), |b| {
        b.with_kind(Arc::new(OneTimeWord))
    })
    .await
}

async fn a_foreign_kind_lives_beside_the_built_in_ones(db: TestDb) {
    let env = env(db).await;
    let names: Vec<_> = env.otp.device_kinds().map(|k| k.name()).collect();
    assert_eq!(names, ["totp", "hotp", "email", "static", "word"]);
    let device = env
        .otp
        .create_device("alice", "word", "my word", true, |ctx| {
            Ok(json!({ "hash": ctx.hash_code(b"swordfish") }))
        })
        .await
        .unwrap();
    assert_eq!(device.id.kind(), "word");
    assert!(!device.state().to_string().contains("swordfish"));
    assert_eq!(
        env.otp
            .verify_token("bob", &device.id, "swordfish")
            .await
            .unwrap_err(),
        Error::DeviceNotFound
    );
    // The kind's own throttle factor (2 s) applies.
    assert!(matches!(
        env.otp
            .verify_token("alice", &device.id, "catfish")
            .await
            .unwrap(),
        VerifyOutcome::Invalid { failure_count: 1 }
    ));
    match env
        .otp
        .verify_token("alice", &device.id, "swordfish")
        .await
        .unwrap()
    {
        VerifyOutcome::Throttled { retry_after, .. } => {
            assert_eq!(retry_after, Duration::from_secs(2))
        }
        other => panic!("expected throttled, got {other:?}"),
    }
    env.advance_ms(2_000);
    assert!(
        env.otp
            .verify_token("alice", &device.id, "swordfish")
            .await
            .unwrap()
            .is_verified()
    );
    assert!(
        !env.otp
            .verify_token("alice", &device.id, "swordfish")
            .await
            .unwrap()
            .is_verified()
    );
    let listed = env.otp.devices_for_user("alice", Some(true)).await.unwrap();
    assert_eq!(listed.len(), 1);
}

async fn foreign_kinds_follow_confirmation_and_cannot_clash(db: TestDb) {
    let env = env(db).await;
    let device = env
        .otp
        .create_device("alice", "word", "pending", false, |ctx| {
            Ok(json!({ "hash": ctx.hash_code(b"w") }))
        })
        .await
        .unwrap();
    assert!(matches!(
        env.otp
            .verify_token("alice", &device.id, "w")
            .await
            .unwrap(),
        VerifyOutcome::NotAllowed {
            reason: NotAllowedReason::Unconfirmed
        }
    ));
    assert!(matches!(
        env.otp
            .create_device("alice", "nope", "x", true, |_| Ok(json!({})))
            .await,
        Err(Error::UnknownKind(_))
    ));
    let store = env.store.clone();
    let keys = otp_core::KeyRing::generate();
    let clash = otp_core::Otp::builder(store, keys)
        .with_kind(Arc::new(otp_core::TotpKind))
        .build();
    assert_eq!(clash.unwrap_err(), Error::DuplicateKind("totp"));
}

store_tests!(
    a_foreign_kind_lives_beside_the_built_in_ones,
    foreign_kinds_follow_confirmation_and_cannot_clash,
);
