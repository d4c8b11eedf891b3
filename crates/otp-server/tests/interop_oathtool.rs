//! `otp code` against `oathtool` (OATH Toolkit) on random credentials.
//!
//! oathtool supports 6, 7 and 8 digits only, and HOTP only with SHA-1. HOTP with SHA-256 and
//! SHA-512 is checked through TOTP with a 1-second step from t0 = 0, where the time step equals
//! the counter. The cases come from a fixed seed; set `OTP_INTEROP_SEED` to try others.

mod common;

use std::fmt;
use std::process::Command;

use common::{SplitMix64, base32, hex, otp, require_tool, run};

const DEFAULT_SEED: u64 = 0x6f74_702d_6f61_7468;
const CASES: usize = 200;
/// Times and oathtool counters stay below 2^35 (the year 3058), which oathtool's date parser
/// takes as `@SECONDS`.
const MAX_TIME: u64 = 1 << 35;

#[derive(Clone, Copy)]
enum Kind {
    Totp { step: u64, t0: u64, time: u64 },
    Hotp { counter: u64 },
}

/// How the credential is given to `otp`.
#[derive(Clone, Copy)]
enum Form {
    /// `otp code totp|hotp --secret …` with the base32 written as it is here.
    Flags(Base32Style),
    /// `otp code --uri …`.
    Uri,
}

#[derive(Clone, Copy, Debug)]
enum Base32Style {
    Padded,
    Unpadded,
    LowerCase,
    Grouped,
}

struct Case {
    index: usize,
    seed: u64,
    kind: Kind,
    algorithm: &'static str,
    digits: u32,
    secret: Vec<u8>,
    form: Form,
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "case {} of seed {:#x}: {} digits={} ",
            self.index, self.seed, self.algorithm, self.digits
        )?;
        match self.kind {
            Kind::Totp { step, t0, time } => write!(f, "totp step={step} t0={t0} time={time}")?,
            Kind::Hotp { counter } => write!(f, "hotp counter={counter}")?,
        }
        let form = match self.form {
            Form::Flags(style) => format!("flags, base32 {style:?}"),
            Form::Uri => "uri".to_owned(),
        };
        write!(
            f,
            " secret({} bytes)={} given as {form}",
            self.secret.len(),
            hex(&self.secret)
        )
    }
}

impl Case {
    fn random(rng: &mut SplitMix64, index: usize, seed: u64) -> Self {
        let algorithm = *rng.pick(&["sha1", "sha256", "sha512"]);
        let digits = rng.in_range(6..=8) as u32;
        let secret_len = rng.in_range(16..=64) as usize;
        let secret = rng.bytes(secret_len);
        // Small values now and then, to reach step 0 and the first steps after t0.
        let small = rng.in_range(0..=7) == 0;
        let max = if small { 1_000 } else { MAX_TIME };
        let kind = if rng.in_range(0..=9) < 7 {
            let time = rng.in_range(0..=max);
            let t0 = if rng.in_range(0..=1) == 0 {
                0
            } else {
                rng.in_range(0..=time)
            };
            Kind::Totp {
                step: rng.in_range(1..=120),
                t0,
                time,
            }
        } else {
            let counter = match (algorithm, small) {
                (_, true) => rng.in_range(0..=max),
                ("sha1", false) => rng.next_u64(),
                _ => rng.in_range(0..=MAX_TIME),
            };
            Kind::Hotp { counter }
        };
        let uri_possible = !matches!(kind, Kind::Totp { t0, .. } if t0 != 0);
        let form = if uri_possible && rng.in_range(0..=3) == 0 {
            Form::Uri
        } else {
            Form::Flags(*rng.pick(&[
                Base32Style::Padded,
                Base32Style::Unpadded,
                Base32Style::LowerCase,
                Base32Style::Grouped,
            ]))
        };
        Self {
            index,
            seed,
            kind,
            algorithm,
            digits,
            secret,
            form,
        }
    }

