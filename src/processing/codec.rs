//! Decoding (header limits first, EXIF orientation applied) and encoding, with the `image`
//! crate's codecs.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, codecs::jpeg::JpegEncoder};

use super::error::ProcessError;
use crate::object_name::ImageFormat;

/// What a result is encoded as (every stored format but SVG).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputFormat(ImageFormat);

impl OutputFormat {
    /// `png`, `jpeg` (or `jpg`), `webp`, `gif`, `bmp`, `tiff`.
    pub fn parse(text: &str) -> Result<OutputFormat, ProcessError> {
        match ImageFormat::from_extension(&text.to_ascii_lowercase()) {
            Some(ImageFormat::Svg) | None => Err(ProcessError::BadParameter(format!(
                "`format`: `{text}` is not one of png, jpeg, webp, gif, bmp, tiff"
            ))),
            Some(format) => Ok(OutputFormat(format)),
        }
    }

    /// The output for an input of `format`: the same, or PNG for SVG.
    pub fn like(format: ImageFormat) -> OutputFormat {
        match format {
            ImageFormat::Svg => OutputFormat(ImageFormat::Png),
            other => OutputFormat(other),
        }
    }

    /// The format, as stored.
    pub fn format(self) -> ImageFormat {
        self.0
    }
}

/// An encoded result.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// The encoded file.
    pub bytes: Vec<u8>,
    /// Its format.
    pub format: ImageFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Decodes `bytes` (already checked to be a `format` image within the input pixel limit) with
/// allocation limits, and turns it upright by its EXIF orientation.
pub(crate) fn decode(bytes: &[u8], format: ImageFormat, max_pixels: u64) -> Result<DynamicImage, ProcessError> {
    let codec = codec_of(format)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), codec);
    let mut limits = image::Limits::default();
    let side = u32::try_from(max_pixels).unwrap_or(u32::MAX);
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    // Eight bytes per pixel covers RGBA16; the decoders' own buffers come on top.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| ProcessError::Undecodable(e.to_string()))?;
    let orientation = decoder
        .orientation()
        .map_err(|e| ProcessError::Undecodable(e.to_string()))?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| ProcessError::Undecodable(e.to_string()))?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// Encodes `image` as `output`; `quality` (1–100) applies to JPEG. Formats without alpha get
/// the image flattened onto white.
pub(crate) fn encode(image: &DynamicImage, output: OutputFormat, quality: u8) -> Result<Encoded, ProcessError> {
    let mut bytes = Vec::new();
    let failed = |e: image::ImageError| ProcessError::Failed(e.to_string());
    let format = output.format();
    match format {
        ImageFormat::Jpeg => {
            let rgb = flatten(image);
            JpegEncoder::new_with_quality(&mut bytes, quality)
                .encode_image(&rgb)
                .map_err(failed)?;
        }
        ImageFormat::Bmp => flatten(image)
            .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Bmp)
            .map_err(failed)?,
        _ => {
            let codec = match format {
                ImageFormat::Png => image::ImageFormat::Png,
                ImageFormat::Webp => image::ImageFormat::WebP,
                ImageFormat::Gif => image::ImageFormat::Gif,
                _ => image::ImageFormat::Tiff,
            };
            let prepared = match format {
                // The WebP encoder takes 8-bit RGB(A) only.
                ImageFormat::Webp | ImageFormat::Gif => DynamicImage::ImageRgba8(image.to_rgba8()),
                _ => image.clone(),
            };
            prepared.write_to(&mut Cursor::new(&mut bytes), codec).map_err(failed)?;
        }
    }
    Ok(Encoded {
        bytes,
        format,
        width: image.width(),
        height: image.height(),
    })
}

/// The image as 8-bit RGB over a white background (for formats without alpha).
fn flatten(image: &DynamicImage) -> DynamicImage {
    if !image.color().has_alpha() {
        return DynamicImage::ImageRgb8(image.to_rgb8());
    }
    let rgba = image.to_rgba8();
    let rgb = image::RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let over = |c: u8| ((u16::from(c) * u16::from(a) + 255 * (255 - u16::from(a))) / 255) as u8;
        image::Rgb([over(r), over(g), over(b)])
    });
    DynamicImage::ImageRgb8(rgb)
}

/// The `image` crate's codec for `format`; SVG input is not processed yet (422).
pub(crate) fn codec_of(format: ImageFormat) -> Result<image::ImageFormat, ProcessError> {
    Ok(match format {
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Webp => image::ImageFormat::WebP,
        ImageFormat::Gif => image::ImageFormat::Gif,
        ImageFormat::Bmp => image::ImageFormat::Bmp,
        ImageFormat::Tiff => image::ImageFormat::Tiff,
        ImageFormat::Svg => {
            return Err(ProcessError::Unsupported(
                "SVG input is not processed yet; upload it as is or convert it first".into(),
            ));
        }
    })
}
