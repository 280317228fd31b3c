//! EXIF in a TIFF result (`keep_metadata=true`). A TIFF has no EXIF block: its tags live in the
//! image's own directory (IFD0: Make, Model, DateTime, Artist, Copyright, …) and in the
//! directories IFD0 points to (the Exif IFD, the GPS IFD, and the Exif IFD's Interoperability
//! IFD). So the block's descriptive IFD0 tags join the image's directory — where both have a
//! tag, the image's own wins (size, layout, compression, resolution) — and its Exif, GPS and
//! Interoperability directories are copied into the file, every value converted to the file's
//! byte order.
//!
//! Left out: the maker note (its inner offsets are the camera maker's private format and would
//! point at the wrong bytes once moved), the orientation (results are upright) and the source's
//! colour profile (results are sRGB). A block that is not what it should be adds nothing, rather
//! than something wrong.

use super::exif::ByteOrder;

/// At most this many entries are read from one directory (a camera writes a few dozen).
const MAX_ENTRIES: u16 = 1024;

/// The directories of an EXIF block that are copied, and what each keeps.
#[derive(Clone, Copy, PartialEq)]
enum Directory {
    Ifd0,
    Exif,
    Gps,
    Interop,
}

impl Directory {
    /// Whether an entry `tag` of this directory is copied. From IFD0, the descriptive tags
    /// only: what describes the pixels (size, samples, layout, compression, strips or tiles,
    /// the thumbnail's JPEG, YCbCr, orientation, colour profile) is the image's own.
    fn keeps(self, tag: u16) -> bool {
        match self {
            Directory::Ifd0 => !matches!(
                tag,
                0x00FE..=0x0103 // subfile type, width, length, bits, compression
                    | 0x0106..=0x0108 // photometric, thresholding, cell size
                    | 0x0111 // strip offsets
                    | 0x0112 // orientation
                    | 0x0115..=0x0118 // samples per pixel, rows per strip, strip bytes, min sample
                    | 0x0119 | 0x011C // max sample, planar configuration
                    | 0x013D | 0x0140 // predictor, colour map
                    | 0x0142..=0x0145 // tiles
                    | 0x014A | 0x0152 | 0x0153 // sub-IFDs, extra samples, sample format
                    | 0x0200..=0x0217 // old-style JPEG (the thumbnail's offset, length), YCbCr
                    | 0x8773 // ICC profile
            ),
            Directory::Exif => tag != 0x927C, // the maker note
            Directory::Gps | Directory::Interop => true,
        }
    }

    /// The directory an entry `tag` of this one points to, when it is followed.
    fn follows(self, tag: u16) -> Option<Directory> {
        match (self, tag) {
            (Directory::Ifd0, 0x8769) => Some(Directory::Exif),
            (Directory::Ifd0, 0x8825) => Some(Directory::Gps),
            (Directory::Exif, 0xA005) => Some(Directory::Interop),
            _ => None,
        }
    }
}

/// One directory entry of the output: its value in little-endian bytes, or the 4-byte field
/// of an entry the file already has (a value inline or an offset into the file).
struct Entry {
    tag: u16,
    kind: u16,
    count: u32,
    value: Value,
}

enum Value {
    Field([u8; 4]),
    Bytes(Vec<u8>),
}

/// `tiff` (little-endian, as the tiff crate writes it) with the tags of the EXIF block `exif`
/// (TIFF-structured, either byte order) added as the module doc says; `tiff` unchanged when
/// either is not as expected.
pub(crate) fn with_exif(tiff: Vec<u8>, exif: &[u8]) -> Vec<u8> {
    added(&tiff, exif).unwrap_or(tiff)
}

fn added(tiff: &[u8], exif: &[u8]) -> Option<Vec<u8>> {
    if tiff.get(..4)? != b"II*\0" {
        return None;
    }
    let ifd0 = usize::try_from(ByteOrder::Little.u32_at(tiff, 4)?).ok()?;
    let count = ByteOrder::Little.u16_at(tiff, ifd0)?;
    let mut entries = Vec::new();
    for at in (0..usize::from(count)).map(|i| ifd0 + 2 + i * 12) {
        let (tag, kind, count) = ByteOrder::Little.entry_at(tiff, at)?;
        entries.push(Entry {
            tag,
            kind,
            count,
            value: Value::Field(tiff.get(at + 8..at + 12)?.try_into().ok()?),
        });
    }
    let order = ByteOrder::of(exif)?;
    let source_ifd0 = usize::try_from(order.u32_at(exif, 4)?).ok()?;
    // The image's directory is rewritten: where it is the file's tail (as the tiff crate writes
    // it), in place; otherwise after the rest (the old one is then left unreferenced).
    let end = ifd0 + 2 + usize::from(count) * 12 + 4;
    let mut out = tiff[..if end == tiff.len() { ifd0 } else { tiff.len() }].to_vec();
    let source = Source { block: exif, order };
    entries.extend(source.copied(&mut out, source_ifd0, Directory::Ifd0)?);
    let ifd = write_directory(&mut out, entries)?;
    out[4..8].copy_from_slice(&ifd.to_le_bytes());
    Some(out)
}

