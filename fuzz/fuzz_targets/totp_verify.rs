//! `Totp::verify` on arbitrary tokens, times, windows and parameters, against a fixed secret.
//!
//! Checks: no panic; the match (or no match) is the one a naive reference finds by generating
//! every candidate of the window with `code_for_step`; a code that verifies regenerates from
//! the returned step; the step lies in the window and at or after `min_step`; the reported drift
//! is the window's drift plus the step's offset from the centre. `time_step` agrees with floor
//! division in 128-bit arithmetic.
//!
//! The tolerance is a `u8` (up to 511 candidates per call): a `u16` tolerance costs up to
//! 131,071 HMACs per input and would slow the fuzzer a hundredfold without reaching more
//! arithmetic (the window bounds are reached through the time, drift, step and t0).
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use otp_oath::{Algorithm, Digits, Secret, Totp, TotpParams, TotpWindow};

#[derive(Debug, Arbitrary)]
enum Token {
    /// The rest of the input, as text.
    Raw,
    /// The code of the step `centre + offset`, with optional white space around it, so that
    /// matches are reached.
    CodeNear {
        offset: i16,
        leading: u8,
        trailing: u8,
    },
}

/// A fixed-size header (little-endian integers, a 4-byte enum tag) and the text of a `Raw`
/// token: see `fuzz/seeds.py` for how the seed corpus writes it.
#[derive(Debug, Arbitrary)]
struct Input<'a> {
    algorithm: u8,
    digits: u8,
    step: u64,
    t0: i64,
    time: i64,
    tolerance: u8,
    drift: i64,
    min_step: u64,
    token: Token,
    text: &'a str,
}

fn secret() -> &'static Secret {
    static SECRET: OnceLock<Secret> = OnceLock::new();
    SECRET.get_or_init(|| Secret::from_bytes(b"12345678901234567890").unwrap())
}

/// White space a user may type around a code, ASCII and not.
const SPACES: [&str; 7] = ["", " ", "\t", "\n", " \r\n", "\u{a0}", "\u{3000}"];

fn spaces(n: u8) -> &'static str {
    SPACES[usize::from(n) % SPACES.len()]
}

fn floor_step(time: i64, t0: i64, step: u64) -> i128 {
    (i128::from(time) - i128::from(t0)).div_euclid(i128::from(step))
}

fuzz_target!(|input: Input<'_>| {
    let algorithm =
        [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512][usize::from(input.algorithm) % 3];
    let digits = Digits::new(6 + u32::from(input.digits) % 5).unwrap();
    let params = TotpParams::default()
        .with_algorithm(algorithm)
        .with_digits(digits)
        .with_step(input.step)
        .with_t0(input.t0);
    let Ok(totp) = Totp::new(secret(), params) else {
        assert_eq!(input.step, 0, "only a zero step is refused");
        return;
    };

    let centre = floor_step(input.time, input.t0, input.step);
    assert_eq!(
        totp.time_step(input.time),
        u64::try_from(centre).ok(),
        "time_step"
    );
    match totp.code_at(input.time) {
        Ok(code) => assert_eq!(code, totp.code_for_step(u64::try_from(centre).unwrap())),
        Err(_) => assert!(centre < 0),
    }

    let window = TotpWindow::with_tolerance(u16::from(input.tolerance))
        .with_drift(input.drift)
        .with_min_step(input.min_step);
    let centre = centre + i128::from(input.drift);
    let token = match &input.token {
        Token::Raw => input.text.to_owned(),
        Token::CodeNear {
            offset,
            leading,
            trailing,
        } => {
            let step = (centre + i128::from(*offset)).clamp(0, i128::from(u64::MAX)) as u64;
            format!(
                "{}{}{}",
                spaces(*leading),
                totp.code_for_step(step),
                spaces(*trailing)
            )
        }
    };

    let matched = totp.verify(&token, input.time, window);

    // The reference: the first step of the window whose code is the trimmed token.
    let tolerance = i128::from(input.tolerance);
    let first = (centre - tolerance).max(i128::from(input.min_step));
    let last = (centre + tolerance).min(i128::from(u64::MAX));
    let trimmed = token.trim();
    let expected = (first..=last).find(|&s| totp.code_for_step(s as u64).to_string() == trimmed);
    assert_eq!(
        matched.map(|m| i128::from(m.step)),
        expected,
        "token {token:?}"
    );

    if let Some(m) = matched {
        assert_eq!(totp.code_for_step(m.step).to_string(), trimmed);
        assert!(m.step >= input.min_step);
        let offset = i128::from(m.step) - centre;
        assert!(offset.abs() <= tolerance);
        let drift = i128::from(input.drift) + offset;
        assert_eq!(i64::try_from(drift).unwrap_or(input.drift), m.drift);
    }
});
