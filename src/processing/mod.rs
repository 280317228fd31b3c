//! Image processing: decoding under limits, the operations, encoding, and the bounded pool
//! they run on (never on the I/O threads). It knows nothing of HTTP; `api/process.rs` is the
//! endpoint.

mod codec;
mod error;
mod operations;
mod pool;

pub use codec::{Encoded, OutputFormat};
pub use error::ProcessError;
pub use operations::{Fit, Resize};
pub use pool::Pool;

/// Decodes `bytes` (a `format` image already checked against the input pixel limit), resizes
/// and encodes it. Runs on the pool.
pub(crate) fn resize(
    bytes: &[u8],
    format: crate::object_name::ImageFormat,
    resize: Resize,
    output: OutputFormat,
    quality: u8,
    limits: &crate::config::ProcessingConfig,
    metrics: &crate::metrics::Metrics,
) -> Result<Encoded, ProcessError> {
    const OPERATION: &str = "resize";
    let timed = |stage: &str, start: std::time::Instant| metrics.processing_stage(OPERATION, stage, start.elapsed());
    let start = std::time::Instant::now();
    let image = codec::decode(bytes, format, limits.max_input_pixels)?;
    timed("decode", start);
    metrics.processing_pixels(OPERATION, u64::from(image.width()) * u64::from(image.height()));
    let start = std::time::Instant::now();
    let resized = resize.apply(&image, limits.max_output_pixels)?;
    timed("process", start);
    let start = std::time::Instant::now();
    let encoded = codec::encode(&resized, output, quality)?;
    timed("encode", start);
    Ok(encoded)
}
