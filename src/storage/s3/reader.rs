//! The lean read path: GET and HEAD signed with SigV4 here (aws-sigv4 derives the key and
//! computes the signature; the signing key is cached per day and key pair) and sent on the
//! same hyper client, and so the same connection pool, as the SDK's calls. The SDK's
//! per-request pipeline (endpoint rules, auth-scheme resolution, config assembly,
//! interceptors) was ~27 % of the gateway's CPU per 50 KB download; put, list, delete and the
//! bucket check keep the SDK.
//!
//! SECURITY: the request carries only what we build: the key (prefix + validated name) and a
//! `Range` we computed. Credentials are read for every request (a rotated key applies at once)
//! and never logged.

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use aws_credential_types::{
    Credentials,
    provider::{ProvideCredentials, SharedCredentialsProvider},
};
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

use super::{http::HyperClient, quoted, status_error};
use crate::config::S3Settings;
use crate::storage::{ByteRange, ByteStream, GetResult, ObjectMeta, StorageError};

/// SHA-256 of an empty payload: GET and HEAD send none.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// S3's URI encoding of a key: everything but unreserved characters and `/`.
const KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Credentials from the default chain are kept until this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Error bodies read to tell a missing bucket from a missing key.
const MAX_ERROR_BODY: usize = 8 * 1024;

/// Where requests go: `scheme://authority` and the path before the key (`/bucket` in path
/// style).
struct Target {
    scheme: &'static str,
    authority: String,
    path_prefix: String,
}

impl Target {
    fn new(config: &S3Settings) -> Target {
        let (scheme, authority, base) = match &config.endpoint {
            Some(endpoint) => (endpoint.scheme, endpoint.authority.clone(), endpoint.path.clone()),
            None => ("https", format!("s3.{}.amazonaws.com", config.region), String::new()),
        };
        let bucket = &config.bucket;
        if config.force_path_style {
            Target {
                scheme,
                authority,
                path_prefix: format!("{base}/{bucket}"),
            }
        } else {
            Target {
                scheme,
                authority: format!("{bucket}.{authority}"),
                path_prefix: base,
            }
        }
    }
}

/// A signing key and what it was derived from.
struct SigningKey {
    day: String,
    access_key_id: String,
    secret: String,
    key: Vec<u8>,
}

/// Signs and sends GET and HEAD requests.
pub(super) struct Reader {
    client: HyperClient,
    target: Target,
    region: String,
    credentials: Option<SharedCredentialsProvider>,
    /// For the default chain (network sources, expiring keys): the last credentials it gave.
    cached_credentials: Option<Mutex<Option<Credentials>>>,
    signing_key: Mutex<Option<SigningKey>>,
}

impl Reader {
    /// `credentials` signs every request; `cache_credentials` keeps what it gives until
    /// shortly before it expires (for the AWS default chain, whose sources are network calls).
    pub(super) fn new(
        client: HyperClient,
        config: &S3Settings,
        credentials: Option<SharedCredentialsProvider>,
        cache_credentials: bool,
    ) -> Reader {
        Reader {
            client,
            target: Target::new(config),
            region: config.region.clone(),
            credentials,
            cached_credentials: cache_credentials.then(|| Mutex::new(None)),
            signing_key: Mutex::new(None),
        }
    }

    /// `HEAD` of the object at `key` (the prefixed name: `S3Storage::key`).
    pub(super) async fn head(&self, key: &str) -> Result<ObjectMeta, StorageError> {
        let response = self.send(Method::HEAD, key, None).await?;
        let response = check(response).await?;
        Ok(meta(response.headers())?.0)
    }

    /// `GET` of the object at `key`, or of `range` of it.
    pub(super) async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetResult, StorageError> {
        let response = self.send(Method::GET, key, range).await?;
        let response = check(response).await?;
        let (meta, range) = meta(response.headers())?;
        let body: ByteStream = Box::pin(
            response
                .into_body()
                .into_data_stream()
                .map_err(|e| StorageError::unavailable("storage body failed").because(e)),
        );
        Ok(GetResult { meta, range, body })
    }

