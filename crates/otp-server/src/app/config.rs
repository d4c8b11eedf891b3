//! [`ServerConfig`]: the server's configuration, from environment variables and a TOML file.
//!
//! | environment variable | TOML key | value | default |
//! |---|---|---|---|
//! | `OTP_ADDR` | `[server] addr` | the address to listen on, `IP:PORT` (port 0 picks a free one) | `127.0.0.1:8000` |
//! | `OTP_DATABASE_URL` | `[server] database_url` | `sqlite://PATH` or `postgres://USER@HOST/DATABASE` | `sqlite://otp.db` |
//! | `OTP_SIGNUP` | `[server] signup` | boolean: whether anyone may make an account at `/signup` | `true` |
//! | `OTP_SECURE_COOKIES` | `[server] secure_cookies` | boolean: the site is served over HTTPS: the session cookie's `Secure` flag, and the scheme (`https`, else `http`) that a request's `Origin` must have | `false` |
//! | `OTP_ADMIN_HIDE_SENSITIVE_DATA` | `[server] admin_hide_sensitive_data` | boolean: the admin pages leave out secrets and codes (django-otp's `OTP_ADMIN_HIDE_SENSITIVE_DATA`; on by default here, off in django-otp) | `true` |
//! | `OTP_SITE_NAME` | `[server] site_name` | text shown in page titles, 1 to 100 characters | `otp` |
//! | `OTP_SECRET_KEY` | — | application keys, `ID:HEX` entries (environment only: keep keys out of files that get copied around) | none |
//! | `OTP_KEY_FILE` | `[server] key_file` | a file of application keys | beside a SQLite database |
//! | `OTP_SMTP_URL` | `[server] smtp_url` | `smtp://[USER:PASSWORD@]HOST[:PORT]` | none: the development mailer |
//! | `OTP_BODY_LIMIT` | `[server] body_limit` | the largest request body, in bytes, 1024 to 16777216 | 65536 |
//! | `OTP_REQUEST_TIMEOUT` | `[server] request_timeout` | seconds a request may take, 1 to 3600 | 30 |
//! | `OTP_ALLOWED_ORIGINS` | `[server] allowed_origins` | other origins (`scheme://host[:port]`) allowed to post JSON: comma-separated, or a TOML array | none |
//! | `OTP_RATE_LIMIT_PER_MINUTE` | `[server] rate_limit_per_minute` | posts to the login endpoints, to the verification endpoints, and changes to devices (adding, confirming, sending codes), that one client (IP address) may make to each at once and then per minute, 0 (no limit) to 100000; more get 429 | 60 |
//! | `OTP_RATE_LIMIT_SHARED` | `[server] rate_limit_shared` | boolean: the rate limit's budgets are kept in the database, so that every server on it counts each client's requests together, instead of in each server's memory (one statement per allowed request; a refused client is then refused from memory until its wait ends) | `true` on PostgreSQL, `false` on SQLite |
//! | `OTP_STEP_UP_SECONDS` | `[server] step_up_seconds` | how recent the session's second factor must be, by a device the session did not enrol, to add, confirm or remove a device, make new backup codes or change the password ([`otp_axum::step_up`]), 30 to 86400 | 300 |
//! | `OTP_VERIFICATION_MAX_AGE_SECONDS` | `[server] verification_max_age_seconds` | a session's second factor lapses this long after it was given (NIST SP 800-63B AAL2: 12 hours), 60 to 2592000 | 43200 |
//! | `OTP_VERIFICATION_IDLE_SECONDS` | `[server] verification_idle_seconds` | a session's second factor lapses after this long without a request (AAL2: 30 minutes), 0 (never) to 2592000 | 1800 |
//! | `OTP_PASSWORD_FREE_FAILURES` | `[server] password_free_failures` | consecutive wrong passwords for one username that cost no wait, 0 to 1000 | 5 |
//! | `OTP_PASSWORD_BACKOFF` | `[server] password_backoff` | seconds one username must wait after the first wrong password beyond the free ones, doubling with each further one, 0 (no back-off) to 3600; attempts during the wait are refused unjudged, with the answer of a wrong password (see [`password_backoff`](super::password_backoff)) | 1 |
//! | `OTP_PASSWORD_BACKOFF_MAX` | `[server] password_backoff_max` | the longest of those waits, in seconds, 1 to 86400 | 300 |
//! | `OTP_TRUST_FORWARDED_FOR` | `[server] trust_forwarded_for` | boolean: the client of the rate limit is the last `X-Forwarded-For` address (turn on only behind one reverse proxy that sets it) | `false` |
//!
//! The framework's own settings (`OTP_TOTP_ISSUER`, `[totp] issuer`, `OTP_FAILURE_BUDGET`,
//! ...) are read from the same environment and the same file by
//! [`otp_core::Settings::from_sources`], which documents them; the file's `[server]` table is
//! the server's, everything else in it the framework's.
//!
//! ## Rules
//!
//! - Each setting takes the first value found in: the command line (`otp serve --addr`,
//!   `--database-url`), the environment, the file, the default.
//! - The file is `otp serve --config FILE`, else `OTP_CONFIG`, else none.
//! - Empty environment variables count as unset.
//! - Booleans are `true`/`false` in TOML and `true`, `false`, `1`, `0`, `yes` or `no` in any
//!   case in the environment.
//! - A key the file does not define, a value of the wrong type, or an unusable value is an
//!   error at start-up that names the setting as its source spells it (`OTP_SIGNUP`,
//!   `server.signup`, `totp.tolerance`). Values that may hold a password (`OTP_SMTP_URL`,
//!   `OTP_DATABASE_URL`) or a key are never quoted in errors.
//!
//! ## Cookies and HTTPS
//!
//! The session cookie is sent without the `Secure` flag by default, so that the server works
//! at `http://127.0.0.1:8000` with no set-up. Any deployment that people reach over a network
//! must run behind HTTPS (a reverse proxy that terminates TLS, and sets
//! `Strict-Transport-Security`) with `OTP_SECURE_COOKIES=true`, so that browsers never send
//! the session over plain HTTP. The same setting tells the CSRF checks that the site's origin
//! is `https://HOST`: with it off, a form or JSON request whose `Origin` is `https://HOST` is
//! refused as coming from another site, and with it on, one from `http://HOST` is.
//!
//! ```
//! use otp_server::app::ServerConfig;
//!
//! let file = r#"
//!     failure_budget = 50
//!
//!     [server]
//!     addr = "0.0.0.0:8080"
//!     signup = false
//!
//!     [totp]
//!     issuer = "Example"
//! "#;
//! let env = [("OTP_SIGNUP".to_owned(), "yes".to_owned())];
//! let config = ServerConfig::from_sources(Some(file), env).unwrap();
//! assert_eq!(config.addr.to_string(), "0.0.0.0:8080");
//! assert!(config.signup_enabled); // the environment wins over the file
//! assert_eq!(config.settings.failure_budget.limit, 50);
//!
//! let error = ServerConfig::from_sources(Some("[server]\nsinup = false"), []).unwrap_err();
//! assert!(error.to_string().starts_with("invalid setting server.sinup: unknown setting; "));
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use otp_core::{DatabaseUrl, Settings, SmtpMailer};
use zeroize::Zeroizing;

