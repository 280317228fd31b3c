//! `POST /v1/image/upload`: raw image bytes in, a stored object and its URL out.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::{
    app::App,
    body::{self, Body},
    error::ApiError,
    object_name::{ImageFormat, ObjectName},
    routes::DOWNLOAD_PREFIX,
    sniff::{self, Rejection},
};

const SUPPORTED: &str = "image/png, image/jpeg, image/webp, image/gif, image/bmp, image/tiff, image/svg+xml";

pub async fn handle(app: &App, headers: &HeaderMap, body: Incoming) -> Result<Response<Body>, ApiError> {
    let format = declared_format(headers)?;
    // Each upload holds up to `upload.max_bytes` in memory: their number is bounded.
    let _slot = app.upload_slot()?;
    let bytes = read_capped(headers, body, app.config().upload.max_bytes.0).await?;
    sniff::check(format, &bytes, app.config().upload.max_pixels).map_err(|rejection| match rejection {
        Rejection::NotThatFormat(why) => ApiError::UnsupportedMediaType(why),
        Rejection::TooManyPixels(why) => ApiError::ImageTooLarge(why),
        Rejection::Truncated(why) => ApiError::BadRequest(why),
    })?;

    let name = ObjectName::generate(format);
    let size = bytes.len();
    app.storage().put(&name, bytes).await?;
    app.metrics().upload_stored(format.name());
    tracing::info!(object = %name, format = format.name(), size, "stored upload");

    let url = format!("{}{DOWNLOAD_PREFIX}{name}", app.public_url());
    let mut json = serde_json::json!({
        "object_name": name.as_str(),
        "upload_url": url,
        "content_type": format.content_type(),
        "size": size,
    });
    if let Some(signer) = app.access().signer() {
        let query = signer.query(&name, app.config().auth.signed_url_ttl.0);
        json["signed_url"] = serde_json::Value::String(format!("{url}?{query}"));
    }
    let mut response = Response::new(body::full(json.to_string()));
    *response.status_mut() = StatusCode::CREATED;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(location) = HeaderValue::try_from(url) {
        h.insert(header::LOCATION, location);
    }
    Ok(response)
}

fn declared_format(headers: &HeaderMap) -> Result<ImageFormat, ApiError> {
    let declared = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    match declared {
        None => Err(ApiError::UnsupportedMediaType(format!(
            "a Content-Type header is required; supported: {SUPPORTED}"
        ))),
        Some(value) => ImageFormat::from_content_type(value)
            .ok_or_else(|| ApiError::UnsupportedMediaType(format!("unsupported Content-Type; supported: {SUPPORTED}"))),
    }
}

/// Reads at most `limit` bytes; a larger declared length is refused before reading anything,
/// a chunked body as soon as it passes the limit.
async fn read_capped(headers: &HeaderMap, mut body: Incoming, limit: u64) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut buffer = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::BadRequest(format!("could not read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if (buffer.len() + data.len()) as u64 > limit {
            discard_rest(body).await;
            return Err(ApiError::PayloadTooLarge { limit });
        }
        buffer.extend_from_slice(&data);
    }
    if buffer.is_empty() {
        return Err(ApiError::EmptyBody);
    }
    Ok(buffer.freeze())
}

/// Reads and drops a little more of an oversized body, so that a client still sending it
/// gets to read our 413 instead of a broken pipe or a reset; bounded in bytes and time.
async fn discard_rest(mut body: Incoming) {
    const DISCARD_BYTES: usize = 4 << 20;
    const DISCARD_TIME: Duration = Duration::from_secs(2);
    let _ = tokio::time::timeout(DISCARD_TIME, async {
        let mut discarded = 0;
        while let Some(Ok(frame)) = body.frame().await {
            discarded += frame.data_ref().map_or(0, Bytes::len);
            if discarded > DISCARD_BYTES {
                break;
            }
        }
    })
    .await;
}
