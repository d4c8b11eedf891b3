//! The `next` parameter: only same-site relative paths are followed, so a login can never be
//! turned into an open redirect.

/// `next` if it is a path on this site (`/…`, not `//host`, no backslash, no control
/// characters, no scheme), else `None`.
///
/// ```
/// use otp_axum::safe_next;
///
/// assert_eq!(safe_next("/account?tab=2"), Some("/account?tab=2"));
/// for bad in ["https://evil.example/", "//evil.example", "/\\evil.example", "evil", "/a\nb", ""] {
///     assert_eq!(safe_next(bad), None, "{bad:?}");
/// }
/// ```
pub fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.len() <= 2048
        && !next.chars().any(|c| c.is_control() || c.is_whitespace());
    ok.then_some(next)
}
