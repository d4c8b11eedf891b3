//! `otp_core::normalize_backup_code` (and `BackupCode::parse`) on arbitrary text: what a user
//! types into the backup-code field.
//!
//! Checks: no panic; a normalised code has 8 to 32 symbols of the code alphabet; normalising
//! is idempotent and ignores ASCII case; a parsed code's display (two halves joined by `-`)
//! normalises back to it; input longer than 128 bytes is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otp_core::{BackupCode, MAX_BACKUP_CODE_LEN, MIN_BACKUP_CODE_LEN, normalize_backup_code};

const ALPHABET: &str = "0123456789abcdefghjkmnpqrstvwxyz";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let normalized = normalize_backup_code(text);
    assert_eq!(
        normalize_backup_code(&text.to_ascii_uppercase()),
        normalized,
        "case matters"
    );
    assert_eq!(
        BackupCode::parse(text).map(|c| c.normalized().to_owned()),
        normalized.as_ref().map(|n| n.as_str().to_owned())
    );
    let Some(code) = normalized else {
        return;
    };
    assert!(text.len() <= 4 * MAX_BACKUP_CODE_LEN);
    assert!((MIN_BACKUP_CODE_LEN..=MAX_BACKUP_CODE_LEN).contains(&code.len()));
    assert!(
        code.chars().all(|c| ALPHABET.contains(c)),
        "{:?}",
        code.as_str()
    );
    assert_eq!(
        normalize_backup_code(&code),
        Some(code.clone()),
        "not idempotent"
    );
    let shown = BackupCode::parse(text).unwrap().to_string();
    assert_eq!(normalize_backup_code(&shown), Some(code));
});
