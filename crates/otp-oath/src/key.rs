//! HMAC keys with the inner and outer hash states computed once (RFC 2104), so that each code
//! costs exactly two compressions of the hash function: one for the inner hash of the 8-byte
//! counter, one for the outer hash of the inner digest.

use std::fmt;
use std::str::FromStr;

use sha1::Digest;
use zeroize::Zeroize;

use crate::error::BoundedText;
use crate::{Error, Secret};

/// The hash function under HMAC: SHA-1 (the RFC 4226 default, and what nearly every
/// authenticator app supports), SHA-256 or SHA-512 (RFC 6238).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC-SHA1, the default.
    #[default]
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl Algorithm {
    /// All algorithms, in the order of the RFCs.
    pub const ALL: [Algorithm; 3] = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];

    /// The name used in otpauth:// URIs: `SHA1`, `SHA256` or `SHA512`.
    pub fn uri_name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.uri_name())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// Accepts `SHA1`, `SHA256` and `SHA512` in any case, with or without a dash after `SHA`.
    fn from_str(name: &str) -> Result<Self, Error> {
        let upper = name.to_ascii_uppercase();
        match upper.as_str() {
            "SHA1" | "SHA-1" => Ok(Self::Sha1),
            "SHA256" | "SHA-256" => Ok(Self::Sha256),
            "SHA512" | "SHA-512" => Ok(Self::Sha512),
            _ => Err(Error::UnknownAlgorithm(BoundedText::new(name))),
        }
    }
}

const SHA1_IV: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
const SHA512_IV: [u64; 8] = [
    0x6a09e667f3bcc908,
    0xbb67ae8584caa73b,
    0x3c6ef372fe94f82b,
    0xa54ff53a5f1d36f1,
    0x510e527fade682d1,
    0x9b05688c2b3e6c1f,
    0x1f83d9abfb41bd6b,
    0x5be0cd19137e2179,
];

/// Inner and outer hash states after absorbing `key ^ ipad` and `key ^ opad`.
#[derive(Clone)]
enum PrecomputedState {
    Sha1 { inner: [u32; 5], outer: [u32; 5] },
    Sha256 { inner: [u32; 8], outer: [u32; 8] },
    Sha512 { inner: [u64; 8], outer: [u64; 8] },
}

/// An HMAC key for one secret and one algorithm, ready to compute HOTP values.
///
/// Building it costs two compressions (plus a hash of the secret if it is longer than the hash's
/// block); every [`HmacKey::truncated`] afterwards costs two more. The state is zeroized on drop
/// and redacted in `Debug`.
#[derive(Clone)]
pub struct HmacKey {
    state: PrecomputedState,
}

impl HmacKey {
    /// Precomputes the HMAC state of `secret` under `algorithm`.
    pub fn new(secret: &Secret, algorithm: Algorithm) -> Self {
        let key = secret.as_bytes();
        let state = match algorithm {
            Algorithm::Sha1 => {
                let mut block = pad_key::<64>(key, |k| sha1::Sha1::digest(k).to_vec());
                let inner = sha1_state(&block, 0x36);
                let outer = sha1_state(&block, 0x5c);
                block.zeroize();
                PrecomputedState::Sha1 { inner, outer }
            }
            Algorithm::Sha256 => {
                let mut block = pad_key::<64>(key, |k| sha2::Sha256::digest(k).to_vec());
                let inner = sha256_state(&block, 0x36);
                let outer = sha256_state(&block, 0x5c);
                block.zeroize();
                PrecomputedState::Sha256 { inner, outer }
            }
            Algorithm::Sha512 => {
                let mut block = pad_key::<128>(key, |k| sha2::Sha512::digest(k).to_vec());
                let inner = sha512_state(&block, 0x36);
                let outer = sha512_state(&block, 0x5c);
                block.zeroize();
                PrecomputedState::Sha512 { inner, outer }
            }
        };
        Self { state }
    }

