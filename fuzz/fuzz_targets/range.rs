//! The Range parser: never panics; a partial range always lies inside the object.
#![no_main]

use image_gateway::api::download::range::{self, RangeRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len_bytes, header)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    // Lengths of every size, small ones most often.
    let len = u64::from_le_bytes(*len_bytes) >> (len_bytes[0] % 64);
    match range::parse(header, len) {
        RangeRequest::Partial(r) => assert!(r.start <= r.end && r.end < len, "{header:?} len {len}: {r:?}"),
        RangeRequest::Whole | RangeRequest::Unsatisfiable => {}
    }
});
