//! Right-angle turns and mirrors of a JPEG in the DCT domain, as `jpegtran` does: the
//! coefficients are moved, never requantised, so `rotate?angle=90` (and 180, 270, `flip`, and
//! pipelines of only those) gives the source's pixels turned, at the source's size in bytes,
//! however often it is applied. A re-encode, even at the source's quality, lost about 1 dB a pass.
//!
//! The source's EXIF orientation is folded into the same single transform, so the result is
//! upright and carries no orientation. Its metadata is treated as on the decode path: dropped
//! (the colour profile and Adobe's colour-transform marker stay, the pixels being the source's),
//! or with `keep_metadata=true` the EXIF block kept, made true of the result (`exif.rs`).
//!
//! Where a turn is not possible losslessly — a partial MCU (8 or 16 pixels) on an edge that the
//! turn would move to the top or left — the job takes the decode path instead and is re-encoded at
//! the source's estimated quality (jpegtran would trim the edge; changing the size silently is
//! worse). The transform is libjpeg-turbo's; a build without the `libjpeg-turbo` feature always
//! takes the decode path.

use image::metadata::Orientation;

use super::{Op, operations::Flip, operations::Rotation};

/// A symmetry of the square: the matrix it applies to pixel coordinates taken from the image's
/// centre (x right, y down). Composition is matrix product, which is why they are kept this way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Turn([[i8; 2]; 2]);

impl Turn {
    const NONE: Turn = Turn([[1, 0], [0, 1]]);
    /// Clockwise: (x, y) → (−y, x).
    const QUARTER: Turn = Turn([[0, -1], [1, 0]]);
    const HALF: Turn = Turn([[-1, 0], [0, -1]]);
    const THREE_QUARTERS: Turn = Turn([[0, 1], [-1, 0]]);
    const MIRROR: Turn = Turn([[-1, 0], [0, 1]]);
    const UPSIDE_DOWN: Turn = Turn([[1, 0], [0, -1]]);
    /// Along the main diagonal: (x, y) → (y, x).
    const TRANSPOSE: Turn = Turn([[0, 1], [1, 0]]);
    /// Along the other diagonal: (x, y) → (−y, −x).
    const TRANSVERSE: Turn = Turn([[0, -1], [-1, 0]]);

    /// `self`, then `next`.
    fn then(self, next: Turn) -> Turn {
        let (a, b) = (next.0, self.0);
        let cell = |r: usize, c: usize| a[r][0] * b[0][c] + a[r][1] * b[1][c];
        Turn([[cell(0, 0), cell(0, 1)], [cell(1, 0), cell(1, 1)]])
    }

    /// The turn a step makes, if it is one.
    fn of_step(step: &Op) -> Option<Turn> {
        Some(match step {
            Op::Keep => Turn::NONE,
            Op::Rotate(Rotation::Quarter) => Turn::QUARTER,
            Op::Rotate(Rotation::Half) => Turn::HALF,
            Op::Rotate(Rotation::ThreeQuarters) => Turn::THREE_QUARTERS,
            Op::Flip(Flip::Horizontal) => Turn::MIRROR,
            Op::Flip(Flip::Vertical) => Turn::UPSIDE_DOWN,
            _ => return None,
        })
    }

    /// The turn that makes an image of this EXIF orientation upright (as the decode path's
    /// `apply_orientation` does: for 5 and 7, the quarter turn first, then the mirror).
    fn upright(orientation: Orientation) -> Turn {
        match orientation {
            Orientation::NoTransforms => Turn::NONE,
            Orientation::Rotate90 => Turn::QUARTER,
            Orientation::Rotate180 => Turn::HALF,
            Orientation::Rotate270 => Turn::THREE_QUARTERS,
            Orientation::FlipHorizontal => Turn::MIRROR,
            Orientation::FlipVertical => Turn::UPSIDE_DOWN,
            Orientation::Rotate90FlipH => Turn::QUARTER.then(Turn::MIRROR),
            Orientation::Rotate270FlipH => Turn::THREE_QUARTERS.then(Turn::MIRROR),
        }
    }
}

/// `bytes` (a JPEG that passed the content check and the scan limit) upright and turned by
/// `steps` without requantising, or `None` when the steps are not all turns or mirrors, the
/// turn is not possible losslessly, or this build has no transform (the caller decodes).
pub(super) fn turned(bytes: &[u8], steps: &[Op], keep_metadata: bool) -> Option<Vec<u8>> {
    // `convert` and `compress` are steps of nothing: they are asked to re-encode.
    if !steps.iter().any(|step| matches!(step, Op::Rotate(_) | Op::Flip(_))) {
        return None;
    }
    let orientation = exif_block(bytes)
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let turn = steps.iter().try_fold(Turn::upright(orientation), |turn, step| {
        Some(turn.then(Turn::of_step(step)?))
    })?;
    let transformed = transform(bytes, turn)?;
    let size = image::ImageReader::with_format(std::io::Cursor::new(&transformed), image::ImageFormat::Jpeg)
        .into_dimensions()
        .ok()?;
    super::strip::jpeg_with_exif(&transformed, |exif| {
        let mut block = exif.filter(|_| keep_metadata)?.to_vec();
        let _ = Orientation::remove_from_exif_chunk(&mut block);
        Some(super::exif::refreshed(block, size))
    })
}

