//! Crash safety: `otp serve` under a verification load is killed with SIGKILL at moments
//! drawn from a seeded generator, and started again on the same database, a few times over
//! (SQLite and PostgreSQL). Afterwards:
//!
//! - no code accepted once is accepted again: after each restart every accepted code is
//!   presented again and refused (except a spent HOTP code whose six digits happen to equal
//!   those of a code in the server's window, which is rightly accepted: it is left out and
//!   counted), and no code ever gets two acceptances, even from the two clients that race for
//!   the same codes;
//! - no throttle or failure-budget state is lost: a user who only ever sent wrong codes has at
//!   least as many failures on the device and on the account as were acknowledged with
//!   `invalid_token` before the kills (and no more than were sent), a lock acknowledged before
//!   a kill holds after it, and the device's throttling holds across a restart;
//! - the database is consistent: SQLite's `PRAGMA integrity_check` passes after each kill, the
//!   server starts and serves on it, the backup codes left are exactly those never sent, and
//!   the HOTP counter follows the last code sent.
//!
//! The seed is printed; `OTP_TEST_SEED=N` replays a run.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::flows::{
    add_device, add_hotp_device_without_coincidences, add_user, error_code, hotp, hotp_codes_from,
    listed_device, outcome, reset_account, totp, totp_codes_near_now, try_login, try_verify,
    verify, wrong_code,
};
use common::http::{Client, Response};
use common::probe::Probe;
use common::server::Server;
use common::{SplitMix64, TestDb};
use otp_oath::Hotp;
use serde_json::Value;

/// Kills (and restarts) per database.
const KILLS: usize = 5;
/// Backup codes of the user who presents right codes.
const BACKUP_CODES: usize = 50;
/// The failure budget (the default): the user who sends only wrong codes reaches it.
const BUDGET: u64 = 100;
/// More HOTP counters from the next one than the server's window holds (tolerance 5): a wrong
/// code is none of their codes.
const WINDOW: u64 = 8;
/// Alice's HOTP device has no code equal to one of the `WINDOW` codes after it up to this
/// counter, more than a run reaches (it is checked): the client that loses a race for a code
/// presents it when the server's window starts at the next counter.
const HOTP_COUNTERS: u64 = 5_000;
/// At most this many failures in a row for the right-code user before the test resets the
/// account (re-presenting spent codes must never lock it: a 403 would not test them).
const RETRY_CHUNK: usize = 80;

/// The servers' settings: no throttling (the load is not to be slowed down), no per-client
/// limit (every client is 127.0.0.1), and a quiet log.
const ENV: &[(&str, &str)] = &[
    ("OTP_TOTP_THROTTLE_FACTOR", "0"),
    ("OTP_HOTP_THROTTLE_FACTOR", "0"),
    ("OTP_STATIC_THROTTLE_FACTOR", "0"),
    ("OTP_RATE_LIMIT_PER_MINUTE", "0"),
    ("OTP_LOG", "warn"),
];

/// A right code of the user "alice".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Code {
    /// The HOTP code of this counter.
    Hotp(u64),
    /// The backup code of this index.
    Backup(usize),
}

/// What the test knows, shared by the load threads.
#[derive(Debug, Default)]
struct Model {
    /// The next HOTP counter and backup code to present.
    hotp_next: u64,
    backup_next: usize,
    /// Acceptances of each code (every one must have at most one).
    accepted: HashMap<Code, usize>,
    /// Right codes whose request got no whole answer: the server may or may not have spent
    /// them; they are presented again after the restart.
    in_doubt: BTreeSet<Code>,
    /// Right codes that reached the server's verification (answered, or in doubt).
    sent: BTreeSet<Code>,
    /// Bob's wrong codes answered `invalid_token`.
    bob_invalid: u64,
    /// Bob's wrong codes without a whole answer (each may or may not have been counted).
    bob_unanswered: u64,
    /// Whether a `verification_not_allowed` for Bob was acknowledged.
    bob_locked: bool,
    /// Answers that should never happen, with what was asked.
    violations: Vec<String>,
    /// Answers seen, for the report.
    answers: u64,
    /// Codes in doubt that the killed server had spent (refused after the restart), and those
    /// it had not (accepted after the restart), for the report.
    doubt_spent: u64,
    doubt_unspent: u64,
    /// Spent HOTP codes not presented again because their digits equal those of a counter in
    /// the server's window, for the report.
    coincidences: u64,
}

