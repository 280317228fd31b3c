//! Processing stages without network, on one 1920×1200 photograph-like image: resampling on
//! sRGB values vs in linear light, and a JPEG thumbnail with shrink-on-load vs a full decode
//! (the same `resize` step planned to need every pixel). `cargo bench --bench processing_stages`.

use std::{hint::black_box, io::Cursor};

use criterion::{Criterion, criterion_group, criterion_main};
use image::{DynamicImage, RgbImage};
use image_gateway::{
    config::ProcessingSettings,
    metrics::Metrics,
    object_name::ImageFormat,
    processing::{self, Background, Fit, Op, Output, OutputFormat, Resize},
};

fn photo(format: image::ImageFormat) -> Vec<u8> {
    let image = RgbImage::from_fn(1920, 1200, |x, y| {
        let ripple = ((f64::from(x) / 7.0).sin() * (f64::from(y) / 5.0).cos() * 40.0) as i32;
        let c = |base: u32| (base as i32 + ripple).clamp(0, 255) as u8;
        image::Rgb([c(x * 255 / 1920), c(y * 255 / 1200), c((x + y) * 127 / 3120 + 64)])
    });
    let mut bytes = Vec::new();
    DynamicImage::ImageRgb8(image)
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

fn resize(width: u32, linear: bool) -> Op {
    Op::Resize(Resize {
        width: Some(width),
        height: None,
        fit: Fit::Inside,
        enlarge: false,
        linear,
    })
}

fn stages(c: &mut Criterion) {
    let limits = ProcessingSettings::default();
    let metrics = Metrics::new();
    let budget = processing::Budget::detached(std::time::Duration::from_secs(3600));
    let output = |format| Output {
        format: OutputFormat::like(format),
        quality: Some(80),
        background: Background::default(),
        keep_metadata: false,
        max_bytes: None,
    };
    // BMP in and out: decoding and encoding are copies, so the resampler dominates.
    let bmp = photo(image::ImageFormat::Bmp);
    for (label, linear) in [("resample/srgb", false), ("resample/linear", true)] {
        c.bench_function(label, |b| {
            b.iter(|| {
                let steps = [resize(512, linear)];
                processing::run(
                    "bench",
                    &steps,
                    black_box(&bmp),
                    ImageFormat::Bmp,
                    output(ImageFormat::Bmp),
                    &limits,
                    &metrics,
                    &budget,
                )
                .unwrap()
            })
        });
    }
    // A JPEG to 512 px wide: shrink-on-load decodes 1/2 scale; to 1000 px it cannot shrink.
    let jpeg = photo(image::ImageFormat::Jpeg);
    for (label, width) in [
        ("jpeg-thumbnail/shrink-on-load", 512),
        ("jpeg-thumbnail/full-decode", 1000),
    ] {
        c.bench_function(label, |b| {
            b.iter(|| {
                let steps = [resize(width, false)];
                processing::run(
                    "bench",
                    &steps,
                    black_box(&jpeg),
                    ImageFormat::Jpeg,
                    output(ImageFormat::Jpeg),
                    &limits,
                    &metrics,
                    &budget,
                )
                .unwrap()
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = stages
}
criterion_main!(benches);
