//! The typed route table: a path is parsed once into a [`Route`], for both listeners (the
//! public one serves the API and the probes, the admin one the probes and `/metrics`).

use http::Method;

use super::process::Operation;
use crate::{http::error::ApiError, object_name::DOWNLOAD_PREFIX};

pub const UPLOAD_PATH: &str = "/v1/image/upload";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET|HEAD /v1/image/download/{object_name}`; the segment is still percent-encoded
    /// and unvalidated (the handler answers 400 for a bad name).
    Download { encoded_name: &'a str },
    /// `POST /v1/image/upload`
    Upload,
    /// `POST /v1/image/{operation}` (`resize`, `crop`, `filter/blur`, …)
    Process(Operation),
    /// `GET|HEAD /livez`
    Livez,
    /// `GET|HEAD /readyz`
    Readyz,
    /// `GET|HEAD /openapi.yaml`
    OpenApi,
    /// `GET|HEAD /metrics` (admin listener only)
    Metrics,
}

impl<'a> Route<'a> {
    /// Matches a path; `None` is a 404.
    pub fn parse(path: &'a str) -> Option<Self> {
        if let Some(encoded_name) = path.strip_prefix(DOWNLOAD_PREFIX) {
            return Some(Self::Download { encoded_name });
        }
        match path {
            UPLOAD_PATH => Some(Self::Upload),
            "/livez" => Some(Self::Livez),
            "/readyz" => Some(Self::Readyz),
            "/openapi.yaml" => Some(Self::OpenApi),
            "/metrics" => Some(Self::Metrics),
            _ => path
                .strip_prefix("/v1/image/")
                .and_then(Operation::parse)
                .map(Self::Process),
        }
    }

    /// A bounded label for logs and metrics (never the raw path).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Download { .. } => "download",
            Self::Upload => "upload",
            Self::Process(operation) => operation.name(),
            Self::Livez => "livez",
            Self::Readyz => "readyz",
            Self::OpenApi => "openapi",
            Self::Metrics => "metrics",
        }
    }

    /// The route as a template, for the `http.route` span attribute.
    pub fn template(&self) -> &'static str {
        match self {
            Self::Download { .. } => "/v1/image/download/{object_name}",
            Self::Upload => UPLOAD_PATH,
            Self::Process(_) => "/v1/image/{operation}",
            Self::Livez => "/livez",
            Self::Readyz => "/readyz",
            Self::OpenApi => "/openapi.yaml",
            Self::Metrics => "/metrics",
        }
    }

    /// Whether the public listener serves this route (`/metrics` is on the admin listener only).
    pub fn is_public(&self) -> bool {
        !matches!(self, Self::Metrics)
    }

    /// Whether the admin listener serves this route (probes and `/metrics`).
    pub fn is_admin(&self) -> bool {
        matches!(self, Self::Livez | Self::Readyz | Self::Metrics)
    }

    /// The methods this route answers, as sent in `Allow`.
    pub fn allow(&self) -> &'static str {
        match self {
            Self::Upload | Self::Process(_) => "POST",
            _ => "GET, HEAD",
        }
    }

    /// 405 unless `method` is one this route answers.
    pub fn check_method(&self, method: &Method) -> Result<(), ApiError> {
        let allowed = match self {
            Self::Upload | Self::Process(_) => method == Method::POST,
            _ => method == Method::GET || method == Method::HEAD,
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::MethodNotAllowed { allow: self.allow() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        assert_eq!(
            Route::parse("/v1/image/download/abc.png"),
            Some(Route::Download {
                encoded_name: "abc.png"
            })
        );
        assert_eq!(
            Route::parse("/v1/image/download/"),
            Some(Route::Download { encoded_name: "" })
        );
        assert_eq!(Route::parse("/v1/image/upload"), Some(Route::Upload));
        assert_eq!(Route::parse("/v1/image/upload/"), None);
        assert_eq!(Route::parse("/v1/image/download"), None);
        assert_eq!(Route::parse("/"), None);
    }

    #[test]
    fn methods() {
        let download = Route::Download { encoded_name: "x" };
        assert!(download.check_method(&Method::HEAD).is_ok());
        assert!(download.check_method(&Method::DELETE).is_err());
        assert!(Route::Upload.check_method(&Method::GET).is_err());
    }
}