use super::Error;
use super::password_backoff::PasswordBackoff;

/// The database when no source names one.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://otp.db";
/// The address when no source names one.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8000";
/// The largest request body by default: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// How long a request may take by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How recent a verification must be for a change to the second factor, by default.
pub const DEFAULT_STEP_UP: Duration = Duration::from_secs(5 * 60);
/// How long a verification lasts by default (NIST SP 800-63B AAL2 re-authentication).
pub const DEFAULT_VERIFICATION_MAX_AGE: Duration = Duration::from_secs(12 * 60 * 60);
/// How long a verified session may stay idle by default (AAL2).
pub const DEFAULT_VERIFICATION_IDLE: Duration = Duration::from_secs(30 * 60);
/// Login attempts, and verification attempts, per client and minute by default.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 60;

/// The server's configuration (see the [module docs](self) for the sources and keys).
#[derive(Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The database of devices, sessions and users.
    pub database_url: String,
    /// Whether `/signup` is open.
    pub signup_enabled: bool,
    /// The session cookie's `Secure` flag.
    pub secure_cookies: bool,
    /// Whether the admin pages leave out secrets and codes.
    pub admin_hide_sensitive_data: bool,
    /// The site's name, in page titles.
    pub site_name: String,
    /// Application keys as text (`OTP_SECRET_KEY`).
    pub secret_key: Option<Zeroizing<String>>,
    /// A file of application keys.
    pub key_file: Option<PathBuf>,
    /// The SMTP server; `None` for the development mailer.
    pub smtp_url: Option<Zeroizing<String>>,
    /// The largest request body, in bytes; larger ones get 413.
    pub body_limit: usize,
    /// How long a request may take; slower ones get 408.
    pub request_timeout: Duration,
    /// Other origins allowed to post JSON.
    pub allowed_origins: Vec<String>,
    /// Posts to the login endpoints, and to the verification endpoints, that one client may
    /// make at once and then per minute; 0 for no limit.
    pub rate_limit_per_minute: u32,
    /// Whether the rate limit's budgets are kept in the database, shared by every server on
    /// it, rather than in this server's memory; `None` for the default: shared on PostgreSQL
    /// (many servers on one database), not on SQLite. See [`ServerConfig::rate_limit_is_shared`].
    pub rate_limit_shared: Option<bool>,
    /// Whether the rate limit's client is the last `X-Forwarded-For` address rather than the
    /// peer (behind one trusted reverse proxy).
    pub trust_forwarded_for: bool,
    /// How recent a verification must be for a change to the second factor or the password.
    pub step_up_window: Duration,
    /// How long a verification lasts.
    pub verification_max_age: Duration,
    /// How long a verified session may stay idle; `None` for as long as it lasts.
    pub verification_idle: Option<Duration>,
    /// The back-off per username after wrong passwords.
    pub password_backoff: PasswordBackoff,
    /// How often expired sessions are deleted (not a setting: 60 seconds).
    pub session_cleanup_interval: Duration,
    /// The framework's settings.
    pub settings: Settings,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let database = match self.database_url.parse::<DatabaseUrl>() {
            Ok(DatabaseUrl::Sqlite(path)) => format!("sqlite://{}", path.display()),
            _ => "postgres://[redacted]".to_owned(),
        };
        f.debug_struct("ServerConfig")
            .field("addr", &self.addr)
            .field("database_url", &database)
            .field("signup_enabled", &self.signup_enabled)
            .field("secure_cookies", &self.secure_cookies)
            .field("admin_hide_sensitive_data", &self.admin_hide_sensitive_data)
            .field("site_name", &self.site_name)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "[redacted]"),
            )
            .field("key_file", &self.key_file)
            .field("smtp_url", &self.smtp_url.as_ref().map(|_| "[redacted]"))
            .field("body_limit", &self.body_limit)
            .field("request_timeout", &self.request_timeout)
            .field("allowed_origins", &self.allowed_origins)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("rate_limit_shared", &self.rate_limit_shared)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("step_up_window", &self.step_up_window)
            .field("verification_max_age", &self.verification_max_age)
            .field("verification_idle", &self.verification_idle)
            .field("password_backoff", &self.password_backoff)
            .field("session_cleanup_interval", &self.session_cleanup_interval)
            .field("settings", &self.settings)
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: DEFAULT_ADDR.parse().expect("the default address parses"),
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            signup_enabled: true,
            secure_cookies: false,
            admin_hide_sensitive_data: true,
            site_name: "otp".to_owned(),
            secret_key: None,
            key_file: None,
            smtp_url: None,
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            allowed_origins: Vec::new(),
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            rate_limit_shared: None,
            trust_forwarded_for: false,
            step_up_window: DEFAULT_STEP_UP,
            verification_max_age: DEFAULT_VERIFICATION_MAX_AGE,
            verification_idle: Some(DEFAULT_VERIFICATION_IDLE),
            password_backoff: PasswordBackoff::default(),
            session_cleanup_interval: Duration::from_secs(60),
            settings: Settings::default(),
        }
    }
}

