//! The operations on a decoded image: one step of a pipeline. Geometry is in `geometry.rs`;
//! the colour filters are here.

use image::DynamicImage;

use super::{
    blur,
    budget::Budget,
    decoded::Extent,
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
    /// An angle within `RIGHT_ANGLE_TOLERANCE` of a multiple of 90° is that multiple (−1e-300°
    /// is 0°, not a resampling by 360°).
    pub fn step(degrees: f64, background: Background) -> Op {
        let turn = degrees.rem_euclid(360.0);
        let quarters = (turn / 90.0).round();
        if (turn - quarters * 90.0).abs() < RIGHT_ANGLE_TOLERANCE {
            return match quarters as u8 % 4 {
                1 => Op::Rotate(Rotation::Quarter),
                2 => Op::Rotate(Rotation::Half),
                3 => Op::Rotate(Rotation::ThreeQuarters),
                _ => Op::Keep,
            };
        }
        Op::RotateBy(turn, background)
    }
}

/// Degrees under which an angle is taken for the right angle it is next to: far below what
/// turns a corner pixel of the largest image allowed by a pixel (about 1e-4° at 500,000 px).
pub const RIGHT_ANGLE_TOLERANCE: f64 = 1e-9;

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
    /// `filter/sharpen`: an unsharp mask, `out = in + amount × (in − blur(in))`.
    Sharpen {
        /// Radius of the blur the mask subtracts.
        sigma: f32,
        /// Strength: how much of the difference is added (1: as much again).
        amount: f32,
        /// Differences at or below this (0–255) are left alone (0: sharpen everything).
        threshold: u8,
    },
    /// `filter/sepia`.
    Sepia,
    /// `adjust/brightness`: added to every channel (−255…255).
    Brightness(i32),
    /// `adjust/contrast`: in percent (−100…100): the slope around mid-grey is `1 + value/100`.
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

    /// Applies the operation to `image` of `extent` (its size before any shrink-on-load); a
    /// result over `max_pixels` is refused; the blurs check `budget` as they go.
    pub(crate) fn apply(
        &self,
        image: DynamicImage,
        extent: Extent,
        max_pixels: u64,
        budget: &Budget,
    ) -> Result<DynamicImage, ProcessError> {
        Ok(match *self {
            Op::Keep => image,
            Op::Resize(resize) => resize.apply(&image, extent, max_pixels)?,
            Op::RotateBy(degrees, background) => geometry::rotate(&image, degrees, background, max_pixels)?,
            Op::Trim(threshold) => geometry::trim(image, threshold),
            Op::Pad(sides, background) => geometry::pad(&image, sides, background, max_pixels)?,
            Op::Rotate(Rotation::Quarter) => image.rotate90(),
            Op::Rotate(Rotation::Half) => image.rotate180(),
            Op::Rotate(Rotation::ThreeQuarters) => image.rotate270(),
            Op::Flip(Flip::Horizontal) => image.fliph(),
            Op::Flip(Flip::Vertical) => image.flipv(),
            Op::Crop(crop) => crop.apply(&image)?,
            Op::Grayscale => grayscale(&image),
            Op::Blur(sigma) => {
                let mut image = image;
                blur::gaussian(&mut image, sigma, budget)?;
                image
            }
            Op::Sharpen {
                sigma,
                amount,
                threshold,
            } => sharpen(image, sigma, amount, threshold, budget)?,
            Op::Sepia => map_rgb(image, |[r, g, b]| {
                let (r, g, b) = (f32::from(r), f32::from(g), f32::from(b));
                [
                    0.393 * r + 0.769 * g + 0.189 * b,
                    0.349 * r + 0.686 * g + 0.168 * b,
                    0.272 * r + 0.534 * g + 0.131 * b,
                ]
            }),
            Op::Brightness(0) | Op::Contrast(0.0) => image,
            Op::Brightness(value) => image.brighten(value),
            Op::Contrast(percent) => {
                // A straight line through mid-grey: +50 % is a slope of 1.5, −50 % of 0.5.
                let slope = 1.0 + percent / 100.0;
                map_rgb(image, |rgb| rgb.map(|c| (f32::from(c) - 127.5) * slope + 127.5))
            }
            Op::Saturation(factor) => map_rgb(image, |[r, g, b]| {
                // Each channel moved away from (or towards) the pixel's luma.
                let luma = luma([r, g, b]);
                [r, g, b].map(|c| luma + (f32::from(c) - luma) * factor)
            }),
        })
    }
}

/// The grey of an sRGB pixel, the one definition `filter/grayscale` and `adjust/saturation`
/// share: Rec. 709 weights on the sRGB values, as CSS's `grayscale()` and `saturate()` filters
/// (so an image looks as the same filter in a browser makes it look).
fn luma([r, g, b]: [u8; 3]) -> f32 {
    0.2126 * f32::from(r) + 0.7152 * f32::from(g) + 0.0722 * f32::from(b)
}

/// `filter/grayscale`: one grey channel (alpha kept) of [`luma`].
fn grayscale(image: &DynamicImage) -> DynamicImage {
    let rgba = image.to_rgba8();
    let grey = |p: &image::Rgba<u8>| luma([p[0], p[1], p[2]]).round().clamp(0.0, 255.0) as u8;
    if image.color().has_alpha() {
        let pixels = rgba.pixels().flat_map(|p| [grey(p), p[3]]).collect();
        DynamicImage::ImageLumaA8(
            image::GrayAlphaImage::from_raw(rgba.width(), rgba.height(), pixels).unwrap_or_default(),
        )
    } else {
        let pixels = rgba.pixels().map(grey).collect();
        DynamicImage::ImageLuma8(image::GrayImage::from_raw(rgba.width(), rgba.height(), pixels).unwrap_or_default())
    }
}

