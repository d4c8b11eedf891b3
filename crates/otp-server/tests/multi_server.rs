//! Many servers, one database: three `otp serve` processes on their own loopback ports share
//! one PostgreSQL database (and one application key), as app servers behind a load balancer
//! do. A client presents the same codes to all three at once: each code is accepted exactly
//! once; throttling and the account failure budget, which live in the database, hold across
//! the servers. (PostgreSQL only: skipped with a notice without `OTP_TEST_POSTGRES_URL`, failed
//! under `OTP_TEST_STRICT=1`.)

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Barrier;
use std::time::Duration;

use common::flows::{
    add_device, add_hotp_device_without_coincidences, add_user, assert_throttled, hotp,
    hotp_codes_from, listed_device, now_unix, outcome, pending_client, reset_account, totp,
    totp_codes_near_now, verify, wrong_code,
};
use common::http::{Client, Response};
use common::probe::Probe;
use common::server::Server;
use common::{SplitMix64, TestDb};
use serde_json::{Value, json};

/// The failure budget of the servers: small, to reach it quickly.
const BUDGET: usize = 5;
/// HOTP codes raced across the servers.
const RACES: u64 = 8;

/// The throttling factor of TOTP and backup codes, in seconds: a failure delays the next try
/// by this long, which the next requests of the test surely come within, even on a loaded
/// machine (django-otp's default of one second would need them to). The factors in [`ENV`]
/// are this.
const THROTTLE_SECONDS: u64 = 3;

/// Each server's environment: a small budget, HOTP without throttling (so that the losers of
/// one race do not delay the next), TOTP and backup codes throttled by [`THROTTLE_SECONDS`],
/// and no per-client limit (all clients are 127.0.0.1 here).
const ENV: &[(&str, &str)] = &[
    ("OTP_FAILURE_BUDGET", "5"),
    ("OTP_HOTP_THROTTLE_FACTOR", "0"),
    ("OTP_TOTP_THROTTLE_FACTOR", "3"),
    ("OTP_STATIC_THROTTLE_FACTOR", "3"),
    ("OTP_RATE_LIMIT_PER_MINUTE", "0"),
    ("OTP_LOG", "warn"),
];

fn id(device: &Value) -> &str {
    device["id"].as_str().unwrap()
}

/// Sends `token` for `device` through every client at the same moment (one thread each, held
/// at a barrier until all are ready); returns the answers in the clients' order.
fn at_once(clients: &mut [Client], device: &str, token: &str) -> Vec<Response> {
    let barrier = Barrier::new(clients.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .iter_mut()
            .map(|client| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    verify(client, device, token)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a client thread"))
            .collect()
    })
}

fn tally(answers: &[Response]) -> BTreeMap<(u16, String), usize> {
    let mut tally = BTreeMap::new();
    for answer in answers {
        *tally.entry(outcome(answer)).or_insert(0) += 1;
    }
    tally
}