/// Where a value came from, to name the setting in errors.
#[derive(Clone, Copy)]
enum Source {
    Env,
    File,
}

/// One of the server's settings: its environment name and its key in `[server]`.
struct Key {
    env: &'static str,
    toml: &'static str,
}

impl Key {
    fn name(&self, source: Source) -> String {
        match source {
            Source::Env => self.env.to_owned(),
            Source::File => format!("server.{}", self.toml),
        }
    }
}

const ADDR: Key = Key {
    env: "OTP_ADDR",
    toml: "addr",
};
const DATABASE_URL: Key = Key {
    env: "OTP_DATABASE_URL",
    toml: "database_url",
};
const SIGNUP: Key = Key {
    env: "OTP_SIGNUP",
    toml: "signup",
};
const SECURE_COOKIES: Key = Key {
    env: "OTP_SECURE_COOKIES",
    toml: "secure_cookies",
};
const HIDE_SENSITIVE: Key = Key {
    env: "OTP_ADMIN_HIDE_SENSITIVE_DATA",
    toml: "admin_hide_sensitive_data",
};
const SITE_NAME: Key = Key {
    env: "OTP_SITE_NAME",
    toml: "site_name",
};
const KEY_FILE: Key = Key {
    env: "OTP_KEY_FILE",
    toml: "key_file",
};
const SMTP_URL: Key = Key {
    env: "OTP_SMTP_URL",
    toml: "smtp_url",
};
const BODY_LIMIT: Key = Key {
    env: "OTP_BODY_LIMIT",
    toml: "body_limit",
};
const REQUEST_TIMEOUT: Key = Key {
    env: "OTP_REQUEST_TIMEOUT",
    toml: "request_timeout",
};
const ALLOWED_ORIGINS: Key = Key {
    env: "OTP_ALLOWED_ORIGINS",
    toml: "allowed_origins",
};
const RATE_LIMIT: Key = Key {
    env: "OTP_RATE_LIMIT_PER_MINUTE",
    toml: "rate_limit_per_minute",
};
const RATE_LIMIT_SHARED: Key = Key {
    env: "OTP_RATE_LIMIT_SHARED",
    toml: "rate_limit_shared",
};
const TRUST_FORWARDED_FOR: Key = Key {
    env: "OTP_TRUST_FORWARDED_FOR",
    toml: "trust_forwarded_for",
};
const STEP_UP: Key = Key {
    env: "OTP_STEP_UP_SECONDS",
    toml: "step_up_seconds",
};
const VERIFICATION_MAX_AGE: Key = Key {
    env: "OTP_VERIFICATION_MAX_AGE_SECONDS",
    toml: "verification_max_age_seconds",
};
const VERIFICATION_IDLE: Key = Key {
    env: "OTP_VERIFICATION_IDLE_SECONDS",
    toml: "verification_idle_seconds",
};
const PASSWORD_FREE_FAILURES: Key = Key {
    env: "OTP_PASSWORD_FREE_FAILURES",
    toml: "password_free_failures",
};
const PASSWORD_BACKOFF: Key = Key {
    env: "OTP_PASSWORD_BACKOFF",
    toml: "password_backoff",
};
const PASSWORD_BACKOFF_MAX: Key = Key {
    env: "OTP_PASSWORD_BACKOFF_MAX",
    toml: "password_backoff_max",
};
/// Every key of `[server]`, for the unknown-key check.
const KEYS: &[&Key] = &[
    &ADDR,
    &DATABASE_URL,
    &SIGNUP,
    &SECURE_COOKIES,
    &HIDE_SENSITIVE,
    &SITE_NAME,
    &KEY_FILE,
    &SMTP_URL,
    &BODY_LIMIT,
    &REQUEST_TIMEOUT,
    &ALLOWED_ORIGINS,
    &RATE_LIMIT,
    &RATE_LIMIT_SHARED,
    &TRUST_FORWARDED_FOR,
    &STEP_UP,
    &VERIFICATION_MAX_AGE,
    &VERIFICATION_IDLE,
    &PASSWORD_FREE_FAILURES,
    &PASSWORD_BACKOFF,
    &PASSWORD_BACKOFF_MAX,
];

