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

use super::{Op, turn::Turn};

/// `bytes` (a JPEG that passed the content check and the scan limit) upright and turned by
/// `steps` without requantising, with its size, or `None` when the steps are not all turns or mirrors, the
/// turn is not possible losslessly, or this build has no transform (the caller decodes).
pub(super) fn turned(bytes: &[u8], steps: &[Op], keep_metadata: bool) -> Option<(Vec<u8>, (u32, u32))> {
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
    let size = super::dimensions(&transformed, crate::object_name::ImageFormat::Jpeg)?;
    let kept = super::strip::jpeg_with_exif(&transformed, |exif| {
        let mut block = exif.filter(|_| keep_metadata)?.to_vec();
        let _ = Orientation::remove_from_exif_chunk(&mut block);
        Some(super::exif::refreshed(block, size))
    })?;
    Some((kept, size))
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

    #[test]
    fn steps_that_are_not_turns_take_the_decode_path() {
        let jpeg = include_bytes!("../../tests/fixtures/sample.jpg");
        assert!(turned(jpeg, &[Op::Sepia], false).is_none());
    }
}
