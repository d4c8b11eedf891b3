//! The built-in device kinds.

pub(crate) mod email;
pub(crate) mod hotp;
pub(crate) mod static_codes;
pub(crate) mod totp;

pub use email::EmailKind;
pub use hotp::HotpKind;
pub use static_codes::StaticKind;
pub use totp::TotpKind;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Error;

/// Reads a kind's state; a state that does not fit is corrupt stored data.
pub(crate) fn read_state<T: DeserializeOwned>(state: &Value) -> Result<T, Error> {
    T::deserialize(state)
        .map_err(|_| Error::CorruptStoredSecret("a device state does not fit its kind"))
}

/// Writes a kind's state.
pub(crate) fn write_state<T: Serialize>(state: &T) -> Value {
    serde_json::to_value(state).expect("kind states serialize to JSON")
}
