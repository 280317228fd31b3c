//! `extract/colors`: the dominant colours of an image and the share of the picture each covers.
//! The image is shrunk to at most 64×64 (an area average), quantized with NeuQuant (`color_quant`, the
//! quantizer the GIF encoder uses), and each pixel is counted against its palette entry.

use image::DynamicImage;
use serde_json::{Value, json};

/// Side of the thumbnail the palette is computed from.
const SAMPLE: u32 = 64;

/// Up to `count` colours, most common first, as `{"hex": "#rrggbb", "share": 0.0..1.0}`;
/// fully transparent pixels are not counted.
pub(crate) fn dominant(image: &DynamicImage, count: usize) -> Value {
    let small = image.thumbnail(SAMPLE, SAMPLE).to_rgba8();
    let pixels: Vec<u8> = small.pixels().filter(|p| p[3] > 0).flat_map(|p| p.0).collect();
    if pixels.is_empty() {
        return json!([]);
    }
    // NeuQuant needs a few colours to learn; sample every pixel (speed 1), palette of `count`.
    let quantizer = color_quant::NeuQuant::new(1, count.max(2), &pixels);
    let palette = quantizer.color_map_rgb();
    let mut hits = vec![0usize; palette.len() / 3];
    for pixel in pixels.chunks_exact(4) {
        hits[quantizer.index_of(pixel)] += 1;
    }
    let total = (pixels.len() / 4) as f64;
    let mut colors: Vec<(usize, usize)> = hits.into_iter().enumerate().filter(|(_, n)| *n > 0).collect();
    colors.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    colors.truncate(count);
    Value::Array(
        colors
            .into_iter()
            .map(|(i, n)| {
                let [r, g, b] = [palette[3 * i], palette[3 * i + 1], palette[3 * i + 2]];
                json!({
                    "hex": format!("#{r:02x}{g:02x}{b:02x}"),
                    "share": (n as f64 / total * 1000.0).round() / 1000.0,
                })
            })
            .collect(),
    )
}
