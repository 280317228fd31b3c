//! Every frame, page and subimage an image declares: the pixel limit applies to each, because a
//! small first header can hide a huge later frame (a GIF with a 1×1 screen and a 65535² frame,
//! an APNG frame, a second JPEG SOF, a second TIFF page, a WebP bitstream larger than its
//! canvas). One linear walk over the bytes, no decoding; structure the walk cannot follow ends
//! it with what it found (truncation is judged elsewhere).

use crate::object_name::ImageFormat;

/// Most TIFF directories (pages and subimages) followed.
const MAX_TIFF_DIRECTORIES: usize = 1024;

/// Width and height in pixels.
pub(crate) type Dims = (u64, u64);

/// The frame with the most pixels, `None` when the header has no dimensions at all, or why the
/// image is refused outright.
pub(crate) fn largest(format: ImageFormat, bytes: &[u8]) -> Result<Option<Dims>, &'static str> {
    Ok(walk(format, bytes)?.0)
}

/// How many animation frames the image declares (GIF image descriptors, APNG frame controls,
/// WebP `ANMF` chunks); 1 for a still image.
pub(crate) fn animation_frames(format: ImageFormat, bytes: &[u8]) -> usize {
    walk(format, bytes).map_or(1, |walked| walked.1.max(1))
}

fn walk(format: ImageFormat, bytes: &[u8]) -> Result<(Option<Dims>, usize), &'static str> {
    let mut largest = Largest(None, 0);
    match format {
        ImageFormat::Png => png(bytes, &mut largest),
        ImageFormat::Jpeg => jpeg(bytes, &mut largest)?,
        ImageFormat::Gif => gif(bytes, &mut largest),
        ImageFormat::Webp => webp(bytes.get(12..).unwrap_or_default(), &mut largest),
        ImageFormat::Bmp => bmp(bytes, &mut largest),
        ImageFormat::Tiff => tiff(bytes, &mut largest),
        ImageFormat::Avif => avif(bytes, &mut largest),
        ImageFormat::Svg => {}
    }
    Ok((largest.0, largest.1))
}

/// The largest frame seen, and the animation frames counted.
struct Largest(Option<Dims>, usize);

impl Largest {
    fn saw(&mut self, width: u64, height: u64) {
        let pixels = |(w, h): Dims| w.saturating_mul(h);
        if self.0.is_none_or(|d| pixels((width, height)) > pixels(d)) {
            self.0 = Some((width, height));
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 2).map(|s| u64::from(u16::from_be_bytes([s[0], s[1]])))
}

fn be32(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 4)
        .map(|s| u64::from(u32::from_be_bytes([s[0], s[1], s[2], s[3]])))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..)?.first_chunk().map(|s| u64::from_be_bytes(*s))
}

fn le16(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 2).map(|s| u64::from(u16::from_le_bytes([s[0], s[1]])))
}

fn le24(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 3)
        .map(|s| u64::from(s[0]) | u64::from(s[1]) << 8 | u64::from(s[2]) << 16)
}

fn le32(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 4)
        .map(|s| u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]])))
}

/// The top-level boxes of an ISO-BMFF file (AVIF): each box's type and content, in order; the
/// walk ends at the first box that runs past the end (its type and the bytes there are still
/// given: the caller judges truncation), or at a size that cannot be.
pub(crate) fn isobmff_boxes(b: &[u8]) -> impl Iterator<Item = (&[u8], &[u8], bool)> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let (size, kind) = (be32(b, at)?, b.get(at + 4..at + 8)?);
        let (header, size) = match size {
            // To the end of the file.
            0 => (8, (b.len() - at) as u64),
            // A 64-bit size follows the type.
            1 => (16, be64(b, at + 8)?),
            n => (8, n),
        };
        if size < header {
            return None;
        }
        let end = at.checked_add(usize::try_from(size).ok()?)?;
        let whole = end <= b.len();
        let content = b.get(at + header as usize..end.min(b.len()))?;
        at = if whole { end } else { b.len() };
        Some((kind, content, whole))
    })
}

/// AVIF: every image spatial extent (`ispe`) property of the `meta` box: the image, its grid
/// tiles, its alpha plane and thumbnails. An image sequence (brand `avis`) counts as animated.
fn avif(b: &[u8], out: &mut Largest) {
    for (kind, content, _) in isobmff_boxes(b) {
        match kind {
            b"ftyp" if content.starts_with(b"avis") => out.1 = out.1.max(2),
            // A full box: version and flags, then the item boxes, among them `iprp/ipco` with
            // the properties. A 20-byte box typed `ispe` is looked for anywhere inside.
            b"meta" => {
                let mut from = 0;
                while let Some(found) = content[from..].windows(4).position(|w| w == b"ispe") {
                    let at = from + found;
                    if at >= 4
                        && be32(content, at - 4) == Some(20)
                        && let (Some(w), Some(h)) = (be32(content, at + 8), be32(content, at + 12))
                    {
                        out.saw(w, h);
                    }
                    from = at + 4;
                }
            }
            _ => {}
        }
    }
}

