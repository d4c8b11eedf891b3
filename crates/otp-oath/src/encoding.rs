//! Base32 (RFC 4648, the alphabet of otpauth:// URIs) and hex, written for secrets: every buffer
//! that holds key material is zeroized, and errors name positions, never characters.

use zeroize::{Zeroize, Zeroizing};

use crate::Error;

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Encodes bytes as upper-case base32 without padding.
pub(crate) fn base32_encode(bytes: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(bytes.len().div_ceil(5) * 8));
    let mut buffer: u64 = 0;
    let mut bits = 0u32;
    for &byte in bytes {
        buffer = (buffer << 8) | u64::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(
                BASE32_ALPHABET[((buffer >> bits) & 31) as usize],
            ));
        }
    }
    if bits > 0 {
        out.push(char::from(
            BASE32_ALPHABET[((buffer << (5 - bits)) & 31) as usize],
        ));
    }
    buffer.zeroize();
    out
}

/// Decodes base32, ignoring ASCII case, white space, dashes between groups and trailing `=`
/// padding. Leftover bits of the last symbol are ignored, as authenticator apps do.
pub(crate) fn base32_decode(text: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() * 5 / 8));
    let mut buffer: u64 = 0;
    let mut bits = 0u32;
    let mut symbols = 0usize;
    let mut padding_started = false;
    for (position, ch) in text.char_indices() {
        if ch.is_ascii_whitespace() || ch == '-' {
            continue;
        }
        if ch == '=' {
            padding_started = true;
            continue;
        }
        if padding_started {
            // A symbol after padding: the padding was not at the end.
            return Err(Error::InvalidBase32Character { position });
        }
        let value = match ch {
            'A'..='Z' => ch as u64 - 'A' as u64,
            'a'..='z' => ch as u64 - 'a' as u64,
            '2'..='7' => ch as u64 - '2' as u64 + 26,
            _ => return Err(Error::InvalidBase32Character { position }),
        };
        symbols += 1;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    buffer.zeroize();
    // 1, 3 and 6 symbols past a whole group of 8 encode no whole byte.
    if matches!(symbols % 8, 1 | 3 | 6) {
        return Err(Error::InvalidBase32Length { symbols });
    }
    Ok(out)
}

/// Encodes bytes as lower-case hex.
pub(crate) fn hex_encode(bytes: &[u8]) -> Zeroizing<String> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Zeroizing::new(String::with_capacity(bytes.len() * 2));
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 15)]));
    }
    out
}

/// Decodes hex in either case; surrounding white space is ignored.
pub(crate) fn hex_decode(text: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    let trimmed = text.trim();
    let offset = text.len() - text.trim_start().len();
    let digits = trimmed.chars().count();
    let mut out = Zeroizing::new(Vec::with_capacity(trimmed.len() / 2));
    let mut high: Option<u8> = None;
    for (index, ch) in trimmed.char_indices() {
        let Some(nibble) = ch.to_digit(16) else {
            return Err(Error::InvalidHexCharacter {
                position: offset + index,
            });
        };
        let nibble = nibble as u8;
        match high.take() {
            None => high = Some(nibble),
            Some(h) => out.push((h << 4) | nibble),
        }
    }
    if high.is_some() {
        return Err(Error::OddHexLength { digits });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 section 10 test vectors.
    const RFC4648: [(&str, &str); 7] = [
        ("", ""),
        ("f", "MY"),
        ("fo", "MZXQ"),
        ("foo", "MZXW6"),
        ("foob", "MZXW6YQ"),
        ("fooba", "MZXW6YTB"),
        ("foobar", "MZXW6YTBOI"),
    ];

    #[test]
    fn base32_matches_rfc4648_section_10() {
        for (plain, encoded) in RFC4648 {
            assert_eq!(
                base32_encode(plain.as_bytes()).as_str(),
                encoded,
                "{plain:?}"
            );
            assert_eq!(
                base32_decode(encoded).unwrap().as_slice(),
                plain.as_bytes(),
                "{encoded:?}"
            );
        }
    }

    #[test]
    fn base32_tolerates_case_spaces_dashes_and_padding() {
        let expected = b"foobar".to_vec();
        for input in [
            "mzxw6ytboi",
            "MZXW 6YTB OI",
            "mzxw-6ytb-oi",
            "MZXW6YTBOI======",
            "  MZXW6YTBOI\n",
        ] {
            assert_eq!(
                base32_decode(input).unwrap().as_slice(),
                &expected[..],
                "{input:?}"
            );
        }
    }

    #[test]
    fn base32_rejects_bad_symbols_and_lengths() {
        assert_eq!(
            base32_decode("MZXW1"),
            Err(Error::InvalidBase32Character { position: 4 })
        );
        assert_eq!(
            base32_decode("MZ=XW"),
            Err(Error::InvalidBase32Character { position: 3 })
        );
        assert_eq!(
            base32_decode("MZX"),
            Err(Error::InvalidBase32Length { symbols: 3 })
        );
        assert_eq!(
            base32_decode("MZXW6YTBO"),
            Err(Error::InvalidBase32Length { symbols: 9 })
        );
        assert!(base32_decode("MZXWé").is_err());
    }

    #[test]
    fn hex_round_trips_and_names_bad_positions() {
        assert_eq!(hex_encode(&[0x2a, 0xbb, 0x01]).as_str(), "2abb01");
        assert_eq!(
            hex_decode(" 2ABB01 ").unwrap().as_slice(),
            &[0x2a, 0xbb, 0x01]
        );
        assert_eq!(
            hex_decode("2abx"),
            Err(Error::InvalidHexCharacter { position: 3 })
        );
        assert_eq!(hex_decode("abc"), Err(Error::OddHexLength { digits: 3 }));
        assert_eq!(
            hex_decode("0x12"),
            Err(Error::InvalidHexCharacter { position: 1 })
        );
    }
}
