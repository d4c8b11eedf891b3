//! Device ids as users, sessions and URLs see them: `KIND/NUMBER`, for example `totp/42`.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The stable id of a device: its kind's name and its row number, written `totp/42`.
///
/// The grammar is strict, so that an id from a session, a form or a URL is either exactly right
/// or refused with a reason (django-otp accepted `' 1 '` and `'+1'` and crashed on ids naming
/// other models):
///
/// ```text
/// device-id = kind "/" number
/// kind      = lower-letter *31( lower-letter / digit / "_" )
/// number    = non-zero-digit *18digit          ; 1 ..= 2^63 - 1
/// ```
///
/// ```
/// use otp_core::DeviceId;
///
/// let id: DeviceId = "totp/42".parse()?;
/// assert_eq!((id.kind(), id.number()), ("totp", 42));
/// assert_eq!(id.to_string(), "totp/42");
///
/// for bad in ["", "totp", "totp/", "totp/0", "totp/+1", "totp/ 1", "TOTP/1", "otp_totp.totpdevice/1", "a/b/1"] {
///     assert!(bad.parse::<DeviceId>().is_err(), "{bad:?}");
/// }
/// # Ok::<(), otp_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId {
    kind: String,
    number: i64,
}

impl DeviceId {
    /// Longest kind name.
    pub const MAX_KIND_LEN: usize = 32;

    /// An id from a kind name and a row number.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidDeviceId`] if the kind name breaks the grammar or the number is not
    /// positive.
    pub fn new(kind: &str, number: i64) -> Result<Self, Error> {
        check_kind_name(kind)?;
        if number <= 0 {
            return Err(Error::InvalidDeviceId("the number must be positive"));
        }
        Ok(Self {
            kind: kind.to_owned(),
            number,
        })
    }

    /// The kind's name, for example `totp`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The row number.
    pub fn number(&self) -> i64 {
        self.number
    }
}

/// Checks a kind name against the grammar of [`DeviceId`].
pub(crate) fn check_kind_name(kind: &str) -> Result<(), Error> {
    let mut bytes = kind.bytes();
    match bytes.next() {
        None => return Err(Error::InvalidDeviceId("the kind is empty")),
        Some(b'a'..=b'z') => {}
        Some(_) => {
            return Err(Error::InvalidDeviceId(
                "the kind must start with a lower-case letter",
            ));
        }
    }
    if kind.len() > DeviceId::MAX_KIND_LEN {
        return Err(Error::InvalidDeviceId(
            "the kind is longer than 32 characters",
        ));
    }
    if !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Err(Error::InvalidDeviceId(
            "the kind may hold only a-z, 0-9 and _",
        ));
    }
    Ok(())
}

impl FromStr for DeviceId {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let (kind, number) = text
            .split_once('/')
            .ok_or(Error::InvalidDeviceId("expected KIND/NUMBER"))?;
        check_kind_name(kind)?;
        let digits_ok = !number.is_empty()
            && number.len() <= 19
            && number.bytes().all(|b| b.is_ascii_digit())
            && !number.starts_with('0');
        let number = digits_ok
            .then(|| number.parse::<i64>().ok())
            .flatten()
            .ok_or(Error::InvalidDeviceId(
                "the number must be 1 to 9223372036854775807 without sign or leading zeros",
            ))?;
        Self::new(kind, number)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_why() {
        let cases = [
            ("", "expected KIND/NUMBER"),
            ("nonsense", "expected KIND/NUMBER"),
            ("/1", "the kind is empty"),
            ("Totp/1", "the kind must start with a lower-case letter"),
            (
                "otp_totp.totpdevice/1",
                "the kind may hold only a-z, 0-9 and _",
            ),
            (
                "totp/abc",
                "the number must be 1 to 9223372036854775807 without sign or leading zeros",
            ),
            (
                "totp/01",
                "the number must be 1 to 9223372036854775807 without sign or leading zeros",
            ),
            (
                "totp/9223372036854775808",
                "the number must be 1 to 9223372036854775807 without sign or leading zeros",
            ),
            (
                "totp/x/1",
                "the number must be 1 to 9223372036854775807 without sign or leading zeros",
            ),
            (
                "totp/0",
                "the number must be 1 to 9223372036854775807 without sign or leading zeros",
            ),
        ];
        for (text, reason) in cases {
            assert_eq!(
                text.parse::<DeviceId>(),
                Err(Error::InvalidDeviceId(reason)),
                "{text:?}"
            );
        }
        assert_eq!(
            DeviceId::new("totp", 0),
            Err(Error::InvalidDeviceId("the number must be positive"))
        );
        let long = format!("{}/1", "a".repeat(33));
        assert!(long.parse::<DeviceId>().is_err());
    }

    #[test]
    fn largest_number_round_trips() {
        let id: DeviceId = "backup_codes/9223372036854775807".parse().unwrap();
        assert_eq!(id.number(), i64::MAX);
        assert_eq!(id.to_string().parse::<DeviceId>().unwrap(), id);
    }
}
