//! The HTTP layer's one error enum: every client-visible failure, and the single place where
//! each one is given its status code, headers and JSON `{"detail": "...", "code": "..."}` body:
//! `detail` is for people and may be reworded; `code` is stable, for clients to branch on (the
//! OpenAPI document's `Error.code` lists them all, and a test holds the two together).

use http::{HeaderValue, Response, StatusCode, header};

use crate::{
    auth::AuthError,
    content::sniff::Rejection,
    http::body::{self, Body},
    jobs::JobError,
    object_name::{NAME_FORMAT, NameError},
    processing::ProcessError,
    storage::StorageError,
};

/// Seconds a client should wait before retrying after a storage outage.
pub const RETRY_AFTER_SECS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid object name: {0}; a valid name is {NAME_FORMAT}")]
    InvalidObjectName(NameError),
    #[error("image not found")]
    ObjectNotFound,
    #[error("no such endpoint")]
    RouteNotFound,
    /// `processing.enabled = false` on this server (503 with `Retry-After`): behind the chart's
    /// split, an operation reaches a serving pod only while the processing pods have no ready
    /// endpoint (the ingress then falls back to the serving pods' `/`), which is an outage to
    /// retry, not a missing route.
    #[error(
        "this server does not process images (processing.enabled = false): POST /v1/image/{{operation}} is served by the processing service; retry later"
    )]
    ProcessingDisabled,
    #[error("method not allowed; allowed: {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("range not satisfiable: the image is {len} bytes long")]
    RangeNotSatisfiable { len: u64 },
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("the request body is empty; send the image bytes as the body")]
    EmptyBody,
    /// `what`: "image", or "JSON body" for a pipeline.
    #[error("the {what} is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: u64, what: &'static str },
    #[error("{0}")]
    UnsupportedMediaType(MediaTypeError),
    #[error("{0}")]
    ImageTooLarge(TooLarge),
    #[error("Invalid or missing API key")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(Forbidden),
    /// The `X-RateLimit-*` and `Retry-After` headers are added by the dispatcher.
    #[error("Rate limit exceeded. Please try again later.")]
    RateLimited,
    #[error("{0}")]
    BadRequest(BadRequest),
    #[error("the request target is longer than the limit of {limit} bytes")]
    UriTooLong { limit: usize },
    #[error("{0}")]
    HeadersTooLarge(HeaderLimit),
    #[error("the request was not completed within {0:?}")]
    RequestTimeout(std::time::Duration),
    /// The upload body sent nothing for `upload.body_idle_timeout` (408).
    #[error("the request body stalled: no bytes for {0:?}")]
    BodyStalled(std::time::Duration),
    /// The upload body arrived slower than `upload.min_body_rate` on average (408).
    #[error(
        "the request body arrives too slowly: {received} bytes in {elapsed:?}, under upload.min_body_rate ({rate} bytes/s)"
    )]
    BodyTooSlow {
        received: u64,
        elapsed: std::time::Duration,
        rate: u64,
    },
    /// The request is understood but its image cannot be processed (422).
    #[error("{0}")]
    Unprocessable(Unprocessable),
    /// Too much of one kind of work at once (e.g. uploads); answered with `Retry-After`.
    #[error("{0}")]
    Busy(Busy),
    /// The cause is logged, never sent: it may name internal hosts.
    #[error("storage is temporarily unavailable; retry later")]
    StorageUnavailable(StorageError),
    /// The cause is logged, never sent.
    #[error("internal error")]
    Internal(Internal),
}

