//! The eight symmetries of a rectangle's pixels — the right-angle turns and mirrors that EXIF
//! orientations, `rotate` by multiples of 90 and `flip` make — as one type that composes: the
//! lossless JPEG path folds a file's orientation and a job's steps into one of them, and
//! shrink-on-load maps the part of its pixels the source covers through the orientation.

use image::metadata::Orientation;

use super::{Op, operations::Flip, operations::Rotation};

/// A symmetry of the square: the matrix it applies to pixel coordinates taken from the image's
/// centre (x right, y down). Composition is matrix product, which is why they are kept this way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Turn(pub(super) [[i8; 2]; 2]);

impl Turn {
    pub(super) const NONE: Turn = Turn([[1, 0], [0, 1]]);
    /// Clockwise: (x, y) → (−y, x).
    pub(super) const QUARTER: Turn = Turn([[0, -1], [1, 0]]);
    pub(super) const HALF: Turn = Turn([[-1, 0], [0, -1]]);
    pub(super) const THREE_QUARTERS: Turn = Turn([[0, 1], [-1, 0]]);
    pub(super) const MIRROR: Turn = Turn([[-1, 0], [0, 1]]);
    pub(super) const UPSIDE_DOWN: Turn = Turn([[1, 0], [0, -1]]);
    /// Along the main diagonal: (x, y) → (y, x).
    pub(super) const TRANSPOSE: Turn = Turn([[0, 1], [1, 0]]);
    /// Along the other diagonal: (x, y) → (−y, −x).
    pub(super) const TRANSVERSE: Turn = Turn([[0, -1], [-1, 0]]);

    /// `self`, then `next`.
    pub(super) fn then(self, next: Turn) -> Turn {
        let (a, b) = (next.0, self.0);
        let cell = |r: usize, c: usize| a[r][0] * b[0][c] + a[r][1] * b[1][c];
        Turn([[cell(0, 0), cell(0, 1)], [cell(1, 0), cell(1, 1)]])
    }

    /// The turn a step makes, if it is one.
    pub(super) fn of_step(step: &Op) -> Option<Turn> {
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
    pub(super) fn upright(orientation: Orientation) -> Turn {
        match orientation {
            Orientation::NoTransforms => Turn::NONE,
            Orientation::Rotate90 => Turn::QUARTER,
            Orientation::Rotate180 => Turn::HALF,
            Orientation::Rotate270 => Turn::THREE_QUARTERS,
            Orientation::FlipHorizontal => Turn::MIRROR,
            Orientation::FlipVertical => Turn::UPSIDE_DOWN,
            Orientation::Rotate90FlipH => Turn::TRANSPOSE,
            Orientation::Rotate270FlipH => Turn::TRANSVERSE,
        }
    }
}

impl Turn {
    /// Whether the turn swaps width and height.
    fn transposes(self) -> bool {
        self.0[0][0] == 0
    }

    /// Where the rectangle `[left, top, width, height]` of a `width`×`height` image lies once
    /// the image is turned (in continuous pixel coordinates).
    pub(super) fn rectangle(self, (width, height): (f64, f64), [left, top, w, h]: [f64; 4]) -> [f64; 4] {
        let [row0, row1] = self.0.map(|row| row.map(f64::from));
        let (out_w, out_h) = if self.transposes() {
            (height, width)
        } else {
            (width, height)
        };
        let map = |x: f64, y: f64| {
            let (cx, cy) = (x - width / 2.0, y - height / 2.0);
            (
                row0[0] * cx + row0[1] * cy + out_w / 2.0,
                row1[0] * cx + row1[1] * cy + out_h / 2.0,
            )
        };
        let (a, b) = (map(left, top), map(left + w, top + h));
        [a.0.min(b.0), a.1.min(b.1), (a.0 - b.0).abs(), (a.1 - b.1).abs()]
    }
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
        // `apply_orientation`'s 5 and 7: a quarter turn, then the mirror.
        assert_eq!(Turn::QUARTER.then(Turn::MIRROR), Turn::TRANSPOSE);
        assert_eq!(Turn::THREE_QUARTERS.then(Turn::MIRROR), Turn::TRANSVERSE);
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
    fn rectangles_follow_the_pixels() {
        // The top-left 3×1 of a 4×2 image.
        let rect = [0.0, 0.0, 3.0, 1.0];
        assert_eq!(Turn::NONE.rectangle((4.0, 2.0), rect), rect);
        assert_eq!(Turn::MIRROR.rectangle((4.0, 2.0), rect), [1.0, 0.0, 3.0, 1.0]);
        assert_eq!(Turn::HALF.rectangle((4.0, 2.0), rect), [1.0, 1.0, 3.0, 1.0]);
        // A quarter clockwise: the top row becomes the right column (2×4).
        assert_eq!(Turn::QUARTER.rectangle((4.0, 2.0), rect), [1.0, 0.0, 1.0, 3.0]);
        assert_eq!(Turn::TRANSPOSE.rectangle((4.0, 2.0), rect), [0.0, 0.0, 1.0, 3.0]);
    }
}
