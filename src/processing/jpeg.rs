//! JPEG decoding with shrink-on-load. When the first step will make the image at least four
//! times smaller, the decoder's scaled IDCT produces 1/2, 1/4 or 1/8 of the pixels directly,
//! still at least twice the target, and Lanczos3 does the rest — libvips's margin: the block
//! scaling alone aliases (a 2000-pixel photo to 400 by 1/4 then 500 → 400 scored 31 dB against
//! a full decode; with the margin, like pyvips, about 40).
//!
//! Two decoders:
//! - pure Rust (always built): jpeg-decoder's DCT scaling when a scale below 1 applies, else
//!   the `image` crate's full decode (zune-jpeg) — `cargo build` needs nothing but Rust and a C
//!   compiler;
//! - feature `libjpeg-turbo` (the container image and the benchmark): libjpeg-turbo's
//!   TurboJPEG API (built from source with cmake and NASM), for every JPEG: 22 % less decode
//!   time on the benchmark's photographs (docs/processing.md). A binary built with it still
//!   has the pure-Rust one, chosen by `processing.jpeg_decoder = "rust"` (the test command
//!   runs the processing tests with both from one build).
//!
//! SECURITY: both paths refuse a JPEG of more than [`MAX_SCANS`] scans before decoding: each
//! scan of a progressive JPEG costs a pass over the whole image (1,000 empty scans at 49 MP
//! took 10 s in jpeg-decoder, which has no limit of its own).
//!
//! Metadata (orientation, ICC profile, EXIF) comes from the `image` crate's header parse in
//! both cases. A CMYK JPEG with a CMYK profile is decoded to ink values by jpeg-decoder and
//! converted to sRGB through its profile (moxcms), as LittleCMS would: the full decoder's naive
//! conversion made pure cyan (0, 255, 255) where the profile says (0, 156, 228). Other CMYK
//! JPEGs, and anything a fast path declines, take the full decode.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, metadata::Orientation};

use super::{
    decoded::{Decoded, Extent, ShrinkHint, upright, whole},
    error::ProcessError,
    icc, jpeg_markers,
    turn::Turn,
};
use crate::config::JpegDecoder;

/// More scans than any encoder writes (libjpeg's progressive scripts use ~10, `jpegtran
/// -progressive` at most a few dozen).
pub(super) const MAX_SCANS: usize = 256;

/// The JPEG decoded by the fast path of `decoder`, or `None` when the caller should run the
/// full decoder; `Err` for a JPEG of more than [`MAX_SCANS`] scans, whichever path would
/// decode it.
pub(super) fn decode(
    bytes: &[u8],
    max_pixels: u64,
    hint: ShrinkHint<'_>,
    decoder: JpegDecoder,
) -> Result<Option<Decoded>, ProcessError> {
    let scans = scans(bytes);
    if scans > MAX_SCANS {
        return Err(ProcessError::Unsupported(format!(
            "the JPEG has {scans} scans, more than the {MAX_SCANS} accepted (each costs a pass over the whole image)"
        )));
    }
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
    let icc = header.icc_profile().ok().flatten();
    if let Some(icc) = &icc {
        icc::check_profile(icc)?;
    }
    // Upright, in sRGB (by `rgb_profile`, if any), planned from the file's full size.
    let mut finish = |image: DynamicImage, rgb_profile: Option<&[u8]>| {
        let covered = covered((width, height), &image, orientation);
        let exif = header.exif_metadata().ok().flatten();
        let mut decoded = upright(image, orientation, rgb_profile, exif);
        decoded.extent = Extent {
            full: (upright_w, upright_h),
            covered,
        };
        decoded
    };
    if let Some(profile) = icc.as_deref().filter(|p| icc::is_cmyk(p))
        && let Some(image) = cmyk(bytes, (width, height), wanted, max_pixels, profile)?
    {
        return Ok(Some(finish(image, None)));
    }
    let pixels = match decoder {
        #[cfg(feature = "libjpeg-turbo")]
        JpegDecoder::Auto => turbo::pixels,
        _ => rust::pixels,
    };
    let Some(image) = pixels(bytes, (width, height), wanted, max_pixels)? else {
        return Ok(None);
    };
    Ok(Some(finish(image, icc.as_deref())))
}

/// Where a `size` JPEG lies in `image`, its decode at 1/n (n = 1, 2, 4 or 8: `ceil(size / n)`
/// pixels), once turned upright by `orientation`: the top-left `size / n`, the rest of the last
/// row and column being the encoder's padding of a partial block.
fn covered(size: (u32, u32), image: &DynamicImage, orientation: Orientation) -> [f64; 4] {
    let decoded = (image.width(), image.height());
    let Some(n) = [1, 2, 4, 8]
        .into_iter()
        .find(|&n| (size.0.div_ceil(n), size.1.div_ceil(n)) == decoded)
    else {
        return whole(image);
    };
    let n = f64::from(n);
    Turn::upright(orientation).rectangle(
        (f64::from(decoded.0), f64::from(decoded.1)),
        [0.0, 0.0, f64::from(size.0) / n, f64::from(size.1) / n],
    )
}

