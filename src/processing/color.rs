//! Colour: an embedded ICC profile is honoured by converting the pixels to sRGB (moxcms, the
//! `image` crate's own colour management), so that every output is sRGB without a profile —
//! what browsers assume of an untagged image. A profile that cannot be read, or one for a
//! colour space other than RGB, leaves the pixels as they are (like a browser would show them).
//! CMYK pixels with a CMYK profile are converted by [`cmyk_to_srgb`] (`jpeg.rs` decodes them
//! to ink values for it).

use image::DynamicImage;
use moxcms::{ColorProfile, DataColorSpace, Layout, TransformOptions};

/// Whether `icc` is a readable CMYK profile.
pub(crate) fn is_cmyk(icc: &[u8]) -> bool {
    ColorProfile::new_from_slice(icc).is_ok_and(|p| p.color_space == DataColorSpace::Cmyk)
}

/// 8-bit CMYK ink values (0: no ink) converted through the CMYK profile `icc` to 8-bit sRGB,
/// perceptual intent (LittleCMS's default); `None` when the profile cannot be used.
pub(crate) fn cmyk_to_srgb(cmyk: &[u8], icc: &[u8]) -> Option<Vec<u8>> {
    let source = ColorProfile::new_from_slice(icc).ok()?;
    let transform = source
        .create_transform_8bit(
            Layout::Rgba,
            &ColorProfile::new_srgb(),
            Layout::Rgb,
            TransformOptions::default(),
        )
        .ok()?;
    let mut rgb = vec![0u8; cmyk.len() / 4 * 3];
    transform.transform(cmyk, &mut rgb).ok()?;
    Some(rgb)
}

/// `image` converted from the colour space `icc` describes to sRGB (8-bit RGB and RGBA).
pub(crate) fn to_srgb(image: DynamicImage, icc: &[u8]) -> DynamicImage {
    let Ok(source) = ColorProfile::new_from_slice(icc) else {
        return image;
    };
    if source.color_space != DataColorSpace::Rgb {
        return image;
    }
    let srgb = ColorProfile::new_srgb();
    let convert = |layout: Layout, pixels: &[u8], out: &mut [u8]| {
        source
            .create_transform_8bit(layout, &srgb, layout, TransformOptions::default())
            .and_then(|t| t.transform(pixels, out))
            .is_ok()
    };
    match image {
        DynamicImage::ImageRgb8(rgb) => {
            let mut out = rgb.clone();
            if convert(Layout::Rgb, rgb.as_raw(), &mut out) {
                DynamicImage::ImageRgb8(out)
            } else {
                DynamicImage::ImageRgb8(rgb)
            }
        }
        DynamicImage::ImageRgba8(rgba) => {
            let mut out = rgba.clone();
            if convert(Layout::Rgba, rgba.as_raw(), &mut out) {
                DynamicImage::ImageRgba8(out)
            } else {
                DynamicImage::ImageRgba8(rgba)
            }
        }
        other => other,
    }
}
