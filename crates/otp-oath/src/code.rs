//! Codes: their length, their display with leading zeros, strict parsing of what a user typed,
//! and the constant-time search for a match among candidates.

use std::fmt;

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::Error;

/// The number of decimal digits of a code: 6 to 10.
///
/// RFC 4226 requires at least 6; a truncated HMAC value has 31 bits, so more than 10 digits
/// would add nothing but leading zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digits(u8);

impl Digits {
    /// Six digits, the default of every authenticator app.
    pub const SIX: Digits = Digits(6);
    /// Eight digits.
    pub const EIGHT: Digits = Digits(8);

    /// Checks that `digits` lies in 6..=10.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidDigits`] otherwise.
    pub fn new(digits: u32) -> Result<Self, Error> {
        match digits {
            6..=10 => Ok(Self(digits as u8)),
            _ => Err(Error::InvalidDigits(digits)),
        }
    }

    /// The number of digits.
    pub fn get(self) -> u32 {
        u32::from(self.0)
    }

    fn modulus(self) -> u64 {
        10u64.pow(self.get())
    }
}

impl Default for Digits {
    fn default() -> Self {
        Self::SIX
    }
}

impl fmt::Display for Digits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A one-time code. `Display` shows it with its leading zeros (`045675`, never `45675`);
/// `Debug` hides the digits so that a code never reaches a log by accident.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Code {
    value: u32,
    digits: Digits,
}

impl Code {
    pub(crate) fn from_truncated(truncated: u32, digits: Digits) -> Self {
        let value = (u64::from(truncated) % digits.modulus()) as u32;
        Self { value, digits }
    }

    /// The code as a number (leading zeros lost).
    pub fn value(self) -> u32 {
        self.value
    }

    /// The number of digits the code is shown with.
    pub fn digits(self) -> Digits {
        self.digits
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:0width$}", self.value, width = self.digits.0 as usize)
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code([redacted; {} digits])", self.digits)
    }
}

/// Parses what a user typed: surrounding white space is trimmed, then exactly `digits` ASCII
/// digits must remain. Signs, separators, other scripts' digits and extra leading zeros are all
/// refused (django-otp accepted them through Python's `int()`).
pub(crate) fn parse_token(token: &str, digits: Digits) -> Option<u64> {
    let token = token.trim();
    if token.len() != digits.0 as usize || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        token
            .bytes()
            .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0')),
    )
}

/// Compares `token` with the code of every candidate, in constant time per candidate, and
/// returns the first candidate that matched. All candidates are computed even after a match,
/// so the time taken does not tell which one matched.
pub(crate) fn first_match(
    token: u64,
    candidates: impl Iterator<Item = u64>,
    code_of: impl Fn(u64) -> u64,
) -> Option<u64> {
    let mut found = Choice::from(0);
    let mut matched = 0u64;
    for candidate in candidates {
        let is_match = code_of(candidate).ct_eq(&token);
        matched.conditional_assign(&candidate, is_match & !found);
        found |= is_match;
    }
    bool::from(found).then_some(matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_checked() {
        assert_eq!(Digits::new(5), Err(Error::InvalidDigits(5)));
        assert_eq!(Digits::new(11), Err(Error::InvalidDigits(11)));
        for n in 6..=10 {
            assert_eq!(Digits::new(n).unwrap().get(), n);
        }
    }

    #[test]
    fn codes_keep_leading_zeros_and_hide_in_debug() {
        let code = Code::from_truncated(1_000_045_675, Digits::SIX);
        assert_eq!(code.to_string(), "045675");
        assert_eq!(code.value(), 45675);
        assert_eq!(format!("{code:?}"), "Code([redacted; 6 digits])");
        let ten = Code::from_truncated(12_345, Digits::new(10).unwrap());
        assert_eq!(ten.to_string(), "0000012345");
    }

    #[test]
    fn token_parsing_is_strict() {
        let six = Digits::SIX;
        assert_eq!(parse_token("154567", six), Some(154_567));
        assert_eq!(parse_token(" 045675\n", six), Some(45_675));
        for bad in [
            "",
            "15456",
            "1545670",
            "00154567",
            "+154567",
            "154_567",
            "154 567",
            "15456a",
            "١٥٤٥٦٧",
            "１５４５６７",
            "-15456",
        ] {
            assert_eq!(parse_token(bad, six), None, "{bad:?}");
        }
        assert_eq!(
            parse_token("9999999999", Digits::new(10).unwrap()),
            Some(9_999_999_999)
        );
    }

    #[test]
    fn first_match_returns_the_earliest_matching_candidate() {
        let code_of = |c: u64| c % 3;
        assert_eq!(first_match(1, [3, 4, 7].into_iter(), code_of), Some(4));
        assert_eq!(first_match(2, [3, 6, 9].into_iter(), code_of), None);
        assert_eq!(first_match(0, std::iter::empty(), code_of), None);
    }
}
