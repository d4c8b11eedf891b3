//! The application key ring: OTP keys sealed at rest with XChaCha20-Poly1305, and backup and
//! email codes kept only as keyed hashes (HMAC-SHA256).
//!
//! Every application key has a numeric id. New seals and hashes use the newest key (the highest
//! id); older keys stay in the ring so that rows made under them still open, until
//! `otp keys rotate` has re-sealed them. Each application key is never used directly: a sealing
//! key and a hashing key are derived from it with HMAC-SHA256 under fixed labels.
//!
//! ```
//! use otp_core::KeyRing;
//!
//! let ring = KeyRing::generate();
//! let sealed = ring.seal(b"my otp key", b"user:alice/totp")?;
//! assert!(sealed.starts_with("v1:1:"));
//! assert_eq!(ring.open(&sealed, b"user:alice/totp")?.as_slice(), b"my otp key");
//!
//! // Bound to its context: the same envelope under another user's context does not open.
//! assert!(ring.open(&sealed, b"user:mallory/totp").is_err());
//! # Ok::<(), otp_core::Error>(())
//! ```

use std::fmt;
use std::path::Path;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::Error;

type HmacSha256 = Hmac<Sha256>;

const SEAL_LABEL: &[u8] = b"otp-core sealing key v1";
const HASH_LABEL: &[u8] = b"otp-core code hashing key v1";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// One application key and the two keys derived from it.
struct ApplicationKey {
    id: u32,
    seal_key: Zeroizing<[u8; 32]>,
    hash_key: Zeroizing<[u8; 32]>,
}

impl ApplicationKey {
    fn new(id: u32, master: &[u8; 32]) -> Self {
        Self {
            id,
            seal_key: derive(master, SEAL_LABEL),
            hash_key: derive(master, HASH_LABEL),
        }
    }
}

fn derive(master: &[u8; 32], label: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(master).expect("HMAC takes any key length");
    mac.update(label);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// The application's keys, newest last. `Debug` shows the key ids only.
pub struct KeyRing {
    keys: Vec<ApplicationKey>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<u32> = self.keys.iter().map(|k| k.id).collect();
        write!(f, "KeyRing {{ key_ids: {ids:?}, [redacted] }}")
    }
}

/// A code kept as a keyed hash, with the id of the key that made it. Stored as
/// `KEY_ID:HEX_DIGEST`.
#[derive(Clone, PartialEq, Eq)]
pub struct HashedCode {
    key_id: u32,
    digest: [u8; 32],
}

impl fmt::Debug for HashedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HashedCode(key {}, [redacted])", self.key_id)
    }
}

impl HashedCode {
    /// The stored form, `KEY_ID:HEX_DIGEST`.
    pub fn to_stored(&self) -> String {
        format!("{}:{}", self.key_id, hex(&self.digest))
    }

    /// Reads the stored form.
    ///
    /// # Errors
    ///
    /// [`Error::CorruptStoredSecret`] if it is not `KEY_ID:64 hex digits`.
    pub fn from_stored(text: &str) -> Result<Self, Error> {
        let corrupt = Error::CorruptStoredSecret("a code hash is not KEY_ID:HEX");
        let (id, digest) = text.split_once(':').ok_or(corrupt.clone())?;
        let key_id = stored_key_id(id).ok_or(corrupt.clone())?;
        let bytes = unhex(digest).ok_or(corrupt.clone())?;
        let digest = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| corrupt)?;
        Ok(Self { key_id, digest })
    }

    /// The id of the key that made the hash.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }
}

impl KeyRing {
    /// The longest a key file may be.
    const MAX_FILE_LEN: u64 = 64 * 1024;

    /// A ring with one fresh random key, id 1.
    ///
    /// # Panics
    ///
    /// Only if the operating system cannot provide randomness.
    pub fn generate() -> Self {
        let mut master = Zeroizing::new([0u8; 32]);
        getrandom::fill(master.as_mut())
            .expect("the operating system random number generator failed");
        Self {
            keys: vec![ApplicationKey::new(1, &master)],
        }
    }

