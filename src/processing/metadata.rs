//! `extract/metadata`: what an image says about itself, read from its headers and EXIF without
//! decoding its pixels. GPS coordinates are flagged: they are personal data. `width` and
//! `height` are the pixels as stored; `display_width` and `display_height` are the image as
//! shown and as every operation sees it, after its EXIF orientation (a photograph stored
//! 300×451 with orientation 6 is displayed 451×300).
//!
//! SECURITY: the EXIF parser (kamadak-exif) allocates per value as it reads, so an entry's
//! declared count is memory: 5,000 ASCII entries pointing at one 60 KB run of NULs became
//! ~3 × 10⁸ strings (2–3 GB from a 65 KB JPEG). The block is measured first — its size, its
//! entries and the memory their values would take once parsed — and parsed only within
//! [`MAX_EXIF_BYTES`], [`MAX_EXIF_ENTRIES`] and [`MAX_EXIF_PARSED`].

use std::io::Cursor;

use image::{ImageDecoder, ImageReader};
use serde_json::{Value, json};
use std::borrow::Cow;

use super::{codec, error::ProcessError, exif::ByteOrder, icc, svg};
use crate::object_name::ImageFormat;

/// SECURITY: the largest EXIF block summarised (a JPEG's APP1 segment cannot be larger; a PNG
/// `eXIf` or WebP `EXIF` chunk could). A TIFF file is its own EXIF block: its size is the file's,
/// and the entry and memory bounds below apply to it alone.
const MAX_EXIF_BYTES: usize = 64 << 10;
/// SECURITY: the most IFD entries summarised, over every directory followed.
const MAX_EXIF_ENTRIES: u64 = 4096;
/// SECURITY: the memory the parsed values may take, as estimated by [`parsed_size`].
const MAX_EXIF_PARSED: u64 = 16 << 20;

/// The description of `bytes`, a `format` image of `frames` animation frames.
pub(crate) fn describe(bytes: &[u8], format: ImageFormat, frames: usize) -> Result<Value, ProcessError> {
    let mut turned = false;
    let (width, height, has_alpha, exif) = if format == ImageFormat::Svg {
        let (width, height) = svg::size(bytes)?;
        (width, height, true, None)
    } else {
        icc::check_profile_size(bytes, format)?;
        let codec = codec::codec_of(format)?;
        let mut decoder = ImageReader::with_format(Cursor::new(bytes), codec)
            .into_decoder()
            .map_err(|e| ProcessError::Undecodable(e.to_string()))?;
        let (width, height) = decoder.dimensions();
        use image::metadata::Orientation::{Rotate90, Rotate90FlipH, Rotate270, Rotate270FlipH};
        turned = matches!(
            decoder.orientation(),
            Ok(Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH)
        );
        let exif = match format {
            ImageFormat::Tiff => Some(Cow::Borrowed(bytes)),
            _ => decoder.exif_metadata().ok().flatten().map(Cow::Owned),
        };
        (width, height, decoder.color_type().has_alpha(), exif)
    };
    let exif = match exif {
        None => Value::Null,
        Some(block) => match bounded(&block, format == ImageFormat::Tiff) {
            Ok(()) => exif_summary(block.into_owned()),
            Err(why) => json!({ "skipped": why }),
        },
    };
    Ok(json!({
        "format": format.name().to_ascii_lowercase(),
        "content_type": format.content_type(),
        "width": width,
        "height": height,
        "display_width": if turned { height } else { width },
        "display_height": if turned { width } else { height },
        "has_alpha": has_alpha,
        "animated": frames > 1,
        "frames": frames,
        "exif": exif,
    }))
}

/// A few EXIF fields of `block` (TIFF header first), and whether GPS data is present; `null`
/// when it cannot be read.
fn exif_summary(block: Vec<u8>) -> Value {
    let Ok(exif) = exif::Reader::new().read_raw(block) else {
        return Value::Null;
    };
    let field = |tag: exif::Tag| {
        exif.get_field(tag, exif::In::PRIMARY).map(|f| {
            f.display_value()
                .with_unit(&exif)
                .to_string()
                .trim_matches('"')
                .to_owned()
        })
    };
    let gps = exif.fields().any(|f| f.tag.context() == exif::Context::Gps);
    json!({
        "make": field(exif::Tag::Make),
        "model": field(exif::Tag::Model),
        "taken": field(exif::Tag::DateTimeOriginal),
        "orientation": exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY).and_then(|f| f.value.get_uint(0)),
        "fields": exif.fields().count(),
        "gps": gps,
        "warning": gps.then_some("the image carries GPS coordinates (personal data); strip-exif or any processing removes them"),
    })
}

