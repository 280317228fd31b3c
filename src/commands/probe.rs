//! `image-gateway probe URL`: one HTTP GET, successful when the answer has the expected status.
//!
//! The container image has no shell and no curl (distroless), so this is what a Helm test hook,
//! a Docker `HEALTHCHECK` or an init container waiting for the gateway runs. Plain HTTP only:
//! it checks a gateway from inside the cluster, where TLS ends at the ingress.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a probe failed; each names the URL.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Not something this command can ask (a usage error).
    #[error("`{0}` is not an http:// URL with a host (e.g. http://image-gateway.images.svc/readyz)")]
    Url(String),
    /// No answer within the probe's time.
    #[error("no answer from {0} within {1:?}")]
    Timeout(String, Duration),
    /// The connection failed (refused, unreachable, no such host).
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    /// The connection broke, or the answer was not HTTP.
    #[error("{0}: {1}")]
    Http(String, hyper::Error),
    /// An answer with another status than the expected one.
    #[error("{url} answered {got}, expected {expected}")]
    Status {
        /// The URL probed.
        url: String,
        /// The status it answered.
        got: StatusCode,
        /// The status that counts as success.
        expected: StatusCode,
    },
}

/// GETs `url` (within `timeout`, connecting included); `Ok` with the status when it is `expected`.
pub async fn probe(url: &str, expected: StatusCode, timeout: Duration) -> Result<StatusCode, ProbeError> {
    let uri: Uri = url.parse().map_err(|_| ProbeError::Url(url.to_owned()))?;
    let (Some("http"), Some(authority)) = (uri.scheme_str(), uri.authority().cloned()) else {
        return Err(ProbeError::Url(url.to_owned()));
    };
    let got = tokio::time::timeout(timeout, get(url, &uri, &authority))
        .await
        .map_err(|_| ProbeError::Timeout(url.to_owned(), timeout))??;
    if got == expected {
        Ok(got)
    } else {
        Err(ProbeError::Status {
            url: url.to_owned(),
            got,
            expected,
        })
    }
}

async fn get(url: &str, uri: &Uri, authority: &http::uri::Authority) -> Result<StatusCode, ProbeError> {
    let port = authority.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((authority.host(), port))
        .await
        .map_err(|e| ProbeError::Connect(url.to_owned(), e))?;
    let http = |e| ProbeError::Http(url.to_owned(), e);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::get(path)
        .header(header::HOST, authority.as_str())
        .header(
            header::USER_AGENT,
            concat!("image-gateway-probe/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|_| ProbeError::Url(url.to_owned()))?;
    let response = sender.send_request(request).await.map_err(http)?;
    Ok(response.status())
}
