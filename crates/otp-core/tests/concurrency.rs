//! Exactly once under concurrency (design decision 3: one compare-and-set UPDATE per state
//! change, no row locks), on SQLite and PostgreSQL.
//!
//! Every scenario releases many tokio tasks together with a [`Barrier`] on a multi-thread
//! runtime. Within one `Otp`, verifications of one device take turns (an optimisation that
//! saves the losers' wasted reads and writes), so those races check the guarantee as a caller
//! sees it; `several_instances_accept_a_code_once` races instances of their own on one
//! database, like servers, whose tasks read the same device version and race for the same
//! UPDATE. The
//! clock is frozen, so throttling decisions do not depend on how long the race takes. Each
//! race is bounded by [`RACE_TIMEOUT`]: a deadlock or an endless lock wait fails the test with
//! the outcomes seen so far instead of hanging it.
//!
//! `match_token_accepts_a_code_once` and `failure_budget_is_not_overrun_by_concurrent_attempts`
//! guard two bugs these races found: a miss of `match_token` counted twice on the account, and
//! the account failure budget checked and charged in separate statements (so concurrent
//! attempts got past it; each attempt now claims its slot atomically, and its token's check
//! takes effect only with the claim).

mod common;

use otp_test_support::store_tests;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use common::smtp::SmtpServer;
use common::{Env, T0, TestDb};
use otp_core::{
    ChallengeOutcome, Device, DeviceId, HotpOptions, KeyRing, NotAllowedReason, Otp, OtpEvent,
    Settings, SmtpMailer, Store, TotpOptions, VerifyOutcome,
};
use otp_oath::{Secret, TotpParams};
use tokio::sync::Barrier;

/// Tasks per race.
const TASKS: usize = 32;

/// The longest a race may take. SQLite's busy timeout is 30 s: a writer that waits that long
/// shows up here as a timeout rather than as a slow pass.
const RACE_TIMEOUT: Duration = Duration::from_secs(45);

/// The reference's TOTP fixture key; with t0 = now - 90 the current step is 3.
const TOTP_KEY: &str = "2a2bbba1092ffdd25a328ad1a0a5f5d61d7aacc4";
/// Its code for step 3.
const TOTP_STEP_3: &str = "154567";
/// The reference's HOTP fixture key and its code for counter 0.
const HOTP_KEY: &str = "d2e8a68036f68960b1c30532bb6c56da5934d879";
const HOTP_COUNTER_0: &str = "782373";
/// Wrong for every device of these tests (TOTP steps 2..4 are 839400, 154567, 346912; HOTP
/// counters 0..5 do not give it either).
const WRONG_CODE: &str = "000000";
const WRONG_BACKUP_CODE: &str = "bogusbogus";

/// One application key shared by the "servers" of [`several_instances_accept_a_code_once`].
const SHARED_KEYS: &str = "1:0707070707070707070707070707070707070707070707070707070707070707";

// ---------------------------------------------------------------------------------------------
// Racing
// ---------------------------------------------------------------------------------------------

/// Runs `make(i)` for `i in 0..n`, each in its own task, all released at once by a barrier.
/// Returns the results in task order; an `Err` holds the error or panic of a task, as text.
async fn race<T, F, Fut>(n: usize, make: F) -> Vec<Result<T, String>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T, otp_core::Error>> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let work = make(i);
            tokio::spawn(async move {
                barrier.wait().await;
                work.await
            })
        })
        .collect();
    let aborts: Vec<_> = handles.iter().map(|h| h.abort_handle()).collect();
    let mut results = Vec::with_capacity(n);
    let joined = tokio::time::timeout(RACE_TIMEOUT, async {
        for handle in handles {
            results.push(match handle.await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(err)) => Err(format!("error: {err} ({err:?})")),
                Err(join) => Err(format!("task failed: {join}")),
            });
        }
    })
    .await;
    if joined.is_err() {
        for abort in aborts {
            abort.abort();
        }
        panic!(
            "the race of {n} tasks did not finish within {RACE_TIMEOUT:?} (a deadlock or an \
             endless lock wait?); {} tasks had finished",
            results.len()
        );
    }
    results
}

