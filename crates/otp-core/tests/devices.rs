//! django-otp's scenarios (reference §8) for every built-in kind, on SQLite and PostgreSQL, with
//! a frozen clock.

mod common;

use otp_test_support::store_tests;

use std::time::Duration;

use common::{Env, T0, TestDb};
use otp_core::{
    Device, DeviceId, Enrolment, Error, HotpOptions, NotAllowedReason, OtpEvent, Settings,
    TotpOptions, VerifyOutcome,
};
use otp_oath::{Hotp, HotpParams, Secret, Totp, TotpParams};

/// The reference's TOTP fixture key; with t0 = now - 90 the current step is 3.
const TOTP_KEY: &str = "2a2bbba1092ffdd25a328ad1a0a5f5d61d7aacc4";
const TOTP_TOKENS: [&str; 10] = [
    "179225", "656163", "839400", "154567", "346912", "471576", "045675", "101397", "491039",
    "784503",
];
/// The reference's HOTP fixture key and its codes for counters 0..2.
const HOTP_KEY: &str = "d2e8a68036f68960b1c30532bb6c56da5934d879";
const HOTP_TOKENS: [&str; 3] = ["782373", "313268", "307722"];

fn no_throttle() -> Settings {
    let mut settings = Settings::default();
    settings.totp.throttle_factor = Duration::ZERO;
    settings.hotp.throttle_factor = Duration::ZERO;
    settings.static_codes.throttle_factor = Duration::ZERO;
    settings.email.throttle_factor = Duration::ZERO;
    settings
}

async fn totp_device(env: &Env, tolerance: u16) -> Device {
    let params = TotpParams::default().with_t0(T0 - 90);
    let options = TotpOptions {
        params,
        tolerance: Some(tolerance),
    };
    env.otp
        .create_totp_device(
            "alice",
            "phone",
            Some(Secret::from_hex(TOTP_KEY).unwrap()),
            options,
            true,
        )
        .await
        .unwrap()
}

async fn hotp_device(env: &Env) -> Device {
    let options = HotpOptions {
        tolerance: Some(1),
        ..HotpOptions::default()
    };
    env.otp
        .create_hotp_device(
            "alice",
            "token",
            Some(Secret::from_hex(HOTP_KEY).unwrap()),
            options,
            true,
        )
        .await
        .unwrap()
}

async fn verify(env: &Env, device: &Device, token: &str) -> VerifyOutcome {
    env.otp
        .verify_token(&device.user_key, &device.id, token)
        .await
        .unwrap()
}

async fn results(env: &Env, device: &Device, tokens: &[&str]) -> Vec<bool> {
    let mut out = Vec::new();
    for token in tokens {
        out.push(verify(env, device, token).await.is_verified());
    }
    out
}

async fn totp_single_step_without_tolerance(db: TestDb) {
    let mut settings = no_throttle();
    settings.totp.sync = false;
    let env = Env::with(db, settings, |b| b).await;
    let device = totp_device(&env, 0).await;
    let expected = [
        false, false, false, true, false, false, false, false, false, false,
    ];
    assert_eq!(results(&env, &device, &TOTP_TOKENS).await, expected);
}

async fn totp_tolerance_accepts_neighbours_in_increasing_order(db: TestDb) {
    let mut settings = no_throttle();
    settings.totp.sync = false;
    let env = Env::with(db, settings, |b| b).await;
    let device = totp_device(&env, 1).await;
    let expected = [
        false, false, true, true, true, false, false, false, false, false,
    ];
    assert_eq!(results(&env, &device, &TOTP_TOKENS).await, expected);
}

async fn totp_no_reuse_and_no_older_step(db: TestDb) {
    let env = Env::with(db, no_throttle(), |b| b).await;
    let device = totp_device(&env, 1).await;
    assert!(verify(&env, &device, TOTP_TOKENS[3]).await.is_verified());
    assert!(!verify(&env, &device, TOTP_TOKENS[3]).await.is_verified());
    assert!(!verify(&env, &device, TOTP_TOKENS[2]).await.is_verified());
    assert!(verify(&env, &device, TOTP_TOKENS[4]).await.is_verified());
}

