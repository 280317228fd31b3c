//! When storage fails, the gateway says so at once and recovers by itself: storage refused,
//! gone, frozen or slower than `storage.timeout` makes new requests 503 + `Retry-After` within
//! that timeout (uploads as well as downloads) instead of hanging; a download whose storage
//! fails after its headers are out aborts visibly, never ending short but clean; a body merely
//! slow (each chunk within the timeout) completes byte-exact; and once storage is back,
//! downloads recover without restarting the gateway.
//!
//! Readiness and the `storage_reachable` gauge during an outage: `observability.rs`; the
//! storage contract every backend keeps: `conformance.rs`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::StreamExt;
use image_gateway::{
    config::units::HumanDuration,
    object_name::{ImageFormat, ObjectName},
    storage::{ByteRange, GetResult, ListPage, ObjectMeta, Storage, StorageError, TimeoutStorage},
};
use reqwest::header;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::support::*;

async fn storage_outage_is_503(backend: Backend) {
    let fx = Fixture::with(backend, |config| {
        if backend.is_s3() {
            // Nothing listens here: connection refused.
            config.storage.s3.endpoint = Some(format!("http://127.0.0.1:{}", crate::support::free_port()));
        }
    })
    .await;
    let server = TestServer::start(&fx).await;
    if !backend.is_s3() {
        // The volume disappears (e.g. an unmounted disk).
        std::fs::remove_dir_all(&fx.config.storage.fs.root).unwrap();
    }
    let response = raw_request(server.addr, "GET", MISSING_OBJECT, &[]).await;
    assert_eq!(response.status, 503);
    assert_eq!(response.header("retry-after"), Some("5"));
    assert!(response.detail().contains("unavailable"));
    let upload = within(
        "upload",
        client()
            .post(server.url("/v1/image/upload"))
            .header(header::CONTENT_TYPE, "image/png")
            .body(include_bytes!("../fixtures/sample.png").to_vec())
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(upload.status(), 503);
    assert_eq!(upload.headers()[header::RETRY_AFTER], "5");
}

crate::on_every_backend!(storage_outage_is_503);
crate::on_cached_backends!(storage_outage_is_503);

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

/// A loopback TCP proxy that forwards bytes, each 16 KiB read after `delay_ms`, or holds them
/// while frozen.
struct Proxy {
    port: u16,
    frozen: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (f, d) = (frozen.clone(), delay_ms.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let (f, d) = (f.clone(), d.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::join!(pump(ri, wo, f.clone(), d.clone()), pump(ro, wi, f, d));
                });
            }
        });
        Proxy { port, frozen, delay_ms }
    }
}

async fn pump(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    frozen: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
) {
    let mut buf = vec![0; 16 << 10];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(delay_ms.load(Ordering::SeqCst))).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Garage frozen behind a proxy: a new request is 503 at `storage.timeout`, a download in
