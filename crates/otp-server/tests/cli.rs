//! The `otp` binary, run as a user runs it: output, exit status and messages of every command.

mod common;

use std::collections::BTreeMap;
use std::fs;

use common::{assert_one_line_error, base32, otp};
use serde::Deserialize;

/// RFC 4226 Appendix D and RFC 6238 Appendix B's SHA-1 key.
const RFC_KEY_SHA1: &[u8] = b"12345678901234567890";
/// `RFC_KEY_SHA1` in base32.
const RFC_SHA1_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
/// RFC 6238 Appendix B's SHA-512 key.
const RFC_KEY_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

/// `otp-oath`'s data file of RFC 4226 Appendix D (the fields used here).
#[derive(Deserialize)]
struct Rfc4226 {
    secret_ascii: String,
    digits: u32,
    cases: Vec<HotpCase>,
}

#[derive(Deserialize)]
struct HotpCase {
    counter: u64,
    hotp: String,
}

/// `otp-oath`'s data file of RFC 6238 Appendix B (the fields used here).
#[derive(Deserialize)]
struct Rfc6238 {
    secrets_ascii: BTreeMap<String, String>,
    step: u64,
    t0: i64,
    digits: u32,
    cases: Vec<TotpCase>,
}

#[derive(Deserialize)]
struct TotpCase {
    time: u64,
    algorithm: String,
    totp: String,
}

fn rfc_4226() -> Rfc4226 {
    let data: Rfc4226 = serde_json::from_str(include_str!(
        "../../otp-oath/tests/data/rfc4226-appendix-d.json"
    ))
    .expect("RFC 4226 data file");
    assert_eq!((data.cases.len(), data.digits), (10, 6));
    data
}

fn rfc_6238() -> Rfc6238 {
    let data: Rfc6238 = serde_json::from_str(include_str!(
        "../../otp-oath/tests/data/rfc6238-appendix-b.json"
    ))
    .expect("RFC 6238 data file");
    assert_eq!((data.step, data.t0, data.digits), (30, 0, 8));
    assert_eq!(data.cases.len(), 18);
    data
}

impl Rfc6238 {
    /// The key of `algorithm`, in base32.
    fn secret(&self, algorithm: &str) -> String {
        let key = self
            .secrets_ascii
            .get(algorithm)
            .unwrap_or_else(|| panic!("no key for {algorithm} in the data file"));
        base32(key.as_bytes())
    }
}

/// `otp code KIND --secret SECRET OPTIONS...`, as arguments.
fn code<'a>(kind: &'a str, secret: &'a str, options: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["code", kind, "--secret", secret];
    args.extend_from_slice(options);
    args
}

/// `otp uri build --type KIND --account ACCOUNT OPTIONS...`, as arguments.
fn uri_build<'a>(kind: &'a str, account: &'a str, options: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["uri", "build", "--type", kind, "--account", account];
    args.extend_from_slice(options);
    args
}

fn success(args: &[&str]) -> String {
    let out = otp(args);
    assert_eq!(
        out.code,
        Some(0),
        "otp {args:?} failed: {}",
        out.stderr.trim_end()
    );
    assert_eq!(out.stderr, "", "otp {args:?}");
    out.stdout
}

/// Asserts exit status 2, nothing on stdout and exactly one `otp: ` line on stderr; returns it.
fn usage_error(args: &[&str]) -> String {
    let out = otp(args);
    assert_one_line_error(&out, 2, args);
    out.stderr
}

#[test]
fn test_base32_encoder_matches_rfc_4648() {
    let cases = [
        ("", ""),
        ("f", "MY======"),
        ("fo", "MZXQ===="),
        ("foo", "MZXW6==="),
        ("foob", "MZXW6YQ="),
        ("fooba", "MZXW6YTB"),
        ("foobar", "MZXW6YTBOI======"),
    ];
    for (plain, encoded) in cases {
        assert_eq!(base32(plain.as_bytes()), encoded, "{plain:?}");
    }
    assert_eq!(base32(RFC_KEY_SHA1), RFC_SHA1_B32);
}