#[test]
fn three_servers_on_one_postgres_database() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    let key = add_user(&db, "alice", &[]);
    // The races present spent codes while the window is ahead of them (up to RACES + 5
    // counters ahead): no spent code may equal a code of the window by chance.
    let hotp_device = add_hotp_device_without_coincidences(&db, "alice", RACES, RACES + 6);
    let totp_device = add_device(&db, "totp", "alice", &[]);
    let backup = add_device(&db, "static", "alice", &[]);
    let servers: Vec<Server> = (0..3).map(|_| Server::start(&db, ENV)).collect();
    let mut urls: Vec<&str> = servers.iter().map(|server| server.url.as_str()).collect();
    urls.dedup();
    assert_eq!(urls.len(), 3, "three ports: {urls:?}");
    // One session per server, each past the password.
    let mut clients: Vec<Client> = servers
        .iter()
        .map(|server| pending_client(server, "alice"))
        .collect();
    let mut probe = Probe::open(&db);

    // 1. The same right code on the three servers at once: exactly one acceptance. The
    //    sessions that lose are refused as for any spent code, and try the next race.
    let generator = hotp(&hotp_device);
    for counter in 0..RACES {
        let code = generator.code(counter).to_string();
        let answers = at_once(&mut clients, id(&hotp_device), &code);
        let tally = tally(&answers);
        assert_eq!(
            tally,
            BTreeMap::from([
                ((200, String::new()), 1),
                ((401, "invalid_token".to_owned()), 2)
            ]),
            "HOTP code {counter}: {answers:?}"
        );
        // Each loss counted one failure; the winner's success cleared the ones before it.
        reset_account(&db, "alice");
    }
    let listed = listed_device(&db, "alice", id(&hotp_device));
    assert!(listed["last_used_at"].is_number(), "{listed}");
    // No code is accepted again, on any server.
    for counter in 0..RACES {
        let code = generator.code(counter).to_string();
        for answer in at_once(&mut clients, id(&hotp_device), &code) {
            assert_eq!(outcome(&answer), (401, "invalid_token".to_owned()));
        }
        reset_account(&db, "alice");
    }
    // The same for a TOTP code of this time step.
    let totp_gen = totp(&totp_device);
    let now = now_unix();
    let step_code = totp_gen.code_at(now).unwrap().to_string();
    let answers = at_once(&mut clients, id(&totp_device), &step_code);
    let totp_tally = tally(&answers);
    assert_eq!(
        totp_tally.get(&(200, String::new())),
        Some(&1),
        "one TOTP acceptance: {answers:?}"
    );
    // The two losers were judged wrong (401), or, if the first loss was recorded before the
    // second was checked, throttled (429): never accepted.
    assert!(
        answers.iter().all(|a| matches!(a.status, 200 | 401 | 429)),
        "{answers:?}"
    );
    reset_account(&db, "alice");
    // The losers' failures throttle the device: an operator's reset clears them.
    let reset = db.otp(["device", "reset", id(&totp_device)]);
    assert_eq!(reset.code, Some(0), "{reset:?}");

    // 2. Throttling across servers: a wrong code on server 0 delays the device on 1 and 2.
    let avoid = totp_codes_near_now(&totp_gen);
    let mut rng = SplitMix64::new(3);
    let first = verify(
        &mut clients[0],
        id(&totp_device),
        &wrong_code(&mut rng, &avoid),
    );
    assert_eq!(outcome(&first), (401, "invalid_token".to_owned()));
    let throttled = verify(
        &mut clients[1],
        id(&totp_device),
        &wrong_code(&mut rng, &avoid),
    );
    let retry_after = assert_throttled(&throttled);
    assert!(
        (1..=THROTTLE_SECONDS).contains(&retry_after),
        "{retry_after}"
    );
    // Even the right code (the next step's, within the tolerance) waits, on the third server.
    let next_code = totp_gen.code_at(now + 30).unwrap().to_string();
    let waits = verify(&mut clients[2], id(&totp_device), &next_code);
    assert_eq!(outcome(&waits), (429, "n_failed_attempts".to_owned()));
    std::thread::sleep(Duration::from_secs(retry_after));
    verify(&mut clients[2], id(&totp_device), &next_code).assert_status(
        200,
        "the right code once the delay is over, on another server",
    );
    reset_account(&db, "alice");
    assert_eq!(probe.account_failures(&key), 0);

    // 3. The failure budget across servers: wrong HOTP codes on the three in turn. The fifth
    //    failure locks the account for all of them.
    let avoid = hotp_codes_from(&generator, RACES, 20);
    for attempt in 0..BUDGET {
        let client = &mut clients[attempt % 3];
        let answer = verify(client, id(&hotp_device), &wrong_code(&mut rng, &avoid));
        assert_eq!(
            outcome(&answer),
            (401, "invalid_token".to_owned()),
            "failure {}",
            attempt + 1
        );
    }
    assert_eq!(probe.account_failures(&key), BUDGET as u64);
    for (server, client) in clients.iter_mut().enumerate() {
        for device in [&hotp_device, &totp_device] {
            let right = if device["id"] == hotp_device["id"] {
                generator.code(RACES).to_string()
            } else {
                totp_gen.code_at(now + 30).unwrap().to_string()
            };
            let answer = verify(client, id(device), &right);
            assert_eq!(
                outcome(&answer),
                (403, "verification_not_allowed".to_owned()),
                "server {server}, {}: the right code on a locked account",
                device["id"]
            );
        }
    }
    // Concurrent guesses on the three servers cannot spend more than the budget: after a
    // reset, twelve wrong codes at once, four per server, get exactly five judgements.
    reset_account(&db, "alice");
    let guesses: Vec<Vec<String>> = (0..3)
        .map(|_| (0..4).map(|_| wrong_code(&mut rng, &avoid)).collect())
        .collect();
    let barrier = Barrier::new(3);
    let answers: Vec<Response> = std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .iter_mut()
            .zip(&guesses)
            .map(|(client, guesses)| {
                let barrier = &barrier;
                let device = id(&hotp_device);
                scope.spawn(move || {
                    barrier.wait();
                    guesses
                        .iter()
                        .map(|guess| verify(client, device, guess))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("a client thread"))
            .collect()
    });
    assert_eq!(
        tally(&answers),
        BTreeMap::from([
            ((401, "invalid_token".to_owned()), BUDGET),
            ((403, "verification_not_allowed".to_owned()), 12 - BUDGET),
        ]),
        "{answers:?}"
    );
    assert_eq!(probe.account_failures(&key), BUDGET as u64);
    // A backup code, on any server, recovers the account for all of them.
    let code = backup["codes"][0].as_str().unwrap();
    verify(&mut clients[1], id(&backup), code).assert_status(200, "a backup code");
    assert_eq!(probe.account_failures(&key), 0);
    verify(
        &mut clients[0],
        id(&hotp_device),
        &generator.code(RACES).to_string(),
    )
    .assert_status(200, "the authenticator again, on another server");
    // The spent backup code is refused everywhere: judged wrong on the first server, then
    // throttled on the others.
    let reused: Vec<(u16, String)> = clients
        .iter_mut()
        .map(|client| outcome(&verify(client, id(&backup), code)))
        .collect();
    assert_eq!(
        reused,
        [
            (401, "invalid_token".to_owned()),
            (429, "n_failed_attempts".to_owned()),
            (429, "n_failed_attempts".to_owned()),
        ]
    );
}

