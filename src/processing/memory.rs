//! What a job will hold in memory at its peak, estimated from the input's header before any
//! pixel is decoded, so that the job service can admit jobs by memory (`processing.memory_budget`)
//! instead of letting a pod reach its limit and be OOM-killed.
//!
//! The peak of [`super::run`] is the input, the decoded image, the result of a step while the
//! step's input is still held, the encoder's copy of the result, and what the allocator keeps
//! of the images already freed (measured: a 2048×2048 RGBA8 PNG flipped and encoded as JPEG
//! holds 37 MiB of images at its peak and took the process 65 MiB higher, so one more working
//! copy is counted). The estimate takes each at its largest: the decoded form at the most bytes
//! per pixel the format's header allows (a progressive JPEG also holds its coefficients; 16-bit
//! PNG and any TIFF 8 bytes per pixel), no credit for a JPEG's shrink-on-load, and every step's
//! result at the largest size any step makes (up to the output limit: a larger result is
//! refused before it is made). `tests/it/process_budget.rs` measures the real process against
//! it.

use super::{Op, jpeg_markers, svg};
use crate::object_name::ImageFormat;

/// Bytes per pixel of a step's result and of the encoder's copy: RGBA8, or RGBA16 for inputs
/// that decode to 16 bits.
const WORKING_BYTES_PER_PIXEL: u64 = 4;

/// Working copies counted: a step's result, the encoder's copy, and the allocator's slack.
const WORKING_COPIES: u64 = 3;

/// What an AVIF encoder holds per pixel of its result beyond the image it is given (its planes,
/// reconstruction and analysis buffers): rav1e's measured 16 (a 1536×1536 result took the
/// process 36 MiB higher than the same job encoding JPEG; libaom 24 MiB, about 10), counted
/// with half again as margin.
const AVIF_ENCODER_BYTES_PER_PIXEL: u64 = 24;

/// Allocator and decoder overhead on top of the images themselves (row buffers, tables,
/// the encoder's output), per job.
const OVERHEAD: u64 = 4 << 20;

/// The estimated peak in bytes of decoding `bytes`, a `format` image whose largest frame the
/// content check read as `dims` (`None` for SVG, whose size is its document's), and applying
/// `steps`, whose results are held to `max_output_pixels` (a step refuses a larger result
/// before making it), and encoding the result as `output`.
pub fn estimate(
    format: ImageFormat,
    bytes: &[u8],
    dims: Option<(u64, u64)>,
    steps: &[Op],
    max_output_pixels: u64,
    output: ImageFormat,
) -> u64 {
    let Some((width, height)) = dims.or_else(|| svg_size(format, bytes, steps)) else {
        return bytes.len() as u64 + OVERHEAD;
    };
    let decoded = width
        .saturating_mul(height)
        .saturating_mul(decoded_bytes_per_pixel(format, bytes));
    let largest = largest_result(width, height, steps, max_output_pixels);
    let working = largest.saturating_mul(working_bytes_per_pixel(format, bytes, steps));
    let encoder = match output {
        ImageFormat::Avif => largest.saturating_mul(AVIF_ENCODER_BYTES_PER_PIXEL),
        _ => 0,
    };
    (bytes.len() as u64)
        .saturating_add(decoded)
        .saturating_add(working.saturating_mul(WORKING_COPIES))
        .saturating_add(encoder)
        .saturating_add(OVERHEAD)
}

/// The size an SVG renders at: the first step's when it is a resize (as `svg::rasterize` is
/// told), else the document's own.
fn svg_size(format: ImageFormat, bytes: &[u8], steps: &[Op]) -> Option<(u64, u64)> {
    let (w, h) = (format == ImageFormat::Svg).then(|| svg::size(bytes).ok()).flatten()?;
    let (w, h) = steps.first().and_then(|step| step.needs(w, h)).unwrap_or((w, h));
    Some((u64::from(w), u64::from(h)))
}

/// Bytes per pixel the decoder's output (and, for progressive JPEG, its coefficient buffer)
/// takes at most.
fn decoded_bytes_per_pixel(format: ImageFormat, bytes: &[u8]) -> u64 {
    match format {
        // RGB8, plus 16-bit coefficients of three components for a progressive image, held
        // whole until its last scan.
        ImageFormat::Jpeg if progressive(bytes) => 3 + 6,
        ImageFormat::Jpeg => 3,
        ImageFormat::Png if png_bit_depth(bytes) == Some(16) => 8,
        // A TIFF may hold 16-bit samples; its header is not read further here.
        ImageFormat::Tiff => 8,
        _ => 4,
    }
}

