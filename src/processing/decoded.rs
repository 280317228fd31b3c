//! A decoded image as every decoder hands it over: upright, in sRGB, with the EXIF block an
//! encoder may keep.

use image::{DynamicImage, metadata::Orientation};

use super::icc;

/// A decoded image, upright and in sRGB, with what the encoder may need to keep.
pub(crate) struct Decoded {
    /// The pixels; smaller than `extent.full` after shrink-on-load.
    pub image: DynamicImage,
    /// What the first step is planned from.
    pub extent: Extent,
    /// The EXIF block (TIFF header first) with its orientation reset, if the file had one.
    pub exif: Option<Vec<u8>>,
}

/// All of `image`, as [`Extent::covered`] has it.
pub(crate) fn whole(image: &DynamicImage) -> [f64; 4] {
    [0.0, 0.0, f64::from(image.width()), f64::from(image.height())]
}

/// What a step knows of its input beyond the pixels: the size it stands for and where that
/// lies in them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Extent {
    /// The upright size the file declares (what geometry is planned from; before any
    /// shrink-on-load).
    pub full: (u32, u32),
    /// Where `full` lies in the pixels, as `[left, top, width, height]`: the whole of them,
    /// except after shrink-on-load of a JPEG whose size is not a multiple of the reduction,
    /// whose last row and column stand for part of a block only (3201 pixels at 1/8 are 401
    /// pixels for 400.125). Resampling goes from exactly this.
    pub covered: [f64; 4],
}

impl Extent {
    /// The extent of an image that stands for itself (every step's result).
    pub(crate) fn of(image: &DynamicImage) -> Extent {
        Extent {
            full: (image.width(), image.height()),
            covered: whole(image),
        }
    }
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
        Some(profile) => icc::to_srgb(image, profile),
        None => image,
    };
    Decoded {
        extent: Extent::of(&image),
        image,
        exif,
    }
}