#[test]
fn totp_rfc_6238_appendix_b() {
    let data = rfc_6238();
    for case in &data.cases {
        let (time, mode) = (case.time.to_string(), case.algorithm.as_str());
        let secret = data.secret(mode);
        let algorithm = mode.to_ascii_lowercase();
        let args = code(
            "totp",
            &secret,
            &["--time", &time, "--digits", "8", "--algorithm", &algorithm],
        );
        assert_eq!(
            success(&args),
            format!("{}\n", case.totp),
            "RFC 6238 time {time} {mode}"
        );
    }
}

#[test]
fn totp_rfc_6238_appendix_b_through_uris() {
    let data = rfc_6238();
    for case in &data.cases {
        let (time, mode) = (case.time.to_string(), case.algorithm.as_str());
        let uri = format!(
            "otpauth://totp/RFC%206238:{mode}?secret={}&algorithm={mode}&digits=8",
            data.secret(mode).trim_end_matches('=')
        );
        let out = success(&["code", "--uri", &uri, "--time", &time]);
        assert_eq!(
            out,
            format!("{}\n", case.totp),
            "RFC 6238 time {time} {mode}"
        );
    }
}

#[test]
fn hotp_rfc_4226_appendix_d() {
    let data = rfc_4226();
    assert_eq!(base32(data.secret_ascii.as_bytes()), RFC_SHA1_B32);
    for case in &data.cases {
        let counter = case.counter.to_string();
        let out = success(&code("hotp", RFC_SHA1_B32, &["--counter", &counter]));
        assert_eq!(
            out,
            format!("{}\n", case.hotp),
            "RFC 4226 counter {counter}"
        );
    }
}

#[test]
fn hotp_uri_uses_its_counter_unless_one_is_given() {
    let uri = format!("otpauth://hotp/Example:alice?secret={RFC_SHA1_B32}&counter=3");
    assert_eq!(success(&["code", "--uri", &uri]), "969429\n");
    assert_eq!(
        success(&["code", "--uri", &uri, "--counter", "9"]),
        "520489\n"
    );
}

#[test]
fn totp_options_step_t0_and_lenient_secret_syntax() {
    // Step 60 from t0 = 30: time 89 is step 0, as time 29 is with the defaults.
    let grouped = "gezd gnbv-gy3t qojq gezd gnbv gy3t qojq";
    assert_eq!(
        success(&code("totp", grouped, &["--time", "29"])),
        "755224\n"
    );
    assert_eq!(
        success(&code(
            "totp",
            RFC_SHA1_B32,
            &["--time", "89", "--step", "60", "--t0", "30"],
        )),
        "755224\n"
    );
    // A negative epoch and time.
    assert_eq!(
        success(&code(
            "totp",
            RFC_SHA1_B32,
            &["--t0", "-100", "--time", "-50"],
        )),
        "287082\n"
    );
    // Ten digits keep their leading zeros.
    assert_eq!(
        success(&code(
            "hotp",
            RFC_SHA1_B32,
            &["--counter", "0", "--digits", "10"],
        )),
        "1284755224\n"
    );
}

#[test]
fn weak_secrets_make_codes() {
    // 80 bits: refused when issuing, accepted for an existing credential.
    let out = success(&code("hotp", "GEZDGNBVGY3TQOJQ", &["--counter", "0"]));
    assert_eq!(out.len(), 7);
    let uri = "otpauth://totp/a?secret=GEZDGNBVGY3TQOJQ";
    assert_eq!(success(&["code", "--uri", uri]).len(), 7);
}

#[test]
fn totp_time_defaults_to_now() {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string()
    };
    let at = |time: &str| success(&code("totp", RFC_SHA1_B32, &["--time", time]));
    let before = at(&now());
    let current = success(&code("totp", RFC_SHA1_B32, &[]));
    let after = at(&now());
    assert!(
        current == before || current == after,
        "{current} is neither {before} nor {after}"
    );
}

#[test]
fn bad_base32_is_an_input_error_naming_the_position() {
    assert_eq!(
        usage_error(&code("totp", "GEZ1DGNBV", &[])),
        "otp: invalid --secret: invalid base32 character at position 3 (expected A-Z and 2-7)\n"
    );
    assert_eq!(
        usage_error(&code("hotp", "GEZDGNBVG", &["--counter", "1"])),
        "otp: invalid --secret: invalid base32 length: 9 symbols cannot encode whole bytes\n"
    );
    assert_eq!(
        usage_error(&code("totp", "", &[])),
        "otp: invalid --secret: the secret is empty\n"
    );
}