    /// The algorithm this key was built for.
    pub fn algorithm(&self) -> Algorithm {
        match self.state {
            PrecomputedState::Sha1 { .. } => Algorithm::Sha1,
            PrecomputedState::Sha256 { .. } => Algorithm::Sha256,
            PrecomputedState::Sha512 { .. } => Algorithm::Sha512,
        }
    }

    /// HMAC of the 8-byte big-endian `counter`, dynamically truncated (RFC 4226 §5.3) to a
    /// 31-bit number: the offset is the low nibble of the digest's last byte, whatever the
    /// digest's size.
    pub fn truncated(&self, counter: u64) -> u32 {
        match &self.state {
            PrecomputedState::Sha1 { inner, outer } => {
                let mut digest = [0u8; 20];
                let words =
                    hmac_blocks_32(inner, outer, counter, &SHA1_OUTER_PADDING, sha1_compress);
                for (chunk, word) in digest.chunks_exact_mut(4).zip(&words) {
                    chunk.copy_from_slice(&word.to_be_bytes());
                }
                dynamic_truncation(&digest)
            }
            PrecomputedState::Sha256 { inner, outer } => {
                let mut digest = [0u8; 32];
                let words = hmac_blocks_32(
                    inner,
                    outer,
                    counter,
                    &SHA256_OUTER_PADDING,
                    sha256_compress,
                );
                for (chunk, word) in digest.chunks_exact_mut(4).zip(&words) {
                    chunk.copy_from_slice(&word.to_be_bytes());
                }
                dynamic_truncation(&digest)
            }
            PrecomputedState::Sha512 { inner, outer } => {
                let mut data = [0u8; 128];
                data[..8].copy_from_slice(&counter.to_be_bytes());
                let mut state = *inner;
                let block = padded_block(&INNER_PADDING_128, &data);
                sha2::block_api::compress512(&mut state, std::slice::from_ref(&block));

                let mut data = [0u8; 128];
                for (chunk, word) in data.chunks_exact_mut(8).zip(&state) {
                    chunk.copy_from_slice(&word.to_be_bytes());
                }
                let mut state = *outer;
                let block = padded_block(&SHA512_OUTER_PADDING, &data);
                sha2::block_api::compress512(&mut state, std::slice::from_ref(&block));

                let mut digest = [0u8; 64];
                for (chunk, word) in digest.chunks_exact_mut(8).zip(&state) {
                    chunk.copy_from_slice(&word.to_be_bytes());
                }
                dynamic_truncation(&digest)
            }
        }
    }
}

/// The SHA padding of a final block holding `data_len` bytes of a `total_len`-byte message:
/// the 0x80 terminator right after the data, the bit length in the last 8 bytes, zeros elsewhere.
const fn padding<const B: usize>(data_len: usize, total_len: u64) -> [u8; B] {
    let mut block = [0u8; B];
    block[data_len] = 0x80;
    let bits = (total_len * 8).to_be_bytes();
    let mut i = 0;
    while i < 8 {
        block[B - 8 + i] = bits[i];
        i += 1;
    }
    block
}

const INNER_PADDING_64: [u8; 64] = padding(8, 64 + 8);
const SHA1_OUTER_PADDING: [u8; 64] = padding(20, 64 + 20);
const SHA256_OUTER_PADDING: [u8; 64] = padding(32, 64 + 32);
const INNER_PADDING_128: [u8; 128] = padding(8, 128 + 8);
const SHA512_OUTER_PADDING: [u8; 128] = padding(64, 128 + 64);

/// `padding | data` byte by byte in one pass, so that the block is built in vector registers
/// and written with whole 16-byte stores, which the compression's 16-byte loads forward from.
/// (Zeroing the block and then patching the counter, the 0x80 and the length into it leaves
/// every 16-byte load spanning several narrower stores: store forwarding fails and each load
/// waits for those stores to retire and reach the cache.)
fn padded_block<const B: usize>(padding: &[u8; B], data: &[u8; B]) -> [u8; B] {
    std::array::from_fn(|i| padding[i] | data[i])
}