/// The largest reduction `n` in 1, 2, 4, 8 such that `size / n` (rounded up) is still at least
/// twice `wanted` on both sides: the resampler, not the block scaling, makes the last factor
/// of two (libvips's `thumbnail` keeps the same margin).
fn reduction(size: (u32, u32), wanted: Option<(u32, u32)>) -> u32 {
    let Some((want_w, want_h)) = wanted else {
        return 1;
    };
    let covers = |side: u32, n: u32, want: u32| u64::from(side.div_ceil(n)) >= 2 * u64::from(want.max(1));
    [8, 4, 2]
        .into_iter()
        .find(|&n| covers(size.0, n, want_w) && covers(size.1, n, want_h))
        .unwrap_or(1)
}

/// A CMYK JPEG, decoded to ink values (at the reduction that still covers `wanted`) and
/// converted to sRGB through `profile`; `None` when it is not CMYK or the profile cannot be
/// used (the full decoder then converts it naively).
fn cmyk(
    bytes: &[u8],
    size: (u32, u32),
    wanted: Option<(u32, u32)>,
    max_pixels: u64,
    profile: &[u8],
) -> Result<Option<DynamicImage>, ProcessError> {
    let undecodable = |e: jpeg_decoder::Error| ProcessError::Undecodable(e.to_string());
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.read_info().map_err(undecodable)?;
    if decoder.info().map(|i| i.pixel_format) != Some(jpeg_decoder::PixelFormat::CMYK32) {
        return Ok(None);
    }
    let n = reduction(size, wanted);
    let side = |s: u32| u16::try_from(s.div_ceil(n).max(1)).unwrap_or(u16::MAX);
    let (w, h) = decoder.scale(side(size.0), side(size.1)).map_err(undecodable)?;
    if u64::from(w) * u64::from(h) > max_pixels {
        return Ok(None);
    }
    decoder.set_max_decoding_buffer_size(usize::try_from(max_pixels.saturating_mul(4)).unwrap_or(usize::MAX));
    let mut ink = decoder.decode().map_err(undecodable)?;
    // jpeg-decoder inverts every sample, assuming Adobe's inverted CMYK (what Photoshop and
    // most writers store, with an APP14 "Adobe" marker); without that marker the file held
    // ink values already.
    if !has_adobe_marker(bytes) {
        ink.iter_mut().for_each(|v| *v = 255 - *v);
    }
    let Some(rgb) = icc::cmyk_to_srgb(&ink, profile) else {
        return Ok(None);
    };
    let image = image::RgbImage::from_raw(u32::from(w), u32::from(h), rgb)
        .ok_or_else(|| ProcessError::Undecodable("the JPEG decoder returned fewer pixels than declared".into()))?;
    Ok(Some(DynamicImage::ImageRgb8(image)))
}

/// Whether the JPEG has an APP14 "Adobe" segment before its first scan.
fn has_adobe_marker(bytes: &[u8]) -> bool {
    jpeg_markers::header(bytes).any(|s| s.marker == 0xEE && s.body().starts_with(b"Adobe"))
}

/// The IJG luminance quantisation table at quality 50 (libjpeg's `std_luminance_quant_tbl`).
const STANDARD_LUMINANCE: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51,
    87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
];

/// The quality the JPEG was saved at, estimated from its luminance quantisation table against
/// the IJG table and scaling (libjpeg, Pillow, ImageMagick and most cameras' encoders use it):
/// a re-encode without a `quality` keeps the source's instead of a fixed 80. `None` without a
/// readable table 0.
pub(super) fn estimated_quality(bytes: &[u8]) -> Option<u8> {
    for segment in jpeg_markers::header(bytes).filter(|s| s.marker == 0xDB) {
        // One or more tables: Pq/Tq, then 64 values of 8 or 16 bits.
        let tables = segment.body();
        let mut table = 0;
        while table < tables.len() {
            let (precision, id) = (tables[table] >> 4, tables[table] & 0x0F);
            let size = if precision == 0 { 1 } else { 2 };
            let values = tables.get(table + 1..table + 1 + 64 * size)?;
            if id == 0 {
                let sum: u64 = values
                    .chunks(size)
                    .map(|v| {
                        u64::from(if size == 1 {
                            u16::from(v[0])
                        } else {
                            u16::from_be_bytes([v[0], v[1]])
                        })
                    })
                    .sum();
                let standard: u64 = STANDARD_LUMINANCE.iter().map(|&v| u64::from(v)).sum();
                // IJG: table = standard × scale / 100, scale = 5000/q below 50, 200 − 2q above.
                let scale = sum as f64 * 100.0 / standard as f64;
                let quality = if scale <= 100.0 {
                    (200.0 - scale) / 2.0
                } else {
                    5000.0 / scale
                };
                return Some(quality.round().clamp(1.0, 100.0) as u8);
            }
            table += 1 + 64 * size;
        }
    }
    None
}

