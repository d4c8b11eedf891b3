//! Device kinds: the pluggable part of the framework.
//!
//! A kind is the logic of one sort of device (TOTP, HOTP, backup codes, email codes, or one
//! written in another crate). Devices of every kind live in one table: the framework keeps the
//! common columns (owner, name, confirmation, timestamps, throttling, cooldown, version) and hands
//! the kind its own state, a JSON value the kind alone reads and writes. A new kind therefore
//! needs no migration: it registers itself with [`OtpBuilder::with_kind`](crate::OtpBuilder).
//!
//! # The contract
//!
//! - [`DeviceKind::check_token`] is **pure**: it reads the state, the token and the context and
//!   says whether the token matched, returning the new state. It must not do I/O. The framework
//!   stores the new state with one compare-and-set update on the row's version; if another
//!   process changed the row meanwhile, the framework re-reads it and asks again. So a token is
//!   accepted at most once as long as the new state refuses it (advance a counter, consume a
//!   code).
//! - The framework applies throttling, the account failure budget, confirmation and ownership
//!   checks before calling the kind; the kind does not repeat them.
//! - Secrets in the state are sealed with [`KindContext::seal`] and opened with
//!   [`KindContext::open`]; one-time codes are kept as [`KindContext::hash_code`] hashes.
//! - Interactive kinds (those that send a challenge) implement
//!   [`DeviceKind::prepare_challenge`] (pure, like `check_token`) and [`DeviceKind::deliver`]
//!   (the I/O). The framework stores the prepared state first and rolls back the cooldown if
//!   delivery fails.
//!
//! - A kind describes itself to the layers above, so that they ask the registry instead of
//!   matching names: [`DeviceKind::label`] and [`DeviceKind::description`] for people, how users
//!   enrol it ([`DeviceKind::enrolment`]), its [`DeviceKind::provisioning_uri`] and the
//!   [`DeviceKind::codes_remaining`] of kinds made of codes. Each has a default, so a minimal
//!   kind stays small.
//!
//! # A kind of your own
//!
//! ```
//! use otp_core::{DeviceKind, Error, KindContext, TokenCheck};
//! use serde_json::{Value, json};
//!
//! /// A toy kind: the token is a word stored in the state, usable once.
//! #[derive(Debug)]
//! struct Password;
//!
//! impl DeviceKind for Password {
//!     fn name(&self) -> &'static str {
//!         "password"
//!     }
//!     fn verbose_name(&self) -> &'static str {
//!         "one-time password word"
//!     }
//!     fn check_token(&self, ctx: &KindContext<'_>, state: &Value, token: &str) -> Result<TokenCheck, Error> {
//!         let Some(stored) = state["hash"].as_str() else {
//!             return Ok(TokenCheck::NoMatch { state: None }); // already used
//!         };
//!         if ctx.verify_code(stored, token.trim().as_bytes())? {
//!             Ok(TokenCheck::Matched { state: json!({ "hash": null }) })
//!         } else {
//!             Ok(TokenCheck::NoMatch { state: None })
//!         }
//!     }
//! }
//! ```
//!
//! The integration tests register such a kind next to the built-in ones and run the framework's
//! conformance suite against it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use zeroize::Zeroizing;

use otp_oath::OtpAuthUri;

use crate::{
    BackupCode, CooldownPolicy, Device, Error, HashedCode, KeyRing, Settings, ThrottlePolicy,
    Timestamp,
};

/// What a user gives to enrol a device by themselves (see [`Enrolment`]): an address for the
/// kinds that deliver their codes, a number of codes for the kinds made of codes.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct EnrolInput {
    /// Where codes go ([`Enrolment::DeliveredCode`]).
    pub address: Option<String>,
    /// How many codes to make ([`Enrolment::CodesShownOnce`]); `None` for the settings'.
    pub count: Option<usize>,
}

impl EnrolInput {
    /// No input: what the kinds with a generated secret need.
    pub fn none() -> Self {
        Self::default()
    }

    /// An address.
    pub fn address(address: impl Into<String>) -> Self {
        Self {
            address: Some(address.into()),
            count: None,
        }
    }

