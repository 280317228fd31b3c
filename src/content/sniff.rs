//! Upload checks: the bytes must really be the format the client declared, and a raster
//! image's declared dimensions must stay under `upload.max_pixels`.
//!
//! Raster formats are recognised by their signature and first header structure; dimensions are
//! read from the header only (never decoded), so a decompression bomb is refused before any
//! pixel exists. SVG rules live in `content/svg.rs`.

use super::{frames, svg};
use crate::object_name::ImageFormat;

/// Why an upload's bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The bytes are not the declared format (415).
    #[error("{0}")]
    NotThatFormat(String),
    /// Width × height is over the limit (413).
    #[error("{0}")]
    TooManyPixels(String),
    /// The right format, but the bytes end before the image does (400).
    #[error("{0}")]
    Truncated(String),
}

/// `Ok` when `bytes` is a plausible `format` image of at most `max_pixels` pixels, with the
/// width and height of its largest frame (`None` for SVG, which has no pixels of its own).
pub fn check(format: ImageFormat, bytes: &[u8], max_pixels: u64) -> Result<Option<(u64, u64)>, Rejection> {
    if format == ImageFormat::Svg {
        return svg::check(bytes)
            .map(|()| None)
            .map_err(|e| Rejection::NotThatFormat(e.to_string()));
    }
    if !signature_matches(format, bytes) {
        let article = if format == ImageFormat::Avif { "an" } else { "a" };
        return Err(Rejection::NotThatFormat(format!(
            "the body is not {article} {} image although Content-Type says {}",
            format.name(),
            format.content_type()
        )));
    }
    let (width, height) = frames::largest(format, bytes)
        .map_err(|why| Rejection::NotThatFormat(why.to_owned()))?
        .ok_or_else(|| {
            Rejection::NotThatFormat(format!(
                "the {} header is truncated or has no dimensions",
                format.name()
            ))
        })?;
    let pixels = width.saturating_mul(height);
    if pixels > max_pixels {
        return Err(Rejection::TooManyPixels(format!(
            "the image (or a frame, page or subimage of it) declares {width}×{height} = {pixels} pixels, \
             over the limit of {max_pixels}"
        )));
    }
    if !ends_whole(format, bytes) {
        return Err(Rejection::Truncated(format!(
            "the {} image is truncated: its bytes end before the image does",
            format.name()
        )));
    }
    Ok(Some((width, height)))
}

/// Whether the bytes reach the format's end: a cut-off upload must not be stored as an image.
/// (TIFF has no end marker; its structure is checked by the header parse only.)
fn ends_whole(format: ImageFormat, bytes: &[u8]) -> bool {
    let le32 = |at: usize| {
        bytes
            .get(at..)
            .and_then(<[u8]>::first_chunk)
            .map(|s| u64::from(u32::from_le_bytes(*s)))
    };
    let len = bytes.len() as u64;
    match format {
        // The IEND chunk: zero length, type, fixed CRC.
        ImageFormat::Png => bytes.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]),
        // An EOI marker near the end (some writers pad after it).
        ImageFormat::Jpeg => bytes[bytes.len().saturating_sub(4096)..]
            .windows(2)
            .any(|w| w == [0xFF, 0xD9]),
        // The trailer byte, possibly followed by padding.
        ImageFormat::Gif => bytes.iter().rev().find(|&&b| b != 0) == Some(&0x3B),
        // The RIFF size covers everything after the first 8 bytes.
        ImageFormat::Webp => le32(4).is_some_and(|size| size + 8 <= len),
        // The file size field, when the writer filled it in.
        ImageFormat::Bmp => le32(2).is_some_and(|size| size <= len),
        // Every top-level box ends within the file (the media data last, usually).
        ImageFormat::Avif => frames::isobmff_boxes(bytes).all(|(_, _, whole)| whole),
        ImageFormat::Tiff | ImageFormat::Svg => true,
    }
}

