//! A JPEG's marker structure, walked without decoding: the header's segments up to the first
//! scan, and the scans up to the end of the image. The scan limit and the quality estimate
//! (`jpeg.rs`) and the lossless metadata strip (`strip.rs`) read it here, once.

/// Start of scan: the header ends with this segment.
pub(super) const SOS: u8 = 0xDA;

/// One segment of the header.
pub(super) struct Segment<'a> {
    /// Its marker (the byte after `0xFF`).
    pub marker: u8,
    /// Where it starts (its `0xFF`).
    pub at: usize,
    /// The whole segment, marker and length included.
    pub bytes: &'a [u8],
}

impl<'a> Segment<'a> {
    /// The segment's content, after its marker and length.
    pub(super) fn body(&self) -> &'a [u8] {
        &self.bytes[4..]
    }
}

/// The header's segments after SOI, up to and including the first scan's header (SOS). Fill
/// bytes are skipped; the walk ends early where the structure is broken (no marker where one
/// must be, a length under 2, a segment cut short).
pub(super) fn header(bytes: &[u8]) -> impl Iterator<Item = Segment<'_>> {
    let mut at = 2;
    let mut done = false;
    std::iter::from_fn(move || {
        while !done {
            let (&prefix, &marker) = (bytes.get(at)?, bytes.get(at + 1)?);
            if prefix != 0xFF {
                return None;
            }
            if marker == 0xFF {
                at += 1;
                continue;
            }
            let length = usize::from(u16::from_be_bytes([*bytes.get(at + 2)?, *bytes.get(at + 3)?]));
            if length < 2 {
                return None;
            }
            let segment = Segment {
                marker,
                at,
                bytes: bytes.get(at..at + 2 + length)?,
            };
            done = marker == SOS;
            at += 2 + length;
            return Some(segment);
        }
        None
    })
}

/// What a walk from `from` found: the scans (SOS segments) met, and where the image ends.
pub(super) struct Walk {
    /// Scan headers met.
    pub scans: usize,
    /// Just past EOI; the end of the bytes without one; `None` where a segment header is cut.
    pub end: Option<usize>,
}

/// Walks from `from` to the end of the image: a segment's length is skipped, and after a scan
/// header the entropy-coded data up to the next marker (`FF 00` stuffing and restart markers
/// belong to the data). Linear, no allocation.
pub(super) fn walk(bytes: &[u8], from: usize) -> Walk {
    let (mut at, mut scans) = (from, 0);
    while at + 1 < bytes.len() {
        if bytes[at] != 0xFF {
            at += 1;
            continue;
        }
        match bytes[at + 1] {
            0xD9 => {
                return Walk {
                    scans,
                    end: Some(at + 2),
                };
            }
            0xFF => at += 1,                      // fill byte
            0x00 | 0x01 | 0xD0..=0xD8 => at += 2, // stuffing, TEM, restarts, SOI
            marker => {
                let (Some(&high), Some(&low)) = (bytes.get(at + 2), bytes.get(at + 3)) else {
                    return Walk { scans, end: None };
                };
                at += 2 + usize::from(u16::from_be_bytes([high, low])).max(2);
                if marker == SOS {
                    scans += 1;
                }
            }
        }
    }
    Walk {
        scans,
        end: Some(bytes.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_headers_end_the_walk_instead_of_panicking() {
        // A scan header whose length is 0, a segment cut short, no marker where one must be.
        for broken in [
            &b"\xFF\xD8\xFF\xDA\x00\x00"[..],
            b"\xFF\xD8\xFF\xE1\x00\x10Exif",
            b"\xFF\xD8\x00\x01",
        ] {
            assert_eq!(header(broken).count(), 0, "{broken:?}");
        }
        let segments: Vec<u8> = header(b"\xFF\xD8\xFF\xFF\xE0\x00\x02\xFF\xDA\x00\x02\x12\xFF\xD9")
            .map(|s| s.marker)
            .collect();
        assert_eq!(segments, [0xE0, SOS], "fill bytes skipped, the walk ends at the scan");
    }
}
