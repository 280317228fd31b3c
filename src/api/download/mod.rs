//! `GET|HEAD /v1/image/download/{object_name}`: validators, conditionals, ranges, streaming;
//! with variant options (`?w=400&format=webp`, `variant.rs`), the image rendered to them
//! through the processing job service, with validators and ranges of its own.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use sha2::{Digest, Sha256};

pub(crate) mod cache_policy;
pub mod conditional;
pub mod range;
pub(crate) mod renders;
pub mod variant;

use crate::{
    http::{
        body::{self, Body, ObjectBody},
        error::{ApiError, Unprocessable},
    },
    jobs::{JobError, Jobs, Source, Transform},
    metrics::{GIT_SHA, Metrics},
    object_name::{ImageFormat, ObjectName},
    processing::ProcessError,
    storage::{ByteRange, ObjectMeta, Storage, StorageError, VariantKey},
};
use conditional::Outcome;
use range::RangeRequest;
use renders::{RenderError, RenderKey, Renders, Tier};
use variant::Variant;

/// SECURITY: an SVG renders inline but can never run script, load anything or submit forms
/// in our origin.
const SVG_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; sandbox";

/// Answers a GET or HEAD of `name` from `storage`; `cache_control` goes on image responses.
pub(crate) async fn handle(
    storage: &dyn Storage,
    method: &Method,
    headers: &HeaderMap,
    name: &ObjectName,
    cache_control: HeaderValue,
) -> Result<Response<Body>, ApiError> {
    let validators = Validators {
        cache_control,
        vary_accept: false,
    };
    if method == Method::GET && !is_conditional_or_ranged(headers) {
        // The common case, a plain GET, costs one storage call: the metadata comes with the body.
        let got = storage.get(name, None).await?;
        let body = ObjectBody::new(got.body, got.meta.len).boxed();
        return Ok(validators.object_response(File::stored(name), &got.meta, None, body));
    }
    let meta = storage.head(name).await?;

    let honour_range = match conditional::evaluate(headers, &meta) {
        Outcome::Failed => return Err(ApiError::PreconditionFailed),
        Outcome::NotModified => return Ok(validators.not_modified(&meta)),
        Outcome::Proceed { honour_range } => honour_range,
    };
    let range = asked_range(headers, honour_range, meta.len)?;

    if method == Method::HEAD {
        return Ok(validators.object_response(File::stored(name), &meta, range, body::empty()));
    }

    let got = storage.get(name, range).await?;
    // Build from what `get` saw: if the object was replaced since `head`, the headers still
    // describe exactly the bytes we send.
    let range = range.map(|_| got.range);
    let len = match range {
        Some(r) => r.byte_count(),
        None => got.meta.len,
    };
    let body = ObjectBody::new(got.body, len).boxed();
    Ok(validators.object_response(File::stored(name), &got.meta, range, body))
}

/// What variants are made with: the job service (`None`: this server does not process), the
/// rendered variants kept in memory, whether they are kept in storage too (`variants.store`),
/// and the counters.
#[derive(Clone, Copy)]
pub(crate) struct Renderer<'a> {
    pub jobs: Option<&'a Jobs>,
    pub renders: &'a Renders,
    pub store: bool,
    pub metrics: &'a Metrics,
}

