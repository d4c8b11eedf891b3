//! Inputs found by the fuzz targets in `fuzz/` (see SECURITY.md, "Fuzzing"), kept as tests.

use otp_core::KeyRing;

const KEYS: &str = "1:0101010101010101010101010101010101010101010101010101010101010101\n\
                    2:0202020202020202020202020202020202020202020202020202020202020202\n";
const PLAINTEXT: &[u8] = b"the TOTP key of alice/totp/1";
const CONTEXT: &[u8] = b"otp:alice:totp";

/// A sealed envelope whose hex body has a pair `0X` (a byte below 16) at a byte boundary, so
/// that the `+X` spelling can be tried, and the index of that pair in the envelope.
fn sealed_with_small_byte(ring: &KeyRing) -> (String, usize) {
    for _ in 0..1000 {
        let sealed = ring.seal(PLAINTEXT, CONTEXT).unwrap();
        let body_start = "v1:2:".len();
        let hex = &sealed[body_start..];
        let pair = (0..hex.len())
            .step_by(2)
            .find(|&i| hex.as_bytes()[i] == b'0');
        if let Some(pair) = pair {
            return (sealed, body_start + pair);
        }
    }
    unreachable!("1000 envelopes without a byte below 16");
}

/// Other spellings of one envelope: the key id with a leading zero or a plus sign, the hex body
/// in upper case, a hex pair `0X` written `+X`. Found by `sealed_envelope` with
/// `FUZZ_ENVELOPE_CANONICAL=1` (crash input, base64 `AAAAQAAAAAABNDMzMwMAMA==`: insert `0`
/// before the key id, giving `v1:02:…`).
fn second_spellings(sealed: &str, small_pair: usize) -> Vec<(&'static str, String)> {
    let (prefix, body) = sealed.split_at("v1:2:".len());
    let mut plus = sealed.to_owned();
    plus.replace_range(small_pair..=small_pair, "+");
    vec![
        ("leading zero in the key id", format!("v1:02:{body}")),
        ("plus sign on the key id", format!("v1:+2:{body}")),
        (
            "upper-case hex",
            format!("{prefix}{}", body.to_ascii_uppercase()),
        ),
        ("a hex pair written +X", plus),
    ]
}

/// What holds today and must keep holding: another spelling of an envelope never opens to
/// anything but the sealed plaintext, and never under another context.
#[test]
fn second_spellings_open_to_nothing_else() {
    let ring = KeyRing::parse(KEYS).unwrap();
    let (sealed, small_pair) = sealed_with_small_byte(&ring);
    for (what, envelope) in second_spellings(&sealed, small_pair) {
        if let Ok(plaintext) = ring.open(&envelope, CONTEXT) {
            assert_eq!(plaintext.as_slice(), PLAINTEXT, "{what}: {envelope}");
        }
        assert!(
            ring.open(&envelope, b"otp:mallory:totp").is_err(),
            "{what}: {envelope}"
        );
    }
}

/// Fuzz finding: an envelope has more than one spelling that opens, because the key id is
/// parsed with `u32::from_str` and the hex body with `u8::from_str_radix` (which take a `+`
/// sign, leading zeros and upper case). Not exploitable (the bytes are the same, the tag
/// still holds), but a sealed value's text is not unique, so comparing envelopes as strings
/// is wrong. Proposed fix: `parse_envelope` accepts only `[1-9][0-9]*` for the key id and
/// `unhex` only the lower-case digits `0-9a-f`, as `hex` writes them.
#[test]
fn an_envelope_has_one_spelling() {
    let ring = KeyRing::parse(KEYS).unwrap();
    let (sealed, small_pair) = sealed_with_small_byte(&ring);
    assert_eq!(ring.open(&sealed, CONTEXT).unwrap().as_slice(), PLAINTEXT);
    let opened: Vec<_> = second_spellings(&sealed, small_pair)
        .into_iter()
        .filter(|(_, envelope)| ring.open(envelope, CONTEXT).is_ok())
        .collect();
    assert!(opened.is_empty(), "other spellings open: {opened:#?}");
}