/// PNG: IHDR, and every APNG frame control (`fcTL`).
fn png(b: &[u8], out: &mut Largest) {
    let mut at = 8;
    while let (Some(len), Some(kind)) = (be32(b, at), b.get(at + 4..at + 8)) {
        let data = at + 8;
        match kind {
            b"IHDR" => {
                if let (Some(w), Some(h)) = (be32(b, data), be32(b, data + 4)) {
                    out.saw(w, h);
                }
            }
            b"fcTL" => {
                out.1 += 1;
                if let (Some(w), Some(h)) = (be32(b, data + 4), be32(b, data + 8)) {
                    out.saw(w, h);
                }
            }
            b"IEND" => return,
            _ => {}
        }
        at = data.saturating_add(len as usize).saturating_add(4);
    }
}

/// JPEG: every start-of-frame marker, through the whole file (a second SOF after the first
/// scan is still read by some decoders). A height of 0 (to be given later by a DNL marker) is
/// refused: the size would be unknown until the image is decoded.
fn jpeg(b: &[u8], out: &mut Largest) -> Result<(), &'static str> {
    let mut at = 2;
    while at + 1 < b.len() {
        if b[at] != 0xFF {
            at += 1;
            continue;
        }
        let marker = b[at + 1];
        match marker {
            // Fill bytes, stuffed zeros, restart markers: not segments.
            0xFF => at += 1,
            0x00 | 0xD0..=0xD7 | 0x01 => at += 2,
            0xD9 => return Ok(()),
            _ => {
                let Some(len) = be16(b, at + 2) else { return Ok(()) };
                let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
                if is_sof && let (Some(h), Some(w)) = (be16(b, at + 5), be16(b, at + 7)) {
                    if h == 0 {
                        return Err("the JPEG gives its height later (DNL); such images are not accepted");
                    }
                    out.saw(w, h);
                }
                // After a segment comes more segments or, after SOS, entropy-coded data, which
                // the byte scan above steps through to the next marker.
                at += 2 + len as usize;
            }
        }
    }
    Ok(())
}

/// GIF: the logical screen and every image descriptor.
fn gif(b: &[u8], out: &mut Largest) {
    let (Some(w), Some(h), Some(&flags)) = (le16(b, 6), le16(b, 8), b.get(10)) else {
        return;
    };
    out.saw(w, h);
    let table = |flags: u8| {
        if flags & 0x80 != 0 {
            3usize << ((flags & 7) + 1)
        } else {
            0
        }
    };
    let mut at = 13 + table(flags);
    let skip_sub_blocks = |mut at: usize| {
        while let Some(&len) = b.get(at) {
            at += 1 + usize::from(len);
            if len == 0 {
                return Some(at);
            }
        }
        None
    };
    loop {
        match b.get(at) {
            Some(0x2C) => {
                let (Some(fw), Some(fh), Some(&fl)) = (le16(b, at + 5), le16(b, at + 7), b.get(at + 9)) else {
                    return;
                };
                out.saw(fw, fh);
                out.1 += 1;
                // Descriptor, local colour table, LZW code size, then the data sub-blocks.
                let Some(next) = skip_sub_blocks(at + 10 + table(fl) + 1) else {
                    return;
                };
                at = next;
            }
            Some(0x21) => {
                let Some(next) = skip_sub_blocks(at + 2) else { return };
                at = next;
            }
            _ => return,
        }
    }
}

