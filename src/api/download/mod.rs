//! `GET|HEAD /v1/image/download/{object_name}`: validators, conditionals, ranges, streaming.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

pub(crate) mod cache_policy;
pub mod conditional;
pub mod range;

use crate::{
    http::{
        body::{self, Body, ObjectBody},
        error::ApiError,
    },
    object_name::{ImageFormat, ObjectName},
    storage::{ByteRange, ObjectMeta, Storage},
};
use conditional::Outcome;
use range::RangeRequest;

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
    let validators = Validators { cache_control };
    if method == Method::GET && !is_conditional_or_ranged(headers) {
        // The common case, a plain GET, costs one storage call: the metadata comes with the body.
        let got = storage.get(name, None).await?;
        let body = ObjectBody::new(got.body, got.meta.len).boxed();
        return Ok(validators.object_response(name, &got.meta, None, body));
    }
    let meta = storage.head(name).await?;

    let honour_range = match conditional::evaluate(headers, &meta) {
        Outcome::Failed => return Err(ApiError::PreconditionFailed),
        Outcome::NotModified => return Ok(validators.not_modified(&meta)),
        Outcome::Proceed { honour_range } => honour_range,
    };
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let range = match range_header {
        Some(value) if honour_range => range::parse(value, meta.len),
        _ => RangeRequest::Whole,
    };
    let range = match range {
        RangeRequest::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable { len: meta.len }),
        RangeRequest::Partial(r) => Some(r),
        RangeRequest::Whole => None,
    };

    if method == Method::HEAD {
        return Ok(validators.object_response(name, &meta, range, body::empty()));
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
    Ok(validators.object_response(name, &got.meta, range, body))
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

/// The response headers that depend on the caller (caching) and the object (validators).
struct Validators {
    cache_control: HeaderValue,
}

impl Validators {
    /// Headers of a 200 or 206 (and of the HEAD equivalent).
    fn object_response(
        &self,
        name: &ObjectName,
        meta: &ObjectMeta,
        range: Option<ByteRange>,
        body: Body,
    ) -> Response<Body> {
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        self.apply(meta, headers);
        let format = name.format();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
        if let Ok(value) = HeaderValue::try_from(format!("inline; filename=\"{name}\"")) {
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
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    }

    fn not_modified(&self, meta: &ObjectMeta) -> Response<Body> {
        let mut response = Response::new(body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        self.apply(meta, response.headers_mut());
        response
    }
}
