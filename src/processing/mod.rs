//! Image processing: decoding under limits, the operations, encoding, and the bounded pool
//! they run on (never on the I/O threads). It knows nothing of HTTP or storage: `jobs` runs it
//! for the endpoint (`api/process/`).

mod avif;
mod blur;
mod budget;
mod codec;
mod decoded;
mod error;
mod exif;
mod geometry;
mod icc;
mod jpeg;
mod jpeg_markers;
mod lossless;
mod memory;
mod metadata;
mod operations;
mod palette;
mod pool;
mod smart_crop;
mod strip;
mod svg;
mod tiff_exif;
mod turn;

pub use budget::Budget;
pub use codec::{Encoded, OutputFormat};
pub use error::ProcessError;
pub use geometry::{Background, Crop, Fit, Padding, Resize};
pub use memory::estimate as estimated_memory;
pub use operations::{Flip, Op, Rotation};
pub use pool::Pool;

use crate::metrics::{Metrics, Stage};

/// How a job's result is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    /// The format.
    pub format: OutputFormat,
    /// 1–100, for JPEG and WebP; `None`: a JPEG made from a JPEG keeps the source's quality
    /// (estimated from its quantisation tables), anything else 80.
    pub quality: Option<u8>,
    /// What transparent pixels are flattened onto where the format has no alpha.
    pub background: Background,
    /// Whether the EXIF block is kept (orientation reset); it is dropped by default.
    pub keep_metadata: bool,
    /// For lossy formats: the highest quality (up to `quality`) whose file is at most this big.
    pub max_bytes: Option<u64>,
}

/// Decodes `bytes` (a `format` image already checked against the input pixel limit) once,
/// applies `steps` in order and encodes the result once. Runs on the pool, within `budget`
/// (checked between stages and steps); `operation` labels the metrics. Every step's result,
/// whatever the step, is refused over `processing.max_output_pixels`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    operation: &'static str,
    steps: &[Op],
    bytes: &[u8],
    format: crate::object_name::ImageFormat,
    output: Output,
    limits: &crate::config::ProcessingSettings,
    metrics: &Metrics,
    budget: &Budget,
) -> Result<Encoded, ProcessError> {
    // Each stage is a span (`image decode`, `image process`, `image encode`) and a histogram sample.
    let stage = |name: &'static str| {
        let span = tracing::info_span!("image stage", otel.name = name, operation);
        (span, std::time::Instant::now())
    };
    let timed = |stage: Stage, start: std::time::Instant| metrics.processing.stage(operation, stage, start.elapsed());
    let (span, start) = stage("image decode");
    let first = steps.first().copied().unwrap_or(Op::Keep);
    let decoded =
        span.in_scope(|| codec::decode(bytes, format, decoding(limits), &|w, h| first.needs(w, h), budget))?;
    timed(Stage::Decode, start);
    let (width, height) = decoded.extent.full;
    metrics
        .processing
        .pixels(operation, u64::from(width) * u64::from(height));
    let (span, start) = stage("image process");
    let (mut image, mut extent) = (decoded.image, decoded.extent);
    for (n, step) in steps.iter().enumerate() {
        budget.check()?;
        image = span.in_scope(|| step.apply(image, extent, limits.max_output_pixels.get(), budget))?;
        extent = decoded::Extent::of(&image);
        within_output_limit(n, extent.full, limits.max_output_pixels.get())?;
    }
    budget.check()?;
    timed(Stage::Process, start);
    let (span, start) = stage("image encode");
    let kept = decoded
        .exif
        .filter(|_| output.keep_metadata)
        .map(|block| exif::refreshed(block, (image.width(), image.height())));
    let how = codec::Encoding {
        output: output.format,
        quality: output.quality.unwrap_or_else(|| {
            let from_jpeg = format == crate::object_name::ImageFormat::Jpeg && output.format.format() == format;
            from_jpeg
                .then(|| jpeg::estimated_quality(bytes))
                .flatten()
                .unwrap_or(match output.format.format() {
                    crate::object_name::ImageFormat::Avif => DEFAULT_AVIF_QUALITY,
                    _ => DEFAULT_QUALITY,
                })
        }),
        background: output.background.rgb(),
        exif: kept.as_deref(),
        avif_speed: limits.avif_speed,
    };
    let encoded = span.in_scope(|| match output.max_bytes {
        Some(target) => within(&image, how, target, budget),
        None => codec::encode(&image, &how),
    })?;
    timed(Stage::Encode, start);
    Ok(encoded)
}

/// Refuses the result of step `n` (counted from 0) when it is over `max_pixels`: flips,
/// rotations, filters and plain conversions are held to the same limit as geometry.
fn within_output_limit(n: usize, (width, height): (u32, u32), max_pixels: u64) -> Result<(), ProcessError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(ProcessError::BadParameter(format!(
            "step {} gives {width}×{height} = {pixels} pixels, over processing.max_output_pixels ({max_pixels}); \
             resize first",
            n + 1
        )));
    }
    Ok(())
}

