//! Email devices through a real SMTP server on loopback (reference §8.7 and the cooldown mixin),
//! on SQLite and PostgreSQL.

mod common;

use otp_test_support::store_tests;

use std::sync::Arc;
use std::time::Duration;

use common::smtp::{Received, SmtpServer};
use common::{Env, TestDb};
use otp_core::{
    ChallengeOutcome, Device, Error, NotAllowedReason, Settings, SmtpMailer, VerifyOutcome,
};

async fn env_with_smtp(db: TestDb, settings: Settings) -> (Env, SmtpServer) {
    let server = SmtpServer::start().await;
    let mailer = Arc::new(SmtpMailer::from_url(&server.url()).unwrap());
    let env = Env::with(db, settings, |b| b.with_mailer(mailer)).await;
    (env, server)
}

async fn email_device(env: &Env) -> Device {
    env.otp
        .create_email_device("alice", "mail", "alice@example.com", true)
        .await
        .unwrap()
}

/// The code of a mail sent with the default body template (`{token}` alone on its line).
fn code_in(mail: &Received) -> String {
    let body = mail.data.split_once("\r\n\r\n").expect("a body").1;
    let line = body
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()));
    line.unwrap_or_else(|| panic!("no 6-digit code line in {body:?}"))
        .to_owned()
}

async fn challenge(env: &Env, device: &Device) -> ChallengeOutcome {
    env.otp
        .generate_challenge("alice", &device.id)
        .await
        .unwrap()
}

async fn verify(env: &Env, device: &Device, token: &str) -> VerifyOutcome {
    env.otp
        .verify_token("alice", &device.id, token)
        .await
        .unwrap()
}

fn no_throttle() -> Settings {
    let mut settings = Settings::default();
    settings.email.throttle_factor = Duration::ZERO;
    settings
}

async fn a_code_is_sent_verified_once_and_stored_only_hashed(db: TestDb) {
    let mut settings = no_throttle();
    settings.email.sender = "root@localhost".into();
    let (env, smtp) = env_with_smtp(db, settings).await;
    let device = email_device(&env).await;
    let ChallengeOutcome::Sent {
        recipient,
        valid_for,
    } = challenge(&env, &device).await
    else {
        panic!("the first challenge must be sent");
    };
    assert_eq!(
        (recipient.as_str(), valid_for),
        ("alice@example.com", Duration::from_secs(300))
    );
    let mails = smtp.received();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].from, "root@localhost");
    assert_eq!(mails[0].to, ["alice@example.com"]);
    assert_eq!(mails[0].header("Subject").as_deref(), Some("OTP token"));
    let code = code_in(&mails[0]);
    let stored = env.otp.device(&device.id).await.unwrap().unwrap();
    // Searched as a whole word: the state's timestamps and hash may hold its six digits by
    // chance.
    let state = stored.state().to_string();
    assert!(
        !state
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| word == code),
        "the code is stored in clear: {state}"
    );
    assert!(matches!(
        verify(&env, &device, "000000x").await,
        VerifyOutcome::Invalid { .. }
    ));
    assert!(
        verify(&env, &device, &format!(" {code} "))
            .await
            .is_verified()
    );
    assert!(
        !verify(&env, &device, &code).await.is_verified(),
        "no reuse"
    );
}

async fn codes_expire_strictly_after_their_validity(db: TestDb) {
    let (env, smtp) = env_with_smtp(db, no_throttle()).await;
    let device = email_device(&env).await;
    challenge(&env, &device).await;
    env.advance_ms(299_999);
    let code = code_in(&smtp.received()[0]);
    // Verify at the last millisecond on a copy: a failure would not change the outcome below.
    assert!(verify(&env, &device, &code).await.is_verified());
    env.advance_ms(61_000); // past the cooldown
    challenge(&env, &device).await;
    let code = code_in(&smtp.received()[1]);
    env.advance_ms(300_000); // exactly valid_until: refused (strict <)
    assert!(!verify(&env, &device, &code).await.is_verified());
}