    /// A number of codes (`None`: the settings').
    pub fn count(count: Option<usize>) -> Self {
        Self {
            address: None,
            count,
        }
    }

    /// This input with an address.
    pub fn with_address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// This input with a number of codes.
    pub fn with_count(mut self, count: Option<usize>) -> Self {
        self.count = count;
        self
    }
}

/// A device's first state, made by [`DeviceKind::enrol`].
#[non_exhaustive]
pub struct Enrolled {
    /// The kind's state.
    pub state: Value,
    /// Whether the device is confirmed from the start (nothing to prove).
    pub confirmed: bool,
    /// Codes to show the user this once (their hashes are in the state).
    pub codes: Vec<BackupCode>,
}

impl Enrolled {
    /// An enrolment that waits for its confirmation, with nothing to show but the state.
    pub fn unconfirmed(state: Value) -> Self {
        Self {
            state,
            confirmed: false,
            codes: Vec::new(),
        }
    }

    /// An enrolment confirmed from the start, with codes to show once.
    pub fn with_codes(state: Value, codes: Vec<BackupCode>) -> Self {
        Self {
            state,
            confirmed: true,
            codes,
        }
    }
}

impl fmt::Debug for Enrolled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrolled")
            .field("confirmed", &self.confirmed)
            .field("codes", &self.codes.len())
            .finish_non_exhaustive()
    }
}

/// How a user enrols a device of a kind by themselves, which tells the web layers what to show
/// and ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Enrolment {
    /// Users do not enrol it themselves: operators create it.
    ByOperator,
    /// A secret is made and shown as an `otpauth://` URI and its QR code
    /// ([`DeviceKind::provisioning_uri`]); the device's first code confirms it.
    GeneratedSecret,
    /// The user gives an address; a code delivered to it confirms it.
    DeliveredCode,
    /// Codes are made and shown once; there is nothing to confirm.
    CodesShownOnce,
    /// A ceremony run by the client, whose options and result are JSON (WebAuthn).
    ClientCeremony,
}

impl Enrolment {
    /// Whether users may add a device of the kind themselves.
    pub fn is_self_service(self) -> bool {
        !matches!(self, Self::ByOperator)
    }

    /// Whether a device enrolled this way starts unconfirmed, waiting for a proof of
    /// possession.
    pub fn needs_confirmation(self) -> bool {
        matches!(
            self,
            Self::GeneratedSecret | Self::DeliveredCode | Self::ClientCeremony
        )
    }
}

/// A boxed future, for the async methods of object-safe traits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a kind learns about the verification it is asked to do.
pub struct KindContext<'a> {
    /// The time of the verification, read once.
    pub now: Timestamp,
    /// The user who owns the device.
    pub user_key: &'a str,
    /// The framework's settings.
    pub settings: &'a Settings,
    pub(crate) keys: &'a KeyRing,
    pub(crate) kind: &'a str,
}

impl fmt::Debug for KindContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindContext")
            .field("now", &self.now)
            .field("user_key", &self.user_key)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl KindContext<'_> {
    /// The associated data that binds sealed secrets and code hashes to this user and kind, so
    /// that state copied to another user's row neither opens nor matches.
    fn binding(&self) -> Vec<u8> {
        let mut binding = Vec::with_capacity(self.kind.len() + 1 + self.user_key.len());
        binding.extend_from_slice(self.kind.as_bytes());
        binding.push(0);
        binding.extend_from_slice(self.user_key.as_bytes());
        binding
    }

    /// Seals a secret for storage in the state.
    ///
    /// # Errors
    ///
    /// See [`KeyRing::seal`].
    pub fn seal(&self, secret: &[u8]) -> Result<String, Error> {
        self.keys.seal(secret, &self.binding())
    }

    /// Opens a secret sealed by [`KindContext::seal`].
    ///
    /// # Errors
    ///
    /// See [`KeyRing::open`].
    pub fn open(&self, sealed: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.keys.open(sealed, &self.binding())
    }

    /// Hashes a one-time code for storage in the state (stored form, see [`HashedCode`]).
    pub fn hash_code(&self, code: &[u8]) -> String {
        self.keys.hash_code(&self.binding(), code).to_stored()
    }

    /// Whether `code` is the one behind a stored hash, in constant time.
    ///
    /// # Errors
    ///
    /// [`Error::CorruptStoredSecret`] or [`Error::UnknownKeyId`] for a broken stored hash.
    pub fn verify_code(&self, stored: &str, code: &[u8]) -> Result<bool, Error> {
        let hashed = HashedCode::from_stored(stored)?;
        self.keys.verify_code(&hashed, &self.binding(), code)
    }

    /// Re-seals a sealed secret under the newest key (for key rotation); `None` if it already
    /// uses the newest key.
    ///
    /// # Errors
    ///
    /// See [`KeyRing::open`].
    pub fn reseal(&self, sealed: &str) -> Result<Option<String>, Error> {
        if KeyRing::envelope_key_id(sealed)? == self.keys.current_key_id() {
            return Ok(None);
        }
        let secret = self.open(sealed)?;
        self.seal(&secret).map(Some)
    }
}

