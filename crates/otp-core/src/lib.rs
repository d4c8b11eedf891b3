//! # otp-core: devices, policies and the store
//!
//! The device framework of the project, the counterpart of django-otp's models and public API.

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

pub use backup_codes::{
    BACKUP_CODE_LEN, BackupCode, MAX_BACKUP_CODE_LEN, MIN_BACKUP_CODE_LEN, normalize_backup_code,
};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use device::{ChallengeOutcome, Device, NotAllowedReason, VerifyOutcome};
pub use device_id::DeviceId;
pub use error::Error;
pub use events::OtpEvent;
pub use keys::{HashedCode, KeyRing};
pub use kind::{BoxFuture, Challenge, DeviceKind, KindContext, KindRegistry, TokenCheck};
pub use kinds::hotp::HotpOptions;
pub use kinds::totp::TotpOptions;
pub use kinds::{EmailKind, HotpKind, StaticKind, TotpKind};
pub use mailer::{DevelopmentLogMailer, Mailer, OutgoingEmail, SmtpMailer};
pub use otp::{Otp, OtpBuilder, RotationReport};
pub use policy::{CooldownPolicy, FailureBudget, ThrottlePolicy, ThrottleState, Throttled};
pub use settings::{
    EmailSettings, HotpSettings, PerDevice, Settings, StaticSettings, TotpSettings,
};
pub use store::{DatabaseUrl, Store};