async fn wrong_tries_void_the_code(db: TestDb) {
    let (env, smtp) = env_with_smtp(db, no_throttle()).await;
    let device = email_device(&env).await;
    challenge(&env, &device).await;
    let code = code_in(&smtp.received()[0]);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..4 {
        assert!(!verify(&env, &device, wrong).await.is_verified());
    }
    // Four wrong tries leave the code usable (the default voids it at the fifth).
    let mut settings_device = env.otp.device(&device.id).await.unwrap().unwrap();
    assert_eq!(settings_device.state()["failures"], 4);
    assert!(!verify(&env, &device, wrong).await.is_verified());
    settings_device = env.otp.device(&device.id).await.unwrap().unwrap();
    assert!(
        settings_device.state()["code"].is_null(),
        "the fifth wrong try voids the code"
    );
    assert!(!verify(&env, &device, &code).await.is_verified());
}

async fn subject_body_and_html_templates(db: TestDb) {
    let mut settings = no_throttle();
    settings.email.sender = "webmaster@example.com".into();
    settings.email.subject = "Test Subject with token: {token}".into();
    settings.email.body_template = "Test template: {{token}} {braces}".into();
    settings.email.body_html_template = Some("<div>{{ token }}</div>".into());
    let (env, smtp) = env_with_smtp(db, settings).await;
    let device = email_device(&env).await;
    challenge(&env, &device).await;
    let mail = &smtp.received()[0];
    let subject = mail.header("Subject").unwrap();
    let code = subject
        .strip_prefix("Test Subject with token: ")
        .unwrap_or_else(|| panic!("{subject:?}"));
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "{subject:?}"
    );
    assert_eq!(mail.from, "webmaster@example.com");
    assert!(mail.data.contains("multipart/alternative"), "{}", mail.data);
    assert!(
        mail.data
            .contains(&format!("Test template: {code} {{braces}}")),
        "{}",
        mail.data
    );
    assert!(
        mail.data.contains(&format!("<div>{code}</div>")),
        "{}",
        mail.data
    );
}

/// django-otp's CooldownTestMixin (cooldown 10 s).
async fn cooldown_rules(db: TestDb) {
    let mut settings = no_throttle();
    settings.email.cooldown = Duration::from_secs(10);
    let (env, smtp) = env_with_smtp(db, settings).await;
    let device = email_device(&env).await;
    assert!(matches!(
        challenge(&env, &device).await,
        ChallengeOutcome::Sent { .. }
    ));
    match challenge(&env, &device).await {
        ChallengeOutcome::Cooldown { retry_after } => {
            assert_eq!(retry_after, Duration::from_secs(10))
        }
        other => panic!("expected a cooldown, got {other:?}"),
    }
    env.advance_ms(5_000);
    match challenge(&env, &device).await {
        ChallengeOutcome::Cooldown { retry_after } => {
            assert_eq!(retry_after, Duration::from_secs(5))
        }
        other => panic!("expected a cooldown, got {other:?}"),
    }
    // A wrong code keeps the cooldown; the right one lifts it.
    assert!(!verify(&env, &device, "99999x").await.is_verified());
    assert!(matches!(
        challenge(&env, &device).await,
        ChallengeOutcome::Cooldown { .. }
    ));
    let code = code_in(&smtp.received()[0]);
    assert!(verify(&env, &device, &code).await.is_verified());
    assert!(matches!(
        challenge(&env, &device).await,
        ChallengeOutcome::Sent { .. }
    ));
    // At exactly the cooldown it still waits; a millisecond later it sends.
    env.advance_ms(10_000);
    assert!(matches!(
        challenge(&env, &device).await,
        ChallengeOutcome::Cooldown { .. }
    ));
    env.advance_ms(1);
    assert!(matches!(
        challenge(&env, &device).await,
        ChallengeOutcome::Sent { .. }
    ));
    assert_eq!(smtp.received().len(), 3);
}

