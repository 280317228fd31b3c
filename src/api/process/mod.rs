//! `POST /v1/image/{operation}`: an image in (the body, or `?source=` a stored object), the
//! operation's result out — stored with its `upload_url` (201), inline as base64 (200, with
//! `processing.store_results = false`), or the bytes themselves (200, for `Accept: image/*`).
//! Decoding, the operation and encoding run on the processing pool, never on the I/O threads.

mod params;
mod pipeline;

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{HeaderMap, HeaderValue, Response, header};
pub(crate) use params::Operation;
use params::{Params, problem};

use super::{
    ApiRequest,
    upload::{self, StoredBy, Uploads},
};
use crate::{
    config::ProcessingConfig,
    content::{frames, sniff},
    http::{
        body::{self, Body},
        error::ApiError,
    },
    metrics::Metrics,
    object_name::{ImageFormat, ObjectName},
    processing::{self, Output, OutputFormat, Pool, ProcessError},
    storage::Storage,
};

/// What processing needs besides storage and the upload limits.
pub(crate) struct Processing {
    pool: Pool,
    limits: ProcessingConfig,
    metrics: Arc<Metrics>,
}

impl Processing {
    /// The pool and limits of `processing.*`.
    pub(crate) fn new(limits: &ProcessingConfig, metrics: Arc<Metrics>) -> Processing {
        let workers = match limits.workers {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        };
        Processing {
            pool: Pool::new(workers, limits.queue, limits.job_timeout.0, metrics.clone()),
            limits: limits.clone(),
            metrics,
        }
    }
}

/// Runs `operation` on the request's image and answers in the form the client asked for.
pub(crate) async fn handle(
    processing: &Processing,
    uploads: &Uploads,
    storage: &Arc<dyn Storage>,
    operation: Operation,
    request: ApiRequest<'_>,
) -> Result<Response<Body>, ApiError> {
    let ApiRequest { parts, body, client } = request;
    let (query, headers) = (parts.uri.query(), &parts.headers);
    // Each job holds its input in memory: the upload slots bound how many, in all and per client.
    let (params, steps, _slots, body) = if operation == Operation::Pipeline {
        let params = Params::from_query(operation, query)?;
        if !params.0.is_empty() {
            return Err(ApiError::BadRequest(
                "a pipeline takes its parameters in its JSON body".into(),
            ));
        }
        if !is_json(headers) {
            return Err(ApiError::UnsupportedMediaType(
                "a pipeline is a JSON body (Content-Type: application/json)".into(),
            ));
        }
        let slots = uploads.slot(client)?;
        let json = uploads.receive_small(headers, body, pipeline::MAX_BODY).await?;
        let pipeline = pipeline::parse(&json)?;
        (pipeline.params, pipeline.steps, slots, None)
    } else {
        let params = Params::from_query(operation, query)?;
        let step = params.step(operation)?;
        (params, vec![step], uploads.slot(client)?, Some(body))
    };
    let quality = params.quality()?;
    let (format, input) = match (params.get("source"), body) {
        (Some(source), _) => {
            let name = ObjectName::parse(source).map_err(ApiError::InvalidObjectName)?;
            let (format, storage, limit) = (name.format(), storage.clone(), uploads.max_bytes());
            let read: StoredRead = Box::pin(async move { read_stored(storage.as_ref(), &name, limit).await });
            (format, Input::Stored(read))
        }
        (None, Some(body)) => (
            upload::declared_format(headers)?,
            Input::Bytes(uploads.receive(headers, body).await?),
        ),
        (None, None) => return Err(ApiError::BadRequest("`source` is required".into())),
    };
    if operation == Operation::ExtractMetadata {
        return describe(processing, format, input).await;
    }
    if operation == Operation::ExtractColors {
        let count = params.whole("count", 1, 16)?.unwrap_or(5) as usize;
        return colors(processing, uploads, format, input, count).await;
    }
    let output = Output {
        format: params.format()?.unwrap_or_else(|| OutputFormat::like(format)),
        quality,
        background: params.background()?,
        keep_metadata: params.flag("keep_metadata", false)?,
        max_bytes: params.whole("max_bytes", 1, u64::MAX)?,
    };
    if output.max_bytes.is_some() && !output.format.is_lossy() {
        return Err(ApiError::BadRequest(format!(
            "`max_bytes` needs a lossy output (jpeg or webp), not {}; add format=jpeg or format=webp",
            output.format.format().name()
        )));
    }
    let limits = processing.limits.clone();
    let max_input = limits.max_input_pixels.min(uploads.max_pixels());
    let metrics = processing.metrics.clone();
    let strip = operation == Operation::StripExif;
    let encoded = checked(
        processing,
        operation,
        format,
        input,
        Some(max_input),
        move |input, budget| {
            if let Some(kept) = processing::lossless(strip, &steps, input, format, &output) {
                return Ok(kept);
            }
            processing::run(
                operation.name(),
                &steps,
                input,
                format,
                output,
                &limits,
                &metrics,
                budget,
            )
        },
    )
    .await?;
    tracing::info!(
        operation = operation.name(),
        width = encoded.width,
        height = encoded.height,
        size = encoded.bytes.len(),
        "processed an image"
    );
    answer(processing, uploads, storage.as_ref(), headers, operation, encoded).await
}