    /// Sends the request, once more after a transport failure or a 5xx (the SDK's standard
    /// retry did the same with two attempts).
    async fn send(
        &self,
        method: Method,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<Response<Incoming>, StorageError> {
        let mut attempts = 2;
        loop {
            attempts -= 1;
            let request = self.signed(method.clone(), key, range).await?;
            match self.client.request(request).await {
                Ok(response) if attempts > 0 && response.status().is_server_error() => {}
                Ok(response) => return Ok(response),
                Err(_) if attempts > 0 => {}
                Err(e) => return Err(StorageError::unavailable("storage request failed").because(e)),
            }
        }
    }

    /// The request for the object at `key`, signed with SigV4 in the `Authorization` header.
    async fn signed(
        &self,
        method: Method,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<Request<SdkBody>, StorageError> {
        let credentials = self.credentials().await?;
        let now = SystemTime::now();
        let amz_date = amz_date(now);
        let key = utf8_percent_encode(key, KEY).to_string();
        let path = format!("{}/{key}", self.target.path_prefix);
        let range = range.map(|r| format!("bytes={}-{}", r.start, r.end));
        let host = self.target.authority.as_str();
        // Canonical headers: lower-case names in order.
        let mut headers = vec![("host", host)];
        if let Some(range) = &range {
            headers.push(("range", range));
        }
        headers.push(("x-amz-content-sha256", EMPTY_SHA256));
        headers.push(("x-amz-date", &amz_date));
        if let Some(token) = credentials.session_token() {
            headers.push(("x-amz-security-token", token));
        }
        let (canonical, signed_headers) = canonical_request(method.as_str(), &path, &headers);
        let scope = format!("{}/{}/s3/aws4_request", &amz_date[..8], self.region);
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let signature = self.with_signing_key(&credentials, &amz_date[..8], now, |key| {
            aws_sigv4::sign::v4::calculate_signature(key, string_to_sign.as_bytes())
        });
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            credentials.access_key_id()
        );
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}://{host}{path}", self.target.scheme));
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        builder
            .header(header::AUTHORIZATION, authorization)
            .body(SdkBody::empty())
            .map_err(|e| StorageError::other("cannot build the storage request").because(e))
    }

    /// The key pair to sign with now.
    async fn credentials(&self) -> Result<Credentials, StorageError> {
        let unavailable = |why: String| StorageError::unavailable("cannot sign the request").because(why);
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| unavailable("no credentials are configured".into()))?;
        if let Some(cached) = &self.cached_credentials {
            let current = cached.lock().unwrap_or_else(PoisonError::into_inner).clone();
            let fresh = |c: &Credentials| {
                c.expiry()
                    .is_none_or(|at| at > SystemTime::now() + REFRESH_BEFORE_EXPIRY)
            };
            if let Some(credentials) = current.filter(fresh) {
                return Ok(credentials);
            }
        }
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if let Some(cached) = &self.cached_credentials {
            *cached.lock().unwrap_or_else(PoisonError::into_inner) = Some(credentials.clone());
        }
        Ok(credentials)
    }

    /// Runs `sign` with the signing key of `day` for `credentials`, derived once per day and
    /// key pair (four HMACs saved per request).
    fn with_signing_key<T>(
        &self,
        credentials: &Credentials,
        day: &str,
        now: SystemTime,
        sign: impl FnOnce(&[u8]) -> T,
    ) -> T {
        let mut cached = self.signing_key.lock().unwrap_or_else(PoisonError::into_inner);
        let valid = cached.as_ref().is_some_and(|k| {
            k.day == day
                && k.access_key_id == credentials.access_key_id()
                && k.secret == credentials.secret_access_key()
        });
        if !valid {
            let key =
                aws_sigv4::sign::v4::generate_signing_key(credentials.secret_access_key(), now, &self.region, "s3");
            *cached = Some(SigningKey {
                day: day.to_owned(),
                access_key_id: credentials.access_key_id().to_owned(),
                secret: credentials.secret_access_key().to_owned(),
                key: key.as_ref().to_vec(),
            });
        }
        sign(cached.as_ref().map(|k| k.key.as_slice()).unwrap_or_default())
    }
}

