//! `Settings::from_toml_str` and `Settings::from_sources` on arbitrary TOML text and arbitrary
//! environment pairs (written as text, see `Input`).
//!
//! Checks: no panic, only `Err(InvalidSetting)`; `from_toml_str(t)` is `from_sources(Some(t),
//! [])`; settings that load are within the documented ranges.
//!
//! Harness limit: an input that mentions `/dev`, `/proc` or `/sys` (in TOML, after escapes)
//! is skipped, because the `*_template_path` settings read the named file and `/dev/zero` or
//! `/dev/stdin` would hang the fuzzer rather than find a bug (the operator chooses these
//! paths).
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use otp_core::{Error, Settings};

const NAMES: [&str; 24] = [
    "OTP_TOTP_ISSUER",
    "OTP_TOTP_IMAGE",
    "OTP_TOTP_SYNC",
    "OTP_TOTP_THROTTLE_FACTOR",
    "OTP_TOTP_TOLERANCE",
    "OTP_TOTP_MAX_DRIFT",
    "OTP_HOTP_ISSUER",
    "OTP_HOTP_THROTTLE_FACTOR",
    "OTP_HOTP_TOLERANCE",
    "OTP_STATIC_THROTTLE_FACTOR",
    "OTP_STATIC_COUNT",
    "OTP_EMAIL_SENDER",
    "OTP_EMAIL_SUBJECT",
    "OTP_EMAIL_BODY_TEMPLATE",
    "OTP_EMAIL_BODY_TEMPLATE_PATH",
    "OTP_EMAIL_BODY_HTML_TEMPLATE",
    "OTP_EMAIL_BODY_HTML_TEMPLATE_PATH",
    "OTP_EMAIL_TOKEN_VALIDITY",
    "OTP_EMAIL_THROTTLE_FACTOR",
    "OTP_EMAIL_COOLDOWN_DURATION",
    "OTP_EMAIL_MAX_FAILURES",
    "OTP_FAILURE_BUDGET",
    "OTP_MAX_THROTTLE_DELAY",
    "OTP_CHALLENGES_PER_HOUR",
    "OTP_DATABASE_URL",
];

/// The input is text: environment pairs, one `NAME=VALUE` a line, then a line `%%`, then the
/// TOML document. Without a `%%` line the whole text is the TOML document and the environment
/// is empty; with nothing after `%%` there is no document. In names and values `\n`, `\r`,
/// `\t`, `\0` and `\\` stand for those characters; a name `#N` is the N-th known setting name.
struct Input {
    env: Vec<(String, String)>,
    toml: Option<String>,
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn parse_input(text: &str) -> Input {
    let Some((env_text, toml)) = text
        .split_once("\n%%\n")
        .or_else(|| text.strip_prefix("%%\n").map(|rest| ("", rest)))
    else {
        return Input {
            env: Vec::new(),
            toml: Some(text.to_owned()),
        };
    };
    let env = env_text
        .lines()
        .map(|line| {
            let (name, value) = line.split_once('=').unwrap_or((line, ""));
            let name = match name.strip_prefix('#').and_then(|n| n.parse::<usize>().ok()) {
                Some(i) => NAMES[i % NAMES.len()].to_owned(),
                None => unescape(name),
            };
            (name, unescape(value))
        })
        .collect();
    Input {
        env,
        toml: (!toml.is_empty()).then(|| toml.to_owned()),
    }
}

fn off_limits(text: &str) -> bool {
    ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p))
}

/// Whether any string in the TOML document (after its escapes) is off limits.
fn toml_off_limits(text: &str) -> bool {
    fn value(v: &toml::Value) -> bool {
        match v {
            toml::Value::String(s) => off_limits(s),
            toml::Value::Array(items) => items.iter().any(value),
            toml::Value::Table(t) => table(t),
            _ => false,
        }
    }
    fn table(t: &toml::Table) -> bool {
        t.iter().any(|(k, v)| off_limits(k) || value(v))
    }
    text.parse::<toml::Table>().is_ok_and(|t| table(&t))
}

const YEAR: Duration = Duration::from_secs(31_536_000);

fn check_ranges(s: &Settings) {
    assert!(s.totp.tolerance <= 10);
    assert!(s.totp.max_drift <= 20);
    assert!(s.hotp.tolerance <= 100);
    assert!((1..=100).contains(&s.static_codes.count));
    for factor in [
        s.totp.throttle_factor,
        s.hotp.throttle_factor,
        s.static_codes.throttle_factor,
        s.email.throttle_factor,
    ] {
        assert!(factor <= YEAR);
    }
    assert!(s.email.token_validity >= Duration::from_secs(1) && s.email.token_validity <= YEAR);
    assert!(s.email.cooldown <= YEAR);
    assert!(s.max_throttle_delay >= Duration::from_secs(1) && s.max_throttle_delay <= YEAR);
    assert!(s.email.max_failures >= 1);
    assert!(s.failure_budget.limit >= 1);
    assert!(!s.email.body_template.is_empty());
    assert!(!s.email.subject.chars().any(char::is_control));
}

fn expect_setting_error(result: &Result<Settings, Error>) {
    match result {
        Ok(settings) => check_ranges(settings),
        Err(Error::InvalidSetting { .. }) => {}
        Err(other) => panic!("unexpected error kind: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Input { env, toml } = parse_input(text);
    if env.iter().any(|(n, v)| off_limits(n) || off_limits(v))
        || toml.as_deref().is_some_and(toml_off_limits)
    {
        return;
    }

    if let Some(toml) = &toml {
        let alone = Settings::from_toml_str(toml);
        expect_setting_error(&alone);
        let same = Settings::from_sources(Some(toml), std::iter::empty());
        assert_eq!(alone.is_ok(), same.is_ok());
    }
    let result = Settings::from_sources(toml.as_deref(), env);
    expect_setting_error(&result);
});
