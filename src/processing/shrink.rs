//! Shrink-on-load: a JPEG that will be made at least twice smaller is decoded at 1/2, 1/4 or
//! 1/8 of its size by jpeg-decoder's scaled IDCT, as libvips does with libjpeg. On the
//! benchmark's photographs this decodes as fast as a full decode by zune-jpeg and holds 4–64×
//! fewer pixels, and the resampler then has 4–64× less to read (docs/benchmarks.md).

use std::io::Cursor;

use image::{DynamicImage, metadata::Orientation};

use super::{
    codec::{Decoded, ShrinkHint, upright},
    error::ProcessError,
};

/// The JPEG decoded at the smallest scale that still covers what `hint` asks for, or `None`
/// when no scale below 1 applies (then the full decoder runs) or the pixel format is one this
/// path does not build (CMYK, 16-bit).
pub(super) fn jpeg(bytes: &[u8], max_pixels: u64, hint: ShrinkHint<'_>) -> Result<Option<Decoded>, ProcessError> {
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
    let orientation = decoder
        .exif_data()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    let turned = matches!(
        orientation,
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
    );
    let (upright_w, upright_h) = if turned { (height, width) } else { (width, height) };
    let Some((want_w, want_h)) = hint(upright_w, upright_h) else {
        return Ok(None);
    };
    let (want_w, want_h) = if turned { (want_h, want_w) } else { (want_w, want_h) };
    if want_w.saturating_mul(2) > width || want_h.saturating_mul(2) > height {
        return Ok(None);
    }
    let clamp = |side: u32| u16::try_from(side.max(1)).unwrap_or(u16::MAX);
    let (out_w, out_h) = decoder.scale(clamp(want_w), clamp(want_h)).map_err(undecodable)?;
    let pixels = u64::from(out_w) * u64::from(out_h);
    decoder.set_max_decoding_buffer_size(usize::try_from(max_pixels.saturating_mul(3)).unwrap_or(usize::MAX));
    if pixels > max_pixels {
        return Ok(None);
    }
    let data = decoder.decode().map_err(undecodable)?;
    let (w, h) = (u32::from(out_w), u32::from(out_h));
    let truncated = || ProcessError::Undecodable("the JPEG decoder returned fewer pixels than declared".into());
    let image = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => {
            DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, data).ok_or_else(truncated)?)
        }
        _ => DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, data).ok_or_else(truncated)?),
    };
    let icc = decoder.icc_profile();
    let exif = decoder.exif_data().map(<[u8]>::to_vec);
    let mut decoded = upright(image, orientation, icc.as_deref(), exif);
    decoded.full_size = (upright_w, upright_h);
    Ok(Some(decoded))
}
