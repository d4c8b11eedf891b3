//! HOTP: counter-based one-time passwords (RFC 4226).

use crate::code::{first_match, parse_token};
use crate::{Algorithm, Code, Digits, HmacKey, Secret};

/// Parameters of an HOTP credential. The defaults are RFC 4226's: SHA-1 and 6 digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HotpParams {
    /// Hash function under HMAC.
    pub algorithm: Algorithm,
    /// Digits per code.
    pub digits: Digits,
}

impl HotpParams {
    /// Sets the algorithm.
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets the number of digits.
    pub fn with_digits(mut self, digits: Digits) -> Self {
        self.digits = digits;
        self
    }
}

/// An HOTP generator and verifier for one secret, with its HMAC state precomputed.
///
/// ```
/// use otp_oath::{Hotp, HotpParams, Secret};
///
/// // RFC 4226 Appendix D.
/// let secret = Secret::from_bytes(b"12345678901234567890")?;
/// let hotp = Hotp::new(&secret, HotpParams::default());
/// assert_eq!(hotp.code(0).to_string(), "755224");
///
/// // The device expects counter 2 and tolerates 5 missed codes: the code of counter 4 matches,
/// // and the caller stores 5 as the next counter.
/// assert_eq!(hotp.verify("338314", 2, 5), Some(4));
/// assert_eq!(hotp.verify("755224", 2, 5), None); // counter 0 lies behind the window
/// assert_eq!(hotp.verify("not a code", 0, 5), None);
/// # Ok::<(), otp_oath::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Hotp {
    key: HmacKey,
    digits: Digits,
}

impl Hotp {
    /// Precomputes the HMAC state of `secret` for `params`.
    pub fn new(secret: &Secret, params: HotpParams) -> Self {
        Self {
            key: HmacKey::new(secret, params.algorithm),
            digits: params.digits,
        }
    }

    /// The parameters this generator was built with.
    pub fn params(&self) -> HotpParams {
        HotpParams {
            algorithm: self.key.algorithm(),
            digits: self.digits,
        }
    }

    /// The code for `counter`.
    pub fn code(&self, counter: u64) -> Code {
        Code::from_truncated(self.key.truncated(counter), self.digits)
    }

    /// Looks for `token` among the codes of `counter ..= counter + tolerance` (django-otp's
    /// window: `tolerance + 1` candidates) and returns the first counter that matches. The
    /// caller must store `matched + 1` as the next counter so that no code is accepted twice.
    ///
    /// A token that is not exactly the right number of ASCII digits (after trimming white space)
    /// matches nothing.
    pub fn verify(&self, token: &str, counter: u64, tolerance: u16) -> Option<u64> {
        let token = parse_token(token, self.digits)?;
        let last = counter.saturating_add(u64::from(tolerance));
        first_match(token, counter..=last, |c| u64::from(self.code(c).value()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_hotp() -> Hotp {
        Hotp::new(
            &Secret::from_bytes(b"12345678901234567890").unwrap(),
            HotpParams::default(),
        )
    }

    #[test]
    fn verify_window_is_inclusive_and_returns_the_counter() {
        let hotp = rfc_hotp();
        assert_eq!(hotp.verify("287082", 0, 0), None);
        assert_eq!(hotp.verify("287082", 0, 1), Some(1));
        assert_eq!(hotp.verify("287082", 1, 0), Some(1));
        assert_eq!(hotp.verify("287082", 2, 5), None);
    }

    #[test]
    fn window_at_the_end_of_the_counter_space_does_not_overflow() {
        let hotp = rfc_hotp();
        let code = hotp.code(u64::MAX).to_string();
        assert_eq!(hotp.verify(&code, u64::MAX - 1, 5), Some(u64::MAX));
    }

    #[test]
    fn django_otp_fixture_codes() {
        // reference §8: HOTP key d2e8…, counters 0..5.
        let secret = Secret::from_hex("d2e8a68036f68960b1c30532bb6c56da5934d879").unwrap();
        let hotp = Hotp::new(&secret, HotpParams::default());
        let codes: Vec<String> = (0..6).map(|c| hotp.code(c).to_string()).collect();
        assert_eq!(
            codes,
            ["782373", "313268", "307722", "855853", "507718", "024144"]
        );
    }
}
