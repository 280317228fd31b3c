//! Conditional-header evaluation: never panics, whatever the header values.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use image_gateway::{api::download::conditional, storage::ObjectMeta};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 6] = [
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    "range",
];

fuzz_target!(|data: &[u8]| {
    // Lines of `<selector byte><value>`; the selector picks the header.
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some((&selector, value)) = line.split_first() else {
            continue;
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            let name = HeaderName::from_static(NAMES[usize::from(selector) % NAMES.len()]);
            headers.append(name, value);
        }
    }
    let meta = ObjectMeta {
        len: 1234,
        etag: "\"abc-123\"".into(),
        last_modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    };
    let first = conditional::evaluate(&headers, &meta);
    assert_eq!(first, conditional::evaluate(&headers, &meta), "deterministic");
});