impl Model {
    /// Records a 200 for `code`.
    fn accept(&mut self, code: Code, context: &str) {
        let count = self.accepted.entry(code).or_insert(0);
        *count += 1;
        if *count > 1 {
            self.violations
                .push(format!("{code:?} accepted {count} times ({context})"));
        }
    }

    /// Moves the next codes past `code`, which the server has spent (or skipped).
    fn advance_past(&mut self, code: Code) {
        match code {
            Code::Hotp(counter) => self.hotp_next = self.hotp_next.max(counter + 1),
            Code::Backup(index) => self.backup_next = self.backup_next.max(index + 1),
        }
    }
}

/// The users and what the test needs of them.
struct Fixture {
    alice_hotp: Value,
    alice_backup: Value,
    bob_key: String,
    bob_totp: Value,
    hotp: Hotp,
}

impl Fixture {
    fn text(&self, code: Code) -> String {
        match code {
            Code::Hotp(counter) => self.hotp.code(counter).to_string(),
            Code::Backup(index) => self.alice_backup["codes"][index]
                .as_str()
                .expect("a backup code")
                .to_owned(),
        }
    }

    fn device(&self, code: Code) -> &str {
        match code {
            Code::Hotp(_) => self.alice_hotp["id"].as_str().unwrap(),
            Code::Backup(_) => self.alice_backup["id"].as_str().unwrap(),
        }
    }
}

/// A session of `user` on the current server that is past the password, or `Err` when the
/// server is gone.
fn ensure_login(client: &mut Client, user: &str, logged_in: &mut bool) -> Result<(), ()> {
    if *logged_in {
        return Ok(());
    }
    match try_login(client, user) {
        Ok(response) if response.status == 200 => {
            *logged_in = true;
            Ok(())
        }
        Ok(response) => panic!("login {user}: {} {}", response.status, response.body),
        Err(_) => Err(()),
    }
}

/// Whether an answer says the session lost its login (a kill between the database write of a
/// new session id and the answer leaves the client with the old cookie): the code was not
/// looked at.
fn lost_login(response: &Response) -> bool {
    response.status == 401
        && matches!(
            error_code(response).as_str(),
            "login_required" | "login_expired"
        )
}

/// Sends verifications through `client`, logged in as `user`, to the server at `url` until the
/// server dies or `stop` is set. `next` picks, with the model locked, the device, the code and
/// what the code stands for; `judge` takes, with the model locked again, that and the answer
/// (`None` when no whole answer came: the server died). An answer that says the session lost
/// its login is counted, and the user logs in again.
fn drive<T>(
    url: &str,
    client: &mut Client,
    user: &str,
    model: &Mutex<Model>,
    stop: &AtomicBool,
    mut next: impl FnMut(&Model) -> (String, String, T),
    mut judge: impl FnMut(&mut Model, T, Option<&Response>),
) {
    *client = Client::with_cookie_of(url, client);
    // The session survives restarts (it is in the database); if not, log in again.
    let mut logged_in = client.cookie.is_some();
    while !stop.load(Ordering::Relaxed) {
        if ensure_login(client, user, &mut logged_in).is_err() {
            return;
        }
        let (device, text, what) = next(&model.lock().unwrap());
        let answer = try_verify(client, &device, &text);
        let mut model = model.lock().unwrap();
        let Ok(answer) = answer else {
            judge(&mut model, what, None);
            return;
        };
        model.answers += 1;
        if lost_login(&answer) {
            logged_in = false;
            continue;
        }
        judge(&mut model, what, Some(&answer));
    }
}

