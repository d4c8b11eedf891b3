//! Loading `Settings` from environment pairs and TOML (reference §7): defaults, each group,
//! precedence, template files and every error message.

use std::path::Path;
use std::time::Duration;

use otp_core::{Error, PerDevice, Settings};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

fn from_env(pairs: &[(&str, &str)]) -> Result<Settings, Error> {
    Settings::from_sources(None, env(pairs))
}

fn fixed(value: &PerDevice) -> Option<&str> {
    match value {
        PerDevice::Fixed(text) => Some(text),
        _ => None,
    }
}

/// `Settings` has no `PartialEq` (a computed issuer is a closure); its `Debug` shows every field.
fn same(a: &Settings, b: &Settings) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

fn error_text(result: Result<Settings, Error>) -> String {
    match result {
        Ok(settings) => panic!("expected an error, got {settings:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn no_source_gives_the_defaults_of_django_otp() {
    let settings = from_env(&[]).unwrap();
    assert!(same(&settings, &Settings::default()));
    assert!(same(&Settings::from_toml_str("").unwrap(), &settings));
    assert!(same(
        &Settings::from_sources(Some("# nothing\n"), []).unwrap(),
        &settings
    ));

    assert!(matches!(settings.totp.issuer, PerDevice::Unset));
    assert!(matches!(settings.totp.image, PerDevice::Unset));
    assert!(settings.totp.sync);
    assert_eq!(settings.totp.throttle_factor, Duration::from_secs(1));
    assert_eq!(settings.totp.tolerance, 1);
    assert_eq!(settings.totp.max_drift, 2);
    assert!(matches!(settings.hotp.issuer, PerDevice::Unset));
    assert_eq!(settings.hotp.throttle_factor, Duration::from_secs(1));
    assert_eq!(settings.hotp.tolerance, 5);
    assert_eq!(
        settings.static_codes.throttle_factor,
        Duration::from_secs(1)
    );
    assert_eq!(settings.static_codes.count, 10);
    assert_eq!(settings.email.sender, "webmaster@localhost");
    assert_eq!(settings.email.subject, "OTP token");
    assert_eq!(settings.email.body_template, "{token}\n");
    assert_eq!(settings.email.body_html_template, None);
    assert_eq!(settings.email.token_validity, Duration::from_secs(300));
    assert_eq!(settings.email.throttle_factor, Duration::from_secs(1));
    assert_eq!(settings.email.cooldown, Duration::from_secs(60));
    assert_eq!(settings.email.max_failures, 5);
    assert_eq!(settings.failure_budget.limit, 100);
    assert_eq!(settings.max_throttle_delay, Duration::from_secs(3_600));
}

#[test]
fn the_applications_other_variables_are_ignored() {
    let settings = from_env(&[
        ("OTP_DATABASE_URL", "sqlite::memory:"),
        ("OTP_SECRET_KEY", "not a key"),
        ("OTP_SMTP_URL", "smtp://localhost"),
        ("OTP_TEST_STRICT", "1"),
        ("OTP_KEY_FILE", "/nonexistent"),
        ("OTP_LOG", "debug"),
        ("OTP_TOTP_ISSUER_X", "x:y"),
        ("OTP_TOTP", "x"),
        ("otp_totp_tolerance", "999"),
        ("PATH", "/usr/bin"),
    ])
    .unwrap();
    assert!(same(&settings, &Settings::default()));
}

#[test]
fn totp_group() {
    let by_env = from_env(&[
        ("OTP_TOTP_ISSUER", "Example Co"),
        ("OTP_TOTP_IMAGE", "https://example.com/logo.png"),
        ("OTP_TOTP_SYNC", "false"),
        ("OTP_TOTP_THROTTLE_FACTOR", "0.5"),
        ("OTP_TOTP_TOLERANCE", "10"),
        ("OTP_TOTP_MAX_DRIFT", "20"),
    ])
    .unwrap();
    let from_toml = Settings::from_toml_str(
        r#"
        [totp]
        issuer = "Example Co"
        image = "https://example.com/logo.png"
        sync = false
        throttle_factor = 0.5
        tolerance = 10
        max_drift = 20
        "#,
    )
    .unwrap();
    for settings in [&by_env, &from_toml] {
        assert_eq!(fixed(&settings.totp.issuer), Some("Example Co"));
        assert_eq!(
            fixed(&settings.totp.image),
            Some("https://example.com/logo.png")
        );
        assert!(!settings.totp.sync);
        assert_eq!(settings.totp.throttle_factor, Duration::from_millis(500));
        assert_eq!(settings.totp.tolerance, 10);
        assert_eq!(settings.totp.max_drift, 20);
        // Nothing else moved.
        assert_eq!(settings.hotp.tolerance, 5);
    }
    assert!(same(&by_env, &from_toml));
}

#[test]
fn hotp_group() {
    let by_env = from_env(&[
        ("OTP_HOTP_ISSUER", "Example"),
        ("OTP_HOTP_THROTTLE_FACTOR", "0"),
        ("OTP_HOTP_TOLERANCE", "100"),
    ])
    .unwrap();
    let from_toml = Settings::from_toml_str(
        "[hotp]\nissuer = \"Example\"\nthrottle_factor = 0\ntolerance = 100\n",
    )
    .unwrap();
    for settings in [&by_env, &from_toml] {
        assert_eq!(fixed(&settings.hotp.issuer), Some("Example"));
        assert_eq!(settings.hotp.throttle_factor, Duration::ZERO);
        assert_eq!(settings.hotp.tolerance, 100);
    }
    assert!(same(&by_env, &from_toml));
}

#[test]
fn static_group() {
    let by_env = from_env(&[
        ("OTP_STATIC_THROTTLE_FACTOR", "2.25"),
        ("OTP_STATIC_COUNT", "1"),
    ])
    .unwrap();
    let from_toml =
        Settings::from_toml_str("[static]\nthrottle_factor = 2.25\ncount = 1\n").unwrap();
    for settings in [&by_env, &from_toml] {
        assert_eq!(
            settings.static_codes.throttle_factor,
            Duration::from_millis(2_250)
        );
        assert_eq!(settings.static_codes.count, 1);
    }
    assert!(same(&by_env, &from_toml));
}

#[test]
fn email_group() {
    let by_env = from_env(&[
        ("OTP_EMAIL_SENDER", "OTP <otp@example.com>"),
        ("OTP_EMAIL_SUBJECT", "Your code: {token}"),
        ("OTP_EMAIL_BODY_TEMPLATE", "Test template: {{token}}"),
        ("OTP_EMAIL_BODY_HTML_TEMPLATE", "<div>{{ token }}</div>"),
        ("OTP_EMAIL_TOKEN_VALIDITY", "600"),
        ("OTP_EMAIL_THROTTLE_FACTOR", "3"),
        ("OTP_EMAIL_COOLDOWN_DURATION", "0"),
        ("OTP_EMAIL_MAX_FAILURES", "1"),
    ])
    .unwrap();
    let from_toml = Settings::from_toml_str(
        r#"
        [email]
        sender = "OTP <otp@example.com>"
        subject = "Your code: {token}"
        body_template = "Test template: {{token}}"
        body_html_template = "<div>{{ token }}</div>"
        token_validity = 600
        throttle_factor = 3
        cooldown_duration = 0
        max_failures = 1
        "#,
    )
    .unwrap();
    for settings in [&by_env, &from_toml] {
        assert_eq!(settings.email.sender, "OTP <otp@example.com>");
        assert_eq!(settings.email.subject, "Your code: {token}");
        assert_eq!(settings.email.body_template, "Test template: {{token}}");
        assert_eq!(
            settings.email.body_html_template.as_deref(),
            Some("<div>{{ token }}</div>")
        );
        assert_eq!(settings.email.token_validity, Duration::from_secs(600));
        assert_eq!(settings.email.throttle_factor, Duration::from_secs(3));
        assert_eq!(settings.email.cooldown, Duration::ZERO);
        assert_eq!(settings.email.max_failures, 1);
    }
    assert!(same(&by_env, &from_toml));
}

#[test]
fn top_level_settings() {
    let by_env = from_env(&[
        ("OTP_FAILURE_BUDGET", "1"),
        ("OTP_MAX_THROTTLE_DELAY", "31536000"),
    ])
    .unwrap();
    let from_toml =
        Settings::from_toml_str("failure_budget = 1\nmax_throttle_delay = 31536000\n").unwrap();
    for settings in [&by_env, &from_toml] {
        assert_eq!(settings.failure_budget.limit, 1);
        assert_eq!(settings.max_throttle_delay, Duration::from_secs(31_536_000));
        assert_eq!(
            settings.throttle(Duration::from_secs(1)).max_delay,
            Duration::from_secs(31_536_000)
        );
    }
    assert!(same(&by_env, &from_toml));
    // Above NIST's ceiling is allowed (the operator's call), as any u32.
    let settings = from_env(&[("OTP_FAILURE_BUDGET", "4294967295")]).unwrap();
    assert_eq!(settings.failure_budget.limit, u32::MAX);
}

#[test]
fn email_per_address_per_hour() {
    assert_eq!(Settings::default().email_per_address_per_hour, 5);
    let by_env = from_env(&[("OTP_EMAIL_PER_ADDRESS_PER_HOUR", "0")]).unwrap();
    assert_eq!(
        by_env.email_per_address_per_hour, 0,
        "0 turns the limit off"
    );
    let from_toml = Settings::from_toml_str("email_per_address_per_hour = 20").unwrap();
    assert_eq!(from_toml.email_per_address_per_hour, 20);
    assert_eq!(
        error_text(Settings::from_toml_str("email_per_address_per_hour = 3601")),
        "invalid setting email_per_address_per_hour: must be from 0 to 3600, got 3601"
    );
}

#[test]
fn challenges_per_hour() {
    assert_eq!(Settings::default().challenges_per_hour, 10);
    let by_env = from_env(&[("OTP_CHALLENGES_PER_HOUR", "3600")]).unwrap();
    let from_toml = Settings::from_toml_str("challenges_per_hour = 3600").unwrap();
    assert_eq!(by_env.challenges_per_hour, 3_600);
    assert!(same(&by_env, &from_toml));
    // 0 turns the limit off.
    assert_eq!(
        from_env(&[("OTP_CHALLENGES_PER_HOUR", "0")])
            .unwrap()
            .challenges_per_hour,
        0
    );
    assert_eq!(
        error_text(from_env(&[("OTP_CHALLENGES_PER_HOUR", "3601")])),
        "invalid setting OTP_CHALLENGES_PER_HOUR: must be from 0 to 3600, got \"3601\""
    );
    assert_eq!(
        error_text(Settings::from_toml_str("challenges_per_hour = -1")),
        "invalid setting challenges_per_hour: must be from 0 to 3600, got -1"
    );
}

#[test]
fn toml_dotted_keys_and_inline_tables_are_the_same_layout() {
    let dotted =
        Settings::from_toml_str("totp.tolerance = 3\nemail = { max_failures = 2 }\n").unwrap();
    assert_eq!(dotted.totp.tolerance, 3);
    assert_eq!(dotted.email.max_failures, 2);
}

#[test]
fn environment_booleans() {
    let cases = [
        ("true", true),
        ("TRUE", true),
        ("Yes", true),
        ("1", true),
        (" yes ", true),
        ("false", false),
        ("False", false),
        ("NO", false),
        ("0", false),
    ];
    for (value, expected) in cases {
        let settings = from_env(&[("OTP_TOTP_SYNC", value)]).unwrap();
        assert_eq!(settings.totp.sync, expected, "{value:?}");
    }
}

#[test]
fn throttle_factors_take_fractions_and_integers() {
    let cases = [
        ("0", Duration::ZERO),
        ("0.25", Duration::from_millis(250)),
        ("1.5", Duration::from_millis(1_500)),
        ("2", Duration::from_secs(2)),
        ("1e2", Duration::from_secs(100)),
        ("31536000", Duration::from_secs(31_536_000)),
    ];
    for (value, expected) in cases {
        let settings = from_env(&[("OTP_EMAIL_THROTTLE_FACTOR", value)]).unwrap();
        assert_eq!(settings.email.throttle_factor, expected, "{value:?}");
        let toml = format!("[email]\nthrottle_factor = {value}\n");
        let settings = Settings::from_toml_str(&toml).unwrap();
        assert_eq!(settings.email.throttle_factor, expected, "{toml}");
    }
}

#[test]
fn empty_issuer_or_image_means_unset() {
    let settings = Settings::from_sources(
        Some("[totp]\nissuer = \"File\"\nimage = \"https://example.com/i.png\"\n"),
        env(&[("OTP_TOTP_ISSUER", ""), ("OTP_TOTP_IMAGE", "")]),
    )
    .unwrap();
    assert!(matches!(settings.totp.issuer, PerDevice::Unset));
    assert!(matches!(settings.totp.image, PerDevice::Unset));
}

#[test]
fn the_environment_overrides_the_file_setting_by_setting() {
    let file = r#"
        failure_budget = 10
        [totp]
        issuer = "File"
        tolerance = 3
        [email]
        token_validity = 600
        subject = "From the file"
    "#;
    let settings = Settings::from_sources(
        Some(file),
        env(&[
            ("OTP_TOTP_ISSUER", "Environment"),
            ("OTP_EMAIL_TOKEN_VALIDITY", "60"),
            ("OTP_FAILURE_BUDGET", "20"),
        ]),
    )
    .unwrap();
    // The environment wins where both set a value...
    assert_eq!(fixed(&settings.totp.issuer), Some("Environment"));
    assert_eq!(settings.email.token_validity, Duration::from_secs(60));
    assert_eq!(settings.failure_budget.limit, 20);
    // ...the file where only it does...
    assert_eq!(settings.totp.tolerance, 3);
    assert_eq!(settings.email.subject, "From the file");
    // ...and the defaults elsewhere.
    assert_eq!(settings.totp.max_drift, 2);
    assert_eq!(settings.email.cooldown, Duration::from_secs(60));
}

#[test]
fn of_two_pairs_with_one_name_the_later_wins() {
    let settings = from_env(&[
        ("OTP_HOTP_TOLERANCE", "not a number"),
        ("OTP_HOTP_TOLERANCE", "7"),
    ])
    .unwrap();
    assert_eq!(settings.hotp.tolerance, 7);
}

#[test]
fn a_bad_file_value_is_an_error_even_where_the_environment_overrides_it() {
    let error = Settings::from_sources(
        Some("[totp]\ntolerance = 11\n"),
        env(&[("OTP_TOTP_TOLERANCE", "1")]),
    );
    assert_eq!(
        error_text(error),
        "invalid setting totp.tolerance: must be from 0 to 10, got 11"
    );
}

#[test]
fn environment_errors_name_the_variable() {
    let cases = [
        (
            "OTP_EMAIL_TOKEN_VALIDITY",
            "abc",
            r#"expected a whole number of seconds, got "abc""#,
        ),
        (
            "OTP_EMAIL_TOKEN_VALIDITY",
            "",
            r#"expected a whole number of seconds, got """#,
        ),
        (
            "OTP_EMAIL_TOKEN_VALIDITY",
            "1.5",
            r#"expected a whole number of seconds, got "1.5""#,
        ),
        (
            "OTP_EMAIL_TOKEN_VALIDITY",
            "0",
            r#"must be from 1 to 31536000 seconds, got "0""#,
        ),
        (
            "OTP_EMAIL_TOKEN_VALIDITY",
            "31536001",
            r#"must be from 1 to 31536000 seconds, got "31536001""#,
        ),
        (
            "OTP_EMAIL_TOKEN_VALIDITY",
            "99999999999999999999999",
            r#"must be from 1 to 31536000 seconds, got "99999999999999999999999""#,
        ),
        (
            "OTP_EMAIL_COOLDOWN_DURATION",
            "-5",
            r#"must be from 0 to 31536000 seconds, got "-5""#,
        ),
        (
            "OTP_MAX_THROTTLE_DELAY",
            "0",
            r#"must be from 1 to 31536000 seconds, got "0""#,
        ),
        (
            "OTP_TOTP_THROTTLE_FACTOR",
            "fast",
            r#"expected a number of seconds, got "fast""#,
        ),
        (
            "OTP_TOTP_THROTTLE_FACTOR",
            "-1",
            r#"must be from 0 to 31536000 seconds, got "-1""#,
        ),
        (
            "OTP_HOTP_THROTTLE_FACTOR",
            "NaN",
            r#"must be from 0 to 31536000 seconds, got "NaN""#,
        ),
        (
            "OTP_STATIC_THROTTLE_FACTOR",
            "inf",
            r#"must be from 0 to 31536000 seconds, got "inf""#,
        ),
        (
            "OTP_EMAIL_THROTTLE_FACTOR",
            "1e9",
            r#"must be from 0 to 31536000 seconds, got "1e9""#,
        ),
        (
            "OTP_TOTP_SYNC",
            "maybe",
            r#"expected true, false, 1, 0, yes or no, got "maybe""#,
        ),
        (
            "OTP_TOTP_TOLERANCE",
            "one",
            r#"expected a whole number, got "one""#,
        ),
        (
            "OTP_TOTP_TOLERANCE",
            "11",
            r#"must be from 0 to 10, got "11""#,
        ),
        (
            "OTP_TOTP_TOLERANCE",
            "-1",
            r#"must be from 0 to 10, got "-1""#,
        ),
        (
            "OTP_TOTP_MAX_DRIFT",
            "21",
            r#"must be from 0 to 20, got "21""#,
        ),
        (
            "OTP_HOTP_TOLERANCE",
            "101",
            r#"must be from 0 to 100, got "101""#,
        ),
        ("OTP_STATIC_COUNT", "0", r#"must be from 1 to 100, got "0""#),
        (
            "OTP_STATIC_COUNT",
            "101",
            r#"must be from 1 to 100, got "101""#,
        ),
        (
            "OTP_EMAIL_MAX_FAILURES",
            "0",
            r#"must be at least 1, got "0""#,
        ),
        ("OTP_FAILURE_BUDGET", "0", r#"must be at least 1, got "0""#),
        (
            "OTP_FAILURE_BUDGET",
            "4294967296",
            r#"must be at least 1, got "4294967296""#,
        ),
        ("OTP_TOTP_ISSUER", "Example:Co", "must not contain a colon"),
        (
            "OTP_HOTP_ISSUER",
            " Example",
            "must not have white space at either end",
        ),
        (
            "OTP_HOTP_ISSUER",
            "Exa\u{7}mple",
            "must not contain control characters",
        ),
        (
            "OTP_TOTP_IMAGE",
            "ftp://example.com/logo.png",
            r#"expected an https:// or http:// URL, got "ftp://example.com/logo.png""#,
        ),
        (
            "OTP_TOTP_IMAGE",
            "https://example.com/my logo.png",
            r#"expected an https:// or http:// URL, got "https://example.com/my logo.png""#,
        ),
        (
            "OTP_EMAIL_SUBJECT",
            "Code\r\nBcc: victim@example.com",
            "must not contain control characters",
        ),
        (
            "OTP_EMAIL_BODY_TEMPLATE",
            "Your code is {{code}}",
            "must contain the placeholder {token} or {{ token }}",
        ),
        (
            "OTP_EMAIL_BODY_HTML_TEMPLATE",
            "<p>{{ token}}</p>",
            "must contain the placeholder {token} or {{ token }}",
        ),
        ("OTP_EMAIL_BODY_TEMPLATE", "", "must not be empty"),
        ("OTP_EMAIL_BODY_TEMPLATE_PATH", "", "must not be empty"),
    ];
    for (name, value, problem) in cases {
        let error = from_env(&[(name, value)]).unwrap_err();
        assert_eq!(
            error,
            Error::InvalidSetting {
                name: name.to_owned(),
                problem: problem.to_owned(),
            },
            "{name}={value:?}"
        );
        assert_eq!(
            error.to_string(),
            format!("invalid setting {name}: {problem}")
        );
    }
}

#[test]
fn a_sender_that_is_not_an_address_is_refused() {
    for value in ["nope", "", "a@b\r\nBcc: c@d"] {
        let text = error_text(from_env(&[("OTP_EMAIL_SENDER", value)]));
        let prefix =
            format!("invalid setting OTP_EMAIL_SENDER: expected an email address, got {value:?}: ");
        assert!(text.starts_with(&prefix), "{text}");
    }
}

#[test]
fn toml_errors_name_the_key() {
    let cases = [
        (
            "[email]\ntoken_validity = \"300\"",
            r#"invalid setting email.token_validity: expected a whole number of seconds, got "300""#,
        ),
        (
            "[email]\ntoken_validity = 300.0",
            "invalid setting email.token_validity: expected a whole number of seconds, got 300.0",
        ),
        (
            "[email]\ntoken_validity = 0",
            "invalid setting email.token_validity: must be from 1 to 31536000 seconds, got 0",
        ),
        (
            "[email]\ncooldown_duration = -1",
            "invalid setting email.cooldown_duration: must be from 0 to 31536000 seconds, got -1",
        ),
        (
            "[totp]\nthrottle_factor = -0.5",
            "invalid setting totp.throttle_factor: must be from 0 to 31536000 seconds, got -0.5",
        ),
        (
            "[totp]\nthrottle_factor = nan",
            "invalid setting totp.throttle_factor: must be from 0 to 31536000 seconds, got NaN",
        ),
        (
            "[totp]\nthrottle_factor = \"1\"",
            r#"invalid setting totp.throttle_factor: expected a number of seconds, got "1""#,
        ),
        (
            "[totp]\nsync = \"yes\"",
            r#"invalid setting totp.sync: expected true or false, got "yes""#,
        ),
        (
            "[totp]\nsync = 1",
            "invalid setting totp.sync: expected true or false, got 1",
        ),
        (
            "[totp]\nissuer = 5",
            "invalid setting totp.issuer: expected a string, got 5",
        ),
        (
            "[totp]\nissuer = \"A:B\"",
            "invalid setting totp.issuer: must not contain a colon",
        ),
        (
            "[hotp]\ntolerance = 101",
            "invalid setting hotp.tolerance: must be from 0 to 100, got 101",
        ),
        (
            "[static]\ncount = 1979-05-27",
            "invalid setting static.count: expected a whole number, got 1979-05-27",
        ),
        (
            "failure_budget = 0",
            "invalid setting failure_budget: must be at least 1, got 0",
        ),
        (
            "max_throttle_delay = { secs = 1 }",
            "invalid setting max_throttle_delay: expected a whole number of seconds, got a table",
        ),
        ("totp = 5", "invalid setting totp: expected a table, got 5"),
        (
            "[email]\nbody_template = \"{code}\"",
            "invalid setting email.body_template: must contain the placeholder {token} or {{ token }}",
        ),
    ];
    for (toml, expected) in cases {
        assert_eq!(
            error_text(Settings::from_toml_str(toml)),
            expected,
            "{toml}"
        );
    }
}

#[test]
fn unknown_toml_keys_are_errors_naming_the_key() {
    let cases = [
        (
            "[totp]\nisuer = \"Example\"",
            "invalid setting totp.isuer: unknown setting; the [totp] table takes issuer, image, \
             sync, throttle_factor, tolerance, max_drift",
        ),
        (
            "[email]\ncooldown = 10",
            "invalid setting email.cooldown: unknown setting; the [email] table takes sender, \
             subject, body_template, body_template_path, body_html_template, \
             body_html_template_path, token_validity, throttle_factor, cooldown_duration, \
             max_failures",
        ),
        (
            "[static]\ntolerance = 1",
            "invalid setting static.tolerance: unknown setting; the [static] table takes \
             throttle_factor, count",
        ),
        (
            "[hotp]\nmax_drift = 1",
            "invalid setting hotp.max_drift: unknown setting; the [hotp] table takes issuer, \
             throttle_factor, tolerance",
        ),
        (
            "[totpp]\nissuer = \"Example\"",
            "invalid setting totpp: unknown setting; the top level takes the tables totp, hotp, \
             static, email and the keys failure_budget, max_throttle_delay, challenges_per_hour, \
             email_per_address_per_hour",
        ),
        (
            "issuer = \"Example\"",
            "invalid setting issuer: unknown setting; the top level takes the tables totp, hotp, \
             static, email and the keys failure_budget, max_throttle_delay, challenges_per_hour, \
             email_per_address_per_hour",
        ),
        (
            "OTP_TOTP_ISSUER = \"Example\"",
            "invalid setting OTP_TOTP_ISSUER: unknown setting; write it as issuer in the [totp] \
             table",
        ),
        (
            "OTP_FAILURE_BUDGET = 10",
            "invalid setting OTP_FAILURE_BUDGET: unknown setting; write it as failure_budget at \
             the top level",
        ),
        (
            "[email]\nOTP_EMAIL_SENDER = \"a@example.com\"",
            "invalid setting email.OTP_EMAIL_SENDER: unknown setting; write it as sender in the \
             [email] table",
        ),
        (
            "[totp]\nTOLERANCE = 1",
            "invalid setting totp.TOLERANCE: unknown setting; the [totp] table takes issuer, \
             image, sync, throttle_factor, tolerance, max_drift",
        ),
        (
            "database_url = \"sqlite::memory:\"",
            "invalid setting database_url: unknown setting; the top level takes the tables totp, \
             hotp, static, email and the keys failure_budget, max_throttle_delay, \
             challenges_per_hour, email_per_address_per_hour",
        ),
    ];
    for (toml, expected) in cases {
        assert_eq!(
            error_text(Settings::from_toml_str(toml)),
            expected,
            "{toml}"
        );
    }
}

#[test]
fn toml_that_does_not_parse_is_an_error_that_does_not_quote_the_document() {
    let cases = [
        (
            "[totp]\ntolerance = = 1\n",
            "not valid TOML at line 2, column 13: extra `=`, expected nothing",
        ),
        (
            "a = 1\na = 2\n",
            "not valid TOML at line 2, column 1: duplicate key",
        ),
        (
            "[email]\nsender = \"é\" x\n",
            "not valid TOML at line 2, column 14: unexpected key or value, expected newline, `#`",
        ),
        (
            "secret_key = \"hunter2\n",
            "not valid TOML at line 1, column 22: invalid basic string, expected `\"`",
        ),
        (
            "[totp",
            "not valid TOML at line 1, column 6: unclosed table, expected `]`",
        ),
    ];
    for (toml, expected) in cases {
        let text = error_text(Settings::from_toml_str(toml));
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(
            text,
            format!("invalid setting TOML document: {expected}"),
            "{toml}"
        );
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn template_files_are_read_at_load_time() {
    let dir = tempfile::tempdir().unwrap();
    let text = write(dir.path(), "custom.txt", "Test template 3: {{ token }}\n");
    let html = write(dir.path(), "custom.html", "<p>{{ token }}</p>");

    let by_env = from_env(&[
        ("OTP_EMAIL_BODY_TEMPLATE_PATH", &text),
        ("OTP_EMAIL_BODY_HTML_TEMPLATE_PATH", &html),
    ])
    .unwrap();
    let toml =
        format!("[email]\nbody_template_path = {text:?}\nbody_html_template_path = {html:?}\n");
    let from_toml = Settings::from_toml_str(&toml).unwrap();
    for settings in [&by_env, &from_toml] {
        assert_eq!(
            settings.email.body_template,
            "Test template 3: {{ token }}\n"
        );
        assert_eq!(
            settings.email.body_html_template.as_deref(),
            Some("<p>{{ token }}</p>")
        );
    }

    // Read once: changing the file later changes nothing.
    std::fs::write(&text, "changed {token}").unwrap();
    assert_eq!(by_env.email.body_template, "Test template 3: {{ token }}\n");
}

#[test]
fn template_file_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.txt");
    let missing = missing.to_str().unwrap();
    let text = error_text(from_env(&[("OTP_EMAIL_BODY_TEMPLATE_PATH", missing)]));
    let prefix = format!("invalid setting OTP_EMAIL_BODY_TEMPLATE_PATH: cannot read {missing}: ");
    assert!(text.starts_with(&prefix), "{text}");

    let no_token = write(dir.path(), "no_token.html", "<p>{{ code }}</p>");
    let toml = format!("[email]\nbody_html_template_path = {no_token:?}\n");
    assert_eq!(
        error_text(Settings::from_toml_str(&toml)),
        format!(
            "invalid setting email.body_html_template_path: the file {no_token} must contain \
             the placeholder {{token}} or {{{{ token }}}}"
        )
    );

    let not_utf8 = dir.path().join("latin1.txt");
    std::fs::write(&not_utf8, b"Code: {token} \xe9t\xe9\n").unwrap();
    let not_utf8 = not_utf8.to_str().unwrap();
    let text = error_text(from_env(&[("OTP_EMAIL_BODY_TEMPLATE_PATH", not_utf8)]));
    let prefix = format!("invalid setting OTP_EMAIL_BODY_TEMPLATE_PATH: cannot read {not_utf8}: ");
    assert!(text.starts_with(&prefix), "{text}");

    // A directory is not a template.
    let dir_name = dir.path().to_str().unwrap();
    let text = error_text(from_env(&[("OTP_EMAIL_BODY_TEMPLATE_PATH", dir_name)]));
    assert!(
        text.starts_with("invalid setting OTP_EMAIL_BODY_TEMPLATE_PATH: cannot read "),
        "{text}"
    );
}

#[test]
fn a_template_and_its_path_in_one_source_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "t.txt", "{token}");
    assert_eq!(
        error_text(from_env(&[
            ("OTP_EMAIL_BODY_TEMPLATE", "{token}"),
            ("OTP_EMAIL_BODY_TEMPLATE_PATH", &path),
        ])),
        "invalid setting OTP_EMAIL_BODY_TEMPLATE_PATH: is set together with \
         OTP_EMAIL_BODY_TEMPLATE; set only one of them"
    );
    let toml = format!(
        "[email]\nbody_html_template = \"<p>{{token}}</p>\"\nbody_html_template_path = {path:?}\n"
    );
    assert_eq!(
        error_text(Settings::from_toml_str(&toml)),
        "invalid setting email.body_html_template_path: is set together with \
         email.body_html_template; set only one of them"
    );
}

#[test]
fn a_template_path_in_the_environment_replaces_a_template_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "t.txt", "From the file {token}\n");
    let settings = Settings::from_sources(
        Some("[email]\nbody_template = \"Inline {token}\"\n"),
        env(&[("OTP_EMAIL_BODY_TEMPLATE_PATH", &path)]),
    )
    .unwrap();
    assert_eq!(settings.email.body_template, "From the file {token}\n");

    // The other way round: the overridden path is never read, so it need not exist.
    let toml = format!(
        "[email]\nbody_template_path = {:?}\n",
        dir.path().join("missing.txt").to_str().unwrap()
    );
    let settings = Settings::from_sources(
        Some(&toml),
        env(&[("OTP_EMAIL_BODY_TEMPLATE", "Inline {token}")]),
    )
    .unwrap();
    assert_eq!(settings.email.body_template, "Inline {token}");
}

#[test]
fn an_empty_html_template_turns_the_html_part_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "t.html", "<p>{token}</p>");
    let toml = format!("[email]\nbody_html_template_path = {path:?}\n");
    assert_eq!(
        Settings::from_toml_str(&toml)
            .unwrap()
            .email
            .body_html_template
            .as_deref(),
        Some("<p>{token}</p>")
    );
    for name in [
        "OTP_EMAIL_BODY_HTML_TEMPLATE",
        "OTP_EMAIL_BODY_HTML_TEMPLATE_PATH",
    ] {
        let settings = Settings::from_sources(Some(&toml), env(&[(name, "")])).unwrap();
        assert_eq!(settings.email.body_html_template, None, "{name}");
    }
}