/// Why a request is malformed (400).
#[derive(Debug, thiserror::Error)]
pub enum BadRequest {
    /// A parameter (of the query, a pipeline's JSON or a variant) the API refused; the message
    /// names it and says what is accepted.
    #[error("{0}")]
    Parameter(String),
    /// The image ends before it should (the content check).
    #[error(transparent)]
    Content(Rejection),
    /// A parameter the processing refused.
    #[error(transparent)]
    Process(ProcessError),
    /// The body could not be read.
    #[error("could not read the request body: {0}")]
    Body(#[source] hyper::Error),
}

/// Why a body is not an image type we take (415).
#[derive(Debug, thiserror::Error)]
pub enum MediaTypeError {
    /// No `Content-Type`; `supported` lists the types.
    #[error("a Content-Type header is required; supported: {supported}")]
    Missing { supported: &'static str },
    /// A `Content-Type` that is not an image type we take.
    #[error("unsupported Content-Type; supported: {supported}")]
    Unsupported { supported: &'static str },
    /// A pipeline whose body is not declared JSON.
    #[error("a pipeline is a JSON body (Content-Type: application/json)")]
    NotJson,
    /// The bytes are not the declared format (the content check).
    #[error(transparent)]
    Content(Rejection),
}

/// Why an image is over a limit (413).
#[derive(Debug, thiserror::Error)]
pub enum TooLarge {
    /// More pixels than `upload.max_pixels` (the content check).
    #[error(transparent)]
    Content(Rejection),
    /// More pixels than `processing.max_input_pixels`.
    #[error(transparent)]
    Process(ProcessError),
    /// More memory than the whole processing budget.
    #[error(transparent)]
    Job(JobError),
}

/// Why an authenticated request is refused (403).
#[derive(Debug, thiserror::Error)]
pub enum Forbidden {
    /// The API key's scope is too small, or the signed URL is bad.
    #[error(transparent)]
    Auth(AuthError),
    /// A browser's `Origin` that `cors.allowed_origins` does not list.
    #[error("this origin is not allowed to call the API")]
    Origin,
}

/// Which request-head limit was passed (431).
#[derive(Debug, thiserror::Error)]
pub enum HeaderLimit {
    /// `server.max_headers`.
    #[error("{count} header fields; the limit is {limit}")]
    Fields { count: usize, limit: usize },
    /// `server.max_header_bytes`.
    #[error("the header fields take {bytes} bytes; the limit is {limit}")]
    Bytes { bytes: usize, limit: usize },
}

/// Why an understood request's image cannot be processed (422).
#[derive(Debug, thiserror::Error)]
pub enum Unprocessable {
    /// It cannot be decoded, the conversion is not supported, or the job ran out of time.
    #[error(transparent)]
    Process(ProcessError),
    /// It is animated.
    #[error(transparent)]
    Job(JobError),
    /// A stored image that cannot be rendered as a variant, for the reason a request would
    /// have been refused with (a download has no body to blame: 413 and 415 would point at
    /// the request).
    #[error("the stored image cannot be rendered as a variant: {0}")]
    Variant(Box<ApiError>),
}

/// Too much of one kind of work at once (503 with `Retry-After`).
#[derive(Debug, thiserror::Error)]
pub enum Busy {
    /// `upload.max_concurrent_per_client` bodies of this client in progress.
    #[error("this client already has {limit} uploads in progress; retry later")]
    ClientUploads { limit: usize },
    /// `upload.max_concurrent` bodies in progress.
    #[error("{limit} uploads are already in progress; retry later")]
    Uploads { limit: usize },
    /// The processing queue is full.
    #[error(transparent)]
    Process(ProcessError),
    /// Not enough of the processing memory budget is free.
    #[error(transparent)]
    Job(JobError),
}

/// A failure that is ours, not the client's (500); logged with its cause.
#[derive(Debug, thiserror::Error)]
pub enum Internal {
    /// Storage failed in a way that is not an outage.
    #[error(transparent)]
    Storage(StorageError),
    /// An image operation failed.
    #[error(transparent)]
    Process(ProcessError),
    /// A blocking task panicked or was cancelled.
    #[error("the {what} failed: {source}")]
    Task {
        what: &'static str,
        source: tokio::task::JoinError,
    },
}

impl ApiError {
    /// A parameter the API refused (400); `why` names it.
    pub(crate) fn parameter(why: impl Into<String>) -> ApiError {
        ApiError::BadRequest(BadRequest::Parameter(why.into()))
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => Self::ObjectNotFound,
            e @ StorageError::Unavailable(_) => Self::StorageUnavailable(e),
            e @ StorageError::Other(_) => Self::Internal(Internal::Storage(e)),
        }
    }
}

/// A content check's refusal: not the declared format (415), too many pixels (413), truncated
/// (400).
impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::NotThatFormat(_) => Self::UnsupportedMediaType(MediaTypeError::Content(rejection)),
            Rejection::TooManyPixels(_) => Self::ImageTooLarge(TooLarge::Content(rejection)),
            Rejection::Truncated(_) => Self::BadRequest(BadRequest::Content(rejection)),
        }
    }
}