/// One of the two clients of Alice: right HOTP codes (half the time), backup codes, and wrong
/// codes, racing the other client for the same right codes, until the server dies.
fn alice_load(
    url: &str,
    client: &mut Client,
    fixture: &Fixture,
    model: &Mutex<Model>,
    rng: &mut SplitMix64,
    stop: &AtomicBool,
) {
    let next = |model: &Model| {
        let code = match rng.in_range(0..=9) {
            0..=4 => Some(Code::Hotp(model.hotp_next)),
            5..=6 if model.backup_next < BACKUP_CODES => Some(Code::Backup(model.backup_next)),
            _ => None,
        };
        match code {
            Some(code) => {
                let text = fixture.text(code);
                (
                    fixture.device(code).to_owned(),
                    text.clone(),
                    (Some(code), text),
                )
            }
            None => {
                let avoid = hotp_codes_from(&fixture.hotp, model.hotp_next, WINDOW);
                let text = wrong_code(rng, &avoid);
                let device = fixture.alice_hotp["id"].as_str().unwrap().to_owned();
                (device, text.clone(), (None, text))
            }
        }
    };
    let judge =
        |model: &mut Model, (code, text): (Option<Code>, String), answer: Option<&Response>| {
            let Some(answer) = answer else {
                if let Some(code) = code {
                    model.sent.insert(code);
                    model.in_doubt.insert(code);
                }
                return;
            };
            match (code, answer.status) {
                (Some(code), 200) => {
                    model.sent.insert(code);
                    model.accept(code, "under load");
                    model.advance_past(code);
                }
                (Some(code), 401) if error_code(answer) == "invalid_token" => {
                    // Spent by the other client (or before a kill): a right code is never refused
                    // otherwise.
                    model.sent.insert(code);
                    model.advance_past(code);
                }
                (None, 401) if error_code(answer) == "invalid_token" => {}
                (None, 200) => model
                    .violations
                    .push(format!("a wrong code was accepted: {text}")),
                _ => model
                    .violations
                    .push(format!("alice {code:?}: {} {}", answer.status, answer.body)),
            }
        };
    drive(url, client, "alice", model, stop, next, judge);
}

/// Bob only sends wrong TOTP codes, until the server dies.
fn bob_load(
    url: &str,
    client: &mut Client,
    fixture: &Fixture,
    model: &Mutex<Model>,
    rng: &mut SplitMix64,
    stop: &AtomicBool,
) {
    let avoid = totp_codes_near_now(&totp(&fixture.bob_totp));
    let device = fixture.bob_totp["id"].as_str().unwrap();
    let next = |_: &Model| (device.to_owned(), wrong_code(rng, &avoid), ());
    let judge = |model: &mut Model, (), answer: Option<&Response>| {
        let Some(answer) = answer else {
            model.bob_unanswered += 1;
            return;
        };
        match outcome(answer) {
            (401, code) if code == "invalid_token" => model.bob_invalid += 1,
            (403, code) if code == "verification_not_allowed" => model.bob_locked = true,
            _ => model
                .violations
                .push(format!("bob: {} {}", answer.status, answer.body)),
        }
    };
    drive(url, client, "bob", model, stop, next, judge);
}

/// Bob's failures on the device and the account are within what the acknowledged answers and
/// the requests without one allow.
#[track_caller]
fn check_bob(db: &TestDb, probe: &mut Probe, fixture: &Fixture, model: &Model, when: &str) {
    let device = listed_device(db, "bob", fixture.bob_totp["id"].as_str().unwrap());
    let on_device = device["throttle_failures"].as_u64().unwrap();
    let on_account = probe.account_failures(&fixture.bob_key);
    let acknowledged = model.bob_invalid;
    let most = acknowledged + model.bob_unanswered;
    assert!(
        (acknowledged..=most).contains(&on_device),
        "{when}: the device counts {on_device} failures; {acknowledged} were acknowledged, \
         {most} at most sent"
    );
    assert!(
        (acknowledged..=most.min(BUDGET)).contains(&on_account),
        "{when}: the account counts {on_account} failures; {acknowledged} were acknowledged, \
         {most} at most sent, the budget is {BUDGET}"
    );
    // Each failure of the device was first claimed from the account's budget.
    assert!(
        on_device <= on_account,
        "{when}: {on_device} > {on_account}"
    );
    if model.bob_locked {
        assert_eq!(on_account, BUDGET, "{when}: a lock was acknowledged");
    }
    assert_eq!(device["last_used_at"], Value::Null, "{when}: {device}");
}

