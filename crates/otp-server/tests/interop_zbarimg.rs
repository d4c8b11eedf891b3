//! `otp qr --png` (and `--svg`) decoded by `zbarimg` (ZBar) must give back the URI exactly.
//!
//! `zbarimg --raw` alone is not enough for non-ASCII text: ZBar guesses the character set of
//! QR byte-mode data and turns UTF-8 such as "Bäckerei" into other characters. `-Sbinary`
//! makes it print the bytes as they are encoded (and, unlike plain `--raw`, without a trailing
//! newline).

mod common;

use std::path::Path;
use std::process::Command;

use common::{otp, require_tool, run};

const SECRET_160: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
/// 64 bytes: "1234567890" repeated, as RFC 6238's SHA-512 key.
const SECRET_512: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
                          GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNA";

/// The decoded text of the single QR code in `image`.
fn decode(image: &Path) -> String {
    let out = run(Command::new("zbarimg")
        .args(["--quiet", "--raw", "-Sbinary"])
        .arg(image));
    assert_eq!(
        out.code,
        Some(0),
        "zbarimg found no code in {}: {}",
        image.display(),
        out.stderr
    );
    // Some versions end the text with a newline; a URI never does.
    out.stdout
        .strip_suffix('\n')
        .unwrap_or(&out.stdout)
        .to_owned()
}

/// The URI that `otp uri build` makes of `args`.
fn built(args: &[&str]) -> String {
    let out = otp(["uri", "build"].iter().chain(args));
    assert_eq!(out.code, Some(0), "otp uri build {args:?}: {}", out.stderr);
    out.stdout.trim_end().to_owned()
}

fn uris() -> Vec<(&'static str, String)> {
    let long_account = "a.very.long.account.name+with-tags@subdomain.example.com";
    vec![
        (
            "plain TOTP",
            format!("otpauth://totp/Example:alice?secret={SECRET_160}&issuer=Example"),
        ),
        (
            "built, non-ASCII issuer and account (percent-encoded)",
            built(&[
                "--type",
                "totp",
                "--account",
                "jörg.müller@bäckerei.example",
                "--issuer",
                "Bäckerei Müller & Söhne",
                "--secret",
                SECRET_160,
            ]),
        ),
        (
            "raw UTF-8 label, Latin",
            format!("otpauth://totp/Bäckerei:jörg?secret={SECRET_160}&issuer=Bäckerei"),
        ),
        (
            "raw UTF-8 label, CJK and emoji",
            format!("otpauth://totp/日本語サービス:ユーザー🔐?secret={SECRET_160}"),
        ),
        (
            "SHA512, 10 digits, HOTP with a large counter",
            built(&[
                "--type",
                "hotp",
                "--account",
                "bob",
                "--issuer",
                "Example",
                "--secret",
                SECRET_512,
                "--algorithm",
                "sha512",
                "--digits",
                "10",
                "--counter",
                "18446744073709551615",
            ]),
        ),
        (
            "long URI with every parameter",
            built(&[
                "--type",
                "totp",
                "--account",
                &long_account.repeat(3),
                "--issuer",
                "Example Corporation International Holdings",
                "--secret",
                SECRET_512,
                "--algorithm",
                "sha256",
                "--digits",
                "8",
                "--period",
                "60",
                "--image",
                "https://images.example.com/logos/example-corporation/512x512.png?v=2",
            ]),
        ),
        (
            "weak 80-bit secret",
            "otpauth://totp/Old:legacy?secret=GEZDGNBVGY3TQOJQ&issuer=Old".to_owned(),
        ),
    ]
}

#[test]
fn png_codes_decode_to_the_exact_uri() {
    if !require_tool("zbarimg") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (index, (what, uri)) in uris().into_iter().enumerate() {
        let image = dir.path().join(format!("{index}.png"));
        let out = otp(["qr", uri.as_str(), "--png", image.to_str().unwrap()]);
        assert_eq!(out.code, Some(0), "{what}: otp qr failed: {}", out.stderr);
        assert_eq!(
            decode(&image),
            uri,
            "{what}: decoded (left) differs from the URI"
        );
    }
}

#[test]
fn svg_code_decodes_to_the_exact_uri() {
    // zbarimg reads SVG through ImageMagick, which hands it to `rsvg-convert`.
    if !require_tool("zbarimg") || !require_tool("rsvg-convert") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("code.svg");
    let uri = format!("otpauth://totp/Example:alice?secret={SECRET_160}&issuer=Example");
    let out = otp(["qr", uri.as_str(), "--svg", image.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "otp qr failed: {}", out.stderr);
    assert_eq!(decode(&image), uri);
}