fn invalid(name: impl Into<String>, problem: impl Into<String>) -> Error {
    Error::Config {
        name: name.into(),
        problem: problem.into(),
    }
}

/// A raw value: an environment string or a TOML value.
enum Raw<'a> {
    Env(&'a str),
    Toml(&'a toml::Value),
}

impl Raw<'_> {
    fn describe(&self) -> String {
        match self {
            Raw::Env(text) => format!("{text:?}"),
            Raw::Toml(value) => value.to_string(),
        }
    }

    fn text(&self, name: &str) -> Result<String, Error> {
        match self {
            Raw::Env(text) => Ok((*text).to_owned()),
            Raw::Toml(toml::Value::String(text)) => Ok(text.clone()),
            Raw::Toml(other) => Err(invalid(
                name,
                format!("expected a string, got {}", other.type_str()),
            )),
        }
    }

    fn boolean(&self, name: &str) -> Result<bool, Error> {
        match self {
            Raw::Env(text) => match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(invalid(
                    name,
                    format!(
                        "expected true, false, 1, 0, yes or no, got {}",
                        self.describe()
                    ),
                )),
            },
            Raw::Toml(toml::Value::Boolean(value)) => Ok(*value),
            Raw::Toml(other) => Err(invalid(
                name,
                format!("expected a boolean, got {}", other.type_str()),
            )),
        }
    }

    fn integer(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u64>,
        what: &str,
    ) -> Result<u64, Error> {
        let value = match self {
            Raw::Env(text) => text.trim().parse::<u64>().ok(),
            Raw::Toml(toml::Value::Integer(value)) => u64::try_from(*value).ok(),
            Raw::Toml(_) => None,
        };
        match value {
            Some(value) if range.contains(&value) => Ok(value),
            _ => Err(invalid(
                name,
                format!(
                    "expected {what} from {} to {}, got {}",
                    range.start(),
                    range.end(),
                    self.describe()
                ),
            )),
        }
    }
}

/// The server's part of one source, each setting `None` when the source leaves it alone.
#[derive(Default)]
struct Layer {
    addr: Option<SocketAddr>,
    database_url: Option<String>,
    signup: Option<bool>,
    secure_cookies: Option<bool>,
    hide_sensitive: Option<bool>,
    site_name: Option<String>,
    key_file: Option<PathBuf>,
    smtp_url: Option<Zeroizing<String>>,
    body_limit: Option<usize>,
    request_timeout: Option<Duration>,
    allowed_origins: Option<Vec<String>>,
    rate_limit_per_minute: Option<u32>,
    rate_limit_shared: Option<bool>,
    trust_forwarded_for: Option<bool>,
    step_up: Option<Duration>,
    verification_max_age: Option<Duration>,
    /// `Some(None)`: never.
    verification_idle: Option<Option<Duration>>,
    password_free_failures: Option<u32>,
    password_backoff: Option<Duration>,
    password_backoff_max: Option<Duration>,
}

