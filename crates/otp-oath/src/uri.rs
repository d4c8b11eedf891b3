//! otpauth:// URIs in the Key URI Format of Google Authenticator, understood by every
//! authenticator app: `otpauth://TYPE/ISSUER:ACCOUNT?secret=…&issuer=…&algorithm=…&digits=…`.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use zeroize::Zeroizing;

use crate::error::{UriProblem, uri_error};
use crate::{Algorithm, Digits, Error, Hotp, HotpParams, Secret, Totp, TotpParams};

/// Characters left as they are: RFC 3986's unreserved set. Everything else is percent-encoded,
/// `/` included (django-otp left it literal, which splits the label in some apps).
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What kind of credential a URI describes, with the parameter only that kind has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpKind {
    /// Time-based: `otpauth://totp/…`, with the step in seconds (`period`, default 30).
    Totp {
        /// Seconds per time step.
        period: u64,
    },
    /// Counter-based: `otpauth://hotp/…`, with the next counter (`counter`, required).
    Hotp {
        /// The counter the next code is generated from.
        counter: u64,
    },
}

/// A parsed or to-be-built otpauth:// URI.
///
/// ```
/// use otp_oath::{OtpAuthUri, Secret};
///
/// let secret = Secret::from_base32("FIV3XIIJF765EWRSRLI2BJPV2YOXVLGE")?;
/// let uri = OtpAuthUri::totp(secret, "alice@example.com").with_issuer("Example Corp");
/// let text = uri.to_uri()?;
/// assert_eq!(
///     text.as_str(),
///     "otpauth://totp/Example%20Corp:alice%40example.com?secret=FIV3XIIJF765EWRSRLI2BJPV2YOXVLGE\
///      &issuer=Example%20Corp&algorithm=SHA1&digits=6&period=30"
/// );
///
/// let parsed = OtpAuthUri::parse(&text)?;
/// assert_eq!(parsed, uri);
/// assert_eq!(parsed.issuer.as_deref(), Some("Example Corp"));
///
/// // Broken input names the field that is wrong.
/// let err = OtpAuthUri::parse("otpauth://totp/alice?secret=FIV3XIIJF765EWRSRLI2BJPV2YOXVLGE&digits=5")
///     .unwrap_err();
/// assert_eq!(err.to_string(), "invalid otpauth URI: digits: must be a number from 6 to 10");
/// # Ok::<(), otp_oath::Error>(())
/// ```
///
/// `Debug` shows every field but the secret; [`OtpAuthUri::to_uri`] returns a string that is
/// zeroized on drop, since it carries the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtpAuthUri {
    /// TOTP or HOTP, with its own parameter.
    pub kind: OtpKind,
    /// The service the account belongs to, shown by the app above the account name.
    pub issuer: Option<String>,
    /// The account name, for example a user name or an email address.
    pub account: String,
    /// The shared secret.
    pub secret: Secret,
    /// Hash function under HMAC.
    pub algorithm: Algorithm,
    /// Digits per code.
    pub digits: Digits,
    /// URL of an image that some apps show beside the account.
    pub image: Option<String>,
}

impl OtpAuthUri {
    /// A TOTP URI with the defaults: SHA-1, 6 digits, 30-second period, no issuer.
    pub fn totp(secret: Secret, account: impl Into<String>) -> Self {
        Self::new(OtpKind::Totp { period: 30 }, secret, account)
    }

    /// An HOTP URI with the defaults (SHA-1, 6 digits) and the given next counter.
    pub fn hotp(secret: Secret, account: impl Into<String>, counter: u64) -> Self {
        Self::new(OtpKind::Hotp { counter }, secret, account)
    }

    fn new(kind: OtpKind, secret: Secret, account: impl Into<String>) -> Self {
        Self {
            kind,
            issuer: None,
            account: account.into(),
            secret,
            algorithm: Algorithm::Sha1,
            digits: Digits::SIX,
            image: None,
        }
    }

    /// Sets the issuer.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Sets the algorithm.
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets the number of digits.
    pub fn with_digits(mut self, digits: Digits) -> Self {
        self.digits = digits;
        self
    }