/// Answers a GET or HEAD of the `variant` of `name` (`format=auto` settled from `Accept`, and
/// `Vary: Accept` on the answer): from memory, from storage (`variants.store`), or rendered by
/// the job service (one making for simultaneous requests; 503 when it must be rendered on a
/// server that does not process), with
/// a strong `ETag` of its own (the source's, the variant's canonical form, its format and this
/// build: a new release may encode differently), the source's `Last-Modified`, and ranges over
/// the rendered bytes. A revalidation that matches (`If-None-Match`) is answered 304 without
/// rendering.
pub(crate) async fn handle_variant(
    renderer: Renderer<'_>,
    storage: &dyn Storage,
    method: &Method,
    headers: &HeaderMap,
    name: &ObjectName,
    variant: Variant,
    cache_control: HeaderValue,
) -> Result<Response<Body>, ApiError> {
    let validators = Validators {
        cache_control,
        vary_accept: variant.varies(),
    };
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let variant = variant.negotiate(accept);
    let source = storage.head(name).await?;
    let output = variant.output(name.format());
    let format = output.format.format();
    let canonical = variant.canonical(name.format());
    let variant_key = variant.key(name.format());
    let mut digest = Sha256::new();
    for part in [
        source.etag.as_str(),
        canonical.as_str(),
        format.name(),
        env!("CARGO_PKG_VERSION"),
        GIT_SHA,
    ] {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    let rendering = hex::encode(digest.finalize())[..32].to_owned();
    let mut meta = ObjectMeta {
        len: 0,
        etag: format!("\"{rendering}\""),
        last_modified: source.last_modified,
    };
    let honour_range = match conditional::evaluate(headers, &meta) {
        Outcome::Failed => return Err(ApiError::PreconditionFailed),
        Outcome::NotModified => return Ok(validators.not_modified(&meta)),
        Outcome::Proceed { honour_range } => honour_range,
    };
    let transform = Transform {
        operation: "variant",
        steps: vec![variant.step()],
        output,
        strip: false,
    };
    let key = RenderKey {
        name: name.clone(),
        source_etag: source.etag.clone(),
        variant: variant_key.clone(),
    };
    // Stored under the rendering's digest, as its `ETag`: one id is always the same bytes.
    let stored = renderer
        .store
        .then(|| VariantKey::new(name.clone(), format!("{rendering}.{variant_key}")))
        .flatten();
    let make = async {
        if let Some(stored) = &stored {
            match storage.get_variant(stored).await {
                Ok(bytes) => return Ok((bytes, Tier::Stored)),
                Err(StorageError::NotFound) => {}
                Err(e) => tracing::warn!(error = %e, "a stored variant could not be read; rendering it"),
            }
        }
        let jobs = renderer.jobs.ok_or(RenderError::NoProcessing)?;
        let encoded = jobs
            .transform(name.format(), Source::Stored(name.clone()), transform)
            .await?;
        let bytes = Bytes::from(encoded.bytes);
        if let Some(stored) = &stored
            && let Err(e) = storage.put_variant(stored, bytes.clone()).await
        {
            // Served all the same; the next pod renders it again.
            tracing::warn!(error = %e, "a rendered variant could not be stored");
        }
        Ok((bytes, Tier::Rendered))
    };
    let (bytes, tier) = renderer.renders.get_or_make(key, make).await.map_err(|e| match e {
        RenderError::Job(e) => unrenderable(e),
        RenderError::NoProcessing => ApiError::ProcessingDisabled,
    })?;
    meta.len = bytes.len() as u64;
    renderer
        .metrics
        .processing
        .variant_served(tier, format.name(), meta.len, source.len);
    let range = asked_range(headers, honour_range, meta.len)?;
    let body = match (method == Method::HEAD, range) {
        (true, _) => body::empty(),
        (false, None) => body::full(bytes),
        (false, Some(r)) => body::full(bytes.slice(r.start as usize..=r.end as usize)),
    };
    let stem = name.as_str().rsplit_once('.').map_or(name.as_str(), |(stem, _)| stem);
    let filename = match canonical.as_str() {
        "" => format!("{stem}.{variant_key}"),
        _ => format!("{stem}_{variant_key}"),
    };
    let file = File {
        format,
        filename: &filename,
    };
    Ok(validators.object_response(file, &meta, range, body))
}

/// `DELETE /v1/image/download/{name}/variants`: drops the image's rendered variants from
/// storage and from this server's memory (other pods keep theirs in memory until evicted:
/// they are still right, as the source is unchanged) and answers how many were stored.
pub(crate) async fn purge_variants(
    storage: &dyn Storage,
    renders: &Renders,
    name: &ObjectName,
) -> Result<Response<Body>, ApiError> {
    renders.forget(name);
    let deleted = storage.delete_variants(name).await?;
    Ok(body::json(
        &serde_json::json!({ "object_name": name.as_str(), "deleted": deleted }),
    ))
}

/// The answer to a variant that could not be made: a stored image that is not what its name
/// says, is over the pixel, size or memory limits or cannot be decoded is 422 (a download has no body
/// to blame: 413 and 415 would point at the request); the rest as for any job (404, 503, …).
fn unrenderable(e: JobError) -> ApiError {
    match e {
        JobError::Rejected(_)
        | JobError::SourceTooLarge { .. }
        | JobError::Animated(_)
        | JobError::OverMemoryBudget { .. }
        | JobError::Process(ProcessError::TooLarge(_)) => {
            ApiError::Unprocessable(Unprocessable::Variant(Box::new(ApiError::from(e))))
        }
        e => e.into(),
    }
}

/// The one range asked for (`Range`, when the preconditions let it be honoured) within `len`
/// bytes: `None` for the whole body, 416 when it lies outside.
fn asked_range(headers: &HeaderMap, honour_range: bool, len: u64) -> Result<Option<ByteRange>, ApiError> {
    let asked = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    match asked {
        Some(value) if honour_range => match range::parse(value, len) {
            RangeRequest::Unsatisfiable => Err(ApiError::RangeNotSatisfiable { len }),
            RangeRequest::Partial(r) => Ok(Some(r)),
            RangeRequest::Whole => Ok(None),
        },
        _ => Ok(None),
    }
}

/// Whether the answer depends on the object's validators or length before the body is read
/// (then a `head` comes first, so a 304, 412 or 416 never opens a body).
fn is_conditional_or_ranged(headers: &HeaderMap) -> bool {
    [
        header::RANGE,
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_UNMODIFIED_SINCE,
    ]
    .iter()
    .any(|h| headers.contains_key(h))
}

/// What an answer's body is: its format and the file name it is offered under.
#[derive(Clone, Copy)]
struct File<'a> {
    format: ImageFormat,
    filename: &'a str,
}

