//! Shared secrets: generated from the OS random number generator, parsed from base32 or hex,
//! redacted in `Debug`, zeroized on drop.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::{Error, encoding};

/// The shared secret of an HOTP or TOTP credential.
///
/// RFC 4226 section 4 requires at least 128 bits and recommends 160, which is what
/// [`Secret::generate`] makes. Shorter secrets, still common in old deployments (80-bit secrets
/// written as 16 base32 characters), are accepted only by the constructors whose names say
/// `legacy_weak`, so that accepting one is always a visible decision.
///
/// The bytes are zeroized when the secret is dropped, `Debug` never shows them, and equality is
/// compared in constant time.
///
/// ```
/// use otp_oath::Secret;
///
/// let secret = Secret::generate();
/// assert_eq!(secret.len(), 20);
/// assert_eq!(format!("{secret:?}"), "Secret([redacted; 20 bytes])");
///
/// let parsed = Secret::from_base32(&secret.to_base32())?;
/// assert_eq!(parsed, secret);
///
/// assert!(Secret::from_base32("JBSWY3DPEHPK3PXP").is_err()); // 80 bits: too short
/// let legacy = Secret::from_base32_legacy_weak("JBSWY3DPEHPK3PXP")?;
/// assert_eq!(legacy.len(), 10);
/// # Ok::<(), otp_oath::Error>(())
/// ```
#[derive(Clone)]
pub struct Secret {
    bytes: Box<[u8]>,
}

impl Secret {
    /// Length of a generated secret: 160 bits, the size of an HMAC-SHA1 output (RFC 4226 §4).
    pub const DEFAULT_LEN: usize = 20;
    /// Shortest secret the strict constructors accept: 128 bits (RFC 4226 §4).
    pub const MIN_LEN: usize = 16;
    /// Longest secret any constructor accepts.
    pub const MAX_LEN: usize = 1024;

    /// Generates a 20-byte secret from the operating system's random number generator.
    ///
    /// # Panics
    ///
    /// Panics only if the operating system cannot provide randomness at all, in which case no
    /// secret can safely be made.
    pub fn generate() -> Self {
        Self::generate_with_len(Self::DEFAULT_LEN).expect("20 bytes is a valid secret length")
    }

    /// Generates a secret of `len` bytes from the operating system's random number generator.
    ///
    /// # Errors
    ///
    /// [`Error::SecretTooShort`] below [`Secret::MIN_LEN`], [`Error::SecretTooLong`] above
    /// [`Secret::MAX_LEN`].
    ///
    /// # Panics
    ///
    /// Panics only if the operating system cannot provide randomness.
    pub fn generate_with_len(len: usize) -> Result<Self, Error> {
        check_len(len, Self::MIN_LEN)?;
        let mut bytes = vec![0u8; len].into_boxed_slice();
        getrandom::fill(&mut bytes).expect("the operating system random number generator failed");
        Ok(Self { bytes })
    }

