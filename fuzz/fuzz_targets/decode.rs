//! The processing decode path (every codec, JPEG shrink-on-load, SVG rasterizing, EXIF, ICC)
//! then a step and an encode, on small inputs that passed the endpoint's content check: never
//! panics, never exceeds the pixel limits (libFuzzer's -rss_limit_mb catches a blow-up).
#![no_main]

use image_gateway::{
    content::sniff,
    config::ProcessingSettings,
    metrics::Metrics,
    object_name::ImageFormat,
    processing::{self, Background, Fit, Op, Output, OutputFormat, Resize},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let format = ImageFormat::ALL[usize::from(selector & 0x0F) % ImageFormat::ALL.len()];
    let pixels = std::num::NonZeroU64::new(1_000_000).expect("not zero");
    let limits = ProcessingSettings {
        max_input_pixels: pixels,
        max_output_pixels: pixels,
        ..ProcessingSettings::default()
    };
    if sniff::check(format, bytes, pixels.get()).is_err() {
        return;
    }
    // The high bits pick the step: none, a thumbnail (shrink-on-load), or a trim.
    let step = match selector >> 4 {
        0..=5 => Op::Keep,
        6..=11 => Op::Resize(Resize { width: Some(16), height: Some(16), fit: Fit::Inside, enlarge: false, linear: selector & 1 == 0 }),
        _ => Op::Trim(10),
    };
    let output = Output {
        format: OutputFormat::like(format),
        quality: Some(50),
        background: Background::default(),
        keep_metadata: selector & 0x80 != 0,
        max_bytes: None,
    };
    let _ = processing::run("fuzz", &[step], bytes, format, output, &limits, &Metrics::new(), &processing::Budget::detached(std::time::Duration::from_secs(60)));
});
