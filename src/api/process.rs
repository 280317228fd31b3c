//! `POST /v1/image/{operation}`: an image in (the body, or `?source=` a stored object), the
//! operation's result out — stored with its `upload_url` (201), inline as base64 (200, with
//! `processing.store_results = false`), or the bytes themselves (200, for `Accept: image/*`).
//! Decoding, the operation and encoding run on the processing pool, never on the I/O threads.

use std::{collections::HashMap, net::IpAddr, sync::Arc};

use base64::Engine;
use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{HeaderMap, HeaderValue, Response, header};
use hyper::body::Incoming;

use super::upload::{self, Uploads, sniff};
use crate::{
    config::ProcessingConfig,
    http::{
        body::{self, Body},
        error::ApiError,
    },
    metrics::Metrics,
    object_name::{ImageFormat, ObjectName},
    processing::{self, Crop, Fit, Flip, Op, OutputFormat, Pool, ProcessError, Resize, Rotation},
    storage::Storage,
};

/// The operations served under `/v1/image/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// `resize`: `width`, `height`, `fit`, `maintain_aspect`, `enlarge`.
    Resize,
    /// `convert`: `to_format` (or `format`).
    Convert,
    /// `compress`: `quality`.
    Compress,
    /// `strip-exif`: a re-encode without metadata.
    StripExif,
    /// `rotate`: `angle` (90, 180, 270).
    Rotate,
    /// `flip`: `direction`.
    Flip,
    /// `crop`: `mode` = `coordinates` with `x`, `y`, `width`, `height`.
    Crop,
    /// `filter/grayscale`.
    Grayscale,
    /// `filter/blur`: `sigma`.
    Blur,
    /// `filter/sharpen`: `sigma`, `amount` (the threshold below which nothing is sharpened).
    Sharpen,
    /// `filter/sepia`.
    Sepia,
    /// `adjust/brightness`: `value` (−255…255).
    Brightness,
    /// `adjust/contrast`: `value` (−100…100, percent).
    Contrast,
    /// `adjust/saturation`: `value` (0…4, a factor).
    Saturation,
    /// `extract/metadata`: format, size, alpha, frames, an EXIF summary with GPS flagged (JSON).
    ExtractMetadata,
    /// `extract/colors`: `count` dominant colours with their shares (JSON).
    ExtractColors,
}

impl Operation {
    /// The operation named by the path after `/v1/image/`.
    pub(crate) fn parse(name: &str) -> Option<Operation> {
        Some(match name {
            "resize" => Operation::Resize,
            "convert" => Operation::Convert,
            "compress" => Operation::Compress,
            "strip-exif" => Operation::StripExif,
            "rotate" => Operation::Rotate,
            "flip" => Operation::Flip,
            "crop" => Operation::Crop,
            "filter/grayscale" => Operation::Grayscale,
            "filter/blur" => Operation::Blur,
            "filter/sharpen" => Operation::Sharpen,
            "filter/sepia" => Operation::Sepia,
            "adjust/brightness" => Operation::Brightness,
            "adjust/contrast" => Operation::Contrast,
            "adjust/saturation" => Operation::Saturation,
            "extract/metadata" => Operation::ExtractMetadata,
            "extract/colors" => Operation::ExtractColors,
            _ => return None,
        })
    }

    /// Its name, as in the path and the metrics.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Operation::Resize => "resize",
            Operation::Convert => "convert",
            Operation::Compress => "compress",
            Operation::StripExif => "strip-exif",
            Operation::Rotate => "rotate",
            Operation::Flip => "flip",
            Operation::Crop => "crop",
            Operation::Grayscale => "filter/grayscale",
            Operation::Blur => "filter/blur",
            Operation::Sharpen => "filter/sharpen",
            Operation::Sepia => "filter/sepia",
            Operation::Brightness => "adjust/brightness",
            Operation::Contrast => "adjust/contrast",
            Operation::Saturation => "adjust/saturation",
            Operation::ExtractMetadata => "extract/metadata",
            Operation::ExtractColors => "extract/colors",
        }
    }

    fn parameters(self) -> &'static [&'static str] {
        match self {
            Operation::Resize => &["width", "height", "fit", "maintain_aspect", "enlarge"],
            Operation::Convert => &["to_format"],
            Operation::Compress
            | Operation::StripExif
            | Operation::Grayscale
            | Operation::Sepia
            | Operation::ExtractMetadata => &[],
            Operation::Sharpen => &["sigma", "amount"],
            Operation::Brightness | Operation::Contrast | Operation::Saturation => &["value"],
            Operation::ExtractColors => &["count"],
            Operation::Rotate => &["angle"],
            Operation::Flip => &["direction"],
            Operation::Crop => &["mode", "x", "y", "width", "height"],
            Operation::Blur => &["sigma"],
        }
    }
}

