//! JPEG decoding with shrink-on-load. When the first step will make the image at least twice
//! smaller, the decoder's scaled IDCT produces 1/2, 1/4 or 1/8 of the pixels directly (the
//! target still covered), as libvips does with libjpeg.
//!
//! Two decoders, one choice at build time:
//! - default (pure Rust): jpeg-decoder's DCT scaling when a scale below 1 applies, else the
//!   `image` crate's full decode (zune-jpeg) — `cargo build` needs nothing but Rust and a C
//!   compiler;
//! - feature `libjpeg-turbo` (the container image and the benchmark): libjpeg-turbo's
//!   TurboJPEG API (built from source with cmake and NASM), for every JPEG: 22 % less decode
//!   time on the benchmark's photographs (docs/processing.md), and a scan limit against
//!   progressive JPEGs built to cost unbounded time.
//!
//! Metadata (orientation, ICC profile, EXIF) comes from the `image` crate's header parse in
//! both cases. CMYK JPEGs, and anything a fast path declines, take the full decode.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, metadata::Orientation};

use super::{
    decoded::{Decoded, ShrinkHint, upright},
    error::ProcessError,
};

/// The JPEG decoded by the fast path, or `None` when the caller should run the full decoder.
pub(super) fn decode(bytes: &[u8], max_pixels: u64, hint: ShrinkHint<'_>) -> Result<Option<Decoded>, ProcessError> {
    let undecodable = |e: image::ImageError| ProcessError::Undecodable(e.to_string());
    let mut header = image::codecs::jpeg::JpegDecoder::new(Cursor::new(bytes)).map_err(undecodable)?;
    let (width, height) = header.dimensions();
    let orientation = header.orientation().unwrap_or(Orientation::NoTransforms);
    let turned = matches!(
        orientation,
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
    );
    let (upright_w, upright_h) = if turned { (height, width) } else { (width, height) };
    // What the first step needs, in the file's own orientation.
    let wanted = hint(upright_w, upright_h).map(|(w, h)| if turned { (h, w) } else { (w, h) });
    let Some(image) = backend::pixels(bytes, (width, height), wanted, max_pixels)? else {
        return Ok(None);
    };
    let icc = header.icc_profile().ok().flatten();
    let exif = header.exif_metadata().ok().flatten();
    let mut decoded = upright(image, orientation, icc.as_deref(), exif);
    decoded.full_size = (upright_w, upright_h);
    Ok(Some(decoded))
}

/// The largest reduction `n` in 1, 2, 4, 8 such that `size / n` (rounded up) still covers `wanted`.
fn reduction(size: (u32, u32), wanted: Option<(u32, u32)>) -> u32 {
    let Some((want_w, want_h)) = wanted else {
        return 1;
    };
    [8, 4, 2]
        .into_iter()
        .find(|n| size.0.div_ceil(*n) >= want_w.max(1) && size.1.div_ceil(*n) >= want_h.max(1))
        .unwrap_or(1)
}

/// Decoded 8-bit samples as an image: grey or RGB, `short` when there are fewer than declared.
fn raster(gray: bool, w: u32, h: u32, data: Vec<u8>, short: ProcessError) -> Result<DynamicImage, ProcessError> {
    let image = if gray {
        image::GrayImage::from_raw(w, h, data).map(DynamicImage::ImageLuma8)
    } else {
        image::RgbImage::from_raw(w, h, data).map(DynamicImage::ImageRgb8)
    };
    image.ok_or(short)
}

#[cfg(feature = "libjpeg-turbo")]
mod backend {
    use image::DynamicImage;

    use super::{raster, reduction};
    use crate::processing::error::ProcessError;

    /// More scans than any encoder writes (libjpeg's progressive scripts use ~10): a file with
    /// thousands of tiny scans would otherwise cost a full pass over the image for each.
    const MAX_SCANS: u32 = 256;