/// The source's EXIF block (TIFF header first).
fn exif_block(bytes: &[u8]) -> Option<&[u8]> {
    super::jpeg_markers::header(bytes)
        .filter(|segment| segment.marker == 0xE1)
        .find_map(|segment| segment.body().strip_prefix(b"Exif\0\0"))
}

#[cfg(feature = "libjpeg-turbo")]
fn transform(bytes: &[u8], turn: Turn) -> Option<Vec<u8>> {
    use turbojpeg::TransformOp as T;
    let op = match turn {
        Turn::NONE => T::None,
        Turn::QUARTER => T::Rot90,
        Turn::HALF => T::Rot180,
        Turn::THREE_QUARTERS => T::Rot270,
        Turn::MIRROR => T::Hflip,
        Turn::UPSIDE_DOWN => T::Vflip,
        Turn::TRANSPOSE => T::Transpose,
        Turn::TRANSVERSE => T::Transverse,
        Turn(_) => return None,
    };
    let mut transform = turbojpeg::Transform::op(op);
    // An edge's partial MCU cannot move: fail (and decode) rather than trim it.
    transform.perfect = true;
    turbojpeg::transform(&transform, bytes).ok().map(|out| out.to_vec())
}

#[cfg(not(feature = "libjpeg-turbo"))]
fn transform(_: &[u8], _: Turn) -> Option<Vec<u8>> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Turn; 8] = [
        Turn::NONE,
        Turn::QUARTER,
        Turn::HALF,
        Turn::THREE_QUARTERS,
        Turn::MIRROR,
        Turn::UPSIDE_DOWN,
        Turn::TRANSPOSE,
        Turn::TRANSVERSE,
    ];

    #[test]
    fn turns_compose_like_the_pixels_they_move() {
        assert_eq!(Turn::QUARTER.then(Turn::QUARTER), Turn::HALF);
        assert_eq!(Turn::HALF.then(Turn::QUARTER), Turn::THREE_QUARTERS);
        assert_eq!(Turn::THREE_QUARTERS.then(Turn::QUARTER), Turn::NONE);
        assert_eq!(Turn::MIRROR.then(Turn::UPSIDE_DOWN), Turn::HALF);
        // Orientation 5 (transpose) and 7 (transverse), by their EXIF definitions.
        assert_eq!(Turn::upright(Orientation::Rotate90FlipH), Turn::TRANSPOSE);
        assert_eq!(Turn::upright(Orientation::Rotate270FlipH), Turn::TRANSVERSE);
        // A group: closed, and every element has an inverse.
        for a in ALL {
            assert!(ALL.iter().any(|&b| a.then(b) == Turn::NONE), "{a:?} has no inverse");
            for b in ALL {
                assert!(ALL.contains(&a.then(b)), "{a:?} then {b:?} is not a turn");
            }
        }
    }

    /// Each image-crate operation moves a marked pixel where the matrix says.
    #[test]
    fn turns_agree_with_the_decode_paths_operations() {
        let (w, h) = (4u32, 2u32);
        let mut source = image::RgbImage::new(w, h);
        source.put_pixel(0, 0, image::Rgb([255, 0, 0]));
        source.put_pixel(3, 1, image::Rgb([0, 255, 0]));
        let source = image::DynamicImage::ImageRgb8(source);
        for orientation in (1..=8).filter_map(Orientation::from_exif) {
            let mut expected = source.clone();
            expected.apply_orientation(orientation);
            let Turn(m) = Turn::upright(orientation);
            // Map each marked pixel's centre through the matrix.
            let moved = |x: u32, y: u32| {
                let (cx, cy) = (2 * x as i32 + 1 - w as i32, 2 * y as i32 + 1 - h as i32);
                let (nx, ny) = (
                    i32::from(m[0][0]) * cx + i32::from(m[0][1]) * cy,
                    i32::from(m[1][0]) * cx + i32::from(m[1][1]) * cy,
                );
                let (ow, oh) = (expected.width() as i32, expected.height() as i32);
                (((nx + ow - 1) / 2) as u32, ((ny + oh - 1) / 2) as u32)
            };
            let expected = expected.to_rgb8();
            let (rx, ry) = moved(0, 0);
            assert_eq!(expected.get_pixel(rx, ry).0, [255, 0, 0], "{orientation:?}");
            let (gx, gy) = moved(3, 1);
            assert_eq!(expected.get_pixel(gx, gy).0, [0, 255, 0], "{orientation:?}");
        }
    }

    #[test]
    fn steps_that_are_not_turns_take_the_decode_path() {
        let jpeg = include_bytes!("../../tests/fixtures/sample.jpg");
        assert!(turned(jpeg, &[Op::Sepia], false).is_none());
    }
}
