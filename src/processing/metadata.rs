//! `extract/metadata`: what an image says about itself, read from its headers and EXIF without
//! decoding its pixels. GPS coordinates are flagged: they are personal data.

use std::io::Cursor;

use image::{ImageDecoder, ImageReader};
use serde_json::{Value, json};

use super::{codec, error::ProcessError, svg};
use crate::object_name::ImageFormat;

/// The description of `bytes`, a `format` image of `frames` animation frames.
pub(crate) fn describe(bytes: &[u8], format: ImageFormat, frames: usize) -> Result<Value, ProcessError> {
    let (width, height, has_alpha) = if format == ImageFormat::Svg {
        let (width, height) = svg::size(bytes)?;
        (width, height, true)
    } else {
        let codec = codec::codec_of(format)?;
        let decoder = ImageReader::with_format(Cursor::new(bytes), codec)
            .into_decoder()
            .map_err(|e| ProcessError::Undecodable(e.to_string()))?;
        let (width, height) = decoder.dimensions();
        (width, height, decoder.color_type().has_alpha())
    };
    Ok(json!({
        "format": format.name().to_ascii_lowercase(),
        "content_type": format.content_type(),
        "width": width,
        "height": height,
        "has_alpha": has_alpha,
        "animated": frames > 1,
        "frames": frames,
        "exif": exif_summary(bytes),
    }))
}

/// A few EXIF fields, and whether GPS data is present; `null` without EXIF.
fn exif_summary(bytes: &[u8]) -> Value {
    let Ok(exif) = exif::Reader::new().read_from_container(&mut Cursor::new(bytes)) else {
        return Value::Null;
    };
    let field = |tag: exif::Tag| {
        exif.get_field(tag, exif::In::PRIMARY).map(|f| {
            f.display_value()
                .with_unit(&exif)
                .to_string()
                .trim_matches('"')
                .to_owned()
        })
    };
    let gps = exif.fields().any(|f| f.tag.context() == exif::Context::Gps);
    json!({
        "make": field(exif::Tag::Make),
        "model": field(exif::Tag::Model),
        "taken": field(exif::Tag::DateTimeOriginal),
        "orientation": exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY).and_then(|f| f.value.get_uint(0)),
        "fields": exif.fields().count(),
        "gps": gps,
        "warning": gps.then_some("the image carries GPS coordinates (personal data); strip-exif or any processing removes them"),
    })
}
