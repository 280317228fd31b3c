//! `POST /v1/image/upload` against the real server, on both backends.

use futures_util::stream;
use reqwest::{Body, header};

use crate::support::{Backend, Counting, Fixture, TestServer, client, samples, within};

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

crate::on_every_backend!(
    upload_then_download_every_format,
    content_type_aliases_and_parameters,
    rejections_store_nothing,
);