    /// Reads keys written as `ID:HEX` (64 hex digits, 256 bits), separated by commas, white
    /// space or new lines; `#` starts a comment that runs to the end of the line. This is the
    /// format of `OTP_SECRET_KEY` and of key files.
    ///
    /// ```
    /// use otp_core::KeyRing;
    ///
    /// let one = "1:".to_owned() + &"ab".repeat(32);
    /// let two = "2:".to_owned() + &"cd".repeat(32);
    /// let ring = KeyRing::parse(&format!("# keys\n{one}\n{two} # newest"))?;
    /// assert_eq!(ring.current_key_id(), 2);
    /// assert_eq!(ring.key_ids(), vec![1, 2]);
    ///
    /// let err = KeyRing::parse("1:abcd").unwrap_err();
    /// assert_eq!(err.to_string(), "invalid application key: key 1 must be 64 hex digits (256 bits)");
    /// # Ok::<(), otp_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidApplicationKey`] naming the problem: no key, a malformed entry, a short
    /// key, an id given twice. The message never contains key material.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut keys: Vec<ApplicationKey> = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            for entry in line.split(|c: char| c == ',' || c.is_whitespace()) {
                if entry.is_empty() {
                    continue;
                }
                let (id, key) = entry.split_once(':').ok_or_else(|| {
                    Error::InvalidApplicationKey("each key must be written ID:HEX".into())
                })?;
                let id: u32 = id.parse().ok().filter(|&id| id > 0).ok_or_else(|| {
                    Error::InvalidApplicationKey(
                        "a key id must be a number from 1 to 4294967295".into(),
                    )
                })?;
                // Key text may use either case; stored data uses lower case only.
                let mut bytes = unhex(&key.to_ascii_lowercase()).unwrap_or_default();
                let master = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                    Error::InvalidApplicationKey(format!(
                        "key {id} must be 64 hex digits (256 bits)"
                    ))
                });
                bytes.zeroize();
                let master = Zeroizing::new(master?);
                if keys.iter().any(|k| k.id == id) {
                    return Err(Error::InvalidApplicationKey(format!(
                        "key id {id} is given twice"
                    )));
                }
                keys.push(ApplicationKey::new(id, &master));
            }
        }
        if keys.is_empty() {
            return Err(Error::InvalidApplicationKey("no key given".into()));
        }
        keys.sort_by_key(|k| k.id);
        Ok(Self { keys })
    }

    /// Reads a key file (see [`KeyRing::parse`] for the format).
    ///
    /// # Errors
    ///
    /// [`Error::KeyFile`] if the file cannot be read, or what [`KeyRing::parse`] returns.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let key_file_error = |problem: String| Error::KeyFile {
            path: path.display().to_string(),
            problem,
        };
        let metadata = std::fs::metadata(path).map_err(|e| key_file_error(e.to_string()))?;
        if metadata.len() > Self::MAX_FILE_LEN {
            return Err(key_file_error("the file is larger than 64 KiB".into()));
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| key_file_error(e.to_string()))?,
        );
        Self::parse(&text)
    }

    /// Reads the key file at `path`, or creates it with one fresh key (file mode 0600) if it
    /// does not exist yet. This is what the embedded default does beside its database.
    ///
    /// Creation is atomic: the key is written and synced to a temporary file that is then
    /// hard-linked into place, which fails if another process got there first (its key is then
    /// read instead). So concurrent first starts agree on one key, and no process ever reads a
    /// half-written file.
    ///
    /// # Errors
    ///
    /// [`Error::KeyFile`] if the file cannot be read or created.
    pub fn load_or_create(path: &Path) -> Result<Self, Error> {
        use std::io::Write;

        let key_file_error = |problem: String| Error::KeyFile {
            path: path.display().to_string(),
            problem,
        };
        if path.exists() {
            return Self::load(path);
        }
        let mut master = Zeroizing::new([0u8; 32]);
        getrandom::fill(master.as_mut())
            .expect("the operating system random number generator failed");
        let text = Zeroizing::new(format!(
            "# otp application keys: ID:HEX, newest last. Keep this file secret and backed up:\n\
             # without it no OTP key in the database can be opened.\n1:{}\n",
            hex(master.as_ref())
        ));
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).expect("the operating system random number generator failed");
        let mut temporary_name = path.file_name().unwrap_or_default().to_owned();
        temporary_name.push(format!(".{}.tmp", hex(&suffix)));
        let temporary = path.with_file_name(temporary_name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&temporary).and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        });
        let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
        let _ = std::fs::remove_file(&temporary);
        match linked {
            Ok(()) => Ok(Self {
                keys: vec![ApplicationKey::new(1, &master)],
            }),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(err) => Err(key_file_error(err.to_string())),
        }
    }

    /// The key ring for a database, by the rules of the embedded default:
    ///
    /// 1. keys given as text (`OTP_SECRET_KEY`), if any;
    /// 2. else the key file given (`OTP_KEY_FILE`), which must exist;
    /// 3. else, for SQLite, the key file beside the database (`otp.db.key` for `otp.db`),
    ///    created with one fresh key on first use;
    /// 4. else (PostgreSQL) an error: several servers share that database, so its key must be
    ///    given explicitly, never made up by whichever server starts first.
    ///
    /// # Errors
    ///
    /// [`Error::MissingApplicationKey`] in case 4, or what [`KeyRing::parse`],
    /// [`KeyRing::load`] and [`KeyRing::load_or_create`] return.
    pub fn for_database(
        database: &crate::DatabaseUrl,
        keys_text: Option<&str>,
        key_file: Option<&Path>,
    ) -> Result<Self, Error> {
        if let Some(text) = keys_text {
            return Self::parse(text);
        }
        if let Some(path) = key_file {
            return Self::load(path);
        }
        match database.default_key_file() {
            Some(path) => Self::load_or_create(&path),
            None => Err(Error::MissingApplicationKey),
        }
    }

    /// The id of the key new seals and hashes use.
    pub fn current_key_id(&self) -> u32 {
        self.current().id
    }

    /// The ids of all keys, oldest first.
    pub fn key_ids(&self) -> Vec<u32> {
        self.keys.iter().map(|k| k.id).collect()
    }

    fn current(&self) -> &ApplicationKey {
        self.keys.last().expect("a key ring is never empty")
    }

    fn key(&self, id: u32) -> Result<&ApplicationKey, Error> {
        self.keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(Error::UnknownKeyId(id))
    }

    /// Seals `plaintext` under the newest key, bound to `context` (associated data: it is not
    /// stored, and the envelope opens only under the same context). The envelope is
    /// `v1:KEY_ID:HEX(nonce ‖ ciphertext ‖ tag)` with a random 192-bit nonce.
    ///
    /// # Errors
    ///
    /// [`Error::CorruptStoredSecret`] only if the cipher refuses (it does not for inputs below
    /// 256 GiB).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<String, Error> {
        let key = self.current();
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the operating system random number generator failed");
        let cipher = cipher(key);
        let aad = associated_data(key.id, context);
        let ciphertext = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::CorruptStoredSecret("the cipher refused to seal"))?;
        let mut body = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&ciphertext);
        Ok(format!("v1:{}:{}", key.id, hex(&body)))
    }

    /// Opens an envelope made by [`KeyRing::seal`] under any key of the ring.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownKeyId`] if the ring lacks the envelope's key;
    /// [`Error::CorruptStoredSecret`] if the envelope is malformed, was altered, or belongs to
    /// another context.
    pub fn open(&self, envelope: &str, context: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        let (key_id, body) = parse_envelope(envelope)?;
        let key = self.key(key_id)?;
        let cipher = cipher(key);
        let aad = associated_data(key_id, context);
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).expect("the envelope was checked to hold a nonce");
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| {
                Error::CorruptStoredSecret(
                    "a sealed secret does not open: altered, or another context",
                )
            })
    }

    /// The id of the key an envelope was sealed under.
    ///
    /// # Errors
    ///
    /// [`Error::CorruptStoredSecret`] if the envelope is malformed.
    pub fn envelope_key_id(envelope: &str) -> Result<u32, Error> {
        parse_envelope(envelope).map(|(id, _)| id)
    }

    /// Hashes a code under the newest key, bound to `context` (for example the device id), so
    /// that the same code of two devices hashes differently.
    pub fn hash_code(&self, context: &[u8], code: &[u8]) -> HashedCode {
        let key = self.current();
        HashedCode {
            key_id: key.id,
            digest: code_digest(key, context, code),
        }
    }

    /// Whether `code` is the one behind `hashed`, compared in constant time.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownKeyId`] if the ring lacks the key that made the hash.
    pub fn verify_code(
        &self,
        hashed: &HashedCode,
        context: &[u8],
        code: &[u8],
    ) -> Result<bool, Error> {
        let key = self.key(hashed.key_id)?;
        Ok(code_digest(key, context, code).ct_eq(&hashed.digest).into())
    }
}

