//! Loading [`Settings`] from environment variables and TOML.
//!
//! # Precedence
//!
//! Each setting takes the first value found in: the environment, the TOML document, the
//! default. A template and its `_PATH` twin count as one setting, so an environment
//! `OTP_EMAIL_BODY_TEMPLATE_PATH` replaces a TOML `body_template`.
//!
//! # Names
//!
//! The environment uses django-otp's names (`OTP_TOTP_ISSUER`); only those names are read, so
//! the application's own `OTP_*` variables (`OTP_DATABASE_URL`, `OTP_SECRET_KEY`, ...) are left
//! alone. TOML uses one table per group, keys named after the setting without the `OTP_` and
//! group prefixes, in lower case (`[totp] issuer`), and `failure_budget`,
//! `max_throttle_delay`, `challenges_per_hour` and `email_per_address_per_hour` at the top level. The flat upper-case names are not accepted in TOML,
//! so each setting has one spelling there; any key the layout does not define is an error.
//!
//! Errors name a setting as its source spells it: `OTP_TOTP_TOLERANCE` for the environment,
//! `totp.tolerance` for TOML.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{PerDevice, Settings};
use crate::{Error, FailureBudget};

/// The longest duration any setting accepts: one year, in seconds. Durations end up as
/// milliseconds in 64-bit timestamps; this keeps them far from overflowing and catches typos.
const MAX_SECONDS: u64 = 31_536_000;

/// The placeholders the email kind replaces with the code.
const PLACEHOLDERS: [&str; 2] = ["{token}", "{{ token }}"];

/// The name `Error::InvalidSetting` carries for a TOML document that does not parse.
const TOML_DOCUMENT: &str = "TOML document";

impl Settings {
    /// Settings from the process environment: each variable named in the table on
    /// [`Settings`] overrides its default; other variables, `OTP_*` or not, are ignored.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSetting`] naming the first variable whose value is unusable, including
    /// one that is not valid UTF-8, or a template file that cannot be read.
    pub fn from_env() -> Result<Self, Error> {
        Self::load_with_env(None, std::env::vars_os())
    }

    /// Settings from a TOML document alone (the environment is not read).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSetting`] naming `TOML document` if the text is not TOML, or the key
    /// (`email.token_validity`) that is unknown or has an unusable value.
    pub fn from_toml_str(toml: &str) -> Result<Self, Error> {
        Self::from_sources(Some(toml), std::iter::empty())
    }

    /// Settings from a TOML file alone (the environment is not read).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSetting`] naming the file if it cannot be read or is not TOML, or as
    /// [`Settings::from_toml_str`].
    pub fn from_toml_file(path: &Path) -> Result<Self, Error> {
        Self::load_with_env(Some(path), [])
    }

    /// Settings from an optional TOML file with the process environment on top: what a
    /// server calls at start-up.
    ///
    /// # Errors
    ///
    /// As [`Settings::from_toml_file`] and [`Settings::from_env`].
    pub fn load(toml_file: Option<&Path>) -> Result<Self, Error> {
        Self::load_with_env(toml_file, std::env::vars_os())
    }