/// An unsharp mask: each channel gets `amount` times its difference from a Gaussian blur of
/// `sigma` added, where that difference is above `threshold`; alpha is kept. Holds two 8-bit
/// RGBA copies (the source is dropped once converted): 8 bytes per pixel.
fn sharpen(
    image: DynamicImage,
    sigma: f32,
    amount: f32,
    threshold: u8,
    budget: &Budget,
) -> Result<DynamicImage, ProcessError> {
    let sharp = image.into_rgba8();
    let mut mask = DynamicImage::ImageRgba8(sharp.clone());
    blur::gaussian(&mut mask, sigma, budget)?;
    let DynamicImage::ImageRgba8(mut out) = mask else {
        unreachable!("an 8-bit RGBA image stays one when blurred")
    };
    for (o, p) in out.pixels_mut().zip(sharp.pixels()) {
        for c in 0..3 {
            let difference = f32::from(p[c]) - f32::from(o[c]);
            o[c] = if difference.abs() > f32::from(threshold) {
                (f32::from(p[c]) + amount * difference).round().clamp(0.0, 255.0) as u8
            } else {
                p[c]
            };
        }
        o[3] = p[3];
    }
    Ok(DynamicImage::ImageRgba8(out))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pixel(image: &DynamicImage) -> [u8; 4] {
        image.to_rgba8().get_pixel(0, 0).0
    }

    fn one(rgb: [u8; 3]) -> DynamicImage {
        DynamicImage::ImageRgb8(image::RgbImage::from_pixel(1, 1, image::Rgb(rgb)))
    }

    fn apply(op: Op, image: DynamicImage) -> DynamicImage {
        let extent = Extent::of(&image);
        op.apply(
            image,
            extent,
            u64::MAX,
            &Budget::detached(std::time::Duration::from_secs(60)),
        )
        .unwrap()
    }

    #[test]
    fn angles_a_hair_from_a_right_angle_are_that_right_angle() {
        let bg = Background::default();
        assert_eq!(Rotation::step(-1e-300, bg), Op::Keep);
        assert_eq!(Rotation::step(360.0, bg), Op::Keep);
        assert_eq!(Rotation::step(-90.0, bg), Op::Rotate(Rotation::ThreeQuarters));
        assert_eq!(Rotation::step(90.000_000_000_01, bg), Op::Rotate(Rotation::Quarter));
        assert_eq!(Rotation::step(-180.0, bg), Op::Rotate(Rotation::Half));
        assert_eq!(Rotation::step(45.0, bg), Op::RotateBy(45.0, bg));
        assert_eq!(Rotation::step(-0.5, bg), Op::RotateBy(359.5, bg));
    }

    #[test]
    fn contrast_is_a_straight_line_through_mid_grey() {
        // 200 is 72.5 above mid-grey: +50 % moves it to 108.75 above, −50 % to 36.25 above.
        assert_eq!(pixel(&apply(Op::Contrast(50.0), one([200, 200, 200])))[0], 236);
        assert_eq!(pixel(&apply(Op::Contrast(-50.0), one([200, 200, 200])))[0], 164);
        assert_eq!(
            pixel(&apply(Op::Contrast(-100.0), one([200, 30, 90])))[..3],
            [128, 128, 128]
        );
        // 0 changes nothing, not even the pixel type.
        let deep = DynamicImage::ImageRgb16(image::ImageBuffer::from_pixel(1, 1, image::Rgb([40_000u16, 7, 65_535])));
        assert_eq!(apply(Op::Contrast(0.0), deep.clone()), deep);
        assert_eq!(apply(Op::Brightness(0), deep.clone()), deep);
    }

    #[test]
    fn grayscale_and_no_saturation_give_the_same_grey() {
        for rgb in [[200, 40, 40], [10, 250, 90], [128, 128, 128], [0, 0, 255]] {
            let grey = pixel(&apply(Op::Grayscale, one(rgb)))[0];
            let desaturated = pixel(&apply(Op::Saturation(0.0), one(rgb)));
            assert_eq!(desaturated[..3], [grey; 3], "{rgb:?}");
        }
        // Rec. 709 on the sRGB values, as CSS: (200, 40, 40) is 74 (Rec. 601 would say 88).
        assert_eq!(pixel(&apply(Op::Grayscale, one([200, 40, 40])))[0], 74);
    }

    #[test]
    fn sharpen_amount_is_a_strength_and_threshold_spares_small_differences() {
        // A step edge: the dark side's pixel next to the edge gets darker, more with more amount.
        let edge = DynamicImage::ImageRgb8(image::RgbImage::from_fn(16, 1, |x, _| {
            if x < 8 {
                image::Rgb([100, 100, 100])
            } else {
                image::Rgb([160, 160, 160])
            }
        }));
        let at = |image: &DynamicImage| image.to_rgba8().get_pixel(7, 0)[0];
        let sharpen = |amount, threshold| {
            Op::Sharpen {
                sigma: 1.0,
                amount,
                threshold,
            }
            .apply(
                edge.clone(),
                Extent::of(&edge),
                u64::MAX,
                &Budget::detached(std::time::Duration::from_secs(60)),
            )
            .unwrap()
        };
        let (soft, strong) = (at(&sharpen(0.5, 0)), at(&sharpen(2.0, 0)));
        assert!(strong < soft && soft < 100, "{soft} {strong}");
        assert_eq!(at(&sharpen(1.0, 0)), at(&sharpen(1.0, 0)));
        assert_eq!(
            at(&sharpen(2.0, 100)),
            100,
            "a difference under the threshold is left alone"
        );
    }
}