/// How `processing.*` says to decode.
fn decoding(limits: &crate::config::ProcessingSettings) -> codec::Decoding {
    codec::Decoding {
        max_pixels: limits.max_input_pixels.get(),
        jpeg: limits.jpeg_decoder,
    }
}

/// The quality of a lossy result when neither the request nor a JPEG source says.
pub const DEFAULT_QUALITY: u8 = 80;

/// The quality of an AVIF result when the request does not say: imgproxy's default for AVIF
/// (its quality scale, like ravif's, makes 63 look as 80 does in JPEG).
pub const DEFAULT_AVIF_QUALITY: u8 = 63;

/// What a job keeps of its source without decoding it, when every pixel can be kept: for
/// `strip-exif` (`strip`), the source without its metadata segments (JPEG, PNG, WebP); for
/// turns and mirrors of a JPEG (`steps`), the coefficients moved in the DCT domain
/// (`lossless.rs`). Only when the result stays in the source's format and no quality or size
/// was asked for; `None` otherwise, or where it cannot be done (the caller decodes). Runs on the
/// pool.
pub fn lossless(
    strip: bool,
    steps: &[Op],
    bytes: &[u8],
    format: crate::object_name::ImageFormat,
    output: &Output,
) -> Option<Encoded> {
    use crate::object_name::ImageFormat;
    if output.format.format() != format || output.quality.is_some() || output.max_bytes.is_some() {
        return None;
    }
    let (kept, (width, height)) = if strip {
        let stripped = strip::strip(bytes, format)?;
        let size = dimensions(&stripped, format)?;
        (stripped, size)
    } else if format == ImageFormat::Jpeg && jpeg::within_scan_limit(bytes) {
        lossless::turned(bytes, steps, output.keep_metadata)?
    } else {
        return None;
    };
    Some(Encoded {
        bytes: kept,
        format,
        width,
        height,
    })
}

/// The size a `format` image's header declares.
fn dimensions(bytes: &[u8], format: crate::object_name::ImageFormat) -> Option<(u32, u32)> {
    image::ImageReader::with_format(std::io::Cursor::new(bytes), codec::codec_of(format).ok()?)
        .into_dimensions()
        .ok()
}

/// The lowest quality `compress?max_bytes=` tries before giving up.
const MIN_QUALITY: u8 = 10;

/// The encoding at the highest quality in `MIN_QUALITY..=how.quality` that fits in `target`
/// bytes, by bisection (at most 7 encodes); 422 when even the lowest does not fit.
fn within(
    image: &image::DynamicImage,
    mut how: codec::Encoding<'_>,
    target: u64,
    budget: &Budget,
) -> Result<Encoded, ProcessError> {
    let fits = |e: &Encoded| e.bytes.len() as u64 <= target;
    let first = codec::encode(image, &how)?;
    if fits(&first) {
        return Ok(first);
    }
    let (mut low, mut high) = (MIN_QUALITY, how.quality.saturating_sub(1).max(MIN_QUALITY));
    let mut best: Option<Encoded> = None;
    let mut smallest = first.bytes.len();
    while low <= high {
        budget.check()?;
        let middle = low + (high - low) / 2;
        how.quality = middle;
        let attempt = codec::encode(image, &how)?;
        smallest = smallest.min(attempt.bytes.len());
        if fits(&attempt) {
            best = Some(attempt);
            low = middle + 1;
        } else if middle == MIN_QUALITY {
            break;
        } else {
            high = middle - 1;
        }
    }
    best.ok_or_else(|| {
        ProcessError::Unsupported(format!(
            "max_bytes={target} cannot be reached: the smallest result (quality {MIN_QUALITY}) is {smallest} bytes; \
             resize the image first or allow more bytes"
        ))
    })
}

/// `extract/metadata` of `bytes` (a `format` image of `frames` animation frames). Runs on the pool.
pub(crate) fn describe(
    bytes: &[u8],
    format: crate::object_name::ImageFormat,
    frames: usize,
) -> Result<serde_json::Value, ProcessError> {
    metadata::describe(bytes, format, frames)
}

/// `extract/colors` of `bytes` (a `format` image within the input limit): up to `count`
/// dominant colours with their shares. Runs on the pool, within `budget`.
pub(crate) fn dominant_colors(
    bytes: &[u8],
    format: crate::object_name::ImageFormat,
    count: usize,
    limits: &crate::config::ProcessingSettings,
    budget: &Budget,
) -> Result<serde_json::Value, ProcessError> {
    let decoded = codec::decode(bytes, format, decoding(limits), &|_, _| Some((64, 64)), budget)?;
    Ok(serde_json::json!({ "colors": palette::dominant(&decoded.image, count) }))
}