    /// Sets the image URL.
    pub fn with_image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    /// A TOTP generator for this URI's parameters (`t0` is 0: URIs cannot carry another).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUri`] for `type` if the URI is an HOTP one, [`Error::ZeroTimeStep`] if
    /// the period is 0.
    pub fn to_totp(&self) -> Result<Totp, Error> {
        let OtpKind::Totp { period } = self.kind else {
            return Err(uri_error("type", UriProblem::Invalid("is hotp, not totp")));
        };
        let params = TotpParams::default()
            .with_algorithm(self.algorithm)
            .with_digits(self.digits)
            .with_step(period);
        Totp::new(&self.secret, params)
    }

    /// An HOTP generator for this URI's parameters; the counter is in [`OtpKind::Hotp`].
    pub fn to_hotp(&self) -> Hotp {
        let params = HotpParams::default()
            .with_algorithm(self.algorithm)
            .with_digits(self.digits);
        Hotp::new(&self.secret, params)
    }

    /// Writes the URI. Parameters come in a fixed order: `secret` (base32, no padding),
    /// `issuer`, `algorithm`, `digits`, then `period` or `counter`, then `image`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUri`] naming `issuer` or `label` if either contains a colon, is empty or
    /// has white space at either end (the format cannot carry those unambiguously), or
    /// `period` if it is 0.
    pub fn to_uri(&self) -> Result<Zeroizing<String>, Error> {
        check_label_part("label", &self.account)?;
        if let Some(issuer) = &self.issuer {
            check_label_part("issuer", issuer)?;
        }
        let (kind, parameter, value) = match self.kind {
            OtpKind::Totp { period: 0 } => {
                return Err(uri_error(
                    "period",
                    UriProblem::Invalid("must be at least 1"),
                ));
            }
            OtpKind::Totp { period } => ("totp", "period", period),
            OtpKind::Hotp { counter } => ("hotp", "counter", counter),
        };
        let mut uri = Zeroizing::new(String::with_capacity(128));
        uri.push_str("otpauth://");
        uri.push_str(kind);
        uri.push('/');
        if let Some(issuer) = &self.issuer {
            uri.extend(utf8_percent_encode(issuer, ENCODE));
            uri.push(':');
        }
        uri.extend(utf8_percent_encode(&self.account, ENCODE));
        uri.push_str("?secret=");
        uri.push_str(&self.secret.to_base32());
        if let Some(issuer) = &self.issuer {
            uri.push_str("&issuer=");
            uri.extend(utf8_percent_encode(issuer, ENCODE));
        }
        uri.push_str("&algorithm=");
        uri.push_str(self.algorithm.uri_name());
        uri.push_str("&digits=");
        uri.push_str(&self.digits.to_string());
        uri.push('&');
        uri.push_str(parameter);
        uri.push('=');
        uri.push_str(&value.to_string());
        if let Some(image) = &self.image {
            uri.push_str("&image=");
            uri.extend(utf8_percent_encode(image, ENCODE));
        }
        Ok(uri)
    }

    /// Parses a URI whose secret has at least 128 bits.
    ///
    /// The scheme and type are case-insensitive; the label is `ACCOUNT` or `ISSUER:ACCOUNT`
    /// (the colon literal or `%3A`, spaces after it ignored); parameter names are lower case,
    /// unknown ones are ignored, and each known one may appear once. `issuer` must agree with
    /// the label's issuer when both are given.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUri`] naming the field that is wrong: `scheme`, `type`, `label`, `secret`,
    /// `issuer`, `algorithm`, `digits`, `period` or `counter`.
    pub fn parse(uri: &str) -> Result<Self, Error> {
        Self::parse_with(uri, Secret::from_base32)
    }

    /// Parses like [`OtpAuthUri::parse`] but accepts secrets below 128 bits, which older
    /// services still issue (80-bit secrets are common).
    ///
    /// # Errors
    ///
    /// As [`OtpAuthUri::parse`].
    pub fn parse_legacy_weak(uri: &str) -> Result<Self, Error> {
        Self::parse_with(uri, Secret::from_base32_legacy_weak)
    }

