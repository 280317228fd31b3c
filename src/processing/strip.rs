//! `strip-exif` without decoding: the metadata segments of a JPEG, PNG or WebP are dropped and
//! every other byte is kept, so the pixels are exactly the source's (a re-encode at quality 80
//! turned a 141 KB q95 JPEG into 50 KB at 32.8 dB, and every pass lost more).
//!
//! What goes: EXIF (GPS included), XMP, IPTC/Photoshop blocks, comments, text chunks, and any
//! images appended after a JPEG's end (MPF pictures, with their own EXIF). What stays: the
//! colour profile (ICC), Adobe's colour-transform marker, JFIF, PNG's colour and density chunks.
//! One fact of the EXIF block is still true and needed to show the image right: its
//! orientation. When it is not "upright", a minimal EXIF block holding only the orientation
//! replaces the original, so viewers turn the image as before.
//! Other formats (TIFF keeps its metadata in the image's own directory; GIF and BMP carry none
//! worth the name) take the decode-and-encode path, which is lossless for them.

use image::metadata::Orientation;

use super::jpeg_markers;
use crate::object_name::ImageFormat;

/// `bytes` (a `format` image that passed the content check) without its metadata, or `None`
/// when this format is not handled here or the structure is not what it should be (the caller
/// then re-encodes).
pub(crate) fn strip(bytes: &[u8], format: ImageFormat) -> Option<Vec<u8>> {
    match format {
        ImageFormat::Jpeg => jpeg(bytes),
        ImageFormat::Png => png(bytes),
        ImageFormat::Webp => webp(bytes),
        _ => None,
    }
}

/// A little-endian TIFF block (EXIF's body) with one entry: Orientation.
fn orientation_only(orientation: Orientation) -> Vec<u8> {
    let mut block = b"II*\0\x08\0\0\0\x01\0".to_vec();
    block.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0]);
    block.extend(u16::from(orientation.to_exif()).to_le_bytes());
    block.extend([0, 0, 0, 0, 0, 0]);
    block
}

/// The orientation an EXIF block (TIFF header first) gives, when it is not upright.
fn turned(exif: &[u8]) -> Option<Orientation> {
    Orientation::from_exif_chunk(exif).filter(|o| *o != Orientation::NoTransforms)
}

fn jpeg(bytes: &[u8]) -> Option<Vec<u8>> {
    jpeg_with_exif(bytes, |exif| exif.and_then(turned).map(orientation_only))
}

/// `bytes` (a JPEG) with its metadata segments dropped, as `strip` does, and the EXIF block
/// that `exif` makes of the source's (TIFF header first; `None` if it had none) written in
/// their place, if any. `None` when the structure is not what it should be.
pub(super) fn jpeg_with_exif(bytes: &[u8], exif: impl FnOnce(Option<&[u8]>) -> Option<Vec<u8>>) -> Option<Vec<u8>> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut out = vec![0xFF, 0xD8];
    let mut source_exif = None;
    let mut scan = None;
    // Marker segments up to the first scan: each kept or dropped whole.
    for segment in jpeg_markers::header(bytes) {
        if segment.marker == jpeg_markers::SOS {
            scan = Some(segment.at);
            break;
        }
        let body = segment.body();
        let keep = match segment.marker {
            0xE1 => {
                if let Some(exif) = body.strip_prefix(b"Exif\0\0") {
                    source_exif = source_exif.or(Some(exif));
                }
                false
            }
            0xE2 => body.starts_with(b"ICC_PROFILE\0"),
            0xE0 | 0xEE => true,         // JFIF (and JFXX), Adobe
            0xE3..=0xEF | 0xFE => false, // other application data (APP13: IPTC), comments
            _ => true,                   // tables, frame headers, restart interval
        };
        if keep {
            out.extend_from_slice(segment.bytes);
        }
    }
    // A header that does not reach its scan is left to the decoder (re-encoded).
    let scan = scan?;
    if let Some(block) = exif(source_exif) {
        let mut exif = b"Exif\0\0".to_vec();
        exif.extend(block);
        let mut segment = vec![0xFF, 0xE1];
        segment.extend(u16::try_from(exif.len() + 2).ok()?.to_be_bytes());
        segment.extend(exif);
        // After JFIF when there is one (it must come first), else right after SOI.
        let after = if out.get(2..4) == Some(&[0xFF, 0xE0]) {
            4 + usize::from(u16::from_be_bytes([out[4], out[5]]))
        } else {
            2
        };
        out.splice(after..after, segment);
    }
    // The scans, to the end of the image: anything appended after it goes.
    let end = jpeg_markers::walk(bytes, scan).end?;
    out.extend_from_slice(&bytes[scan..end]);
    Some(out)
}

