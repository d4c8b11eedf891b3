//! Secrets parsed from text: `Secret::from_base32_legacy_weak` and `from_hex_legacy_weak` (and
//! their strict twins) on arbitrary text.
//!
//! Checks: no panic; what parses re-encodes (`to_base32`, `to_hex`) to text that parses back to
//! the same secret, and whose re-encoding is itself stable; the strict parsers accept exactly
//! the weak parsers' secrets of at least 128 bits; lengths stay within 1..=1024 bytes; a hex
//! secret has half as many bytes as the text has hex digits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otp_oath::{Error, Secret};

fn check(text: &str, weak: Result<Secret, Error>, strict: Result<Secret, Error>) -> Option<Secret> {
    match (&weak, &strict) {
        (Ok(w), Ok(s)) => assert_eq!(w, s, "{text:?}"),
        (Ok(w), Err(Error::SecretTooShort { .. })) => assert!(w.is_weak()),
        (Ok(w), Err(e)) => panic!("weak parse gave {} bytes, strict failed: {e}", w.len()),
        (Err(w), Err(s)) => assert_eq!(w, s, "{text:?}"),
        (Err(e), Ok(_)) => panic!("strict parse succeeded, weak failed: {e}"),
    }
    let secret = weak.ok()?;
    assert!((1..=Secret::MAX_LEN).contains(&secret.len()));
    assert_eq!(secret.is_weak(), secret.len() < Secret::MIN_LEN);
    Some(secret)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Some(secret) = check(
        text,
        Secret::from_base32_legacy_weak(text),
        Secret::from_base32(text),
    ) {
        let encoded = secret.to_base32();
        let again = Secret::from_base32_legacy_weak(&encoded).expect("to_base32 parses back");
        assert_eq!(again, secret);
        assert_eq!(again.to_base32(), encoded);
        assert!(
            encoded
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        );
    }

    if let Some(secret) = check(
        text,
        Secret::from_hex_legacy_weak(text),
        Secret::from_hex(text),
    ) {
        let digits = text.trim().chars().count();
        assert_eq!(digits, secret.len() * 2, "{text:?}");
        let encoded = secret.to_hex();
        let again = Secret::from_hex_legacy_weak(&encoded).expect("to_hex parses back");
        assert_eq!(again, secret);
        assert_eq!(again.to_hex(), encoded);
        assert_eq!(encoded.as_str(), text.trim().to_ascii_lowercase());
    }
});
