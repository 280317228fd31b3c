//! What a hostile client could do before issue 14, each reproduced against the running service:
//! these tests failed on the code before the fix.

use std::time::Duration;

use image_gateway::config::{Backend as BackendKind, Config, CredentialsSource, Secret};

use crate::support::{Fixture, TestServer, free_port, raw_request, within};

/// `/readyz` on the public listener names the failed checks without their reasons (which can
/// carry internal hosts, ports and paths); the admin listener keeps the reasons.
#[tokio::test]
async fn public_readiness_names_checks_without_internal_details() {
    let port = free_port(); // nothing listens there: storage is never reached
    let mut config = Config::default();
    config.storage.backend = BackendKind::S3;
    config.storage.timeout = image_gateway::config::units::HumanDuration(Duration::from_secs(1));
    let s3 = &mut config.storage.s3;
    s3.endpoint = Some(format!("http://127.0.0.1:{port}"));
    s3.bucket = "images".into();
    s3.credentials = CredentialsSource::Static;
    s3.access_key_id = Some("GK0123456789".into());
    s3.secret_access_key = Some(Secret::new("0123456789abcdef"));
    let server = TestServer::start_run(config, Default::default()).await;
    let admin = within("the admin listener explains", async {
        loop {
            let r = raw_request(server.admin, "GET", "/readyz", &[]).await;
            if r.detail().contains(&port.to_string()) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(admin.status, 503);
    let public = raw_request(server.addr, "GET", "/readyz", &[]).await;
    assert_eq!(public.status, 503);
    assert_eq!(public.detail(), "not ready: storage");
    assert_eq!(public.code(), "not_ready");
    assert!(!String::from_utf8_lossy(&public.body).contains("127.0.0.1"));
}

/// Uploads that announce 1000 bytes and send 10 neither hold every slot (at most
/// `upload.max_concurrent_per_client` per client) nor hold theirs for long (408 after
/// `upload.body_idle_timeout`). Before: 16 such uploads blocked every other upload for 60 s.
#[tokio::test]
async fn stalled_uploads_cannot_hold_the_upload_slots() {
    let fx = Fixture::with(crate::support::Backend::Fs, |c| {
        c.server.trusted_proxies = vec!["127.0.0.1".into()];
        c.upload.body_idle_timeout = image_gateway::config::units::HumanDuration(Duration::from_millis(700));
    })
    .await;
    let server = TestServer::start(&fx).await;
    let stalled_upload = |client: &'static str| {
        let addr = server.addr;
        async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "POST /v1/image/upload HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {client}\r\n\
                 Content-Type: image/png\r\nContent-Length: 1000\r\n\r\n0123456789"
            );
            tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes())
                .await
                .unwrap();
            stream
        }
    };
    let mut stalled = Vec::new();
    for _ in 0..4 {
        stalled.push(stalled_upload("192.0.2.1").await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let png = include_bytes!("../fixtures/sample.png");
    let upload_as = |client: &'static str| {
        let url = server.url("/v1/image/upload");
        async move {
            crate::support::client()
                .post(url)
                .header("content-type", "image/png")
                .header("x-forwarded-for", client)
                .body(png.to_vec())
                .send()
                .await
                .unwrap()
        }
    };
    let fifth = upload_as("192.0.2.1").await;
    assert_eq!(fifth.status(), 503, "a fifth upload of the same client waits");
    assert_eq!(
        upload_as("192.0.2.2").await.status(),
        201,
        "another client uploads meanwhile"
    );
    for mut stream in stalled {
        let mut answer = Vec::new();
        within(
            "the stalled upload is answered",
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer),
        )
        .await
        .unwrap();
        assert!(
            answer.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    assert_eq!(upload_as("192.0.2.1").await.status(), 201, "the slots came back");
}

/// A body trickled a byte at a time, never pausing as long as `upload.body_idle_timeout`, is
/// refused once its average falls under `upload.min_body_rate`, and its slot freed: before, a
/// byte every 8 s held a slot until `server.request_timeout` (60 s), and 16–20 such bodies made
/// every upload and processing request 503.
#[tokio::test]
async fn trickled_bodies_are_refused_for_their_average_rate() {
    let fx = Fixture::with(crate::support::Backend::Fs, |c| {
        c.upload.body_idle_timeout = image_gateway::config::units::HumanDuration(Duration::from_secs(2));
        c.upload.min_body_rate = image_gateway::config::units::ByteSize(1024);
        c.upload.max_concurrent = 1;
    })
    .await;
    let server = TestServer::start(&fx).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = "POST /v1/image/upload HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n";
    tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes())
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // One byte every 500 ms: never a pause of 2 s, and 2 bytes a second on average.
    let trickle = tokio::spawn(async move {
        for _ in 0..120 {
            if tokio::io::AsyncWriteExt::write_all(&mut writer, b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let mut answer = vec![0u8; 4096];
    let read = within(
        "the trickled upload is answered",
        tokio::io::AsyncReadExt::read(&mut reader, &mut answer),
    )
    .await
    .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("upload.min_body_rate"), "{answer}");
    trickle.abort();
    // Its only slot is free again.
    let png = include_bytes!("../fixtures/sample.png");
    let response = crate::support::client()
        .post(server.url("/v1/image/upload"))
        .header("content-type", "image/png")
        .body(png.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

/// The pixel limit reads every frame: a GIF with a 1×1 screen and a 65535² frame is refused
/// (413), and a top-down BMP (negative height) is accepted at its real size (before: refused as
/// 4294967286 rows high). The other formats' frames, pages and bitstreams are covered by the
/// unit tests of `content/frames.rs`.
#[tokio::test]
async fn the_pixel_limit_applies_to_every_frame() {
    let fx = Fixture::new(crate::support::Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let upload = |content_type: &'static str, body: Vec<u8>| {
        let url = server.url("/v1/image/upload");
        async move {
            let response = crate::support::client()
                .post(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let mut gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00".to_vec();
    gif.extend([0x2C, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 2, 1, 0, 0, 0x3B]);
    let (status, body) = upload("image/gif", gif).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("65535×65535"), "{body}");
    let mut bmp = include_bytes!("../fixtures/sample.bmp").to_vec();
    bmp[22..26].copy_from_slice(&(-16i32).to_le_bytes());
    let (status, body) = upload("image/bmp", bmp).await;
    assert_eq!(status, 201, "{body}");
}