/// After a restart: the codes in doubt are presented once more (an acceptance now is their
/// first), then every accepted code, which must all be refused.
fn audit(db: &TestDb, server: &Server, fixture: &Fixture, model: &mut Model, when: &str) {
    let mut auditor = server.client();
    let mut attempts = 0;
    let mut present = |model: &mut Model, code: Code| -> Response {
        if attempts % RETRY_CHUNK == 0 {
            reset_account(db, "alice");
            auditor = server.client();
            common::flows::login_pending(&mut auditor, "alice");
        }
        attempts += 1;
        let answer = verify(&mut auditor, fixture.device(code), &fixture.text(code));
        model.answers += 1;
        answer
    };
    let in_doubt = std::mem::take(&mut model.in_doubt);
    for code in in_doubt {
        let answer = present(model, code);
        match outcome(&answer) {
            (200, _) => {
                model.doubt_unspent += 1;
                model.accept(code, &format!("{when}, in doubt before"));
            }
            (401, error) if error == "invalid_token" => model.doubt_spent += 1,
            other => model.violations.push(format!(
                "{when}: {code:?} in doubt: {other:?} {}",
                answer.body
            )),
        }
        model.advance_past(code);
    }
    // The codes in doubt are settled: the server's HOTP counter is now `hotp_next`. A spent
    // code whose six digits equal those of a counter in the server's window is a right code
    // again (one chance in 10^6 per counter, and a run presents hundreds of spent codes again):
    // it is not presented.
    let window = hotp_codes_from(&fixture.hotp, model.hotp_next, WINDOW);
    let mut accepted: Vec<Code> = model.accepted.keys().copied().collect();
    accepted.sort();
    for code in accepted {
        if matches!(code, Code::Hotp(_)) && window.contains(&fixture.text(code)) {
            model.coincidences += 1;
            continue;
        }
        let answer = present(model, code);
        match outcome(&answer) {
            (401, error) if error == "invalid_token" => {}
            (200, _) => model.accept(code, &format!("{when}, presented again")),
            other => model
                .violations
                .push(format!("{when}: {code:?} again: {other:?} {}", answer.body)),
        }
    }
    reset_account(db, "alice");
}