fn signature_matches(format: ImageFormat, bytes: &[u8]) -> bool {
    match format {
        ImageFormat::Png => bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.get(12..16) == Some(b"IHDR"),
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
        ImageFormat::Avif => {
            // An ISO-BMFF `ftyp` box first, naming AVIF as its major or a compatible brand.
            bytes.get(4..8) == Some(b"ftyp")
                && frames::isobmff_boxes(bytes).next().is_some_and(|(_, ftyp, _)| {
                    ftyp.chunks_exact(4)
                        .enumerate()
                        // The minor version (second field) is no brand.
                        .any(|(n, brand)| n != 1 && matches!(brand, b"avif" | b"avis"))
                })
        }
        ImageFormat::Svg => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_rasters_are_refused() {
        for (format, bytes) in SAMPLES {
            if matches!(format, ImageFormat::Svg | ImageFormat::Tiff) {
                continue;
            }
            assert_eq!(check(format, bytes, u64::MAX), Ok(Some((24, 16))), "{format:?} whole");
            let cut = &bytes[..bytes.len() - 8];
            assert!(
                matches!(check(format, cut, u64::MAX), Err(Rejection::Truncated(_))),
                "{format:?} cut by 8 bytes: {:?}",
                check(format, cut, u64::MAX)
            );
        }
    }

    const SAMPLES: [(ImageFormat, &[u8]); 8] = [
        (ImageFormat::Png, include_bytes!("../../tests/fixtures/sample.png")),
        (ImageFormat::Jpeg, include_bytes!("../../tests/fixtures/sample.jpg")),
        (ImageFormat::Webp, include_bytes!("../../tests/fixtures/sample.webp")),
        (ImageFormat::Gif, include_bytes!("../../tests/fixtures/sample.gif")),
        (ImageFormat::Bmp, include_bytes!("../../tests/fixtures/sample.bmp")),
        (ImageFormat::Tiff, include_bytes!("../../tests/fixtures/sample.tiff")),
        (ImageFormat::Svg, include_bytes!("../../tests/fixtures/sample.svg")),
        // Made by Pillow (libavif).
        (ImageFormat::Avif, include_bytes!("../../tests/fixtures/sample.avif")),
    ];

    #[test]
    fn each_sample_is_its_own_format_only() {
        for (format, bytes) in SAMPLES {
            let dims = (format != ImageFormat::Svg).then_some((24, 16));
            assert_eq!(check(format, bytes, 1000), Ok(dims), "{format:?}");
            for other in ImageFormat::ALL.into_iter().filter(|f| *f != format) {
                assert!(check(other, bytes, 1000).is_err(), "{format:?} accepted as {other:?}");
            }
        }
    }

    #[test]
    fn an_avif_is_recognised_by_its_brand_and_refused_when_cut() {
        let avif = crate::content::frames::tests::avif(b"avif", &[(640, 480)]);
        assert_eq!(check(ImageFormat::Avif, &avif, 1 << 20), Ok(Some((640, 480))));
        assert!(matches!(
            check(ImageFormat::Avif, &avif, 1000),
            Err(Rejection::TooManyPixels(_))
        ));
        assert!(matches!(
            check(ImageFormat::Avif, &avif[..avif.len() - 1], 1 << 20),
            Err(Rejection::Truncated(_))
        ));
        // HEIC is ISO-BMFF too, but no AVIF; the message reads "an AVIF", "a PNG".
        let mut heic = avif.clone();
        heic[8..12].copy_from_slice(b"heic");
        heic[16..24].copy_from_slice(b"mif1heic");
        let refusal = |format, bytes| match check(format, bytes, 1 << 20) {
            Err(Rejection::NotThatFormat(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(refusal(ImageFormat::Avif, &heic).starts_with("the body is not an AVIF image"));
        assert!(refusal(ImageFormat::Png, &avif).starts_with("the body is not a PNG image"));
    }

    #[test]
    fn dimensions_come_from_the_header() {
        // The samples are 24×16 = 384 pixels.
        for (format, bytes) in SAMPLES.into_iter().filter(|(f, _)| *f != ImageFormat::Svg) {
            assert_eq!(check(format, bytes, 384), Ok(Some((24, 16))), "{format:?}");
            assert!(
                matches!(check(format, bytes, 383), Err(Rejection::TooManyPixels(ref m)) if m.contains("24×16")),
                "{format:?}"
            );
        }
    }

    #[test]
    fn a_decompression_bomb_header_is_refused_without_decoding() {
        // A PNG header claiming 100000×100000 pixels followed by nothing at all.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend(100_000u32.to_be_bytes());
        png.extend(100_000u32.to_be_bytes());
        png.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
        let err = check(ImageFormat::Png, &png, 100_000_000).unwrap_err();
        assert!(
            matches!(err, Rejection::TooManyPixels(ref m) if m.contains("10000000000")),
            "{err:?}"
        );
    }

    /// Each part of a signature is required on its own.
    #[test]
    fn a_signature_needs_all_its_parts() {
        let png = SAMPLES[0].1;
        let mut no_ihdr = png.to_vec();
        no_ihdr[12..16].copy_from_slice(b"IHDX");
        assert!(matches!(
            check(ImageFormat::Png, &no_ihdr, 1000),
            Err(Rejection::NotThatFormat(_))
        ));
        let mut no_magic = png.to_vec();
        no_magic[1] = b'X';
        assert!(matches!(
            check(ImageFormat::Png, &no_magic, 1000),
            Err(Rejection::NotThatFormat(_))
        ));

        let webp = SAMPLES[2].1;
        for (at, replacement) in [(0, b"RIFX"), (8, b"WAVE"), (12, b"VP9 ")] {
            let mut changed = webp.to_vec();
            changed[at..at + 4].copy_from_slice(replacement);
            assert!(
                matches!(
                    check(ImageFormat::Webp, &changed, 1000),
                    Err(Rejection::NotThatFormat(_))
                ),
                "{}",
                String::from_utf8_lossy(replacement)
            );
        }

        let bmp = SAMPLES[4].1;
        let mut unknown_header = bmp.to_vec();
        unknown_header[14..18].copy_from_slice(&99u32.to_le_bytes());
        assert!(matches!(
            check(ImageFormat::Bmp, &unknown_header, 1000),
            Err(Rejection::NotThatFormat(_))
        ));
        let mut no_bm = bmp.to_vec();
        no_bm[0] = b'X';
        assert!(matches!(
            check(ImageFormat::Bmp, &no_bm, 1000),
            Err(Rejection::NotThatFormat(_))
        ));
    }

    /// The length fields at the end check: a RIFF or BMP size one past the bytes is a cut-off file.
    #[test]
    fn declared_sizes_bound_the_file() {
        let webp = SAMPLES[2].1;
        let riff = u32::from_le_bytes(webp[4..8].try_into().unwrap());
        assert_eq!(riff as usize + 8, webp.len(), "the sample's RIFF size is exact");
        let mut longer = webp.to_vec();
        longer[4..8].copy_from_slice(&(riff + 1).to_le_bytes());
        assert!(matches!(
            check(ImageFormat::Webp, &longer, 1000),
            Err(Rejection::Truncated(_))
        ));

        let bmp = SAMPLES[4].1;
        let size = u32::from_le_bytes(bmp[2..6].try_into().unwrap());
        assert_eq!(size as usize, bmp.len());
        let mut longer = bmp.to_vec();
        longer[2..6].copy_from_slice(&(size + 1).to_le_bytes());
        assert!(matches!(
            check(ImageFormat::Bmp, &longer, 1000),
            Err(Rejection::Truncated(_))
        ));
    }

    #[test]
    fn truncated_headers_are_refused() {
        assert!(matches!(
            check(ImageFormat::Png, b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 1000),
            Err(Rejection::NotThatFormat(_))
        ));
        assert!(matches!(
            check(ImageFormat::Jpeg, &[0xFF, 0xD8, 0xFF, 0xE0], 1000),
            Err(Rejection::NotThatFormat(_))
        ));
    }
}
