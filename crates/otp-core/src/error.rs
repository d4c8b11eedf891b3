//! The one error type of this crate.

/// Everything that can go wrong in `otp-core`.
///
/// A wrong token is **not** an error: verification returns an outcome. `Error` is for input
/// that cannot be used at all and for failing systems (the database, the mail server). No
/// variant carries a secret, a key or a submitted code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A device id breaks the `KIND/NUMBER` grammar.
    #[error("invalid device id: {0}")]
    InvalidDeviceId(&'static str),
    /// An application key (from `OTP_SECRET_KEY` or a key file) is malformed.
    #[error("invalid application key: {0}")]
    InvalidApplicationKey(String),
    /// A PostgreSQL database was given without an application key.
    #[error(
        "no application key: set OTP_SECRET_KEY (ID:HEX, 64 hex digits) or OTP_KEY_FILE; \
         a shared PostgreSQL database never gets a key made up by one server"
    )]
    MissingApplicationKey,
    /// A key file cannot be read or written.
    #[error("key file {path}: {problem}")]
    KeyFile {
        /// The file.
        path: String,
        /// What went wrong.
        problem: String,
    },
    /// A stored secret or code hash names a key id the key ring does not hold.
    #[error("no application key with id {0}: a key was removed before every row was re-sealed")]
    UnknownKeyId(u32),
    /// A stored secret, code hash or device state is malformed or was altered.
    #[error("corrupt stored data: {0}")]
    CorruptStoredSecret(&'static str),
    /// An error of the algorithms layer (a bad secret, digits, step, algorithm or URI).
    #[error(transparent)]
    Oath(#[from] otp_oath::Error),
    /// The user has no device with that id (another user's device is reported the same way).
    #[error("no such device")]
    DeviceNotFound,
    /// A device id names a kind this program does not register.
    #[error("unknown device kind {0:?}")]
    UnknownKind(String),
    /// Two kinds were registered under one name.
    #[error("the device kind {0:?} is registered twice")]
    DuplicateKind(&'static str),
    /// A user key is empty, longer than 255 bytes or holds control characters.
    #[error("invalid user key: it must be 1 to 255 bytes without control characters")]
    InvalidUserKey,
    /// A device name is blank, longer than 64 characters or holds control characters.
    #[error("invalid device name: it must be 1 to 64 characters without control characters")]
    InvalidDeviceName,
    /// A number of backup codes outside 1 to 100.
    #[error("invalid number of backup codes: {0} (expected 1 to 100)")]
    InvalidCodeCount(usize),
    /// A backup code chosen by an operator is not 8 to 32 symbols of the backup-code alphabet.
    #[error("invalid backup code: it must be 8 to 32 of 0-9 and a-z without i, l, o and u")]
    InvalidBackupCode,
    /// An email address that cannot be one.
    #[error("invalid email address")]
    InvalidEmailAddress,
    /// Users may not enrol a device of this kind by themselves.
    #[error("devices of kind {0:?} are not enrolled by their users")]
    NotSelfService(&'static str),
    /// The user has a device of this kind already, and the kind allows one per user.
    #[error("the user has a device of kind {0:?} already")]
    OnePerUser(&'static str),
    /// A database URL that names no supported database.
    #[error("invalid database URL: {0}")]
    InvalidDatabaseUrl(&'static str),
    /// An SMTP URL that cannot be used.
    #[error("invalid SMTP URL: {0}")]
    InvalidSmtpUrl(&'static str),
    /// A setting with an unusable value, an unknown key in a settings file, or a settings
    /// file that cannot be read or parsed (see `Settings::from_sources`).
    #[error("invalid setting {name}: {problem}")]
    InvalidSetting {
        /// The setting as its source spells it: the environment variable
        /// (`OTP_EMAIL_TOKEN_VALIDITY`) or the TOML key (`email.token_validity`); for a whole
        /// file, `file PATH`, or `TOML document` for TOML text that does not parse.
        name: String,
        /// What is wrong with it, quoting the value as written (settings hold no secrets).
        problem: String,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Database(String),
    /// A message could not be delivered (the detail is for operators, not for users).
    #[error("delivery failed: {0}")]
    Delivery(String),
    /// A device changed under a verification hundreds of times in a row.
    #[error("the device is changing too fast to verify; try again")]
    Contention,
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Self::Database(err.to_string())
    }
}
