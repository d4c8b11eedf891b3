//! Brute force through the JSON API, bounded: one `otp serve` on loopback, a fixed number of
//! guesses as fast as a few threads can send them, and a time limit. No guess may be accepted;
//! the account locks after at most 100 consecutive failures (NIST SP 800-63B § 5.2.2);
//! throttling delays are honoured; the user recovers with a backup code or an operator reset;
//! and each client address gets only so many login and verification attempts a minute; wrong
//! passwords for one account, from any number of addresses and servers, back off.

mod common;

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::flows::{
    PASSWORD, add_device, add_user, assert_throttled, json_login, listed_device, login_pending,
    outcome, pending_client, reset_account, retry_after, totp, totp_code_now, totp_codes_near_now,
    verify, wrong_code,
};
use common::http::{Client, Response};
use common::probe::Probe;
use common::server::Server;
use common::{SplitMix64, TestDb};
use serde_json::{Value, json};

/// Guesses of the attack: half as many again as the failure budget.
const GUESSES: usize = 150;
/// Threads sending them.
const ATTACKERS: usize = 4;
/// NIST SP 800-63B: at most 100 consecutive failed attempts.
const BUDGET: usize = 100;
/// The whole attack must end within this (it takes a few seconds on two cores).
const ATTACK_TIME_LIMIT: Duration = Duration::from_secs(90);

/// Settings of the attack scenarios: throttling off, to go as fast as the server can, and no
/// per-client limit, so that the account's failure budget is what stops the attacker.
const FAST: &[(&str, &str)] = &[
    ("OTP_TOTP_THROTTLE_FACTOR", "0"),
    ("OTP_RATE_LIMIT_PER_MINUTE", "0"),
    ("OTP_LOG", "warn"),
];

/// A user with a TOTP device and ten backup codes.
struct Victim {
    key: String,
    totp: Value,
    backup: Value,
}

fn victim(db: &TestDb, name: &str) -> Victim {
    let key = add_user(db, name, &[]);
    let totp = add_device(db, "totp", name, &[]);
    let backup = add_device(db, "static", name, &[]);
    Victim { key, totp, backup }
}

fn id(device: &Value) -> &str {
    device["id"].as_str().unwrap()
}

/// `GUESSES` wrong TOTP codes from `ATTACKERS` threads, each with its own session past the
/// password (the attacker knows it), as fast as the server answers. Returns every answer.
fn attack(server: &Server, name: &str, victim: &Victim) -> Vec<Response> {
    let avoid = totp_codes_near_now(&totp(&victim.totp));
    let started = Instant::now();
    let answers = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for attacker in 0..ATTACKERS {
            let mut client = server.client();
            let answers = Arc::clone(&answers);
            let avoid = &avoid;
            scope.spawn(move || {
                login_pending(&mut client, name);
                let mut rng = SplitMix64::new(0xb7u64 << 8 | attacker as u64);
                for _ in 0..GUESSES / ATTACKERS + usize::from(attacker < GUESSES % ATTACKERS) {
                    let guess = wrong_code(&mut rng, avoid);
                    let answer = verify(&mut client, id(&victim.totp), &guess);
                    answers.lock().unwrap().push(answer);
                }
            });
        }
    });
    let elapsed = started.elapsed();
    eprintln!("{GUESSES} guesses in {elapsed:?}");
    assert!(elapsed < ATTACK_TIME_LIMIT, "the attack took {elapsed:?}");
    Arc::try_unwrap(answers).unwrap().into_inner().unwrap()
}

/// The attack's answers: none accepted, exactly `BUDGET` judged wrong, every later one refused
/// because the account is locked; the device counted exactly the judged ones.
#[track_caller]
fn assert_locked_after_budget(db: &TestDb, answers: &[Response], victim: &Victim, name: &str) {
    assert_eq!(answers.len(), GUESSES);
    let mut tally = std::collections::BTreeMap::new();
    for answer in answers {
        assert!(answer.status < 500, "{}: {}", answer.status, answer.body);
        *tally.entry(outcome(answer)).or_insert(0usize) += 1;
    }
    let expected = std::collections::BTreeMap::from([
        ((401, "invalid_token".to_owned()), BUDGET),
        (
            (403, "verification_not_allowed".to_owned()),
            GUESSES - BUDGET,
        ),
    ]);
    assert_eq!(tally, expected, "zero accepted, locked after {BUDGET}");
    let listed = listed_device(db, name, id(&victim.totp));
    assert_eq!(listed["throttle_failures"], BUDGET, "{listed}");
    assert_eq!(listed["last_used_at"], Value::Null, "never used: {listed}");
    let mut probe = Probe::open(db);
    assert_eq!(probe.account_failures(&victim.key), BUDGET as u64);
}