async fn totp_sync_moves_drift_within_its_bound(db: TestDb) {
    let mut settings = no_throttle();
    settings.totp.max_drift = 1;
    let env = Env::with(db, settings, |b| b).await;
    let device = totp_device(&env, 2).await;
    // Step 5 while the current step is 3: accepted at offset +2, drift clamped to 1.
    let VerifyOutcome::Verified(after) = verify(&env, &device, TOTP_TOKENS[5]).await else {
        panic!("step 5 is inside a tolerance of 2");
    };
    assert_eq!(after.state()["drift"], 1);
    assert_eq!(after.state()["last_step"], 5);
}

async fn totp_secret_is_sealed_in_the_database(db: TestDb) {
    let env = Env::new(db).await;
    let device = totp_device(&env, 1).await;
    let stored = device.state().to_string();
    assert!(!stored.contains(TOTP_KEY), "{stored}");
    assert!(
        !stored
            .to_uppercase()
            .contains("FIV3XIIJF765EWRSRLI2BJPV2YOXVLGE")
    );
    // The URI shows it again, from the sealed copy.
    let uri = env.otp.provisioning_uri(&device).unwrap();
    assert_eq!(uri.secret, Secret::from_hex(TOTP_KEY).unwrap());
}

async fn hotp_window_and_counter(db: TestDb) {
    let env = Env::with(db, no_throttle(), |b| b).await;
    let device = hotp_device(&env).await;
    // 307722 is counter 2: outside the window {0, 1}.
    assert!(!verify(&env, &device, HOTP_TOKENS[2]).await.is_verified());
    assert!(!verify(&env, &device, "123456").await.is_verified());
    let VerifyOutcome::Verified(after) = verify(&env, &device, HOTP_TOKENS[1]).await else {
        panic!("313268 is counter 1, inside the window");
    };
    assert_eq!(after.state()["counter"], 2);
    assert!(!verify(&env, &device, HOTP_TOKENS[0]).await.is_verified());
    assert!(verify(&env, &device, HOTP_TOKENS[2]).await.is_verified());
}

async fn backup_codes_work_once_each(db: TestDb) {
    let env = Env::with(db, no_throttle(), |b| b).await;
    let (device, codes) = env
        .otp
        .create_backup_codes("alice", "Backup", Some(3))
        .await
        .unwrap();
    assert_eq!(codes.len(), 3);
    assert_eq!(env.otp.backup_codes_remaining(&device).unwrap(), 3);
    let stored = device.state().to_string();
    for code in &codes {
        assert!(
            !stored.contains(code.normalized()),
            "a code is stored in clear"
        );
    }
    // Any case, any spacing; each once.
    let typed = codes[1].to_string().to_uppercase().replace('-', " ");
    let VerifyOutcome::Verified(after) = verify(&env, &device, &typed).await else {
        panic!("a fresh code must verify");
    };
    assert_eq!(env.otp.backup_codes_remaining(&after).unwrap(), 2);
    assert!(
        !verify(&env, &device, &codes[1].to_string())
            .await
            .is_verified()
    );
    assert!(!verify(&env, &device, "bogus").await.is_verified());
    assert!(
        verify(&env, &device, codes[0].normalized())
            .await
            .is_verified()
    );
}

