//! Usernames: their normalisation (NFKC), their case-insensitive key, and their rules.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use unicode_security::MixedScript;

use super::{MAX_USERNAME_LEN, UserError};

/// `text` in Unicode normalisation form NFKC.
pub(super) fn nfkc(text: &str) -> String {
    text.nfkc().collect()
}

/// The case-insensitive form of a username, which carries the unique index: NFKC, then lower
/// case.
pub(super) fn username_key(username: &str) -> String {
    nfkc(username).to_lowercase()
}

/// A new username in the form it is stored in (NFKC), if it meets the rules: those of
/// [`check_username`], and no character that shows nothing or changes the direction of text
/// (zero-width spaces and joiners, soft hyphens, bidirectional marks, embeddings, overrides
/// and isolates), no private-use or unassigned code point, and letters of one script only, so
/// that the name cannot pass for another (`аdmin` with a Cyrillic `а` for `admin`).
///
/// # Errors
///
/// [`UserError::InvalidUsername`] saying which rule is broken.
pub fn normalize_username(username: &str) -> Result<String, UserError> {
    let username = nfkc(username);
    check_username(&username)?;
    for c in username.chars() {
        match c.general_category() {
            GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator => {
                return Err(UserError::InvalidUsername(
                    "it must not contain invisible or text-direction characters (such as \
                     zero-width spaces or right-to-left marks)",
                ));
            }
            GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
            | GeneralCategory::Surrogate => {
                return Err(UserError::InvalidUsername(
                    "it must not contain private-use or unassigned characters",
                ));
            }
            _ => {}
        }
    }
    if !username.as_str().is_single_script() {
        return Err(UserError::InvalidUsername(
            "it must not mix scripts (such as Latin and Cyrillic letters), which could make it \
             look like another user's name",
        ));
    }
    Ok(username)
}

/// Checks the username rules.
///
/// # Errors
///
/// [`UserError::InvalidUsername`] saying which rule is broken.
pub fn check_username(username: &str) -> Result<(), UserError> {
    if username.is_empty() {
        return Err(UserError::InvalidUsername("it must not be empty"));
    }
    if username.chars().count() > MAX_USERNAME_LEN {
        return Err(UserError::InvalidUsername(
            "it must be at most 64 characters long",
        ));
    }
    if username.chars().any(char::is_control) {
        return Err(UserError::InvalidUsername(
            "it must not contain control characters",
        ));
    }
    if username.trim() != username {
        return Err(UserError::InvalidUsername(
            "it must not begin or end with white space",
        ));
    }
    if username.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UserError::InvalidUsername(
            "it must not be made of digits only (those are user keys)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_rules() {
        for good in [
            "alice",
            "Alice Smith",
            "ünïcødé",
            "a",
            "x1",
            "1x",
            &"a".repeat(64),
        ] {
            check_username(good).unwrap_or_else(|err| panic!("{good:?}: {err}"));
        }
        for (bad, why) in [
            ("", "empty"),
            (&"a".repeat(65) as &str, "at most 64"),
            ("a\u{7}b", "control"),
            ("a\nb", "control"),
            (" alice", "white space"),
            ("alice\u{a0}", "white space"),
            ("42", "digits only"),
            ("007", "digits only"),
        ] {
            let err = check_username(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    /// Issue #10: lookalikes of a name are refused, compatibility forms become the name.
    #[test]
    fn new_usernames_are_normalised_and_lookalikes_refused() {
        for (typed, stored) in [
            ("alice", "alice"),
            ("Alice Smith", "Alice Smith"),
            ("ünïcødé", "ünïcødé"),
            ("u\u{308}ber", "\u{fc}ber"),
            ("\u{ff41}\u{ff44}\u{ff4d}\u{ff49}\u{ff4e}", "admin"),
            ("\u{fb01}sh", "fish"),
            (
                "\u{430}\u{434}\u{43c}\u{438}\u{43d}",
                "\u{430}\u{434}\u{43c}\u{438}\u{43d}",
            ),
            ("山田たろう", "山田たろう"),
            ("ｶﾀｶﾅ", "カタカナ"),
            ("jane.doe-42_x", "jane.doe-42_x"),
        ] {
            assert_eq!(
                normalize_username(typed).unwrap_or_else(|err| panic!("{typed:?}: {err}")),
                stored,
                "{typed:?}"
            );
        }
        for (bad, why) in [
            ("\u{430}dmin", "mix scripts"),
            ("admin\u{3b1}", "mix scripts"),
            ("ad\u{200b}min", "invisible"),
            ("ad\u{200c}min", "invisible"),
            ("ad\u{200d}min", "invisible"),
            ("ad\u{2060}min", "invisible"),
            ("\u{feff}admin", "invisible"),
            ("adm\u{ad}in", "invisible"),
            ("admin\u{200e}", "invisible"),
            ("\u{202e}nimda", "invisible"),
            ("ad\u{2066}min\u{2069}", "invisible"),
            ("ad\u{2028}min", "invisible"),
            ("ad\u{e000}min", "private-use"),
            ("ad\u{378}min", "unassigned"),
            ("ad\u{7}min", "control"),
            ("\u{ff11}\u{ff12}", "digits only"),
            ("\u{3000}admin", "white space"),
        ] {
            let err = normalize_username(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        // The key of a lookup is the stored name's key, whatever form was typed.
        assert_eq!(username_key("\u{ff21}DMIN"), username_key("admin"));
        assert_eq!(username_key("\u{ff43}arol"), "carol");
    }
}
