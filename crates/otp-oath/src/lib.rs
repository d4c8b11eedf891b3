//! # otp-oath: HOTP, TOTP, secrets, otpauth:// URIs and QR codes
//!
//! The algorithms layer of the otp two-factor framework: pure, synchronous, no I/O. Everything
//! a one-time-password system computes lives here; everything it stores lives in `otp-core`.
//!
//! ## A TOTP credential from start to finish
//!
//! Make a secret, show it to the user as a URI (or its QR code), and check the codes the user's
//! app produces:
//!
//! ```
//! use otp_oath::{OtpAuthUri, Secret, Totp, TotpParams, TotpWindow};
//!
//! // 1. A fresh 160-bit secret from the operating system's random number generator.
//! let secret = Secret::generate();
//!
//! // 2. The URI an authenticator app scans (render it with the `qr` feature).
//! let uri = OtpAuthUri::totp(secret.clone(), "alice@example.com").with_issuer("Example");
//! assert!(uri.to_uri()?.starts_with("otpauth://totp/Example:alice%40example.com?secret="));
//!
//! // 3. The server keeps a `Totp`: its HMAC state is computed once, each code costs two
//! //    SHA-1 compressions.
//! let totp = Totp::new(&secret, TotpParams::default())?;
//! let now = 1_700_000_000;
//! let typed_by_user = totp.code_at(now)?.to_string();
//!
//! // 4. Verify with one step of tolerance either side, as django-otp does. The match tells
//! //    which step was used: store it, and refuse that step and every older one next time.
//! let window = TotpWindow::with_tolerance(1);
//! let matched = totp.verify(&typed_by_user, now, window).expect("right code");
//! let next_window = window.with_min_step(matched.step + 1);
//! assert!(totp.verify(&typed_by_user, now, next_window).is_none()); // no replay
//!
//! // A wrong code, or anything that is not exactly six ASCII digits, is simply no match.
//! assert!(totp.verify("12345", now, window).is_none());
//! assert!(totp.verify("+12345", now, window).is_none());
//! # Ok::<(), otp_oath::Error>(())
//! ```
//!
//! ## HOTP
//!
//! ```
//! use otp_oath::{Hotp, HotpParams, Secret};
//!
//! let secret = Secret::from_bytes(b"12345678901234567890")?; // RFC 4226 Appendix D
//! let hotp = Hotp::new(&secret, HotpParams::default());
//! let codes: Vec<String> = (0..3).map(|c| hotp.code(c).to_string()).collect();
//! assert_eq!(codes, ["755224", "287082", "359152"]);
//!
//! // The server expects counter 1 and tolerates 5 skipped codes.
//! let next = hotp.verify("359152", 1, 5).map(|matched| matched + 1);
//! assert_eq!(next, Some(3));
//! # Ok::<(), otp_oath::Error>(())
//! ```
//!
//! ## What this crate guarantees
//!
//! - **Strict parsing.** A code is exactly `digits` ASCII digits after trimming white space.
//!   django-otp's `int(token)` accepted `+154567`, `154_567`, `00154567` and digits of other
//!   scripts; here they match nothing.
//! - **Constant time.** Codes are compared with `subtle`, and every candidate of a window is
//!   computed even after a match.
//! - **Secrets stay secret.** [`Secret`], [`HmacKey`], [`Code`] and [`OtpAuthUri`] never show
//!   key material in `Debug`; secrets and derived HMAC states are zeroized on drop; no
//!   [`Error`] carries a secret or a submitted code.
//! - **No panics on input.** Out-of-range times, drifts, counters and tolerances saturate or
//!   match nothing.
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `qr` | no | [`qr`]: QR codes as SVG, PNG and terminal text, rendered locally |

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod code;
mod encoding;
mod error;
mod hotp;
mod key;
mod secret;
mod totp;
mod uri;

#[cfg(feature = "qr")]
#[cfg_attr(docsrs, doc(cfg(feature = "qr")))]
pub mod qr;

pub use code::{Code, Digits};
pub use error::{BoundedText, Error, UriProblem};
pub use hotp::{Hotp, HotpParams};
pub use key::{Algorithm, HmacKey};
pub use secret::Secret;
pub use totp::{Totp, TotpMatch, TotpParams, TotpWindow};
pub use uri::{OtpAuthUri, OtpKind};