/// A locked account refuses even the right code, to any session.
#[track_caller]
fn assert_right_code_refused(server: &Server, name: &str, victim: &Victim) {
    let mut client = pending_client(server, name);
    let code = totp_code_now(&victim.totp);
    let refused = verify(&mut client, id(&victim.totp), &code);
    assert_eq!(
        outcome(&refused),
        (403, "verification_not_allowed".to_owned()),
        "{}",
        refused.body
    );
    assert!(
        refused.json()["message"]
            .as_str()
            .unwrap()
            .contains("backup code"),
        "the message points to the way out: {}",
        refused.body
    );
}

/// The account of a new user `name`, locked by [`attack`] as [`assert_locked_after_budget`]
/// and [`assert_right_code_refused`] say; its database and server.
fn locked_account(name: &str) -> (TestDb, Victim, Server) {
    let db = TestDb::sqlite();
    let victim = victim(&db, name);
    let server = Server::start(&db, FAST);
    let answers = attack(&server, name, &victim);
    assert_locked_after_budget(&db, &answers, &victim, name);
    assert_right_code_refused(&server, name, &victim);
    (db, victim, server)
}

#[test]
fn guesses_lock_the_account_and_a_backup_code_recovers_it() {
    let (db, victim, server) = locked_account("alice");

    // The legitimate user: a backup code still works (backup codes are how a locked account
    // is recovered), and it restores the failure budget.
    let mut user = pending_client(&server, "alice");
    let codes = victim.backup["codes"].as_array().unwrap();
    let recovered = verify(&mut user, id(&victim.backup), codes[0].as_str().unwrap());
    recovered.assert_status(200, "a backup code on a locked account");
    let mut probe = Probe::open(&db);
    assert_eq!(probe.account_failures(&victim.key), 0, "the budget is back");
    // The authenticator works again (its next code; the throttling of the device is off).
    let mut again = pending_client(&server, "alice");
    let code = totp_code_now(&victim.totp);
    verify(&mut again, id(&victim.totp), &code).assert_status(200, "TOTP again");
    let listed = listed_device(&db, "alice", id(&victim.totp));
    assert_eq!(listed["throttle_failures"], 0, "a success resets: {listed}");
    // The backup code is spent.
    let mut later = pending_client(&server, "alice");
    let spent = verify(&mut later, id(&victim.backup), codes[0].as_str().unwrap());
    assert_eq!(outcome(&spent), (401, "invalid_token".to_owned()));
}

#[test]
fn guesses_lock_the_account_and_an_operator_reset_recovers_it() {
    let (db, victim, server) = locked_account("bob");

    // The operator (after checking who is asking) clears the count.
    assert_eq!(reset_account(&db, "bob"), BUDGET as u64);
    let mut user = pending_client(&server, "bob");
    let code = totp_code_now(&victim.totp);
    verify(&mut user, id(&victim.totp), &code).assert_status(200, "the right code after the reset");
    assert_eq!(reset_account(&db, "bob"), 0);
}

