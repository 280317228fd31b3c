//! The operations on a decoded image: one step of a pipeline. Geometry is in `geometry.rs`;
//! the colour filters are here.

use image::DynamicImage;

use super::{
    error::ProcessError,
    geometry::{self, Background, Crop, Padding, Resize},
};

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
    /// The step for `degrees` clockwise (−360…360): exact for multiples of 90° (nothing for
    /// 0°), resampled onto a larger canvas of `background` otherwise.
    pub fn step(degrees: f64, background: Background) -> Op {
        let turn = degrees.rem_euclid(360.0);
        match turn {
            0.0 => Op::Keep,
            90.0 => Op::Rotate(Rotation::Quarter),
            180.0 => Op::Rotate(Rotation::Half),
            270.0 => Op::Rotate(Rotation::ThreeQuarters),
            _ => Op::RotateBy(turn, background),
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

/// One operation on a decoded image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// Nothing but a re-encode (`convert`, `compress`, `strip-exif`).
    Keep,
    /// `resize` and `thumbnail`.
    Resize(Resize),
    /// `rotate` by a multiple of 90°.
    Rotate(Rotation),
    /// `rotate` by another angle (degrees, clockwise), the corners filled.
    RotateBy(f64, Background),
    /// `flip`.
    Flip(Flip),
    /// `crop`.
    Crop(Crop),
    /// `trim`: the border within this difference of the top-left colour.
    Trim(u8),
    /// `pad`.
    Pad(Padding, Background),
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
    /// What a JPEG decoded for this first step must cover at least, for an upright full size
    /// of `width`×`height` (shrink-on-load); `None` when the step needs every pixel.
    pub(crate) fn needs(&self, width: u32, height: u32) -> Option<(u32, u32)> {
        match self {
            Op::Resize(resize) => Some(resize.scaled(width, height)),
            _ => None,
        }
    }

    /// Applies the operation to `image`, whose upright full size (before any shrink-on-load) is
    /// `full`; a result over `max_pixels` is refused.
    pub(crate) fn apply(
        &self,
        image: DynamicImage,
        full: (u32, u32),
        max_pixels: u64,
    ) -> Result<DynamicImage, ProcessError> {
        Ok(match *self {
            Op::Keep => image,
            Op::Resize(resize) => resize.apply(&image, full, max_pixels)?,
            Op::RotateBy(degrees, background) => geometry::rotate(&image, degrees, background, max_pixels)?,
            Op::Trim(threshold) => geometry::trim(image, threshold),
            Op::Pad(sides, background) => geometry::pad(&image, sides, background, max_pixels)?,
            Op::Rotate(Rotation::Quarter) => image.rotate90(),
            Op::Rotate(Rotation::Half) => image.rotate180(),
            Op::Rotate(Rotation::ThreeQuarters) => image.rotate270(),
            Op::Flip(Flip::Horizontal) => image.fliph(),
            Op::Flip(Flip::Vertical) => image.flipv(),
            Op::Crop(crop) => crop.apply(&image)?,
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