    fn otp_args(&self) -> Vec<String> {
        let padded = base32(&self.secret);
        let unpadded = padded.trim_end_matches('=').to_owned();
        let digits = self.digits.to_string();
        match self.form {
            Form::Uri => {
                let (kind, parameter, time_or_counter) = match self.kind {
                    Kind::Totp { step, time, .. } => ("totp", format!("period={step}"), time),
                    Kind::Hotp { counter } => ("hotp", format!("counter={counter}"), counter),
                };
                let uri = format!(
                    "otpauth://{kind}/Interop:case{}?secret={unpadded}&algorithm={}&digits={digits}&{parameter}",
                    self.index,
                    self.algorithm.to_ascii_uppercase()
                );
                let mut args = vec!["code".to_owned(), "--uri".to_owned(), uri];
                if let Kind::Totp { .. } = self.kind {
                    args.extend(["--time".to_owned(), time_or_counter.to_string()]);
                }
                args
            }
            Form::Flags(style) => {
                let secret = match style {
                    Base32Style::Padded => padded,
                    Base32Style::Unpadded => unpadded,
                    Base32Style::LowerCase => unpadded.to_ascii_lowercase(),
                    Base32Style::Grouped => unpadded
                        .as_bytes()
                        .chunks(4)
                        .map(|group| std::str::from_utf8(group).unwrap())
                        .collect::<Vec<_>>()
                        .join(" "),
                };
                let mut args: Vec<String> = match self.kind {
                    Kind::Totp { step, t0, time } => vec![
                        "totp".into(),
                        "--time".into(),
                        time.to_string(),
                        "--step".into(),
                        step.to_string(),
                        "--t0".into(),
                        t0.to_string(),
                    ],
                    Kind::Hotp { counter } => {
                        vec!["hotp".into(), "--counter".into(), counter.to_string()]
                    }
                };
                args.insert(0, "code".into());
                args.extend([
                    "--secret".into(),
                    secret,
                    "--digits".into(),
                    digits,
                    "--algorithm".into(),
                    self.algorithm.into(),
                ]);
                args
            }
        }
    }

    fn oathtool(&self) -> Command {
        let mut command = Command::new("oathtool");
        command.arg(format!("--digits={}", self.digits));
        let mode = self.algorithm.to_ascii_uppercase();
        match self.kind {
            Kind::Totp { step, t0, time } => {
                command.args([
                    format!("--totp={mode}"),
                    format!("--time-step-size={step}s"),
                    format!("--start-time=@{t0}"),
                    format!("--now=@{time}"),
                    "--base32".to_owned(),
                    base32(&self.secret),
                ]);
            }
            Kind::Hotp { counter } if self.algorithm == "sha1" => {
                command.args([
                    "--hotp".to_owned(),
                    format!("--counter={counter}"),
                    hex(&self.secret),
                ]);
            }
            // oathtool's HOTP is SHA-1 only: TOTP with 1-second steps from 0 is HOTP with
            // counter = time.
            Kind::Hotp { counter } => {
                command.args([
                    format!("--totp={mode}"),
                    "--time-step-size=1s".to_owned(),
                    "--start-time=@0".to_owned(),
                    format!("--now=@{counter}"),
                    hex(&self.secret),
                ]);
            }
        }
        command
    }
}

#[test]
fn codes_match_oathtool() {
    if !require_tool("oathtool") {
        return;
    }
    let seed = std::env::var("OTP_INTEROP_SEED")
        .ok()
        .map(|text| {
            let text = text.trim_start_matches("0x");
            u64::from_str_radix(text, 16).expect("OTP_INTEROP_SEED is hex")
        })
        .unwrap_or(DEFAULT_SEED);
    let mut rng = SplitMix64::new(seed);
    for index in 0..CASES {
        let case = Case::random(&mut rng, index, seed);
        let reference = run(&mut case.oathtool());
        assert_eq!(
            reference.code,
            Some(0),
            "{case}: oathtool failed: {}",
            reference.stderr
        );
        let ours = otp(case.otp_args());
        assert_eq!(ours.code, Some(0), "{case}: otp failed: {}", ours.stderr);
        assert_eq!(
            ours.stdout.trim_end(),
            reference.stdout.trim_end(),
            "{case}: otp (left) and oathtool (right) differ"
        );
        assert_eq!(ours.stdout.trim_end().len(), case.digits as usize, "{case}");
    }
}