#[test]
fn throttling_delays_are_honoured() {
    let db = TestDb::sqlite();
    let victim = victim(&db, "carol");
    // A factor of 3 s: 3 s after the first failure, 6 s after the second, ... (django-otp's
    // default of 1 s would need the next requests to come within a second, which a loaded
    // machine does not promise).
    let server = Server::start(
        &db,
        &[
            ("OTP_TOTP_THROTTLE_FACTOR", "3"),
            ("OTP_RATE_LIMIT_PER_MINUTE", "0"),
        ],
    );
    let totp = totp(&victim.totp);
    let avoid = totp_codes_near_now(&totp);
    let mut rng = SplitMix64::new(7);
    let mut client = pending_client(&server, "carol");
    let device = id(&victim.totp);

    let first = verify(&mut client, device, &wrong_code(&mut rng, &avoid));
    assert_eq!(outcome(&first), (401, "invalid_token".to_owned()));
    // At once: throttled, whatever the code, and the refusal changes nothing.
    let throttled = verify(&mut client, device, &wrong_code(&mut rng, &avoid));
    let retry_after = assert_throttled(&throttled);
    assert!((1..=3).contains(&retry_after), "{retry_after}");
    assert_eq!(throttled.json()["retry_after"], retry_after);
    assert_eq!(throttled.json()["failure_count"], 1);
    let right = totp_code_now(&victim.totp);
    let also_throttled = verify(&mut client, device, &right);
    assert_eq!(
        outcome(&also_throttled),
        (429, "n_failed_attempts".to_owned()),
        "the right code waits too"
    );
    let listed = listed_device(&db, "carol", device);
    assert_eq!(
        listed["throttle_failures"], 1,
        "throttled attempts are not counted: {listed}"
    );

    // Waiting as long as told is enough.
    std::thread::sleep(Duration::from_secs(retry_after));
    verify(&mut client, device, &right).assert_status(200, "after Retry-After");
    let listed = listed_device(&db, "carol", device);
    assert_eq!(listed["throttle_failures"], 0, "{listed}");
}

/// Settings of the rate-limit scenarios: ten attempts per client and minute (throttling and
/// the password back-off off, so that the limit is the only thing that refuses).
const LIMITED: &[(&str, &str)] = &[
    ("OTP_RATE_LIMIT_PER_MINUTE", "10"),
    ("OTP_TOTP_THROTTLE_FACTOR", "0"),
    ("OTP_PASSWORD_BACKOFF", "0"),
    ("OTP_LOG", "warn"),
];

/// A JSON 429 of the rate limit, with a `Retry-After` from 1 to `max` seconds.
#[track_caller]
fn assert_rate_limited_json(response: &Response, what: &str, max: u64) -> u64 {
    assert_eq!(
        outcome(response),
        (429, "rate_limited".to_owned()),
        "{what}: {}",
        response.body
    );
    let retry_after = retry_after(response);
    assert!((1..=max).contains(&retry_after), "{what}: {retry_after}");
    assert_eq!(response.header("cache-control"), Some("no-store"));
    retry_after
}

#[test]
fn logins_and_verifications_are_rate_limited_per_client_address() {
    rate_limited_per_client_address(&TestDb::sqlite(), LIMITED);
}

/// The same with the budgets in the database (the default on PostgreSQL).
#[test]
fn budgets_in_the_database_limit_the_same() {
    let shared: Vec<(&str, &str)> = LIMITED
        .iter()
        .copied()
        .chain([("OTP_RATE_LIMIT_SHARED", "true")])
        .collect();
    let sqlite = TestDb::sqlite();
    rate_limited_per_client_address(&sqlite, &shared);
    assert_budgets_in_the_database(&sqlite);
    if let Some(db) = TestDb::postgres() {
        rate_limited_per_client_address(&db, LIMITED);
        assert_budgets_in_the_database(&db);
    }
}

/// The budgets were kept in the database: the two addresses' logins and one's verifications.
#[track_caller]
fn assert_budgets_in_the_database(db: &TestDb) {
    let rows =
        Probe::open(db).rows("SELECT client, class FROM app_rate_limits ORDER BY client, class");
    let text = |row: &Vec<Option<String>>| (row[0].clone().unwrap(), row[1].clone().unwrap());
    assert_eq!(
        rows.iter().map(text).collect::<Vec<_>>(),
        [
            ("127.0.0.1".to_owned(), "login".to_owned()),
            ("127.0.0.2".to_owned(), "login".to_owned()),
            ("127.0.0.2".to_owned(), "verify".to_owned()),
        ]
    );
}

