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
) -> Result<Encoded, ProcessError> {
    let image = codec::decode(bytes, format, limits.max_input_pixels)?;
    let resized = resize.apply(&image, limits.max_output_pixels)?;
    codec::encode(&resized, output, quality)
}