/// Parameters every operation takes.
const COMMON: [&str; 3] = ["source", "format", "quality"];

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
            pool: Pool::new(workers, limits.queue, metrics.clone()),
            limits: limits.clone(),
            metrics,
        }
    }
}

/// Runs `operation` on the request's image and answers in the form the client asked for.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn handle(
    processing: &Processing,
    uploads: &Uploads,
    storage: &dyn Storage,
    operation: Operation,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Incoming,
    client: IpAddr,
) -> Result<Response<Body>, ApiError> {
    let params = parameters(operation, query)?;
    let op = op_of(operation, &params)?;
    let quality = match params.get("quality") {
        Some(q) => q
            .parse::<u8>()
            .ok()
            .filter(|q| (1..=100).contains(q))
            .ok_or_else(|| ApiError::BadRequest(format!("`quality`: `{q}` is not a whole number from 1 to 100")))?,
        None => 80,
    };
    // Each job holds its input in memory: the upload slots bound how many, in all and per client.
    let _slots = uploads.slot(client)?;
    let (format, bytes) = match params.get("source") {
        Some(source) => {
            let name = ObjectName::parse(source).map_err(ApiError::InvalidObjectName)?;
            (name.format(), read_stored(storage, &name, uploads.max_bytes()).await?)
        }
        None => (upload::declared_format(headers)?, uploads.receive(headers, body).await?),
    };
    if operation == Operation::ExtractMetadata {
        return describe(processing, format, bytes).await;
    }
    if operation == Operation::ExtractColors {
        let count = match params.get("count") {
            None => 5,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=16).contains(n))
                .ok_or_else(|| ApiError::BadRequest(format!("`count`: `{v}` is not a whole number from 1 to 16")))?,
        };
        return colors(processing, uploads, format, bytes, count).await;
    }
    let output = match params.get("to_format").or_else(|| params.get("format")) {
        Some(f) => OutputFormat::parse(f).map_err(problem)?,
        None => OutputFormat::like(format),
    };
    let limits = processing.limits.clone();
    let max_input = limits.max_input_pixels.min(uploads.max_pixels());
    let metrics = processing.metrics.clone();
    let encoded = checked(processing, operation, format, bytes, Some(max_input), move |input| {
        processing::run(operation.name(), op, input, format, output, quality, &limits, &metrics)
    })
    .await?;
    tracing::info!(
        operation = operation.name(),
        width = encoded.width,
        height = encoded.height,
        size = encoded.bytes.len(),
        "processed an image"
    );
    let format = encoded.format;
    let dimensions = [("width", encoded.width), ("height", encoded.height)];
    if wants_bytes(headers, format) {
        let mut response = Response::new(body::full(encoded.bytes));
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
        h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("inline"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(response);
    }
    let mut extra = serde_json::Map::new();
    for (key, value) in dimensions {
        extra.insert(key.into(), value.into());
    }
    if processing.limits.store_results {
        return uploads.store(storage, format, Bytes::from(encoded.bytes), extra).await;
    }
    extra.insert("size".into(), encoded.bytes.len().into());
    extra.insert("content_type".into(), format.content_type().into());
    extra.insert(
        "image".into(),
        base64::engine::general_purpose::STANDARD.encode(&encoded.bytes).into(),
    );
    Ok(json_response(serde_json::Value::Object(extra)))
}