#[test]
fn bad_digits_are_input_errors() {
    for (digits, message) in [
        (
            "5",
            "otp: invalid value for '--digits <N>': digits must be between 6 and 10, got 5\n",
        ),
        (
            "11",
            "otp: invalid value for '--digits <N>': digits must be between 6 and 10, got 11\n",
        ),
        (
            "six",
            "otp: invalid value for '--digits <N>': invalid digit found in string\n",
        ),
    ] {
        let args = code("totp", RFC_SHA1_B32, &["--digits", digits]);
        assert_eq!(usage_error(&args), message, "--digits {digits}");
        let args = code(
            "hotp",
            RFC_SHA1_B32,
            &["--counter", "0", "--digits", digits],
        );
        assert_eq!(usage_error(&args), message, "hotp --digits {digits}");
    }
}

#[test]
fn zero_step_is_an_input_error() {
    assert_eq!(
        usage_error(&code("totp", RFC_SHA1_B32, &["--step", "0"])),
        "otp: invalid value for '--step <SECONDS>': the TOTP time step must be at least 1 second\n"
    );
    assert_eq!(
        usage_error(&uri_build("totp", "a", &["--period", "0"])),
        "otp: invalid value for '--period <SECONDS>': the TOTP time step must be at least 1 second\n"
    );
}

#[test]
fn unknown_algorithm_is_an_input_error() {
    let message = "otp: invalid value for '--algorithm <ALGORITHM>' \
                   (possible values: sha1, sha256, sha512)\n";
    for algorithm in ["md5", "sha3", ""] {
        let args = code("totp", RFC_SHA1_B32, &["--algorithm", algorithm]);
        let err = usage_error(&args);
        if algorithm.is_empty() {
            assert!(
                err.contains("a value is required for '--algorithm"),
                "{err}"
            );
        } else {
            assert_eq!(err, message, "--algorithm {algorithm}");
        }
    }
    // Any case is accepted.
    let secret = base32(RFC_KEY_SHA512);
    let args = code(
        "totp",
        &secret,
        &["--time", "59", "--digits", "8", "--algorithm", "SHA512"],
    );
    assert_eq!(success(&args), "90693936\n");
}

#[test]
fn time_before_t0_is_an_input_error() {
    assert_eq!(
        usage_error(&code(
            "totp",
            RFC_SHA1_B32,
            &["--t0", "100", "--time", "99"],
        )),
        "otp: invalid --time: time 99 lies before the TOTP epoch t0 = 100\n"
    );
}

#[test]
fn missing_arguments_are_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "'otp' requires a subcommand"),
        (
            &["code"],
            "'otp code' needs --uri <OTPAUTH-URI> or a subcommand",
        ),
        (&["code", "totp"], "--secret <BASE32>"),
        (&["code", "hotp", "--secret", RFC_SHA1_B32], "--counter <N>"),
        (&["code", "hotp", "--counter", "1"], "--secret <BASE32>"),
        (&["code", "--time", "59"], "--uri <OTPAUTH-URI>"),
        (&["code", "--uri"], "a value is required for '--uri"),
        (&["uri"], "'otp uri' requires a subcommand"),
        (&["uri", "parse"], "<OTPAUTH-URI>"),
        (&["uri", "build", "--account", "a"], "--type <TYPE>"),
        (&["uri", "build", "--type", "totp"], "--account <ACCOUNT>"),
        (&["qr"], "<OTPAUTH-URI>"),
    ];
    for (args, expected) in cases {
        let err = usage_error(args);
        assert!(err.contains(expected), "otp {args:?}: {err}");
    }
    assert_eq!(
        usage_error(&["code", "totp"]),
        "otp: the following required arguments were not provided: --secret <BASE32> \
         (see 'otp code totp --help')\n"
    );
}

