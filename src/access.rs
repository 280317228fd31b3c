//! Access control seam: every request passes [`AccessControl::authorize`] before its handler.
//!
//! Today every request is allowed. The access issue adds API keys (`X-API-Key`, compared in
//! constant time), scopes, signed URLs and rate limits here, without touching the handlers.

use http::HeaderMap;

use crate::{error::ApiError, routes::Route};

#[derive(Debug, Default)]
pub struct AccessControl {}

impl AccessControl {
    /// Decides whether a request for `route` with `headers` may proceed.
    pub fn authorize(&self, route: &Route<'_>, headers: &HeaderMap) -> Result<(), ApiError> {
        let _ = (route, headers);
        Ok(())
    }
}
