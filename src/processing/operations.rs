//! The operations on a decoded image. Resampling is Lanczos3 (the `image` crate's).

use image::{DynamicImage, imageops::FilterType};

use super::error::ProcessError;

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

/// `resize`: to a width, a height, or a box.
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
}

impl Resize {
    /// The size of the result for an input of `width`×`height`, before any crop.
    fn scaled(&self, width: u32, height: u32) -> Result<(u32, u32), ProcessError> {
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
        Ok((side(w, sx), side(h, sy)))
    }

    /// Resizes `image`; refuses a result over `max_pixels`.
    pub(crate) fn apply(&self, image: &DynamicImage, max_pixels: u64) -> Result<DynamicImage, ProcessError> {
        let (width, height) = self.scaled(image.width(), image.height())?;
        let pixels = u64::from(width) * u64::from(height);
        if pixels > max_pixels {
            return Err(ProcessError::BadParameter(format!(
                "the result would be {width}×{height} = {pixels} pixels, over processing.max_output_pixels \
                 ({max_pixels}); ask for a smaller `width` or `height`"
            )));
        }
        let resized = image.resize_exact(width, height, FilterType::Lanczos3);
        match (self.fit, self.width, self.height) {
            (Fit::Cover, Some(w), Some(h)) if width > w || height > h => {
                let (w, h) = (w.min(width), h.min(height));
                Ok(resized.crop_imm((width - w) / 2, (height - h) / 2, w, h))
            }
            _ => Ok(resized),
        }
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
        }
    }

    #[test]
    fn sizes_follow_the_fit() {
        let r = |w, h, fit, enlarge| resize(w, h, fit, enlarge).scaled(400, 200).unwrap();
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
        assert_eq!(resize(None, None, Fit::Contain, false).scaled(4, 4).unwrap(), (4, 4));
    }

    #[test]
    fn cover_crops_to_the_box_and_outputs_are_bounded() {
        let image = DynamicImage::new_rgb8(400, 200);
        let cover = resize(Some(100), Some(100), Fit::Cover, false)
            .apply(&image, u64::MAX)
            .unwrap();
        assert_eq!((cover.width(), cover.height()), (100, 100));
        let big = resize(Some(4000), None, Fit::Contain, true).apply(&image, 1_000_000);
        assert!(matches!(big, Err(ProcessError::BadParameter(m)) if m.contains("4000×2000")));
    }
}

/// Turns by a multiple of 90° (lossless in pixels), clockwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// 90° clockwise.
    Quarter,
    /// 180°.
    Half,
    /// 270° clockwise (90° counter-clockwise).
    ThreeQuarters,
}

impl Rotation {
    /// `90`, `180`, `270` (or `-90`); other angles are not supported yet.
    pub fn parse(text: &str) -> Result<Rotation, ProcessError> {
        match text.trim() {
            "90" | "-270" => Ok(Rotation::Quarter),
            "180" | "-180" => Ok(Rotation::Half),
            "270" | "-90" => Ok(Rotation::ThreeQuarters),
            other => Err(ProcessError::BadParameter(format!(
                "`angle`: `{other}` is not one of 90, 180, 270 (multiples of 90 only, for now)"
            ))),
        }
    }
}

/// A mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flip {
    /// Left and right swap.
    Horizontal,
    /// Top and bottom swap.
    Vertical,
}

impl Flip {
    /// `horizontal` or `vertical`.
    pub fn parse(text: &str) -> Result<Flip, ProcessError> {
        match text {
            "horizontal" => Ok(Flip::Horizontal),
            "vertical" => Ok(Flip::Vertical),
            other => Err(ProcessError::BadParameter(format!(
                "`direction`: `{other}` is not horizontal or vertical"
            ))),
        }
    }
}

/// A rectangle to keep: `x`, `y` from the top left, `width`×`height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width kept.
    pub width: u32,
    /// Height kept.
    pub height: u32,
}