/// The query's parameters; unknown ones are refused, naming them.
fn parameters(operation: Operation, query: Option<&str>) -> Result<HashMap<String, String>, ApiError> {
    let params: HashMap<String, String> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let mut unknown: Vec<&str> = params
        .keys()
        .map(String::as_str)
        .filter(|k| !operation.parameters().contains(k) && !COMMON.contains(k))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        let known: Vec<&str> = operation.parameters().iter().chain(COMMON.iter()).copied().collect();
        return Err(ApiError::BadRequest(format!(
            "unknown parameter(s) for {}: {}; it takes {}",
            operation.name(),
            unknown.join(", "),
            known.join(", ")
        )));
    }
    Ok(params)
}

/// The operation with its parameters, each checked and named when wrong.
fn op_of(operation: Operation, params: &HashMap<String, String>) -> Result<Op, ApiError> {
    let number = |key: &str| -> Result<Option<u32>, ApiError> {
        params
            .get(key)
            .map(|v| {
                v.parse::<u32>().ok().filter(|n| *n <= 65_535).ok_or_else(|| {
                    ApiError::BadRequest(format!("`{key}`: `{v}` is not a whole number from 0 to 65535"))
                })
            })
            .transpose()
    };
    // A number within `min..=max`; `default` when absent, or required without one.
    let decimal = |key: &str, min: f32, max: f32, default: Option<f32>| -> Result<f32, ApiError> {
        match (params.get(key), default) {
            (None, Some(default)) => Ok(default),
            (None, None) => Err(ApiError::BadRequest(format!("`{key}` is required"))),
            (Some(v), _) => v
                .parse::<f32>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| ApiError::BadRequest(format!("`{key}`: `{v}` is not a number from {min} to {max}"))),
        }
    };
    let required = |key: &str| -> Result<u32, ApiError> {
        number(key)?.ok_or_else(|| ApiError::BadRequest(format!("`{key}` is required")))
    };
    Ok(match operation {
        Operation::Resize => Op::Resize(resize_of(params)?),
        Operation::Compress | Operation::StripExif => Op::Keep,
        Operation::Convert => {
            if !params.contains_key("to_format") && !params.contains_key("format") {
                return Err(ApiError::BadRequest("`to_format` is required".into()));
            }
            Op::Keep
        }
        Operation::Rotate => {
            Op::Rotate(Rotation::parse(params.get("angle").map_or("", String::as_str)).map_err(problem)?)
        }
        Operation::Flip => Op::Flip(Flip::parse(params.get("direction").map_or("", String::as_str)).map_err(problem)?),
        Operation::Crop => {
            if let Some(mode) = params.get("mode").filter(|m| m.as_str() != "coordinates") {
                return Err(ApiError::BadRequest(format!(
                    "`mode`: `{mode}` is not supported yet; only `coordinates`"
                )));
            }
            let crop = Crop {
                x: number("x")?.unwrap_or(0),
                y: number("y")?.unwrap_or(0),
                width: required("width")?,
                height: required("height")?,
            };
            if crop.width == 0 || crop.height == 0 {
                return Err(ApiError::BadRequest("`width` and `height` must be at least 1".into()));
            }
            Op::Crop(crop)
        }
        Operation::Grayscale => Op::Grayscale,
        Operation::Blur => Op::Blur(decimal("sigma", 0.1, 50.0, Some(2.0))?),
        Operation::Sharpen => Op::Sharpen {
            sigma: decimal("sigma", 0.1, 10.0, Some(1.0))?,
            threshold: decimal("amount", 0.0, 255.0, Some(0.0))? as i32,
        },
        Operation::Sepia => Op::Sepia,
        Operation::Brightness => Op::Brightness(decimal("value", -255.0, 255.0, None)? as i32),
        Operation::Contrast => Op::Contrast(decimal("value", -100.0, 100.0, None)?),
        Operation::Saturation => Op::Saturation(decimal("value", 0.0, 4.0, None)?),
        Operation::ExtractMetadata | Operation::ExtractColors => Op::Keep,
    })
}

