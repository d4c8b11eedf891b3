//! The RFC test vectors, kept as JSON data files under `tests/data/` named after their source,
//! driven by one loop each that names every failing case.

use otp_oath::{Algorithm, Digits, Hotp, HotpParams, Secret, Totp, TotpParams, TotpWindow};
use serde::Deserialize;

#[derive(Deserialize)]
struct Rfc4226 {
    secret_ascii: String,
    digits: u32,
    cases: Vec<HotpCase>,
}

#[derive(Deserialize)]
struct HotpCase {
    counter: u64,
    truncated: u32,
    hotp: String,
}

#[derive(Deserialize)]
struct Rfc6238 {
    secrets_ascii: std::collections::BTreeMap<String, String>,
    step: u64,
    t0: i64,
    digits: u32,
    cases: Vec<TotpCase>,
}

#[derive(Deserialize)]
struct TotpCase {
    time: i64,
    step_hex: String,
    algorithm: String,
    totp: String,
}

fn load<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn assert_no_failures(source: &str, checked: usize, failures: &[String]) {
    assert!(checked > 0, "{source}: no case was checked");
    assert!(
        failures.is_empty(),
        "{source}: {} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn rfc4226_appendix_d() {
    let data: Rfc4226 = load("rfc4226-appendix-d.json");
    let secret = Secret::from_bytes(data.secret_ascii.as_bytes()).unwrap();
    let digits = Digits::new(data.digits).unwrap();
    let hotp = Hotp::new(&secret, HotpParams::default().with_digits(digits));
    let key = otp_oath::HmacKey::new(&secret, Algorithm::Sha1);
    let mut failures = Vec::new();
    for case in &data.cases {
        let truncated = key.truncated(case.counter);
        if truncated != case.truncated {
            failures.push(format!(
                "counter {}: truncated {truncated}, expected {}",
                case.counter, case.truncated
            ));
        }
        let code = hotp.code(case.counter).to_string();
        if code != case.hotp {
            failures.push(format!(
                "counter {}: code {code}, expected {}",
                case.counter, case.hotp
            ));
        }
        if hotp.verify(&case.hotp, case.counter, 0) != Some(case.counter) {
            failures.push(format!("counter {}: verify refused the code", case.counter));
        }
    }
    assert_no_failures("RFC 4226 Appendix D", data.cases.len(), &failures);
}

#[test]
fn rfc6238_appendix_b() {
    let data: Rfc6238 = load("rfc6238-appendix-b.json");
    let mut failures = Vec::new();
    for case in &data.cases {
        let name = format!("{} at time {}", case.algorithm, case.time);
        let algorithm: Algorithm = case.algorithm.parse().unwrap();
        let secret = Secret::from_bytes(data.secrets_ascii[&case.algorithm].as_bytes()).unwrap();
        let params = TotpParams::default()
            .with_algorithm(algorithm)
            .with_digits(Digits::new(data.digits).unwrap())
            .with_step(data.step)
            .with_t0(data.t0);
        let totp = Totp::new(&secret, params).unwrap();
        let expected_step = u64::from_str_radix(&case.step_hex, 16).unwrap();
        if totp.time_step(case.time) != Some(expected_step) {
            failures.push(format!(
                "{name}: step {:?}, expected {expected_step}",
                totp.time_step(case.time)
            ));
        }
        let code = totp.code_at(case.time).unwrap().to_string();
        if code != case.totp {
            failures.push(format!("{name}: code {code}, expected {}", case.totp));
        }
        let matched = totp.verify(&case.totp, case.time, TotpWindow::default());
        if matched.map(|m| m.step) != Some(expected_step) {
            failures.push(format!("{name}: verify gave {matched:?}"));
        }
    }
    assert_no_failures("RFC 6238 Appendix B", data.cases.len(), &failures);
}
