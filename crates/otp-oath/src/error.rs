//! The one error type of this crate.

use std::fmt;

/// Everything that can go wrong in `otp-oath`.
///
/// A wrong one-time code is **not** an error: verification returns `None` for it. `Error` is for
/// input that cannot be used at all (a malformed secret, an out-of-range parameter, a broken URI).
/// No variant ever carries a secret or a submitted code, so errors are safe to log and to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The secret has no bytes at all.
    #[error("the secret is empty")]
    SecretEmpty,
    /// The secret is shorter than the 128 bits required by RFC 4226 section 4.
    #[error(
        "the secret has {bits} bits, fewer than the {min_bits} required \
         (use the legacy_weak constructor to accept it anyway)"
    )]
    SecretTooShort {
        /// Bits in the secret that was given.
        bits: usize,
        /// Bits required.
        min_bits: usize,
    },
    /// The secret is longer than any OATH deployment uses.
    #[error("the secret has {bytes} bytes, more than the maximum of {max_bytes}")]
    SecretTooLong {
        /// Bytes in the secret that was given.
        bytes: usize,
        /// Largest accepted length.
        max_bytes: usize,
    },
    /// A base32 secret holds a character outside the RFC 4648 alphabet.
    #[error("invalid base32 character at position {position} (expected A-Z and 2-7)")]
    InvalidBase32Character {
        /// Zero-based position of the character in the input.
        position: usize,
    },
    /// A base32 secret has a length that no byte string encodes to.
    #[error("invalid base32 length: {symbols} symbols cannot encode whole bytes")]
    InvalidBase32Length {
        /// Number of base32 symbols, without spaces and padding.
        symbols: usize,
    },
    /// A hex secret holds a character outside `0-9a-fA-F`.
    #[error("invalid hex character at position {position}")]
    InvalidHexCharacter {
        /// Zero-based position of the character in the input.
        position: usize,
    },
    /// A hex secret has an odd number of digits.
    #[error("invalid hex length: {digits} digits is odd")]
    OddHexLength {
        /// Number of hex digits.
        digits: usize,
    },
    /// The number of digits of a code is outside 6 to 10.
    #[error("digits must be between 6 and 10, got {0}")]
    InvalidDigits(u32),
    /// The TOTP time step is zero.
    #[error("the TOTP time step must be at least 1 second")]
    ZeroTimeStep,
    /// The requested time lies before the TOTP epoch `t0`, where no time step is defined.
    #[error("time {time} lies before the TOTP epoch t0 = {t0}")]
    TimeBeforeEpoch {
        /// The Unix time asked for.
        time: i64,
        /// The epoch of the TOTP parameters.
        t0: i64,
    },
    /// The name of a hash algorithm is not SHA1, SHA256 or SHA512.
    #[error("unknown algorithm {0:?} (expected SHA1, SHA256 or SHA512)")]
    UnknownAlgorithm(BoundedText),
    /// An otpauth:// URI is malformed; `field` names the part that is wrong.
    #[error("invalid otpauth URI: {field}: {problem}")]
    InvalidUri {
        /// The part of the URI that is wrong: `scheme`, `type`, `label`, or a parameter name.
        field: &'static str,
        /// What is wrong with it.
        problem: UriProblem,
    },
    /// A QR code could not be rendered.
    #[error("cannot render QR code: {0}")]
    Qr(&'static str),
}

/// What is wrong with one field of an otpauth:// URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UriProblem {
    /// A required field is absent.
    Missing,
    /// A parameter appears more than once.
    Duplicate,
    /// Percent-encoding is broken or the text is not UTF-8.
    BadEncoding,
    /// The value is not one this crate accepts (the message of the field's own check follows).
    Invalid(&'static str),
}

impl fmt::Display for UriProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("missing"),
            Self::Duplicate => f.write_str("given more than once"),
            Self::BadEncoding => f.write_str("bad percent-encoding or not UTF-8"),
            Self::Invalid(why) => f.write_str(why),
        }
    }
}

/// A short piece of user input kept for an error message, cut to 32 characters so that an error
/// never carries a large payload.
#[derive(Clone, PartialEq, Eq)]
pub struct BoundedText(String);

impl BoundedText {
    const MAX_CHARS: usize = 32;

    pub(crate) fn new(text: &str) -> Self {
        let mut kept: String = text.chars().take(Self::MAX_CHARS).collect();
        if text.chars().nth(Self::MAX_CHARS).is_some() {
            kept.push('…');
        }
        Self(kept)
    }

    /// The kept text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BoundedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

pub(crate) fn uri_error(field: &'static str, problem: UriProblem) -> Error {
    Error::InvalidUri { field, problem }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_text_cuts_long_input() {
        let long = "x".repeat(100);
        assert_eq!(BoundedText::new(&long).as_str().chars().count(), 33);
        assert_eq!(BoundedText::new("SHA3").as_str(), "SHA3");
    }

    #[test]
    fn messages_name_the_problem() {
        let err = uri_error("digits", UriProblem::Invalid("must be between 6 and 10"));
        assert_eq!(
            err.to_string(),
            "invalid otpauth URI: digits: must be between 6 and 10"
        );
        assert_eq!(
            Error::SecretTooShort {
                bits: 80,
                min_bits: 128
            }
            .to_string(),
            "the secret has 80 bits, fewer than the 128 required (use the legacy_weak constructor to accept it anyway)"
        );
    }
}