/// WebP: the chunks after `RIFF....WEBP`: the canvas (`VP8X`), the bitstreams (`VP8 `, `VP8L`)
/// and every animation frame (`ANMF`, whose own chunks hold a bitstream too).
fn webp(mut b: &[u8], out: &mut Largest) {
    while let (Some(kind), Some(len)) = (b.get(..4), le32(b, 4)) {
        let data = b.get(8..).unwrap_or_default();
        let data = &data[..(len as usize).min(data.len())];
        match kind {
            b"VP8X" => {
                if let (Some(w), Some(h)) = (le24(data, 4), le24(data, 7)) {
                    out.saw(w + 1, h + 1);
                }
            }
            b"VP8 " => {
                if let (Some(w), Some(h)) = (le16(data, 6), le16(data, 8)) {
                    out.saw(w & 0x3FFF, h & 0x3FFF);
                }
            }
            b"VP8L" => {
                if let Some(bits) = le32(data, 1) {
                    out.saw((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1);
                }
            }
            b"ANMF" => {
                out.1 += 1;
                if let (Some(w), Some(h)) = (le24(data, 6), le24(data, 9)) {
                    out.saw(w + 1, h + 1);
                }
                webp(data.get(16..).unwrap_or_default(), out);
            }
            _ => {}
        }
        let step = 8usize.saturating_add(len as usize).saturating_add(len as usize & 1);
        let Some(rest) = b.get(step..) else { return };
        b = rest;
    }
}

/// BMP: the DIB header's size; a negative height is a top-down bitmap of that many rows.
fn bmp(b: &[u8], out: &mut Largest) {
    match le32(b, 14) {
        Some(12) => {
            if let (Some(w), Some(h)) = (le16(b, 18), le16(b, 20)) {
                out.saw(w, h);
            }
        }
        Some(_) => {
            let signed = |at| le32(b, at).map(|v| i64::from(v as u32 as i32).unsigned_abs());
            if let (Some(w), Some(h)) = (signed(18), signed(22)) {
                out.saw(w, h);
            }
        }
        None => {}
    }
}

/// TIFF (classic and BigTIFF): every image directory, along the chain of pages and into
/// SubIFDs, each followed once.
fn tiff(b: &[u8], out: &mut Largest) {
    let little = b.starts_with(b"II");
    let u16_at = |at: usize| if little { le16(b, at) } else { be16(b, at) };
    let u32_at = |at: usize| if little { le32(b, at) } else { be32(b, at) };
    let u64_at = |at: usize| {
        let (lo, hi) = (u32_at(at)?, u32_at(at + 4)?);
        Some(if little { lo | hi << 32 } else { hi | lo << 32 })
    };
    let big = u16_at(2) == Some(43);
    // Classic: 2-byte entry count, 12-byte entries, 4-byte values; BigTIFF: 8, 20, 8.
    let (count_len, entry_len, value_at) = if big { (8, 20, 12) } else { (2, 12, 8) };
    let offset_at = |at: usize| if big { u64_at(at) } else { u32_at(at) };
    let first = if big { u64_at(8) } else { u32_at(4) };
    let mut pending: Vec<u64> = first.into_iter().collect();
    let mut seen = std::collections::HashSet::new();
    while let Some(ifd) = pending.pop() {
        if ifd == 0 || !seen.insert(ifd) || seen.len() > MAX_TIFF_DIRECTORIES {
            continue;
        }
        let Some(ifd) = usize::try_from(ifd).ok().filter(|&at| at < b.len()) else {
            continue;
        };
        let Some(count) = (if big { u64_at(ifd) } else { u16_at(ifd) }) else {
            continue;
        };
        let (mut width, mut height) = (None, None);
        for i in 0..count.min(4096) as usize {
            let entry = ifd + count_len + i * entry_len;
            let (Some(tag), Some(kind)) = (u16_at(entry), u16_at(entry + 2)) else {
                break;
            };
            let value = entry + value_at;
            // Every type the decoder (the tiff crate) takes for a dimension: BYTE (1), SHORT
            // (3), LONG (4), IFD (13), LONG8 (16), IFD8 (18). A value sits in the field's first
            // bytes; one wider than the field (8 bytes in a classic TIFF) is at its offset.
            let eight_bytes = |at: usize| {
                if big {
                    u64_at(at)
                } else {
                    offset_at(at).and_then(|a| usize::try_from(a).ok()).and_then(u64_at)
                }
            };
            let scalar = match kind {
                1 => b.get(value).map(|&v| u64::from(v)),
                3 => u16_at(value),
                4 | 13 => u32_at(value),
                16 | 18 => eight_bytes(value),
                _ => None,
            };
            match tag {
                256 => width = scalar,
                257 => height = scalar,
                // SubIFDs: one offset inline, or an array of them.
                330 => {
                    let n = if big { u64_at(entry + 4) } else { u32_at(entry + 4) }.unwrap_or(0);
                    if n == 1 {
                        pending.extend(scalar);
                    } else if let Some(array) = offset_at(value)
                        .and_then(|a| usize::try_from(a).ok())
                        .filter(|&a| a < b.len())
                    {
                        let step = if matches!(kind, 16 | 18) { 8 } else { 4 };
                        for k in 0..n.min(64) as usize {
                            let at = array + k * step;
                            pending.extend(if step == 8 { u64_at(at) } else { u32_at(at) });
                        }
                    }
                }
                _ => {}
            }
        }
        if let (Some(w), Some(h)) = (width, height) {
            out.saw(w, h);
        }
        let next = ifd + count_len + count.min(4096) as usize * entry_len;
        pending.extend(offset_at(next));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const PNG: &[u8] = include_bytes!("../../tests/fixtures/sample.png");
    const JPEG: &[u8] = include_bytes!("../../tests/fixtures/sample.jpg");
    const TIFF: &[u8] = include_bytes!("../../tests/fixtures/sample.tiff");
    const BMP: &[u8] = include_bytes!("../../tests/fixtures/sample.bmp");

    fn largest_of(format: ImageFormat, bytes: &[u8]) -> Option<Dims> {
        largest(format, bytes).unwrap()
    }

    /// An ISO-BMFF box.
    fn boxed(kind: &[u8; 4], content: &[u8]) -> Vec<u8> {
        let mut b = u32::try_from(8 + content.len()).unwrap().to_be_bytes().to_vec();
        b.extend(kind);
        b.extend(content);
        b
    }

    /// An AVIF's structure: `ftyp` of `brand`, a `meta` box with an `ispe` of each size, an
    /// `mdat` of 100 bytes.
    pub(crate) fn avif(brand: &[u8; 4], sizes: &[(u32, u32)]) -> Vec<u8> {
        let mut ftyp = brand.to_vec();
        ftyp.extend([0, 0, 0, 0]);
        ftyp.extend(b"mif1miaf");
        let mut properties = Vec::new();
        for (w, h) in sizes {
            let mut ispe = vec![0, 0, 0, 0];
            ispe.extend(w.to_be_bytes());
            ispe.extend(h.to_be_bytes());
            properties.extend(boxed(b"ispe", &ispe));
        }
        let mut meta = vec![0, 0, 0, 0];
        meta.extend(boxed(b"iprp", &boxed(b"ipco", &properties)));
        [boxed(b"ftyp", &ftyp), boxed(b"meta", &meta), boxed(b"mdat", &[7; 100])].concat()
    }

    #[test]
    fn an_avif_is_as_large_as_its_largest_spatial_extent_and_a_sequence_is_animated() {
        let still = avif(b"avif", &[(640, 480), (32, 24), (4000, 10)]);
        assert_eq!(largest_of(ImageFormat::Avif, &still), Some((640, 480)));
        assert_eq!(animation_frames(ImageFormat::Avif, &still), 1);
        let sequence = avif(b"avis", &[(64, 64)]);
        assert_eq!(animation_frames(ImageFormat::Avif, &sequence), 2);
        // A box claiming more than the file holds ends the walk; `ispe` bytes in the media
        // data are never read as a size.
        let mut data_only = avif(b"avif", &[]);
        data_only.extend(boxed(b"mdat", b"\0\0\0\x14ispe\0\0\0\0\0\x01\0\0\0\x01\0\0"));
        assert_eq!(largest_of(ImageFormat::Avif, &data_only), None);
    }

    #[test]
    fn samples_are_one_frame_of_24_by_16() {
        for (format, bytes) in [
            (ImageFormat::Png, PNG),
            (ImageFormat::Jpeg, JPEG),
            (ImageFormat::Tiff, TIFF),
            (ImageFormat::Bmp, BMP),
            (ImageFormat::Gif, include_bytes!("../../tests/fixtures/sample.gif")),
            (ImageFormat::Webp, include_bytes!("../../tests/fixtures/sample.webp")),
        ] {
            assert_eq!(largest_of(format, bytes), Some((24, 16)), "{format:?}");
        }
    }

    #[test]
    fn animation_frames_are_counted() {
        let mut gif = b"GIF89a\x02\x00\x02\x00\x00\x00\x00".to_vec();
        for _ in 0..3 {
            gif.extend([0x21, 0xF9, 4, 0, 10, 0, 0, 0]);
            gif.extend([0x2C, 0, 0, 0, 0, 2, 0, 2, 0, 0, 2, 1, 0, 0]);
        }
        gif.push(0x3B);
        assert_eq!(animation_frames(ImageFormat::Gif, &gif), 3);
        assert_eq!(animation_frames(ImageFormat::Png, PNG), 1);
        assert_eq!(animation_frames(ImageFormat::Jpeg, JPEG), 1);
    }

    #[test]
    fn a_gif_frame_larger_than_its_screen() {
        let mut gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00".to_vec();
        gif.extend([0x21, 0xF9, 4, 0, 0, 0, 0, 0]); // a graphic control extension
        gif.extend([0x2C, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0]);
        gif.extend([2, 1, 0, 0, 0x3B]);
        assert_eq!(largest_of(ImageFormat::Gif, &gif), Some((65535, 65535)));
    }

    /// The global and a local colour table (12 bytes each here) and the LZW code size byte are
    /// stepped over to the frames.
    #[test]
    fn gif_frames_after_colour_tables() {
        let mut gif = b"GIF89a\x01\x00\x01\x00\x81\x00\x00".to_vec();
        gif.extend([0; 12]);
        gif.extend([0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0x81]);
        gif.extend([0; 12]);
        // LZW code size 2, a sub-block of three bytes, the terminator: read as a length, the
        // code size would end the frame in the sub-block's zeros.
        gif.extend([2, 3, 0, 0, 0, 0]);
        gif.extend([0x2C, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0]);
        gif.extend([2, 1, 0, 0, 0x3B]);
        assert_eq!(largest_of(ImageFormat::Gif, &gif), Some((65535, 65535)));
        assert_eq!(animation_frames(ImageFormat::Gif, &gif), 2);
    }

    #[test]
    fn an_apng_frame_larger_than_its_header() {
        let mut apng = PNG[..33].to_vec(); // signature + IHDR
        apng.extend(26u32.to_be_bytes());
        apng.extend(b"fcTL");
        apng.extend(0u32.to_be_bytes());
        apng.extend(60_000u32.to_be_bytes());
        apng.extend(60_000u32.to_be_bytes());
        apng.extend([0; 14 + 4]);
        apng.extend(&PNG[33..]);
        assert_eq!(largest_of(ImageFormat::Png, &apng), Some((60_000, 60_000)));
    }

    /// Each frame control is a frame; what follows `IEND` is not read by decoders, so not here.
    #[test]
    fn an_apng_counts_its_frame_controls_and_nothing_after_iend() {
        let fctl = |w: u32, h: u32| {
            let mut c = 26u32.to_be_bytes().to_vec();
            c.extend(b"fcTL");
            c.extend(0u32.to_be_bytes());
            c.extend(w.to_be_bytes());
            c.extend(h.to_be_bytes());
            c.extend([0; 14 + 4]);
            c
        };
        let (w, h) = largest_of(ImageFormat::Png, PNG).unwrap();
        let mut apng = PNG[..33].to_vec(); // signature + IHDR
        apng.extend(fctl(1, 1));
        apng.extend(fctl(2, 2));
        apng.extend(&PNG[33..]);
        assert_eq!(&apng[apng.len() - 8..apng.len() - 4], b"IEND");
        apng.extend(fctl(60_000, 60_000));
        assert_eq!(animation_frames(ImageFormat::Png, &apng), 2);
        assert_eq!(largest_of(ImageFormat::Png, &apng), Some((w, h)));
    }

    /// A file cut just after a marker's 0xFF is read up to there, and never past its end.
    #[test]
    fn a_jpeg_cut_after_a_marker_byte() {
        let mut cut = JPEG[..JPEG.len() - 1].to_vec();
        assert_eq!(cut.last(), Some(&0xFF));
        assert_eq!(largest_of(ImageFormat::Jpeg, &cut), largest_of(ImageFormat::Jpeg, JPEG));
        cut.truncate(2);
        assert_eq!(largest_of(ImageFormat::Jpeg, &cut), None);
    }

    /// Fill bytes (0xFF runs) may come before any marker; nothing after the end-of-image marker
    /// is part of the image.
    #[test]
    fn jpeg_fill_bytes_and_the_end_of_image() {
        let end = JPEG.len() - 2;
        let sof = [0xFF, 0xC0, 0, 11, 8, 0xFF, 0xFF, 0xFF, 0xFF, 1, 1, 0x11, 0];
        let mut filled = JPEG[..end].to_vec();
        filled.extend([0xFF, 0xFF, 0xFF]);
        filled.extend(sof);
        filled.extend([0xFF, 0xD9]);
        assert_eq!(largest_of(ImageFormat::Jpeg, &filled), Some((65535, 65535)));
        // After the end of image, bytes that read as a 2-byte segment and then a larger frame:
        // only a scan that goes on past 0xFFD9 would see it.
        let mut trailing = JPEG.to_vec();
        trailing.extend([0, 2]);
        trailing.extend(sof);
        assert_eq!(
            largest_of(ImageFormat::Jpeg, &trailing),
            largest_of(ImageFormat::Jpeg, JPEG)
        );
    }

    #[test]
    fn a_second_jpeg_frame_and_a_deferred_height() {
        let end = JPEG.len() - 2;
        assert_eq!(&JPEG[end..], [0xFF, 0xD9]);
        let mut two = JPEG[..end].to_vec();
        two.extend([0xFF, 0xC0, 0, 11, 8, 0xFF, 0xFF, 0xFF, 0xFF, 1, 1, 0x11, 0]);
        two.extend([0xFF, 0xD9]);
        assert_eq!(largest_of(ImageFormat::Jpeg, &two), Some((65535, 65535)));
        let sof = JPEG.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        let mut dnl = JPEG.to_vec();
        dnl[sof + 5..sof + 7].copy_from_slice(&[0, 0]);
        assert!(largest(ImageFormat::Jpeg, &dnl).unwrap_err().contains("DNL"));
    }

    #[test]
    fn a_second_tiff_page() {
        let mut tiff = TIFF.to_vec();
        let count = le16(&tiff, 8).unwrap() as usize;
        let next = 8 + 2 + count * 12;
        assert_eq!(le32(&tiff, next), Some(0), "the sample has one page");
        let page = tiff.len() as u32;
        tiff[next..next + 4].copy_from_slice(&page.to_le_bytes());
        tiff.extend(2u16.to_le_bytes());
        for tag in [256u16, 257] {
            tiff.extend(tag.to_le_bytes());
            tiff.extend(4u16.to_le_bytes());
            tiff.extend(1u32.to_le_bytes());
            tiff.extend(100_000u32.to_le_bytes());
        }
        tiff.extend(0u32.to_le_bytes());
        assert_eq!(largest_of(ImageFormat::Tiff, &tiff), Some((100_000, 100_000)));
        // A page chain that loops back ends.
        let first = 8u32.to_le_bytes();
        let last = tiff.len() - 4;
        tiff[last..].copy_from_slice(&first);
        assert_eq!(largest_of(ImageFormat::Tiff, &tiff), Some((100_000, 100_000)));
    }

    /// The sample TIFF with its first page's width and height entries rewritten as `kind`,
    /// holding `value` inline (`None`: the value at an offset, appended to the file).
    fn tiff_dimensions_as(kind: u16, value: Option<u32>, wide: u64) -> Vec<u8> {
        let mut tiff = TIFF.to_vec();
        let count = le16(&tiff, 8).unwrap() as usize;
        for i in 0..count {
            let entry = 10 + i * 12;
            if matches!(le16(&tiff, entry), Some(256 | 257)) {
                tiff[entry + 2..entry + 4].copy_from_slice(&kind.to_le_bytes());
                let field = match value {
                    Some(v) => v,
                    None => {
                        let at = tiff.len() as u32;
                        tiff.extend(wide.to_le_bytes());
                        at
                    }
                };
                tiff[entry + 8..entry + 12].copy_from_slice(&field.to_le_bytes());
            }
        }
        tiff
    }

    /// A TIFF written here: classic or BigTIFF, in either byte order, its directories one
    /// after another from the header on, then `tail`. An entry is `(tag, type, count, value)`,
    /// the value in the entry's field; a directory ends with the offset of the next (0: none).
    struct TiffFile {
        little: bool,
        big: bool,
    }

    type TiffEntry = (u16, u16, u64, u64);

    impl TiffFile {
        /// The width of counts in entries, of offsets and of a value field: 4 bytes, 8 in BigTIFF.
        fn word(&self) -> usize {
            if self.big { 8 } else { 4 }
        }

        fn put(&self, b: &mut Vec<u8>, value: u64, len: usize) {
            if self.little {
                b.extend(&value.to_le_bytes()[..len]);
            } else {
                b.extend(&value.to_be_bytes()[8 - len..]);
            }
        }

        /// Where each directory of the given entry counts starts, and then where the tail does.
        fn offsets(&self, entry_counts: &[usize]) -> Vec<u64> {
            let (mut at, count_len, entry_len) = if self.big { (16, 8, 20) } else { (8, 2, 12) };
            let mut offsets = Vec::new();
            for n in entry_counts {
                offsets.push(at as u64);
                at += count_len + n * entry_len + self.word();
            }
            offsets.push(at as u64);
            offsets
        }

        fn write(&self, directories: &[(&[TiffEntry], u64)], tail: &[u8]) -> Vec<u8> {
            let word = self.word();
            let mut b = if self.little { b"II".to_vec() } else { b"MM".to_vec() };
            if self.big {
                self.put(&mut b, 43, 2);
                self.put(&mut b, 8, 2);
                self.put(&mut b, 0, 2);
            } else {
                self.put(&mut b, 42, 2);
            }
            self.put(&mut b, self.offsets(&[])[0], word);
            for (entries, next) in directories {
                self.put(&mut b, entries.len() as u64, if self.big { 8 } else { 2 });
                for &(tag, kind, count, value) in *entries {
                    self.put(&mut b, tag.into(), 2);
                    self.put(&mut b, kind.into(), 2);
                    self.put(&mut b, count, word);
                    let len = match kind {
                        1 => 1,
                        3 => 2,
                        16 | 18 => 8,
                        _ => 4,
                    };
                    self.put(&mut b, value, len);
                    b.resize(b.len() + word - len, 0);
                }
                self.put(&mut b, *next, word);
            }
            b.extend(tail);
            b
        }
    }

    /// BigTIFF: 8-byte counts, offsets and LONG8 values, in either byte order, along the page
    /// chain (the second page is the larger, its width above 32 bits).
    #[test]
    fn bigtiff_pages_in_either_byte_order() {
        let wide = (1u64 << 32) + 7;
        for little in [true, false] {
            let file = TiffFile { little, big: true };
            let at = file.offsets(&[2, 2]);
            let small: &[TiffEntry] = &[(256, 3, 1, 2), (257, 3, 1, 3)];
            let large: &[TiffEntry] = &[(256, 16, 1, wide), (257, 3, 1, 2)];
            let tiff = file.write(&[(small, at[1]), (large, 0)], &[]);
            assert_eq!(
                largest_of(ImageFormat::Tiff, &tiff),
                Some((wide, 2)),
                "little: {little}"
            );
        }
    }

    /// SubIFDs (tag 330) are walked, off the page chain: one offset in the field, or an array
    /// of offsets elsewhere (4 or 8 bytes each, as their type says).
    #[test]
    fn tiff_subifds_one_inline_or_an_array() {
        for (little, big) in [(true, false), (false, false), (true, true), (false, true)] {
            let file = TiffFile { little, big };
            let at = file.offsets(&[3, 2, 2]);
            let kind = if big { 18 } else { 13 };
            let sub = |width| [(256, 4, 1, width), (257, 4, 1, 1)];
            let (fifty, sixty) = (sub(50), sub(60));
            let page = |count, value| [(256, 4, 1, 1), (257, 4, 1, 1), (330, kind, count, value)];
            let one = page(1, at[1]);
            let tiff = file.write(&[(&one, 0), (&fifty, 0), (&sixty, 0)], &[]);
            let case = format!("little: {little}, big: {big}");
            assert_eq!(largest_of(ImageFormat::Tiff, &tiff), Some((50, 1)), "{case}");
            let mut array = Vec::new();
            file.put(&mut array, at[2], file.word());
            file.put(&mut array, at[1], file.word());
            let two = page(2, at[3]);
            let tiff = file.write(&[(&two, 0), (&fifty, 0), (&sixty, 0)], &array);
            assert_eq!(largest_of(ImageFormat::Tiff, &tiff), Some((60, 1)), "{case}");
        }
    }

    /// A page chain is followed for MAX_TIFF_DIRECTORIES directories: the last of them counts,
    /// the one after it is not read.
    #[test]
    fn a_tiff_page_chain_is_followed_to_its_limit() {
        const LIMIT: usize = MAX_TIFF_DIRECTORIES;
        let file = TiffFile {
            little: true,
            big: false,
        };
        let at = file.offsets(&[2; LIMIT + 1]);
        let pages: Vec<[TiffEntry; 2]> = (1..=LIMIT + 1)
            .map(|page| {
                let width = match page {
                    LIMIT => 1_000,
                    page if page > LIMIT => 2_000,
                    _ => 1,
                };
                [(256, 4, 1, width), (257, 4, 1, 1)]
            })
            .collect();
        let chain: Vec<(&[TiffEntry], u64)> = pages
            .iter()
            .enumerate()
            .map(|(i, page)| (&page[..], if i == LIMIT { 0 } else { at[i + 1] }))
            .collect();
        let tiff = file.write(&chain, &[]);
        assert_eq!(largest_of(ImageFormat::Tiff, &tiff), Some((1_000, 1)));
    }

    #[test]
    fn tiff_dimensions_in_every_type_the_decoder_reads() {
        // IFD (13) was the bypass: a 21,000² page declared through it counted as no page at all.
        assert_eq!(
            largest_of(ImageFormat::Tiff, &tiff_dimensions_as(13, Some(21_000), 0)),
            Some((21_000, 21_000))
        );
        assert_eq!(
            largest_of(ImageFormat::Tiff, &tiff_dimensions_as(4, Some(21_000), 0)),
            Some((21_000, 21_000))
        );
        assert_eq!(
            largest_of(ImageFormat::Tiff, &tiff_dimensions_as(1, Some(200), 0)),
            Some((200, 200))
        );
        // LONG8 and IFD8 do not fit a classic TIFF's field: the value is at its offset.
        for kind in [16, 18] {
            let tiff = tiff_dimensions_as(kind, None, 30_000);
            assert_eq!(
                largest_of(ImageFormat::Tiff, &tiff),
                Some((30_000, 30_000)),
                "type {kind}"
            );
        }
    }

    /// A lossless bitstream's size is two 14-bit fields (stored minus one) under the alpha and
    /// version bits.
    #[test]
    fn a_webp_bitstream_larger_than_its_canvas() {
        let webp = |size_bits: u32| {
            let mut chunks = Vec::new();
            chunks.extend(b"VP8X");
            chunks.extend(10u32.to_le_bytes());
            chunks.extend([0; 10]); // flags, reserved, canvas 1×1 (stored minus one)
            chunks.extend(b"VP8L");
            chunks.extend(5u32.to_le_bytes());
            chunks.push(0x2F);
            chunks.extend(size_bits.to_le_bytes());
            chunks.push(0); // padding to an even size
            let mut webp = b"RIFF".to_vec();
            webp.extend((4 + chunks.len() as u32).to_le_bytes());
            webp.extend(b"WEBP");
            webp.extend(chunks);
            largest_of(ImageFormat::Webp, &webp)
        };
        assert_eq!(webp(16_383 | 16_383 << 14), Some((16_384, 16_384)));
        assert_eq!(webp(999 | 1_999 << 14 | 0xF << 28), Some((1_000, 2_000)));
    }

    /// The canvas and every animation frame's size are 24-bit little-endian fields, stored
    /// minus one: all three bytes count.
    #[test]
    fn webp_canvas_and_frame_sizes_are_read_in_all_their_bytes() {
        let riff = |chunks: &[u8]| {
            let mut webp = b"RIFF".to_vec();
            webp.extend((4 + chunks.len() as u32).to_le_bytes());
            webp.extend(b"WEBP");
            webp.extend(chunks);
            webp
        };
        let le24 = |n: u32| n.to_le_bytes()[..3].to_vec();
        let mut canvas = b"VP8X".to_vec();
        canvas.extend(10u32.to_le_bytes());
        canvas.extend([0x02, 0, 0, 0]); // flags (animation), reserved
        canvas.extend(le24(69_999)); // 70,000 wide: 0x01116F
        canvas.extend(le24(299));
        assert_eq!(largest_of(ImageFormat::Webp, &riff(&canvas)), Some((70_000, 300)));
        let mut frame = b"ANMF".to_vec();
        frame.extend(16u32.to_le_bytes());
        frame.extend(le24(0)); // x offset
        frame.extend(le24(0)); // y offset
        frame.extend(le24(70_000)); // 70,001 wide
        frame.extend(le24(299));
        frame.extend([0; 4]); // duration, flags
        let animated = riff(&[canvas, frame.clone()].concat());
        assert_eq!(largest_of(ImageFormat::Webp, &animated), Some((70_001, 300)));
        assert_eq!(animation_frames(ImageFormat::Webp, &animated), 1);
        let two = riff(&[animated[12..].to_vec(), frame].concat());
        assert_eq!(animation_frames(ImageFormat::Webp, &two), 2);
    }

    #[test]
    fn a_top_down_bmp_has_its_height_not_two_to_the_32() {
        let mut top_down = BMP.to_vec();
        top_down[22..26].copy_from_slice(&(-16i32).to_le_bytes());
        assert_eq!(largest_of(ImageFormat::Bmp, &top_down), Some((24, 16)));
    }

    /// A box whose size is 1 has its true size in the 64 bits after its type; one whose size is
    /// 0 runs to the end of the file; an empty box is one too.
    #[test]
    fn every_form_of_box_size_is_walked() {
        let mut big = 1u32.to_be_bytes().to_vec();
        big.extend(b"mdat");
        big.extend(24u64.to_be_bytes());
        big.extend(b"12345678");
        let mut file = boxed(b"ftyp", b"avif");
        file.extend(&big);
        file.extend(boxed(b"skip", b""));
        file.extend(boxed(b"free", b"end"));
        let boxes: Vec<_> = isobmff_boxes(&file).collect();
        assert_eq!(
            boxes,
            [
                (&b"ftyp"[..], &b"avif"[..], true),
                (b"mdat", b"12345678", true),
                (b"skip", b"", true),
                (b"free", b"end", true)
            ]
        );
        // 4 GiB + 24 bytes: its high word counts; the file ends inside it.
        big[8..16].copy_from_slice(&((1u64 << 32) + 24).to_be_bytes());
        assert_eq!(
            isobmff_boxes(&big).collect::<Vec<_>>(),
            [(&b"mdat"[..], &b"12345678"[..], false)]
        );

        let mut file = boxed(b"ftyp", b"avif");
        file.extend(0u32.to_be_bytes());
        file.extend(b"mdat12345678");
        let last = isobmff_boxes(&file).last();
        assert_eq!(last, Some((&b"mdat"[..], &b"12345678"[..], true)));
    }

    /// Frames of equal area but another shape: the first one seen is the image's size (the
    /// main image before its thumbnails and pages); a later one only wins with more pixels.
    #[test]
    fn of_frames_with_equal_pixels_the_first_is_kept() {
        let mut largest = Largest(None, 0);
        largest.saw(100, 200);
        largest.saw(200, 100);
        assert_eq!(largest.0, Some((100, 200)));
        largest.saw(201, 100);
        assert_eq!(largest.0, Some((201, 100)));
    }
}
