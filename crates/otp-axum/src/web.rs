//! [`OtpWeb`]: everything the web layer shares: the framework, the app's accounts, the
//! configuration, the templates.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use otp_core::{Clock, Otp, SystemClock, Timestamp};

use crate::Accounts;
use crate::templates::Templates;

/// Configuration of the web layer. The defaults suit an app that mounts the HTML flows at
/// `/account` and the JSON API wherever it likes.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Where the HTML flows live: `{mount}/login`, `{mount}/login/otp`, `{mount}/verify`,
    /// `{mount}/logout` (default `/account`).
    pub mount: String,
    /// Where [`otp_required`](crate::otp_required) sends users who are not verified (default
    /// `{mount}/login`; django-otp's `OTP_LOGIN_URL`).
    pub login_url: String,
    /// The query parameter that carries the page to return to (default `next`).
    pub redirect_field: String,
    /// Where a login goes when no `next` was given (default `/`).
    pub default_redirect: String,
    /// How long a login may wait between its password and its second factor (default 10
    /// minutes).
    pub partial_login_timeout: Duration,
    /// How long a verification lasts, if not as long as the session (default: as long).
    pub max_verification_age: Option<Duration>,
    /// How long a verified session may go without a request before its verification lapses
    /// (default: no limit). Requests are noted at most once a minute (once a tenth of this, if
    /// shorter), so that a busy session is not written on every request.
    pub max_verification_idle: Option<Duration>,
    /// How recent a verification must be for a change to the account's second factor or
    /// password (default 5 minutes; see [`step_up`](crate::step_up)).
    pub step_up_window: Duration,
    /// Origins besides the request's own that may post JSON (for example a front end on
    /// another port), written `scheme://host[:port]`.
    pub allowed_origins: Vec<String>,
    /// Whether browsers reach the app over HTTPS, directly or through a proxy that terminates
    /// TLS (default `false`). The request's own origin, which the CSRF checks compare `Origin`
    /// with, is `https://{Host}` if so and `http://{Host}` if not: see
    /// [`check_origin`](crate::csrf::check_origin).
    pub https: bool,
    /// A folder whose templates replace the built-in ones of the same name.
    pub template_dir: Option<PathBuf>,
    /// The site's name, shown in page titles.
    pub site_name: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            mount: "/account".into(),
            login_url: "/account/login".into(),
            redirect_field: "next".into(),
            default_redirect: "/".into(),
            partial_login_timeout: Duration::from_secs(600),
            max_verification_age: None,
            max_verification_idle: None,
            step_up_window: Duration::from_secs(300),
            allowed_origins: Vec::new(),
            https: false,
            template_dir: None,
            site_name: "Sign in".into(),
        }
    }
}

impl WebConfig {
    /// Moves the HTML flows (and the default login URL) under `mount`.
    pub fn with_mount(mut self, mount: &str) -> Self {
        let mount = mount.trim_end_matches('/').to_owned();
        self.login_url = format!("{mount}/login");
        self.mount = mount;
        self
    }
}

/// The web layer's shared state. Cheap to clone.
#[derive(Clone)]
pub struct OtpWeb {
    inner: Arc<Inner>,
}

struct Inner {
    otp: Otp,
    accounts: Arc<dyn Accounts>,
    config: WebConfig,
    templates: Templates,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for OtpWeb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtpWeb")
            .field("otp", &self.inner.otp)
            .field("accounts", &self.inner.accounts)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl OtpWeb {
    /// The web layer for `otp`, with the app's `accounts` and the default configuration.
    ///
    /// # Errors
    ///
    /// [`crate::WebError::Template`] if a template in the configured folder does not parse.
    pub fn new(otp: Otp, accounts: impl Accounts) -> Result<Self, crate::WebError> {
        Self::with_config(otp, accounts, WebConfig::default())
    }

    /// The web layer with a configuration of your own.
    ///
    /// # Errors
    ///
    /// [`crate::WebError::Template`] if a template in the configured folder does not parse.
    pub fn with_config(
        otp: Otp,
        accounts: impl Accounts,
        config: WebConfig,
    ) -> Result<Self, crate::WebError> {
        let templates = Templates::new(config.template_dir.clone())?;
        Ok(Self {
            inner: Arc::new(Inner {
                otp,
                accounts: Arc::new(accounts),
                config,
                templates,
                clock: Arc::new(SystemClock),
            }),
        })
    }

    /// Replaces the clock that times partial logins and verification ages (tests freeze it).
    /// Use the same clock as the framework's.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            otp: shared.otp.clone(),
            accounts: shared.accounts.clone(),
            config: shared.config.clone(),
            templates: shared.templates.clone(),
            clock: shared.clock.clone(),
        });
        Self {
            inner: Arc::new(Inner { clock, ..inner }),
        }
    }

    /// The framework.
    pub fn otp(&self) -> &Otp {
        &self.inner.otp
    }

    /// The app's accounts.
    pub fn accounts(&self) -> &dyn Accounts {
        &*self.inner.accounts
    }

    /// The configuration.
    pub fn config(&self) -> &WebConfig {
        &self.inner.config
    }

    pub(crate) fn templates(&self) -> &Templates {
        &self.inner.templates
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }
}