    /// Takes raw bytes of at least 128 bits.
    ///
    /// # Errors
    ///
    /// [`Error::SecretEmpty`], [`Error::SecretTooShort`] or [`Error::SecretTooLong`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        check_len(bytes.len(), Self::MIN_LEN)?;
        Ok(Self {
            bytes: bytes.into(),
        })
    }

    /// Takes raw bytes of any non-zero length, even below 128 bits. Only for existing
    /// credentials that cannot be re-issued.
    ///
    /// # Errors
    ///
    /// [`Error::SecretEmpty`] or [`Error::SecretTooLong`].
    pub fn from_bytes_legacy_weak(bytes: &[u8]) -> Result<Self, Error> {
        check_len(bytes.len(), 1)?;
        Ok(Self {
            bytes: bytes.into(),
        })
    }

    /// Parses base32 (RFC 4648) as authenticator apps show it: any case, spaces and dashes
    /// between groups, `=` padding or none. At least 128 bits.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBase32Character`], [`Error::InvalidBase32Length`], or a length error.
    pub fn from_base32(text: &str) -> Result<Self, Error> {
        Self::from_bytes(&encoding::base32_decode(text)?)
    }

    /// Parses base32 like [`Secret::from_base32`] but accepts secrets below 128 bits.
    ///
    /// # Errors
    ///
    /// As [`Secret::from_base32`], without the minimum length.
    pub fn from_base32_legacy_weak(text: &str) -> Result<Self, Error> {
        Self::from_bytes_legacy_weak(&encoding::base32_decode(text)?)
    }

    /// Parses hex digits in either case (django-otp stores keys this way). At least 128 bits.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidHexCharacter`], [`Error::OddHexLength`], or a length error.
    pub fn from_hex(text: &str) -> Result<Self, Error> {
        Self::from_bytes(&encoding::hex_decode(text)?)
    }

    /// Parses hex like [`Secret::from_hex`] but accepts secrets below 128 bits.
    ///
    /// # Errors
    ///
    /// As [`Secret::from_hex`], without the minimum length.
    pub fn from_hex_legacy_weak(text: &str) -> Result<Self, Error> {
        Self::from_bytes_legacy_weak(&encoding::hex_decode(text)?)
    }

    /// The secret as upper-case base32 without padding, as otpauth:// URIs carry it. The string
    /// is zeroized when dropped.
    pub fn to_base32(&self) -> Zeroizing<String> {
        encoding::base32_encode(&self.bytes)
    }

    /// The secret as lower-case hex. The string is zeroized when dropped.
    pub fn to_hex(&self) -> Zeroizing<String> {
        encoding::hex_encode(&self.bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always `false`: no constructor makes an empty secret.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whether the secret is below the 128 bits of RFC 4226 (only possible through a
    /// `legacy_weak` constructor).
    pub fn is_weak(&self) -> bool {
        self.bytes.len() < Self::MIN_LEN
    }
}

fn check_len(len: usize, min: usize) -> Result<(), Error> {
    if len == 0 {
        Err(Error::SecretEmpty)
    } else if len < min {
        Err(Error::SecretTooShort {
            bits: len * 8,
            min_bits: min * 8,
        })
    } else if len > Secret::MAX_LEN {
        Err(Error::SecretTooLong {
            bytes: len,
            max_bytes: Secret::MAX_LEN,
        })
    } else {
        Ok(())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([redacted; {} bytes])", self.bytes.len())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.bytes.ct_eq(&other.bytes).into()
    }
}

impl Eq for Secret {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_bytes() {
        let secret = Secret::from_hex("2a2bbba1092ffdd25a328ad1a0a5f5d61d7aacc4").unwrap();
        let shown = format!("{secret:?} {secret:#?}");
        assert_eq!(
            shown,
            "Secret([redacted; 20 bytes]) Secret([redacted; 20 bytes])"
        );
        assert!(!shown.contains("FIV3"));
        assert!(!shown.contains("2a2b"));
    }

    #[test]
    fn generated_secrets_are_random_and_strong() {
        let a = Secret::generate();
        let b = Secret::generate();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        assert!(!a.is_weak());
        assert_eq!(Secret::generate_with_len(32).unwrap().len(), 32);
        assert_eq!(
            Secret::generate_with_len(10),
            Err(Error::SecretTooShort {
                bits: 80,
                min_bits: 128
            })
        );
    }

    #[test]
    fn length_rules_have_named_errors() {
        assert_eq!(Secret::from_bytes(&[]), Err(Error::SecretEmpty));
        assert_eq!(Secret::from_bytes_legacy_weak(&[]), Err(Error::SecretEmpty));
        assert_eq!(
            Secret::from_bytes(&[7; 15]),
            Err(Error::SecretTooShort {
                bits: 120,
                min_bits: 128
            })
        );
        assert!(Secret::from_bytes(&[7; 16]).is_ok());
        assert!(Secret::from_bytes_legacy_weak(&[7; 1]).unwrap().is_weak());
        assert_eq!(
            Secret::from_bytes(&[7; 1025]),
            Err(Error::SecretTooLong {
                bytes: 1025,
                max_bytes: 1024
            })
        );
    }

    #[test]
    fn django_otp_fixture_key_parses_as_hex_and_base32() {
        let from_hex = Secret::from_hex("2a2bbba1092ffdd25a328ad1a0a5f5d61d7aacc4").unwrap();
        let from_b32 = Secret::from_base32("FIV3XIIJF765EWRSRLI2BJPV2YOXVLGE").unwrap();
        assert_eq!(from_hex, from_b32);
        assert_eq!(
            from_hex.to_base32().as_str(),
            "FIV3XIIJF765EWRSRLI2BJPV2YOXVLGE"
        );
        assert_eq!(
            from_b32.to_hex().as_str(),
            "2a2bbba1092ffdd25a328ad1a0a5f5d61d7aacc4"
        );
    }
}
