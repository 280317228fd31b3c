//! The EXIF block a result keeps (`keep_metadata=true`): what is still true of the result, and
//! nothing that is not. The orientation is reset when the pixels are turned (`decoded.rs`);
//! here the embedded thumbnail (IFD1: the source's pixels, unrotated and uncropped — viewers
//! showed it sideways) is dropped, and `PixelXDimension`/`PixelYDimension` (the "Exif image
//! width/height") are rewritten to the result's size. Everything else — camera, date, exposure,
//! GPS — is the photograph's and stays. Edits are made in place; a block whose structure is not
//! what it should be is kept as it was rather than guessed at.

/// The byte order of a TIFF-structured block (EXIF's body), read from its header; the one
/// reader of its numbers for this module and for the bounds check in `metadata.rs`.
#[derive(Clone, Copy)]
pub(super) enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    /// `II` or `MM` at the start of `block`, or `None` when it is not TIFF-structured.
    pub(super) fn of(block: &[u8]) -> Option<Self> {
        match block.get(..2)? {
            b"II" => Some(Self::Little),
            b"MM" => Some(Self::Big),
            _ => None,
        }
    }

    pub(super) fn u16_at(self, block: &[u8], at: usize) -> Option<u16> {
        let bytes = block.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(match self {
            Self::Little => u16::from_le_bytes(bytes),
            Self::Big => u16::from_be_bytes(bytes),
        })
    }

    pub(super) fn u32_at(self, block: &[u8], at: usize) -> Option<u32> {
        let bytes = block.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(match self {
            Self::Little => u32::from_le_bytes(bytes),
            Self::Big => u32::from_be_bytes(bytes),
        })
    }

    /// The tag, type and count of the 12-byte directory entry at `at` (its value or offset
    /// follows them).
    pub(super) fn entry_at(self, block: &[u8], at: usize) -> Option<(u16, u16, u32)> {
        Some((
            self.u16_at(block, at)?,
            self.u16_at(block, at.checked_add(2)?)?,
            self.u32_at(block, at.checked_add(4)?)?,
        ))
    }

    fn u16_bytes(self, value: u16) -> [u8; 2] {
        match self {
            Self::Little => value.to_le_bytes(),
            Self::Big => value.to_be_bytes(),
        }
    }

    fn u32_bytes(self, value: u32) -> [u8; 4] {
        match self {
            Self::Little => value.to_le_bytes(),
            Self::Big => value.to_be_bytes(),
        }
    }
}

/// `block` (TIFF header first) made true of a `width`×`height` result.
pub(crate) fn refreshed(mut block: Vec<u8>, (width, height): (u32, u32)) -> Vec<u8> {
    let Some(order) = ByteOrder::of(&block) else {
        return block;
    };
    let u16_at = |b: &[u8], at: usize| order.u16_at(b, at);
    let u32_at = |b: &[u8], at: usize| order.u32_at(b, at);
    let put = |b: &mut [u8], at: usize, bytes: &[u8]| {
        if let Some(slot) = b.get_mut(at..at + bytes.len()) {
            slot.copy_from_slice(bytes);
        }
    };
    let (put16, put32) = (|v: u16| order.u16_bytes(v), |v: u32| order.u32_bytes(v));
    let Some(ifd0) = u32_at(&block, 4).map(|o| o as usize) else {
        return block;
    };
    let Some(count) = u16_at(&block, ifd0) else {
        return block;
    };
    let entries = |ifd: usize, count: u16| (0..usize::from(count)).map(move |i| ifd + 2 + i * 12);
    // No IFD1 (the thumbnail) after IFD0.
    put(&mut block, ifd0 + 2 + usize::from(count) * 12, &put32(0));
    // The Exif IFD's pixel dimensions.
    let exif_ifd = entries(ifd0, count)
        .find(|&e| u16_at(&block, e) == Some(0x8769))
        .and_then(|e| u32_at(&block, e + 8))
        .map(|o| o as usize);
    if let Some(ifd) = exif_ifd
        && let Some(count) = u16_at(&block, ifd)
    {
        for entry in entries(ifd, count) {
            let value = match u16_at(&block, entry) {
                Some(0xA002) => width,
                Some(0xA003) => height,
                _ => continue,
            };
            match u16_at(&block, entry + 2) {
                Some(3) => put(&mut block, entry + 8, &put16(u16::try_from(value).unwrap_or(u16::MAX))),
                Some(4) => put(&mut block, entry + 8, &put32(value)),
                _ => {}
            }
        }
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian block: IFD0 (Make, ExifIFD pointer) → IFD1 (a thumbnail), and an Exif
    /// IFD with PixelXDimension (SHORT) and PixelYDimension (LONG) of 4000×3000.
    fn block() -> Vec<u8> {
        let mut b = b"II*\0\x08\0\0\0".to_vec();
        // IFD0 at 8: 2 entries, next IFD at 38.
        b.extend(2u16.to_le_bytes());
        b.extend([0x0F, 0x01, 2, 0, 4, 0, 0, 0, b'A', b'B', b'C', 0]);
        b.extend([0x69, 0x87, 4, 0, 1, 0, 0, 0, 56, 0, 0, 0]);
        b.extend(38u32.to_le_bytes());
        // IFD1 at 38: 1 entry (JPEGInterchangeFormat), next 0.
        b.extend(1u16.to_le_bytes());
        b.extend([0x01, 0x02, 4, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        b.extend(0u32.to_le_bytes());
        // Exif IFD at 56: 2 entries, next 0.
        b.extend(2u16.to_le_bytes());
        b.extend([0x02, 0xA0, 3, 0, 1, 0, 0, 0]);
        b.extend(4000u16.to_le_bytes());
        b.extend([0, 0]);
        b.extend([0x03, 0xA0, 4, 0, 1, 0, 0, 0]);
        b.extend(3000u32.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b
    }

    #[test]
    fn the_thumbnail_goes_and_the_pixel_dimensions_follow_the_result() {
        let refreshed = refreshed(block(), (300, 400));
        let exif = exif::Reader::new().read_raw(refreshed).unwrap();
        let field = |tag, ifd| exif.get_field(tag, ifd).and_then(|f| f.value.get_uint(0));
        assert_eq!(field(exif::Tag::PixelXDimension, exif::In::PRIMARY), Some(300));
        assert_eq!(field(exif::Tag::PixelYDimension, exif::In::PRIMARY), Some(400));
        assert!(
            exif.get_field(exif::Tag::JPEGInterchangeFormat, exif::In::THUMBNAIL)
                .is_none(),
            "the thumbnail stayed"
        );
        assert!(
            exif.get_field(exif::Tag::Make, exif::In::PRIMARY).is_some(),
            "the camera is still the camera"
        );
    }

    #[test]
    fn a_block_that_is_not_tiff_is_kept_as_it_is() {
        assert_eq!(refreshed(b"nonsense".to_vec(), (1, 1)), b"nonsense");
        assert_eq!(refreshed(b"II*\0\xFF\xFF\0\0".to_vec(), (1, 1)), b"II*\0\xFF\xFF\0\0");
    }
}
