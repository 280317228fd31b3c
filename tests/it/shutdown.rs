//! Shutdown loses no request: readiness drops at once on both listeners so that load balancers
//! stop sending, the public listener keeps serving through `shutdown.grace` with every answer
//! closing its keep-alive connection, then closes, and downloads in flight finish byte-exact
//! before the server returns.
//!
//! The binary itself under SIGTERM and load: `cli.rs`.

use std::time::Duration;

use image_gateway::object_name::ImageFormat;

use crate::support::{Backend, BodyReader, Fixture, TestServer, client, pattern, raw_request, within};

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