/// `20261201T003000Z`.
fn amz_date(now: SystemTime) -> String {
    let rfc3339 = aws_smithy_types::DateTime::from(now)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default();
    // 2026-12-01T00:30:00Z, possibly with fractional seconds.
    let whole = rfc3339.split('.').next().unwrap_or_default().trim_end_matches('Z');
    format!("{}Z", whole.replace(['-', ':'], ""))
}

/// The canonical request of a bodiless request without a query, and its signed-header list.
fn canonical_request(method: &str, path: &str, headers: &[(&str, &str)]) -> (String, String) {
    let signed_headers = headers.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(";");
    let mut canonical = format!("{method}\n{path}\n\n");
    for (name, value) in headers {
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(value.trim());
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(&signed_headers);
    canonical.push('\n');
    canonical.push_str(EMPTY_SHA256);
    (canonical, signed_headers)
}

/// The response when it is a success, else its error (as the SDK path classifies them).
async fn check(response: Response<Incoming>) -> Result<Response<Incoming>, StorageError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let code = if status == StatusCode::NOT_FOUND {
        error_code(response.into_body()).await
    } else {
        None
    };
    Err(status_error(status.as_u16(), code.as_deref(), || {
        StorageError::other(format!("storage answered {status}"))
    }))
}

/// The `<Code>` of an S3 XML error body, read up to `MAX_ERROR_BODY` bytes.
async fn error_code(body: Incoming) -> Option<String> {
    let limited = http_body_util::Limited::new(body, MAX_ERROR_BODY);
    let bytes: Bytes = limited.collect().await.ok()?.to_bytes();
    let text = std::str::from_utf8(&bytes).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let end = start + text[start..].find("</Code>")?;
    Some(text[start..end].to_owned())
}

/// The object's metadata from a response's headers, and the range the body holds: the one in
/// `Content-Range` for a 206, the whole object for a 200 (a server may ignore `Range`).
fn meta(headers: &HeaderMap) -> Result<(ObjectMeta, ByteRange), StorageError> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let (range, len) = match text(header::CONTENT_RANGE) {
        Some(value) => {
            content_range(value).ok_or_else(|| StorageError::other(format!("unexpected Content-Range {value}")))?
        }
        None => {
            let len: u64 = text(header::CONTENT_LENGTH).and_then(|v| v.parse().ok()).unwrap_or(0);
            let whole = ByteRange {
                start: 0,
                end: len.saturating_sub(1),
            };
            (whole, len)
        }
    };
    let last_modified = text(header::LAST_MODIFIED)
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let meta = ObjectMeta {
        len,
        etag: quoted(text(header::ETAG)),
        last_modified,
    };
    Ok((meta, range))
}

/// `bytes a-b/total` as (a..=b, total).
fn content_range(value: &str) -> Option<(ByteRange, u64)> {
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let (start, end, total): (u64, u64, u64) = (start.parse().ok()?, end.parse().ok()?, total.parse().ok()?);
    (start <= end && end < total).then_some((ByteRange { start, end }, total))
}

#[cfg(test)]
mod tests {
    use aws_sigv4::{
        http_request::{
            PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode, sign,
        },
        sign::v4::SigningParams,
    };
    use aws_smithy_runtime_api::client::identity::Identity;

    use super::*;
    use crate::config::{ConfigError, CredentialsSource, S3Config};

    /// `[storage.s3]` with `endpoint`, as the settings validate it.
    fn settings(endpoint: Option<&str>, path_style: bool) -> Result<S3Settings, ConfigError> {
        S3Settings::try_from(&S3Config {
            endpoint: endpoint.map(str::to_owned),
            bucket: "images".into(),
            region: "eu-west-3".into(),
            force_path_style: path_style,
            credentials: CredentialsSource::Default,
            ..S3Config::default()
        })
    }

