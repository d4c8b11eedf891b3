//! Typed settings: every django-otp setting that still applies, with the original's defaults,
//! loadable from environment variables and a TOML file (see [`sources`]).

mod sources;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::{Device, FailureBudget, ThrottlePolicy};

/// A text setting that may depend on the device, like django-otp's `OTP_TOTP_ISSUER`, which may
/// be a string or a function of the device.
#[derive(Clone, Default)]
pub enum PerDevice {
    /// Not set.
    #[default]
    Unset,
    /// The same text for every device.
    Fixed(String),
    /// Computed for each device; `None` leaves it out.
    #[allow(
        clippy::type_complexity,
        reason = "spelled out so that the documentation shows the closure's signature"
    )]
    Computed(Arc<dyn Fn(&Device) -> Option<String> + Send + Sync>),
}

impl PerDevice {
    /// The value for `device`; empty text counts as unset.
    pub fn resolve(&self, device: &Device) -> Option<String> {
        let value = match self {
            Self::Unset => None,
            Self::Fixed(text) => Some(text.clone()),
            Self::Computed(compute) => compute(device),
        };
        value.filter(|text| !text.is_empty())
    }
}

impl fmt::Debug for PerDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unset => f.write_str("Unset"),
            Self::Fixed(text) => f.debug_tuple("Fixed").field(text).finish(),
            Self::Computed(_) => f.write_str("Computed(..)"),
        }
    }
}

/// Settings of TOTP devices.
#[derive(Debug, Clone)]
pub struct TotpSettings {
    /// `OTP_TOTP_ISSUER`: the issuer in provisioning URIs.
    pub issuer: PerDevice,
    /// `OTP_TOTP_IMAGE`: the image URL in provisioning URIs.
    pub image: PerDevice,
    /// `OTP_TOTP_SYNC`: follow the prover's clock drift (default true).
    pub sync: bool,
    /// `OTP_TOTP_THROTTLE_FACTOR`: throttling factor (default 1 s; 0 disables).
    pub throttle_factor: Duration,
    /// `OTP_TOTP_TOLERANCE`: steps accepted either side for new devices (default 1).
    pub tolerance: u16,
    /// `OTP_TOTP_MAX_DRIFT`: bound on the drift synchronisation may reach, in steps (default 2).
    /// django-otp let it grow without bound.
    pub max_drift: u16,
}

impl Default for TotpSettings {
    fn default() -> Self {
        Self {
            issuer: PerDevice::Unset,
            image: PerDevice::Unset,
            sync: true,
            throttle_factor: Duration::from_secs(1),
            tolerance: 1,
            max_drift: 2,
        }
    }
}

/// Settings of HOTP devices.
#[derive(Debug, Clone)]
pub struct HotpSettings {
    /// `OTP_HOTP_ISSUER`: the issuer in provisioning URIs.
    pub issuer: PerDevice,
    /// `OTP_HOTP_THROTTLE_FACTOR`: throttling factor (default 1 s; 0 disables).
    pub throttle_factor: Duration,
    /// `OTP_HOTP_TOLERANCE`: missed codes tolerated for new devices (default 5).
    pub tolerance: u16,
}

impl Default for HotpSettings {
    fn default() -> Self {
        Self {
            issuer: PerDevice::Unset,
            throttle_factor: Duration::from_secs(1),
            tolerance: 5,
        }
    }
}

/// Settings of backup-code devices (django-otp's static devices).
#[derive(Debug, Clone)]
pub struct StaticSettings {
    /// `OTP_STATIC_THROTTLE_FACTOR`: throttling factor (default 1 s; 0 disables).
    pub throttle_factor: Duration,
    /// `OTP_STATIC_COUNT`: codes made per device (default 10).
    pub count: usize,
}

impl Default for StaticSettings {
    fn default() -> Self {
        Self {
            throttle_factor: Duration::from_secs(1),
            count: 10,
        }
    }
}

