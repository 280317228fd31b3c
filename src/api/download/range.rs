//! The `Range` request header (RFC 9110 §14.2), resolved against an object's length.
//!
//! Choice: a request for several ranges is answered 200 with the whole body (RFC 9110 lets a
//! server ignore `Range`), never multipart/byteranges; browsers and media players send one range.

use crate::storage::ByteRange;

/// What a `Range` header asks of an object of a known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable `Range`: answer 200 with the whole object (absent, invalid, another unit,
    /// or several ranges of which at least one is satisfiable).
    Whole,
    /// Exactly one satisfiable range, clamped to the object: answer 206.
    Partial(ByteRange),
    /// No requested range overlaps the object: answer 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

#[derive(Debug, Clone, Copy)]
enum Spec {
    /// `first-` or `first-last`
    From { first: u64, last: Option<u64> },
    /// `-suffix`
    Suffix(u64),
}

impl Spec {
    fn resolve(self, len: u64) -> Option<ByteRange> {
        match self {
            Spec::From { first, last } if first < len => {
                let end = last.map_or(len - 1, |l| l.min(len - 1));
                Some(ByteRange { start: first, end })
            }
            Spec::From { .. } => None,
            Spec::Suffix(n) if n > 0 && len > 0 => Some(ByteRange {
                start: len - n.min(len),
                end: len - 1,
            }),
            Spec::Suffix(_) => None,
        }
    }
}

/// Digits only (no sign, no space); numbers too large for u64 saturate, which keeps
/// `bytes=99999999999999999999999-` unsatisfiable rather than invalid.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        s.bytes()
            .fold(0u64, |n, d| n.saturating_mul(10).saturating_add(u64::from(d - b'0'))),
    )
}

fn spec(s: &str) -> Option<Spec> {
    let (first, last) = s.split_once('-')?;
    if first.is_empty() {
        return number(last).map(Spec::Suffix);
    }
    let first = number(first)?;
    let last = if last.is_empty() { None } else { Some(number(last)?) };
    if last.is_some_and(|l| l < first) {
        return None;
    }
    Some(Spec::From { first, last })
}

/// Interprets a `Range` header value for an object of `len` bytes.
pub fn parse(header: &str, len: u64) -> RangeRequest {
    let Some((unit, set)) = header.split_once('=') else {
        return RangeRequest::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeRequest::Whole;
    }
    let mut count = 0usize;
    let mut first_satisfiable = None;
    for element in set.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        // One invalid spec makes the whole header invalid, and an invalid header is ignored.
        let Some(spec) = spec(element) else {
            return RangeRequest::Whole;
        };
        count += 1;
        if first_satisfiable.is_none() {
            first_satisfiable = spec.resolve(len);
        }
    }
    match (count, first_satisfiable) {
        (0, _) => RangeRequest::Whole,
        (1, Some(range)) => RangeRequest::Partial(range),
        (_, Some(_)) => RangeRequest::Whole,
        (_, None) => RangeRequest::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeRequest::*;

    fn r(start: u64, end: u64) -> RangeRequest {
        Partial(ByteRange { start, end })
    }

    #[test]
    fn single_ranges() {
        assert_eq!(parse("bytes=0-9", 100), r(0, 9));
        assert_eq!(parse("bytes=10-", 100), r(10, 99));
        assert_eq!(parse("bytes=-10", 100), r(90, 99));
        assert_eq!(parse("bytes=-1000", 100), r(0, 99), "suffix longer than object");
        assert_eq!(parse("bytes=90-1000", 100), r(90, 99), "end clamps");
        assert_eq!(parse("bytes=99-99", 100), r(99, 99));
        assert_eq!(parse("Bytes = 0-0", 100), r(0, 0));
        assert_eq!(parse("bytes=0-99999999999999999999999", 100), r(0, 99));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(parse("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(parse("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse("bytes=-5", 0), Unsatisfiable);
        assert_eq!(parse("bytes=200-300, 400-500", 100), Unsatisfiable);
        assert_eq!(parse("bytes=99999999999999999999999-", 100), Unsatisfiable);
    }

    #[test]
    fn ignored() {
        for header in [
            "",
            "bytes",
            "bytes=",
            "bytes=abc",
            "bytes=5-1",
            "bytes=1-2-3",
            "bytes=+1-2",
            "bytes= 1 - 2",
            "items=0-1",
            "bytes=0-1,x",
            "bytes=--1",
            "bytes=-",
        ] {
            assert_eq!(parse(header, 100), Whole, "{header:?}");
        }
        assert_eq!(parse("bytes=0-1,5-6", 100), Whole, "several ranges: whole body");
        assert_eq!(parse("bytes=0-1, 500-600", 100), Whole);
        assert_eq!(parse("bytes=0-1,", 100), r(0, 1), "empty list elements are allowed");
    }
}
