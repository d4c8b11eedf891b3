//! `Hotp::verify` on arbitrary tokens, counters and tolerances, against a fixed secret.
//!
//! Checks: no panic; the result is the first counter of `counter..=counter + tolerance`
//! (saturating at `u64::MAX`) whose code is the trimmed token, as a naive reference finds it;
//! a code that verifies regenerates from the returned counter.
//!
//! The tolerance is a `u8`, for the reason given in `totp_verify.rs`.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use otp_oath::{Algorithm, Digits, Hotp, HotpParams, Secret};

#[derive(Debug, Arbitrary)]
enum Token {
    /// The rest of the input, as text.
    Raw,
    /// The code of `counter + offset`, so that matches are reached.
    CodeNear { offset: i16, padded: bool },
}

/// A fixed-size header and the text of a `Raw` token (see `fuzz/seeds.py`).
#[derive(Debug, Arbitrary)]
struct Input<'a> {
    params: u8,
    counter: u64,
    tolerance: u8,
    token: Token,
    text: &'a str,
}

/// One `Hotp` per algorithm and length, built once.
fn hotps() -> &'static [Hotp] {
    static HOTPS: OnceLock<Vec<Hotp>> = OnceLock::new();
    HOTPS.get_or_init(|| {
        let secret = Secret::from_bytes(b"12345678901234567890").unwrap();
        let mut all = Vec::new();
        for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            for digits in 6..=10 {
                let params = HotpParams::default()
                    .with_algorithm(algorithm)
                    .with_digits(Digits::new(digits).unwrap());
                all.push(Hotp::new(&secret, params));
            }
        }
        all
    })
}

fuzz_target!(|input: Input<'_>| {
    let hotps = hotps();
    let hotp = &hotps[usize::from(input.params) % hotps.len()];
    let token = match &input.token {
        Token::Raw => input.text.to_owned(),
        Token::CodeNear { offset, padded } => {
            let counter = (i128::from(input.counter) + i128::from(*offset))
                .clamp(0, i128::from(u64::MAX)) as u64;
            let code = hotp.code(counter).to_string();
            if *padded { format!(" {code}\n") } else { code }
        }
    };

    let matched = hotp.verify(&token, input.counter, u16::from(input.tolerance));

    let last = input.counter.saturating_add(u64::from(input.tolerance));
    let trimmed = token.trim();
    let expected = (input.counter..=last).find(|&c| hotp.code(c).to_string() == trimmed);
    assert_eq!(matched, expected, "token {token:?}");
    if let Some(counter) = matched {
        assert_eq!(hotp.code(counter).to_string(), trimmed);
    }
});
