//! Uploads (`POST /v1/image/upload`): an image of every format is stored and served back
//! byte-exact; one that is not what it claims (its Content-Type, its bytes, its size, the pixels
//! of any of its frames) is refused with a clear 4xx and nothing is stored; and however slowly
//! clients send, the limits keep uploads from holding the server (`upload.max_bytes`,
//! `upload.max_pixels`, `upload.max_concurrent` and per client, `upload.body_idle_timeout`,
//! `upload.min_body_rate`, `server.request_timeout`), each slot freed for the next upload.
//!
//! SVG's own checks: `svg.rs`; crafted upload requests in the bad-request table:
//! `bad_requests.rs`; uploads while storage is down: `storage_outages.rs`.

use std::time::{Duration, Instant};

use futures_util::stream;
use image_gateway::config::units::HumanDuration;
use reqwest::{Body, StatusCode, header};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::{
    Backend, Counting, Fixture, PNG, RawResponse, TestServer, client, response_detail, samples, upload, within,
};

async fn upload_then_download_every_format(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    for (format, content_type, bytes) in samples() {
        let response = within(
            "upload",
            client()
                .post(server.url("/v1/image/upload"))
                .header(header::CONTENT_TYPE, content_type)
                .body(bytes.to_vec())
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), 201, "{format:?}");
        let location = response.headers()[header::LOCATION].to_str().unwrap().to_owned();
        let json: serde_json::Value = within("json", response.json()).await.unwrap();
        let name = json["object_name"].as_str().unwrap();
        let parsed = image_gateway::object_name::ObjectName::parse(name).expect("a valid generated name");
        assert_eq!(parsed.format(), format);
        assert_eq!(json["content_type"], content_type);
        assert_eq!(json["size"], bytes.len());
        assert_eq!(json["upload_url"], server.download_url(&name));
        assert_eq!(location, server.download_url(&name));

        let download = within("download", client().get(&location).send()).await.unwrap();
        assert_eq!(download.status(), 200);
        assert_eq!(download.headers()[header::CONTENT_TYPE], content_type);
        assert_eq!(&within("body", download.bytes()).await.unwrap()[..], bytes);
    }
}

async fn content_type_aliases_and_parameters(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    let jpeg = include_bytes!("../fixtures/sample.jpg").to_vec();
    let svg = include_bytes!("../fixtures/sample.svg").to_vec();
    for (content_type, body, ext) in [
        ("IMAGE/JPEG", jpeg.clone(), ".jpg"),
        ("image/jpg", jpeg, ".jpg"),
        ("image/svg+xml; charset=utf-8", svg, ".svg"),
    ] {
        let response = within(
            "upload",
            client()
                .post(server.url("/v1/image/upload"))
                .header(header::CONTENT_TYPE, content_type)
                .body(body)
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), 201, "{content_type}");
        let json: serde_json::Value = within("json", response.json()).await.unwrap();
        assert!(json["object_name"].as_str().unwrap().ends_with(ext));
    }
}