/// One operation on a decoded image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// Nothing but a re-encode (`convert`, `compress`, `strip-exif`).
    Keep,
    /// `resize`.
    Resize(Resize),
    /// `rotate` by a multiple of 90°.
    Rotate(Rotation),
    /// `flip`.
    Flip(Flip),
    /// `crop` with coordinates.
    Crop(Crop),
    /// `filter/grayscale`.
    Grayscale,
    /// `filter/blur` with a Gaussian of this sigma.
    Blur(f32),
    /// `filter/sharpen`: an unsharp mask of this sigma and threshold.
    Sharpen {
        /// Radius of the blur the mask subtracts.
        sigma: f32,
        /// Differences below this are left alone (0: sharpen everything).
        threshold: i32,
    },
    /// `filter/sepia`.
    Sepia,
    /// `adjust/brightness`: added to every channel (−255…255).
    Brightness(i32),
    /// `adjust/contrast`: in percent (−100…100).
    Contrast(f32),
    /// `adjust/saturation`: a factor (0 = gray, 1 = unchanged, up to 4).
    Saturation(f32),
}

impl Op {
    /// Applies the operation; a result over `max_pixels` is refused.
    pub(crate) fn apply(&self, image: DynamicImage, max_pixels: u64) -> Result<DynamicImage, ProcessError> {
        Ok(match *self {
            Op::Keep => image,
            Op::Resize(resize) => resize.apply(&image, max_pixels)?,
            Op::Rotate(Rotation::Quarter) => image.rotate90(),
            Op::Rotate(Rotation::Half) => image.rotate180(),
            Op::Rotate(Rotation::ThreeQuarters) => image.rotate270(),
            Op::Flip(Flip::Horizontal) => image.fliph(),
            Op::Flip(Flip::Vertical) => image.flipv(),
            Op::Crop(crop) => {
                let fits = u64::from(crop.x) + u64::from(crop.width) <= u64::from(image.width())
                    && u64::from(crop.y) + u64::from(crop.height) <= u64::from(image.height());
                if !fits {
                    return Err(ProcessError::BadParameter(format!(
                        "the crop {}×{} at ({}, {}) does not lie within the {}×{} image",
                        crop.width,
                        crop.height,
                        crop.x,
                        crop.y,
                        image.width(),
                        image.height()
                    )));
                }
                image.crop_imm(crop.x, crop.y, crop.width, crop.height)
            }
            Op::Grayscale => {
                if image.color().has_alpha() {
                    DynamicImage::ImageLumaA8(image.to_luma_alpha8())
                } else {
                    DynamicImage::ImageLuma8(image.to_luma8())
                }
            }
            Op::Blur(sigma) => image.blur(sigma),
            Op::Sharpen { sigma, threshold } => image.unsharpen(sigma, threshold),
            Op::Sepia => map_rgb(image, |[r, g, b]| {
                let (r, g, b) = (f32::from(r), f32::from(g), f32::from(b));
                [
                    0.393 * r + 0.769 * g + 0.189 * b,
                    0.349 * r + 0.686 * g + 0.168 * b,
                    0.272 * r + 0.534 * g + 0.131 * b,
                ]
            }),
            Op::Brightness(value) => image.brighten(value),
            Op::Contrast(percent) => image.adjust_contrast(percent),
            Op::Saturation(factor) => map_rgb(image, |[r, g, b]| {
                // Rec. 601 luma, then each channel moved away from (or towards) it.
                let (r, g, b) = (f32::from(r), f32::from(g), f32::from(b));
                let luma = 0.299 * r + 0.587 * g + 0.114 * b;
                [
                    luma + (r - luma) * factor,
                    luma + (g - luma) * factor,
                    luma + (b - luma) * factor,
                ]
            }),
        })
    }
}

/// Applies `f` to every pixel's red, green and blue (8-bit; results clamped), alpha kept.
fn map_rgb(image: DynamicImage, f: impl Fn([u8; 3]) -> [f32; 3]) -> DynamicImage {
    let mut rgba = image.to_rgba8();
    for pixel in rgba.pixels_mut() {
        let [r, g, b, a] = pixel.0;
        let [r, g, b] = f([r, g, b]).map(|c| c.round().clamp(0.0, 255.0) as u8);
        pixel.0 = [r, g, b, a];
    }
    DynamicImage::ImageRgba8(rgba)
}