async fn a_failed_send_does_not_burn_the_cooldown(db: TestDb) {
    let (env, smtp) = env_with_smtp(db, no_throttle()).await;
    let device = email_device(&env).await;
    smtp.fail_next();
    let err = env
        .otp
        .generate_challenge("alice", &device.id)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Delivery(_)), "{err:?}");
    let stored = env.otp.device(&device.id).await.unwrap().unwrap();
    assert_eq!(stored.last_challenge_at, None);
    assert!(
        stored.state()["code"].is_null(),
        "no undelivered code stays valid"
    );
    assert!(matches!(
        challenge(&env, &device).await,
        ChallengeOutcome::Sent { .. }
    ));
    assert_eq!(smtp.received().len(), 1);
}

async fn challenges_need_an_interactive_own_device_and_a_mailer(db: TestDb) {
    let env = Env::new(db).await;
    let device = email_device(&env).await;
    let err = env
        .otp
        .generate_challenge("alice", &device.id)
        .await
        .unwrap_err();
    assert_eq!(err, Error::Delivery("no mailer is configured".into()));
    assert_eq!(
        env.otp
            .generate_challenge("bob", &device.id)
            .await
            .unwrap_err(),
        Error::DeviceNotFound
    );
    let (codes, _) = env
        .otp
        .create_backup_codes("alice", "codes", Some(1))
        .await
        .unwrap();
    assert!(matches!(
        env.otp
            .generate_challenge("alice", &codes.id)
            .await
            .unwrap(),
        ChallengeOutcome::NotAllowed {
            reason: NotAllowedReason::NotInteractive
        }
    ));
    assert_eq!(
        env.otp
            .create_email_device("alice", "x", "not an address", true)
            .await
            .unwrap_err(),
        Error::InvalidEmailAddress
    );
}

async fn unconfirmed_devices_receive_their_confirmation_code(db: TestDb) {
    let (env, smtp) = env_with_smtp(db, no_throttle()).await;
    let device = env
        .otp
        .create_email_device("alice", "mail", "alice@example.com", false)
        .await
        .unwrap();
    challenge(&env, &device).await;
    let code = code_in(&smtp.received()[0]);
    assert!(
        env.otp
            .confirm_device("alice", &device.id, &code)
            .await
            .unwrap()
            .is_verified()
    );
    assert!(env.otp.device(&device.id).await.unwrap().unwrap().confirmed);
}

/// Many email devices, each within its cooldown, cannot send more than the account's
/// challenges of the hour between them; a failed send does not count; the next hour sends.
async fn an_account_sends_at_most_its_challenges_of_the_hour(db: TestDb) {
    let mut settings = no_throttle();
    settings.challenges_per_hour = 3;
    let (env, smtp) = env_with_smtp(db, settings).await;
    let mut devices = Vec::new();
    for n in 0..5 {
        let address = format!("someone{n}@example.com");
        let device = env
            .otp
            .create_email_device("alice", &format!("mail {n}"), &address, false)
            .await
            .unwrap();
        devices.push(device);
    }
    smtp.fail_next();
    assert!(matches!(
        env.otp.generate_challenge("alice", &devices[0].id).await,
        Err(Error::Delivery(_))
    ));
    for device in &devices[..3] {
        assert!(matches!(
            challenge(&env, device).await,
            ChallengeOutcome::Sent { .. }
        ));
    }
    env.advance_ms(1_000_000);
    for device in &devices[3..] {
        match challenge(&env, device).await {
            ChallengeOutcome::Cooldown { retry_after } => {
                assert_eq!(retry_after, Duration::from_millis(2_600_000));
            }
            other => panic!("the fourth challenge of the hour was not refused: {other:?}"),
        }
    }
    // Another user has an allowance of their own.
    let bob = env
        .otp
        .create_email_device("bob", "mail", "bob@example.com", true)
        .await
        .unwrap();
    assert!(matches!(
        env.otp.generate_challenge("bob", &bob.id).await.unwrap(),
        ChallengeOutcome::Sent { .. }
    ));
    // The hour after the first challenge: a new allowance.
    env.advance_ms(2_600_000);
    assert!(matches!(
        challenge(&env, &devices[3]).await,
        ChallengeOutcome::Sent { .. }
    ));
    assert_eq!(smtp.received().len(), 5);
}

