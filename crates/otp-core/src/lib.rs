//! # otp-core: devices, policies and the store
//!
//! The device framework of the project, the counterpart of django-otp's models and public API:
//! users own devices of pluggable kinds (TOTP, HOTP, backup codes, email codes, and kinds from
//! other crates); throttling, challenge cooldowns and an account-wide failure budget apply to
//! every kind; devices live in SQLite (embedded, the default) or PostgreSQL (many app servers on
//! one database), with their secrets sealed. It knows nothing of HTTP: `otp-axum` builds on it.
//!
//! ## From enrolment to login
//!
//! ```
//! use otp_core::{DatabaseUrl, KeyRing, Otp, Store, TotpOptions, VerifyOutcome};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), otp_core::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let url = format!("sqlite://{}", dir.path().join("otp.db").display());
//! // The embedded default: a SQLite file, created on first use, and its key file beside it.
//! let store = Store::connect(&url).await?;
//! store.migrate().await?;
//! let keys = KeyRing::for_database(&url.parse::<DatabaseUrl>()?, None, None)?;
//! let otp = Otp::builder(store, keys).build()?;
//!
//! // Enrolment: an unconfirmed TOTP device, and the URI its QR code shows.
//! let device = otp
//!     .create_totp_device("user-42", "phone", None, TotpOptions::default(), false)
//!     .await?;
//! let uri = otp.provisioning_uri(&device)?;
//!
//! // The user's app computes a code; the first one confirms the device (and is spent).
//! let app = uri.to_totp()?;
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
//! let code = app.code_at(now.as_secs() as i64)?.to_string();
//! assert!(otp.confirm_device("user-42", &device.id, &code).await?.is_verified());
//!
//! // Login: the same code again is refused; a wrong code is an outcome, not an error.
//! let outcome = otp.verify_token("user-42", &device.id, &code).await?;
//! # // By chance (one in a million per step) the code may also be that of a later step, which
//! # // the server may then rightly accept: nothing to check then.
//! # let later = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
//! # let first = app.time_step(now.as_secs() as i64).unwrap() - 1;
//! # let last = app.time_step(later.as_secs() as i64).unwrap() + 1;
//! # let matches = (first..=last).filter(|&s| app.code_for_step(s).to_string() == code);
//! # if matches.count() > 1 {
//! #     return Ok(());
//! # }
//! match outcome {
//!     VerifyOutcome::Invalid { failure_count } => assert_eq!(failure_count, 1),
//!     other => panic!("a spent code must not verify: {other:?}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! ## What it guarantees
//!
//! - **Exactly once.** Every state change is one conditional `UPDATE … WHERE version = $v`
//!   (compare-and-set). No row lock is held while a token is checked; a writer that loses the
//!   race re-reads and decides again. A code is accepted once across tasks, processes and
//!   servers sharing the database.
//! - **Confirmed devices of the right user only.** [`Otp::verify_token`] refuses another user's
//!   device as if it did not exist and changes nothing of it; unconfirmed devices verify only
//!   through [`Otp::confirm_device`].
//! - **Throttling** as django-otp (`factor × 2^(n-1)` seconds after `n` failures, strict `<`,
//!   reset on success, attempts during the delay not counted), with a cap; an **account failure
//!   budget** (100 consecutive failures, NIST SP 800-63B) that only recovery codes or an
//!   operator lift.
//! - **Secrets sealed at rest.** OTP keys are sealed with XChaCha20-Poly1305 under an
//!   application key with an id ([`KeyRing`]), bound to their user and kind; backup and email
//!   codes are stored only as keyed hashes. A copy of the database alone reveals no key and no
//!   code.
//! - **Strict input.** Device ids follow a grammar ([`DeviceId`]); tokens must be exactly what
//!   their kind issues; bad input is an [`Error`] that names the problem and carries no secret.
//!
//! ## Device kinds
//!
//! | kind | id | django-otp | state |
//! |---|---|---|---|
//! | [`TotpKind`] | `totp/N` | `otp_totp` | sealed key, step, t0, digits, algorithm, tolerance, bounded drift, last step |
//! | [`HotpKind`] | `hotp/N` | `otp_hotp` | sealed key, digits, algorithm, tolerance, counter |
//! | [`EmailKind`] | `email/N` | `otp_email` | address, hashed code, expiry, wrong tries |
//! | [`StaticKind`] | `static/N` | `otp_static` | hashed backup codes |
//!
//! Kinds of your own implement [`DeviceKind`]; the [`kind`] module states the contract.
//!
//! ## Time and events
//!
//! The clock is injected ([`Clock`]; [`ManualClock`] freezes it in tests). Verifications and
//! challenges emit [`OtpEvent`]s, logged with `tracing` and delivered to every
//! [`Otp::subscribe`]r.

#![forbid(unsafe_code)]

mod backup_codes;
mod clock;
mod device;
mod device_id;
mod error;
mod events;
mod keys;
pub mod kind;
mod kinds;
mod mailer;
mod otp;
mod policy;
mod settings;
mod store;
mod turns;

pub use backup_codes::{
    BACKUP_CODE_LEN, BackupCode, MAX_BACKUP_CODE_LEN, MIN_BACKUP_CODE_LEN, normalize_backup_code,
};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use device::{ChallengeOutcome, Device, NotAllowedReason, VerifyOutcome};
pub use device_id::DeviceId;
pub use error::Error;
pub use events::OtpEvent;
pub use keys::{HashedCode, KeyRing};
pub use kind::{
    BoxFuture, Challenge, DeviceKind, EnrolInput, Enrolled, Enrolment, KindContext, KindRegistry,
    TokenCheck,
};
pub use kinds::email::check_email_address;
pub use kinds::hotp::HotpOptions;
pub use kinds::totp::TotpOptions;
pub use kinds::{EmailKind, HotpKind, StaticKind, TotpKind};
pub use mailer::{DevelopmentLogMailer, Mailer, OutgoingEmail, SmtpMailer};
pub use otp::{Otp, OtpBuilder, RotationReport};
pub use policy::{CooldownPolicy, FailureBudget, ThrottlePolicy, ThrottleState, Throttled};
pub use settings::{
    EmailSettings, HotpSettings, PerDevice, Settings, StaticSettings, TotpSettings,
};
pub use store::{
    ConnectionRef, DatabaseUrl, Migration, Pool, Store, StoreConnection, files_open_to_others,
};