async fn add_static_token_reuses_the_first_device(db: TestDb) {
    let env = Env::with(db, no_throttle(), |b| b).await;
    let (first, generated) = env.otp.add_static_token("alice", None).await.unwrap();
    assert_eq!(first.name, "Backup Code");
    let (second, chosen) = env
        .otp
        .add_static_token("alice", Some("secret-t0ken"))
        .await
        .unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(chosen.normalized(), "secrett0ken");
    assert_eq!(
        env.otp.devices_for_user("alice", None).await.unwrap().len(),
        1
    );
    assert!(verify(&env, &second, "SECRET-T0KEN").await.is_verified());
    assert!(
        verify(&env, &second, &generated.to_string())
            .await
            .is_verified()
    );
    assert_eq!(
        env.otp
            .add_static_token("alice", Some("no"))
            .await
            .unwrap_err(),
        Error::InvalidBackupCode
    );
}

/// Regenerating replaces every code of the device, and only for its owner.
async fn regenerating_backup_codes_is_for_the_owner_only(db: TestDb) {
    let env = Env::with(db, no_throttle(), |b| b).await;
    let (device, old) = env
        .otp
        .create_backup_codes("alice", "Backup", Some(3))
        .await
        .unwrap();
    assert_eq!(
        env.otp
            .regenerate_backup_codes("mallory", &device.id, Some(5))
            .await
            .unwrap_err(),
        Error::DeviceNotFound
    );
    assert!(
        verify(&env, &device, old[0].normalized())
            .await
            .is_verified()
    );
    let new = env
        .otp
        .regenerate_backup_codes("alice", &device.id, Some(5))
        .await
        .unwrap();
    assert_eq!(new.len(), 5);
    let stored = env.otp.device(&device.id).await.unwrap().unwrap();
    assert_eq!(env.otp.backup_codes_remaining(&stored).unwrap(), 5);
    assert!(
        !verify(&env, &device, old[1].normalized())
            .await
            .is_verified()
    );
    assert!(
        verify(&env, &device, new[0].normalized())
            .await
            .is_verified()
    );
}

/// django-otp's ThrottlingTestMixin, for TOTP, HOTP and backup codes (factor 1).
async fn throttling_mixin_for_every_kind(db: TestDb) {
    let env = Env::new(db).await;
    let totp = totp_device(&env, 0).await;
    let hotp = hotp_device(&env).await;
    let (backup, codes) = env
        .otp
        .create_backup_codes("alice", "Backup", Some(3))
        .await
        .unwrap();
    let cases: [(&Device, String, &str); 3] = [
        (&totp, TOTP_TOKENS[3].into(), "000000"),
        (&hotp, HOTP_TOKENS[0].into(), "000000"),
        (&backup, codes[0].to_string(), "bogusbogus"),
    ];
    for (device, valid, invalid) in cases {
        let kind = device.kind().to_owned();
        // A failure, then the valid token at once: locked.
        assert!(
            matches!(
                verify(&env, device, invalid).await,
                VerifyOutcome::Invalid { failure_count: 1 }
            ),
            "{kind}"
        );
        match verify(&env, device, &valid).await {
            VerifyOutcome::Throttled {
                failure_count: 1,
                retry_after,
            } => {
                assert_eq!(retry_after, Duration::from_secs(1), "{kind}");
            }
            other => panic!("{kind}: expected throttled, got {other:?}"),
        }
        // Attempts during the lock are not counted.
        for _ in 0..5 {
            verify(&env, device, invalid).await;
        }
        let stored = env.otp.device(&device.id).await.unwrap().unwrap();
        assert_eq!(stored.throttle.failure_count, 1, "{kind}");
        // After the delay the valid token works and clears the state.
        env.advance_ms(1_100);
        let VerifyOutcome::Verified(after) = verify(&env, device, &valid).await else {
            panic!("{kind}: the valid token must pass after the delay");
        };
        assert_eq!(after.throttle.failure_count, 0, "{kind}");
        assert_eq!(after.last_used_at, Some(env.clock_now()), "{kind}");
    }
}