/// Settings of email devices.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// `OTP_EMAIL_SENDER`: the From address.
    pub sender: String,
    /// `OTP_EMAIL_SUBJECT`: the subject; `{token}` is replaced by the code.
    pub subject: String,
    /// `OTP_EMAIL_BODY_TEMPLATE`: the plain-text body; `{token}` (or `{{ token }}`) is replaced.
    pub body_template: String,
    /// `OTP_EMAIL_BODY_HTML_TEMPLATE`: an HTML alternative, if any; the code is HTML-escaped.
    pub body_html_template: Option<String>,
    /// `OTP_EMAIL_TOKEN_VALIDITY`: how long a code stays valid (default 300 s).
    pub token_validity: Duration,
    /// `OTP_EMAIL_THROTTLE_FACTOR`: throttling factor (default 1 s; 0 disables).
    pub throttle_factor: Duration,
    /// `OTP_EMAIL_COOLDOWN_DURATION`: minimum gap between two codes (default 60 s; 0 disables).
    pub cooldown: Duration,
    /// `OTP_EMAIL_MAX_FAILURES`: wrong tries after which the code is void (default 5).
    pub max_failures: u32,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            sender: "webmaster@localhost".into(),
            subject: "OTP token".into(),
            body_template: "{token}\n".into(),
            body_html_template: None,
            token_validity: Duration::from_secs(300),
            throttle_factor: Duration::from_secs(1),
            cooldown: Duration::from_secs(60),
            max_failures: 5,
        }
    }
}