    /// Every baseline or progressive RGB/grey JPEG, at the reduction that still covers
    /// `wanted`; `None` for CMYK and for files libjpeg-turbo refuses (the full decoder then
    /// gives the precise error).
    pub(super) fn pixels(
        bytes: &[u8],
        size: (u32, u32),
        wanted: Option<(u32, u32)>,
        max_pixels: u64,
    ) -> Result<Option<DynamicImage>, ProcessError> {
        let Ok(mut decoder) = turbojpeg::Decompressor::new() else {
            return Ok(None);
        };
        let Ok(header) = decoder.read_header(bytes) else {
            return Ok(None);
        };
        let format = match header.colorspace {
            turbojpeg::Colorspace::Gray => turbojpeg::PixelFormat::GRAY,
            turbojpeg::Colorspace::YCbCr | turbojpeg::Colorspace::RGB => turbojpeg::PixelFormat::RGB,
            _ => return Ok(None),
        };
        let n = reduction(size, wanted) as usize;
        let factor = turbojpeg::ScalingFactor::new(1, n);
        if decoder.set_scaling_factor(factor).is_err() || decoder.set_scan_limit(MAX_SCANS).is_err() {
            return Ok(None);
        }
        let (w, h) = (factor.scale(header.width), factor.scale(header.height));
        if (w as u64).saturating_mul(h as u64) > max_pixels {
            return Ok(None);
        }
        let channels = format.size();
        let mut data = vec![0u8; w * h * channels];
        let image = turbojpeg::Image {
            pixels: data.as_mut_slice(),
            width: w,
            pitch: w * channels,
            height: h,
            format,
        };
        if decoder.decompress(bytes, image).is_err() {
            return Ok(None);
        }
        let (w, h) = (w as u32, h as u32);
        let gray = format == turbojpeg::PixelFormat::GRAY;
        let short = ProcessError::Failed("libjpeg-turbo returned fewer pixels than declared".into());
        raster(gray, w, h, data, short).map(Some)
    }
}

#[cfg(not(feature = "libjpeg-turbo"))]
mod backend {
    use std::io::Cursor;

    use image::DynamicImage;

    use super::{raster, reduction};
    use crate::processing::error::ProcessError;

    /// jpeg-decoder's scaled decode when a reduction of 2 or more applies to an RGB/grey JPEG;
    /// `None` otherwise (zune-jpeg's full decode is faster than jpeg-decoder's at full size).
    pub(super) fn pixels(
        bytes: &[u8],
        size: (u32, u32),
        wanted: Option<(u32, u32)>,
        max_pixels: u64,
    ) -> Result<Option<DynamicImage>, ProcessError> {
        let n = reduction(size, wanted);
        if n == 1 {
            return Ok(None);
        }
        let undecodable = |e: jpeg_decoder::Error| ProcessError::Undecodable(e.to_string());
        let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
        decoder.read_info().map_err(undecodable)?;
        let Some(info) = decoder.info() else {
            return Ok(None);
        };
        if !matches!(
            info.pixel_format,
            jpeg_decoder::PixelFormat::RGB24 | jpeg_decoder::PixelFormat::L8
        ) {
            return Ok(None);
        }
        let side = |s: u32| u16::try_from(s.div_ceil(n).max(1)).unwrap_or(u16::MAX);
        let (w, h) = decoder.scale(side(size.0), side(size.1)).map_err(undecodable)?;
        if u64::from(w) * u64::from(h) > max_pixels {
            return Ok(None);
        }
        decoder.set_max_decoding_buffer_size(usize::try_from(max_pixels.saturating_mul(3)).unwrap_or(usize::MAX));
        let data = decoder.decode().map_err(undecodable)?;
        let (w, h) = (u32::from(w), u32::from(h));
        let gray = info.pixel_format == jpeg_decoder::PixelFormat::L8;
        let short = ProcessError::Undecodable("the JPEG decoder returned fewer pixels than declared".into());
        raster(gray, w, h, data, short).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reduction_still_covers_what_is_wanted() {
        assert_eq!(reduction((3840, 2160), Some((512, 288))), 4);
        assert_eq!(reduction((3840, 2160), Some((480, 270))), 8);
        assert_eq!(reduction((1920, 1080), Some((512, 288))), 2);
        assert_eq!(reduction((1000, 800), Some((600, 480))), 1);
        assert_eq!(reduction((1000, 800), None), 1);
        assert_eq!(
            reduction((1001, 9), Some((126, 1))),
            8,
            "sides round up: 1001/8 → 126, 9/8 → 2"
        );
        assert_eq!(reduction((1001, 9), Some((127, 1))), 4);
    }
}