fn resize_of(params: &HashMap<String, String>) -> Result<Resize, ApiError> {
    let side = |key: &str| -> Result<Option<u32>, ApiError> {
        params
            .get(key)
            .map(|v| {
                v.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=65_535).contains(n))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!("`{key}`: `{v}` is not a whole number from 1 to 65535"))
                    })
            })
            .transpose()
    };
    let flag = |key: &str, default: bool| -> Result<bool, ApiError> {
        match params.get(key).map(String::as_str) {
            None => Ok(default),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(ApiError::BadRequest(format!("`{key}`: `{other}` is not true or false"))),
        }
    };
    let mut fit = match params.get("fit") {
        Some(f) => Fit::parse(f).map_err(problem)?,
        None => Fit::Contain,
    };
    if !flag("maintain_aspect", true)? {
        fit = Fit::Fill;
    }
    let resize = Resize {
        width: side("width")?,
        height: side("height")?,
        fit,
        enlarge: flag("enlarge", false)?,
    };
    Ok(resize)
}

/// Reads a stored object whole (it is bounded by `upload.max_bytes`, like a body).
async fn read_stored(storage: &dyn Storage, name: &ObjectName, limit: u64) -> Result<Bytes, ApiError> {
    let got = storage.get(name, None).await?;
    if got.meta.len > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let chunks: Vec<Bytes> = got.body.try_collect().await?;
    Ok(chunks.concat().into())
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

/// The HTTP error for a processing failure.
fn problem(e: ProcessError) -> ApiError {
    match e {
        ProcessError::BadParameter(why) => ApiError::BadRequest(why),
        ProcessError::Undecodable(_) | ProcessError::Unsupported(_) => ApiError::Unprocessable(e.to_string()),
        ProcessError::TooLarge(why) => ApiError::ImageTooLarge(why),
        ProcessError::Busy(_) => ApiError::Busy(e.to_string()),
        ProcessError::Failed(why) => ApiError::Internal(why),
    }
}

/// `extract/metadata`: the description as JSON (200), nothing stored. Animated images are
/// described too, and the whole file is read however many pixels it declares (no decoding).
async fn describe(processing: &Processing, format: ImageFormat, bytes: Bytes) -> Result<Response<Body>, ApiError> {
    let operation = Operation::ExtractMetadata;
    let json = checked(processing, operation, format, bytes, None, move |input| {
        processing::describe(input, format, upload::frames::animation_frames(format, input))
    })
    .await?;
    Ok(json_response(json))
}

/// `extract/colors`: the palette as JSON (200), nothing stored.
async fn colors(
    processing: &Processing,
    uploads: &Uploads,
    format: ImageFormat,
    bytes: Bytes,
    count: usize,
) -> Result<Response<Body>, ApiError> {
    let limits = processing.limits.clone();
    let max_input = limits.max_input_pixels.min(uploads.max_pixels());
    let json = checked(
        processing,
        Operation::ExtractColors,
        format,
        bytes,
        Some(max_input),
        move |input| processing::dominant_colors(input, format, count, &limits),
    )
    .await?;
    Ok(json_response(json))
}

/// Runs `job` on the processing pool after the upload's content check (415, 413, 400); with a
/// pixel limit (`max_input`), animated inputs are refused (422: never silently the first frame
/// only). Every outcome is counted in `image_processing_jobs_total`.
async fn checked<T: Send + 'static>(
    processing: &Processing,
    operation: Operation,
    format: ImageFormat,
    bytes: Bytes,
    max_input: Option<u64>,
    job: impl FnOnce(&[u8]) -> Result<T, ProcessError> + Send + 'static,
) -> Result<T, ApiError> {
    let result = processing
        .pool
        .run(move || {
            Ok(match sniff::check(format, &bytes, max_input.unwrap_or(u64::MAX)) {
                Err(rejection) => Err(upload::rejected(rejection)),
                Ok(()) => match upload::frames::animation_frames(format, &bytes) {
                    frames if frames > 1 && max_input.is_some() => Err(ApiError::Unprocessable(format!(
                        "the image is animated ({frames} frames); animated images are not processed yet"
                    ))),
                    _ => Ok(job(&bytes)),
                },
            })
        })
        .await;
    let outcome = match &result {
        Ok(Ok(Ok(_))) => "ok",
        Ok(Ok(Err(e))) | Err(e) => e.label(),
        Ok(Err(_)) => "refused",
    };
    processing.metrics.processing_job(operation.name(), outcome);
    result.map_err(problem)??.map_err(problem)
}

/// A JSON answer (200) that caches nowhere.
fn json_response(json: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(body::full(json.to_string()));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
