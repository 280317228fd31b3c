//! Geometry: resize (Lanczos3 by fast_image_resize, SIMD), crops (coordinates, square, smart),
//! trim, pad, rotate and flip.

use fast_image_resize as fr;
use image::{DynamicImage, Rgba, RgbaImage};

use super::{decoded::Extent, error::ProcessError, smart_crop};

/// An RGBA colour for what a geometry adds (`pad`, `rotate` by other angles) and what alpha is
/// flattened onto: `#rrggbb`, `#rrggbbaa` (the `#` optional) or `transparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Background(pub [u8; 4]);

impl Default for Background {
    /// Transparent white: white once flattened, transparent where the format has alpha.
    fn default() -> Background {
        Background([255, 255, 255, 0])
    }
}

impl Background {
    /// Parses `#rrggbb`, `#rrggbbaa` or `transparent`.
    pub fn parse(text: &str) -> Result<Background, ProcessError> {
        if text == "transparent" {
            return Ok(Background::default());
        }
        let hex = text.strip_prefix('#').unwrap_or(text);
        let bad = || {
            ProcessError::BadParameter(format!(
                "`background`: `{text}` is not #rrggbb, #rrggbbaa or transparent"
            ))
        };
        if !matches!(hex.len(), 6 | 8) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let channel = |i: usize| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("ff"), 16).map_err(|_| bad());
        Ok(Background([
            channel(0)?,
            channel(2)?,
            channel(4)?,
            if hex.len() == 8 { channel(6)? } else { 255 },
        ]))
    }

    /// The colour without alpha (what formats without alpha get under transparent pixels).
    pub fn rgb(self) -> [u8; 3] {
        let [r, g, b, _] = self.0;
        [r, g, b]
    }
}

/// How `resize` fits the image to `width`×`height` (sharp's and the toolkit's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fit {
    /// Within the box, aspect kept (the default); no letterbox is added, as `inside`.
    #[default]
    Contain,
    /// Covers the box, aspect kept, then cropped to it around the centre.
    Cover,
    /// Exactly the box, aspect ignored.
    Fill,
    /// Within the box, aspect kept.
    Inside,
    /// Covers the box, aspect kept, not cropped.
    Outside,
}

impl Fit {
    /// `contain`, `cover`, `fill`, `inside`, `outside`.
    pub fn parse(text: &str) -> Result<Fit, ProcessError> {
        Ok(match text {
            "contain" => Fit::Contain,
            "cover" => Fit::Cover,
            "fill" => Fit::Fill,
            "inside" => Fit::Inside,
            "outside" => Fit::Outside,
            other => {
                return Err(ProcessError::BadParameter(format!(
                    "`fit`: `{other}` is not one of contain, cover, fill, inside, outside"
                )));
            }
        })
    }
}

/// `resize` (and `thumbnail`): to a width, a height, or a box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resize {
    /// Target width in pixels.
    pub width: Option<u32>,
    /// Target height in pixels.
    pub height: Option<u32>,
    /// How the image meets a box of both.
    pub fit: Fit,
    /// Whether the result may be larger than the input.
    pub enlarge: bool,
    /// Whether to resample in linear light (`linear=true`) rather than on sRGB values.
    pub linear: bool,
}

impl Resize {
    /// The resampled size for an input of `width`×`height`, before any crop.
    pub(crate) fn scaled(&self, width: u32, height: u32) -> (u32, u32) {
        let (w, h) = (f64::from(width), f64::from(height));
        let by_width = self.width.map(|t| f64::from(t) / w);
        let by_height = self.height.map(|t| f64::from(t) / h);
        let (sx, sy) = match (by_width, by_height, self.fit) {
            // Neither: the size is kept (the result is re-encoded, e.g. to another `format`).
            (None, None, _) => (1.0, 1.0),
            (Some(s), None, _) | (None, Some(s), _) => (s, s),
            (Some(x), Some(y), Fit::Fill) => (x, y),
            (Some(x), Some(y), Fit::Contain | Fit::Inside) => (x.min(y), x.min(y)),
            (Some(x), Some(y), Fit::Cover | Fit::Outside) => (x.max(y), x.max(y)),
        };
        let (sx, sy) = if self.enlarge {
            (sx, sy)
        } else {
            (sx.min(1.0), sy.min(1.0))
        };
        let side = |size: f64, scale: f64| (size * scale).round().clamp(1.0, f64::from(u32::MAX)) as u32;
        (side(w, sx), side(h, sy))
    }