    fn parse_with(
        uri: &str,
        secret_from: fn(&str) -> Result<Secret, Error>,
    ) -> Result<Self, Error> {
        let uri = uri.trim();
        let (scheme, rest) = uri
            .split_once("://")
            .ok_or(uri_error("scheme", UriProblem::Missing))?;
        if !scheme.eq_ignore_ascii_case("otpauth") {
            return Err(uri_error("scheme", UriProblem::Invalid("must be otpauth")));
        }
        let (kind_name, rest) = rest
            .split_once('/')
            .ok_or(uri_error("label", UriProblem::Missing))?;
        let is_totp = if kind_name.eq_ignore_ascii_case("totp") {
            true
        } else if kind_name.eq_ignore_ascii_case("hotp") {
            false
        } else {
            return Err(uri_error(
                "type",
                UriProblem::Invalid("must be totp or hotp"),
            ));
        };
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (label, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (label_issuer, account) = parse_label(label)?;

        let mut params = Params::default();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            params.set(name, value)?;
        }

        let secret_text = Zeroizing::new(
            decode_value("secret", params.secret)?
                .ok_or(uri_error("secret", UriProblem::Missing))?
                .into_owned(),
        );
        let secret = secret_from(&secret_text).map_err(|err| {
            uri_error(
                "secret",
                UriProblem::Invalid(match err {
                    Error::SecretTooShort { .. } => "has fewer than 128 bits",
                    Error::SecretTooLong { .. } => "is too long",
                    Error::SecretEmpty => "is empty",
                    _ => "is not valid base32",
                }),
            )
        })?;
        drop(secret_text);

        let issuer = match (label_issuer, decode_value("issuer", params.issuer)?) {
            (Some(from_label), Some(from_param)) if from_label != from_param => {
                return Err(uri_error(
                    "issuer",
                    UriProblem::Invalid("differs from the issuer in the label"),
                ));
            }
            (from_label, from_param) => from_param.map(Cow::into_owned).or(from_label),
        };
        let algorithm = match decode_value("algorithm", params.algorithm)? {
            None => Algorithm::Sha1,
            Some(name) => name.parse().map_err(|_| {
                uri_error(
                    "algorithm",
                    UriProblem::Invalid("must be SHA1, SHA256 or SHA512"),
                )
            })?,
        };
        let digits = match params.digits {
            None => Digits::SIX,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .and_then(|n| Digits::new(n).ok())
                .ok_or(uri_error(
                    "digits",
                    UriProblem::Invalid("must be a number from 6 to 10"),
                ))?,
        };
        let kind = if is_totp {
            let period = match params.period {
                None => 30,
                Some(text) => text
                    .parse::<u64>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or(uri_error(
                        "period",
                        UriProblem::Invalid("must be a whole number of seconds, at least 1"),
                    ))?,
            };
            OtpKind::Totp { period }
        } else {
            let counter = params
                .counter
                .ok_or(uri_error("counter", UriProblem::Missing))?
                .parse::<u64>()
                .map_err(|_| {
                    uri_error(
                        "counter",
                        UriProblem::Invalid("must be a whole number from 0 to 2^64-1"),
                    )
                })?;
            OtpKind::Hotp { counter }
        };
        let image = decode_value("image", params.image)?.map(Cow::into_owned);
        Ok(Self {
            kind,
            issuer,
            account,
            secret,
            algorithm,
            digits,
            image,
        })
    }
}

/// The raw values of the parameters this crate knows.
#[derive(Default)]
struct Params<'a> {
    secret: Option<&'a str>,
    issuer: Option<&'a str>,
    algorithm: Option<&'a str>,
    digits: Option<&'a str>,
    period: Option<&'a str>,
    counter: Option<&'a str>,
    image: Option<&'a str>,
}

impl<'a> Params<'a> {
    fn set(&mut self, name: &str, value: &'a str) -> Result<(), Error> {
        let (field, slot) = match name {
            "secret" => ("secret", &mut self.secret),
            "issuer" => ("issuer", &mut self.issuer),
            "algorithm" => ("algorithm", &mut self.algorithm),
            "digits" => ("digits", &mut self.digits),
            "period" => ("period", &mut self.period),
            "counter" => ("counter", &mut self.counter),
            "image" => ("image", &mut self.image),
            _ => return Ok(()),
        };
        if slot.replace(value).is_some() {
            return Err(uri_error(field, UriProblem::Duplicate));
        }
        Ok(())
    }
}

/// Decodes a query value: `+` is a space (form encoding), then percent-decoding, then UTF-8.
fn decode_value<'a>(
    field: &'static str,
    value: Option<&'a str>,
) -> Result<Option<Cow<'a, str>>, Error> {
    let Some(value) = value else {
        return Ok(None);
    };
    let spaced: Cow<'a, str> = if value.contains('+') {
        Cow::Owned(value.replace('+', " "))
    } else {
        Cow::Borrowed(value)
    };
    Ok(Some(Cow::Owned(
        decode_percent(field, &spaced)?.into_owned(),
    )))
}

