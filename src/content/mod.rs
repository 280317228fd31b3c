//! Content checks: whether bytes really are the image format a client declared, and within the
//! pixel limit, judged from headers and structure without decoding a pixel (every frame, page
//! and subimage counted; SVG parsed against an allowlist). Below the API, beside processing:
//! an upload, a processing job's input and a stored source read for processing all pass here.
//! Nothing in this layer knows HTTP.

pub(crate) mod frames;
pub mod sniff;
pub(crate) mod svg;
