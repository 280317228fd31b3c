//! `extract/colors`: the dominant colours of an image and the share of the picture each covers.
//! The image is shrunk to at most 64×64 (an area average) and its opaque colours are clustered
//! by k-means (Lloyd's iterations from a farthest-first start, so the answer is the same every
//! time); each cluster's mean is a colour, its pixels its share. Alpha is not a colour here: a
//! half-transparent red is red, never listed twice. (NeuQuant, used before, listed the same
//! colour once per alpha level, and a review measured its colours 35.0 levels from a
//! photograph's pixels on average, against 25.4 for k-means.)

use image::DynamicImage;
use serde_json::{Value, json};

/// Side of the thumbnail the palette is computed from.
const SAMPLE: u32 = 64;

/// Lloyd iterations at most (they converge in a handful on 4,096 pixels).
const ITERATIONS: usize = 32;

type Rgb = [f32; 3];

fn distance(a: &Rgb, b: &Rgb) -> f32 {
    (0..3).map(|i| (a[i] - b[i]) * (a[i] - b[i])).sum()
}

fn nearest(centers: &[Rgb], point: &Rgb) -> usize {
    (0..centers.len())
        .min_by(|&i, &j| distance(&centers[i], point).total_cmp(&distance(&centers[j], point)))
        .unwrap_or(0)
}

/// `k` cluster means of `points` and how many points each holds (some may hold none).
fn clusters(points: &[Rgb], k: usize) -> Vec<(Rgb, usize)> {
    let mean = |members: &mut dyn Iterator<Item = &Rgb>| {
        let (mut sum, mut n) = ([0.0f32; 3], 0usize);
        for p in members {
            (0..3).for_each(|i| sum[i] += p[i]);
            n += 1;
        }
        (sum.map(|s| s / n.max(1) as f32), n)
    };
    // Farthest-first: the point nearest the mean, then each time the point farthest from every
    // centre so far (none when all points are already centres).
    let (centre, _) = mean(&mut points.iter());
    let mut centers = vec![points[nearest(points, &centre)]];
    while centers.len() < k {
        let far = points
            .iter()
            .map(|p| (p, centers.iter().map(|c| distance(c, p)).fold(f32::MAX, f32::min)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match far {
            Some((p, d)) if d > 0.0 => centers.push(*p),
            _ => break,
        }
    }
    let mut assigned = vec![usize::MAX; points.len()];
    for _ in 0..ITERATIONS {
        let mut changed = false;
        for (slot, p) in assigned.iter_mut().zip(points) {
            let best = nearest(&centers, p);
            changed |= *slot != best;
            *slot = best;
        }
        for (c, center) in centers.iter_mut().enumerate() {
            let (m, n) = mean(&mut points.iter().zip(&assigned).filter(|(_, a)| **a == c).map(|(p, _)| p));
            if n > 0 {
                *center = m;
            }
        }
        if !changed {
            break;
        }
    }
    centers
        .iter()
        .enumerate()
        .map(|(c, center)| (*center, assigned.iter().filter(|a| **a == c).count()))
        .collect()
}

/// Up to `count` colours, most common first, as `{"hex": "#rrggbb", "share": 0.0..1.0}`;
/// fully transparent pixels are not counted, and no colour is listed twice.
pub(crate) fn dominant(image: &DynamicImage, count: usize) -> Value {
    let small = image.thumbnail(SAMPLE, SAMPLE).to_rgba8();
    let points: Vec<Rgb> = small
        .pixels()
        .filter(|p| p[3] > 0)
        .map(|p| [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])])
        .collect();
    if points.is_empty() {
        return json!([]);
    }
    let total = points.len() as f64;
    // Clusters whose means round to one colour are that colour, once.
    let mut colors: Vec<([u8; 3], usize)> = Vec::new();
    for (center, n) in clusters(&points, count.max(1)) {
        let rgb = center.map(|c| c.round().clamp(0.0, 255.0) as u8);
        match colors.iter_mut().find(|(c, _)| *c == rgb) {
            Some((_, m)) => *m += n,
            None if n > 0 => colors.push((rgb, n)),
            None => {}
        }
    }
    colors.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    colors.truncate(count);
    Value::Array(
        colors
            .into_iter()
            .map(|([r, g, b], n)| {
                json!({
                    "hex": format!("#{r:02x}{g:02x}{b:02x}"),
                    "share": (n as f64 / total * 1000.0).round() / 1000.0,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_levels_are_one_colour_and_shares_add_up() {
        // Three quarters red (half of it half-transparent), one quarter blue.
        let image = DynamicImage::ImageRgba8(image::RgbaImage::from_fn(64, 64, |x, y| match (x < 48, y < 32) {
            (true, true) => image::Rgba([200, 20, 20, 255]),
            (true, false) => image::Rgba([200, 20, 20, 128]),
            _ => image::Rgba([10, 30, 220, 255]),
        }));
        let colors = dominant(&image, 5);
        let list = colors.as_array().unwrap();
        assert_eq!(list.len(), 2, "{colors}");
        assert_eq!(list[0]["hex"], "#c81414");
        assert_eq!(list[0]["share"], 0.75);
        assert_eq!(list[1]["hex"], "#0a1edc");
    }

    #[test]
    fn the_palette_stays_close_to_the_pixels() {
        // A photograph-like gradient with texture: every pixel within a short distance of a colour.
        let image = DynamicImage::ImageRgb8(image::RgbImage::from_fn(64, 64, |x, y| {
            let ripple = ((x as f32 / 5.0).sin() * 30.0) as i32;
            let c = |v: i32| (v + ripple).clamp(0, 255) as u8;
            image::Rgb([c(x as i32 * 4), c(y as i32 * 4), c(128)])
        }));
        let colors = dominant(&image, 8);
        let palette: Vec<Rgb> = colors
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let hex = c["hex"].as_str().unwrap();
                let at = |i: usize| f32::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap());
                [at(1), at(3), at(5)]
            })
            .collect();
        let small = image.to_rgb8();
        let mean: f32 = small
            .pixels()
            .map(|p| {
                let p = [f32::from(p[0]), f32::from(p[1]), f32::from(p[2])];
                distance(&palette[nearest(&palette, &p)], &p).sqrt()
            })
            .sum::<f32>()
            / 4096.0;
        println!("mean distance to the palette: {mean:.1}");
        assert!(mean < 40.0, "mean distance {mean:.1} (36.9 when written)");
        let hexes: std::collections::HashSet<&str> = colors
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["hex"].as_str().unwrap())
            .collect();
        assert_eq!(
            hexes.len(),
            colors.as_array().unwrap().len(),
            "a colour listed twice: {colors}"
        );
    }
}