async fn rejections_store_nothing(backend: Backend) {
    let fx = Fixture::with(backend, |c| {
        c.upload.max_bytes = image_gateway::config::units::ByteSize(4096)
    })
    .await;
    let counting = Counting::new(fx.backend());
    let server = TestServer::start_with(fx.config.clone(), counting.clone()).await;
    let png = include_bytes!("../fixtures/sample.png").to_vec();
    let big_png = {
        let mut v = png.clone();
        v.resize(5000, 0);
        v
    };
    let cases: Vec<(Option<&str>, Vec<u8>, u16, &str)> = vec![
        (None, png.clone(), 415, "Content-Type header is required"),
        (Some("text/plain"), png.clone(), 415, "unsupported Content-Type"),
        (
            Some("application/octet-stream"),
            png.clone(),
            415,
            "unsupported Content-Type",
        ),
        (Some("image/heic"), png.clone(), 415, "unsupported Content-Type"),
        (Some("image/avif"), png.clone(), 415, "not an AVIF image"),
        (Some("image/jpeg"), png.clone(), 415, "not a JPEG image"),
        (Some("image/png"), b"GIF89a not a png".to_vec(), 415, "not a PNG image"),
        (Some("image/png"), Vec::new(), 400, "empty"),
        (Some("image/png"), big_png.clone(), 413, "4096 bytes"),
        (
            Some("image/svg+xml"),
            b"<svg><g></svg>".to_vec(),
            415,
            "not well-formed",
        ),
        (
            Some("image/svg+xml"),
            b"<html xmlns=\"http://www.w3.org/1999/xhtml\"/>".to_vec(),
            415,
            "not <svg>",
        ),
        (
            Some("image/svg+xml"),
            b"<!DOCTYPE svg [<!ENTITY x \"y\">]><svg/>".to_vec(),
            415,
            "declares entities",
        ),
    ];
    for (content_type, body, status, detail) in cases {
        let mut request = client().post(server.url("/v1/image/upload")).body(body);
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        let response = within("upload", request.send()).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{content_type:?} → {detail}");
        let json: serde_json::Value = within("json", response.json()).await.unwrap();
        let text = json["detail"].as_str().unwrap();
        assert!(text.contains(detail), "{text:?} should mention {detail:?}");
    }
    // A chunked body without Content-Length is cut off as soon as it passes the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..100).map(|_| Ok(vec![0u8; 1024])).collect();
    let response = within(
        "chunked upload",
        client()
            .post(server.url("/v1/image/upload"))
            .header(header::CONTENT_TYPE, "image/png")
            .body(Body::wrap_stream(stream::iter(chunks)))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(counting.calls(), 0, "nothing was stored");
    let page = within("list", fx.setup.list(None, 10)).await.unwrap();
    assert!(page.objects.is_empty(), "storage is still empty: {:?}", page.objects);
}

async fn safer_uploads(backend: Backend) {
    let fx = Fixture::with(backend, |c| c.upload.max_pixels = 383).await;
    let server = TestServer::start(&fx).await;
    // The 24×16 sample is 384 pixels: one too many.
    let response = upload(&server, None, "image/png", PNG.to_vec()).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(response_detail(response).await.contains("24×16"));
    let mut bomb = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bomb.extend(65_535u32.to_be_bytes());
    bomb.extend(65_535u32.to_be_bytes());
    bomb.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(upload(&server, None, "image/png", bomb).await.status(), 413);
    let script = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(document.cookie)</script></svg>";
    let response = upload(&server, None, "image/svg+xml", script.to_vec()).await;
    assert_eq!(response.status(), 415);
    assert!(response_detail(response).await.contains("<script>"));
    let handler = b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>";
    assert_eq!(
        upload(&server, None, "image/svg+xml", handler.to_vec()).await.status(),
        415
    );
    let inert = include_bytes!("../fixtures/sample.svg").to_vec();
    assert_eq!(upload(&server, None, "image/svg+xml", inert).await.status(), 201);
    let page = within("list", fx.setup.list(None, 10)).await.unwrap();
    assert_eq!(page.objects.len(), 1, "only the inert SVG was stored");
}

crate::on_every_backend!(
    upload_then_download_every_format,
    content_type_aliases_and_parameters,
    rejections_store_nothing,
    safer_uploads,
);

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

/// `upload.max_concurrent`: a second upload while one is in progress gets 503 + Retry-After;
/// `server.request_timeout`: an upload whose body stalls gets 408. Nothing is stored by either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_concurrency_and_request_timeout() {
    let fx = Fixture::with(Backend::Fs, |c| {
        c.upload.max_concurrent = 1;
        c.server.request_timeout = HumanDuration(Duration::from_millis(700));
    })
    .await;
    let server = TestServer::start(&fx).await;
    let head = format!(
        "POST /v1/image/upload HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
        PNG.len()
    );
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&PNG[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let second = upload(&server, None, "image/png", PNG.to_vec()).await;
    assert_eq!(second.status(), 503);
    assert!(second.headers().contains_key("retry-after"));
    let json: serde_json::Value = second.json().await.unwrap();
    assert!(json["detail"].as_str().unwrap().contains("uploads"), "{json}");

    let started = Instant::now();
    let mut answer = Vec::new();
    within("408", slow.read_to_end(&mut answer)).await.unwrap();
    let answer = RawResponse::parse(&answer).expect("an answer");
    assert_eq!(answer.status, 408, "{:?}", String::from_utf8_lossy(&answer.body));
    assert!(answer.detail().contains("not completed"), "{}", answer.detail());
    assert!(started.elapsed() < Duration::from_secs(3));

    // The slot is free again, and a normal upload works.
    let ok = upload(&server, None, "image/png", PNG.to_vec()).await;
    assert_eq!(ok.status(), 201);
    assert_eq!(fx.setup.list(None, 10).await.unwrap().objects.len(), 1);
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