/// The answer of [`DeviceKind::check_token`].
#[derive(Debug, Clone, PartialEq)]
pub enum TokenCheck {
    /// The token matched; store `state`, which must refuse the same token from now on.
    Matched {
        /// The kind's new state.
        state: Value,
    },
    /// The token did not match; store `state` if the kind changed it (for example a count of
    /// wrong tries), else nothing of the kind's state changes.
    NoMatch {
        /// The kind's new state, if it changed.
        state: Option<Value>,
    },
}

/// A challenge prepared by [`DeviceKind::prepare_challenge`], ready to deliver.
pub struct Challenge {
    /// The kind's new state (the code's hash, its expiry): stored before delivery.
    pub state: Value,
    /// The code to send. Zeroized on drop, never logged.
    pub code: Zeroizing<String>,
    /// Where it goes, for example an email address.
    pub recipient: String,
    /// How long the code stays valid.
    pub valid_for: Duration,
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenge")
            .field("recipient", &self.recipient)
            .field("valid_for", &self.valid_for)
            .field("code", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// The logic of one sort of device. See the [module documentation](self) for the contract.
pub trait DeviceKind: Send + Sync + fmt::Debug + 'static {
    /// The stable name used in device ids (`totp` in `totp/42`) and in the store. It must match
    /// `[a-z][a-z0-9_]{0,31}` and never change once devices exist.
    fn name(&self) -> &'static str;

    /// A name for people, such as "TOTP device".
    fn verbose_name(&self) -> &'static str;

    /// What the kind is called where users choose one, such as "Authenticator app"; by default
    /// [`DeviceKind::verbose_name`].
    fn label(&self) -> &'static str {
        self.verbose_name()
    }