/// Runs the two compressions of HMAC over the 8-byte counter for a hash with 64-byte blocks and
/// 32-bit words (SHA-1, SHA-256); returns the outer state, whose first words are the HMAC.
fn hmac_blocks_32<const N: usize>(
    inner: &[u32; N],
    outer: &[u32; N],
    counter: u64,
    outer_padding: &[u8; 64],
    compress: fn(&mut [u32; N], &[u8; 64]),
) -> [u32; N] {
    let mut data = [0u8; 64];
    data[..8].copy_from_slice(&counter.to_be_bytes());
    let mut state = *inner;
    compress(&mut state, &padded_block(&INNER_PADDING_64, &data));

    let mut data = [0u8; 64];
    for (chunk, word) in data.chunks_exact_mut(4).zip(&state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    let mut state = *outer;
    compress(&mut state, &padded_block(outer_padding, &data));
    state
}

fn sha1_compress(state: &mut [u32; 5], block: &[u8; 64]) {
    sha1::block_api::compress(state, std::slice::from_ref(block));
}

fn sha256_compress(state: &mut [u32; 8], block: &[u8; 64]) {
    sha2::block_api::compress256(state, std::slice::from_ref(block));
}

fn dynamic_truncation(digest: &[u8]) -> u32 {
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let bytes = [
        digest[offset],
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ];
    u32::from_be_bytes(bytes) & 0x7fff_ffff
}

/// The key zero-padded to the hash's block size, hashed first if it is longer (RFC 2104 §2).
fn pad_key<const B: usize>(key: &[u8], hash: impl Fn(&[u8]) -> Vec<u8>) -> [u8; B] {
    let mut block = [0u8; B];
    if key.len() > B {
        let mut digest = hash(key);
        block[..digest.len()].copy_from_slice(&digest);
        digest.zeroize();
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    block
}

fn xor_block<const B: usize>(block: &[u8; B], pad: u8) -> [u8; B] {
    let mut out = *block;
    for byte in &mut out {
        *byte ^= pad;
    }
    out
}

fn sha1_state(block: &[u8; 64], pad: u8) -> [u32; 5] {
    let mut padded = xor_block(block, pad);
    let mut state = SHA1_IV;
    sha1_compress(&mut state, &padded);
    padded.zeroize();
    state
}

fn sha256_state(block: &[u8; 64], pad: u8) -> [u32; 8] {
    let mut padded = xor_block(block, pad);
    let mut state = SHA256_IV;
    sha256_compress(&mut state, &padded);
    padded.zeroize();
    state
}

fn sha512_state(block: &[u8; 128], pad: u8) -> [u64; 8] {
    let mut padded = xor_block(block, pad);
    let mut state = SHA512_IV;
    sha2::block_api::compress512(&mut state, &[padded]);
    padded.zeroize();
    state
}

impl Drop for HmacKey {
    fn drop(&mut self) {
        match &mut self.state {
            PrecomputedState::Sha1 { inner, outer } => {
                inner.zeroize();
                outer.zeroize();
            }
            PrecomputedState::Sha256 { inner, outer } => {
                inner.zeroize();
                outer.zeroize();
            }
            PrecomputedState::Sha512 { inner, outer } => {
                inner.zeroize();
                outer.zeroize();
            }
        }
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HmacKey({}, [redacted])", self.algorithm())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_parse_in_any_case() {
        for (name, algorithm) in [
            ("SHA1", Algorithm::Sha1),
            ("sha1", Algorithm::Sha1),
            ("SHA-256", Algorithm::Sha256),
            ("sha512", Algorithm::Sha512),
        ] {
            assert_eq!(name.parse::<Algorithm>().unwrap(), algorithm, "{name}");
        }
        let err = "MD5".parse::<Algorithm>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown algorithm \"MD5\" (expected SHA1, SHA256 or SHA512)"
        );
    }

    #[test]
    fn debug_is_redacted() {
        let key = HmacKey::new(&Secret::generate(), Algorithm::Sha256);
        assert_eq!(format!("{key:?}"), "HmacKey(SHA256, [redacted])");
    }
}