/// The EXIF block being copied.
struct Source<'a> {
    block: &'a [u8],
    order: ByteOrder,
}

impl Source<'_> {
    /// The entries of `directory` (at `ifd`) that it keeps, their values converted to
    /// little-endian; the directories they point to are written into `out` first.
    fn copied(&self, out: &mut Vec<u8>, ifd: usize, directory: Directory) -> Option<Vec<Entry>> {
        let (block, order) = (self.block, self.order);
        let count = order.u16_at(block, ifd)?.min(MAX_ENTRIES);
        let mut entries = Vec::new();
        for at in (0..usize::from(count)).map(|i| ifd + 2 + i * 12) {
            let (tag, kind, n) = order.entry_at(block, at)?;
            if !directory.keeps(tag) {
                continue;
            }
            if let Some(inner) = directory.follows(tag) {
                let offset = order.u32_at(block, at + 8).and_then(|o| usize::try_from(o).ok());
                if let Some(inner_entries) = offset.and_then(|o| self.copied(out, o, inner)) {
                    let ifd = write_directory(out, inner_entries)?;
                    entries.push(Entry {
                        tag,
                        kind: 4,
                        count: 1,
                        value: Value::Bytes(ifd.to_le_bytes().to_vec()),
                    });
                }
                continue;
            }
            if let Some(bytes) = self.value(at, kind, n) {
                entries.push(Entry {
                    tag,
                    kind,
                    count: n,
                    value: Value::Bytes(bytes),
                });
            }
        }
        Some(entries)
    }

    /// The value of the entry at `at` (`n` items of TIFF type `kind`) in little-endian bytes;
    /// `None` for an unknown type or a value outside the block.
    fn value(&self, at: usize, kind: u16, n: u32) -> Option<Vec<u8>> {
        let (size, unit) = type_size(kind)?;
        let length = size.checked_mul(usize::try_from(n).ok()?)?;
        let start = if length <= 4 {
            at + 8
        } else {
            usize::try_from(self.order.u32_at(self.block, at + 8)?).ok()?
        };
        let mut bytes = self.block.get(start..start.checked_add(length)?)?.to_vec();
        if matches!(self.order, ByteOrder::Big) {
            bytes.chunks_exact_mut(unit).for_each(<[u8]>::reverse);
        }
        Some(bytes)
    }
}

/// The size in bytes of one item of TIFF type `kind`, and the unit its byte order applies to
/// (a RATIONAL is two LONGs); `None` for a type TIFF 6 does not define.
fn type_size(kind: u16) -> Option<(usize, usize)> {
    match kind {
        1 | 2 | 6 | 7 => Some((1, 1)),   // BYTE, ASCII, SBYTE, UNDEFINED
        3 | 8 => Some((2, 2)),           // SHORT, SSHORT
        4 | 9 | 11 | 13 => Some((4, 4)), // LONG, SLONG, FLOAT, IFD
        5 | 10 => Some((8, 4)),          // RATIONAL, SRATIONAL
        12 => Some((8, 8)),              // DOUBLE
        _ => None,
    }
}