impl From<ProcessError> for ApiError {
    fn from(e: ProcessError) -> Self {
        match e {
            ProcessError::BadParameter(_) => Self::BadRequest(BadRequest::Process(e)),
            ProcessError::Undecodable(_)
            | ProcessError::Unsupported(_)
            | ProcessError::TimedOut(_)
            | ProcessError::Abandoned => Self::Unprocessable(Unprocessable::Process(e)),
            ProcessError::TooLarge(_) => Self::ImageTooLarge(TooLarge::Process(e)),
            ProcessError::Busy(_) => Self::Busy(Busy::Process(e)),
            ProcessError::Failed(_) => Self::Internal(Internal::Process(e)),
        }
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Storage(e) => e.into(),
            JobError::SourceTooLarge { limit } => Self::PayloadTooLarge { limit, what: "image" },
            JobError::Rejected(rejection) => rejection.into(),
            e @ JobError::Animated(_) => Self::Unprocessable(Unprocessable::Job(e)),
            e @ JobError::OverMemoryBudget { .. } => Self::ImageTooLarge(TooLarge::Job(e)),
            e @ JobError::NoMemory { .. } => Self::Busy(Busy::Job(e)),
            JobError::Process(e) => e.into(),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidObjectName(_) | Self::EmptyBody | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::ObjectNotFound | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge { .. } | Self::ImageTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::RequestTimeout(_) | Self::BodyStalled(_) | Self::BodyTooSlow { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::StorageUnavailable(_) | Self::Busy(_) | Self::ProcessingDisabled => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable name of the error (`code` in the body).
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidObjectName(_) => "invalid_object_name",
            Self::ObjectNotFound => "not_found",
            Self::RouteNotFound => "no_such_route",
            Self::ProcessingDisabled => "processing_disabled",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            Self::PreconditionFailed => "precondition_failed",
            Self::EmptyBody => "empty_body",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::ImageTooLarge(_) => "image_too_large",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::BadRequest(_) => "bad_request",
            Self::UriTooLong { .. } => "uri_too_long",
            Self::HeadersTooLarge(_) => "headers_too_large",
            Self::RequestTimeout(_) => "request_timeout",
            Self::BodyStalled(_) => "body_stalled",
            Self::BodyTooSlow { .. } => "body_too_slow",
            Self::Unprocessable(_) => "unprocessable",
            Self::Busy(_) => "busy",
            Self::StorageUnavailable(_) => "storage_unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// The JSON body: `detail` for people, `code` for programs.
    fn body_json(&self) -> String {
        serde_json::json!({ "detail": self.to_string(), "code": self.code() }).to_string()
    }

    /// The full response. 412 has an empty body (it answers a conditional request, like 304).
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        match &self {
            Self::StorageUnavailable(cause) => {
                tracing::warn!(status = status.as_u16(), reason = %cause, "request failed");
            }
            Self::Internal(reason) => {
                tracing::warn!(status = status.as_u16(), reason = %reason, "request failed");
            }
            other => tracing::debug!(status = status.as_u16(), error = %other, "request refused"),
        }
        let mut response = if matches!(self, Self::PreconditionFailed) {
            Response::new(body::empty())
        } else {
            let json = self.body_json();
            let mut r = Response::new(body::full(json));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            r
        };
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match self {
            Self::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::RangeNotSatisfiable { len } => {
                if let Ok(value) = HeaderValue::try_from(format!("bytes */{len}")) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
            }
            Self::StorageUnavailable(_) | Self::Busy(_) | Self::ProcessingDisabled => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            }
            Self::Unauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("ApiKey realm=\"image-gateway\", header=\"X-API-Key\""),
                );
            }
            Self::PayloadTooLarge { .. }
            | Self::RequestTimeout(_)
            | Self::BodyStalled(_)
            | Self::BodyTooSlow { .. } => {
                // The unread rest of the body makes the connection unusable.
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match e {
            AuthError::MissingKey | AuthError::UnknownKey => ApiError::Unauthorized,
            e @ (AuthError::Scope { .. } | AuthError::Signature(_)) => ApiError::Forbidden(Forbidden::Auth(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_headers() {
        let r = ApiError::StorageUnavailable(StorageError::unavailable("db down at 10.0.0.1")).into_response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        let r = ApiError::RangeNotSatisfiable { len: 42 }.into_response();
        assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes */42");
        let r = ApiError::MethodNotAllowed { allow: "GET, HEAD" }.into_response();
        assert_eq!(r.headers()[header::ALLOW], "GET, HEAD");
        assert_eq!(ApiError::from(StorageError::NotFound).status(), 404);
        assert_eq!(ApiError::from(StorageError::other("x")).status(), 500);
    }

    /// Every error, once: what the code test walks.
    fn one_of_each() -> Vec<ApiError> {
        use std::time::Duration;
        let s = || String::from("why");
        vec![
            ApiError::InvalidObjectName(NameError::Empty),
            ApiError::ObjectNotFound,
            ApiError::RouteNotFound,
            ApiError::ProcessingDisabled,
            ApiError::MethodNotAllowed { allow: "GET" },
            ApiError::RangeNotSatisfiable { len: 1 },
            ApiError::PreconditionFailed,
            ApiError::EmptyBody,
            ApiError::PayloadTooLarge {
                limit: 1,
                what: "image",
            },
            ApiError::UnsupportedMediaType(MediaTypeError::NotJson),
            ApiError::ImageTooLarge(TooLarge::Content(Rejection::TooManyPixels(s()))),
            ApiError::Unauthorized,
            ApiError::Forbidden(Forbidden::Origin),
            ApiError::RateLimited,
            ApiError::parameter(s()),
            ApiError::UriTooLong { limit: 1 },
            ApiError::HeadersTooLarge(HeaderLimit::Fields { count: 2, limit: 1 }),
            ApiError::RequestTimeout(Duration::from_secs(1)),
            ApiError::BodyStalled(Duration::from_secs(1)),
            ApiError::BodyTooSlow {
                received: 1,
                elapsed: Duration::from_secs(1),
                rate: 1,
            },
            ApiError::Unprocessable(Unprocessable::Job(JobError::Animated(2))),
            ApiError::Busy(Busy::Uploads { limit: 1 }),
            ApiError::StorageUnavailable(StorageError::unavailable("why")),
            ApiError::Internal(Internal::Process(ProcessError::Failed(s()))),
        ]
    }

    #[test]
    fn every_code_is_distinct_in_the_body_and_listed_in_the_openapi_document() {
        let openapi = include_str!("../../docs/openapi.yaml");
        let listed = openapi
            .split_once("code:")
            .and_then(|(_, rest)| rest.split_once("enum: ["))
            .and_then(|(_, rest)| rest.split_once(']'))
            .map(|(list, _)| list.split(',').map(str::trim).collect::<Vec<_>>())
            .expect("docs/openapi.yaml lists Error.code's values");
        let errors = one_of_each();
        let mut codes: Vec<&str> = errors.iter().map(ApiError::code).collect();
        for error in &errors {
            let code = error.code();
            assert!(
                listed.contains(&code),
                "{code} is not in docs/openapi.yaml's Error.code"
            );
            if matches!(error, ApiError::PreconditionFailed) {
                continue; // answered without a body
            }
            let body: serde_json::Value = serde_json::from_str(&error.body_json()).unwrap();
            assert_eq!(body["code"], code);
            assert_eq!(body["detail"], error.to_string());
        }
        codes.push("connection_limit"); // the listener's own 503
        codes.push("not_ready"); // /readyz's 503
        codes.sort_unstable();
        let count = codes.len();
        codes.dedup();
        assert_eq!(codes.len(), count, "codes are distinct");
        let mut documented = listed.clone();
        documented.sort_unstable();
        assert_eq!(documented, codes, "the document lists exactly the codes answered");
    }

    #[test]
    fn internal_reasons_are_not_sent() {
        let text = ApiError::StorageUnavailable(StorageError::unavailable("db down at 10.0.0.1")).to_string();
        assert!(!text.contains("10.0.0.1"));
    }
}