    /// Resizes `image`, planned from `extent`'s full size (larger than the image after
    /// shrink-on-load) and resampled from the part of it that `extent` covers; refuses a
    /// result over `max_pixels`.
    pub(crate) fn apply(
        &self,
        image: &DynamicImage,
        extent: Extent,
        max_pixels: u64,
    ) -> Result<DynamicImage, ProcessError> {
        let Extent { full, covered } = extent;
        let (width, height) = self.scaled(full.0, full.1);
        check_output(width, height, max_pixels)?;
        let resized = if self.linear {
            resample_linear(image, covered, width, height)?
        } else {
            resample(image, covered, width, height)?
        };
        match (self.fit, self.width, self.height) {
            (Fit::Cover, Some(w), Some(h)) if width > w || height > h => {
                let (w, h) = (w.min(width), h.min(height));
                Ok(resized.crop_imm((width - w) / 2, (height - h) / 2, w, h))
            }
            _ => Ok(resized),
        }
    }
}

/// Refuses a result over `processing.max_output_pixels`.
pub(crate) fn check_output(width: u32, height: u32, max_pixels: u64) -> Result<(), ProcessError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(ProcessError::BadParameter(format!(
            "the result would be {width}×{height} = {pixels} pixels, over processing.max_output_pixels \
             ({max_pixels}); ask for a smaller size"
        )));
    }
    Ok(())
}

/// The `[left, top, width, height]` part of `image` (in its pixels, fractions allowed)
/// resampled to exactly `width`×`height` with Lanczos3 (alpha premultiplied while filtering, so
/// transparent pixels do not bleed their colour).
pub(crate) fn resample(
    image: &DynamicImage,
    [left, top, w, h]: [f64; 4],
    width: u32,
    height: u32,
) -> Result<DynamicImage, ProcessError> {
    let whole = [left, top, w, h] == super::decoded::whole(image);
    if whole && (image.width(), image.height()) == (width, height) {
        return Ok(image.clone());
    }
    let mut resized = DynamicImage::new(width, height, image.color());
    let options = fr::ResizeOptions::new()
        .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3))
        .crop(left, top, w, h);
    fr::Resizer::new()
        .resize(image, &mut resized, &options)
        .map_err(|e| ProcessError::Failed(format!("resampling: {e}")))?;
    Ok(resized)
}

/// `image` resampled like [`resample`] but in linear light: 8-bit sRGB values are mapped to
/// 16-bit linear ones, filtered, and mapped back (alpha is not mapped). A black-and-white
/// checkerboard shrinks to the grey of equal light (188), not the darker 128 of averaging
/// sRGB values; it costs about three times a plain resample (docs/benchmarks.md).
pub(crate) fn resample_linear(
    image: &DynamicImage,
    covered: [f64; 4],
    width: u32,
    height: u32,
) -> Result<DynamicImage, ProcessError> {
    let (source, color, deep) = match image {
        DynamicImage::ImageLuma8(_) => (image.clone(), image::ColorType::L8, image::ColorType::L16),
        DynamicImage::ImageLumaA8(_) => (image.clone(), image::ColorType::La8, image::ColorType::La16),
        DynamicImage::ImageRgb8(_) => (image.clone(), image::ColorType::Rgb8, image::ColorType::Rgb16),
        DynamicImage::ImageRgba8(_) => (image.clone(), image::ColorType::Rgba8, image::ColorType::Rgba16),
        // Deeper images: mapped through 8-bit RGBA (a 16-bit sRGB input is rare on the web).
        _ => (
            DynamicImage::ImageRgba8(image.to_rgba8()),
            image::ColorType::Rgba8,
            image::ColorType::Rgba16,
        ),
    };
    let failed = |e: &dyn std::fmt::Display| ProcessError::Failed(format!("linear resampling: {e}"));
    let mapper = fr::create_srgb_mapper();
    let mut linear = DynamicImage::new(source.width(), source.height(), deep);
    mapper.forward_map(&source, &mut linear).map_err(|e| failed(&e))?;
    let resized = resample(&linear, covered, width, height)?;
    let mut back = DynamicImage::new(width, height, color);
    mapper.backward_map(&resized, &mut back).map_err(|e| failed(&e))?;
    Ok(back)
}

