//! CORS for browser apps: `cors.allowed_origins` (exact origins, or `*`). Preflights are
//! answered before authentication (browsers send no key with them); every response to an
//! allowed origin carries `Access-Control-Allow-Origin` and exposes the headers apps need.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};

use crate::http::{
    body::{self, Body},
    error::{ApiError, Forbidden},
};

const EXPOSE: &str = "Content-Length, Content-Range, Content-Type, Content-Disposition, ETag, Last-Modified, \
                      Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset";
const ALLOW_HEADERS: &str = "X-API-Key, Content-Type, Range, If-Match, If-None-Match, If-Modified-Since, \
                             If-Unmodified-Since, If-Range";
const MAX_AGE_SECS: u32 = 600;

#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Vec<String>,
    any: bool,
}

impl Cors {
    pub fn new(allowed_origins: &[String]) -> Cors {
        Cors {
            any: allowed_origins.iter().any(|o| o == "*"),
            origins: allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect(),
        }
    }

    fn enabled(&self) -> bool {
        self.any || !self.origins.is_empty()
    }

    /// The `Access-Control-Allow-Origin` value for this request's `Origin`, if it is allowed.
    fn allow_origin(&self, request: &HeaderMap) -> Option<HeaderValue> {
        let origin = request.get(header::ORIGIN)?;
        if self.any {
            return Some(HeaderValue::from_static("*"));
        }
        let text = origin.to_str().ok()?;
        self.origins.iter().any(|o| o == text).then(|| origin.clone())
    }

    /// `Some(response)` when the request is a CORS preflight (OPTIONS with `Origin` and
    /// `Access-Control-Request-Method`) for a known route that answers the methods `allow`.
    pub fn preflight(&self, method: &Method, allow: &'static str, request: &HeaderMap) -> Option<Response<Body>> {
        if method != Method::OPTIONS
            || !request.contains_key(header::ORIGIN)
            || !request.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let Some(origin) = self.allow_origin(request).filter(|_| self.enabled()) else {
            return Some(ApiError::Forbidden(Forbidden::Origin).into_response());
        };
        let mut response = Response::new(body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(allow));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(MAX_AGE_SECS));
        h.insert(
            header::VARY,
            HeaderValue::from_static("Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
        );
        Some(response)
    }

    /// Adds the CORS headers of an actual (non-preflight) response.
    pub fn decorate(&self, request: &HeaderMap, response: &mut HeaderMap) {
        if !self.enabled() {
            return;
        }
        if !self.any {
            response.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        if let Some(origin) = self.allow_origin(request) {
            response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            response.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(origin: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, origin.parse().unwrap());
        h.insert(header::ACCESS_CONTROL_REQUEST_METHOD, "GET".parse().unwrap());
        h
    }

    #[test]
    fn preflight_and_decoration() {
        let cors = Cors::new(&["https://app.example".into()]);
        let route = "GET, HEAD";
        let ok = cors
            .preflight(&Method::OPTIONS, route, &request("https://app.example"))
            .unwrap();
        assert_eq!(ok.status(), 204);
        assert_eq!(ok.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
        assert_eq!(ok.headers()[header::ACCESS_CONTROL_ALLOW_METHODS], "GET, HEAD");
        let refused = cors
            .preflight(&Method::OPTIONS, route, &request("https://evil.example"))
            .unwrap();
        assert_eq!(refused.status(), 403);
        assert!(
            cors.preflight(&Method::GET, route, &request("https://app.example"))
                .is_none()
        );

        let mut response = HeaderMap::new();
        cors.decorate(&request("https://app.example"), &mut response);
        assert_eq!(response[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example");
        assert!(
            response[header::ACCESS_CONTROL_EXPOSE_HEADERS]
                .to_str()
                .unwrap()
                .contains("X-RateLimit-Reset")
        );
        let mut response = HeaderMap::new();
        cors.decorate(&request("https://evil.example"), &mut response);
        assert!(!response.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
        assert_eq!(response[header::VARY], "Origin");
    }

    #[test]
    fn disabled_by_default() {
        let cors = Cors::default();
        let route = "POST";
        let refused = cors
            .preflight(&Method::OPTIONS, route, &request("https://app.example"))
            .unwrap();
        assert_eq!(refused.status(), 403);
        let mut response = HeaderMap::new();
        cors.decorate(&request("https://app.example"), &mut response);
        assert!(response.is_empty());
    }
}
