//! SVG input, rasterized by resvg (pure Rust). The document has already passed the upload's
//! allowlist (no scripts, no external references); here nothing is loaded either way: no
//! resource folder, no fonts (text is not drawn), and `<image>` resolves `data:` URLs only.
//! The first step's size is rendered directly — a vector has no pixels to shrink.

use resvg::{tiny_skia, usvg};

use super::{
    decoded::{Decoded, ShrinkHint},
    error::ProcessError,
};

/// The document parsed with nothing to load.
fn parse(bytes: &[u8]) -> Result<(usvg::Tree, u32, u32), ProcessError> {
    let mut options = usvg::Options {
        resources_dir: None,
        ..usvg::Options::default()
    };
    options.image_href_resolver.resolve_string = Box::new(|_, _| None);
    let tree = usvg::Tree::from_data(bytes, &options).map_err(|e| ProcessError::Undecodable(e.to_string()))?;
    let size = tree.size();
    let side = |s: f32| (s.ceil() as u32).max(1);
    let (width, height) = (side(size.width()), side(size.height()));
    Ok((tree, width, height))
}

/// The document's own size in pixels (`extract/metadata`).
pub(super) fn size(bytes: &[u8]) -> Result<(u32, u32), ProcessError> {
    parse(bytes).map(|(_, w, h)| (w, h))
}

/// Renders `bytes` at the size `hint` asks for (or the document's own), within `max_pixels`.
pub(super) fn rasterize(bytes: &[u8], max_pixels: u64, hint: ShrinkHint<'_>) -> Result<Decoded, ProcessError> {
    let (tree, width, height) = parse(bytes)?;
    let size = tree.size();
    let (w, h) = hint(width, height).unwrap_or((width, height));
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(ProcessError::TooLarge(format!(
            "the SVG would render at {w}×{h} = {pixels} pixels, over processing.max_input_pixels ({max_pixels}); \
             ask for a smaller size with thumbnail or resize"
        )));
    }
    let mut pixmap = tiny_skia::Pixmap::new(w, h).ok_or_else(|| ProcessError::Failed(format!("no {w}×{h} canvas")))?;
    let scale = tiny_skia::Transform::from_scale(w as f32 / size.width(), h as f32 / size.height());
    resvg::render(&tree, scale, &mut pixmap.as_mut());
    let rgba: Vec<u8> = pixmap
        .pixels()
        .iter()
        .flat_map(|p| {
            let c = p.demultiply();
            [c.red(), c.green(), c.blue(), c.alpha()]
        })
        .collect();
    let image = image::RgbaImage::from_raw(w, h, rgba)
        .ok_or_else(|| ProcessError::Failed("the canvas has fewer pixels than its size".into()))?;
    Ok(Decoded {
        image: image::DynamicImage::ImageRgba8(image),
        full_size: (width, height),
        exif: None,
    })
}