/// What `crop` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crop {
    /// `coordinates`: `x`, `y` from the top left, `width`×`height`.
    Rect {
        /// Left edge.
        x: u32,
        /// Top edge.
        y: u32,
        /// Width kept.
        width: u32,
        /// Height kept.
        height: u32,
    },
    /// `square`: the largest centred square.
    Square,
    /// `smart`: the `width`×`height` window (default: the largest square) with the most detail.
    Smart {
        /// Width kept (at most the image's).
        width: Option<u32>,
        /// Height kept (at most the image's).
        height: Option<u32>,
    },
}

impl Crop {
    /// Crops `image`.
    pub(crate) fn apply(&self, image: &DynamicImage) -> Result<DynamicImage, ProcessError> {
        let (w, h) = (image.width(), image.height());
        Ok(match *self {
            Crop::Rect { x, y, width, height } => {
                let fits =
                    u64::from(x) + u64::from(width) <= u64::from(w) && u64::from(y) + u64::from(height) <= u64::from(h);
                if !fits {
                    return Err(ProcessError::BadParameter(format!(
                        "the crop {width}×{height} at ({x}, {y}) does not lie within the {w}×{h} image"
                    )));
                }
                image.crop_imm(x, y, width, height)
            }
            Crop::Square => {
                let side = w.min(h);
                image.crop_imm((w - side) / 2, (h - side) / 2, side, side)
            }
            Crop::Smart { width, height } => {
                let side = w.min(h);
                let (tw, th) = (width.unwrap_or(side).min(w), height.unwrap_or(side).min(h));
                let (x, y) = smart_crop::best_window(image, tw, th);
                image.crop_imm(x, y, tw, th)
            }
        })
    }
}

/// `trim`: the smallest rectangle holding every pixel that differs from the top-left one by
/// more than `threshold` in some channel. A uniform image is left as it is.
pub(crate) fn trim(image: DynamicImage, threshold: u8) -> DynamicImage {
    let rgba = image.to_rgba8();
    let corner = rgba.get_pixel(0, 0).0;
    let differs = |p: &Rgba<u8>| p.0.iter().zip(corner).any(|(a, b)| a.abs_diff(b) > threshold);
    let (mut left, mut top, mut right, mut bottom) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, pixel) in rgba.enumerate_pixels() {
        if differs(pixel) {
            left = left.min(x);
            top = top.min(y);
            right = right.max(x);
            bottom = bottom.max(y);
        }
    }
    if left == u32::MAX {
        return image;
    }
    image.crop_imm(left, top, right - left + 1, bottom - top + 1)
}

/// Sides of `pad`, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Padding {
    /// Above.
    pub top: u32,
    /// Right of.
    pub right: u32,
    /// Below.
    pub bottom: u32,
    /// Left of.
    pub left: u32,
}

/// `pad`: `image` on a larger canvas of `background`.
pub(crate) fn pad(
    image: &DynamicImage,
    sides: Padding,
    background: Background,
    max_pixels: u64,
) -> Result<DynamicImage, ProcessError> {
    let width = image.width().saturating_add(sides.left).saturating_add(sides.right);
    let height = image.height().saturating_add(sides.top).saturating_add(sides.bottom);
    check_output(width, height, max_pixels)?;
    let mut canvas = RgbaImage::from_pixel(width, height, Rgba(background.0));
    image::imageops::replace(
        &mut canvas,
        &image.to_rgba8(),
        i64::from(sides.left),
        i64::from(sides.top),
    );
    Ok(opaque_if_possible(
        canvas,
        image.color().has_alpha() || background.0[3] < 255,
    ))
}