#[test]
fn conflicting_arguments_are_usage_errors() {
    let totp_uri = format!("otpauth://totp/a?secret={RFC_SHA1_B32}");
    let hotp_uri = format!("otpauth://hotp/a?secret={RFC_SHA1_B32}&counter=1");
    let cases: &[(&[&str], &str)] = &[
        (
            &["code", "--uri", &totp_uri, "totp", "--secret", RFC_SHA1_B32],
            "cannot be used with '--uri",
        ),
        (
            &["code", "--uri", &totp_uri, "--counter", "1"],
            "otp: --counter applies to HOTP URIs, and this one is TOTP (use --time)\n",
        ),
        (
            &["code", "--uri", &hotp_uri, "--time", "1"],
            "otp: --time applies to TOTP URIs, and this one is HOTP (use --counter)\n",
        ),
        (
            &uri_build("totp", "a", &["--counter", "1"]),
            "otp: --counter applies to --type hotp only\n",
        ),
        (
            &uri_build("hotp", "a", &["--period", "60"]),
            "otp: --period applies to --type totp only\n",
        ),
        (
            &uri_build("totp", "a", &["--allow-weak-secret"]),
            "--secret <BASE32>",
        ),
        (
            &["qr", &totp_uri, "--png", "a.png", "--svg", "a.svg"],
            "cannot be used with",
        ),
        (
            &code("totp", RFC_SHA1_B32, &["--secret", RFC_SHA1_B32]),
            "cannot be used multiple times",
        ),
    ];
    for (args, expected) in cases {
        let err = usage_error(args);
        assert!(err.contains(expected), "otp {args:?}: {err}");
    }
}

#[test]
fn bad_uris_are_input_errors_naming_the_field() {
    let cases = [
        (
            "http://x",
            "otp: invalid otpauth URI: scheme: must be otpauth\n",
        ),
        (
            "otpauth://totp/a?secret=GEZDGNBVGY3TQOJQ&digits=5",
            "otp: invalid otpauth URI: digits: must be a number from 6 to 10\n",
        ),
        (
            "otpauth://hotp/a?secret=GEZDGNBVGY3TQOJQ",
            "otp: invalid otpauth URI: counter: missing\n",
        ),
    ];
    for (uri, message) in cases {
        assert_eq!(usage_error(&["code", "--uri", uri]), message, "code {uri}");
        assert_eq!(usage_error(&["uri", "parse", uri]), message, "parse {uri}");
        assert_eq!(usage_error(&["qr", uri]), message, "qr {uri}");
    }
}

/// Every error path that sees the secret, with a secret that can be recognised in pieces.
#[test]
fn secrets_never_appear_in_error_messages() {
    let secret = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"; // base32 of "abcdefghijklmnopqrst"
    let lower = secret.to_ascii_lowercase();
    let grouped: Vec<&str> = (0..secret.len())
        .step_by(4)
        .map(|i| &lower[i..i + 4])
        .collect();
    let bad_char = format!("{secret}1");
    let bad_len = format!("{secret}A");
    let weak = &secret[..16];
    let uri_bad = format!("otpauth://totp/a?secret={secret}&digits=5");
    let uri_bad_secret = format!("otpauth://totp/a?secret={bad_char}");
    let uri_long = format!(
        "otpauth://totp/a?secret={secret}&image={}",
        "x".repeat(5000)
    );
    let allow_with_value = format!("--allow-weak-secret={secret}");
    let mut cases: Vec<Vec<&str>> = vec![
        code("totp", &bad_char, &[]),
        code("totp", &bad_len, &[]),
        code("totp", secret, &["--digits", "5"]),
        code("totp", secret, &["--step", "0"]),
        code("totp", secret, &["--algorithm", "md5"]),
        code("totp", secret, &["--t0", "9", "--time", "1"]),
        code("hotp", &bad_char, &["--counter", "0"]),
        code("hotp", secret, &[]),
        vec!["code", secret],
        vec![secret],
        vec!["code", "totp", secret],
        vec!["code", "totp", "--time", secret],
        code("hotp", "GEZD", &["--counter", secret]),
        vec!["code", "--uri", &uri_bad],
        vec!["code", "--uri", &uri_bad_secret],
        vec!["uri", "parse", &uri_bad],
        vec!["uri", "parse", &uri_bad_secret],
        vec!["uri", "parse", &uri_bad, secret],
        uri_build("totp", "a", &["--secret", weak]),
        uri_build("totp", "a", &["--secret", &bad_char]),
        uri_build("totp", "a", &[&allow_with_value]),
        vec!["qr", &uri_bad],
        vec!["qr", &uri_long],
    ];
    let mut grouped_case = vec!["code", "totp", "--secret"];
    grouped_case.extend(&grouped);
    cases.push(grouped_case);

    for args in &cases {
        let out = otp(args);
        assert_one_line_error(&out, 2, args);
        let stderr = out.stderr.to_ascii_lowercase();
        for piece in &grouped {
            assert!(
                !stderr.contains(piece),
                "otp {args:?} shows part of the secret: {}",
                out.stderr
            );
        }
    }
}