/// The result in the form the client asked for: the bytes (`Accept: image/*`), stored with
/// its `upload_url` (201), or inline as base64 (200, `processing.store_results = false`).
async fn answer(
    processing: &Processing,
    uploads: &Uploads,
    storage: &dyn Storage,
    headers: &HeaderMap,
    operation: Operation,
    encoded: processing::Encoded,
) -> Result<Response<Body>, ApiError> {
    let format = encoded.format;
    if wants_bytes(headers, format) {
        let mut response = Response::new(body::full(encoded.bytes));
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
        h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("inline"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(response);
    }
    let mut extra = serde_json::Map::new();
    extra.insert("width".into(), encoded.width.into());
    extra.insert("height".into(), encoded.height.into());
    if processing.limits.store_results {
        let by = StoredBy::Operation(operation.name());
        return uploads
            .store(storage, format, Bytes::from(encoded.bytes), extra, by)
            .await;
    }
    extra.insert("size".into(), encoded.bytes.len().into());
    extra.insert("content_type".into(), format.content_type().into());
    extra.insert(
        "image".into(),
        base64::engine::general_purpose::STANDARD.encode(&encoded.bytes).into(),
    );
    Ok(json_response(serde_json::Value::Object(extra)))
}

/// Whether the body is declared JSON.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// A job's image: received already, or a stored object (`?source=`) that the worker reads
/// itself, so that copying megabytes into one buffer never holds an I/O thread.
enum Input {
    Bytes(Bytes),
    Stored(StoredRead),
}

type StoredRead = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Bytes, ApiError>> + Send>>;

/// Reads a stored object whole (it is bounded by `upload.max_bytes`, like a body).
async fn read_stored(storage: &dyn Storage, name: &ObjectName, limit: u64) -> Result<Bytes, ApiError> {
    let got = storage.get(name, None).await?;
    if got.meta.len > limit {
        return Err(ApiError::PayloadTooLarge { limit, what: "image" });
    }
    // Copied chunk by chunk as they arrive into one buffer of the declared size: no second
    // copy of the whole object (an 8 MB memcpy holds an I/O thread for milliseconds).
    let mut whole = bytes::BytesMut::with_capacity(usize::try_from(got.meta.len).unwrap_or(0));
    let mut body = got.body;
    while let Some(chunk) = body.try_next().await? {
        if whole.len() as u64 + chunk.len() as u64 > limit {
            return Err(ApiError::PayloadTooLarge { limit, what: "image" });
        }
        whole.extend_from_slice(&chunk);
    }
    Ok(whole.freeze())
}

/// Whether the client asked for the image itself (`Accept: image/*` or the output's type).
fn wants_bytes(headers: &HeaderMap, format: ImageFormat) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.split(';').next().unwrap_or_default().trim())
        .any(|media| media == "image/*" || media == format.content_type())
}

