//! The sealed-secret envelope (`v1:KEY_ID:HEX`, XChaCha20-Poly1305) and the other key-ring
//! parsers: `KeyRing::open` on arbitrary strings and on mutations of a real envelope, with a
//! fixed two-key ring; `KeyRing::envelope_key_id`, `KeyRing::parse` (the key file) and
//! `HashedCode::from_stored` on arbitrary text.
//!
//! Checks: no panic; nothing opens but the one envelope that was sealed, under its own context,
//! to its own plaintext: any text that opens must give the sealed plaintext under the sealed
//! context (the fuzzer cannot forge a Poly1305 tag, so anything else that opens is a bug in
//! the envelope's handling). A `HashedCode` that parses is written back as the same text.
//!
//! With `FUZZ_ENVELOPE_CANONICAL=1` in the environment the target also requires that only the
//! exact sealed text opens (no second spelling of the same envelope); see SECURITY.md.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use otp_core::{HashedCode, KeyRing};

const KEYS: &str = "1:0101010101010101010101010101010101010101010101010101010101010101\n\
                    2:0202020202020202020202020202020202020202020202020202020202020202\n";
const PLAINTEXT: &[u8] = b"the TOTP key of alice/totp/1";
const CONTEXT: &[u8] = b"otp:alice:totp";

struct Fixture {
    ring: KeyRing,
    sealed: String,
    canonical_only: bool,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let ring = KeyRing::parse(KEYS).unwrap();
        let sealed = ring.seal(PLAINTEXT, CONTEXT).unwrap();
        Fixture {
            ring,
            sealed,
            canonical_only: std::env::var_os("FUZZ_ENVELOPE_CANONICAL").is_some_and(|v| v == "1"),
        }
    })
}

/// The context an envelope is opened under.
#[derive(Debug, Arbitrary, Clone, Copy)]
enum Context {
    Sealed,
    Empty,
    /// Another user's.
    Other,
    /// The sealed context less its last byte.
    Prefix,
    /// The sealed context and one more byte.
    Extended,
}

impl Context {
    fn bytes(self) -> Vec<u8> {
        match self {
            Self::Sealed => CONTEXT.to_vec(),
            Self::Empty => Vec::new(),
            Self::Other => b"otp:mallory:totp".to_vec(),
            Self::Prefix => CONTEXT[..CONTEXT.len() - 1].to_vec(),
            Self::Extended => [CONTEXT, b"x"].concat(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Edit {
    /// Overwrites the byte at `at` (modulo the length).
    Set {
        at: u16,
        byte: u8,
    },
    Insert {
        at: u16,
        byte: u8,
    },
    Remove {
        at: u16,
    },
    /// ASCII upper-case of the byte at `at`.
    Upper {
        at: u16,
    },
    Truncate {
        len: u16,
    },
}

/// A 4-byte tag, then fixed-size fields, then the rest of the input as text (or as a list of
/// edits, each after a byte whose low bit is 1): see `fuzz/seeds.py`.
#[derive(Debug, Arbitrary)]
enum Input<'a> {
    /// An arbitrary envelope.
    Open {
        context: Context,
        envelope: &'a str,
    },
    /// The sealed envelope with edits.
    Mutate {
        context: Context,
        edits: Vec<Edit>,
    },
    KeyFile(&'a str),
    StoredHash(&'a str),
}

fn apply(envelope: &str, edits: &[Edit]) -> Vec<u8> {
    let mut bytes = envelope.as_bytes().to_vec();
    for edit in edits {
        let at = |at: u16, len: usize| usize::from(at) % len.max(1);
        match edit {
            Edit::Set { at: i, byte } if !bytes.is_empty() => {
                let i = at(*i, bytes.len());
                bytes[i] = *byte;
            }
            Edit::Insert { at: i, byte } => {
                let i = at(*i, bytes.len() + 1);
                bytes.insert(i, *byte);
            }
            Edit::Remove { at: i } if !bytes.is_empty() => {
                let i = at(*i, bytes.len());
                bytes.remove(i);
            }
            Edit::Upper { at: i } if !bytes.is_empty() => {
                let i = at(*i, bytes.len());
                bytes[i] = bytes[i].to_ascii_uppercase();
            }
            Edit::Truncate { len } => bytes.truncate(usize::from(*len)),
            _ => {}
        }
    }
    bytes
}

fn check_open(f: &Fixture, envelope: &str, context: &[u8]) {
    let _ = KeyRing::envelope_key_id(envelope);
    let Ok(plaintext) = f.ring.open(envelope, context) else {
        return;
    };
    assert_eq!(
        context, CONTEXT,
        "opened under another context: {envelope:?}"
    );
    assert_eq!(
        plaintext.as_slice(),
        PLAINTEXT,
        "opened to another plaintext: {envelope:?}"
    );
    if f.canonical_only {
        assert_eq!(
            envelope, f.sealed,
            "a second spelling of the sealed envelope opens"
        );
    }
}

fuzz_target!(|input: Input<'_>| {
    let f = fixture();
    match input {
        Input::Open { context, envelope } => check_open(f, envelope, &context.bytes()),
        Input::Mutate { context, edits } => {
            let bytes = apply(&f.sealed, &edits);
            if let Ok(envelope) = String::from_utf8(bytes) {
                check_open(f, &envelope, &context.bytes());
            }
        }
        Input::KeyFile(text) => {
            if let Ok(ring) = KeyRing::parse(text) {
                assert!(!ring.key_ids().is_empty());
                assert!(ring.key_ids().windows(2).all(|w| w[0] < w[1]));
                let sealed = ring.seal(PLAINTEXT, CONTEXT).unwrap();
                assert_eq!(ring.open(&sealed, CONTEXT).unwrap().as_slice(), PLAINTEXT);
            }
        }
        Input::StoredHash(text) => {
            if let Ok(hash) = HashedCode::from_stored(text) {
                let _ = hash.key_id();
                // The stored form is KEY_ID:HEX; it may be spelled differently (upper-case hex,
                // a leading zero in the id), so compare the parsed values.
                assert_eq!(HashedCode::from_stored(&hash.to_stored()).unwrap(), hash);
            }
        }
    }
});