#[test]
fn uri_parse_prints_pretty_json() {
    let uri = format!(
        "otpauth://totp/Example%20Co:alice%40example.com?secret={}&issuer=Example%20Co\
         &algorithm=SHA256&digits=8&period=60&image=https%3A%2F%2Fexample.com%2Fa.png",
        "gezdgnbvgy3tqojqgezdgnbvgy3tqojq"
    );
    assert_eq!(
        success(&["uri", "parse", &uri]),
        format!(
            r#"{{
  "type": "totp",
  "issuer": "Example Co",
  "account": "alice@example.com",
  "secret": "{RFC_SHA1_B32}",
  "algorithm": "SHA256",
  "digits": 8,
  "period": 60,
  "image": "https://example.com/a.png"
}}
"#
        )
    );
    let hotp = success(&[
        "uri",
        "parse",
        "otpauth://hotp/bob?secret=GEZDGNBVGY3TQOJQ&counter=7",
    ]);
    let value: serde_json::Value = serde_json::from_str(&hotp).unwrap();
    assert_eq!(
        value,
        serde_json::json!({
            "type": "hotp",
            "issuer": null,
            "account": "bob",
            "secret": "GEZDGNBVGY3TQOJQ",
            "algorithm": "SHA1",
            "digits": 6,
            "counter": 7,
            "image": null,
        })
    );
}

#[test]
fn uri_build_with_a_given_secret() {
    assert_eq!(
        success(&uri_build(
            "totp",
            "alice@example.com",
            &[
                "--issuer",
                "Example Co",
                "--secret",
                "gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
            ],
        )),
        format!(
            "otpauth://totp/Example%20Co:alice%40example.com?secret={RFC_SHA1_B32}\
             &issuer=Example%20Co&algorithm=SHA1&digits=6&period=30\n"
        )
    );
    assert_eq!(
        success(&uri_build(
            "hotp",
            "bob",
            &[
                "--secret",
                RFC_SHA1_B32,
                "--algorithm",
                "sha512",
                "--digits",
                "10",
                "--counter",
                "42",
                "--image",
                "https://example.com/logo.png",
            ],
        )),
        format!(
            "otpauth://hotp/bob?secret={RFC_SHA1_B32}&algorithm=SHA512&digits=10&counter=42\
             &image=https%3A%2F%2Fexample.com%2Flogo.png\n"
        )
    );
}

#[test]
fn uri_build_generates_a_160_bit_secret() {
    let args = uri_build("totp", "alice", &[]);
    let first = success(&args);
    let second = success(&args);
    assert_ne!(first, second);
    let parsed: serde_json::Value =
        serde_json::from_str(&success(&["uri", "parse", first.trim_end()])).unwrap();
    assert_eq!(parsed["secret"].as_str().unwrap().len(), 32); // 160 bits in base32
    assert_eq!(parsed["period"], 30);
    // The URI makes codes.
    let code = success(&["code", "--uri", first.trim_end(), "--time", "0"]);
    assert_eq!(code.trim_end().len(), 6);
}

