//! `OtpAuthUri::parse_legacy_weak` (and the strict `parse`) on arbitrary text.
//!
//! Checks: no panic; whatever the strict parser accepts the weak one accepts equally; a URI
//! that parses and that `to_uri` can write (it refuses issuers and accounts a label cannot
//! carry) parses back equal, and writes again to the same text; `to_totp` / `to_hotp` work
//! on what parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otp_oath::{OtpAuthUri, OtpKind};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let weak = OtpAuthUri::parse_legacy_weak(text);
    if let Ok(strict) = OtpAuthUri::parse(text) {
        assert_eq!(
            weak.as_ref().ok(),
            Some(&strict),
            "strict parsed, weak differs"
        );
    }
    let Ok(uri) = weak else {
        return;
    };

    match uri.kind {
        OtpKind::Totp { period } => {
            assert!(period > 0);
            let totp = uri.to_totp().expect("a parsed TOTP URI makes a Totp");
            let _ = totp.code_at(1_700_000_000);
        }
        OtpKind::Hotp { counter } => {
            assert!(uri.to_totp().is_err());
            let _ = uri.to_hotp().code(counter);
        }
    }

    let Ok(written) = uri.to_uri() else {
        return;
    };
    let again = OtpAuthUri::parse_legacy_weak(&written).unwrap_or_else(|e| {
        panic!(
            "to_uri wrote {:?}, which does not parse: {e}",
            written.as_str()
        )
    });
    assert_eq!(again, uri, "round trip through {:?}", written.as_str());
    assert_eq!(again.to_uri().unwrap(), written, "to_uri is not stable");
});