/// Bytes per pixel of a step's result: twice as many for a 16-bit input, or when a resize in
/// linear light maps the image to 16 bits.
fn working_bytes_per_pixel(format: ImageFormat, bytes: &[u8], steps: &[Op]) -> u64 {
    let sixteen_bits = match format {
        ImageFormat::Png => png_bit_depth(bytes) == Some(16),
        ImageFormat::Tiff => true,
        _ => false,
    } || steps
        .iter()
        .any(|step| matches!(step, Op::Resize(resize) if resize.linear));
    if sixteen_bits {
        2 * WORKING_BYTES_PER_PIXEL
    } else {
        WORKING_BYTES_PER_PIXEL
    }
}

/// A progressive (or lossless, hierarchical) JPEG: a frame header other than baseline or
/// extended sequential.
fn progressive(bytes: &[u8]) -> bool {
    jpeg_markers::header(bytes).any(|segment| matches!(segment.marker, 0xC2 | 0xC3 | 0xC6 | 0xC7 | 0xCA | 0xCB))
}

/// The IHDR's bit depth.
fn png_bit_depth(bytes: &[u8]) -> Option<u8> {
    (bytes.get(12..16) == Some(b"IHDR"))
        .then(|| bytes.get(24).copied())
        .flatten()
}

/// The most pixels any step's result has, starting from `width`×`height`: each step's result
/// is bounded from its input's bound (a crop or trim keeps it, a resize scales it, a turn
/// swaps it, a pad or a free rotation grows it), and no result is larger than `max_pixels`.
fn largest_result(width: u64, height: u64, steps: &[Op], max_pixels: u64) -> u64 {
    let clamp = |side: u64| u32::try_from(side).unwrap_or(u32::MAX);
    let (mut w, mut h) = (width, height);
    let mut largest = w.saturating_mul(h);
    for step in steps {
        (w, h) = match step {
            Op::Resize(resize) => {
                let (rw, rh) = resize.scaled(clamp(w), clamp(h));
                (u64::from(rw), u64::from(rh))
            }
            Op::Rotate(_) => (h, w),
            // The rotated canvas is within the sum of the sides both ways.
            Op::RotateBy(..) => (w + h, w + h),
            Op::Pad(p, _) => (
                w + u64::from(p.left) + u64::from(p.right),
                h + u64::from(p.top) + u64::from(p.bottom),
            ),
            _ => (w, h),
        };
        largest = largest.max(w.saturating_mul(h).min(max_pixels));
    }
    largest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processing::{Background, Fit, Padding, Resize};

    const MIB: u64 = 1 << 20;
    const NO_LIMIT: u64 = u64::MAX;

    /// The estimate for a `width`×`height` input with no output limit, encoded as PNG.
    fn of(format: ImageFormat, bytes: &[u8], (width, height): (u64, u64), steps: &[Op]) -> u64 {
        estimate(format, bytes, Some((width, height)), steps, NO_LIMIT, ImageFormat::Png)
    }

    fn resize(width: u32) -> Op {
        resize_in(width, false)
    }

    fn resize_in(width: u32, linear: bool) -> Op {
        Op::Resize(Resize {
            width: Some(width),
            height: None,
            fit: Fit::Inside,
            enlarge: true,
            linear,
        })
    }

    fn png(bit_depth: u8) -> Vec<u8> {
        let mut header = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\x10\0\0\0\x10\0".to_vec();
        header.extend([bit_depth, 6, 0, 0, 0]);
        header
    }

    #[test]
    fn a_plain_conversion_counts_the_decoded_image_and_three_working_copies() {
        let bytes = png(8);
        let estimate = of(ImageFormat::Png, &bytes, (4096, 4096), &[Op::Keep]);
        assert_eq!(estimate, bytes.len() as u64 + 4 * 64 * MIB + OVERHEAD);
    }

    #[test]
    fn sixteen_bit_pngs_and_tiffs_count_twice_the_bytes_per_pixel() {
        let eight = of(ImageFormat::Png, &png(8), (1000, 1000), &[]);
        let sixteen = of(ImageFormat::Png, &png(16), (1000, 1000), &[]);
        assert_eq!(sixteen - eight, 1_000_000 * (4 + 3 * 4));
        let tiff = of(ImageFormat::Tiff, b"II*\0", (1000, 1000), &[]);
        assert_eq!(tiff, 4 + 1_000_000 * (8 + 3 * 8) + OVERHEAD);
    }

    #[test]
    fn a_progressive_jpeg_counts_its_coefficients() {
        // SOI, then a frame header of each kind.
        let frame = |marker: u8| [0xFF, 0xD8, 0xFF, marker, 0, 8, 8, 0, 16, 0, 16, 3].to_vec();
        let baseline = of(ImageFormat::Jpeg, &frame(0xC0), (1000, 1000), &[]);
        let progressive = of(ImageFormat::Jpeg, &frame(0xC2), (1000, 1000), &[]);
        assert_eq!(progressive - baseline, 6 * 1_000_000);
    }

    #[test]
    fn steps_that_grow_the_image_count_at_their_largest_result() {
        let bytes = png(8);
        let plain = of(ImageFormat::Png, &bytes, (1000, 1000), &[]);
        // Up to 4000 wide, then back down: the 4000×4000 result is held.
        let up = of(ImageFormat::Png, &bytes, (1000, 1000), &[resize(4000), resize(100)]);
        assert_eq!(up - plain, 3 * 4 * (16_000_000 - 1_000_000));
        let padding = Padding {
            top: 500,
            right: 500,
            bottom: 500,
            left: 500,
        };
        let padded = of(
            ImageFormat::Png,
            &bytes,
            (1000, 1000),
            &[Op::Pad(padding, Background::default())],
        );
        assert_eq!(padded - plain, 3 * 4 * (4_000_000 - 1_000_000));
        let turned = of(
            ImageFormat::Png,
            &bytes,
            (1000, 10),
            &[Op::RotateBy(45.0, Background::default())],
        );
        assert_eq!(turned, bytes.len() as u64 + 4 * 10_000 + 3 * 4 * 1010 * 1010 + OVERHEAD);
    }

    #[test]
    fn no_result_counts_over_the_output_limit_which_is_refused_before_it_is_made() {
        let bytes = png(8);
        let plain = of(ImageFormat::Png, &bytes, (1000, 1000), &[]);
        let huge = estimate(
            ImageFormat::Png,
            &bytes,
            Some((1000, 1000)),
            &[resize(60_000)],
            2_000_000,
            ImageFormat::Png,
        );
        assert_eq!(huge - plain, 3 * 4 * (2_000_000 - 1_000_000));
    }

    #[test]
    fn an_avif_result_counts_its_encoder() {
        let bytes = png(8);
        let png_out = of(ImageFormat::Png, &bytes, (1000, 1000), &[resize(500)]);
        let avif_out = estimate(
            ImageFormat::Png,
            &bytes,
            Some((1000, 1000)),
            &[resize(500)],
            NO_LIMIT,
            ImageFormat::Avif,
        );
        // The largest image of the job is the input: the encoder is counted at its size.
        assert_eq!(avif_out - png_out, 24 * 1_000_000);
    }

    #[test]
    fn a_resize_in_linear_light_counts_16_bit_copies() {
        let bytes = png(8);
        let plain = of(ImageFormat::Png, &bytes, (1000, 1000), &[resize(1000)]);
        let deep = of(ImageFormat::Png, &bytes, (1000, 1000), &[resize_in(1000, true)]);
        assert_eq!(deep - plain, 3 * 4 * 1_000_000);
    }

    #[test]
    fn a_shrinking_resize_is_not_credited() {
        let bytes = png(8);
        let plain = of(ImageFormat::Png, &bytes, (4000, 3000), &[]);
        assert_eq!(of(ImageFormat::Png, &bytes, (4000, 3000), &[resize(512)]), plain);
    }

    #[test]
    fn an_svg_counts_the_size_it_renders_at_and_an_unreadable_one_its_bytes() {
        let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="1000" height="500"/>"#;
        let estimate_of =
            |bytes: &[u8], steps: &[Op]| estimate(ImageFormat::Svg, bytes, None, steps, NO_LIMIT, ImageFormat::Png);
        assert_eq!(estimate_of(svg, &[]), svg.len() as u64 + 500_000 * 16 + OVERHEAD);
        // Rendered for a resize to 100 wide: 100×50.
        let small = Op::Resize(Resize {
            width: Some(100),
            height: None,
            fit: Fit::Inside,
            enlarge: false,
            linear: false,
        });
        assert_eq!(estimate_of(svg, &[small]), svg.len() as u64 + 5_000 * 16 + OVERHEAD);
        assert_eq!(estimate_of(b"not svg", &[]), 7 + OVERHEAD);
    }
}