/// Whether the JPEG has at most [`MAX_SCANS`] scans (what `decode` checks first).
pub(super) fn within_scan_limit(bytes: &[u8]) -> bool {
    scans(bytes) <= MAX_SCANS
}

/// How many scans (SOS segments) the JPEG holds.
fn scans(bytes: &[u8]) -> usize {
    jpeg_markers::walk(bytes, 2).scans
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
mod turbo {
    use image::DynamicImage;

    use super::{MAX_SCANS, raster, reduction};
    use crate::processing::error::ProcessError;

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
        if decoder.set_scaling_factor(factor).is_err() || decoder.set_scan_limit(MAX_SCANS as u32).is_err() {
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

mod rust {
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
    fn the_reduction_leaves_the_resampler_a_factor_of_two() {
        assert_eq!(reduction((3840, 2160), Some((512, 288))), 2);
        assert_eq!(reduction((3840, 2160), Some((480, 270))), 4);
        assert_eq!(reduction((3840, 2160), Some((240, 135))), 8);
        assert_eq!(
            reduction((2000, 1121), Some((400, 224))),
            2,
            "the photograph that scored 31 dB at 1/4"
        );
        assert_eq!(reduction((1920, 1080), Some((512, 288))), 1);
        assert_eq!(reduction((1000, 800), Some((600, 480))), 1);
        assert_eq!(reduction((1000, 800), None), 1);
        assert_eq!(
            reduction((1001, 9), Some((63, 1))),
            8,
            "sides round up: 1001/8 → 126 = 2 × 63, 9/8 → 2"
        );
        assert_eq!(reduction((1001, 9), Some((64, 1))), 4);
    }

    /// A baseline JPEG with `extra` empty progressive-looking scans appended before its EOI.
    fn with_scans(extra: usize) -> Vec<u8> {
        let mut jpeg = Vec::new();
        DynamicImage::ImageRgb8(image::RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([x as u8 * 4, y as u8 * 5, 90])
        }))
        .write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .unwrap();
        let end = jpeg.len() - 2;
        assert_eq!(&jpeg[end..], [0xFF, 0xD9]);
        let mut out = jpeg[..end].to_vec();
        for _ in 0..extra {
            // SOS: one component (1), tables 0/0, spectral 1..1, approximation 0; then no data.
            out.extend([0xFF, 0xDA, 0, 8, 1, 1, 0x00, 1, 1, 0x00]);
        }
        out.extend([0xFF, 0xD9]);
        out
    }

    #[test]
    fn the_source_quality_is_read_from_its_tables() {
        let photo = DynamicImage::ImageRgb8(image::RgbImage::from_fn(32, 32, |x, y| {
            image::Rgb([x as u8 * 8, y as u8 * 8, 7])
        }));
        for quality in [30, 50, 75, 80, 90, 95] {
            let mut jpeg = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, quality)
                .encode_image(&photo)
                .unwrap();
            let estimated = estimated_quality(&jpeg).unwrap();
            assert!(
                estimated.abs_diff(quality) <= 1,
                "saved at {quality}, estimated {estimated}"
            );
        }
        assert_eq!(estimated_quality(b"\xFF\xD8\xFF\xD9"), None);
    }

    #[test]
    fn scans_are_counted_through_entropy_data_and_stuffing() {
        assert_eq!(scans(&with_scans(0)), 1);
        assert_eq!(scans(&with_scans(3)), 4);
        assert_eq!(scans(b"\xFF\xD8\xFF\xD9"), 0);
        assert_eq!(
            scans(b"\xFF\xD8\xFF\xDA\x00"),
            0,
            "a truncated header counts nothing and ends"
        );
    }

    #[test]
    fn a_jpeg_of_too_many_scans_is_refused_before_decoding() {
        for decoder in [JpegDecoder::Auto, JpegDecoder::Rust] {
            let refused = decode(&with_scans(MAX_SCANS), 50_000_000, &|_, _| Some((16, 12)), decoder);
            assert!(
                matches!(&refused, Err(ProcessError::Unsupported(why)) if why.contains("scans")),
                "{decoder:?}: {:?}",
                refused.map(|d| d.map(|d| d.extent.full))
            );
            let decoded = decode(&with_scans(0), 50_000_000, &|_, _| Some((16, 12)), decoder).unwrap();
            assert_eq!(decoded.map(|d| d.extent.full), Some((64, 48)), "{decoder:?}");
        }
    }
}
