//! `DeviceId::from_str` on arbitrary text.
//!
//! Checks: no panic; a parsed id has a valid kind and a positive number, and its `Display` is
//! exactly the text it came from (the syntax has one spelling per id: no sign, no leading
//! zeros, no white space), so it parses back equal; `DeviceId::new` agrees with the parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otp_core::DeviceId;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(id) = text.parse::<DeviceId>() else {
        return;
    };
    assert!(id.number() > 0);
    assert!(!id.kind().is_empty() && id.kind().len() <= DeviceId::MAX_KIND_LEN);
    let shown = id.to_string();
    assert_eq!(shown, text, "a parsed id is shown differently");
    assert_eq!(shown.parse::<DeviceId>().unwrap(), id);
    assert_eq!(DeviceId::new(id.kind(), id.number()).unwrap(), id);
});