/// django-otp's AuthFormTest.test_attempt_after_fail on HOTP: 1 s, then 2 s.
async fn throttle_delay_doubles(db: TestDb) {
    let env = Env::new(db).await;
    let device = hotp_device(&env).await;
    assert!(matches!(
        verify(&env, &device, "123456").await,
        VerifyOutcome::Invalid { .. }
    ));
    assert!(matches!(
        verify(&env, &device, HOTP_TOKENS[0]).await,
        VerifyOutcome::Throttled {
            failure_count: 1,
            ..
        }
    ));
    env.advance_ms(1_100);
    assert!(matches!(
        verify(&env, &device, "123456").await,
        VerifyOutcome::Invalid { failure_count: 2 }
    ));
    match verify(&env, &device, "123456").await {
        VerifyOutcome::Throttled {
            failure_count: 2,
            retry_after,
        } => assert_eq!(retry_after, Duration::from_secs(2)),
        other => panic!("expected throttled, got {other:?}"),
    }
    env.advance_ms(2_100);
    assert!(verify(&env, &device, HOTP_TOKENS[0]).await.is_verified());
}

async fn timestamps(db: TestDb) {
    let env = Env::with(db, no_throttle(), |b| b).await;
    let device = hotp_device(&env).await;
    assert_eq!(device.created_at, env.clock_now());
    assert_eq!(device.last_used_at, None);
    env.advance_ms(5_000);
    verify(&env, &device, "123456").await;
    assert_eq!(
        env.otp
            .device(&device.id)
            .await
            .unwrap()
            .unwrap()
            .last_used_at,
        None
    );
    verify(&env, &device, HOTP_TOKENS[0]).await;
    let stored = env.otp.device(&device.id).await.unwrap().unwrap();
    assert_eq!(stored.last_used_at, Some(env.clock_now()));
}

async fn only_the_owner_and_only_confirmed_devices_verify(db: TestDb) {
    let env = Env::with(db, no_throttle(), |b| b).await;
    let device = hotp_device(&env).await;
    // Another user's device: not found, and nothing of it changes.
    assert_eq!(
        env.otp
            .verify_token("bob", &device.id, HOTP_TOKENS[0])
            .await
            .unwrap_err(),
        Error::DeviceNotFound
    );
    let unchanged = env.otp.device(&device.id).await.unwrap().unwrap();
    assert_eq!(unchanged.state(), device.state());
    assert_eq!(unchanged.throttle.failure_count, 0);
    // An id of a missing device, or of a kind nobody registered.
    let missing: DeviceId = "hotp/999999".parse().unwrap();
    assert_eq!(
        env.otp
            .verify_token("alice", &missing, "1")
            .await
            .unwrap_err(),
        Error::DeviceNotFound
    );
    let unknown: DeviceId = "sms/1".parse().unwrap();
    assert!(matches!(
        env.otp.verify_token("alice", &unknown, "1").await,
        Err(Error::UnknownKind(_))
    ));
    // Unconfirmed: refused for login, accepted through confirmation, which consumes the code.
    // The reference's key: its code 0 is none of the codes a replay is then compared with
    // (counters 1 to 1 + tolerance), which a random key's could be by chance.
    let secret = Secret::from_hex(HOTP_KEY).unwrap();
    let hotp = Hotp::new(&secret, HotpParams::default());
    let code = hotp.code(0).to_string();
    let tolerance = u64::from(no_throttle().hotp.tolerance);
    assert!((1..=1 + tolerance).all(|counter| hotp.code(counter).to_string() != code));
    let pending = env
        .otp
        .create_hotp_device("alice", "new", Some(secret), HotpOptions::default(), false)
        .await
        .unwrap();
    assert!(matches!(
        verify(&env, &pending, &code).await,
        VerifyOutcome::NotAllowed {
            reason: NotAllowedReason::Unconfirmed
        }
    ));
    assert!(
        env.otp
            .confirm_device("alice", &pending.id, &code)
            .await
            .unwrap()
            .is_verified()
    );
    assert!(
        !verify(&env, &pending, &code).await.is_verified(),
        "the confirmation code is spent"
    );
    assert!(matches!(
        env.otp
            .confirm_device("alice", &pending.id, &code)
            .await
            .unwrap(),
        VerifyOutcome::NotAllowed {
            reason: NotAllowedReason::AlreadyConfirmed
        }
    ));
}

