//! Upload checks: the bytes must really be the format the client declared.
//!
//! Raster formats are recognised by their signature and the first header structure; SVG must
//! be well-formed XML (UTF-8, no DTD) whose root element is `<svg>`.

use crate::object_name::ImageFormat;

/// SECURITY: an upper bound on XML nodes, so a pathological SVG cannot exhaust memory.
const SVG_MAX_NODES: u32 = 1_000_000;

/// `Ok` when `bytes` is plausibly a `format` image; otherwise why not, for the client.
pub fn check(format: ImageFormat, bytes: &[u8]) -> Result<(), String> {
    let ok = match format {
        ImageFormat::Png => {
            bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.get(12..16) == Some(b"IHDR")
        }
        ImageFormat::Jpeg => bytes.starts_with(&[0xFF, 0xD8, 0xFF]),
        ImageFormat::Gif => bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a"),
        ImageFormat::Webp => {
            bytes.starts_with(b"RIFF")
                && bytes.get(8..12) == Some(b"WEBP")
                && matches!(bytes.get(12..16), Some(b"VP8 " | b"VP8L" | b"VP8X"))
        }
        ImageFormat::Bmp => {
            // "BM", then the DIB header's own size at offset 14 names a known header version.
            bytes.starts_with(b"BM")
                && bytes
                    .get(14..18)
                    .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
                    .is_some_and(|size| matches!(size, 12 | 40 | 52 | 56 | 64 | 108 | 124))
        }
        ImageFormat::Tiff => [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"]
            .iter()
            .any(|sig| bytes.starts_with(*sig)),
        ImageFormat::Svg => return check_svg(bytes),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the body is not a {} image although Content-Type says {}",
            format.name(),
            format.content_type()
        ))
    }
}

fn check_svg(bytes: &[u8]) -> Result<(), String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| "the SVG is not UTF-8 text".to_string())?;
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: SVG_MAX_NODES,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options)
        .map_err(|e| format!("the SVG is not well-formed XML: {e}"))?;
    let root = doc.root_element().tag_name();
    if root.name() != "svg"
        || root
            .namespace()
            .is_some_and(|ns| ns != "http://www.w3.org/2000/svg")
    {
        return Err("the XML document's root element is not <svg>".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_signatures() {
        let mut bmp = b"BM".to_vec();
        bmp.extend([0; 12]);
        bmp.extend(40u32.to_le_bytes());
        let cases: [(ImageFormat, &[u8]); 7] = [
            (ImageFormat::Png, b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR"),
            (ImageFormat::Jpeg, &[0xFF, 0xD8, 0xFF, 0xE0]),
            (ImageFormat::Gif, b"GIF89a\x01\0"),
            (ImageFormat::Webp, b"RIFF\x1a\0\0\0WEBPVP8L"),
            (ImageFormat::Bmp, &bmp),
            (ImageFormat::Tiff, b"MM\0*\0\0\0\x08"),
            (
                ImageFormat::Svg,
                b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
            ),
        ];
        for (format, bytes) in cases {
            assert_eq!(check(format, bytes), Ok(()), "{format:?}");
            for other in ImageFormat::ALL.into_iter().filter(|f| *f != format) {
                assert!(
                    check(other, bytes).is_err(),
                    "{format:?} accepted as {other:?}"
                );
            }
        }
    }

    #[test]
    fn svg_rules() {
        assert!(
            check(
                ImageFormat::Svg,
                b"\xEF\xBB\xBF<?xml version=\"1.0\"?><svg/>"
            )
            .is_ok()
        );
        assert!(
            check(ImageFormat::Svg, b"<svg>")
                .unwrap_err()
                .contains("well-formed")
        );
        assert!(
            check(ImageFormat::Svg, b"<html/>")
                .unwrap_err()
                .contains("root")
        );
        assert!(check(ImageFormat::Svg, b"<svg xmlns=\"urn:x\"/>").is_err());
        let bomb = b"<!DOCTYPE svg [<!ENTITY a \"aaaa\">]><svg>&a;</svg>";
        assert!(check(ImageFormat::Svg, bomb).is_err(), "DTDs are refused");
        assert!(check(ImageFormat::Svg, b"\xff\xfe<svg/>").is_err());
    }
}