fn rate_limited_per_client_address(db: &TestDb, env: &[(&str, &str)]) {
    add_user(db, "dave", &[]);
    let device = add_device(db, "totp", "dave", &[]);
    let server = Server::start(db, env);
    let mut client = server.client();
    let started = Instant::now();
    for attempt in 1..=10 {
        let refused = json_login(&mut client, "dave", "not the password");
        assert_eq!(
            outcome(&refused),
            (401, "invalid_credentials".to_owned()),
            "attempt {attempt}"
        );
    }
    let limited = json_login(&mut client, "dave", "not the password");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the eleven attempts must fit in the time one token takes to come back: {:?}",
        started.elapsed()
    );
    // Ten a minute: one more every six seconds.
    assert_rate_limited_json(&limited, "the 11th login", 6);
    // The right password waits too, and so does the HTML form, which gets a page.
    let limited = json_login(&mut client, "dave", PASSWORD);
    assert_rate_limited_json(&limited, "the right password", 6);
    let page = client.post_form(
        "/account/login",
        &[("username", "dave"), ("password", PASSWORD)],
    );
    page.assert_status(429, "the HTML login");
    assert!(
        page.header("content-type")
            .is_some_and(|value| value.starts_with("text/html")),
        "{:?}",
        page.headers
    );
    assert!(page.header("retry-after").is_some());
    assert!(page.body.contains("Too many"), "{}", page.body);
    assert!(!page.body.contains("<script") && !page.body.contains("style="));
    client
        .post_form("/signup", &[("username", "eve")])
        .assert_status(429, "sign-up shares the login budget");
    // Pages that only show are not limited.
    client
        .get("/account/login")
        .assert_status(200, "GET the login page");

    // Another address is another client: 127.0.0.2 is loopback too.
    let other: IpAddr = [127, 0, 0, 2].into();
    let mut neighbour = server.client().with_local_ip(other);
    let started = json_login(&mut neighbour, "dave", PASSWORD);
    started.assert_status(200, "another address logs in");
    // Verification has a budget of its own.
    let avoid = totp_codes_near_now(&totp(&device));
    let mut rng = SplitMix64::new(11);
    for attempt in 1..=10 {
        let guess = wrong_code(&mut rng, &avoid);
        let answer = verify(&mut neighbour, id(&device), &guess);
        assert_eq!(
            outcome(&answer),
            (401, "invalid_token".to_owned()),
            "attempt {attempt}"
        );
    }
    let answer = verify(&mut neighbour, id(&device), &wrong_code(&mut rng, &avoid));
    assert_rate_limited_json(&answer, "the 11th verification", 6);
    let listed = listed_device(db, "dave", id(&device));
    assert_eq!(
        listed["throttle_failures"], 10,
        "a refused request never reaches the device: {listed}"
    );
}

#[test]
fn forwarded_for_is_believed_only_when_configured() {
    let db = TestDb::sqlite();
    add_user(&db, "frank", &[]);
    let forwarded = |client: &mut Client, from: &str| {
        let body = json!({ "username": "frank", "password": "wrong password" }).to_string();
        client.request(
            "POST",
            "/api/v1/session",
            &[
                ("content-type", "application/json"),
                ("x-forwarded-for", from),
            ],
            body.as_bytes(),
        )
    };
    let env = |trust: &'static str| {
        [
            ("OTP_RATE_LIMIT_PER_MINUTE", "2"),
            ("OTP_TRUST_FORWARDED_FOR", trust),
            ("OTP_LOG", "warn"),
        ]
    };
    // By default the header is the client's to forge, and changes nothing.
    let server = Server::start(&db, &env("false"));
    let mut client = server.client();
    let seen: HashSet<u16> = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
        .iter()
        .map(|from| forwarded(&mut client, from).status)
        .collect();
    assert!(seen.contains(&429), "{seen:?}");
    drop(server);
    // Behind a proxy that appends the address it saw, the last one is the client.
    let server = Server::start(&db, &env("true"));
    let mut client = server.client();
    for from in ["192.0.2.1", "203.0.113.7, 192.0.2.2", "192.0.2.3"] {
        for _ in 0..2 {
            let answer = forwarded(&mut client, from);
            assert_eq!(outcome(&answer), (401, "invalid_credentials".to_owned()));
        }
    }
    let answer = forwarded(&mut client, "192.0.2.99, 192.0.2.2");
    // Two a minute: one more every thirty seconds.
    assert_rate_limited_json(&answer, "the third attempt of 192.0.2.2", 30);
}