/// An operator's reset of the account restores its challenges of the hour.
async fn an_operator_reset_restores_the_challenges_of_the_hour(db: TestDb) {
    let mut settings = no_throttle();
    settings.challenges_per_hour = 1;
    settings.email.cooldown = Duration::ZERO;
    let (env, smtp) = env_with_smtp(db, settings).await;
    let device = email_device(&env).await;
    assert!(matches!(
        challenge(&env, &device).await,
        ChallengeOutcome::Sent { .. }
    ));
    assert!(matches!(
        challenge(&env, &device).await,
        ChallengeOutcome::Cooldown { .. }
    ));
    env.otp.reset_account("alice").await.unwrap();
    assert!(matches!(
        challenge(&env, &device).await,
        ChallengeOutcome::Sent { .. }
    ));
    assert_eq!(smtp.received().len(), 2);
}

/// Concurrent challenges on many devices: exactly the allowance is sent.
async fn concurrent_challenges_do_not_overrun_the_allowance(db: TestDb) {
    let mut settings = no_throttle();
    settings.challenges_per_hour = 4;
    let (env, smtp) = env_with_smtp(db, settings).await;
    let sent = race_challenges(&env, |_| {
        ("alice".to_owned(), "alice@example.com".to_owned())
    })
    .await;
    assert_eq!(sent, 4);
    assert_eq!(smtp.received().len(), 4);
}

/// Security review, issue 10, finding 3: many accounts (open sign-up) cannot flood one
/// address: a recipient gets at most `email_per_address_per_hour` challenges an hour across
/// all accounts, whatever the case of its letters, and the address is not stored in the clear.
async fn a_recipient_gets_at_most_its_challenges_of_the_hour(db: TestDb) {
    let mut settings = no_throttle();
    settings.email_per_address_per_hour = 5;
    let (env, smtp) = env_with_smtp(db, settings).await;
    let spellings = [
        "victim@example.com",
        "Victim@Example.com",
        "victim@EXAMPLE.com",
        "VICTIM@EXAMPLE.COM",
    ];
    let mut outcomes = Vec::new();
    for n in 0..6 {
        let user = format!("attacker{n}");
        let device = env
            .otp
            .create_email_device(&user, "mail", spellings[n % spellings.len()], true)
            .await
            .unwrap();
        outcomes.push(env.otp.generate_challenge(&user, &device.id).await.unwrap());
        env.advance_ms(1_000);
    }
    let sent = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, ChallengeOutcome::Sent { .. }))
        .count();
    assert_eq!(sent, 5, "{outcomes:?}");
    match &outcomes[5] {
        ChallengeOutcome::Cooldown { retry_after } => {
            assert_eq!(*retry_after, Duration::from_millis(3_600_000 - 5_000));
        }
        other => panic!("the sixth challenge to one address was not refused: {other:?}"),
    }
    assert_eq!(smtp.received().len(), 5);
    // The refused account's own allowance was given back: another address still works.
    let other = env
        .otp
        .create_email_device("attacker5", "mine", "attacker@example.com", true)
        .await
        .unwrap();
    assert!(matches!(
        env.otp
            .generate_challenge("attacker5", &other.id)
            .await
            .unwrap(),
        ChallengeOutcome::Sent { .. }
    ));
    let (rows, counts) = recipient_rows(&env).await;
    assert!(!rows.to_lowercase().contains("victim"), "{rows}");
    assert_eq!(counts, vec![1, 5], "one row per address, its challenges");
}

/// A recipient's row lives for its hour only: the clean-up deletes it once the window closed.
async fn closed_recipient_windows_are_forgotten(db: TestDb) {
    let (env, _smtp) = env_with_smtp(db, no_throttle()).await;
    let device = env
        .otp
        .create_email_device("alice", "mail", "someone@example.com", true)
        .await
        .unwrap();
    assert!(matches!(
        env.otp
            .generate_challenge("alice", &device.id)
            .await
            .unwrap(),
        ChallengeOutcome::Sent { .. }
    ));
    env.advance_ms(3_600_000 - 1);
    assert_eq!(env.otp.forget_closed_challenge_windows().await.unwrap(), 0);
    assert_eq!(recipient_rows(&env).await.1, vec![1]);
    env.advance_ms(1);
    assert_eq!(env.otp.forget_closed_challenge_windows().await.unwrap(), 1);
    assert!(recipient_rows(&env).await.1.is_empty());
}