impl Layer {
    /// Reads one value into the layer.
    fn set(&mut self, key: &Key, source: Source, raw: Raw<'_>) -> Result<(), Error> {
        let name = key.name(source);
        let name = name.as_str();
        match key.toml {
            "addr" => {
                let text = raw.text(name)?;
                let addr = text.trim().parse::<SocketAddr>().map_err(|_| {
                    invalid(
                        name,
                        format!("expected IP:PORT such as 127.0.0.1:8000, got {text:?}"),
                    )
                })?;
                self.addr = Some(addr);
            }
            "database_url" => {
                // Never quoted: a PostgreSQL URL may hold a password.
                let text = raw.text(name)?;
                text.parse::<DatabaseUrl>()
                    .map_err(|err| invalid(name, err.to_string()))?;
                self.database_url = Some(text);
            }
            "signup" => self.signup = Some(raw.boolean(name)?),
            "secure_cookies" => self.secure_cookies = Some(raw.boolean(name)?),
            "admin_hide_sensitive_data" => self.hide_sensitive = Some(raw.boolean(name)?),
            "site_name" => {
                let text = raw.text(name)?;
                let len = text.chars().count();
                if !(1..=100).contains(&len)
                    || text.chars().any(char::is_control)
                    || text.trim() != text
                {
                    return Err(invalid(
                        name,
                        format!(
                            "expected 1 to 100 characters without control characters or white \
                             space at either end, got {text:?}"
                        ),
                    ));
                }
                self.site_name = Some(text);
            }
            "key_file" => {
                let text = raw.text(name)?;
                if text.is_empty() {
                    return Err(invalid(name, "expected a file name, got an empty string"));
                }
                self.key_file = Some(PathBuf::from(text));
            }
            "smtp_url" => {
                // Never quoted: the URL may hold a password.
                let text = Zeroizing::new(raw.text(name)?);
                SmtpMailer::from_url(&text).map_err(|err| invalid(name, err.to_string()))?;
                self.smtp_url = Some(text);
            }
            "body_limit" => {
                let bytes = raw.integer(name, 1024..=16 * 1024 * 1024, "a number of bytes")?;
                self.body_limit = Some(usize::try_from(bytes).unwrap_or(usize::MAX));
            }
            "request_timeout" => {
                let secs = raw.integer(name, 1..=3600, "whole seconds")?;
                self.request_timeout = Some(Duration::from_secs(secs));
            }
            "allowed_origins" => {
                let origins: Vec<String> = match raw {
                    Raw::Env(text) => text
                        .split(',')
                        .map(str::trim)
                        .filter(|origin| !origin.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    Raw::Toml(toml::Value::Array(items)) => items
                        .iter()
                        .map(|item| match item {
                            toml::Value::String(text) => Ok(text.clone()),
                            other => Err(invalid(
                                name,
                                format!("expected an array of strings, found {}", other.type_str()),
                            )),
                        })
                        .collect::<Result<_, _>>()?,
                    Raw::Toml(other) => {
                        return Err(invalid(
                            name,
                            format!("expected an array of strings, got {}", other.type_str()),
                        ));
                    }
                };
                for origin in &origins {
                    check_origin(name, origin)?;
                }
                self.allowed_origins = Some(origins);
            }
            "rate_limit_per_minute" => {
                let count = raw.integer(name, 0..=100_000, "a number of requests")?;
                self.rate_limit_per_minute = Some(u32::try_from(count).unwrap_or(u32::MAX));
            }
            "rate_limit_shared" => self.rate_limit_shared = Some(raw.boolean(name)?),
            "trust_forwarded_for" => self.trust_forwarded_for = Some(raw.boolean(name)?),
            "step_up_seconds" => {
                let secs = raw.integer(name, 30..=86_400, "whole seconds")?;
                self.step_up = Some(Duration::from_secs(secs));
            }
            "verification_max_age_seconds" => {
                let secs = raw.integer(name, 60..=2_592_000, "whole seconds")?;
                self.verification_max_age = Some(Duration::from_secs(secs));
            }
            "verification_idle_seconds" => {
                let secs = raw.integer(name, 0..=2_592_000, "whole seconds (0: never)")?;
                self.verification_idle = Some((secs > 0).then(|| Duration::from_secs(secs)));
            }
            "password_free_failures" => {
                let count = raw.integer(name, 0..=1000, "a number of failures")?;
                self.password_free_failures = Some(u32::try_from(count).unwrap_or(u32::MAX));
            }
            "password_backoff" => {
                let secs = raw.integer(name, 0..=3600, "whole seconds")?;
                self.password_backoff = Some(Duration::from_secs(secs));
            }
            "password_backoff_max" => {
                let secs = raw.integer(name, 1..=86400, "whole seconds")?;
                self.password_backoff_max = Some(Duration::from_secs(secs));
            }
            other => unreachable!("no setting {other}"),
        }
        Ok(())
    }

    /// `self` where it has a value, else `lower`.
    fn over(self, lower: Self) -> Self {
        Self {
            addr: self.addr.or(lower.addr),
            database_url: self.database_url.or(lower.database_url),
            signup: self.signup.or(lower.signup),
            secure_cookies: self.secure_cookies.or(lower.secure_cookies),
            hide_sensitive: self.hide_sensitive.or(lower.hide_sensitive),
            site_name: self.site_name.or(lower.site_name),
            key_file: self.key_file.or(lower.key_file),
            smtp_url: self.smtp_url.or(lower.smtp_url),
            body_limit: self.body_limit.or(lower.body_limit),
            request_timeout: self.request_timeout.or(lower.request_timeout),
            allowed_origins: self.allowed_origins.or(lower.allowed_origins),
            rate_limit_per_minute: self.rate_limit_per_minute.or(lower.rate_limit_per_minute),
            rate_limit_shared: self.rate_limit_shared.or(lower.rate_limit_shared),
            trust_forwarded_for: self.trust_forwarded_for.or(lower.trust_forwarded_for),
            step_up: self.step_up.or(lower.step_up),
            verification_max_age: self.verification_max_age.or(lower.verification_max_age),
            verification_idle: self.verification_idle.or(lower.verification_idle),
            password_free_failures: self.password_free_failures.or(lower.password_free_failures),
            password_backoff: self.password_backoff.or(lower.password_backoff),
            password_backoff_max: self.password_backoff_max.or(lower.password_backoff_max),
        }
    }
}

/// `scheme://host[:port]`, nothing more.
fn check_origin(name: &str, origin: &str) -> Result<(), Error> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(['/', '?', '#', '@', ' ']) => Ok(()),
        _ => Err(invalid(
            name,
            format!("expected origins written scheme://host[:port], got {origin:?}"),
        )),
    }
}

/// The line of a byte offset in `text`, from 1.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

