//! `POST /v1/image/upload`: raw image bytes in, a stored object and its URL out.

use std::{net::IpAddr, sync::Arc, time::Duration};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiRequest;
use crate::{
    auth::signing::UrlSigner,
    config::UploadConfig,
    content::sniff::{self, Rejection},
    http::{
        body::{self, Body},
        error::ApiError,
        per_client::{ClientSlot, PerClient},
    },
    metrics::Metrics,
    object_name::{DOWNLOAD_PREFIX, ImageFormat, ObjectName},
    storage::Storage,
};

const SUPPORTED: &str = "image/png, image/jpeg, image/webp, image/gif, image/bmp, image/tiff, image/svg+xml";

/// What uploads need besides storage: their limits, their slots, and how to name the result.
pub(crate) struct Uploads {
    /// One permit per upload being processed (`upload.max_concurrent`).
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    /// Uploads in progress per client address (`upload.max_concurrent_per_client`).
    per_client: Arc<PerClient>,
    max_per_client: usize,
    /// Longest pause in a body, and the slowest average (`upload.body_idle_timeout`,
    /// `upload.min_body_rate`).
    pace: Pace,
    max_bytes: u64,
    max_pixels: u64,
    links: Links,
    metrics: Arc<Metrics>,
}

/// The URLs an upload answers with.
pub(crate) struct Links {
    /// Base of the URLs, without a trailing slash.
    pub public_url: String,
    /// Signs `signed_url` when signing keys are configured.
    pub signer: Option<UrlSigner>,
    pub signed_url_ttl: Duration,
}

impl Uploads {
    /// Uploads under `limits` (`upload.*`), answering with `links`.
    pub(crate) fn new(limits: &UploadConfig, links: Links, metrics: Arc<Metrics>) -> Uploads {
        Uploads {
            slots: Arc::new(Semaphore::new(limits.max_concurrent)),
            max_concurrent: limits.max_concurrent,
            per_client: PerClient::new(limits.max_concurrent_per_client),
            max_per_client: limits.max_concurrent_per_client,
            pace: Pace {
                idle: limits.body_idle_timeout.0,
                min_rate: limits.min_body_rate.0,
            },
            max_bytes: limits.max_bytes.0,
            max_pixels: limits.max_pixels,
            links,
            metrics,
        }
    }

    /// A slot for one upload of `client`, or 503 when that client already has
    /// `upload.max_concurrent_per_client` in progress or everyone `upload.max_concurrent`.
    pub(crate) fn slot(&self, client: IpAddr) -> Result<(ClientSlot, OwnedSemaphorePermit), ApiError> {
        let mine = self.per_client.admit(client).ok_or_else(|| {
            ApiError::Busy(format!(
                "this client already has {} uploads in progress; retry later",
                self.max_per_client
            ))
        })?;
        let shared = self.slots.clone().try_acquire_owned().map_err(|_| {
            ApiError::Busy(format!(
                "{} uploads are already in progress; retry later",
                self.max_concurrent
            ))
        })?;
        Ok((mine, shared))
    }
}

/// Checks the body as an image of its declared type, stores it under a new name in `storage`
/// and answers 201 with its URLs.
pub(crate) async fn handle(
    uploads: &Uploads,
    storage: &dyn Storage,
    request: ApiRequest<'_>,
) -> Result<Response<Body>, ApiError> {
    let ApiRequest { parts, body, client } = request;
    let headers = &parts.headers;
    let format = declared_format(headers)?;
    // Each upload holds up to `upload.max_bytes` in memory: their number is bounded, in all
    // and per client, and a body that pauses gives its slot back.
    let _slots = uploads.slot(client)?;
    let bytes = uploads.receive(headers, body).await?;
    // The content check parses (SVG: the whole document, bounded): off the I/O threads, so
    // that other requests are served meanwhile.
    let (checked, max_pixels) = (bytes.clone(), uploads.max_pixels);
    let verdict = tokio::task::spawn_blocking(move || sniff::check(format, &checked, max_pixels))
        .await
        .map_err(|e| ApiError::Internal(format!("the content check failed: {e}")))?;
    verdict.map_err(rejected)?;
    uploads
        .store(storage, format, bytes, serde_json::Map::new(), StoredBy::Upload)
        .await
}

/// The HTTP error for a content check's refusal.
pub(crate) fn rejected(rejection: Rejection) -> ApiError {
    match rejection {
        Rejection::NotThatFormat(why) => ApiError::UnsupportedMediaType(why),
        Rejection::TooManyPixels(why) => ApiError::ImageTooLarge(why),
        Rejection::Truncated(why) => ApiError::BadRequest(why),
    }
}

impl Uploads {
    /// Reads a request body of at most `upload.max_bytes` (the caller holds a slot).
    pub(crate) async fn receive(&self, headers: &HeaderMap, body: Incoming) -> Result<Bytes, ApiError> {
        read_capped(headers, body, self.max_bytes, self.pace, "image").await
    }