/// Concurrent challenges of many accounts to one address send exactly the allowance.
async fn concurrent_challenges_to_one_address_do_not_overrun_it(db: TestDb) {
    let mut settings = no_throttle();
    settings.email_per_address_per_hour = 4;
    let (env, smtp) = env_with_smtp(db, settings).await;
    let sent = race_challenges(&env, |n| {
        (format!("user{n}"), "victim@example.com".to_owned())
    })
    .await;
    assert_eq!(sent, 4);
    assert_eq!(smtp.received().len(), 4);
}

/// Makes 12 email devices, device `n` of the user and address that `owner(n)` names, then
/// sends a challenge to each at once; returns how many were sent (the others must be refused
/// with a cooldown).
async fn race_challenges(env: &Env, owner: impl Fn(usize) -> (String, String)) -> usize {
    let mut tasks = Vec::new();
    for n in 0..12 {
        let (user, address) = owner(n);
        let device = env
            .otp
            .create_email_device(&user, &format!("mail {n}"), &address, true)
            .await
            .unwrap();
        let otp = env.otp.clone();
        tasks.push(tokio::spawn(async move {
            otp.generate_challenge(&user, &device.id).await.unwrap()
        }));
    }
    let mut sent = 0;
    for task in tasks {
        match task.await.unwrap() {
            ChallengeOutcome::Sent { .. } => sent += 1,
            ChallengeOutcome::Cooldown { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    sent
}

/// The recipients' rows as text, and their counts in ascending order.
async fn recipient_rows(env: &Env) -> (String, Vec<i64>) {
    let rows: Vec<(String, i64)> = async {
        otp_core::on_connection!(env.store, std::convert::identity, |c| {
            sqlx::query_as(
                "SELECT recipient_hash, challenges_in_window FROM otp_challenge_recipients",
            )
            .fetch_all(c)
            .await
            .map_err(Error::from)
        })
    }
    .await
    .unwrap();
    let text = rows
        .iter()
        .map(|(hash, _)| hash.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let mut counts: Vec<i64> = rows.iter().map(|(_, count)| *count).collect();
    counts.sort_unstable();
    (text, counts)
}

store_tests!(
    an_account_sends_at_most_its_challenges_of_the_hour,
    a_recipient_gets_at_most_its_challenges_of_the_hour,
    concurrent_challenges_to_one_address_do_not_overrun_it,
    closed_recipient_windows_are_forgotten,
    concurrent_challenges_do_not_overrun_the_allowance,
    an_operator_reset_restores_the_challenges_of_the_hour,
    a_code_is_sent_verified_once_and_stored_only_hashed,
    codes_expire_strictly_after_their_validity,
    wrong_tries_void_the_code,
    subject_body_and_html_templates,
    cooldown_rules,
    a_failed_send_does_not_burn_the_cooldown,
    challenges_need_an_interactive_own_device_and_a_mailer,
    unconfirmed_devices_receive_their_confirmation_code,
);

#[test]
fn smtp_urls_are_checked() {
    for bad in [
        "",
        "http://x",
        "smtp://",
        "smtp://host:port",
        "smtp://host:0",
        "smtp://user@host",
    ] {
        assert!(
            matches!(SmtpMailer::from_url(bad), Err(Error::InvalidSmtpUrl(_))),
            "{bad:?}"
        );
    }
    assert!(SmtpMailer::from_url("smtp://u%40x:p%3Aw@127.0.0.1:2525").is_ok());
    let shown = format!(
        "{:?}",
        SmtpMailer::from_url("smtp://user:hunter2@127.0.0.1:2525").unwrap()
    );
    assert!(!shown.contains("hunter2"), "{shown}");
}
