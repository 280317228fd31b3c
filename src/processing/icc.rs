//! Colour: an embedded ICC profile is honoured by converting the pixels to sRGB (moxcms, the
//! `image` crate's own colour management), so that every output is sRGB without a profile —
//! what browsers assume of an untagged image. A profile that cannot be read, or one for a
//! colour space other than RGB, leaves the pixels as they are (like a browser would show them).
//! CMYK pixels with a CMYK profile are converted by [`cmyk_to_srgb`] (`jpeg.rs` decodes them
//! to ink values for it).

use image::DynamicImage;
use moxcms::{ColorProfile, DataColorSpace, Layout, TransformOptions};

use super::error::ProcessError;
use crate::object_name::ImageFormat;

/// SECURITY: the largest colour profile read. Real ones are a few kilobytes (sRGB: 3 KB) to
/// about 2 MB (printer profiles with large tables). A PNG's profile is compressed: 400 MB of
/// it fit in 400 KB of file, and the PNG decoder inflated it within its allocation limit, then
/// the `image` crate copied it (811 MB for a 16×16 image). In JPEG, WebP and TIFF files a
/// profile is stored as it is, bounded by the input's size, and held to this once read.
pub(crate) const MAX_PROFILE_BYTES: usize = 8 << 20;

/// `Err` when `bytes`, a `format` image, embeds a colour profile over [`MAX_PROFILE_BYTES`]:
/// for PNG, found by inflating its iCCP chunk up to the bound, before any decoder reads it.
pub(crate) fn check_profile_size(bytes: &[u8], format: ImageFormat) -> Result<(), ProcessError> {
    if format != ImageFormat::Png {
        return Ok(());
    }
    let Some(compressed) = png_iccp(bytes) else {
        return Ok(());
    };
    match fdeflate::decompress_to_vec_bounded(compressed, MAX_PROFILE_BYTES) {
        Err(fdeflate::BoundedDecompressionError::OutputTooLarge { .. }) => Err(too_large()),
        // A corrupt stream is the decoder's to report.
        _ => Ok(()),
    }
}

/// `Err` when a profile read from a file is over [`MAX_PROFILE_BYTES`].
pub(crate) fn check_profile(icc: &[u8]) -> Result<(), ProcessError> {
    if icc.len() > MAX_PROFILE_BYTES {
        return Err(too_large());
    }
    Ok(())
}

fn too_large() -> ProcessError {
    ProcessError::Unsupported(format!(
        "the embedded colour profile is over {} MiB (real ones are a few KB to 2 MB); remove it or embed another",
        MAX_PROFILE_BYTES >> 20
    ))
}

/// The zlib stream of a PNG's iCCP chunk (after the profile's name and compression method), if
/// it has one before its image data.
fn png_iccp(bytes: &[u8]) -> Option<&[u8]> {
    let mut at = 8;
    loop {
        let length = usize::try_from(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?)).ok()?;
        let kind = bytes.get(at + 4..at + 8)?;
        let data = bytes.get(at + 8..(at + 8).checked_add(length)?)?;
        match kind {
            b"iCCP" => {
                let name_end = data.iter().position(|&b| b == 0)?;
                return data.get(name_end + 2..);
            }
            b"IDAT" | b"IEND" => return None,
            _ => at += 12 + length,
        }
    }
}

/// Whether `icc` is a readable CMYK profile.
pub(crate) fn is_cmyk(icc: &[u8]) -> bool {
    ColorProfile::new_from_slice(icc).is_ok_and(|p| p.color_space == DataColorSpace::Cmyk)
}

/// 8-bit CMYK ink values (0: no ink) converted through the CMYK profile `icc` to 8-bit sRGB,
/// perceptual intent (the profile's `A2B0`; within 1 level of LittleCMS towards a v2 sRGB
/// profile, see docs/processing.md); `None` when the profile cannot be used.
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