    /// Our signature equals aws-sigv4's own `sign` for the same request, with and without a
    /// range and a session token: the independent reference.
    #[tokio::test]
    async fn signatures_match_aws_sigv4() {
        let client = super::super::http::client(Duration::from_secs(1), Duration::from_secs(1));
        for (token, range) in [
            (None, None),
            (Some("session-token"), Some(ByteRange { start: 5, end: 99 })),
        ] {
            let credentials = Credentials::new(
                "AKIDEXAMPLE",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                token.map(str::to_owned),
                None,
                "test",
            );
            let provider = SharedCredentialsProvider::new(credentials.clone());
            let reader = Reader::new(
                client.clone(),
                &settings(Some("http://127.0.0.1:9000"), true).unwrap(),
                Some(provider),
                false,
            );
            let request = reader
                .signed(
                    Method::GET,
                    "gallery/2026 +x/0123456789abcdef0123456789abcdef.png",
                    range,
                )
                .await
                .unwrap();
            let ours = request.headers()[header::AUTHORIZATION].to_str().unwrap().to_owned();
            assert!(
                request
                    .uri()
                    .to_string()
                    .starts_with("http://127.0.0.1:9000/images/gallery/2026%20%2Bx/0123")
            );

            let amz_date = request.headers()["x-amz-date"].to_str().unwrap();
            let time = SystemTime::UNIX_EPOCH
                + Duration::from_secs(
                    aws_smithy_types::DateTime::from_str(
                        &format!(
                            "{}-{}-{}T{}:{}:{}Z",
                            &amz_date[0..4],
                            &amz_date[4..6],
                            &amz_date[6..8],
                            &amz_date[9..11],
                            &amz_date[11..13],
                            &amz_date[13..15]
                        ),
                        aws_smithy_types::date_time::Format::DateTime,
                    )
                    .unwrap()
                    .secs() as u64,
                );
            let mut settings = SigningSettings::default();
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
            let identity: Identity = credentials.into();
            let params = SigningParams::builder()
                .identity(&identity)
                .region("eu-west-3")
                .name("s3")
                .time(time)
                .settings(settings)
                .build()
                .unwrap()
                .into();
            let headers: Vec<(&str, &str)> = request
                .headers()
                .iter()
                .filter(|(name, _)| *name != header::AUTHORIZATION && *name != "x-amz-content-sha256")
                .map(|(name, value)| (name.as_str(), value.to_str().unwrap()))
                .collect();
            let signable = SignableRequest::new(
                "GET",
                request.uri().to_string(),
                headers.into_iter(),
                SignableBody::Bytes(b""),
            )
            .unwrap();
            let (instructions, _) = sign(signable, &params).unwrap().into_parts();
            let (reference, _) = instructions.into_parts();
            let reference = reference
                .iter()
                .find(|h| h.name() == "authorization")
                .unwrap()
                .value()
                .to_owned();
            assert_eq!(ours, reference, "token={token:?} range={range:?}");
        }
    }

    #[test]
    fn targets_in_both_styles_and_on_aws() {
        let path = Target::new(&settings(Some("https://minio.example:9000/base/"), true).unwrap());
        assert_eq!(
            (path.scheme, path.authority.as_str(), path.path_prefix.as_str()),
            ("https", "minio.example:9000", "/base/images")
        );
        let virtual_host = Target::new(&settings(Some("http://s3.example"), false).unwrap());
        assert_eq!(
            (virtual_host.authority.as_str(), virtual_host.path_prefix.as_str()),
            ("images.s3.example", "")
        );
        let aws = Target::new(&settings(None, false).unwrap());
        assert_eq!(
            (aws.scheme, aws.authority.as_str()),
            ("https", "images.s3.eu-west-3.amazonaws.com")
        );
        // An endpoint the reader could not use never reaches it: the settings refuse it.
        assert!(settings(Some("ftp://x"), true).is_err());
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            content_range("bytes 0-9/100"),
            Some((ByteRange { start: 0, end: 9 }, 100))
        );
        assert_eq!(content_range("bytes 0-9/*"), None);
        assert_eq!(content_range("bytes 9-0/100"), None);
        assert_eq!(content_range("bytes 0-100/100"), None);
        let mut whole = HeaderMap::new();
        whole.insert(header::CONTENT_LENGTH, "42".parse().unwrap());
        let (meta, range) = meta(&whole).unwrap();
        assert_eq!(
            (meta.len, range),
            (42, ByteRange { start: 0, end: 41 }),
            "a 200 holds the whole object"
        );
    }

    #[test]
    fn amz_dates() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_549_000_250);
        assert_eq!(amz_date(t), "20251201T003000Z");
    }
}
