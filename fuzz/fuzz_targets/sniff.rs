//! Upload format sniffing (raster headers, SVG parsing): never panics on any bytes.
#![no_main]

use image_gateway::{content::sniff, object_name::ImageFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let format = ImageFormat::ALL[usize::from(selector) % ImageFormat::ALL.len()];
    let _ = sniff::check(format, bytes, 100_000_000);
});
