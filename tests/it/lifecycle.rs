//! Server behaviour that does not depend on the backend: h2c, aborted bodies, timeouts,
//! slow storage, header-read timeout, graceful shutdown, and real storage going away.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::StreamExt;
use image_gateway::{
    object_name::{ImageFormat, ObjectName},
    storage::{ByteRange, GetResult, ListPage, ObjectMeta, Storage, StorageError, TimeoutStorage},
};
use reqwest::header;

use crate::support::{
    Backend, BodyReader, Fixture, Garage, MISSING_OBJECT, S3Server, TestServer, client, metrics_text, pattern,
    raw_request, sample, within,
};

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let data = pattern(100_000);
    let name = fx.put(ImageFormat::Png, data.clone()).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .build()
        .unwrap();
    let response = within(
        "h2 get",
        h2.get(server.download_url(&name))
            .header(header::RANGE, "bytes=10-19")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 206);
    assert_eq!(&within("body", response.bytes()).await.unwrap()[..], &data[10..20]);
}

/// After the headers are out, a storage failure must abort the response: the fs file is cut
/// short under a running 64 MiB download, and the client sees an error, not a short body.
#[tokio::test]
async fn truncated_storage_aborts_the_response() {
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Png, pattern(64 << 20)).await;
    let response = within("get", client().get(server.download_url(&name)).send())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = BodyReader::new(response);
    body.read_at_least(1 << 20).await;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(fx.config.storage.fs.root.join(name.as_str()))
        .unwrap();
    file.set_len(2 << 20).unwrap();
    let outcome = body.finish().await;
    let received = body.received.len();
    assert!(
        outcome.is_err(),
        "the client must see an error, got a clean body of {received} bytes"
    );
    within("the failure is counted", async {
        let failed = [("reason", "storage_failed")];
        while sample(&metrics_text(&server).await, "http_responses_aborted_total", &failed) != Some(1.0) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(received < 64 << 20);
}

/// A storage double whose calls take `delay`, and whose bodies send one chunk then stall.
struct Sluggish {
    delay: Duration,
}

#[async_trait::async_trait]
impl Storage for Sluggish {
    fn backend(&self) -> &'static str {
        "sluggish"
    }
    async fn head(&self, _: &ObjectName) -> Result<ObjectMeta, StorageError> {
        tokio::time::sleep(self.delay).await;
        Ok(ObjectMeta {
            len: 1000,
            etag: "\"s\"".into(),
            last_modified: std::time::SystemTime::UNIX_EPOCH,
        })
    }
    async fn get(&self, name: &ObjectName, _: Option<ByteRange>) -> Result<GetResult, StorageError> {
        let meta = self.head(name).await?;
        let body = futures_util::stream::iter([Ok(Bytes::from(vec![1u8; 100]))]).chain(futures_util::stream::pending());
        Ok(GetResult {
            meta,
            range: ByteRange { start: 0, end: 999 },
            body: Box::pin(body),
        })
    }
    async fn put(&self, _: &ObjectName, _: Bytes) -> Result<(), StorageError> {
        tokio::time::sleep(self.delay).await;
        Ok(())
    }
    async fn delete(&self, _: &ObjectName) -> Result<(), StorageError> {
        Ok(())
    }
    async fn list(&self, _: Option<&str>, _: usize) -> Result<ListPage, StorageError> {
        Ok(ListPage::default())
    }
    async fn check(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

#[tokio::test]
async fn slow_storage_is_503_and_stalled_bodies_abort() {
    let timeout = Duration::from_millis(300);
    let slow: Arc<dyn Storage> = Arc::new(TimeoutStorage::new(
        Arc::new(Sluggish {
            delay: Duration::from_secs(30),
        }),
        timeout,
    ));
    let server = TestServer::start_with(image_gateway::Config::default(), slow).await;
    let response = raw_request(server.addr, "GET", MISSING_OBJECT, &[]).await;
    assert_eq!(response.status, 503);
    assert_eq!(response.header("retry-after"), Some("5"));
    drop(server);

    let stalling: Arc<dyn Storage> = Arc::new(TimeoutStorage::new(
        Arc::new(Sluggish { delay: Duration::ZERO }),
        timeout,
    ));
    let server = TestServer::start_with(image_gateway::Config::default(), stalling).await;
    let response = within("get", client().get(server.url(MISSING_OBJECT)).send())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = within("stalled body", response.bytes()).await;
    assert!(
        body.is_err(),
        "a stalled body ends in an error, not a hang or a short success"
    );
}

/// Shutdown: readiness drops, new connections are refused, and an in-flight download
/// finishes completely before `serve` returns.
#[tokio::test]
async fn graceful_shutdown_drains_in_flight_downloads() {
    let fx = Fixture::with(Backend::Fs, |c| {
        c.shutdown.grace = image_gateway::config::units::HumanDuration(Duration::from_secs(1))
    })
    .await;
    let mut server = TestServer::start(&fx).await;
    server.wait_for("/readyz").await;
    let data = pattern(32 << 20);
    let name = fx.put(ImageFormat::Png, data.clone()).await;
    let response = within("get", client().get(server.download_url(&name)).send())
        .await
        .unwrap();
    let mut body = BodyReader::new(response);
    body.read_at_least(1).await;

    let (addr, admin) = (server.addr, server.admin);
    let stopped = server.begin_stop();
    // Readiness drops at once, on both listeners, while the public one still accepts.
    within("readiness drops", async {
        while raw_request(admin, "GET", "/readyz", &[]).await.status != 503 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let during_grace = raw_request(addr, "GET", "/readyz", &[]).await;
    assert_eq!(during_grace.status, 503, "still accepting during the grace period");
    assert!(during_grace.detail().contains("shutdown"), "{}", during_grace.detail());
    // After the grace period the listener closes; the admin listener keeps answering.
    within("listener closes", async {
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(raw_request(admin, "GET", "/livez", &[]).await.status, 200);
    body.finish().await.expect("the in-flight download completes");
    assert!(body.received == data, "the in-flight download completed byte-exact");
    within("serve returns", stopped).await.unwrap();
}

/// During the shutdown grace the public listener still serves, and every HTTP/1.1 answer says
/// `Connection: close`: keep-alive clients (a proxy's pool, kube-proxy's established flows) move
/// to another replica before the listener closes instead of racing its close.
#[tokio::test]
async fn answers_during_the_shutdown_grace_close_their_connection() {
    let fx = Fixture::with(Backend::Fs, |c| {
        c.shutdown.grace = image_gateway::config::units::HumanDuration(Duration::from_secs(5))
    })
    .await;
    let mut server = TestServer::start(&fx).await;
    server.wait_for("/readyz").await;
    let name = fx.put(ImageFormat::Png, pattern(4096)).await;
    let (url, admin, http) = (server.download_url(&name), server.admin, client());
    let before = within("get", http.get(&url).send()).await.unwrap();
    assert_eq!(before.status(), 200);
    assert_eq!(
        before.headers().get("connection"),
        None,
        "keep-alive before the shutdown"
    );

    let stopped = server.begin_stop();
    within("readiness drops", async {
        while raw_request(admin, "GET", "/readyz", &[]).await.status != 503 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let during = within("get", http.get(&url).send()).await.unwrap();
    assert_eq!(during.status(), 200, "still served during the grace");
    assert_eq!(
        during.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "the answer closes its keep-alive connection"
    );
    within("serve returns", stopped).await.unwrap();
}

/// Garage killed: a download in flight aborts visibly, new requests get 503 + Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_killed_mid_download() {
    let garage = tokio::task::spawn_blocking(Garage::start).await.unwrap();
    let mut config = garage.config();
    let seeding = crate::support::setup_storage(&config).await;
    let name = ObjectName::generate(ImageFormat::Png);
    within("put", seeding.put(&name, Bytes::from(pattern(64 << 20))))
        .await
        .unwrap();
    config.storage.timeout = image_gateway::config::units::HumanDuration(Duration::from_secs(2));
    let storage = crate::support::backend(&config).await;
    let server = TestServer::start_with(config, storage).await;

    let response = within("get", client().get(server.download_url(&name)).send())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = BodyReader::new(response);
    body.read_at_least(1 << 20).await;
    tokio::task::spawn_blocking(move || garage.kill()).await.unwrap();
    let outcome = body.finish().await;
    assert!(
        outcome.is_err(),
        "aborted visibly, not a clean short body ({} bytes)",
        body.received.len()
    );
    let response = raw_request(server.addr, "GET", &format!("/v1/image/download/{name}"), &[]).await;
    assert_eq!(response.status, 503);
    assert_eq!(response.header("retry-after"), Some("5"));
}