/// flight aborts at the timeout, and the request is gone from `http_requests_in_flight`.
/// Garage merely slow (every 16 KiB late, the whole body taking twice `storage.timeout`): the
/// download completes byte-exact, since the timeout bounds the wait between chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_storage_times_out_and_frees_the_request() {
    let garage = Garage::shared();
    let port: u16 = garage.endpoint().rsplit(':').next().unwrap().parse().unwrap();
    let proxy = Proxy::start(port).await;
    // Objects go in directly; the gateway reaches the same bucket and prefix through the proxy.
    let direct = garage.config();
    let seed = crate::support::setup_storage(&direct).await;
    let data = pattern(16 << 20);
    let name = ObjectName::generate(ImageFormat::Png);
    within("put", seed.put(&name, Bytes::from(data.clone()))).await.unwrap();
    let slow = ObjectName::generate(ImageFormat::Png);
    let slow_data = pattern(512 << 10);
    within("put", seed.put(&slow, Bytes::from(slow_data.clone())))
        .await
        .unwrap();
    let mut config = direct;
    config.storage.s3.endpoint = Some(format!("http://127.0.0.1:{}", proxy.port));
    config.storage.timeout = HumanDuration(Duration::from_millis(800));
    let storage = crate::support::backend(&config).await;
    let server = TestServer::start_with(config, storage).await;

    proxy.frozen.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let r = raw_request(server.addr, "GET", &format!("/v1/image/download/{name}"), &[]).await;
    let waited = started.elapsed();
    eprintln!("frozen storage: 503 after {waited:?} (storage.timeout 800ms)");
    assert_eq!(r.status, 503, "{:?}", String::from_utf8_lossy(&r.body));
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    proxy.frozen.store(false, Ordering::SeqCst);

    let response = within("get", client().get(server.download_url(&name)).send())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = BodyReader::new(response);
    body.read_at_least(64 << 10).await;
    proxy.frozen.store(true, Ordering::SeqCst);
    let outcome = body.finish().await;
    assert!(outcome.is_err(), "a frozen body aborts ({} bytes)", body.received.len());
    within("in-flight back to 0", async {
        while sample(&metrics_text(&server).await, "http_requests_in_flight", &[]) != Some(0.0) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    proxy.frozen.store(false, Ordering::SeqCst);

    proxy.delay_ms.store(50, Ordering::SeqCst);
    let started = Instant::now();
    let response = within("slow get", client().get(server.download_url(&slow)).send())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = within("slow body", response.bytes())
        .await
        .expect("a slow body completes");
    let took = started.elapsed();
    eprintln!(
        "slow storage: {} KiB in {took:?} (storage.timeout 800ms)",
        body.len() >> 10
    );
    assert!(body[..] == slow_data[..], "byte-exact");
    assert!(
        took > Duration::from_millis(800),
        "the body really outlasted the timeout: {took:?}"
    );
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

async fn status_of(addr: std::net::SocketAddr, path: &str) -> u16 {
    raw_request(addr, "GET", path, &[]).await.status
}

/// Garage killed while 8 clients download: in-flight downloads abort visibly, new requests get
/// 503 + Retry-After within `storage.timeout`, `storage_reachable` turns 0 (readiness stays: it
/// is this pod's, not storage's); Garage back on the same port: downloads recover without
/// restarting the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_outage_under_load_and_recovery() {
    let garage = Arc::new(tokio::task::spawn_blocking(Garage::start).await.unwrap());
    let mut config = garage.config();
    config.storage.timeout = HumanDuration(Duration::from_secs(1));
    let storage = crate::support::backend(&config).await;
    let data = Arc::new(pattern(2 << 20));
    let name = ObjectName::generate(ImageFormat::Png);
    let setup = crate::support::setup_storage(&config).await;
    within("put", setup.put(&name, Bytes::from(data.to_vec())))
        .await
        .unwrap();
    let server = TestServer::start_with(config, storage).await;
    server.wait_for("/readyz").await;

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients = load(
        server.download_url(&name),
        None,
        data.clone(),
        8,
        stop.clone(),
        tally.clone(),
    );
    within("some downloads", async {
        while tally.get(&tally.complete) < 20 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    let killed = Instant::now();
    let g = garage.clone();
    tokio::task::spawn_blocking(move || g.kill()).await.unwrap();
    let first_503 = within("503 after the kill", async {
        loop {
            let r = raw_request(server.addr, "GET", &format!("/v1/image/download/{name}"), &[]).await;
            if r.status == 503 {
                assert_eq!(r.header("retry-after"), Some("5"));
                return killed.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(first_503 < Duration::from_secs(4), "503 only after {first_503:?}");
    until_storage_reachable(&server, 0.0).await;
    assert_eq!(
        status_of(server.admin, "/readyz").await,
        200,
        "readiness is this pod's own"
    );
    let unavailable_during_outage = tally.get(&tally.unavailable);

    let g = garage.clone();
    tokio::task::spawn_blocking(move || g.restart()).await.unwrap();
    let restarted = Instant::now();
    let complete_before = tally.get(&tally.complete);
    within("downloads recover", async {
        while tally.get(&tally.complete) < complete_before + 20 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    server.wait_for("/readyz").await;
    let recovered = restarted.elapsed();
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        within("client stops", c).await.unwrap();
    }
    eprintln!("garage outage: first 503 after {first_503:?}; recovered {recovered:?} after restart; {tally:?}");
    assert_eq!(
        tally.get(&tally.short),
        0,
        "no short body passed as complete: {tally:?}"
    );
    assert_eq!(
        tally.get(&tally.other),
        0,
        "only 200, 503 or a visible abort: {tally:?}"
    );
    assert!(unavailable_during_outage > 0, "{tally:?}");
}