    /// One sentence on what a device of the kind is, for people choosing one; by default none.
    fn description(&self) -> &'static str {
        ""
    }

    /// How users enrol a device of the kind by themselves; by default they do not
    /// ([`Enrolment::ByOperator`]).
    fn enrolment(&self) -> Enrolment {
        Enrolment::ByOperator
    }

    /// Makes the first state of a device a user enrols by themselves, from what they gave
    /// (fresh secrets made here, sealed with `ctx`). Pure, like [`DeviceKind::check_token`].
    ///
    /// # Errors
    ///
    /// [`Error::NotSelfService`] (the default) for kinds users do not enrol; the kind's own
    /// errors for bad input (an invalid address, a number of codes out of range).
    fn enrol(&self, _ctx: &KindContext<'_>, _input: &EnrolInput) -> Result<Enrolled, Error> {
        Err(Error::NotSelfService(self.name()))
    }

    /// Whether a user may have at most one device of the kind (backup codes: new ones replace
    /// the old); by default not.
    fn one_per_user(&self) -> bool {
        false
    }

    /// The `otpauth://` URI of a device of the kind, with the issuer and image of the settings,
    /// for kinds provisioned with a shared secret; `Ok(None)` for the others (the default).
    ///
    /// # Errors
    ///
    /// Only for broken stored state.
    fn provisioning_uri(
        &self,
        _ctx: &KindContext<'_>,
        _device: &Device,
    ) -> Result<Option<OtpAuthUri>, Error> {
        Ok(None)
    }

    /// Where a device of the kind delivers its codes (an email address), for the kinds
    /// confirmed with a delivered code; `Ok(None)` for the others (the default).
    ///
    /// # Errors
    ///
    /// Only for broken stored state.
    fn recipient(&self, _state: &Value) -> Result<Option<String>, Error> {
        Ok(None)
    }

    /// How many one-time codes a device of the kind has left, for kinds made of such codes
    /// (backup codes); `Ok(None)` for the others (the default).
    ///
    /// # Errors
    ///
    /// Only for broken stored state.
    fn codes_remaining(&self, _state: &Value) -> Result<Option<usize>, Error> {
        Ok(None)
    }

    /// Throttling of verification failures for devices of this kind.
    fn throttle_policy(&self, settings: &Settings) -> ThrottlePolicy {
        ThrottlePolicy {
            factor: Duration::from_secs(1),
            max_delay: settings.max_throttle_delay,
        }
    }

    /// Whether a device of this kind may still verify when the account's failure budget is
    /// used up, and resets the budget when it does: true for recovery codes only.
    fn is_recovery(&self) -> bool {
        false
    }

    /// Checks `token` against the kind's `state`. Pure: no I/O. See the module documentation.
    ///
    /// # Errors
    ///
    /// Only for broken stored state (a malformed state, a secret that does not open); a wrong
    /// or malformed token is [`TokenCheck::NoMatch`].
    fn check_token(
        &self,
        ctx: &KindContext<'_>,
        state: &Value,
        token: &str,
    ) -> Result<TokenCheck, Error>;

    /// Whether devices of this kind send challenges (django-otp's `is_interactive`).
    fn is_interactive(&self) -> bool {
        false
    }

    /// Minimum gap between two challenges of one device.
    fn cooldown(&self, _settings: &Settings) -> CooldownPolicy {
        CooldownPolicy::new(Duration::ZERO)
    }

    /// Prepares a challenge: a new code and the state that expects it. Pure, like
    /// [`DeviceKind::check_token`]. Non-interactive kinds return `Ok(None)`.
    ///
    /// # Errors
    ///
    /// Only for broken stored state.
    fn prepare_challenge(
        &self,
        _ctx: &KindContext<'_>,
        _state: &Value,
    ) -> Result<Option<Challenge>, Error> {
        Ok(None)
    }

    /// Delivers a prepared challenge (sends the email). The framework has already stored the
    /// challenge's state.
    ///
    /// # Errors
    ///
    /// [`Error::Delivery`] if the message could not be handed over.
    fn deliver<'a>(&'a self, _challenge: &'a Challenge) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    /// Re-seals the secrets in `state` under the newest key; `None` if nothing changed.
    ///
    /// # Errors
    ///
    /// If a sealed secret does not open.
    fn reseal(&self, _ctx: &KindContext<'_>, _state: &Value) -> Result<Option<Value>, Error> {
        Ok(None)
    }
}

/// The kinds the framework knows, in their defined order (the order of device lists).
#[derive(Debug, Clone, Default)]
pub struct KindRegistry {
    kinds: Vec<Arc<dyn DeviceKind>>,
}

impl KindRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a kind after those already registered.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidDeviceId`] if the name breaks the grammar, [`Error::DuplicateKind`] if a
    /// kind of that name is registered already.
    pub fn register(&mut self, kind: Arc<dyn DeviceKind>) -> Result<(), Error> {
        crate::device_id::check_kind_name(kind.name())?;
        if self.get(kind.name()).is_some() {
            return Err(Error::DuplicateKind(kind.name()));
        }
        self.kinds.push(kind);
        Ok(())
    }

    /// The kind called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn DeviceKind>> {
        self.kinds.iter().find(|k| k.name() == name)
    }

    /// The position of the kind called `name` in the defined order.
    pub(crate) fn position(&self, name: &str) -> usize {
        self.kinds
            .iter()
            .position(|k| k.name() == name)
            .unwrap_or(usize::MAX)
    }

    /// All kinds in their defined order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn DeviceKind>> {
        self.kinds.iter()
    }
}