/// `extract/metadata`: the description as JSON (200), nothing stored. Animated images are
/// described too, and the whole file is read however many pixels it declares (no decoding).
async fn describe(processing: &Processing, format: ImageFormat, input: Input) -> Result<Response<Body>, ApiError> {
    let operation = Operation::ExtractMetadata;
    let json = checked(processing, operation, format, input, None, move |input, _| {
        processing::describe(input, format, frames::animation_frames(format, input))
    })
    .await?;
    Ok(json_response(json))
}

/// `extract/colors`: the palette as JSON (200), nothing stored.
async fn colors(
    processing: &Processing,
    uploads: &Uploads,
    format: ImageFormat,
    input: Input,
    count: usize,
) -> Result<Response<Body>, ApiError> {
    let limits = processing.limits.clone();
    let max_input = limits.max_input_pixels.min(uploads.max_pixels());
    let json = checked(
        processing,
        Operation::ExtractColors,
        format,
        input,
        Some(max_input),
        move |input, budget| processing::dominant_colors(input, format, count, &limits, budget),
    )
    .await?;
    Ok(json_response(json))
}

/// Runs `job` on the processing pool after the upload's content check (415, 413, 400); with a
/// pixel limit (`max_input`), animated inputs are refused (422: never silently the first frame
/// only). Every outcome is counted in `image_processing_jobs_total`, a job whose client went
/// away as `abandoned`.
async fn checked<T: Send + 'static>(
    processing: &Processing,
    operation: Operation,
    format: ImageFormat,
    input: Input,
    max_input: Option<u64>,
    job: impl FnOnce(&[u8], &processing::Budget) -> Result<T, ProcessError> + Send + 'static,
) -> Result<T, ApiError> {
    let runtime = tokio::runtime::Handle::current();
    let unfinished = Unfinished(Some((processing.metrics.clone(), operation)));
    let result = processing
        .pool
        .run(move |budget| {
            let bytes = match input {
                Input::Bytes(bytes) => bytes,
                Input::Stored(read) => match runtime.block_on(read) {
                    Ok(bytes) => bytes,
                    Err(e) => return Ok(Err(e)),
                },
            };
            Ok(match sniff::check(format, &bytes, max_input.unwrap_or(u64::MAX)) {
                Err(rejection) => Err(upload::rejected(rejection)),
                Ok(()) => match frames::animation_frames(format, &bytes) {
                    frames if frames > 1 && max_input.is_some() => Err(ApiError::Unprocessable(format!(
                        "the image is animated ({frames} frames); animated images are not processed yet"
                    ))),
                    _ => Ok(job(&bytes, budget)),
                },
            })
        })
        .await;
    let outcome = match &result {
        Ok(Ok(Ok(_))) => "ok",
        Ok(Ok(Err(e))) | Err(e) => e.label(),
        Ok(Err(_)) => "refused",
    };
    unfinished.finished();
    processing.metrics.processing_job(operation.name(), outcome);
    result.map_err(problem)??.map_err(problem)
}

/// Counts a job as `abandoned` when its caller's future is dropped before the job's outcome
/// is known (the client hung up, or the request timed out).
struct Unfinished(Option<(Arc<Metrics>, Operation)>);

impl Unfinished {
    fn finished(mut self) {
        self.0 = None;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some((metrics, operation)) = self.0.take() {
            metrics.processing_job(operation.name(), "abandoned");
        }
    }
}

/// A JSON answer (200) that caches nowhere.
fn json_response(json: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(body::full(json.to_string()));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