fn decode_percent<'a>(field: &'static str, text: &'a str) -> Result<Cow<'a, str>, Error> {
    if has_broken_escape(text) {
        return Err(uri_error(field, UriProblem::BadEncoding));
    }
    percent_decode_str(text)
        .decode_utf8()
        .map_err(|_| uri_error(field, UriProblem::BadEncoding))
}

/// Whether a `%` is not followed by two hex digits (`percent_decode_str` would pass it through).
fn has_broken_escape(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

/// Splits a label into issuer and account.
fn parse_label(label: &str) -> Result<(Option<String>, String), Error> {
    let decoded = decode_percent("label", label)?;
    let (issuer, account) = match decoded.split_once(':') {
        Some((issuer, account)) => (Some(issuer.trim()), account.trim()),
        None => (None, decoded.trim()),
    };
    if account.is_empty() {
        return Err(uri_error("label", UriProblem::Missing));
    }
    if account.contains(':') {
        return Err(uri_error(
            "label",
            UriProblem::Invalid("has more than one colon"),
        ));
    }
    if issuer.is_some_and(str::is_empty) {
        return Err(uri_error(
            "label",
            UriProblem::Invalid("has an empty issuer before the colon"),
        ));
    }
    Ok((issuer.map(str::to_owned), account.to_owned()))
}

fn check_label_part(field: &'static str, text: &str) -> Result<(), Error> {
    let problem = if text.is_empty() {
        UriProblem::Missing
    } else if text.contains(':') {
        UriProblem::Invalid("must not contain a colon")
    } else if text.trim() != text {
        UriProblem::Invalid("must not begin or end with white space")
    } else {
        return Ok(());
    };
    Err(uri_error(field, problem))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "FIV3XIIJF765EWRSRLI2BJPV2YOXVLGE";

    fn parse_err(uri: &str) -> String {
        OtpAuthUri::parse(uri).unwrap_err().to_string()
    }

    #[test]
    fn encodes_slash_space_and_non_ascii_in_the_label() {
        let secret = Secret::from_base32(KEY).unwrap();
        let uri = OtpAuthUri::totp(secret, "Jörg Smith/+?&#")
            .with_digits(Digits::EIGHT)
            .with_issuer("Example & Co");
        let text = uri.to_uri().unwrap();
        assert!(text.starts_with(
            "otpauth://totp/Example%20%26%20Co:J%C3%B6rg%20Smith%2F%2B%3F%26%23?secret="
        ));
        assert!(text.contains("&issuer=Example%20%26%20Co&"));
        assert_eq!(OtpAuthUri::parse(&text).unwrap(), uri);
    }

    #[test]
    fn reads_django_otp_uris() {
        // reference §5.1 and §5.2: padded secrets, %3A separators, form encoding.
        let totp = OtpAuthUri::parse(
            "otpauth://totp/Example%20Corp%20%26%20Co%3Aalice?secret=AAAAAAAAAAAAAAAAAAAAAAAAAA%3D%3D%3D%3D%3D%3D\
             &algorithm=SHA1&digits=6&period=30&issuer=Example%20Corp%20%26%20Co",
        )
        .unwrap();
        assert_eq!(totp.issuer.as_deref(), Some("Example Corp & Co"));
        assert_eq!(totp.account, "alice");
        assert_eq!(totp.secret.len(), 16);
        let hotp = OtpAuthUri::parse(
            "otpauth://hotp/example.com%3Aalice?secret=2LUKNABW62EWBMODAUZLW3CW3JMTJWDZ\
             &algorithm=SHA1&digits=6&counter=7&issuer=example.com",
        )
        .unwrap();
        assert_eq!(hotp.kind, OtpKind::Hotp { counter: 7 });
        assert_eq!(hotp.to_hotp().code(0).to_string(), "782373");
    }

    #[test]
    fn defaults_apply_to_missing_optional_parameters() {
        let uri = OtpAuthUri::parse(&format!("OTPAUTH://TOTP/alice?secret={KEY}")).unwrap();
        assert_eq!(uri.kind, OtpKind::Totp { period: 30 });
        assert_eq!(uri.algorithm, Algorithm::Sha1);
        assert_eq!(uri.digits, Digits::SIX);
        assert_eq!(uri.issuer, None);
        let uri = OtpAuthUri::parse(&format!("otpauth://totp/alice?secret={KEY}&x=1&y")).unwrap();
        assert_eq!(uri.account, "alice");
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            ("alice", "invalid otpauth URI: scheme: missing"),
            (
                "http://totp/a?secret=x",
                "invalid otpauth URI: scheme: must be otpauth",
            ),
            (
                "otpauth://motp/a?secret=x",
                "invalid otpauth URI: type: must be totp or hotp",
            ),
            ("otpauth://totp", "invalid otpauth URI: label: missing"),
            (
                "otpauth://totp/?secret=x",
                "invalid otpauth URI: label: missing",
            ),
            (
                "otpauth://totp/a:b:c?secret=x",
                "invalid otpauth URI: label: has more than one colon",
            ),
            (
                "otpauth://totp/%ZZ?secret=x",
                "invalid otpauth URI: label: bad percent-encoding or not UTF-8",
            ),
            (
                "otpauth://totp/%FF?secret=x",
                "invalid otpauth URI: label: bad percent-encoding or not UTF-8",
            ),
            (
                "otpauth://totp/alice",
                "invalid otpauth URI: secret: missing",
            ),
            (
                "otpauth://totp/alice?secret=JBSWY3DPEHPK3PXP",
                "invalid otpauth URI: secret: has fewer than 128 bits",
            ),
            (
                "otpauth://totp/alice?secret=!!!!",
                "invalid otpauth URI: secret: is not valid base32",
            ),
            (
                "otpauth://totp/alice?secret=&x",
                "invalid otpauth URI: secret: is empty",
            ),
        ];
        for (uri, message) in cases {
            assert_eq!(parse_err(uri), message, "{uri}");
        }
        let with_key = [
            (
                "&secret=AAAA",
                "invalid otpauth URI: secret: given more than once",
            ),
            (
                "&algorithm=MD5",
                "invalid otpauth URI: algorithm: must be SHA1, SHA256 or SHA512",
            ),
            (
                "&digits=11",
                "invalid otpauth URI: digits: must be a number from 6 to 10",
            ),
            (
                "&digits=six",
                "invalid otpauth URI: digits: must be a number from 6 to 10",
            ),
            (
                "&period=0",
                "invalid otpauth URI: period: must be a whole number of seconds, at least 1",
            ),
            (
                "&issuer=Other",
                "invalid otpauth URI: issuer: differs from the issuer in the label",
            ),
            (
                "&image=%E2%28",
                "invalid otpauth URI: image: bad percent-encoding or not UTF-8",
            ),
        ];
        for (suffix, message) in with_key {
            let uri = format!("otpauth://totp/Acme:alice?secret={KEY}{suffix}");
            assert_eq!(parse_err(&uri), message, "{uri}");
        }
        assert_eq!(
            parse_err(&format!("otpauth://hotp/alice?secret={KEY}")),
            "invalid otpauth URI: counter: missing"
        );
        assert_eq!(
            parse_err(&format!("otpauth://hotp/alice?secret={KEY}&counter=-1")),
            "invalid otpauth URI: counter: must be a whole number from 0 to 2^64-1"
        );
    }

    #[test]
    fn errors_never_carry_the_secret() {
        let uri = format!("otpauth://totp/alice?secret={KEY}1");
        let message = parse_err(&uri);
        assert!(!message.contains(KEY), "{message}");
        assert_eq!(message, "invalid otpauth URI: secret: is not valid base32");
    }

    #[test]
    fn legacy_weak_parse_accepts_80_bit_secrets() {
        let uri =
            OtpAuthUri::parse_legacy_weak("otpauth://totp/alice?secret=JBSWY3DPEHPK3PXP").unwrap();
        assert!(uri.secret.is_weak());
    }

    #[test]
    fn building_refuses_ambiguous_labels() {
        let secret = || Secret::from_base32(KEY).unwrap();
        let colon = OtpAuthUri::totp(secret(), "a").with_issuer("A:B");
        assert_eq!(
            colon.to_uri().unwrap_err().to_string(),
            "invalid otpauth URI: issuer: must not contain a colon"
        );
        let empty = OtpAuthUri::totp(secret(), "");
        assert_eq!(
            empty.to_uri().unwrap_err().to_string(),
            "invalid otpauth URI: label: missing"
        );
        let spaced = OtpAuthUri::totp(secret(), " alice");
        assert!(spaced.to_uri().is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let uri = OtpAuthUri::totp(Secret::from_base32(KEY).unwrap(), "alice");
        let shown = format!("{uri:?}");
        assert!(!shown.contains(KEY), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
