//! Faults with real processes and real sockets: Garage killed under load and brought back,
//! Garage frozen behind a loopback proxy, clients that abort by the thousand, and the
//! configurable limits (connections, concurrent uploads, request time).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use image_gateway::{
    config::units::HumanDuration,
    object_name::{ImageFormat, ObjectName},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::support::*;

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