#[test]
fn from_toml_file_reads_the_file_and_names_it_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otp.toml");
    std::fs::write(&path, "[static]\ncount = 12\n").unwrap();
    let settings = Settings::from_toml_file(&path).unwrap();
    assert_eq!(settings.static_codes.count, 12);

    std::fs::write(&path, "[static]\ncount = \n").unwrap();
    let text = error_text(Settings::from_toml_file(&path));
    let prefix = format!(
        "invalid setting file {}: not valid TOML at line 2",
        path.display()
    );
    assert!(text.starts_with(&prefix), "{text}");

    let missing = dir.path().join("missing.toml");
    let text = error_text(Settings::from_toml_file(&missing));
    let prefix = format!("invalid setting file {}: cannot read: ", missing.display());
    assert!(text.starts_with(&prefix), "{text}");
    let text = error_text(Settings::load(Some(&missing)));
    assert!(text.starts_with(&prefix), "{text}");
}

/// `from_env` and `load` read the real environment; whatever it holds, they must agree with
/// `from_sources` given the same pairs (variables that are not UTF-8 cannot be settings here).
#[test]
fn from_env_reads_the_process_environment() {
    let pairs = || {
        std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect::<Vec<_>>()
    };
    let outcome = |result: Result<Settings, Error>| match result {
        Ok(settings) => format!("{settings:?}"),
        Err(error) => error.to_string(),
    };
    let expected = outcome(Settings::from_sources(None, pairs()));
    assert_eq!(outcome(Settings::from_env()), expected);
    assert_eq!(outcome(Settings::load(None)), expected);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otp.toml");
    std::fs::write(&path, "[totp]\nmax_drift = 4\n").unwrap();
    let expected = outcome(Settings::from_sources(
        Some("[totp]\nmax_drift = 4\n"),
        pairs(),
    ));
    assert_eq!(outcome(Settings::load(Some(&path))), expected);
}