/// Appends `entries` to `out` as one directory, sorted by tag (the first of two entries with
/// one tag wins), values over 4 bytes before it at even offsets; returns its offset.
fn write_directory(out: &mut Vec<u8>, mut entries: Vec<Entry>) -> Option<u32> {
    entries.sort_by_key(|e| e.tag); // stable: the image's own entries stay first
    entries.dedup_by_key(|e| e.tag);
    let mut fields = Vec::with_capacity(entries.len());
    for entry in &entries {
        fields.push(match &entry.value {
            Value::Field(field) => *field,
            Value::Bytes(bytes) if bytes.len() <= 4 => {
                let mut field = [0; 4];
                field[..bytes.len()].copy_from_slice(bytes);
                field
            }
            Value::Bytes(bytes) => {
                if out.len() % 2 == 1 {
                    out.push(0);
                }
                let offset = u32::try_from(out.len()).ok()?;
                out.extend_from_slice(bytes);
                offset.to_le_bytes()
            }
        });
    }
    if out.len() % 2 == 1 {
        out.push(0);
    }
    let offset = u32::try_from(out.len()).ok()?;
    out.extend(u16::try_from(entries.len()).ok()?.to_le_bytes());
    for (entry, field) in entries.iter().zip(fields) {
        out.extend(entry.tag.to_le_bytes());
        out.extend(entry.kind.to_le_bytes());
        out.extend(entry.count.to_le_bytes());
        out.extend(field);
    }
    out.extend(0u32.to_le_bytes());
    Some(offset)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// A big-endian EXIF block: IFD0 (Make "Cam", Orientation 6, an ICC profile entry, Exif and
    /// GPS pointers) → IFD1; an Exif IFD with DateTimeOriginal, a maker note and
    /// PixelXDimension; a GPS IFD with GPSLatitude (three RATIONALs).
    fn big_endian_block() -> Vec<u8> {
        let mut b = b"MM\0*\0\0\0\x08".to_vec();
        let entry = |b: &mut Vec<u8>, tag: u16, kind: u16, count: u32, field: [u8; 4]| {
            b.extend(tag.to_be_bytes());
            b.extend(kind.to_be_bytes());
            b.extend(count.to_be_bytes());
            b.extend(field);
        };
        // IFD0 at 8: 5 entries → 8 + 2 + 60 + 4 = 74.
        b.extend(5u16.to_be_bytes());
        entry(&mut b, 0x010F, 2, 4, *b"Cam\0");
        entry(&mut b, 0x0112, 3, 1, [0, 6, 0, 0]);
        entry(&mut b, 0x8769, 4, 1, 74u32.to_be_bytes());
        entry(&mut b, 0x8773, 7, 4, [1, 2, 3, 4]);
        entry(&mut b, 0x8825, 4, 1, 160u32.to_be_bytes());
        b.extend(200u32.to_be_bytes()); // IFD1, never read
        // Exif IFD at 74: 3 entries → 74 + 2 + 36 + 4 = 116; DateTimeOriginal's 20 bytes at 116,
        // the maker note's 8 at 136, then 16 of padding up to the GPS IFD at 160.
        b.extend(3u16.to_be_bytes());
        entry(&mut b, 0x9003, 2, 20, 116u32.to_be_bytes());
        entry(&mut b, 0x927C, 7, 8, 136u32.to_be_bytes());
        entry(&mut b, 0xA002, 4, 1, 640u32.to_be_bytes());
        b.extend(0u32.to_be_bytes());
        b.extend(b"2026:01:02 03:04:05\0");
        b.extend(b"MAKERNOT");
        b.resize(160, 0);
        // GPS IFD at 160: 1 entry → 160 + 2 + 12 + 4 = 178; the latitude's 24 bytes at 178.
        b.extend(1u16.to_be_bytes());
        entry(&mut b, 0x0002, 5, 3, 178u32.to_be_bytes());
        b.extend(0u32.to_be_bytes());
        for (n, d) in [(51u32, 1u32), (30, 1), (1234, 100)] {
            b.extend(n.to_be_bytes());
            b.extend(d.to_be_bytes());
        }
        b
    }

    fn tiff(w: u32, h: u32) -> (Vec<u8>, Vec<u8>) {
        let pixels: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
        let mut out = Vec::new();
        tiff::encoder::TiffEncoder::new(Cursor::new(&mut out))
            .unwrap()
            .write_image::<tiff::encoder::colortype::RGB8>(w, h, &pixels)
            .unwrap();
        (out, pixels)
    }

    #[test]
    fn a_big_endian_blocks_tags_become_the_tiffs_own_and_the_pixels_stay() {
        let (plain, pixels) = tiff(24, 16);
        let tagged = with_exif(plain, &big_endian_block());
        let image = image::load_from_memory(&tagged).unwrap().to_rgb8();
        assert_eq!(image.dimensions(), (24, 16));
        assert_eq!(image.as_raw(), &pixels, "the pixels are the image's");
        let exif = exif::Reader::new().read_raw(tagged).unwrap();
        let text = |tag| {
            exif.get_field(tag, exif::In::PRIMARY)
                .map(|f| f.display_value().to_string())
        };
        assert_eq!(text(exif::Tag::Make).as_deref(), Some("\"Cam\""));
        assert_eq!(
            text(exif::Tag::DateTimeOriginal).as_deref(),
            Some("2026-01-02 03:04:05")
        );
        assert_eq!(text(exif::Tag::PixelXDimension).as_deref(), Some("640"));
        assert_eq!(
            text(exif::Tag::ImageWidth).as_deref(),
            Some("24"),
            "the image's own size"
        );
        let latitude = exif.get_field(exif::Tag::GPSLatitude, exif::In::PRIMARY).unwrap();
        let exif::Value::Rational(ref parts) = latitude.value else {
            panic!("{:?}", latitude.value)
        };
        assert_eq!(
            parts.iter().map(|r| (r.num, r.denom)).collect::<Vec<_>>(),
            [(51, 1), (30, 1), (1234, 100)]
        );
        for gone in [
            exif::Tag::Orientation,
            exif::Tag::MakerNote,
            exif::Tag(exif::Context::Tiff, 0x8773),
        ] {
            assert!(exif.get_field(gone, exif::In::PRIMARY).is_none(), "{gone} was copied");
        }
    }

    #[test]
    fn a_block_that_is_not_tiff_structured_adds_nothing() {
        let (plain, _) = tiff(8, 8);
        assert_eq!(with_exif(plain.clone(), b"not exif"), plain);
        let mut truncated = big_endian_block();
        truncated.truncate(80);
        let tagged = with_exif(plain.clone(), &truncated);
        // Make survives from IFD0; the Exif IFD's entries are cut off: none of it is copied.
        let exif = exif::Reader::new().read_raw(tagged).unwrap();
        assert!(exif.get_field(exif::Tag::Make, exif::In::PRIMARY).is_some());
        assert!(exif.get_field(exif::Tag::DateTimeOriginal, exif::In::PRIMARY).is_none());
    }
}