/// Settings of the password back-off scenario: three free failures, then 3 s, 6 s; no limit
/// per client address (the attacker has many).
const BACKOFF: &[(&str, &str)] = &[
    ("OTP_PASSWORD_FREE_FAILURES", "3"),
    ("OTP_PASSWORD_BACKOFF", "3"),
    ("OTP_PASSWORD_BACKOFF_MAX", "6"),
    ("OTP_RATE_LIMIT_PER_MINUTE", "0"),
    ("OTP_LOG", "warn"),
];
/// Client addresses of the attack, and wrong passwords from each.
const ADDRESSES: u8 = 5;
const GUESSES_PER_ADDRESS: usize = 12;

/// Issue #10: 325 wrong passwords from five addresses, 301 judged. Now the account backs off:
/// of 60 wrong passwords from five addresses (through two servers on PostgreSQL), only the
/// free failures and about one more are judged; every answer is the same; the right password
/// during the wait gets that same answer, and after the wait it works.
#[test]
fn wrong_passwords_back_off_per_account_across_addresses_and_servers() {
    password_back_off(&TestDb::sqlite(), 1);
    if let Some(db) = TestDb::postgres() {
        password_back_off(&db, 2);
    }
}

/// The failures and the next time an attempt is judged (Unix ms) of `username`, if any.
fn backoff_row(db: &TestDb, username: &str) -> Option<(u64, i64)> {
    let rows = Probe::open(db).rows(&format!(
        "SELECT CAST(failures AS TEXT), CAST(next_attempt_at AS TEXT) \
         FROM app_password_failures WHERE username_key = '{username}'"
    ));
    rows.first().map(|row| {
        let number = |i: usize| row[i].as_deref().unwrap().parse::<i64>().unwrap();
        (u64::try_from(number(0)).unwrap(), number(1))
    })
}

fn password_back_off(db: &TestDb, servers: usize) {
    add_user(db, "grace", &[]);
    let servers: Vec<Server> = (0..servers).map(|_| Server::start(db, BACKOFF)).collect();
    let answers = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for address in 1..=ADDRESSES {
            let ip: IpAddr = [127, 0, 0, address].into();
            let mut clients: Vec<Client> = servers
                .iter()
                .map(|server| server.client().with_local_ip(ip))
                .collect();
            let answers = Arc::clone(&answers);
            scope.spawn(move || {
                for guess in 0..GUESSES_PER_ADDRESS {
                    let count = clients.len();
                    let client = &mut clients[guess % count];
                    let answer = json_login(client, "grace", &format!("wrong password {guess}"));
                    answers.lock().unwrap().push(answer);
                }
            });
        }
    });
    let answers = Arc::try_unwrap(answers).unwrap().into_inner().unwrap();
    assert_eq!(answers.len(), usize::from(ADDRESSES) * GUESSES_PER_ADDRESS);
    let seen: HashSet<(u16, String)> = answers
        .iter()
        .map(|answer| (answer.status, answer.body.clone()))
        .collect();
    assert_eq!(seen.len(), 1, "one answer for every attempt: {seen:?}");
    let wrong = answers[0].clone();
    assert_eq!(outcome(&wrong), (401, "invalid_credentials".to_owned()));
    // The free failures and one more were judged (two more if the attack outlasted a wait).
    let (judged, _) = backoff_row(db, "grace").expect("the account's row");
    assert!(
        (4..=5).contains(&judged),
        "{judged} of {} judged",
        answers.len()
    );

    // The right password during the wait: the same answer, not judged.
    let mut user = servers[0].client().with_local_ip([127, 0, 0, 9].into());
    let refused = json_login(&mut user, "grace", PASSWORD);
    assert_eq!(
        (refused.status, &refused.body),
        (wrong.status, &wrong.body),
        "the right password while the account waits"
    );
    let (failures, next_attempt_at) = backoff_row(db, "grace").unwrap();
    assert_eq!(failures, judged, "a refused attempt is not counted");

    // After the wait, through the other server if there is one.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let wait =
        u64::try_from(i128::from(next_attempt_at) - i128::try_from(now).unwrap()).unwrap_or(0);
    assert!(wait <= 6_000, "{wait} ms");
    std::thread::sleep(Duration::from_millis(wait + 100));
    let mut user = servers[servers.len() - 1]
        .client()
        .with_local_ip([127, 0, 0, 9].into());
    json_login(&mut user, "grace", PASSWORD)
        .assert_status(200, "the right password after the wait");
    assert_eq!(backoff_row(db, "grace"), None, "a right password resets");
}