    /// Reads a request body of at most `limit` bytes (a JSON document, not an image).
    pub(crate) async fn receive_small(
        &self,
        headers: &HeaderMap,
        body: Incoming,
        limit: u64,
    ) -> Result<Bytes, ApiError> {
        read_capped(headers, body, limit.min(self.max_bytes), self.pace, "JSON body").await
    }

    /// Stores `bytes` under a new name and answers 201 with its URLs (`extra` fields added);
    /// counted as `by` made it.
    pub(crate) async fn store(
        &self,
        storage: &dyn Storage,
        format: ImageFormat,
        bytes: Bytes,
        extra: serde_json::Map<String, serde_json::Value>,
        by: StoredBy,
    ) -> Result<Response<Body>, ApiError> {
        let name = ObjectName::generate(format);
        let size = bytes.len();
        storage.put(&name, bytes).await?;
        match by {
            StoredBy::Upload => self.metrics.upload_stored(format.name()),
            StoredBy::Operation(operation) => self.metrics.processing_result_stored(operation, format.name()),
        }
        tracing::info!(object = %name, format = format.name(), size, "stored an image");

        let links = &self.links;
        let url = format!("{}{DOWNLOAD_PREFIX}{name}", links.public_url);
        let mut json = serde_json::json!({
            "object_name": name.as_str(),
            "upload_url": url,
            "content_type": format.content_type(),
            "size": size,
        });
        if let Some(signer) = &links.signer {
            let query = signer.query(&name, links.signed_url_ttl);
            json["signed_url"] = serde_json::Value::String(format!("{url}?{query}"));
        }
        if let Some(object) = json.as_object_mut() {
            object.extend(extra);
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

    /// The largest body accepted, in bytes (`upload.max_bytes`).
    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The largest image accepted, in pixels (`upload.max_pixels`).
    pub(crate) fn max_pixels(&self) -> u64 {
        self.max_pixels
    }
}

/// What made a stored object, for its counter: an upload, or an operation's result.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StoredBy {
    Upload,
    /// The operation's name (`resize`, `pipeline`, …).
    Operation(&'static str),
}

/// The declared image format of a request body (`Content-Type`), or 415.
pub(crate) fn declared_format(headers: &HeaderMap) -> Result<ImageFormat, ApiError> {
    let declared = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    match declared {
        None => Err(ApiError::UnsupportedMediaType(format!(
            "a Content-Type header is required; supported: {SUPPORTED}"
        ))),
        Some(value) => ImageFormat::from_content_type(value)
            .ok_or_else(|| ApiError::UnsupportedMediaType(format!("unsupported Content-Type; supported: {SUPPORTED}"))),
    }
}

/// How a body must keep coming: a pause of at most `idle`, and after `idle` (its grace to
/// get going) an average of at least `min_rate` bytes per second (0: none). The average is
/// what defeats trickling: a byte every `idle − 1` seconds never pauses long enough.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    pub idle: Duration,
    pub min_rate: u64,
}

impl Pace {
    /// When the next bytes must have arrived, `received` having arrived since `started`.
    fn deadline(&self, started: tokio::time::Instant, received: u64) -> tokio::time::Instant {
        let pause = tokio::time::Instant::now() + self.idle;
        if self.min_rate == 0 {
            return pause;
        }
        let earned = Duration::from_secs_f64(received as f64 / self.min_rate as f64);
        pause.min(started + self.idle + earned)
    }

    /// Why the body is refused at its deadline.
    fn missed(&self, started: tokio::time::Instant, received: u64) -> ApiError {
        let elapsed = started.elapsed();
        if self.min_rate > 0
            && elapsed > self.idle
            && (received as f64) < self.min_rate as f64 * (elapsed - self.idle).as_secs_f64()
        {
            ApiError::BodyTooSlow {
                received,
                elapsed,
                rate: self.min_rate,
            }
        } else {
            ApiError::BodyStalled(self.idle)
        }
    }
}

/// Reads at most `limit` bytes of `what`; a larger declared length is refused before reading
/// anything, a chunked body as soon as it passes the limit; a body slower than `pace` is 408.
async fn read_capped(
    headers: &HeaderMap,
    mut body: Incoming,
    limit: u64,
    pace: Pace,
    what: &'static str,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit, what });
    }
    let mut buffer = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    let started = tokio::time::Instant::now();
    loop {
        let received = buffer.len() as u64;
        let Ok(next) = tokio::time::timeout_at(pace.deadline(started, received), body.frame()).await else {
            return Err(pace.missed(started, received));
        };
        let Some(frame) = next else { break };
        let frame = frame.map_err(|e| ApiError::BadRequest(format!("could not read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if (buffer.len() + data.len()) as u64 > limit {
            discard_rest(body).await;
            return Err(ApiError::PayloadTooLarge { limit, what });
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
