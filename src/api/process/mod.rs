//! `POST /v1/image/{operation}`: an image in (the body, or `?source=` a stored object), the
//! operation's result out — stored with its `upload_url` (201), inline as base64 (200, with
//! `processing.store_results = false`), or the bytes themselves (200, for `Accept: image/*`).
//! The job runs through the processing job service (`jobs`): this module reads the request and
//! shapes the answer.

mod params;
mod pipeline;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, header};
pub(crate) use params::Operation;
use params::Params;

use super::{
    ApiRequest,
    intake::{self, Intake},
    publish::{Publisher, StoredBy},
};
use crate::{
    http::{
        body::{self, Body},
        error::{ApiError, MediaTypeError},
    },
    jobs::{Jobs, Source, Transform},
    object_name::{ImageFormat, ObjectName},
    processing::{self, Output, OutputFormat},
};

/// Runs `operation` on the request's image and answers in the form the client asked for.
pub(crate) async fn handle(
    jobs: &Jobs,
    intake: &Intake,
    publisher: &Publisher,
    operation: Operation,
    request: ApiRequest<'_>,
) -> Result<Response<Body>, ApiError> {
    let ApiRequest { parts, body, client } = request;
    let (query, headers) = (parts.uri.query(), &parts.headers);
    // Each job holds its input in memory: the intake's slots bound how many, in all and per
    // client.
    let (params, steps, _slot, body) = if operation == Operation::Pipeline {
        let params = Params::from_query(operation, query)?;
        if !params.0.is_empty() {
            return Err(ApiError::parameter("a pipeline takes its parameters in its JSON body"));
        }
        if !is_json(headers) {
            return Err(ApiError::UnsupportedMediaType(MediaTypeError::NotJson));
        }
        let slot = intake.slot(client)?;
        let json = intake.receive_small(headers, body, pipeline::MAX_BODY).await?;
        let pipeline = pipeline::parse(&json)?;
        (pipeline.params, pipeline.steps, slot, None)
    } else {
        let params = Params::from_query(operation, query)?;
        let step = params.step(operation)?;
        (params, vec![step], intake.slot(client)?, Some(body))
    };
    let quality = params.quality()?;
    let (format, source) = match (params.get("source"), body) {
        (Some(source), _) => {
            let name = ObjectName::parse(source).map_err(ApiError::InvalidObjectName)?;
            (name.format(), Source::Stored(name))
        }
        (None, Some(body)) => (
            intake::declared_format(headers)?,
            Source::Bytes(intake.receive(headers, body).await?),
        ),
        (None, None) => return Err(ApiError::parameter("`source` is required")),
    };
    if operation == Operation::ExtractMetadata {
        let json = jobs.describe(operation.name(), format, source).await?;
        return Ok(body::json(&json));
    }
    if operation == Operation::ExtractColors {
        let count = params.whole("count", 1, 16)?.unwrap_or(5) as usize;
        let json = jobs.colors(operation.name(), format, source, count).await?;
        return Ok(body::json(&json));
    }
    let output = Output {
        format: params.format()?.unwrap_or_else(|| OutputFormat::like(format)),
        quality,
        background: params.background()?,
        keep_metadata: params.flag("keep_metadata", false)?,
        max_bytes: params.whole("max_bytes", 1, u64::MAX)?,
    };
    if output.max_bytes.is_some() && !output.format.is_lossy() {
        return Err(ApiError::parameter(format!(
            "`max_bytes` needs a lossy output (jpeg or webp), not {}; add format=jpeg or format=webp",
            output.format.format().name()
        )));
    }
    let transform = Transform {
        operation: operation.name(),
        steps,
        output,
        strip: operation == Operation::StripExif,
    };
    let encoded = jobs.transform(format, source, transform).await?;
    answer(jobs, publisher, headers, operation, encoded).await
}

/// The result in the form the client asked for: the bytes (`Accept: image/*`), stored with
/// its `upload_url` (201), or inline as base64 (200, `processing.store_results = false`).
async fn answer(
    jobs: &Jobs,
    publisher: &Publisher,
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
    if jobs.stores_results() {
        let by = StoredBy::Operation(operation.name());
        return publisher.store(format, Bytes::from(encoded.bytes), extra, by).await;
    }
    extra.insert("size".into(), encoded.bytes.len().into());
    extra.insert("content_type".into(), format.content_type().into());
    extra.insert(
        "image".into(),
        base64::engine::general_purpose::STANDARD.encode(&encoded.bytes).into(),
    );
    Ok(body::json(&serde_json::Value::Object(extra)))
}

/// Whether the body is declared JSON.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
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
