//! `POST /v1/image/upload`: raw image bytes in, a stored object and its URL out.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;

use crate::{
    app::App,
    body::{self, Body},
    error::ApiError,
    object_name::{ImageFormat, ObjectName},
    routes::DOWNLOAD_PREFIX,
    sniff,
};

const SUPPORTED: &str =
    "image/png, image/jpeg, image/webp, image/gif, image/bmp, image/tiff, image/svg+xml";

pub async fn handle(
    app: &App,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Response<Body>, ApiError> {
    let format = declared_format(headers)?;
    let bytes = read_capped(headers, body, app.config().upload.max_bytes.0).await?;
    sniff::check(format, &bytes).map_err(ApiError::UnsupportedMediaType)?;

    let name = ObjectName::generate(format);
    let size = bytes.len();
    app.storage().put(&name, bytes).await?;
    tracing::info!(object = %name, format = format.name(), size, "stored upload");

    let url = format!("{}{DOWNLOAD_PREFIX}{name}", app.public_url());
    let json = serde_json::json!({
        "object_name": name.as_str(),
        "upload_url": url,
        "content_type": format.content_type(),
        "size": size,
    });
    let mut response = Response::new(body::full(json.to_string()));
    *response.status_mut() = StatusCode::CREATED;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(location) = HeaderValue::try_from(url) {
        h.insert(header::LOCATION, location);
    }
    Ok(response)
}

fn declared_format(headers: &HeaderMap) -> Result<ImageFormat, ApiError> {
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    match declared {
        None => Err(ApiError::UnsupportedMediaType(format!(
            "a Content-Type header is required; supported: {SUPPORTED}"
        ))),
        Some(value) => ImageFormat::from_content_type(value).ok_or_else(|| {
            ApiError::UnsupportedMediaType(format!(
                "unsupported Content-Type; supported: {SUPPORTED}"
            ))
        }),
    }
}

/// Reads at most `limit` bytes; a larger declared length is refused before reading anything,
/// a chunked body as soon as it passes the limit.
async fn read_capped(headers: &HeaderMap, body: Incoming, limit: u64) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    if declared == Some(0) {
        return Err(ApiError::EmptyBody);
    }
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    let collected = Limited::new(body, limit_usize)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<LengthLimitError>() {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::BadRequest(format!("could not read the request body: {e}"))
            }
        })?;
    let bytes = collected.to_bytes();
    if bytes.is_empty() {
        return Err(ApiError::EmptyBody);
    }
    Ok(bytes)
}
