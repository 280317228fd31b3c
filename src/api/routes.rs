//! The typed route table: a path is parsed once into a [`Route`], for both listeners (the
//! public one serves the API and the probes, the admin one the probes and `/metrics`).

use http::Method;

use super::process::Operation;
use crate::{
    http::error::ApiError,
    object_name::{DOWNLOAD_PREFIX, NameError, ObjectName},
};

pub const UPLOAD_PATH: &str = "/v1/image/upload";

/// What follows a download path to name the image's variants.
const VARIANTS_SUFFIX: &str = "/variants";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET|HEAD /v1/image/download/{object_name}`, the name percent-decoded and validated;
    /// a bad one is kept as its error (400 after the method check), so the request still
    /// counts and logs as a download.
    Download(Result<ObjectName, NameError>),
    /// `DELETE /v1/image/download/{object_name}/variants`: the image's rendered variants
    /// dropped (from storage and this server's memory).
    Variants(Result<ObjectName, NameError>),
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

impl Route {
    /// Matches a path, once per request; `None` is a 404.
    pub fn parse(path: &str) -> Option<Self> {
        if let Some(encoded_name) = path.strip_prefix(DOWNLOAD_PREFIX) {
            if let Some(encoded_name) = encoded_name.strip_suffix(VARIANTS_SUFFIX) {
                return Some(Self::Variants(ObjectName::parse_encoded(encoded_name)));
            }
            return Some(Self::Download(ObjectName::parse_encoded(encoded_name)));
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
            Self::Download(_) => "download",
            Self::Variants(_) => "variants",
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
            Self::Download(_) => "/v1/image/download/{object_name}",
            Self::Variants(_) => "/v1/image/download/{object_name}/variants",
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
            Self::Variants(_) => "DELETE",
            _ => "GET, HEAD",
        }
    }

    /// 405 unless `method` is one this route answers.
    pub fn check_method(&self, method: &Method) -> Result<(), ApiError> {
        let allowed = match self {
            Self::Upload | Self::Process(_) => method == Method::POST,
            Self::Variants(_) => method == Method::DELETE,
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
        let name = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6.png";
        assert_eq!(
            Route::parse(&format!("/v1/image/download/{name}")),
            Some(Route::Download(Ok(ObjectName::parse(name).unwrap())))
        );
        assert_eq!(
            Route::parse("/v1/image/download/a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6%2Epng"),
            Some(Route::Download(Ok(ObjectName::parse(name).unwrap()))),
            "percent-decoded once"
        );
        assert_eq!(
            Route::parse("/v1/image/download/abc.png"),
            Some(Route::Download(Err(NameError::BadId)))
        );
        assert_eq!(
            Route::parse("/v1/image/download/"),
            Some(Route::Download(Err(NameError::Empty)))
        );
        assert_eq!(
            Route::parse(&format!("/v1/image/download/{name}/variants")),
            Some(Route::Variants(Ok(ObjectName::parse(name).unwrap())))
        );
        assert_eq!(
            Route::parse("/v1/image/download/abc.png/variants"),
            Some(Route::Variants(Err(NameError::BadId)))
        );
        assert_eq!(Route::parse("/v1/image/upload"), Some(Route::Upload));
        assert_eq!(Route::parse("/v1/image/upload/"), None);
        assert_eq!(Route::parse("/v1/image/download"), None);
        assert_eq!(Route::parse("/"), None);
    }

    #[test]
    fn methods() {
        let download = Route::Download(Err(NameError::Empty));
        assert!(download.check_method(&Method::HEAD).is_ok());
        assert!(download.check_method(&Method::DELETE).is_err());
        assert!(Route::Upload.check_method(&Method::GET).is_err());
        let variants = Route::Variants(Err(NameError::Empty));
        assert!(variants.check_method(&Method::DELETE).is_ok());
        assert!(variants.check_method(&Method::GET).is_err());
    }
}