fn cipher(key: &ApplicationKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new_from_slice(key.seal_key.as_ref()).expect("sealing keys are 32 bytes")
}

fn code_digest(key: &ApplicationKey, context: &[u8], code: &[u8]) -> [u8; 32] {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key.hash_key.as_ref())
        .expect("HMAC takes any key length");
    mac.update(&(context.len() as u64).to_be_bytes());
    mac.update(context);
    mac.update(code);
    mac.finalize().into_bytes().into()
}

fn associated_data(key_id: u32, context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(8 + context.len());
    aad.extend_from_slice(b"v1");
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad.extend_from_slice(context);
    aad
}

fn parse_envelope(envelope: &str) -> Result<(u32, Vec<u8>), Error> {
    let corrupt = Error::CorruptStoredSecret("a sealed secret is not v1:KEY_ID:HEX");
    let rest = envelope.strip_prefix("v1:").ok_or(corrupt.clone())?;
    let (id, body) = rest.split_once(':').ok_or(corrupt.clone())?;
    let key_id = stored_key_id(id).ok_or(corrupt.clone())?;
    let body = unhex(body).ok_or(corrupt.clone())?;
    if body.len() < NONCE_LEN + TAG_LEN {
        return Err(corrupt);
    }
    Ok((key_id, body))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex only, as [`hex`] writes it: stored data has exactly one spelling.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

/// A key id as stored: `[1-9][0-9]*` within `u32`, so that it has one spelling.
fn stored_key_id(text: &str) -> Option<u32> {
    let canonical =
        !text.is_empty() && !text.starts_with('0') && text.bytes().all(|b| b.is_ascii_digit());
    canonical.then(|| text.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(text: &str) -> KeyRing {
        KeyRing::parse(text).unwrap()
    }

    fn key_line(id: u32, byte: u8) -> String {
        format!("{id}:{}", hex(&[byte; 32]))
    }

    #[test]
    fn rotation_seals_with_the_newest_and_opens_the_older() {
        let old = ring(&key_line(1, 1));
        let sealed_old = old.seal(b"secret", b"ctx").unwrap();
        let both = ring(&format!("{}, {}", key_line(1, 1), key_line(2, 2)));
        assert_eq!(
            both.open(&sealed_old, b"ctx").unwrap().as_slice(),
            b"secret"
        );
        let sealed_new = both.seal(b"secret", b"ctx").unwrap();
        assert_eq!(KeyRing::envelope_key_id(&sealed_new).unwrap(), 2);
        assert_eq!(
            old.open(&sealed_new, b"ctx").unwrap_err(),
            Error::UnknownKeyId(2)
        );
    }

    #[test]
    fn altered_envelopes_do_not_open() {
        let ring = KeyRing::generate();
        let sealed = ring.seal(b"secret", b"ctx").unwrap();
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(matches!(
            ring.open(&flipped, b"ctx"),
            Err(Error::CorruptStoredSecret(_))
        ));
        for bad in ["", "v1:1:", "v2:1:00", "v1:x:00", "v1:1:zz", "v1:1:0011"] {
            assert!(
                matches!(ring.open(bad, b"ctx"), Err(Error::CorruptStoredSecret(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn two_seals_of_the_same_secret_differ() {
        let ring = KeyRing::generate();
        assert_ne!(
            ring.seal(b"s", b"c").unwrap(),
            ring.seal(b"s", b"c").unwrap()
        );
    }

    #[test]
    fn code_hashes_are_keyed_and_bound_to_their_context() {
        let a = ring(&key_line(1, 1));
        let b = ring(&key_line(1, 2));
        let hashed = a.hash_code(b"static/1", b"abcde23456");
        assert!(a.verify_code(&hashed, b"static/1", b"abcde23456").unwrap());
        assert!(!a.verify_code(&hashed, b"static/2", b"abcde23456").unwrap());
        assert!(!a.verify_code(&hashed, b"static/1", b"abcde23457").unwrap());
        assert!(!b.verify_code(&hashed, b"static/1", b"abcde23456").unwrap());
        let stored = hashed.to_stored();
        assert_eq!(HashedCode::from_stored(&stored).unwrap(), hashed);
        assert!(!format!("{hashed:?}").contains(&stored[2..10]));
        for bad in ["", "1", "x:00", "1:00"] {
            assert!(HashedCode::from_stored(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_text_errors_never_show_key_material() {
        let cases = [
            ("", "no key given"),
            ("# only a comment", "no key given"),
            ("abcdef", "each key must be written ID:HEX"),
            ("0:00", "a key id must be a number from 1 to 4294967295"),
            ("1:abcdef0123", "key 1 must be 64 hex digits (256 bits)"),
        ];
        for (text, message) in cases {
            let err = KeyRing::parse(text).unwrap_err();
            assert_eq!(
                err,
                Error::InvalidApplicationKey(message.into()),
                "{text:?}"
            );
        }
        let twice = format!("{},{}", key_line(3, 1), key_line(3, 2));
        assert_eq!(
            KeyRing::parse(&twice).unwrap_err().to_string(),
            "invalid application key: key id 3 is given twice"
        );
        assert_eq!(
            format!(
                "{:?}",
                ring(&twice.replace("3:", "4:").replacen("4:", "3:", 1))
            ),
            "KeyRing { key_ids: [3, 4], [redacted] }"
        );
    }

    #[test]
    fn concurrent_first_starts_agree_on_one_key() {
        let dir = tempfile_dir("race");
        let path = dir.join("otp.db.key");
        let rings: Vec<KeyRing> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| KeyRing::load_or_create(&path).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let sealed = rings[0].seal(b"x", b"c").unwrap();
        for ring in &rings {
            assert_eq!(ring.open(&sealed, b"c").unwrap().as_slice(), b"x");
        }
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "temporary files were left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir(name: &str) -> std::path::PathBuf {
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).unwrap();
        let dir = std::env::temp_dir().join(format!("otp-core-{name}-{}", hex(&suffix)));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn key_file_is_created_once_with_mode_0600() {
        let dir = tempfile_dir("keys");
        let path = dir.join("otp.key");
        let created = KeyRing::load_or_create(&path).unwrap();
        let sealed = created.seal(b"x", b"c").unwrap();
        let loaded = KeyRing::load_or_create(&path).unwrap();
        assert_eq!(loaded.open(&sealed, b"c").unwrap().as_slice(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