#[test]
fn uri_build_refuses_weak_secrets_unless_allowed() {
    let weak = "GEZDGNBVGY3TQOJQ"; // 80 bits
    let base = uri_build("totp", "a", &["--secret", weak]);
    assert_eq!(
        usage_error(&base),
        "otp: invalid --secret: the secret has 80 bits, fewer than the 128 required \
         (pass --allow-weak-secret to accept it anyway)\n"
    );
    let mut allowed = base.to_vec();
    allowed.push("--allow-weak-secret");
    assert_eq!(
        success(&allowed),
        "otpauth://totp/a?secret=GEZDGNBVGY3TQOJQ&algorithm=SHA1&digits=6&period=30\n"
    );
}

#[test]
fn uri_build_refuses_labels_it_cannot_write() {
    let build = |account: &str, issuer: &str| {
        usage_error(&uri_build("totp", account, &["--issuer", issuer]))
    };
    assert_eq!(
        build("", "X"),
        "otp: invalid --account: must not be empty\n"
    );
    assert_eq!(
        build("a:b", "X"),
        "otp: invalid --account: must not contain a colon\n"
    );
    assert_eq!(
        build("a", "X:Y"),
        "otp: invalid --issuer: must not contain a colon\n"
    );
    assert_eq!(
        build(" a", "X"),
        "otp: invalid --account: must not begin or end with white space\n"
    );
}

#[test]
fn qr_writes_png_and_svg_files() {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("otpauth://totp/Example:alice?secret={RFC_SHA1_B32}&issuer=Example");
    let png = dir.path().join("code.png");
    let svg = dir.path().join("code.svg");
    assert_eq!(success(&["qr", &uri, "--png", png.to_str().unwrap()]), "");
    assert_eq!(success(&["qr", &uri, "--svg", svg.to_str().unwrap()]), "");
    assert_eq!(&fs::read(&png).unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    let svg_text = fs::read_to_string(&svg).unwrap();
    assert!(svg_text.starts_with("<?xml") && svg_text.contains("<svg"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in [&png, &svg] {
            let mode = fs::metadata(file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
    }
}

#[test]
fn qr_draws_in_the_terminal() {
    let uri = format!("otpauth://totp/a?secret={RFC_SHA1_B32}");
    let drawing = success(&["qr", &uri]);
    let lines: Vec<&str> = drawing.lines().collect();
    assert!(lines.len() > 10, "{drawing}");
    let width = lines[0].chars().count();
    assert!(lines.iter().all(|line| line.chars().count() == width));
    assert!(
        drawing
            .chars()
            .all(|c| matches!(c, '█' | '▀' | '▄' | ' ' | '\n'))
    );
}

#[test]
fn qr_refuses_bad_uris_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("code.png");
    let png_arg = png.to_str().unwrap();
    usage_error(&["qr", "otpauth://totp/a?secret=0000", "--png", png_arg]);
    let long = format!(
        "otpauth://totp/a?secret={RFC_SHA1_B32}&image={}",
        "x".repeat(5000)
    );
    assert_eq!(
        usage_error(&["qr", &long, "--png", png_arg]),
        "otp: cannot render QR code: the text is too long for a QR code\n"
    );
    assert!(!png.exists());
}

#[test]
fn unwritable_output_file_is_status_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir").join("code.png");
    let uri = format!("otpauth://totp/a?secret={RFC_SHA1_B32}");
    let args = ["qr", &uri, "--png", missing.to_str().unwrap()];
    let out = otp(args);
    assert_one_line_error(&out, 1, &args);
    assert!(
        out.stderr
            .starts_with(&format!("otp: cannot write {}: ", missing.display())),
        "{}",
        out.stderr
    );
}

#[test]
fn help_lists_the_commands_and_exit_statuses() {
    let help = success(&["--help"]);
    for needle in [
        "Usage: otp [OPTIONS] <COMMAND>",
        "code",
        "uri",
        "qr",
        "Exit status",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
    let code_help = success(&["code", "--help"]);
    for needle in [
        "otp code totp --secret <BASE32>",
        "otp code hotp --secret <BASE32> --counter <N>",
        "otp code --uri <OTPAUTH-URI>",
        "128 bits",
    ] {
        assert!(code_help.contains(needle), "{needle}: {code_help}");
    }
    assert_eq!(
        success(&["--version"]),
        format!("otp {}\n", env!("CARGO_PKG_VERSION"))
    );
}
