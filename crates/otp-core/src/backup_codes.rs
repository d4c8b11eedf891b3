//! Backup codes: generated from the OS random number generator in an alphabet without look-alike
//! characters, shown with a separator, normalised on input.

use std::fmt;

use zeroize::Zeroizing;

/// Crockford's base32 alphabet in lower case: no `i`, `l`, `o` or `u`, so nothing reads as
/// another character. Exactly 32 symbols, so each is 5 unbiased random bits.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Characters per generated backup code: 10 symbols of 5 bits, 50 bits of entropy (django-otp's
/// static tokens had 40).
pub const BACKUP_CODE_LEN: usize = 10;

/// Shortest code an operator may set by hand (`otp static-token add --token`): 8 symbols.
pub const MIN_BACKUP_CODE_LEN: usize = 8;

/// Longest code accepted: 32 symbols.
pub const MAX_BACKUP_CODE_LEN: usize = 32;

/// A freshly generated backup code. `Display` shows it as `xxxxx-xxxxx` for the user to write
/// down; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct BackupCode(Zeroizing<String>);

impl BackupCode {
    /// A random code from the operating system's random number generator.
    ///
    /// # Panics
    ///
    /// Only if the operating system cannot provide randomness.
    pub fn generate() -> Self {
        let mut random = Zeroizing::new([0u8; BACKUP_CODE_LEN]);
        getrandom::fill(random.as_mut())
            .expect("the operating system random number generator failed");
        let code = random
            .iter()
            .map(|byte| char::from(ALPHABET[usize::from(byte & 31)]))
            .collect();
        Self(Zeroizing::new(code))
    }

    /// A code an operator chose, normalised as user input is (see [`normalize_backup_code`]).
    pub fn parse(text: &str) -> Option<Self> {
        normalize_backup_code(text).map(Self)
    }

    /// The normalised form that is hashed and compared: lower-case symbols, no separator.
    pub fn normalized(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackupCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (first, second) = self.0.split_at(self.0.len() / 2);
        write!(f, "{first}-{second}")
    }
}

impl fmt::Debug for BackupCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BackupCode([redacted])")
    }
}

/// Normalises what a user typed as a backup code: case, spaces and dashes are ignored, and the
/// look-alikes `o`, `i` and `l` read as `0`, `1` and `1`; 8 to 32 symbols of the alphabet must
/// remain. Returns `None` for anything that cannot be a backup code, so that it is never
/// compared at all.
///
/// ```
/// use otp_core::normalize_backup_code;
///
/// assert_eq!(normalize_backup_code(" AB1CD-23EFG ").as_deref().map(|s| s.as_str()), Some("ab1cd23efg"));
/// assert_eq!(normalize_backup_code("abIcd 23efg").as_deref().map(|s| s.as_str()), Some("ab1cd23efg"));
/// assert!(normalize_backup_code("abcd-23e").is_none());     // 7 symbols
/// assert!(normalize_backup_code("abcdu23efg").is_none());   // `u` is not in the alphabet
/// ```
pub fn normalize_backup_code(input: &str) -> Option<Zeroizing<String>> {
    if input.len() > 4 * MAX_BACKUP_CODE_LEN {
        return None;
    }
    let mut out = Zeroizing::new(String::with_capacity(MAX_BACKUP_CODE_LEN));
    for ch in input.chars() {
        let symbol = match ch.to_ascii_lowercase() {
            ' ' | '-' | '\t' => continue,
            'o' => '0',
            'i' | 'l' => '1',
            c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
            _ => return None,
        };
        out.push(symbol);
    }
    (MIN_BACKUP_CODE_LEN..=MAX_BACKUP_CODE_LEN)
        .contains(&out.len())
        .then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_are_in_the_alphabet_and_survive_normalisation() {
        for _ in 0..200 {
            let code = BackupCode::generate();
            let shown = code.to_string();
            assert_eq!(shown.len(), BACKUP_CODE_LEN + 1);
            assert_eq!(&shown[5..6], "-");
            assert!(code.normalized().bytes().all(|b| ALPHABET.contains(&b)));
            assert_eq!(
                normalize_backup_code(&shown).unwrap().as_str(),
                code.normalized()
            );
            assert_eq!(
                normalize_backup_code(&shown.to_uppercase())
                    .unwrap()
                    .as_str(),
                code.normalized()
            );
        }
    }

    #[test]
    fn codes_differ_and_hide_in_debug() {
        let a = BackupCode::generate();
        let b = BackupCode::generate();
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "BackupCode([redacted])");
    }

    #[test]
    fn hostile_input_is_refused_without_panic() {
        let too_long = "a".repeat(MAX_BACKUP_CODE_LEN + 1);
        for bad in [
            "",
            "----------",
            "abc-23ef",
            &too_long,
            "abcde 23éfg",
            &"a".repeat(10_000),
            "ａbcde23efg",
        ] {
            assert!(normalize_backup_code(bad).is_none(), "{bad:?}");
        }
    }
}