fn crash_safety(db: &mut TestDb) {
    let seed = std::env::var("OTP_TEST_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(if db.is_postgres() {
            0x5eed_9057
        } else {
            0x5eed_5117
        });
    eprintln!("crash test seed {seed} (OTP_TEST_SEED={seed} replays it)");
    let mut rng = SplitMix64::new(seed);
    let started = Instant::now();

    add_user(db, "alice", &[]);
    let bob_key = add_user(db, "bob", &[]);
    let alice_hotp = add_hotp_device_without_coincidences(db, "alice", HOTP_COUNTERS, WINDOW);
    let count = BACKUP_CODES.to_string();
    let alice_backup = add_device(db, "static", "alice", &["--count", &count]);
    let bob_totp = add_device(db, "totp", "bob", &[]);
    let fixture = Fixture {
        hotp: hotp(&alice_hotp),
        alice_hotp,
        alice_backup,
        bob_key,
        bob_totp,
    };
    let model = Mutex::new(Model::default());
    // The clients keep their cookies across restarts.
    let mut clients: [Client; 3] = std::array::from_fn(|_| Client::new("http://127.0.0.1:1"));
    let mut probe: Option<Probe> = None;
    for round in 0..KILLS {
        let mut server = Server::start(db, ENV);
        let probe = probe.get_or_insert_with(|| Probe::open(db));
        let when = format!("after {round} kills");
        {
            let mut model = model.lock().unwrap();
            check_bob(db, probe, &fixture, &model, &when);
            audit(db, &server, &fixture, &mut model, &when);
        }
        // The load, and the kill at a moment of the generator's choosing.
        let stop = AtomicBool::new(false);
        let kill_after = Duration::from_millis(rng.in_range(150..=900));
        let seeds: Vec<u64> = (0..clients.len()).map(|_| rng.next_u64()).collect();
        let url = server.url.clone();
        let status = std::thread::scope(|scope| {
            for (index, (client, seed)) in clients.iter_mut().zip(seeds).enumerate() {
                let (url, fixture, model, stop) = (&url, &fixture, &model, &stop);
                scope.spawn(move || {
                    let mut rng = SplitMix64::new(seed);
                    if index < 2 {
                        alice_load(url, client, fixture, model, &mut rng, stop);
                    } else {
                        bob_load(url, client, fixture, model, &mut rng, stop);
                    }
                });
            }
            std::thread::sleep(kill_after);
            let status = server.kill();
            stop.store(true, Ordering::Relaxed);
            status
        });
        assert_eq!(status.code(), None, "killed by a signal: {status:?}");
        if let Some(check) = probe.integrity_check() {
            assert_eq!(
                check,
                "ok",
                "PRAGMA integrity_check after kill {}",
                round + 1
            );
        }
        let model = model.lock().unwrap();
        eprintln!(
            "kill {} after {kill_after:?}: {} answers so far, {} codes accepted, {} in doubt, \
             bob {} failures acknowledged, {} unanswered",
            round + 1,
            model.answers,
            model.accepted.len(),
            model.in_doubt.len(),
            model.bob_invalid,
            model.bob_unanswered,
        );
    }

    // The last restart: the audit, then the consistency of what is left.
    let server = Server::start(db, ENV);
    let probe = probe.as_mut().expect("opened");
    let mut model = model.into_inner().unwrap();
    check_bob(db, probe, &fixture, &model, "at the end");
    audit(db, &server, &fixture, &mut model, "at the end");
    assert!(
        model.hotp_next + WINDOW <= HOTP_COUNTERS,
        "the run went past the counters checked for coincidences: {}",
        model.hotp_next
    );
    assert!(
        model.violations.is_empty(),
        "seed {seed}: {:#?}",
        model.violations
    );
    assert!(
        model.accepted.len() >= KILLS,
        "the load must get codes accepted: {:?}",
        model.accepted
    );
    assert!(model.bob_invalid > 0, "the load must count failures");
    let backup_sent = model
        .sent
        .iter()
        .filter(|code| matches!(code, Code::Backup(_)))
        .count();
    let listed = listed_device(db, "alice", fixture.alice_backup["id"].as_str().unwrap());
    assert_eq!(
        listed["codes_remaining"],
        BACKUP_CODES - backup_sent,
        "every backup code sent is spent, every other one is left: {listed}"
    );
    let mut client = server.client();
    common::flows::login_pending(&mut client, "alice");
    if backup_sent < BACKUP_CODES {
        let next = Code::Backup(model.backup_next);
        verify(&mut client, fixture.device(next), &fixture.text(next))
            .assert_status(200, "a backup code never sent");
    }
    // The HOTP counter follows the last code sent: the next one is accepted.
    let next = Code::Hotp(model.hotp_next);
    verify(&mut client, fixture.device(next), &fixture.text(next))
        .assert_status(200, "the HOTP code after the last one sent");
    // Bob's throttling survives a restart: with django-otp's default factor, his failures
    // (at least the acknowledged ones) mean a long wait, whatever the code.
    drop(server);
    let server = Server::start(
        db,
        &[
            ("OTP_TOTP_THROTTLE_FACTOR", "1"),
            ("OTP_RATE_LIMIT_PER_MINUTE", "0"),
        ],
    );
    let mut bob = server.client();
    common::flows::login_pending(&mut bob, "bob");
    let right = totp(&fixture.bob_totp)
        .code_at(common::flows::now_unix())
        .unwrap()
        .to_string();
    let throttled = verify(&mut bob, fixture.bob_totp["id"].as_str().unwrap(), &right);
    assert_eq!(outcome(&throttled), (429, "n_failed_attempts".to_owned()));
    let failures = throttled.json()["failure_count"].as_u64().unwrap();
    assert!(
        failures >= model.bob_invalid,
        "{failures} < {}",
        model.bob_invalid
    );
    eprintln!(
        "{KILLS} kills: {} answers, {} codes accepted once each ({} in doubt at a kill and \
         spent by it, {} not; {} not presented again as the digits of a later counter), \
         bob {} failures acknowledged, in {:?}",
        model.answers,
        model.accepted.len(),
        model.doubt_spent,
        model.doubt_unspent,
        model.coincidences,
        model.bob_invalid,
        started.elapsed()
    );
}

database_tests!(crash_safety);
