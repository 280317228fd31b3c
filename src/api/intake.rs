//! Request bodies in: the slots that bound how many are held in memory (in all and per client),
//! the pace a body must keep, the size caps, and the declared format of an image body. Uploads
//! and processing jobs take their input through it.

use std::{net::IpAddr, sync::Arc, time::Duration};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{
    config::UploadSettings,
    http::{
        error::{ApiError, BadRequest, Busy, MediaTypeError},
        per_client::{ClientSlot, PerClient},
    },
    object_name::ImageFormat,
};

const SUPPORTED: &str = "image/png, image/jpeg, image/webp, image/gif, image/bmp, image/tiff, image/svg+xml";

/// The limits of request bodies (`upload.*`) and the slots that hold them.
pub(crate) struct Intake {
    /// One permit per body being received or processed (`upload.max_concurrent`).
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    /// Bodies in progress per client address (`upload.max_concurrent_per_client`).
    per_client: Arc<PerClient>,
    max_per_client: usize,
    /// Longest pause in a body, and the slowest average (`upload.body_idle_timeout`,
    /// `upload.min_body_rate`).
    pace: Pace,
    max_bytes: u64,
    max_pixels: u64,
}

/// A slot held for one body: its client's and the shared one, given back when dropped.
pub(crate) type Slot = (ClientSlot, OwnedSemaphorePermit);

impl Intake {
    /// Bodies under `limits` (`upload.*`).
    pub(crate) fn new(limits: &UploadSettings) -> Intake {
        Intake {
            slots: Arc::new(Semaphore::new(limits.max_concurrent.get())),
            max_concurrent: limits.max_concurrent.get(),
            per_client: PerClient::new(limits.max_concurrent_per_client),
            max_per_client: limits.max_concurrent_per_client,
            pace: Pace {
                idle: limits.body_idle_timeout,
                min_rate: limits.min_body_rate,
            },
            max_bytes: limits.max_bytes.get(),
            max_pixels: limits.max_pixels.get(),
        }
    }

    /// A slot for one body of `client`, or 503 when that client already has
    /// `upload.max_concurrent_per_client` in progress or everyone `upload.max_concurrent`.
    pub(crate) fn slot(&self, client: IpAddr) -> Result<Slot, ApiError> {
        let mine = self.per_client.admit(client).ok_or_else(|| {
            ApiError::Busy(Busy::ClientUploads {
                limit: self.max_per_client,
            })
        })?;
        let shared = self.slots.clone().try_acquire_owned().map_err(|_| {
            ApiError::Busy(Busy::Uploads {
                limit: self.max_concurrent,
            })
        })?;
        Ok((mine, shared))
    }

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

    /// The largest image accepted, in pixels (`upload.max_pixels`).
    pub(crate) fn max_pixels(&self) -> u64 {
        self.max_pixels
    }
}

/// The declared image format of a request body (`Content-Type`), or 415.
pub(crate) fn declared_format(headers: &HeaderMap) -> Result<ImageFormat, ApiError> {
    let declared = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    match declared {
        None => Err(ApiError::UnsupportedMediaType(MediaTypeError::Missing {
            supported: SUPPORTED,
        })),
        Some(value) => {
            ImageFormat::from_content_type(value).ok_or(ApiError::UnsupportedMediaType(MediaTypeError::Unsupported {
                supported: SUPPORTED,
            }))
        }
    }
}

/// How a body must keep coming: a pause of at most `idle`, and after `idle` (its grace to
/// get going) an average of at least `min_rate` bytes per second (0: none). The average is
/// what defeats trickling: a byte every `idle − 1` seconds never pauses long enough.
#[derive(Debug, Clone, Copy)]
struct Pace {
    idle: Duration,
    min_rate: u64,
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
        let frame = frame.map_err(|e| ApiError::BadRequest(BadRequest::Body(e)))?;
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
