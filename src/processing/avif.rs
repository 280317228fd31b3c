//! AVIF encoding, one thread per job (the pool runs jobs side by side), 8-bit, 4:2:0.
//!
//! - With the `libaom` feature (the container image's build), opaque images go to libaom through
//!   libavif, the encoder imgproxy's libvips uses through libheif: at equal SSIM on the
//!   benchmark's photographs it is about twice as fast as rav1e (docs/benchmarks.md).
//! - Otherwise, and for images with translucent pixels (the libavif crate's RGB conversion
//!   does not carry alpha), rav1e through ravif: pure Rust, so `cargo run` needs nothing installed.
//!
//! `speed` is 1 (slowest, smallest) to 10 on both; `quality` 1–100 on both, though the two map
//! it to quantizers differently, which is why the defaults are measured, not assumed.

use image::{DynamicImage, ImageEncoder};

/// Encodes `image` as AVIF at `speed` and `quality`.
pub(super) fn encode(image: &DynamicImage, speed: u8, quality: u8) -> Result<Vec<u8>, String> {
    #[cfg(feature = "libaom")]
    if !translucent(image) {
        return libaom(image, speed, quality);
    }
    rav1e(image, speed, quality)
}

/// Whether `image` has an alpha channel that is not opaque everywhere (an RGBA PNG whose alpha
/// is all 255, a common case, is encoded as the opaque image it is). Alpha of more than 8 bits
/// is taken as translucent without looking.
fn translucent(image: &DynamicImage) -> bool {
    match image {
        DynamicImage::ImageRgba8(rgba) => rgba.pixels().any(|p| p.0[3] != u8::MAX),
        DynamicImage::ImageLumaA8(la) => la.pixels().any(|p| p.0[1] != u8::MAX),
        other => other.color().has_alpha(),
    }
}

/// libaom through libavif: all-intra coding of a single image.
#[cfg(feature = "libaom")]
fn libaom(image: &DynamicImage, speed: u8, quality: u8) -> Result<Vec<u8>, String> {
    let rgb = image.to_rgb8();
    let pixels = libavif::RgbPixels::new(rgb.width(), rgb.height(), rgb.as_raw()).map_err(|e| format!("{e:?}"))?;
    let yuv = pixels.to_image(libavif::YuvFormat::Yuv420);
    let mut encoder = libavif::Encoder::new();
    encoder.set_max_threads(1).set_speed(speed).set_quality(quality);
    let data = encoder.encode(&yuv).map_err(|e| format!("libavif: {e:?}"))?;
    Ok(data.to_vec())
}

/// rav1e through ravif (the `image` crate's encoder).
fn rav1e(image: &DynamicImage, speed: u8, quality: u8) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let encoder =
        image::codecs::avif::AvifEncoder::new_with_speed_quality(&mut bytes, speed, quality).with_num_threads(Some(1));
    let (width, height) = (image.width(), image.height());
    if translucent(image) {
        let rgba = image.to_rgba8();
        encoder.write_image(rgba.as_raw(), width, height, image::ExtendedColorType::Rgba8)
    } else {
        let rgb = image.to_rgb8();
        encoder.write_image(rgb.as_raw(), width, height, image::ExtendedColorType::Rgb8)
    }
    .map_err(|e| e.to_string())?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(alpha: bool) -> DynamicImage {
        let rgba = image::RgbaImage::from_fn(96, 64, |x, y| {
            image::Rgba([
                (x * 2) as u8,
                (y * 3) as u8,
                ((x * y) % 251) as u8,
                if alpha { (x * 2) as u8 } else { 255 },
            ])
        });
        match alpha {
            true => DynamicImage::ImageRgba8(rgba),
            false => DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(rgba).to_rgb8()),
        }
    }

    /// The auxiliary image type an AVIF's alpha plane is declared with.
    const ALPHA_URN: &[u8] = b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha";

    fn has(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn alpha_is_carried_and_an_opaque_image_gets_none() {
        let with = encode(&gradient(true), 9, 63).unwrap();
        let without = encode(&gradient(false), 9, 63).unwrap();
        let opaque_rgba = encode(&DynamicImage::ImageRgba8(gradient(false).to_rgba8()), 9, 63).unwrap();
        for avif in [&with, &without, &opaque_rgba] {
            assert_eq!(&avif[4..12], b"ftypavif");
        }
        assert!(has(&with, ALPHA_URN), "an alpha plane");
        assert!(!has(&without, ALPHA_URN), "no alpha plane for an opaque image");
        assert!(
            !has(&opaque_rgba, ALPHA_URN),
            "none for an RGBA image opaque everywhere"
        );
        assert_eq!(without, opaque_rgba, "the same encoding as its RGB form");
    }

    #[test]
    fn only_alpha_below_opaque_counts_as_translucent() {
        assert!(translucent(&gradient(true)));
        assert!(!translucent(&gradient(false)));
        assert!(!translucent(&DynamicImage::ImageRgba8(gradient(false).to_rgba8())));
        let grey = image::GrayAlphaImage::from_fn(4, 4, |x, _| image::LumaA([9, if x == 3 { 254 } else { 255 }]));
        assert!(translucent(&DynamicImage::ImageLumaA8(grey)));
    }

    #[test]
    fn quality_and_speed_reach_the_encoder() {
        let image = gradient(false);
        let low = encode(&image, 9, 20).unwrap();
        let high = encode(&image, 9, 90).unwrap();
        assert!(low.len() < high.len(), "{} < {}", low.len(), high.len());
        assert_ne!(encode(&image, 1, 63).unwrap(), encode(&image, 10, 63).unwrap());
    }
}