/// Three servers on one PostgreSQL database keep the per-client rate limit's budgets in it (the
/// default there): a client gets one budget, not one per server. With
/// `OTP_RATE_LIMIT_SHARED=false` each server counts on its own.
#[test]
fn the_rate_limit_holds_across_servers() {
    let Some(db) = TestDb::postgres() else {
        return;
    };
    add_user(&db, "alice", &[]);
    let wrong_login = |client: &mut Client| {
        outcome(&client.json(
            "POST",
            "/api/v1/session",
            &json!({ "username": "alice", "password": "not the password" }),
        ))
    };
    let refused = (401, "invalid_credentials".to_owned());
    let limited = (429, "rate_limited".to_owned());
    // Two a minute: a token comes back only after 30 s, far longer than the test takes.
    for (shared, allowed) in [("true", 2), ("false", 6)] {
        let env = [
            ("OTP_RATE_LIMIT_PER_MINUTE", "2"),
            ("OTP_RATE_LIMIT_SHARED", shared),
            ("OTP_LOG", "warn"),
        ];
        let servers: Vec<Server> = (0..3).map(|_| Server::start(&db, &env)).collect();
        // A client address of its own for each run (127.0.0.0/8 is all loopback).
        let address: IpAddr = if shared == "true" {
            [127, 0, 0, 3].into()
        } else {
            [127, 0, 0, 4].into()
        };
        let mut clients: Vec<Client> = servers
            .iter()
            .map(|server| server.client().with_local_ip(address))
            .collect();
        // The same client's wrong passwords on the three servers in turn.
        let answers: Vec<(u16, String)> = (0..9)
            .map(|attempt| wrong_login(&mut clients[attempt % 3]))
            .collect();
        let mut expected = vec![refused.clone(); allowed];
        expected.resize(9, limited.clone());
        assert_eq!(answers, expected, "OTP_RATE_LIMIT_SHARED={shared}");
    }
}