/// All settings of the framework.
///
/// Build them in code from [`Settings::default`], or load them from environment variables
/// named like django-otp's settings ([`Settings::from_env`]), from a TOML file
/// ([`Settings::from_toml_file`], [`Settings::from_toml_str`]) or from both, the environment
/// overriding the file ([`Settings::load`], [`Settings::from_sources`]).
///
/// | environment variable | TOML key | value | default |
/// |---|---|---|---|
/// | `OTP_TOTP_ISSUER` | `[totp] issuer` | text without a colon or white space at either end; empty means unset | unset |
/// | `OTP_TOTP_IMAGE` | `[totp] image` | an `https://` or `http://` URL; empty means unset | unset |
/// | `OTP_TOTP_SYNC` | `[totp] sync` | boolean | `true` |
/// | `OTP_TOTP_THROTTLE_FACTOR` | `[totp] throttle_factor` | seconds, fractional allowed, 0 disables | 1 |
/// | `OTP_TOTP_TOLERANCE` | `[totp] tolerance` | steps, 0 to 10 | 1 |
/// | `OTP_TOTP_MAX_DRIFT` | `[totp] max_drift` | steps, 0 to 20 | 2 |
/// | `OTP_HOTP_ISSUER` | `[hotp] issuer` | as `OTP_TOTP_ISSUER` | unset |
/// | `OTP_HOTP_THROTTLE_FACTOR` | `[hotp] throttle_factor` | seconds, fractional allowed | 1 |
/// | `OTP_HOTP_TOLERANCE` | `[hotp] tolerance` | codes, 0 to 100 | 5 |
/// | `OTP_STATIC_THROTTLE_FACTOR` | `[static] throttle_factor` | seconds, fractional allowed | 1 |
/// | `OTP_STATIC_COUNT` | `[static] count` | 1 to 100 | 10 |
/// | `OTP_EMAIL_SENDER` | `[email] sender` | an email address, `Name <user@host>` allowed | `webmaster@localhost` |
/// | `OTP_EMAIL_SUBJECT` | `[email] subject` | text without control characters | `OTP token` |
/// | `OTP_EMAIL_BODY_TEMPLATE` | `[email] body_template` | text with `{token}` or `{{ token }}` | `{token}` and a newline |
/// | `OTP_EMAIL_BODY_TEMPLATE_PATH` | `[email] body_template_path` | a file holding the above, read at load time | none |
/// | `OTP_EMAIL_BODY_HTML_TEMPLATE` | `[email] body_html_template` | HTML with the placeholder; empty means no HTML part | none |
/// | `OTP_EMAIL_BODY_HTML_TEMPLATE_PATH` | `[email] body_html_template_path` | a file holding the above, read at load time | none |
/// | `OTP_EMAIL_TOKEN_VALIDITY` | `[email] token_validity` | whole seconds, at least 1 | 300 |
/// | `OTP_EMAIL_THROTTLE_FACTOR` | `[email] throttle_factor` | seconds, fractional allowed | 1 |
/// | `OTP_EMAIL_COOLDOWN_DURATION` | `[email] cooldown_duration` | whole seconds, 0 disables | 60 |
/// | `OTP_EMAIL_MAX_FAILURES` | `[email] max_failures` | at least 1 | 5 |
/// | `OTP_FAILURE_BUDGET` | `failure_budget` (top level) | at least 1 (NIST allows at most 100) | 100 |
/// | `OTP_MAX_THROTTLE_DELAY` | `max_throttle_delay` (top level) | whole seconds, at least 1 | 3600 |
/// | `OTP_CHALLENGES_PER_HOUR` | `challenges_per_hour` (top level) | 0 to 3600, 0 disables | 10 |
/// | `OTP_EMAIL_PER_ADDRESS_PER_HOUR` | `email_per_address_per_hour` (top level) | 0 to 3600, 0 disables | 5 |
///
/// Every duration is at most one year (31 536 000 seconds). Booleans are `true`/`false` in
/// TOML and `true`, `false`, `1`, `0`, `yes` or `no` in any case in the environment. A template
/// and its `_PATH` twin are one setting given two ways: one source may set only one of them.
/// Relative template paths are resolved against the working directory of the process.
///
/// ```
/// use std::time::Duration;
/// use otp_core::{PerDevice, Settings};
///
/// # fn main() -> Result<(), otp_core::Error> {
/// let file = r#"
///     failure_budget = 50
///
///     [totp]
///     issuer = "Example"
///     throttle_factor = 1.5
///
///     [email]
///     token_validity = 600
/// "#;
/// let env = [
///     ("OTP_EMAIL_TOKEN_VALIDITY".to_owned(), "120".to_owned()),
///     // Other OTP_* variables belong to the application and are ignored.
///     ("OTP_DATABASE_URL".to_owned(), "sqlite::memory:".to_owned()),
/// ];
/// let settings = Settings::from_sources(Some(file), env)?;
/// assert!(matches!(&settings.totp.issuer, PerDevice::Fixed(issuer) if issuer == "Example"));
/// assert_eq!(settings.totp.throttle_factor, Duration::from_millis(1_500));
/// assert_eq!(settings.email.token_validity, Duration::from_secs(120)); // the environment wins
/// assert_eq!(settings.failure_budget.limit, 50);
/// assert_eq!(settings.hotp.tolerance, 5); // the default
///
/// let env = [("OTP_EMAIL_TOKEN_VALIDITY".to_owned(), "abc".to_owned())];
/// let error = Settings::from_sources(None, env).unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     r#"invalid setting OTP_EMAIL_TOKEN_VALIDITY: expected a whole number of seconds, got "abc""#,
/// );
///
/// let error = Settings::from_toml_str("[totp]\nisuer = \"Example\"").unwrap_err();
/// assert!(error.to_string().starts_with("invalid setting totp.isuer: unknown setting"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Settings {
    /// TOTP devices.
    pub totp: TotpSettings,
    /// HOTP devices.
    pub hotp: HotpSettings,
    /// Backup-code devices.
    pub static_codes: StaticSettings,
    /// Email devices.
    pub email: EmailSettings,
    /// `OTP_FAILURE_BUDGET`: consecutive failures across a user's devices that lock the account
    /// (default 100, NIST SP 800-63B).
    pub failure_budget: FailureBudget,
    /// `OTP_MAX_THROTTLE_DELAY`: the longest throttling delay (default 1 hour).
    pub max_throttle_delay: Duration,
    /// `OTP_CHALLENGES_PER_HOUR`: challenges (email codes) one user may have sent within an
    /// hour, across all their devices (default 10; 0 disables): each device's cooldown alone
    /// would let an account with many email devices send mail without end, to addresses that
    /// need not be the user's.
    pub challenges_per_hour: u32,
    /// `OTP_EMAIL_PER_ADDRESS_PER_HOUR`: challenges one recipient (an email address, trimmed
    /// and in lower case) may be sent within an hour, across all accounts (default 5; 0
    /// disables): with open sign-up, many accounts could otherwise each send their
    /// allowance to one victim. Kept in the database by a keyed hash of the address, so every
    /// server on it counts together.
    pub email_per_address_per_hour: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            totp: TotpSettings::default(),
            hotp: HotpSettings::default(),
            static_codes: StaticSettings::default(),
            email: EmailSettings::default(),
            failure_budget: FailureBudget::default(),
            max_throttle_delay: ThrottlePolicy::DEFAULT_MAX_DELAY,
            challenges_per_hour: 10,
            email_per_address_per_hour: 5,
        }
    }
}

impl Settings {
    /// A throttle policy with `factor` and the configured cap.
    pub fn throttle(&self, factor: Duration) -> ThrottlePolicy {
        ThrottlePolicy {
            factor,
            max_delay: self.max_throttle_delay,
        }
    }
}
