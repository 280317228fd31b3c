//! `POST /v1/image/upload`: raw image bytes in, a stored object and its URL out.

use http::Response;

use super::{
    ApiRequest,
    intake::Intake,
    publish::{Publisher, StoredBy},
};
use crate::{
    content::sniff,
    http::{
        body::Body,
        error::{ApiError, Internal},
    },
};

/// Checks the body as an image of its declared type, stores it under a new name and answers
/// 201 with its URLs.
pub(crate) async fn handle(
    intake: &Intake,
    publisher: &Publisher,
    request: ApiRequest<'_>,
) -> Result<Response<Body>, ApiError> {
    let ApiRequest { parts, body, client } = request;
    let headers = &parts.headers;
    let format = super::intake::declared_format(headers)?;
    // Each upload holds up to `upload.max_bytes` in memory: their number is bounded, in all
    // and per client, and a body that pauses gives its slot back.
    let _slot = intake.slot(client)?;
    let bytes = intake.receive(headers, body).await?;
    // The content check parses (SVG: the whole document, bounded): off the I/O threads, so
    // that other requests are served meanwhile.
    let (checked, max_pixels) = (bytes.clone(), intake.max_pixels());
    let verdict = tokio::task::spawn_blocking(move || sniff::check(format, &checked, max_pixels))
        .await
        .map_err(|source| {
            ApiError::Internal(Internal::Task {
                what: "content check",
                source,
            })
        })?;
    verdict?;
    publisher
        .store(format, bytes, serde_json::Map::new(), StoredBy::Upload)
        .await
}
