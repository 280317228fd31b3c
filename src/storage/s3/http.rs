//! The HTTP client under the S3 SDK and the lean read path: hyper with a bounded read buffer.
//!
//! The SDK's default client lets hyper grow each connection's read buffer to ~400 KiB; with
//! hundreds of large downloads in flight that buffer, not the gateway, set the memory use
//! (170 MB at 256 concurrent 10 MB downloads). Capping it keeps a download's footprint near
//! one chunk while the kernel's socket buffers keep throughput up.

use std::time::Duration;

use aws_smithy_runtime_api::client::{
    http::{HttpConnector, HttpConnectorFuture, SharedHttpClient, SharedHttpConnector, http_client_fn},
    orchestrator::HttpRequest,
    result::ConnectorError,
};
use aws_smithy_types::body::SdkBody;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector as TcpConnector},
    rt::{TokioExecutor, TokioTimer},
};

/// Largest read buffer per storage connection (hyper's minimum is 8 KiB). Each body chunk we
/// forward pins the buffer it was read into until the client has it, so this sets most of the
/// memory per download: with 256 concurrent 10 MB downloads and a full 64 MiB cache, 64 KiB
/// peaked at 127.5–133.9 MiB RSS, 48 KiB at 115.6–116.8 MiB, for 0–7 % of 10 MB throughput
/// (32 KiB: the same memory, 12 % slower at c=256; docs/benchmarks.md).
const MAX_READ_BUFFER: usize = 48 * 1024;

/// The hyper client both read paths share (the SDK's and `reader.rs`), so they share one pool.
pub type HyperClient = Client<HttpsConnector<TcpConnector>, SdkBody>;

/// An S3 HTTP client: pooled (idle connections kept `pool_idle_timeout`), TCP_NODELAY, TLS
/// with the system's roots, `connect_timeout` on the TCP connect.
pub fn client(pool_idle_timeout: Duration, connect_timeout: Duration) -> HyperClient {
    let mut tcp = TcpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    let tls = HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
        .unwrap_or_else(|e| {
            // No usable system roots: plain http still works, https fails per request with the cause.
            tracing::warn!(error = %e, "no TLS root certificates found; https storage endpoints will fail");
            HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder_with_provider(rustls::crypto::aws_lc_rs::default_provider().into())
                    .with_safe_default_protocol_versions()
                    .expect("aws-lc-rs supports the default TLS versions")
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        });
    let https = tls.https_or_http().enable_http1().wrap_connector(tcp);
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(pool_idle_timeout)
        .http1_max_buf_size(MAX_READ_BUFFER);
    if pool_idle_timeout.is_zero() {
        // No pool at all: with only a zero timeout, a connection coming back while a request
        // waits for a new one is still handed over, and reused.
        builder.pool_max_idle_per_host(0);
    }
    builder.build(https)
}

/// `client` as the SDK's HTTP client.
pub fn for_sdk(client: HyperClient) -> SharedHttpClient {
    let connector = SharedHttpConnector::new(Connector { client });
    http_client_fn(move |_, _| connector.clone())
}

#[derive(Clone)]
struct Connector {
    client: HyperClient,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("s3::http::Connector")
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            // Refused, reset or a pooled connection closed under us: transient, retried once.
            let response = client
                .request(request)
                .await
                .map_err(|e| ConnectorError::io(e.into()))?;
            let response = response.map(SdkBody::from_body_1_x);
            response
                .try_into()
                .map_err(|e| ConnectorError::other(Box::new(e), None))
        })
    }
}