async fn device_lists_follow_kind_order_and_confirmation(db: TestDb) {
    let env = Env::new(db).await;
    env.otp
        .create_backup_codes("alice", "codes", None)
        .await
        .unwrap();
    env.otp
        .create_email_device("alice", "mail", "alice@example.com", true)
        .await
        .unwrap();
    hotp_device(&env).await;
    totp_device(&env, 1).await;
    env.otp
        .create_totp_device("alice", "pending", None, TotpOptions::default(), false)
        .await
        .unwrap();
    let kinds = |devices: Vec<Device>| {
        devices
            .iter()
            .map(|d| d.kind().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(env.otp.devices_for_user("alice", Some(true)).await.unwrap()),
        ["totp", "hotp", "email", "static"]
    );
    assert_eq!(
        kinds(
            env.otp
                .devices_for_user("alice", Some(false))
                .await
                .unwrap()
        ),
        ["totp"]
    );
    assert_eq!(
        env.otp.devices_for_user("alice", None).await.unwrap().len(),
        5
    );
    assert!(env.otp.user_has_device("alice", Some(true)).await.unwrap());
    assert!(!env.otp.user_has_device("bob", None).await.unwrap());
    let names: Vec<_> = env.otp.device_kinds().map(|k| k.name()).collect();
    assert_eq!(names, ["totp", "hotp", "email", "static"]);
}

async fn failure_budget_locks_until_recovery(db: TestDb) {
    let mut settings = no_throttle();
    settings.failure_budget.limit = 5;
    let env = Env::with(db, settings, |b| b).await;
    let mut events = env.otp.subscribe();
    let totp = totp_device(&env, 1).await;
    let hotp = hotp_device(&env).await;
    let (backup, codes) = env
        .otp
        .create_backup_codes("alice", "codes", Some(2))
        .await
        .unwrap();
    // Five failures spread over two devices use up the budget.
    for device in [&totp, &hotp, &totp, &hotp, &totp] {
        assert!(matches!(
            verify(&env, device, "000000").await,
            VerifyOutcome::Invalid { .. }
        ));
    }
    assert_eq!(env.otp.account_failures("alice").await.unwrap(), 5);
    // Now even the right code is refused, on every device but the recovery codes.
    assert!(matches!(
        verify(&env, &hotp, HOTP_TOKENS[0]).await,
        VerifyOutcome::NotAllowed {
            reason: NotAllowedReason::AccountLocked
        }
    ));
    assert!(
        verify(&env, &backup, &codes[0].to_string())
            .await
            .is_verified()
    );
    assert_eq!(env.otp.account_failures("alice").await.unwrap(), 0);
    assert!(verify(&env, &hotp, HOTP_TOKENS[0]).await.is_verified());
    // An operator reset works too.
    for _ in 0..5 {
        verify(&env, &totp, "000000").await;
    }
    env.otp.reset_account("alice").await.unwrap();
    assert!(verify(&env, &totp, TOTP_TOKENS[3]).await.is_verified());
    // The lock was announced.
    let mut locked = 0;
    while let Ok(event) = events.try_recv() {
        if matches!(event, OtpEvent::AccountLocked { .. }) {
            locked += 1;
        }
    }
    assert!(locked >= 2, "expected AccountLocked events, got {locked}");
}

async fn rotation_reseals_every_secret(db: TestDb) {
    use otp_core::KeyRing;
    let hex = |b: u8| format!("{b:02x}").repeat(32);
    let old_ring = format!("1:{}", hex(1));
    let both = format!("1:{}\n2:{}", hex(1), hex(2));
    let url = db.url.clone();
    let env = Env::with(db, no_throttle(), |b| b).await;
    drop(env.otp);
    let store = otp_core::Store::connect(&url).await.unwrap();
    let old = otp_core::Otp::builder(store.clone(), KeyRing::parse(&old_ring).unwrap())
        .with_clock(std::sync::Arc::new(env.clock.clone()))
        .build()
        .unwrap();
    let secret = Secret::from_hex(TOTP_KEY).unwrap();
    let options = TotpOptions {
        params: TotpParams::default().with_t0(T0 - 90),
        tolerance: Some(1),
    };
    let device = old
        .create_totp_device("alice", "phone", Some(secret), options, true)
        .await
        .unwrap();
    assert!(
        device.state()["secret"]
            .as_str()
            .unwrap()
            .starts_with("v1:1:")
    );
    let new = otp_core::Otp::builder(store.clone(), KeyRing::parse(&both).unwrap())
        .with_clock(std::sync::Arc::new(env.clock.clone()))
        .build()
        .unwrap();
    let mut batches = 0;
    let report = new.rotate_keys(|_| batches += 1).await.unwrap();
    assert_eq!((report.examined, report.resealed), (1, 1));
    assert!(batches >= 1);
    let rotated = new.device(&device.id).await.unwrap().unwrap();
    assert!(
        rotated.state()["secret"]
            .as_str()
            .unwrap()
            .starts_with("v1:2:")
    );
    // Only the new key is needed now.
    let only_new = otp_core::Otp::builder(store, KeyRing::parse(&format!("2:{}", hex(2))).unwrap())
        .with_clock(std::sync::Arc::new(env.clock.clone()))
        .build()
        .unwrap();
    assert!(
        only_new
            .verify_token("alice", &device.id, TOTP_TOKENS[3])
            .await
            .unwrap()
            .is_verified()
    );
    // A second rotation has nothing to do.
    assert_eq!(new.rotate_keys(|_| {}).await.unwrap().resealed, 0);
}

impl Env {
    fn clock_now(&self) -> otp_core::Timestamp {
        use otp_core::Clock;
        self.clock.now()
    }
}

#[test]
fn fixture_tokens_match_the_reference() {
    let totp = Totp::new(&Secret::from_hex(TOTP_KEY).unwrap(), TotpParams::default()).unwrap();
    for (step, token) in TOTP_TOKENS.iter().enumerate() {
        assert_eq!(&totp.code_for_step(step as u64).to_string(), token);
    }
}

/// A right code clears the failures of the account; one refused on a locked account changes
/// neither the account nor the device (on PostgreSQL the claim and the device's write are one
/// statement, all or nothing; on SQLite they are separate statements).
async fn a_success_resets_the_account_and_a_locked_one_writes_nothing(db: TestDb) {
    let mut settings = no_throttle();
    settings.failure_budget.limit = 3;
    let env = Env::with(db, settings, |b| b).await;
    let totp = totp_device(&env, 1).await;
    for expected in 1..=2 {
        assert!(matches!(
            verify(&env, &totp, "000000").await,
            VerifyOutcome::Invalid { failure_count } if failure_count == expected
        ));
    }
    assert_eq!(env.otp.account_failures("alice").await.unwrap(), 2);
    assert!(verify(&env, &totp, TOTP_TOKENS[3]).await.is_verified());
    assert_eq!(env.otp.account_failures("alice").await.unwrap(), 0);
    let after_success = env.otp.device(&totp.id).await.unwrap().unwrap();
    assert_eq!(after_success.throttle.failure_count, 0);

    // Lock the account, then offer the next step's right code: refused, nothing written.
    for _ in 0..3 {
        verify(&env, &totp, "000000").await;
    }
    let locked = env.otp.device(&totp.id).await.unwrap().unwrap();
    assert_eq!(env.otp.account_failures("alice").await.unwrap(), 3);
    env.advance_ms(30_000);
    assert!(matches!(
        verify(&env, &totp, TOTP_TOKENS[4]).await,
        VerifyOutcome::NotAllowed {
            reason: NotAllowedReason::AccountLocked
        }
    ));
    assert_eq!(env.otp.account_failures("alice").await.unwrap(), 3);
    let unchanged = env.otp.device(&totp.id).await.unwrap().unwrap();
    assert_eq!(unchanged.state(), locked.state());
    assert_eq!(unchanged.throttle, locked.throttle);
    assert_eq!(unchanged.last_used_at, locked.last_used_at);
    // After an operator's reset, the same code works: it was not spent while locked.
    env.otp.reset_account("alice").await.unwrap();
    assert!(verify(&env, &totp, TOTP_TOKENS[4]).await.is_verified());
    assert_eq!(env.otp.account_failures("alice").await.unwrap(), 0);
}

/// The built-in kinds describe themselves, so that the web layers and the CLI ask the registry
/// instead of matching their names: a label, how users enrol them, a provisioning URI for the
/// kinds with a shared secret, the codes left for the kind made of codes.
async fn kinds_describe_themselves(db: TestDb) {
    let env = Env::new(db).await;
    let described: Vec<(&str, &str, Enrolment)> = env
        .otp
        .device_kinds()
        .map(|kind| (kind.name(), kind.label(), kind.enrolment()))
        .collect();
    assert_eq!(
        described,
        [
            ("totp", "Authenticator app", Enrolment::GeneratedSecret),
            ("hotp", "Hardware token", Enrolment::GeneratedSecret),
            ("email", "Email codes", Enrolment::DeliveredCode),
            ("static", "Backup codes", Enrolment::CodesShownOnce),
        ]
    );
    assert!(
        env.otp
            .device_kinds()
            .all(|kind| !kind.description().is_empty())
    );

    let totp = totp_device(&env, 1).await;
    let hotp = hotp_device(&env).await;
    let (codes, _) = env
        .otp
        .create_backup_codes("alice", "Backup", Some(4))
        .await
        .unwrap();
    let email = env
        .otp
        .create_email_device("alice", "mail", "alice@example.com", true)
        .await
        .unwrap();
    for device in [&totp, &hotp] {
        assert!(env.otp.provisioning_uri(device).is_ok(), "{}", device.id);
        assert_eq!(env.otp.codes_remaining(device).unwrap(), None);
    }
    for device in [&codes, &email] {
        assert!(
            matches!(env.otp.provisioning_uri(device), Err(Error::DeviceNotFound)),
            "{}",
            device.id
        );
    }
    assert_eq!(env.otp.codes_remaining(&codes).unwrap(), Some(4));
    assert_eq!(env.otp.codes_remaining(&email).unwrap(), None);
    assert!(Enrolment::GeneratedSecret.needs_confirmation());
    assert!(!Enrolment::CodesShownOnce.needs_confirmation());
    assert!(!Enrolment::ByOperator.is_self_service());
}

store_tests!(
    totp_single_step_without_tolerance,
    kinds_describe_themselves,
    totp_tolerance_accepts_neighbours_in_increasing_order,
    totp_no_reuse_and_no_older_step,
    totp_sync_moves_drift_within_its_bound,
    totp_secret_is_sealed_in_the_database,
    hotp_window_and_counter,
    backup_codes_work_once_each,
    add_static_token_reuses_the_first_device,
    regenerating_backup_codes_is_for_the_owner_only,
    throttling_mixin_for_every_kind,
    throttle_delay_doubles,
    timestamps,
    only_the_owner_and_only_confirmed_devices_verify,
    device_lists_follow_kind_order_and_confirmation,
    failure_budget_locks_until_recovery,
    a_success_resets_the_account_and_a_locked_one_writes_nothing,
    rotation_reseals_every_secret,
);