/// `rotate` by an angle that is not a multiple of 90°: the canvas grows to hold the turned
/// image, bilinear sampling, corners filled with `background`.
pub(crate) fn rotate(
    image: &DynamicImage,
    degrees: f64,
    background: Background,
    max_pixels: u64,
) -> Result<DynamicImage, ProcessError> {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (w, h) = (f64::from(image.width()), f64::from(image.height()));
    let out_w = (w * cos.abs() + h * sin.abs()).ceil().max(1.0);
    let out_h = (w * sin.abs() + h * cos.abs()).ceil().max(1.0);
    let (width, height) = (
        out_w.min(f64::from(u32::MAX)) as u32,
        out_h.min(f64::from(u32::MAX)) as u32,
    );
    check_output(width, height, max_pixels)?;
    let source = image.to_rgba8();
    let fill = background.0.map(f64::from);
    let at = |x: i64, y: i64| -> [f64; 4] {
        match (u32::try_from(x), u32::try_from(y)) {
            (Ok(x), Ok(y)) if x < source.width() && y < source.height() => source.get_pixel(x, y).0.map(f64::from),
            _ => fill,
        }
    };
    let (cx, cy, ox, oy) = (w / 2.0, h / 2.0, out_w / 2.0, out_h / 2.0);
    let turned = RgbaImage::from_fn(width, height, |x, y| {
        // The source point this pixel's centre comes from (clockwise turn, inverted).
        let (dx, dy) = (f64::from(x) + 0.5 - ox, f64::from(y) + 0.5 - oy);
        let sx = dx * cos + dy * sin + cx - 0.5;
        let sy = -dx * sin + dy * cos + cy - 0.5;
        let (x0, y0) = (sx.floor(), sy.floor());
        let (fx, fy) = (sx - x0, sy - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let (a, b, c, d) = (at(x0, y0), at(x0 + 1, y0), at(x0, y0 + 1), at(x0 + 1, y0 + 1));
        let mut pixel = [0u8; 4];
        for i in 0..4 {
            let top = a[i] + (b[i] - a[i]) * fx;
            let bottom = c[i] + (d[i] - c[i]) * fx;
            pixel[i] = (top + (bottom - top) * fy).round().clamp(0.0, 255.0) as u8;
        }
        Rgba(pixel)
    });
    Ok(opaque_if_possible(
        turned,
        image.color().has_alpha() || background.0[3] < 255,
    ))
}

/// RGBA, or RGB when nothing in it can be transparent.
fn opaque_if_possible(rgba: RgbaImage, alpha: bool) -> DynamicImage {
    let image = DynamicImage::ImageRgba8(rgba);
    if alpha {
        image
    } else {
        DynamicImage::ImageRgb8(image.to_rgb8())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resize(width: Option<u32>, height: Option<u32>, fit: Fit, enlarge: bool) -> Resize {
        Resize {
            width,
            height,
            fit,
            enlarge,
            linear: false,
        }
    }

    #[test]
    fn sizes_follow_the_fit() {
        let r = |w, h, fit, enlarge| resize(w, h, fit, enlarge).scaled(400, 200);
        assert_eq!(r(Some(100), None, Fit::Contain, false), (100, 50));
        assert_eq!(r(None, Some(50), Fit::Contain, false), (100, 50));
        assert_eq!(r(Some(100), Some(100), Fit::Contain, false), (100, 50));
        assert_eq!(r(Some(100), Some(100), Fit::Inside, false), (100, 50));
        assert_eq!(r(Some(100), Some(100), Fit::Cover, false), (200, 100));
        assert_eq!(r(Some(100), Some(100), Fit::Outside, false), (200, 100));
        assert_eq!(r(Some(100), Some(100), Fit::Fill, false), (100, 100));
        assert_eq!(
            r(Some(800), None, Fit::Contain, false),
            (400, 200),
            "no enlarging by default"
        );
        assert_eq!(r(Some(800), None, Fit::Contain, true), (800, 400));
        assert_eq!(resize(None, None, Fit::Contain, false).scaled(4, 4), (4, 4));
    }

    #[test]
    fn cover_crops_to_the_box_and_outputs_are_bounded() {
        let image = DynamicImage::new_rgb8(400, 200);
        let cover = resize(Some(100), Some(100), Fit::Cover, false)
            .apply(&image, Extent::of(&image), u64::MAX)
            .unwrap();
        assert_eq!((cover.width(), cover.height()), (100, 100));
        let big = resize(Some(4000), None, Fit::Contain, true).apply(&image, Extent::of(&image), 1_000_000);
        assert!(matches!(big, Err(ProcessError::BadParameter(m)) if m.contains("4000×2000")));
    }

    #[test]
    fn linear_light_keeps_the_brightness_of_fine_detail() {
        let checkers = image::GrayImage::from_fn(64, 64, |x, y| image::Luma([if (x + y) % 2 == 0 { 0 } else { 255 }]));
        let image = DynamicImage::ImageLuma8(checkers);
        let whole = crate::processing::decoded::whole(&image);
        let plain = resample(&image, whole, 8, 8).unwrap().to_luma8();
        let linear = resample_linear(&image, whole, 8, 8).unwrap().to_luma8();
        let (p, l) = (plain.get_pixel(4, 4).0[0], linear.get_pixel(4, 4).0[0]);
        assert!(p.abs_diff(128) <= 2, "sRGB averaging gives mid-grey values: {p}");
        assert!(
            l.abs_diff(188) <= 2,
            "linear light gives the grey of half the light: {l}"
        );
    }

    #[test]
    fn backgrounds_parse_and_name_what_is_wrong() {
        assert_eq!(Background::parse("#ff000080").unwrap(), Background([255, 0, 0, 128]));
        assert_eq!(Background::parse("00ff00").unwrap(), Background([0, 255, 0, 255]));
        assert_eq!(Background::parse("transparent").unwrap(), Background::default());
        for bad in ["#fff", "red", "#gg0000", "#ff00000", "#ÿÿÿÿÿÿ"] {
            let err = Background::parse(bad).unwrap_err();
            assert!(err.to_string().contains("`background`"), "{bad}: {err}");
        }
    }

    #[test]
    fn trim_finds_the_content_and_leaves_uniform_images_alone() {
        let mut canvas = RgbaImage::from_pixel(50, 40, Rgba([250, 250, 250, 255]));
        for (x, y) in [(10, 5), (30, 20)] {
            canvas.put_pixel(x, y, Rgba([0, 0, 0, 255]));
        }
        canvas.put_pixel(45, 35, Rgba([245, 250, 250, 255])); // within the threshold
        let trimmed = trim(DynamicImage::ImageRgba8(canvas.clone()), 10);
        assert_eq!((trimmed.width(), trimmed.height()), (21, 16));
        let uniform = trim(
            DynamicImage::ImageRgba8(RgbaImage::from_pixel(8, 8, Rgba([1, 2, 3, 255]))),
            10,
        );
        assert_eq!((uniform.width(), uniform.height()), (8, 8));
    }

    #[test]
    fn pad_and_rotate_grow_the_canvas_within_the_limit() {
        let image = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(100, 50, image::Rgb([0, 0, 255])));
        let sides = Padding {
            top: 1,
            right: 2,
            bottom: 3,
            left: 4,
        };
        let padded = pad(&image, sides, Background([255, 0, 0, 255]), u64::MAX).unwrap();
        assert_eq!((padded.width(), padded.height()), (106, 54));
        assert!(!padded.color().has_alpha(), "opaque on opaque stays RGB");
        assert_eq!(padded.to_rgb8().get_pixel(0, 0).0, [255, 0, 0]);
        assert_eq!(padded.to_rgb8().get_pixel(4, 1).0, [0, 0, 255]);
        let turned = rotate(&image, 45.0, Background::default(), u64::MAX).unwrap();
        assert_eq!((turned.width(), turned.height()), (107, 107));
        let rgba = turned.to_rgba8();
        assert_eq!(rgba.get_pixel(0, 0).0[3], 0, "corners are the transparent background");
        assert_eq!(rgba.get_pixel(53, 53).0, [0, 0, 255, 255], "the centre is the image");
        assert!(rotate(&image, 45.0, Background::default(), 10_000).is_err());
    }
}
