//! A decoded image as every decoder hands it over: upright, in sRGB, with the EXIF block an
//! encoder may keep.

use image::{DynamicImage, metadata::Orientation};

use super::color;

/// A decoded image, upright and in sRGB, with what the encoder may need to keep.
pub(crate) struct Decoded {
    /// The pixels; smaller than `full_size` after shrink-on-load.
    pub image: DynamicImage,
    /// The upright size the file declares (what geometry is planned from).
    pub full_size: (u32, u32),
    /// The EXIF block (TIFF header first) with its orientation reset, if the file had one.
    pub exif: Option<Vec<u8>>,
}

/// What the first operation needs at least, given the upright full size: `Some((w, h))` lets a
/// JPEG be decoded at 1/2, 1/4 or 1/8 scale as long as the result still covers `w`×`h`.
pub(crate) type ShrinkHint<'a> = &'a dyn Fn(u32, u32) -> Option<(u32, u32)>;

/// Turns `image` upright, into sRGB, and resets the orientation kept in `exif`.
pub(super) fn upright(
    mut image: DynamicImage,
    orientation: Orientation,
    icc: Option<&[u8]>,
    mut exif: Option<Vec<u8>>,
) -> Decoded {
    image.apply_orientation(orientation);
    if let Some(exif) = exif.as_mut() {
        let _ = Orientation::remove_from_exif_chunk(exif);
    }
    let image = match icc {
        Some(profile) => color::to_srgb(image, profile),
        None => image,
    };
    Decoded {
        full_size: (image.width(), image.height()),
        image,
        exif,
    }
}