fn png(bytes: &[u8]) -> Option<Vec<u8>> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !bytes.starts_with(SIGNATURE) {
        return None;
    }
    let mut out = SIGNATURE.to_vec();
    // eXIf may come anywhere before IDAT: the minimal one goes right after IHDR.
    let orientation = turned_png(bytes);
    let mut at = SIGNATURE.len();
    while at < bytes.len() {
        let length = usize::try_from(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?)).ok()?;
        let kind = bytes.get(at + 4..at + 8)?;
        let chunk = bytes.get(at..at + 12 + length)?;
        match kind {
            b"eXIf" | b"tEXt" | b"zTXt" | b"iTXt" | b"tIME" => {}
            _ => out.extend_from_slice(chunk),
        }
        if kind == b"IHDR"
            && let Some(orientation) = orientation
        {
            let block = orientation_only(orientation);
            let mut chunk = u32::try_from(block.len()).ok()?.to_be_bytes().to_vec();
            chunk.extend(b"eXIf");
            chunk.extend(&block);
            let crc = crc32fast::hash(&chunk[4..]);
            chunk.extend(crc.to_be_bytes());
            out.extend(chunk);
        }
        at += 12 + length;
        if kind == b"IEND" {
            break;
        }
    }
    Some(out)
}

/// The orientation of a PNG's `eXIf` chunk, wherever it is, when not upright.
fn turned_png(bytes: &[u8]) -> Option<Orientation> {
    let mut at = 8;
    while let Some(header) = bytes.get(at..at + 8) {
        let length = usize::try_from(u32::from_be_bytes(header[..4].try_into().ok()?)).ok()?;
        if &header[4..] == b"eXIf" {
            return turned(bytes.get(at + 8..at + 8 + length)?);
        }
        at += 12 + length;
    }
    None
}

