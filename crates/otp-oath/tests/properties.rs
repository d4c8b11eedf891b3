//! Property tests: round trips of the encodings and URIs, agreement of the precomputed HMAC
//! state with the `hmac` crate, and verification that never panics on arbitrary input.

use hmac::{KeyInit, Mac};
use otp_oath::{
    Algorithm, Digits, HmacKey, OtpAuthUri, OtpKind, Secret, Totp, TotpParams, TotpWindow,
};
use proptest::prelude::*;

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::Sha1),
        Just(Algorithm::Sha256),
        Just(Algorithm::Sha512)
    ]
}

fn digits() -> impl Strategy<Value = Digits> {
    (6u32..=10).prop_map(|n| Digits::new(n).unwrap())
}

fn secret() -> impl Strategy<Value = Secret> {
    prop::collection::vec(any::<u8>(), 16..=64).prop_map(|b| Secret::from_bytes(&b).unwrap())
}

/// Label parts the format can carry: non-empty, no colon, no white space at either end.
fn label_part() -> impl Strategy<Value = String> {
    "[^:\\s][^:]{0,20}".prop_filter("no surrounding white space", |s| s.trim() == s)
}

fn reference_truncated(key: &[u8], algorithm: Algorithm, counter: u64) -> u32 {
    let digest = match algorithm {
        Algorithm::Sha1 => {
            let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(key).unwrap();
            mac.update(&counter.to_be_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Algorithm::Sha256 => {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
            mac.update(&counter.to_be_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        _ => {
            let mut mac = hmac::Hmac::<sha2::Sha512>::new_from_slice(key).unwrap();
            mac.update(&counter.to_be_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    };
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    u32::from_be_bytes(digest[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff
}

proptest! {
    #[test]
    fn precomputed_state_agrees_with_the_hmac_crate(
        key in prop::collection::vec(any::<u8>(), 1..300),
        algorithm in algorithm(),
        counter in any::<u64>(),
    ) {
        let secret = Secret::from_bytes_legacy_weak(&key).unwrap();
        let ours = HmacKey::new(&secret, algorithm).truncated(counter);
        prop_assert_eq!(ours, reference_truncated(&key, algorithm, counter));
    }

    #[test]
    fn base32_round_trips_in_any_case_and_spacing(secret in secret(), lower in any::<bool>()) {
        let encoded = secret.to_base32();
        let mut text: String = encoded.chars().collect::<Vec<_>>()
            .chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join(" ");
        if lower {
            text = text.to_lowercase();
        }
        prop_assert_eq!(Secret::from_base32(&text).unwrap(), secret.clone());
        prop_assert_eq!(Secret::from_hex(&secret.to_hex()).unwrap(), secret);
    }

    #[test]
    fn base32_parsing_never_panics(text in "\\PC{0,80}") {
        let _ = Secret::from_base32_legacy_weak(&text);
        let _ = Secret::from_hex_legacy_weak(&text);
    }

    #[test]
    fn uri_round_trips(
        secret in secret(),
        account in label_part(),
        issuer in prop::option::of(label_part()),
        algorithm in algorithm(),
        digits in digits(),
        totp in any::<bool>(),
        number in 1u64..,
        image in prop::option::of("https://[a-z]{1,10}\\.example/[ -~]{0,20}"),
    ) {
        let kind = if totp { OtpKind::Totp { period: number } } else { OtpKind::Hotp { counter: number } };
        let uri = OtpAuthUri {
            kind, issuer, account, secret, algorithm, digits, image,
        };
        let text = uri.to_uri().unwrap();
        prop_assert_eq!(OtpAuthUri::parse(&text).unwrap(), uri);
    }

    #[test]
    fn uri_parsing_never_panics(text in "otpauth://(totp|hotp)/\\PC{0,60}") {
        let _ = OtpAuthUri::parse_legacy_weak(&text);
    }

    #[test]
    fn the_current_code_verifies_and_arbitrary_tokens_never_panic(
        secret in secret(),
        algorithm in algorithm(),
        digits in digits(),
        step in 1u64..=300,
        t0 in -1_000_000i64..1_000_000,
        time in 1_000_000i64..4_000_000_000,
        tolerance in 0u16..4,
        token in "\\PC{0,12}",
    ) {
        let params = TotpParams { algorithm, digits, step, t0 };
        let totp = Totp::new(&secret, params).unwrap();
        let window = TotpWindow::with_tolerance(tolerance);
        let code = totp.code_at(time).unwrap().to_string();
        let matched = totp.verify(&code, time, window).unwrap();
        // The earliest matching step wins; it lies in the window and regenerates the code.
        let current = totp.time_step(time).unwrap();
        prop_assert!(matched.step <= current && current - matched.step <= u64::from(tolerance));
        prop_assert_eq!(totp.code_for_step(matched.step).to_string(), code);
        let _ = totp.verify(&token, time, window);
    }
}