/// `Ok` when `block` (TIFF header first) is within the bounds above; otherwise why not. The IFDs
/// that kamadak-exif reads are walked: the chain from IFD0 and the Exif, GPS and Interoperability
/// directories, each once.
fn bounded(block: &[u8], whole_file: bool) -> Result<(), String> {
    if !whole_file && block.len() > MAX_EXIF_BYTES {
        return Err(format!(
            "the EXIF block is {} bytes, over {MAX_EXIF_BYTES}",
            block.len()
        ));
    }
    let Some(order) = ByteOrder::of(block) else {
        return Ok(()); // not TIFF-structured: the parser refuses it at once
    };
    let u16_at = |at: usize| order.u16_at(block, at);
    let u32_at = |at: usize| order.u32_at(block, at);
    let (mut entries, mut parsed) = (0u64, 0u64);
    let mut pending: Vec<u32> = u32_at(4).into_iter().collect();
    let mut seen = std::collections::HashSet::new();
    while let Some(ifd) = pending.pop() {
        let at = ifd as usize;
        if ifd == 0 || !seen.insert(ifd) {
            continue;
        }
        let Some(count) = u16_at(at) else { continue };
        entries += u64::from(count);
        if entries > MAX_EXIF_ENTRIES {
            return Err(format!("the EXIF block has more than {MAX_EXIF_ENTRIES} entries"));
        }
        for i in 0..usize::from(count) {
            let entry = at + 2 + i * 12;
            let Some((tag, kind, n)) = order.entry_at(block, entry) else {
                break;
            };
            parsed = parsed.saturating_add(parsed_size(kind, n));
            if parsed > MAX_EXIF_PARSED {
                return Err(format!(
                    "the EXIF values would take more than {MAX_EXIF_PARSED} bytes once parsed"
                ));
            }
            // ExifIFD, GPSInfo, Interoperability: directories of their own.
            if matches!(tag, 0x8769 | 0x8825 | 0xA005) {
                pending.extend(u32_at(entry + 8));
            }
        }
        pending.extend(u32_at(at + 2 + usize::from(count) * 12));
    }
    Ok(())
}

/// What `count` values of TIFF type `kind` take once parsed, at most: an ASCII value is split at
/// every NUL into strings of their own (24 bytes each, even empty); numbers take 8 or 16 bytes.
fn parsed_size(kind: u16, count: u32) -> u64 {
    let count = u64::from(count);
    match kind {
        2 => count * 24,
        1 | 6 | 7 => count,
        3 | 8 => count * 2,
        4 | 9 | 11 => count * 4,
        5 | 10 => count * 16,
        _ => count * 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian EXIF block: IFD0 with `entries` ASCII entries of `count` bytes, each at
    /// the same offset (one shared run of NULs).
    fn shared_ascii(entries: u16, count: u32) -> Vec<u8> {
        let mut block = b"II*\0".to_vec();
        block.extend(8u32.to_le_bytes());
        block.extend(entries.to_le_bytes());
        let data = 8 + 2 + u32::from(entries) * 12 + 4;
        for i in 0..entries {
            block.extend((0x9000 + i).to_le_bytes());
            block.extend(2u16.to_le_bytes());
            block.extend(count.to_le_bytes());
            block.extend(data.to_le_bytes());
        }
        block.extend(0u32.to_le_bytes());
        block.extend(vec![0u8; count as usize]);
        block
    }

    #[test]
    fn shared_value_runs_are_refused_before_parsing() {
        // 4,000 entries × 16 KB of NULs: 1.5 GB of strings once parsed, from a 64 KB block.
        let hostile = shared_ascii(4000, 16_000);
        assert!(hostile.len() <= MAX_EXIF_BYTES, "{}", hostile.len());
        let why = bounded(&hostile, false).unwrap_err();
        assert!(why.contains("once parsed"), "{why}");
    }

    #[test]
    fn ordinary_blocks_pass_and_oversized_ones_are_skipped() {
        assert_eq!(bounded(&shared_ascii(20, 32), false), Ok(()));
        let big = shared_ascii(1, 70_000);
        assert!(bounded(&big, false).unwrap_err().contains("bytes, over"));
        // A TIFF file is its own block: its size alone is no reason.
        assert_eq!(bounded(&big, true), Ok(()));
        assert!(bounded(&shared_ascii(5000, 1), true).unwrap_err().contains("entries"));
    }

    #[test]
    fn a_refused_block_is_named_in_the_description() {
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(image::RgbImage::new(4, 4))
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        // An eXIf chunk right after IHDR (8-byte signature, 25-byte IHDR chunk).
        let block = shared_ascii(4000, 16_000);
        let mut chunk = (block.len() as u32).to_be_bytes().to_vec();
        chunk.extend(b"eXIf");
        chunk.extend(&block);
        let crc = crc32(&chunk[4..]);
        chunk.extend(crc.to_be_bytes());
        png.splice(33..33, chunk);
        let described = describe(&png, ImageFormat::Png, 1).unwrap();
        assert!(
            described["exif"]["skipped"].as_str().unwrap().contains("once parsed"),
            "{described}"
        );
        assert_eq!(described["width"], 4);
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}
