//! Image processing: decoding under limits, the operations, encoding, and the bounded pool
//! they run on (never on the I/O threads). It knows nothing of HTTP; `api/process.rs` is the
//! endpoint.

mod codec;
mod colors;
mod error;
mod metadata;
mod operations;
mod pool;

pub use codec::{Encoded, OutputFormat};
pub use error::ProcessError;
pub use operations::{Crop, Fit, Flip, Op, Resize, Rotation};
pub use pool::Pool;

/// Decodes `bytes` (a `format` image already checked against the input pixel limit), applies
/// `op` and encodes the result. Runs on the pool; `operation` labels the metrics.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    operation: &str,
    op: Op,
    bytes: &[u8],
    format: crate::object_name::ImageFormat,
    output: OutputFormat,
    quality: u8,
    limits: &crate::config::ProcessingConfig,
    metrics: &crate::metrics::Metrics,
) -> Result<Encoded, ProcessError> {
    let timed = |stage: &str, start: std::time::Instant| metrics.processing_stage(operation, stage, start.elapsed());
    let start = std::time::Instant::now();
    let image = codec::decode(bytes, format, limits.max_input_pixels)?;
    timed("decode", start);
    metrics.processing_pixels(operation, u64::from(image.width()) * u64::from(image.height()));
    let start = std::time::Instant::now();
    let result = op.apply(image, limits.max_output_pixels)?;
    timed("process", start);
    let start = std::time::Instant::now();
    let encoded = codec::encode(&result, output, quality)?;
    timed("encode", start);
    Ok(encoded)
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
/// dominant colours with their shares. Runs on the pool.
pub(crate) fn dominant_colors(
    bytes: &[u8],
    format: crate::object_name::ImageFormat,
    count: usize,
    limits: &crate::config::ProcessingConfig,
) -> Result<serde_json::Value, ProcessError> {
    let image = codec::decode(bytes, format, limits.max_input_pixels)?;
    Ok(serde_json::json!({ "colors": colors::dominant(&image, count) }))
}