impl<'a> File<'a> {
    /// A stored object, under its own name.
    fn stored(name: &'a ObjectName) -> File<'a> {
        File {
            format: name.format(),
            filename: name.as_str(),
        }
    }
}

/// The response headers that depend on the caller (caching) and the object (validators).
struct Validators {
    cache_control: HeaderValue,
    /// The answer depends on `Accept` (`format=auto`): caches must key on it too.
    vary_accept: bool,
}

impl Validators {
    /// Headers of a 200 or 206 (and of the HEAD equivalent).
    fn object_response(
        &self,
        file: File<'_>,
        meta: &ObjectMeta,
        range: Option<ByteRange>,
        body: Body,
    ) -> Response<Body> {
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        self.apply(meta, headers);
        let File { format, filename } = file;
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
        if let Ok(value) = HeaderValue::try_from(format!("inline; filename=\"{filename}\"")) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if format == ImageFormat::Svg {
            headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(SVG_CSP));
        }
        match range {
            Some(r) => {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(r.byte_count()));
                if let Ok(value) = HeaderValue::try_from(format!("bytes {}-{}/{}", r.start, r.end, meta.len)) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
                *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            }
            None => {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len));
            }
        }
        response
    }

    /// Headers shared by 200, 206 and 304.
    fn apply(&self, meta: &ObjectMeta, headers: &mut HeaderMap) {
        if let Ok(etag) = HeaderValue::from_str(&meta.etag) {
            headers.insert(header::ETAG, etag);
        }
        if let Ok(date) = HeaderValue::try_from(httpdate::fmt_http_date(meta.last_modified)) {
            headers.insert(header::LAST_MODIFIED, date);
        }
        headers.insert(header::CACHE_CONTROL, self.cache_control.clone());
        if self.vary_accept {
            headers.insert(header::VARY, HeaderValue::from_static("Accept"));
        }
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    }

    fn not_modified(&self, meta: &ObjectMeta) -> Response<Body> {
        let mut response = Response::new(body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        self.apply(meta, response.headers_mut());
        response
    }
}
