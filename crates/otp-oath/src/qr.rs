//! QR codes of otpauth:// URIs, rendered here and now: nothing is sent to a chart service, so
//! the secret in the URI never leaves the process.
//!
//! ```
//! use otp_oath::{OtpAuthUri, Secret, qr};
//!
//! let uri = OtpAuthUri::totp(Secret::generate(), "alice").with_issuer("Example");
//! let text = uri.to_uri()?;
//! let svg = qr::svg(&text)?;
//! assert!(svg.starts_with("<?xml"));
//! let png = qr::png(&text)?;
//! assert_eq!(&png[1..4], b"PNG");
//! # Ok::<(), otp_oath::Error>(())
//! ```

use qrcode::render::{svg as svg_render, unicode};
use qrcode::{Color, QrCode};
use zeroize::Zeroizing;

use crate::Error;

/// Light modules around the symbol, as ISO/IEC 18004 requires for reliable scanning.
const QUIET_ZONE: usize = 4;
/// Pixels per module in PNG output.
const PNG_MODULE_PIXELS: usize = 8;

fn encode(content: &str) -> Result<QrCode, Error> {
    QrCode::new(content.as_bytes()).map_err(|err| match err {
        qrcode::types::QrError::DataTooLong => Error::Qr("the text is too long for a QR code"),
        _ => Error::Qr("the text cannot be encoded"),
    })
}

/// An SVG image (black on white, at least 256 px wide) of the QR code of `content`.
///
/// # Errors
///
/// [`Error::Qr`] if the text is too long for a QR code.
pub fn svg(content: &str) -> Result<Zeroizing<String>, Error> {
    let code = encode(content)?;
    Ok(Zeroizing::new(
        code.render::<svg_render::Color<'_>>()
            .min_dimensions(256, 256)
            .dark_color(svg_render::Color("#000000"))
            .light_color(svg_render::Color("#ffffff"))
            .quiet_zone(true)
            .build(),
    ))
}

/// A greyscale PNG image (8 pixels per module, with the quiet zone) of the QR code of `content`.
///
/// # Errors
///
/// [`Error::Qr`] if the text is too long for a QR code.
pub fn png(content: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    let code = encode(content)?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * PNG_MODULE_PIXELS;
    let mut pixels = Zeroizing::new(vec![0xffu8; side * side]);
    for (index, color) in colors.iter().enumerate() {
        if *color != Color::Dark {
            continue;
        }
        let (x, y) = (index % modules + QUIET_ZONE, index / modules + QUIET_ZONE);
        for row in y * PNG_MODULE_PIXELS..(y + 1) * PNG_MODULE_PIXELS {
            let start = row * side + x * PNG_MODULE_PIXELS;
            pixels[start..start + PNG_MODULE_PIXELS].fill(0);
        }
    }
    let mut out = Zeroizing::new(Vec::new());
    let side = u32::try_from(side).map_err(|_| Error::Qr("the image is too large"))?;
    let mut encoder = png::Encoder::new(&mut *out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let written = encoder
        .write_header()
        .and_then(|mut writer| writer.write_image_data(&pixels));
    written.map_err(|_| Error::Qr("the PNG encoder failed"))?;
    Ok(out)
}

/// The QR code of `content` drawn with Unicode half blocks, two modules per character cell,
/// for a terminal with a dark background (light modules are drawn, dark ones left blank).
///
/// # Errors
///
/// [`Error::Qr`] if the text is too long for a QR code.
pub fn terminal(content: &str) -> Result<Zeroizing<String>, Error> {
    let code = encode(content)?;
    Ok(Zeroizing::new(
        code.render::<unicode::Dense1x2>()
            .dark_color(unicode::Dense1x2::Light)
            .light_color(unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_long_text_is_an_error_not_a_panic() {
        let long = "x".repeat(8000);
        assert_eq!(
            svg(&long).unwrap_err(),
            Error::Qr("the text is too long for a QR code")
        );
        assert!(png(&long).is_err());
        assert!(terminal(&long).is_err());
    }

    #[test]
    fn png_has_the_quiet_zone_and_square_size() {
        let content = "otpauth://totp/a?secret=AAAAAAAAAAAAAAAAAAAAAAAAAA";
        let modules = QrCode::new(content).unwrap().width();
        let image = png(content).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(image.to_vec()));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.width, info.height);
        assert_eq!(
            info.width as usize,
            (modules + 2 * QUIET_ZONE) * PNG_MODULE_PIXELS
        );
    }

    #[test]
    fn terminal_drawing_has_one_line_per_two_module_rows() {
        let drawing = terminal("hello").unwrap();
        // Version 1 (21 modules) with the quiet zone: 29 rows, drawn two per line.
        assert_eq!(drawing.lines().count(), 15);
    }
}