/// The outcomes of a race of verifications, counted.
#[derive(Default)]
struct Tally {
    verified: Vec<Device>,
    /// The `failure_count` of each `Invalid`.
    invalid: Vec<u32>,
    /// The `failure_count` of each `Throttled`.
    throttled: Vec<u32>,
    not_allowed: Vec<NotAllowedReason>,
    errors: Vec<String>,
}

impl Tally {
    fn of(results: Vec<Result<VerifyOutcome, String>>) -> Self {
        let mut tally = Self::default();
        for result in results {
            match result {
                Ok(VerifyOutcome::Verified(device)) => tally.verified.push(device),
                Ok(VerifyOutcome::Invalid { failure_count }) => tally.invalid.push(failure_count),
                Ok(VerifyOutcome::Throttled { failure_count, .. }) => {
                    tally.throttled.push(failure_count);
                }
                Ok(VerifyOutcome::NotAllowed { reason }) => tally.not_allowed.push(reason),
                Ok(other) => tally.errors.push(format!("unexpected outcome {other:?}")),
                Err(err) => tally.errors.push(err),
            }
        }
        tally.invalid.sort_unstable();
        tally.throttled.sort_unstable();
        tally
    }

    /// The one verified device; panics with the tally unless exactly one task verified.
    fn the_winner(&self, what: &str) -> &Device {
        assert!(self.errors.is_empty(), "{what}: errors in the race: {self}");
        assert_eq!(
            self.verified.len(),
            1,
            "{what}: exactly one task must verify: {self}"
        );
        &self.verified[0]
    }
}

/// Counts of equal values, `value×count`, for compact messages.
fn histogram<T: Ord + fmt::Debug>(values: &[T]) -> String {
    let mut counts = BTreeMap::new();
    for value in values {
        *counts.entry(value).or_insert(0usize) += 1;
    }
    let parts: Vec<_> = counts
        .iter()
        .map(|(value, count)| {
            if *count == 1 {
                format!("{value:?}")
            } else {
                format!("{value:?}×{count}")
            }
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "verified {}, invalid {} (failure counts {}), throttled {} (failure counts {}), \
             not allowed {} {}, errors {}",
            self.verified.len(),
            self.invalid.len(),
            histogram(&self.invalid),
            self.throttled.len(),
            histogram(&self.throttled),
            self.not_allowed.len(),
            histogram(
                &self
                    .not_allowed
                    .iter()
                    .map(|r| format!("{r:?}"))
                    .collect::<Vec<_>>()
            ),
            self.errors.len(),
        )?;
        for err in self.errors.iter().take(5) {
            write!(f, "\n  {err}")?;
        }
        if self.errors.len() > 5 {
            write!(f, "\n  … and {} more", self.errors.len() - 5)?;
        }
        Ok(())
    }
}

/// Every task of `otp` presents `token` to `device` at once.
async fn verify_race(otp: &Otp, device: &Device, tokens: impl Fn(usize) -> String) -> Tally {
    let results = race(TASKS, |i| {
        let otp = otp.clone();
        let user = device.user_key.clone();
        let id = device.id.clone();
        let token = tokens(i);
        async move { otp.verify_token(&user, &id, &token).await }
    })
    .await;
    Tally::of(results)
}