fn webp(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.get(..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WEBP") {
        return None;
    }
    let mut chunks = Vec::new();
    let mut orientation = None;
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let kind = &bytes[at..at + 4];
        let length = usize::try_from(u32::from_le_bytes(bytes[at + 4..at + 8].try_into().ok()?)).ok()?;
        let padded = length + (length & 1);
        let chunk = bytes
            .get(at..at + 8 + padded)
            .or_else(|| bytes.get(at..at + 8 + length))?;
        match kind {
            b"EXIF" => orientation = orientation.or(turned(&chunk[8..8 + length])),
            b"XMP " => {}
            _ => chunks.push(chunk.to_vec()),
        }
        at += 8 + padded;
    }
    let mut exif_flag = false;
    if let Some(orientation) = orientation {
        let block = orientation_only(orientation);
        let mut chunk = b"EXIF".to_vec();
        chunk.extend(u32::try_from(block.len()).ok()?.to_le_bytes());
        chunk.extend(&block);
        if block.len() % 2 == 1 {
            chunk.push(0);
        }
        // Metadata chunks follow the image data.
        chunks.push(chunk);
        exif_flag = true;
    }
    // The extended header's flags say which metadata chunks there are.
    if let Some(vp8x) = chunks.iter_mut().find(|c| c.starts_with(b"VP8X")) {
        let flags = vp8x.get_mut(8)?;
        *flags &= !(0x08 | 0x04);
        if exif_flag {
            *flags |= 0x08;
        }
    } else if exif_flag {
        // A simple WebP has nowhere to declare EXIF: keep it upright the long way.
        return None;
    }
    let body: Vec<u8> = chunks.concat();
    let mut out = b"RIFF".to_vec();
    out.extend(u32::try_from(body.len() + 4).ok()?.to_le_bytes());
    out.extend(b"WEBP");
    out.extend(body);
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use image::{DynamicImage, ImageDecoder};

    use super::*;

    fn photo() -> DynamicImage {
        DynamicImage::ImageRgb8(image::RgbImage::from_fn(64, 40, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 6) as u8, ((x * y) % 251) as u8])
        }))
    }

    /// An EXIF body with Orientation and a GPS directory pointer (enough for a reader to find GPS).
    fn exif_body(orientation: u16) -> Vec<u8> {
        let mut block = b"II*\0\x08\0\0\0\x02\0".to_vec();
        block.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0]);
        block.extend(orientation.to_le_bytes());
        block.extend([0, 0]);
        // GPSInfo → an empty directory right after this one.
        block.extend([0x25, 0x88, 4, 0, 1, 0, 0, 0]);
        block.extend(38u32.to_le_bytes());
        block.extend([0, 0, 0, 0]);
        block.extend([0, 0, 0, 0, 0, 0]);
        block
    }

    fn jpeg_with(orientation: u16) -> Vec<u8> {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode_image(&photo())
            .unwrap();
        let mut exif = b"Exif\0\0".to_vec();
        exif.extend(exif_body(orientation));
        let mut segment = vec![0xFF, 0xE1];
        segment.extend(((exif.len() + 2) as u16).to_be_bytes());
        segment.extend(exif);
        segment.extend([0xFF, 0xFE, 0, 7]);
        segment.extend(b"hello");
        jpeg.splice(2..2, segment);
        // An appended picture (as MPF writes) goes too.
        jpeg.extend([0xFF, 0xD8, 0xFF, 0xD9]);
        jpeg
    }

    fn orientation_of(bytes: &[u8], format: image::ImageFormat) -> Orientation {
        let reader = image::ImageReader::with_format(Cursor::new(bytes), format);
        reader.into_decoder().unwrap().orientation().unwrap()
    }

    #[test]
    fn a_jpeg_loses_its_metadata_and_keeps_every_pixel() {
        let source = jpeg_with(1);
        let stripped = strip(&source, ImageFormat::Jpeg).unwrap();
        assert!(!stripped.windows(4).any(|w| w == b"Exif"), "EXIF survived");
        assert!(!stripped.windows(5).any(|w| w == b"hello"), "the comment survived");
        let (a, b) = (
            image::load_from_memory(&source).unwrap(),
            image::load_from_memory(&stripped).unwrap(),
        );
        assert_eq!(a.to_rgb8(), b.to_rgb8(), "the pixels are the source's, bit for bit");
        // The EXIF segment, the comment and the appended picture are all that went.
        assert_eq!(
            source.len() - stripped.len(),
            (2 + 2 + 6 + exif_body(1).len()) + (2 + 7) + 4
        );
        assert_eq!(
            strip(&stripped, ImageFormat::Jpeg).unwrap(),
            stripped,
            "a second pass changes nothing"
        );
    }

    #[test]
    fn a_turned_jpeg_keeps_only_its_orientation() {
        let stripped = strip(&jpeg_with(6), ImageFormat::Jpeg).unwrap();
        assert_eq!(
            orientation_of(&stripped, image::ImageFormat::Jpeg),
            Orientation::Rotate90
        );
        let exif = exif::Reader::new()
            .read_from_container(&mut Cursor::new(&stripped))
            .unwrap();
        assert_eq!(exif.fields().count(), 1, "only the orientation is left");
        assert!(!exif.fields().any(|f| f.tag.context() == exif::Context::Gps));
    }

    #[test]
    fn png_and_webp_lose_their_metadata_and_keep_every_pixel() {
        let mut png = Vec::new();
        let mut encoder = image::codecs::png::PngEncoder::new(&mut png);
        image::ImageEncoder::set_exif_metadata(&mut encoder, exif_body(8)).unwrap();
        image::ImageEncoder::write_image(encoder, photo().as_bytes(), 64, 40, image::ExtendedColorType::Rgb8).unwrap();
        let stripped = strip(&png, ImageFormat::Png).unwrap();
        assert_eq!(
            image::load_from_memory(&stripped).unwrap(),
            image::load_from_memory(&png).unwrap()
        );
        assert_eq!(
            orientation_of(&stripped, image::ImageFormat::Png),
            Orientation::Rotate270
        );
        assert!(stripped.len() < png.len(), "the GPS pointer went with the rest");

        let mut webp = Vec::new();
        let mut encoder = image::codecs::webp::WebPEncoder::new_lossless(&mut webp);
        image::ImageEncoder::set_exif_metadata(&mut encoder, exif_body(1)).unwrap();
        image::ImageEncoder::write_image(
            encoder,
            photo().to_rgba8().as_raw(),
            64,
            40,
            image::ExtendedColorType::Rgba8,
        )
        .unwrap();
        assert!(webp.windows(4).any(|w| w == b"EXIF"));
        let stripped = strip(&webp, ImageFormat::Webp).unwrap();
        assert!(!stripped.windows(4).any(|w| w == b"EXIF"));
        assert_eq!(
            image::load_from_memory(&stripped).unwrap(),
            image::load_from_memory(&webp).unwrap()
        );
        assert_eq!(
            u32::from_le_bytes(stripped[4..8].try_into().unwrap()) as usize,
            stripped.len() - 8
        );
    }
}