impl ServerConfig {
    /// The configuration from the file `file` (else the file named by `OTP_CONFIG`, else none)
    /// with the process environment on top: what `otp serve` calls.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the file if it cannot be read or is not TOML, or naming the
    /// first setting that is unknown or unusable (including `OTP_*` variables that are not
    /// valid UTF-8).
    pub fn load(file: Option<&Path>) -> Result<Self, Error> {
        let mut env = Vec::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str().map(str::to_owned) else {
                continue;
            };
            if !name.starts_with("OTP_") {
                continue;
            }
            match value.into_string() {
                Ok(value) => env.push((name, value)),
                Err(_) => return Err(invalid(name, "not valid UTF-8")),
            }
        }
        let from_env = env
            .iter()
            .rev()
            .find(|(name, value)| name == "OTP_CONFIG" && !value.is_empty())
            .map(|(_, value)| PathBuf::from(value));
        let file = file.map(Path::to_path_buf).or(from_env);
        let text = match &file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|err| {
                invalid(
                    format!("file {}", path.display()),
                    format!("cannot read: {err}"),
                )
            })?),
            None => None,
        };
        let document = text
            .as_deref()
            .zip(file.as_ref().map(|path| format!("file {}", path.display())));
        Self::from_named_sources(document, env)
    }

    /// The configuration from an optional TOML document and environment pairs, the
    /// environment taking precedence over the document and the document over the defaults,
    /// setting by setting; pairs that name no setting are ignored, and of two pairs with one
    /// name the later wins. This is what [`ServerConfig::load`] calls; tests pass pairs instead
    /// of changing the process environment.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming `TOML document` if the text is not TOML, or the first setting
    /// that is unknown or unusable.
    pub fn from_sources(
        toml: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, Error> {
        Self::from_named_sources(
            toml.map(|text| (text, "TOML document".to_owned())),
            env.into_iter().collect(),
        )
    }

    fn from_named_sources(
        document: Option<(&str, String)>,
        env: Vec<(String, String)>,
    ) -> Result<Self, Error> {
        let mut file_layer = Layer::default();
        let mut framework_toml = None;
        if let Some((text, document_name)) = document {
            let mut table: toml::Table = toml::from_str(text).map_err(|err| {
                // Only the line: the document is not quoted, in case a secret is misplaced in it.
                let line = err.span().map_or(1, |span| line_of(text, span.start));
                invalid(
                    document_name.clone(),
                    format!("not valid TOML at line {line}: {}", err.message().trim()),
                )
            })?;
            if let Some(server) = table.remove("server") {
                let toml::Value::Table(server) = server else {
                    return Err(invalid("server", "expected a table ([server])"));
                };
                for (key, value) in &server {
                    let Some(spec) = KEYS.iter().find(|spec| spec.toml == key) else {
                        let known: Vec<&str> = KEYS.iter().map(|spec| spec.toml).collect();
                        return Err(invalid(
                            format!("server.{key}"),
                            format!(
                                "unknown setting; the [server] table takes {}",
                                known.join(", ")
                            ),
                        ));
                    };
                    file_layer.set(spec, Source::File, Raw::Toml(value))?;
                }
            }
            framework_toml = Some(table.to_string());
        }
        let mut env_layer = Layer::default();
        let mut secret_key = None;
        for (name, value) in &env {
            if value.is_empty() {
                continue;
            }
            if name == "OTP_SECRET_KEY" {
                secret_key = Some(Zeroizing::new(value.clone()));
                continue;
            }
            if let Some(spec) = KEYS.iter().find(|spec| spec.env == name) {
                env_layer.set(spec, Source::Env, Raw::Env(value))?;
            }
        }
        let settings = Settings::from_sources(
            framework_toml.as_deref(),
            env.into_iter().filter(|(_, value)| !value.is_empty()),
        )
        .map_err(|err| match err {
            otp_core::Error::InvalidSetting { name, problem } => Error::Config { name, problem },
            other => Error::Core(other),
        })?;
        let layer = env_layer.over(file_layer);
        let defaults = Self::default();
        Ok(Self {
            addr: layer.addr.unwrap_or(defaults.addr),
            database_url: layer.database_url.unwrap_or(defaults.database_url),
            signup_enabled: layer.signup.unwrap_or(defaults.signup_enabled),
            secure_cookies: layer.secure_cookies.unwrap_or(defaults.secure_cookies),
            admin_hide_sensitive_data: layer
                .hide_sensitive
                .unwrap_or(defaults.admin_hide_sensitive_data),
            site_name: layer.site_name.unwrap_or(defaults.site_name),
            secret_key,
            key_file: layer.key_file,
            smtp_url: layer.smtp_url,
            body_limit: layer.body_limit.unwrap_or(defaults.body_limit),
            request_timeout: layer.request_timeout.unwrap_or(defaults.request_timeout),
            allowed_origins: layer.allowed_origins.unwrap_or_default(),
            rate_limit_per_minute: layer
                .rate_limit_per_minute
                .unwrap_or(defaults.rate_limit_per_minute),
            rate_limit_shared: layer.rate_limit_shared,
            trust_forwarded_for: layer
                .trust_forwarded_for
                .unwrap_or(defaults.trust_forwarded_for),
            step_up_window: layer.step_up.unwrap_or(defaults.step_up_window),
            verification_max_age: layer
                .verification_max_age
                .unwrap_or(defaults.verification_max_age),
            verification_idle: layer
                .verification_idle
                .unwrap_or(defaults.verification_idle),
            password_backoff: PasswordBackoff {
                free_failures: layer
                    .password_free_failures
                    .unwrap_or(defaults.password_backoff.free_failures),
                delay: layer
                    .password_backoff
                    .unwrap_or(defaults.password_backoff.delay),
                max_delay: layer
                    .password_backoff_max
                    .unwrap_or(defaults.password_backoff.max_delay),
            },
            session_cleanup_interval: defaults.session_cleanup_interval,
            settings,
        })
    }

    /// Whether the rate limit's budgets are kept in the database: the setting if given, else
    /// whether the database is PostgreSQL (where many servers share one database; on SQLite
    /// one server usually has the file to itself, and its memory is faster).
    pub fn rate_limit_is_shared(&self) -> bool {
        self.rate_limit_shared.unwrap_or_else(|| {
            matches!(
                self.database_url.parse::<DatabaseUrl>(),
                Ok(DatabaseUrl::Postgres(_))
            )
        })
    }

    /// The parsed database URL.
    ///
    /// # Errors
    ///
    /// [`Error::Core`] with `InvalidDatabaseUrl`.
    pub fn database(&self) -> Result<DatabaseUrl, Error> {
        Ok(self.database_url.parse::<DatabaseUrl>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn error(toml: Option<&str>, pairs: &[(&str, &str)]) -> String {
        ServerConfig::from_sources(toml, env(pairs))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults() {
        let config = ServerConfig::from_sources(None, []).unwrap();
        assert_eq!(config.addr.to_string(), "127.0.0.1:8000");
        assert_eq!(config.database_url, "sqlite://otp.db");
        assert!(config.signup_enabled);
        assert!(!config.secure_cookies);
        assert!(config.admin_hide_sensitive_data, "hidden by default");
        assert_eq!(config.body_limit, 65536);
        assert_eq!(config.request_timeout, Duration::from_secs(30));
        assert_eq!(config.rate_limit_per_minute, 60);
        assert!(!config.trust_forwarded_for);
        assert_eq!(config.step_up_window, Duration::from_secs(300));
        assert_eq!(config.verification_max_age, Duration::from_secs(12 * 3600));
        assert_eq!(config.verification_idle, Some(Duration::from_secs(30 * 60)));
        assert_eq!(config.password_backoff, PasswordBackoff::default());
        assert_eq!(config.password_backoff.free_failures, 5);
        assert_eq!(config.password_backoff.delay, Duration::from_secs(1));
        assert_eq!(config.password_backoff.max_delay, Duration::from_secs(300));
        assert!(config.secret_key.is_none() && config.smtp_url.is_none());
        // The rate limit's budgets: shared through PostgreSQL, in memory with SQLite.
        assert_eq!(config.rate_limit_shared, None);
        assert!(!config.rate_limit_is_shared());
        let postgres = ServerConfig::from_sources(
            None,
            env(&[("OTP_DATABASE_URL", "postgres://postgres@127.0.0.1/otp")]),
        )
        .unwrap();
        assert!(postgres.rate_limit_is_shared());
    }

    #[test]
    fn verification_lifetimes() {
        let file = "[server]\nstep_up_seconds = 60\nverification_idle_seconds = 120";
        let config = ServerConfig::from_sources(
            Some(file),
            env(&[
                ("OTP_VERIFICATION_MAX_AGE_SECONDS", "3600"),
                ("OTP_VERIFICATION_IDLE_SECONDS", "0"),
            ]),
        )
        .unwrap();
        assert_eq!(config.step_up_window, Duration::from_secs(60));
        assert_eq!(config.verification_max_age, Duration::from_secs(3600));
        assert_eq!(config.verification_idle, None, "0: never idle");
        assert_eq!(
            error(None, &[("OTP_STEP_UP_SECONDS", "5")]),
            r#"invalid setting OTP_STEP_UP_SECONDS: expected whole seconds from 30 to 86400, got "5""#
        );
    }

    #[test]
    fn environment_overrides_file_setting_by_setting() {
        let file = r#"
            [server]
            addr = "0.0.0.0:9000"
            database_url = "sqlite://file.db"
            secure_cookies = true
            site_name = "From file"
            body_limit = 2048
            request_timeout = 5
            allowed_origins = ["https://app.example"]
            key_file = "keys.txt"
            smtp_url = "smtp://127.0.0.1:2525"
            rate_limit_per_minute = 5
            rate_limit_shared = true
            trust_forwarded_for = true
            password_free_failures = 2
            password_backoff = 7

            [email]
            token_validity = 600
        "#;
        let config = ServerConfig::from_sources(
            Some(file),
            env(&[
                ("OTP_ADDR", "127.0.0.1:0"),
                ("OTP_SITE_NAME", ""), // empty: unset
                ("OTP_ADMIN_HIDE_SENSITIVE_DATA", "NO"),
                ("OTP_SIGNUP", "0"),
                ("OTP_SECRET_KEY", "1:00"),
                ("OTP_EMAIL_TOKEN_VALIDITY", "120"),
                ("OTP_RATE_LIMIT_PER_MINUTE", "0"),
                ("OTP_RATE_LIMIT_SHARED", "no"),
                ("OTP_PASSWORD_BACKOFF", "0"),
                ("OTP_PASSWORD_BACKOFF_MAX", "60"),
            ]),
        )
        .unwrap();
        assert_eq!(config.addr.to_string(), "127.0.0.1:0");
        assert_eq!(config.database_url, "sqlite://file.db");
        assert!(config.secure_cookies && !config.admin_hide_sensitive_data);
        assert!(!config.signup_enabled);
        assert_eq!(config.site_name, "From file");
        assert_eq!(config.body_limit, 2048);
        assert_eq!(config.request_timeout, Duration::from_secs(5));
        assert_eq!(config.allowed_origins, ["https://app.example"]);
        assert_eq!(config.rate_limit_per_minute, 0, "0 turns the limit off");
        assert!(config.trust_forwarded_for);
        assert_eq!(
            config.password_backoff,
            PasswordBackoff {
                free_failures: 2,
                delay: Duration::ZERO,
                max_delay: Duration::from_secs(60),
            }
        );
        assert_eq!(config.rate_limit_shared, Some(false));
        assert!(!config.rate_limit_is_shared());
        assert_eq!(config.key_file, Some(PathBuf::from("keys.txt")));
        assert_eq!(
            config.secret_key.as_deref().map(String::as_str),
            Some("1:00")
        );
        assert!(config.smtp_url.is_some());
        assert_eq!(
            config.settings.email.token_validity,
            Duration::from_secs(120)
        );
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("1:00") && !debug.contains("2525"),
            "{debug}"
        );
    }

    #[test]
    fn errors_name_the_setting() {
        for (toml, pairs, expected) in [
            (
                Some("[server]\nsinup = false"),
                &[][..],
                "invalid setting server.sinup: unknown setting; the [server] table takes addr, \
                 database_url, signup, secure_cookies, admin_hide_sensitive_data, site_name, \
                 key_file, smtp_url, body_limit, request_timeout, allowed_origins, \
                 rate_limit_per_minute, rate_limit_shared, trust_forwarded_for, step_up_seconds, \
                 verification_max_age_seconds, verification_idle_seconds, \
                 password_free_failures, password_backoff, password_backoff_max",
            ),
            (
                Some("[server]\nsignup = \"no\""),
                &[],
                "invalid setting server.signup: expected a boolean, got string",
            ),
            (
                None,
                &[("OTP_SIGNUP", "maybe")],
                r#"invalid setting OTP_SIGNUP: expected true, false, 1, 0, yes or no, got "maybe""#,
            ),
            (
                None,
                &[("OTP_ADDR", "localhost")],
                r#"invalid setting OTP_ADDR: expected IP:PORT such as 127.0.0.1:8000, got "localhost""#,
            ),
            (
                Some("[server]\nbody_limit = 10"),
                &[],
                "invalid setting server.body_limit: expected a number of bytes from 1024 to \
                 16777216, got 10",
            ),
            (
                None,
                &[("OTP_REQUEST_TIMEOUT", "0")],
                r#"invalid setting OTP_REQUEST_TIMEOUT: expected whole seconds from 1 to 3600, got "0""#,
            ),
            (
                None,
                &[("OTP_RATE_LIMIT_PER_MINUTE", "-1")],
                r#"invalid setting OTP_RATE_LIMIT_PER_MINUTE: expected a number of requests from 0 to 100000, got "-1""#,
            ),
            (
                None,
                &[("OTP_PASSWORD_BACKOFF_MAX", "0")],
                r#"invalid setting OTP_PASSWORD_BACKOFF_MAX: expected whole seconds from 1 to 86400, got "0""#,
            ),
            (
                Some("[server]\ntrust_forwarded_for = 1"),
                &[],
                "invalid setting server.trust_forwarded_for: expected a boolean, got integer",
            ),
            (
                Some("server = 1"),
                &[],
                "invalid setting server: expected a table ([server])",
            ),
            (
                None,
                &[("OTP_ALLOWED_ORIGINS", "https://a.example, evil")],
                r#"invalid setting OTP_ALLOWED_ORIGINS: expected origins written scheme://host[:port], got "evil""#,
            ),
        ] {
            assert_eq!(error(toml, pairs), expected, "{toml:?} {pairs:?}");
        }
        let err = error(Some("[totp]\nisuer = \"x\""), &[]);
        assert!(
            err.starts_with("invalid setting totp.isuer: unknown setting"),
            "the framework's settings are checked too: {err}"
        );
        let err = error(Some("[server]\naddr = \n"), &[]);
        assert!(
            err.starts_with("invalid setting TOML document: not valid TOML at line 2"),
            "{err}"
        );
    }

    #[test]
    fn secrets_are_not_quoted_in_errors() {
        let err = error(None, &[("OTP_SMTP_URL", "smtp://user:hunter2@host:99999")]);
        assert!(err.starts_with("invalid setting OTP_SMTP_URL: "), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = error(
            None,
            &[("OTP_DATABASE_URL", "mysql://user:hunter2@host/db")],
        );
        assert!(
            err.starts_with("invalid setting OTP_DATABASE_URL: "),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }
}