    /// Settings from an optional TOML document and environment pairs, the environment taking
    /// precedence over the document and the document over the defaults, setting by setting.
    /// Pairs whose name is not a setting are ignored; of two pairs with one name, the later
    /// wins. Both sources are checked in full, so a bad value in the document is an error even
    /// where the environment overrides it. Template files are read last, so only the file that
    /// is used must exist. This is what the other constructors call; tests pass pairs instead
    /// of changing the process environment.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSetting`] naming the setting as its source spells it
    /// (`OTP_EMAIL_TOKEN_VALIDITY` or `email.token_validity`), or `TOML document` if the text
    /// is not TOML.
    pub fn from_sources(
        toml: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, Error> {
        let env = env_pairs(env.into_iter().map(|(k, v)| (k.into(), v.into())));
        Self::from_sources_named(toml.map(|text| (text, TOML_DOCUMENT.to_owned())), env)
    }

    fn load_with_env(
        toml_file: Option<&Path>,
        env: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Self, Error> {
        let text = toml_file.map(read_settings_file).transpose()?;
        let toml = text.as_deref().zip(toml_file.map(file_name));
        Self::from_sources_named(toml, env_pairs(env))
    }

    fn from_sources_named(
        toml: Option<(&str, String)>,
        env: BTreeMap<usize, OsString>,
    ) -> Result<Self, Error> {
        let file_layer = match toml {
            Some((text, name)) => toml_layer(text, &name)?,
            None => Layer::default(),
        };
        let env_layer = env_layer(env)?;
        env_layer.over(file_layer).into_settings()
    }
}

fn file_name(path: &Path) -> String {
    format!("file {}", path.display())
}

fn read_settings_file(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map_err(|err| invalid(file_name(path), format!("cannot read: {err}")))
}

fn invalid(name: impl Into<String>, problem: impl Into<String>) -> Error {
    Error::InvalidSetting {
        name: name.into(),
        problem: problem.into(),
    }
}

/// The environment pairs that name settings, by index in [`SPECS`], the last pair winning.
fn env_pairs(env: impl IntoIterator<Item = (OsString, OsString)>) -> BTreeMap<usize, OsString> {
    env.into_iter()
        .filter_map(|(name, value)| {
            let index = SPECS.iter().position(|spec| name == spec.env)?;
            Some((index, value))
        })
        .collect()
}

fn env_layer(env: BTreeMap<usize, OsString>) -> Result<Layer, Error> {
    let mut layer = Layer::default();
    for (index, value) in env {
        let spec = &SPECS[index];
        let value = value
            .into_string()
            .map_err(|_| invalid(spec.env, "is not valid UTF-8"))?;
        (spec.apply)(&mut layer, Raw::Env(&value), spec.env)
            .map_err(|problem| invalid(spec.env, problem))?;
    }
    layer.pair_templates(Source::Env)?;
    Ok(layer)
}

fn toml_layer(text: &str, document: &str) -> Result<Layer, Error> {
    let table: toml::Table = text
        .parse()
        .map_err(|err: toml::de::Error| invalid(document, syntax_problem(text, &err)))?;
    let mut layer = Layer::default();
    for (key, value) in &table {
        if GROUPS.contains(&key.as_str()) {
            let toml::Value::Table(group) = value else {
                return Err(invalid(
                    key,
                    format!("expected a table, got {}", Raw::Toml(value).got()),
                ));
            };
            for (inner, value) in group {
                apply_toml(&mut layer, Some(key), inner, value)?;
            }
        } else {
            apply_toml(&mut layer, None, key, value)?;
        }
    }
    layer.pair_templates(Source::Toml)?;
    Ok(layer)
}

/// A TOML syntax error on one line, without quoting the document (a misplaced secret in the
/// file must not reach the logs).
fn syntax_problem(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim_end().replace('\n', "; ");
    let Some(span) = err.span() else {
        return format!("not valid TOML: {message}");
    };
    let before = &text.as_bytes()[..span.start.min(text.len())];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    format!("not valid TOML at line {line}, column {column}: {message}")
}

fn apply_toml(
    layer: &mut Layer,
    group: Option<&str>,
    key: &str,
    value: &toml::Value,
) -> Result<(), Error> {
    let name = match group {
        Some(group) => format!("{group}.{key}"),
        None => key.to_owned(),
    };
    let Some(spec) = SPECS
        .iter()
        .find(|spec| spec.group == group && spec.key == key)
    else {
        return Err(invalid(&name, unknown_key_problem(group, key)));
    };
    (spec.apply)(layer, Raw::Toml(value), &name).map_err(|problem| invalid(name, problem))
}

fn unknown_key_problem(group: Option<&str>, key: &str) -> String {
    if let Some(spec) = SPECS.iter().find(|spec| spec.env == key) {
        return match spec.group {
            Some(group) => format!(
                "unknown setting; write it as {} in the [{group}] table",
                spec.key
            ),
            None => format!("unknown setting; write it as {} at the top level", spec.key),
        };
    }
    let keys = |group: Option<&str>| {
        SPECS
            .iter()
            .filter(|spec| spec.group == group)
            .map(|spec| spec.key)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match group {
        Some(group) => format!(
            "unknown setting; the [{group}] table takes {}",
            keys(Some(group))
        ),
        None => format!(
            "unknown setting; the top level takes the tables {} and the keys {}",
            GROUPS.join(", "),
            keys(None)
        ),
    }
}

/// Which source a layer came from, to name settings in errors.
#[derive(Clone, Copy)]
enum Source {
    Env,
    Toml,
}

impl Source {
    fn name(self, spec: &Spec) -> String {
        match (self, spec.group) {
            (Self::Env, _) => spec.env.to_owned(),
            (Self::Toml, Some(group)) => format!("{group}.{}", spec.key),
            (Self::Toml, None) => spec.key.to_owned(),
        }
    }
}

/// A value as written: an environment string or a TOML value.
#[derive(Clone, Copy)]
enum Raw<'a> {
    Env(&'a str),
    Toml(&'a toml::Value),
}

impl Raw<'_> {
    /// The value as the operator wrote it, for error messages.
    fn got(self) -> String {
        match self {
            Self::Env(text) => format!("{text:?}"),
            Self::Toml(toml::Value::String(text)) => format!("{text:?}"),
            Self::Toml(toml::Value::Integer(number)) => number.to_string(),
            Self::Toml(toml::Value::Float(number)) => format!("{number:?}"),
            Self::Toml(toml::Value::Boolean(flag)) => flag.to_string(),
            Self::Toml(toml::Value::Datetime(datetime)) => datetime.to_string(),
            Self::Toml(toml::Value::Array(_)) => "an array".to_owned(),
            Self::Toml(toml::Value::Table(_)) => "a table".to_owned(),
        }
    }

    fn text(self) -> Result<String, String> {
        match self {
            Self::Env(text) => Ok(text.to_owned()),
            Self::Toml(toml::Value::String(text)) => Ok(text.clone()),
            Self::Toml(_) => Err(format!("expected a string, got {}", self.got())),
        }
    }

    fn boolean(self) -> Result<bool, String> {
        match self {
            Self::Env(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(format!(
                    "expected true, false, 1, 0, yes or no, got {}",
                    self.got()
                )),
            },
            Self::Toml(toml::Value::Boolean(flag)) => Ok(*flag),
            Self::Toml(_) => Err(format!("expected true or false, got {}", self.got())),
        }
    }

    /// A whole number, wide enough that a too-large value is a range error, not a syntax one.
    fn whole(self, expected: &str) -> Result<i128, String> {
        match self {
            Self::Env(text) => text.trim().parse().ok(),
            Self::Toml(toml::Value::Integer(number)) => Some(i128::from(*number)),
            Self::Toml(_) => None,
        }
        .ok_or_else(|| format!("expected {expected}, got {}", self.got()))
    }

    /// A whole number from `min` to `max`, or at least `min` if `max` is `None`.
    fn count<T: TryFrom<i128>>(self, min: u32, max: Option<u32>) -> Result<T, String> {
        let number = self.whole("a whole number")?;
        let upper = max.map_or(i128::from(u32::MAX), i128::from);
        (i128::from(min)..=upper)
            .contains(&number)
            .then(|| T::try_from(number).ok())
            .flatten()
            .ok_or_else(|| match max {
                Some(max) => format!("must be from {min} to {max}, got {}", self.got()),
                None => format!("must be at least {min}, got {}", self.got()),
            })
    }

    /// Whole seconds from `min` to [`MAX_SECONDS`].
    fn seconds(self, min: u64) -> Result<Duration, String> {
        let number = self.whole("a whole number of seconds")?;
        u64::try_from(number)
            .ok()
            .filter(|secs| (min..=MAX_SECONDS).contains(secs))
            .map(Duration::from_secs)
            .ok_or_else(|| {
                format!(
                    "must be from {min} to {MAX_SECONDS} seconds, got {}",
                    self.got()
                )
            })
    }

    /// Seconds, fractional allowed, from 0 to [`MAX_SECONDS`]: a throttle factor.
    fn factor(self) -> Result<Duration, String> {
        let number = match self {
            Self::Env(text) => text.trim().parse::<f64>().ok(),
            Self::Toml(toml::Value::Float(number)) => Some(*number),
            // i64 to f64 may round, but only far outside the accepted range.
            Self::Toml(toml::Value::Integer(number)) => Some(*number as f64),
            Self::Toml(_) => None,
        }
        .ok_or_else(|| format!("expected a number of seconds, got {}", self.got()))?;
        // Written so that NaN fails.
        let in_range = number >= 0.0 && number <= MAX_SECONDS as f64;
        in_range
            .then(|| Duration::try_from_secs_f64(number).ok())
            .flatten()
            .ok_or_else(|| {
                format!(
                    "must be from 0 to {MAX_SECONDS} seconds, got {}",
                    self.got()
                )
            })
    }
}

/// An issuer for provisioning URIs: the URI format cannot carry a colon or outer white space.
fn issuer(raw: Raw<'_>) -> Result<PerDevice, String> {
    let text = raw.text()?;
    if text.is_empty() {
        Ok(PerDevice::Unset)
    } else if text.contains(':') {
        Err("must not contain a colon".to_owned())
    } else if text.trim() != text {
        Err("must not have white space at either end".to_owned())
    } else if text.chars().any(char::is_control) {
        Err("must not contain control characters".to_owned())
    } else {
        Ok(PerDevice::Fixed(text))
    }
}

fn image(raw: Raw<'_>) -> Result<PerDevice, String> {
    let text = raw.text()?;
    if text.is_empty() {
        Ok(PerDevice::Unset)
    } else if !(text.starts_with("https://") || text.starts_with("http://"))
        || text.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        Err(format!(
            "expected an https:// or http:// URL, got {}",
            raw.got()
        ))
    } else {
        Ok(PerDevice::Fixed(text))
    }
}

fn sender(raw: Raw<'_>) -> Result<String, String> {
    let text = raw.text()?;
    match text.parse::<lettre::message::Mailbox>() {
        Ok(_) => Ok(text),
        Err(err) => Err(format!(
            "expected an email address, got {}: {err}",
            raw.got()
        )),
    }
}

fn subject(raw: Raw<'_>) -> Result<String, String> {
    let text = raw.text()?;
    if text.chars().any(char::is_control) {
        Err("must not contain control characters".to_owned())
    } else {
        Ok(text)
    }
}

fn has_placeholder(template: &str) -> bool {
    PLACEHOLDERS.iter().any(|p| template.contains(p))
}

fn inline_template(raw: Raw<'_>, name: &str) -> Result<Template, String> {
    let text = raw.text()?;
    if !text.is_empty() && !has_placeholder(&text) {
        return Err("must contain the placeholder {token} or {{ token }}".to_owned());
    }
    Ok(Template {
        name: name.to_owned(),
        text: TemplateText::Inline(text),
    })
}

fn template_path(raw: Raw<'_>, name: &str) -> Result<Template, String> {
    Ok(Template {
        name: name.to_owned(),
        text: TemplateText::File(PathBuf::from(raw.text()?)),
    })
}

/// An email template as one source gave it, with the name to blame.
#[derive(Debug)]
struct Template {
    name: String,
    text: TemplateText,
}

#[derive(Debug)]
enum TemplateText {
    Inline(String),
    File(PathBuf),
}

impl Template {
    /// The template's text, reading the file if it is one; `None` if empty.
    fn resolve(self) -> Result<Option<String>, Error> {
        let text = match self.text {
            TemplateText::Inline(text) => text,
            TemplateText::File(path) if path.as_os_str().is_empty() => String::new(),
            TemplateText::File(path) => {
                let text = std::fs::read_to_string(&path).map_err(|err| {
                    invalid(&self.name, format!("cannot read {}: {err}", path.display()))
                })?;
                if !has_placeholder(&text) {
                    return Err(invalid(
                        self.name,
                        format!(
                            "the file {} must contain the placeholder {{token}} or {{{{ token }}}}",
                            path.display()
                        ),
                    ));
                }
                text
            }
        };
        Ok(Some(text).filter(|text| !text.is_empty()))
    }
}

/// The settings one source sets; `None` leaves a setting to the next source.
#[derive(Default)]
struct Layer {
    totp_issuer: Option<PerDevice>,
    totp_image: Option<PerDevice>,
    totp_sync: Option<bool>,
    totp_throttle_factor: Option<Duration>,
    totp_tolerance: Option<u16>,
    totp_max_drift: Option<u16>,
    hotp_issuer: Option<PerDevice>,
    hotp_throttle_factor: Option<Duration>,
    hotp_tolerance: Option<u16>,
    static_throttle_factor: Option<Duration>,
    static_count: Option<usize>,
    email_sender: Option<String>,
    email_subject: Option<String>,
    /// The text body, inline or from a file, once [`Layer::pair_templates`] has run.
    email_body: Option<Template>,
    email_body_path: Option<Template>,
    email_html: Option<Template>,
    email_html_path: Option<Template>,
    email_token_validity: Option<Duration>,
    email_throttle_factor: Option<Duration>,
    email_cooldown: Option<Duration>,
    email_max_failures: Option<u32>,
    failure_budget: Option<u32>,
    max_throttle_delay: Option<Duration>,
    challenges_per_hour: Option<u32>,
    email_per_address_per_hour: Option<u32>,
}

impl Layer {
    /// Folds each `_PATH` setting into its template, refusing a source that sets both.
    fn pair_templates(&mut self, source: Source) -> Result<(), Error> {
        let pairs = [
            (
                &mut self.email_body,
                self.email_body_path.take(),
                "OTP_EMAIL_BODY_TEMPLATE",
            ),
            (
                &mut self.email_html,
                self.email_html_path.take(),
                "OTP_EMAIL_BODY_HTML_TEMPLATE",
            ),
        ];
        for (inline, path, inline_env) in pairs {
            if let Some(path) = path {
                if inline.is_some() {
                    let spec = SPECS.iter().find(|spec| spec.env == inline_env);
                    let other = spec.map_or_else(|| inline_env.to_owned(), |s| source.name(s));
                    return Err(invalid(
                        path.name,
                        format!("is set together with {other}; set only one of them"),
                    ));
                }
                *inline = Some(path);
            }
        }
        Ok(())
    }

    /// `self` where it sets a value, `under` elsewhere.
    fn over(self, under: Layer) -> Layer {
        Layer {
            totp_issuer: self.totp_issuer.or(under.totp_issuer),
            totp_image: self.totp_image.or(under.totp_image),
            totp_sync: self.totp_sync.or(under.totp_sync),
            totp_throttle_factor: self.totp_throttle_factor.or(under.totp_throttle_factor),
            totp_tolerance: self.totp_tolerance.or(under.totp_tolerance),
            totp_max_drift: self.totp_max_drift.or(under.totp_max_drift),
            hotp_issuer: self.hotp_issuer.or(under.hotp_issuer),
            hotp_throttle_factor: self.hotp_throttle_factor.or(under.hotp_throttle_factor),
            hotp_tolerance: self.hotp_tolerance.or(under.hotp_tolerance),
            static_throttle_factor: self.static_throttle_factor.or(under.static_throttle_factor),
            static_count: self.static_count.or(under.static_count),
            email_sender: self.email_sender.or(under.email_sender),
            email_subject: self.email_subject.or(under.email_subject),
            email_body: self.email_body.or(under.email_body),
            email_body_path: None,
            email_html: self.email_html.or(under.email_html),
            email_html_path: None,
            email_token_validity: self.email_token_validity.or(under.email_token_validity),
            email_throttle_factor: self.email_throttle_factor.or(under.email_throttle_factor),
            email_cooldown: self.email_cooldown.or(under.email_cooldown),
            email_max_failures: self.email_max_failures.or(under.email_max_failures),
            failure_budget: self.failure_budget.or(under.failure_budget),
            max_throttle_delay: self.max_throttle_delay.or(under.max_throttle_delay),
            challenges_per_hour: self.challenges_per_hour.or(under.challenges_per_hour),
            email_per_address_per_hour: self
                .email_per_address_per_hour
                .or(under.email_per_address_per_hour),
        }
    }

    /// The defaults with this layer's values on top; template files are read here.
    fn into_settings(self) -> Result<Settings, Error> {
        let mut s = Settings::default();
        set(&mut s.totp.issuer, self.totp_issuer);
        set(&mut s.totp.image, self.totp_image);
        set(&mut s.totp.sync, self.totp_sync);
        set(&mut s.totp.throttle_factor, self.totp_throttle_factor);
        set(&mut s.totp.tolerance, self.totp_tolerance);
        set(&mut s.totp.max_drift, self.totp_max_drift);
        set(&mut s.hotp.issuer, self.hotp_issuer);
        set(&mut s.hotp.throttle_factor, self.hotp_throttle_factor);
        set(&mut s.hotp.tolerance, self.hotp_tolerance);
        set(
            &mut s.static_codes.throttle_factor,
            self.static_throttle_factor,
        );
        set(&mut s.static_codes.count, self.static_count);
        set(&mut s.email.sender, self.email_sender);
        set(&mut s.email.subject, self.email_subject);
        if let Some(body) = self.email_body {
            let name = body.name.clone();
            s.email.body_template = body
                .resolve()?
                .ok_or_else(|| invalid(name, "must not be empty"))?;
        }
        if let Some(html) = self.email_html {
            s.email.body_html_template = html.resolve()?;
        }
        set(&mut s.email.token_validity, self.email_token_validity);
        set(&mut s.email.throttle_factor, self.email_throttle_factor);
        set(&mut s.email.cooldown, self.email_cooldown);
        set(&mut s.email.max_failures, self.email_max_failures);
        if let Some(limit) = self.failure_budget {
            s.failure_budget = FailureBudget { limit };
        }
        set(&mut s.max_throttle_delay, self.max_throttle_delay);
        set(&mut s.challenges_per_hour, self.challenges_per_hour);
        set(
            &mut s.email_per_address_per_hour,
            self.email_per_address_per_hour,
        );
        Ok(s)
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}

/// One setting: its environment name, its TOML place, and how to read it into a layer.
struct Spec {
    env: &'static str,
    /// The TOML table, `None` for the top level.
    group: Option<&'static str>,
    key: &'static str,
    /// Reads the value into the layer; the `&str` names the setting as its source spells it.
    apply: fn(&mut Layer, Raw<'_>, &str) -> Result<(), String>,
}

/// The TOML tables.
const GROUPS: [&str; 4] = ["totp", "hotp", "static", "email"];

const TOTP: Option<&str> = Some("totp");
const HOTP: Option<&str> = Some("hotp");
const STATIC: Option<&str> = Some("static");
const EMAIL: Option<&str> = Some("email");
const TOP: Option<&str> = None;

impl Spec {
    const fn new(
        env: &'static str,
        group: Option<&'static str>,
        key: &'static str,
        apply: fn(&mut Layer, Raw<'_>, &str) -> Result<(), String>,
    ) -> Self {
        Self {
            env,
            group,
            key,
            apply,
        }
    }
}

/// Every setting, in the order of the table on [`Settings`]; the environment's errors come in
/// this order.
static SPECS: [Spec; 25] = [
    Spec::new("OTP_TOTP_ISSUER", TOTP, "issuer", |l, raw, _| {
        l.totp_issuer = Some(issuer(raw)?);
        Ok(())
    }),
    Spec::new("OTP_TOTP_IMAGE", TOTP, "image", |l, raw, _| {
        l.totp_image = Some(image(raw)?);
        Ok(())
    }),
    Spec::new("OTP_TOTP_SYNC", TOTP, "sync", |l, raw, _| {
        l.totp_sync = Some(raw.boolean()?);
        Ok(())
    }),
    Spec::new(
        "OTP_TOTP_THROTTLE_FACTOR",
        TOTP,
        "throttle_factor",
        |l, raw, _| {
            l.totp_throttle_factor = Some(raw.factor()?);
            Ok(())
        },
    ),
    Spec::new("OTP_TOTP_TOLERANCE", TOTP, "tolerance", |l, raw, _| {
        l.totp_tolerance = Some(raw.count(0, Some(10))?);
        Ok(())
    }),
    Spec::new("OTP_TOTP_MAX_DRIFT", TOTP, "max_drift", |l, raw, _| {
        l.totp_max_drift = Some(raw.count(0, Some(20))?);
        Ok(())
    }),
    Spec::new("OTP_HOTP_ISSUER", HOTP, "issuer", |l, raw, _| {
        l.hotp_issuer = Some(issuer(raw)?);
        Ok(())
    }),
    Spec::new(
        "OTP_HOTP_THROTTLE_FACTOR",
        HOTP,
        "throttle_factor",
        |l, raw, _| {
            l.hotp_throttle_factor = Some(raw.factor()?);
            Ok(())
        },
    ),
    Spec::new("OTP_HOTP_TOLERANCE", HOTP, "tolerance", |l, raw, _| {
        l.hotp_tolerance = Some(raw.count(0, Some(100))?);
        Ok(())
    }),
    Spec::new(
        "OTP_STATIC_THROTTLE_FACTOR",
        STATIC,
        "throttle_factor",
        |l, raw, _| {
            l.static_throttle_factor = Some(raw.factor()?);
            Ok(())
        },
    ),
    Spec::new("OTP_STATIC_COUNT", STATIC, "count", |l, raw, _| {
        l.static_count = Some(raw.count(1, Some(100))?);
        Ok(())
    }),
    Spec::new("OTP_EMAIL_SENDER", EMAIL, "sender", |l, raw, _| {
        l.email_sender = Some(sender(raw)?);
        Ok(())
    }),
    Spec::new("OTP_EMAIL_SUBJECT", EMAIL, "subject", |l, raw, _| {
        l.email_subject = Some(subject(raw)?);
        Ok(())
    }),
    Spec::new(
        "OTP_EMAIL_BODY_TEMPLATE",
        EMAIL,
        "body_template",
        |l, raw, name| {
            l.email_body = Some(inline_template(raw, name)?);
            Ok(())
        },
    ),
    Spec::new(
        "OTP_EMAIL_BODY_TEMPLATE_PATH",
        EMAIL,
        "body_template_path",
        |l, raw, name| {
            l.email_body_path = Some(template_path(raw, name)?);
            Ok(())
        },
    ),
    Spec::new(
        "OTP_EMAIL_BODY_HTML_TEMPLATE",
        EMAIL,
        "body_html_template",
        |l, raw, name| {
            l.email_html = Some(inline_template(raw, name)?);
            Ok(())
        },
    ),
    Spec::new(
        "OTP_EMAIL_BODY_HTML_TEMPLATE_PATH",
        EMAIL,
        "body_html_template_path",
        |l, raw, name| {
            l.email_html_path = Some(template_path(raw, name)?);
            Ok(())
        },
    ),
    Spec::new(
        "OTP_EMAIL_TOKEN_VALIDITY",
        EMAIL,
        "token_validity",
        |l, raw, _| {
            l.email_token_validity = Some(raw.seconds(1)?);
            Ok(())
        },
    ),
    Spec::new(
        "OTP_EMAIL_THROTTLE_FACTOR",
        EMAIL,
        "throttle_factor",
        |l, raw, _| {
            l.email_throttle_factor = Some(raw.factor()?);
            Ok(())
        },
    ),
    Spec::new(
        "OTP_EMAIL_COOLDOWN_DURATION",
        EMAIL,
        "cooldown_duration",
        |l, raw, _| {
            l.email_cooldown = Some(raw.seconds(0)?);
            Ok(())
        },
    ),
    Spec::new(
        "OTP_EMAIL_MAX_FAILURES",
        EMAIL,
        "max_failures",
        |l, raw, _| {
            l.email_max_failures = Some(raw.count(1, None)?);
            Ok(())
        },
    ),
    Spec::new("OTP_FAILURE_BUDGET", TOP, "failure_budget", |l, raw, _| {
        l.failure_budget = Some(raw.count(1, None)?);
        Ok(())
    }),
    Spec::new(
        "OTP_MAX_THROTTLE_DELAY",
        TOP,
        "max_throttle_delay",
        |l, raw, _| {
            l.max_throttle_delay = Some(raw.seconds(1)?);
            Ok(())
        },
    ),
    Spec::new(
        "OTP_CHALLENGES_PER_HOUR",
        TOP,
        "challenges_per_hour",
        |l, raw, _| {
            l.challenges_per_hour = Some(raw.count(0, Some(MAX_CHALLENGES_PER_HOUR))?);
            Ok(())
        },
    ),
    Spec::new(
        "OTP_EMAIL_PER_ADDRESS_PER_HOUR",
        TOP,
        "email_per_address_per_hour",
        |l, raw, _| {
            l.email_per_address_per_hour = Some(raw.count(0, Some(MAX_CHALLENGES_PER_HOUR))?);
            Ok(())
        },
    ),
];

/// The largest `OTP_CHALLENGES_PER_HOUR`: one a second.
const MAX_CHALLENGES_PER_HOUR: u32 = 3_600;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_named_after_its_place_in_toml() {
        for spec in &SPECS {
            let expected = match spec.group {
                Some(group) => format!("OTP_{group}_{}", spec.key).to_uppercase(),
                None => format!("OTP_{}", spec.key).to_uppercase(),
            };
            assert_eq!(spec.env, expected);
            assert!(
                spec.group.is_none_or(|group| GROUPS.contains(&group)),
                "{}",
                spec.env
            );
            let twins = SPECS.iter().filter(|other| other.env == spec.env).count();
            assert_eq!(twins, 1, "{} is listed twice", spec.env);
        }
    }

    #[test]
    fn each_group_has_settings() {
        for group in GROUPS {
            assert!(
                SPECS.iter().any(|spec| spec.group == Some(group)),
                "{group}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_setting_that_is_not_utf8_is_an_error_and_other_variables_are_ignored() {
        use std::os::unix::ffi::OsStringExt;

        let not_utf8 = || OsString::from_vec(vec![0x66, 0xff, 0x6f]);
        let env = [
            (OsString::from("OTP_LOG"), not_utf8()),
            (OsString::from_vec(vec![0x4f, 0xff]), not_utf8()),
        ];
        let settings = Settings::load_with_env(None, env).unwrap();
        assert_eq!(settings.email.subject, "OTP token");

        let env = [(OsString::from("OTP_EMAIL_SUBJECT"), not_utf8())];
        let error = Settings::load_with_env(None, env).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid setting OTP_EMAIL_SUBJECT: is not valid UTF-8"
        );
    }

    #[test]
    fn load_with_env_puts_the_environment_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otp.toml");
        std::fs::write(&path, "[hotp]\ntolerance = 7\nthrottle_factor = 0\n").unwrap();
        let env = [(OsString::from("OTP_HOTP_TOLERANCE"), OsString::from("9"))];
        let settings = Settings::load_with_env(Some(&path), env).unwrap();
        assert_eq!(settings.hotp.tolerance, 9);
        assert_eq!(settings.hotp.throttle_factor, Duration::ZERO);

        std::fs::write(&path, "[hotp]\ntolerance = [7]\n").unwrap();
        let error = Settings::load_with_env(Some(&path), []).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid setting hotp.tolerance: expected a whole number, got an array"
        );
    }

    #[test]
    fn raw_values_are_shown_as_written() {
        let cases = [
            ("s = \"300\"", "\"300\""),
            ("s = 300", "300"),
            ("s = 300.0", "300.0"),
            ("s = nan", "NaN"),
            ("s = -inf", "-inf"),
            ("s = false", "false"),
            ("s = 1979-05-27", "1979-05-27"),
            ("s = [1]", "an array"),
            ("s = { a = 1 }", "a table"),
        ];
        for (toml, expected) in cases {
            let table: toml::Table = toml.parse().unwrap();
            assert_eq!(Raw::Toml(&table["s"]).got(), expected, "{toml}");
        }
        assert_eq!(Raw::Env("a\"b\n").got(), r#""a\"b\n""#);
    }
}