/// `1..=n`, the failure counts a race of `n` counted failures must hand out, one each.
fn one_to(n: usize) -> Vec<u32> {
    (1..=u32::try_from(n).unwrap()).collect()
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// Throttling off for every kind (django-otp's factor 0): every loser is counted as Invalid.
fn no_throttle() -> Settings {
    let mut settings = Settings::default();
    settings.totp.throttle_factor = Duration::ZERO;
    settings.hotp.throttle_factor = Duration::ZERO;
    settings.static_codes.throttle_factor = Duration::ZERO;
    settings.email.throttle_factor = Duration::ZERO;
    settings
}

fn totp_options() -> TotpOptions {
    TotpOptions {
        params: TotpParams::default().with_t0(T0 - 90),
        tolerance: Some(1),
    }
}

async fn totp_device(otp: &Otp, user: &str) -> Device {
    otp.create_totp_device(
        user,
        "phone",
        Some(Secret::from_hex(TOTP_KEY).unwrap()),
        totp_options(),
        true,
    )
    .await
    .unwrap()
}

async fn hotp_device(otp: &Otp, user: &str) -> Device {
    otp.create_hotp_device(
        user,
        "token",
        Some(Secret::from_hex(HOTP_KEY).unwrap()),
        HotpOptions::default(),
        true,
    )
    .await
    .unwrap()
}

async fn stored(otp: &Otp, id: &DeviceId) -> Device {
    otp.device(id).await.unwrap().expect("the device exists")
}

/// Counts the `Verified` events received so far.
fn verified_events(events: &mut tokio::sync::broadcast::Receiver<OtpEvent>) -> usize {
    let mut count = 0;
    while let Ok(event) = events.try_recv() {
        if matches!(event, OtpEvent::Verified { .. }) {
            count += 1;
        }
    }
    count
}

/// The first run of exactly six digits in the body of a received message.
fn code_in(data: &str) -> String {
    let body = data.split_once("\r\n\r\n").map_or(data, |(_, body)| body);
    body.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .unwrap_or_else(|| panic!("no 6-digit code in the message body {body:?}"))
        .to_owned()
}

/// Checks what every "one right code, many tasks" race must show, with factor 0: one winner,
/// every other task Invalid, and each loser counted once, after the winner's success reset the
/// device's count (a loser can only miss after reading the device as the winner left it).
fn assert_exactly_once(what: &str, tally: &Tally, after: &Device) -> Device {
    let winner = tally.the_winner(what).clone();
    assert!(
        tally.throttled.is_empty() && tally.not_allowed.is_empty(),
        "{what}: with factor 0 every loser must be Invalid: {tally}"
    );
    assert_eq!(
        tally.invalid,
        one_to(TASKS - 1),
        "{what}: each loser must be counted once, with its own failure count: {tally}"
    );
    assert_eq!(
        after.throttle.failure_count,
        u32::try_from(TASKS - 1).unwrap(),
        "{what}: the device's failure count: {tally}"
    );
    assert_eq!(
        after.last_used_at, winner.last_used_at,
        "{what}: last_used_at is the winner's"
    );
    winner
}

// ---------------------------------------------------------------------------------------------
// 1. TOTP
// ---------------------------------------------------------------------------------------------

async fn totp_code_is_accepted_once(db: TestDb) {
    let env = Env::with(db, no_throttle(), |b| b).await;
    let mut events = env.otp.subscribe();
    let device = totp_device(&env.otp, "alice").await;

    let tally = verify_race(&env.otp, &device, |_| TOTP_STEP_3.to_owned()).await;
    let after = stored(&env.otp, &device.id).await;
    let winner = assert_exactly_once("TOTP", &tally, &after);

    assert_eq!(winner.state()["last_step"], 3, "the winner matched step 3");
    assert_eq!(
        after.state()["last_step"],
        3,
        "the stored last_step is the matched step: {tally}"
    );
    assert_eq!(verified_events(&mut events), 1, "Verified events: {tally}");
    // The code is spent for good.
    assert!(
        !env.otp
            .verify_token("alice", &device.id, TOTP_STEP_3)
            .await
            .unwrap()
            .is_verified()
    );
}

// ---------------------------------------------------------------------------------------------
// 2. HOTP, backup codes, email codes
// ---------------------------------------------------------------------------------------------

async fn hotp_code_advances_the_counter_once(db: TestDb) {
    let env = Env::with(db, no_throttle(), |b| b).await;
    let device = hotp_device(&env.otp, "alice").await;
    assert_eq!(device.state()["counter"], 0);

    let tally = verify_race(&env.otp, &device, |_| HOTP_COUNTER_0.to_owned()).await;
    let after = stored(&env.otp, &device.id).await;
    let winner = assert_exactly_once("HOTP", &tally, &after);

    assert_eq!(winner.state()["counter"], 1, "the winner's counter");
    assert_eq!(
        after.state()["counter"],
        1,
        "the counter must advance exactly once: {tally}"
    );
}

async fn backup_code_is_used_once(db: TestDb) {
    let env = Env::with(db, no_throttle(), |b| b).await;
    let (device, codes) = env
        .otp
        .create_backup_codes("alice", "Backup", Some(5))
        .await
        .unwrap();
    assert_eq!(env.otp.backup_codes_remaining(&device).unwrap(), 5);
    let code = codes[2].to_string();

    let tally = verify_race(&env.otp, &device, |_| code.clone()).await;
    let after = stored(&env.otp, &device.id).await;
    let winner = assert_exactly_once("backup code", &tally, &after);

    assert_eq!(env.otp.backup_codes_remaining(&winner).unwrap(), 4);
    assert_eq!(
        env.otp.backup_codes_remaining(&after).unwrap(),
        4,
        "exactly one code must be used up: {tally}"
    );
    // The other codes still work, the raced one does not.
    assert!(
        env.otp
            .verify_token("alice", &device.id, &codes[0].to_string())
            .await
            .unwrap()
            .is_verified()
    );
    assert!(
        !env.otp
            .verify_token("alice", &device.id, &code)
            .await
            .unwrap()
            .is_verified()
    );
}

/// No lost update between different codes of one device: each of 8 codes is presented by 4
/// tasks at once; each code must be accepted exactly once and no used code may come back
/// (a lost update would write back a code list that still holds a used code).
async fn distinct_backup_codes_are_each_used_once(db: TestDb) {
    const CODES: usize = 8;
    let env = Env::with(db, no_throttle(), |b| b).await;
    let (device, codes) = env
        .otp
        .create_backup_codes("alice", "Backup", Some(CODES))
        .await
        .unwrap();
    let codes: Vec<String> = codes.iter().map(ToString::to_string).collect();

    let tally = verify_race(&env.otp, &device, |i| codes[i % CODES].clone()).await;
    let after = stored(&env.otp, &device.id).await;

    assert!(tally.errors.is_empty(), "errors in the race: {tally}");
    assert_eq!(
        tally.verified.len(),
        CODES,
        "each code must be accepted exactly once: {tally}"
    );
    assert_eq!(tally.invalid.len(), TASKS - CODES, "{tally}");
    assert_eq!(
        env.otp.backup_codes_remaining(&after).unwrap(),
        0,
        "every code must be used up (a lost update keeps one): {tally}"
    );
    for code in &codes {
        assert!(
            !env.otp
                .verify_token("alice", &device.id, code)
                .await
                .unwrap()
                .is_verified(),
            "a used code came back"
        );
    }
}

async fn email_code_is_accepted_once(db: TestDb) {
    let server = SmtpServer::start().await;
    let mailer = Arc::new(SmtpMailer::from_url(&server.url()).unwrap());
    let env = Env::with(db, no_throttle(), |b| b.with_mailer(mailer)).await;
    let device = env
        .otp
        .create_email_device("alice", "mail", "alice@example.com", true)
        .await
        .unwrap();
    let sent = env
        .otp
        .generate_challenge("alice", &device.id)
        .await
        .unwrap();
    assert!(
        matches!(sent, ChallengeOutcome::Sent { .. }),
        "challenge: {sent:?}"
    );
    let received = server.received();
    assert_eq!(received.len(), 1, "one message");
    let code = code_in(&received[0].data);

    let tally = verify_race(&env.otp, &device, |_| code.clone()).await;
    let after = stored(&env.otp, &device.id).await;
    assert_exactly_once("email code", &tally, &after);

    assert!(
        after.state()["code"].is_null(),
        "the code is consumed: {tally}"
    );
    assert!(
        !env.otp
            .verify_token("alice", &device.id, &code)
            .await
            .unwrap()
            .is_verified()
    );
}

/// Many challenge requests at once: the cooldown lets exactly one through, and exactly one
/// message is sent.
async fn concurrent_challenges_send_one_message(db: TestDb) {
    let server = SmtpServer::start().await;
    let mailer = Arc::new(SmtpMailer::from_url(&server.url()).unwrap());
    let env = Env::with(db, no_throttle(), |b| b.with_mailer(mailer)).await;
    let device = env
        .otp
        .create_email_device("alice", "mail", "alice@example.com", true)
        .await
        .unwrap();

    let results = race(TASKS, |_| {
        let otp = env.otp.clone();
        let id = device.id.clone();
        async move { otp.generate_challenge("alice", &id).await }
    })
    .await;
    let (mut sent, mut cooldown, mut other) = (0, 0, Vec::new());
    for result in &results {
        match result {
            Ok(ChallengeOutcome::Sent { .. }) => sent += 1,
            Ok(ChallengeOutcome::Cooldown { .. }) => cooldown += 1,
            other_outcome => other.push(format!("{other_outcome:?}")),
        }
    }
    let summary = format!("sent {sent}, cooldown {cooldown}, other {other:?}");
    assert_eq!(
        (sent, cooldown, other.len()),
        (1, TASKS - 1, 0),
        "{summary}"
    );
    assert_eq!(server.received().len(), 1, "messages received: {summary}");
    // The code of that one message is the one that works.
    let code = code_in(&server.received()[0].data);
    assert!(
        env.otp
            .verify_token("alice", &device.id, &code)
            .await
            .unwrap()
            .is_verified()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. django-otp's test_concurrent_throttle_count
// ---------------------------------------------------------------------------------------------

/// With factor 0, `TASKS` wrong codes at once: none of the increments is lost, on the device
/// (`throttle.failure_count`) or on the account (`account_failures`).
async fn concurrent_failures_are_all_counted(db: TestDb) {
    let env = Env::with(db, no_throttle(), |b| b).await;
    let totp = totp_device(&env.otp, "totp-user").await;
    let hotp = hotp_device(&env.otp, "hotp-user").await;
    let (backup, _) = env
        .otp
        .create_backup_codes("static-user", "Backup", Some(3))
        .await
        .unwrap();
    let n = u32::try_from(TASKS).unwrap();
    for (device, wrong) in [
        (&totp, WRONG_CODE),
        (&hotp, WRONG_CODE),
        (&backup, WRONG_BACKUP_CODE),
    ] {
        let kind = device.kind().to_owned();
        let tally = verify_race(&env.otp, device, |_| wrong.to_owned()).await;
        assert!(tally.errors.is_empty(), "{kind}: errors: {tally}");
        assert_eq!(
            tally.invalid,
            one_to(TASKS),
            "{kind}: every wrong code must be Invalid, each with its own failure count: {tally}"
        );
        let after = stored(&env.otp, &device.id).await;
        assert_eq!(
            after.throttle.failure_count, n,
            "{kind}: device failure count (lost increments?): {tally}"
        );
        let account = env.otp.account_failures(&device.user_key).await.unwrap();
        assert_eq!(
            account, n,
            "{kind}: account failure count (lost increments?): {tally}"
        );
        assert_eq!(
            after.state(),
            device.state(),
            "{kind}: a miss changes no kind state"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. django-otp's test_serialized_throttling
// ---------------------------------------------------------------------------------------------

/// With factor 1 and a frozen clock, `TASKS` wrong codes at once: the first counted failure
/// throttles the device, so every other attempt is Throttled and not counted.
async fn concurrent_failures_are_throttled_after_the_first(db: TestDb) {
    let env = Env::new(db).await;
    assert_eq!(
        env.otp.settings().totp.throttle_factor,
        Duration::from_secs(1)
    );
    let device = totp_device(&env.otp, "alice").await;

    let tally = verify_race(&env.otp, &device, |_| WRONG_CODE.to_owned()).await;
    assert!(tally.errors.is_empty(), "errors: {tally}");
    assert_eq!(
        tally.invalid,
        [1],
        "exactly one failure must be counted: {tally}"
    );
    assert_eq!(
        tally.throttled,
        vec![1; TASKS - 1],
        "every other attempt must be Throttled at failure count 1: {tally}"
    );
    let after = stored(&env.otp, &device.id).await;
    assert_eq!(after.throttle.failure_count, 1, "device: {tally}");
    assert_eq!(
        env.otp.account_failures("alice").await.unwrap(),
        1,
        "account: {tally}"
    );
    // The right code is refused while throttled, then accepted after the delay.
    assert!(matches!(
        env.otp
            .verify_token("alice", &device.id, TOTP_STEP_3)
            .await
            .unwrap(),
        VerifyOutcome::Throttled {
            failure_count: 1,
            ..
        }
    ));
    env.advance_ms(1_000);
    assert!(
        env.otp
            .verify_token("alice", &device.id, TOTP_STEP_3)
            .await
            .unwrap()
            .is_verified()
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Several processes / servers
// ---------------------------------------------------------------------------------------------

/// "Servers" sharing one database, each with its own connection pool and the same
/// application key.
async fn instances(env: &Env, count: usize) -> Vec<Otp> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let store = Store::connect(&env.db.url).await.expect("connect");
        let otp = Otp::builder(store, KeyRing::parse(SHARED_KEYS).unwrap())
            .with_settings(no_throttle())
            .with_clock(Arc::new(env.clock.clone()))
            .build()
            .unwrap();
        out.push(otp);
    }
    out
}

async fn several_instances_accept_a_code_once(db: TestDb) {
    const SERVERS: usize = 4;
    let env = Env::with(db, no_throttle(), |b| b).await;
    let servers = instances(&env, SERVERS).await;
    let totp = totp_device(&servers[0], "alice").await;
    let (backup, codes) = servers[0]
        .create_backup_codes("bob", "Backup", Some(3))
        .await
        .unwrap();
    let backup_code = codes[1].to_string();

    let hotp_right = hotp_device(&servers[0], "dave").await;
    for (what, device, token) in [
        ("TOTP across servers", &totp, TOTP_STEP_3.to_owned()),
        ("backup code across servers", &backup, backup_code),
        (
            "HOTP across servers",
            &hotp_right,
            HOTP_COUNTER_0.to_owned(),
        ),
    ] {
        let results = race(TASKS, |i| {
            let otp = servers[i % SERVERS].clone();
            let user = device.user_key.clone();
            let id = device.id.clone();
            let token = token.clone();
            async move { otp.verify_token(&user, &id, &token).await }
        })
        .await;
        let tally = Tally::of(results);
        // Read back through a pool that took no part.
        let after = stored(&env.otp, &device.id).await;
        assert_exactly_once(what, &tally, &after);
    }
    assert_eq!(stored(&env.otp, &totp.id).await.state()["last_step"], 3);
    assert_eq!(stored(&env.otp, &hotp_right.id).await.state()["counter"], 1);
    assert_eq!(
        servers[1]
            .backup_codes_remaining(&stored(&env.otp, &backup.id).await)
            .unwrap(),
        2
    );

    // Wrong codes from every server: no lost increment either.
    let hotp = hotp_device(&servers[0], "carol").await;
    let results = race(TASKS, |i| {
        let otp = servers[i % SERVERS].clone();
        let id = hotp.id.clone();
        async move { otp.verify_token("carol", &id, WRONG_CODE).await }
    })
    .await;
    let tally = Tally::of(results);
    assert!(tally.errors.is_empty(), "errors: {tally}");
    assert_eq!(tally.invalid, one_to(TASKS), "{tally}");
    let n = u32::try_from(TASKS).unwrap();
    assert_eq!(
        stored(&env.otp, &hotp.id).await.throttle.failure_count,
        n,
        "device failure count across servers: {tally}"
    );
    assert_eq!(
        env.otp.account_failures("carol").await.unwrap(),
        n,
        "account failure count across servers: {tally}"
    );
    for server in &servers {
        server.store().close().await;
    }
}

// ---------------------------------------------------------------------------------------------
// The deprecated match_token (django-otp's ConcurrencyTestCase.test_match_token)
// ---------------------------------------------------------------------------------------------

/// `TASKS` tasks run `match_token` with the one right code at once: exactly one gets the
/// device. Each loser is a miss, and `match_token` documents that "a miss counts **one**
/// failure against the account budget"; so the account may hold at most one failure per loser.
#[allow(deprecated)]
async fn match_token_accepts_a_code_once(db: TestDb) {
    let env = Env::with(db, no_throttle(), |b| b).await;
    let (device, codes) = env
        .otp
        .create_backup_codes("alice", "Backup", Some(1))
        .await
        .unwrap();
    let code = codes[0].to_string();

    let results = race(TASKS, |_| {
        let otp = env.otp.clone();
        let code = code.clone();
        async move { otp.match_token("alice", &code).await }
    })
    .await;
    let (mut matched, mut missed, mut errors) = (0, 0, Vec::new());
    for result in results {
        match result {
            Ok(Some(_)) => matched += 1,
            Ok(None) => missed += 1,
            Err(err) => errors.push(err),
        }
    }
    let after = stored(&env.otp, &device.id).await;
    let account = env.otp.account_failures("alice").await.unwrap();
    let summary = format!(
        "matched {matched}, missed {missed}, errors {errors:?}; afterwards the device's \
         failure count is {}, the account's {account}",
        after.throttle.failure_count
    );
    assert!(errors.is_empty(), "{summary}");
    assert_eq!((matched, missed), (1, TASKS - 1), "{summary}");
    assert_eq!(
        env.otp.backup_codes_remaining(&after).unwrap(),
        0,
        "{summary}"
    );
    assert!(
        account <= u32::try_from(TASKS - 1).unwrap(),
        "each of the {} misses must count at most one account failure: {summary}",
        TASKS - 1
    );
}

// ---------------------------------------------------------------------------------------------
// The account failure budget under concurrency
// ---------------------------------------------------------------------------------------------

/// With throttling off, the failure budget is the only bound on guessing. An account one
/// failure short of its budget gets `TASKS` wrong codes at once, each on its own device (so
/// that no device compare-and-set serialises them): at most one of them may be checked
/// (Invalid), every other one must be refused (AccountLocked), and the account must end
/// exactly at its limit. Otherwise concurrency buys an attacker extra guesses past the budget.
async fn failure_budget_is_not_overrun_by_concurrent_attempts(db: TestDb) {
    const LIMIT: u32 = 5;
    let mut settings = no_throttle();
    settings.failure_budget.limit = LIMIT;
    let env = Env::with(db, settings, |b| b).await;
    let mut devices = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        devices.push(totp_device(&env.otp, "alice").await);
    }
    for _ in 1..LIMIT {
        let outcome = env
            .otp
            .verify_token("alice", &devices[0].id, WRONG_CODE)
            .await
            .unwrap();
        assert!(
            matches!(outcome, VerifyOutcome::Invalid { .. }),
            "{outcome:?}"
        );
    }
    assert_eq!(env.otp.account_failures("alice").await.unwrap(), LIMIT - 1);

    let results = race(TASKS, |i| {
        let otp = env.otp.clone();
        let id = devices[i].id.clone();
        async move { otp.verify_token("alice", &id, WRONG_CODE).await }
    })
    .await;
    let tally = Tally::of(results);
    let account = env.otp.account_failures("alice").await.unwrap();
    let locked = tally
        .not_allowed
        .iter()
        .filter(|r| **r == NotAllowedReason::AccountLocked)
        .count();
    assert!(tally.errors.is_empty(), "errors: {tally}");
    assert!(
        tally.invalid.len() <= 1 && locked >= TASKS - 1,
        "only the last failure of the budget may be checked, the rest refused; {} wrong \
         codes were checked against a budget with 1 left (the account ends at {account} \
         of {LIMIT}): {tally}",
        tally.invalid.len()
    );
    assert_eq!(account, LIMIT, "account failures: {tally}");
}

/// Two first `add_static_token` calls at once must still leave the user one backup-code
/// device, holding every code.
async fn first_static_tokens_at_once_share_one_device(db: TestDb) {
    let env = Env::with(db, no_throttle(), |b| b).await;
    let results = race(8, |_| {
        let otp = env.otp.clone();
        async move { otp.add_static_token("carol", None).await }
    })
    .await;
    let codes: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("add_static_token failed").1)
        .collect();
    let devices = env.otp.devices_for_user("carol", None).await.unwrap();
    assert_eq!(
        devices.len(),
        1,
        "one backup-code device, not {}",
        devices.len()
    );
    assert_eq!(env.otp.backup_codes_remaining(&devices[0]).unwrap(), 8);
    for code in codes {
        let outcome = env
            .otp
            .verify_token("carol", &devices[0].id, &code.to_string())
            .await
            .unwrap();
        assert!(outcome.is_verified(), "{outcome:?}");
    }
}

/// A kind that allows one device per user (backup codes) gets one however many enrolments
/// race: the others are refused with `Error::OnePerUser`.
async fn concurrent_enrolments_of_a_one_per_user_kind_make_one_device(db: TestDb) {
    let env = Env::with(db, no_throttle(), |b| b).await;
    let results = race(8, |_| {
        let otp = env.otp.clone();
        async move {
            otp.enrol_device(
                "dora",
                "static",
                "Codes",
                &otp_core::EnrolInput::count(Some(5)),
            )
            .await
        }
    })
    .await;
    let made = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(made, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|result| result.as_ref().err())
            .all(|err| err.contains(r#"OnePerUser("static")"#)),
        "{results:?}"
    );
    assert_eq!(
        env.otp.devices_for_user("dora", None).await.unwrap().len(),
        1
    );
}

/// Verifications dropped at any point (a client that went away, a request timeout) leave no
/// transaction open behind them: afterwards a verification completes at once, and a second
/// pool on the same database sees exactly what the first one does. (SQLite's combined write
/// is a batch of statements in one transaction; one dropped half-way must close its
/// connection rather than go back to the pool with the transaction open.)
async fn dropped_verifications_leave_no_transaction_open(db: TestDb) {
    let url = db.url.clone();
    let mut settings = no_throttle();
    settings.failure_budget.limit = 1000;
    let env = Env::with(db, settings, |b| b).await;
    let device = totp_device(&env.otp, "alice").await;
    let mut settled = 0;
    for i in 0..200_u64 {
        let otp = env.otp.clone();
        let id = device.id.clone();
        // Dropped after a varying share of its work, from nothing to all of it.
        let attempt = async move { otp.verify_token("alice", &id, WRONG_CODE).await };
        if let Ok(outcome) =
            tokio::time::timeout(Duration::from_micros(i * 37 % 1500), attempt).await
        {
            assert!(
                matches!(outcome, Ok(VerifyOutcome::Invalid { .. })),
                "{outcome:?}"
            );
            settled += 1;
        }
    }
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        env.otp.verify_token("alice", &device.id, WRONG_CODE),
    )
    .await
    .expect("a verification after the dropped ones must not wait for a lock");
    assert!(
        matches!(outcome, Ok(VerifyOutcome::Invalid { .. })),
        "{outcome:?}"
    );

    let other = Otp::builder(Store::connect(&url).await.unwrap(), KeyRing::generate())
        .build()
        .unwrap();
    let here = env.otp.account_failures("alice").await.unwrap();
    assert_eq!(other.account_failures("alice").await.unwrap(), here);
    assert_eq!(
        other.device(&device.id).await.unwrap().unwrap().throttle,
        stored(&env.otp, &device.id).await.throttle
    );
    // Every attempt that finished counted, and none counted twice.
    assert!(
        here > settled && here <= 201,
        "{here} failures for {settled} settled attempts of 201"
    );
    other.store().close().await;
}

store_tests!(
    first_static_tokens_at_once_share_one_device,
    concurrent_enrolments_of_a_one_per_user_kind_make_one_device,
    totp_code_is_accepted_once,
    hotp_code_advances_the_counter_once,
    backup_code_is_used_once,
    distinct_backup_codes_are_each_used_once,
    email_code_is_accepted_once,
    concurrent_challenges_send_one_message,
    concurrent_failures_are_all_counted,
    concurrent_failures_are_throttled_after_the_first,
    several_instances_accept_a_code_once,
    match_token_accepts_a_code_once,
    failure_budget_is_not_overrun_by_concurrent_attempts,
    dropped_verifications_leave_no_transaction_open,
);
