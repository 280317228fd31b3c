//! `POST /v1/image/{operation}` over HTTP on every backend: results stored, inline or as bytes,
//! chained from a stored object, and refused clearly when the input or parameters are bad.

use reqwest::header;

use crate::support::{Backend, Fixture, TestServer, client, within};

const PNG: &[u8] = include_bytes!("../fixtures/sample.png");
const JPEG: &[u8] = include_bytes!("../fixtures/sample.jpg");

async fn post(
    server: &TestServer,
    target: &str,
    content_type: &str,
    body: &[u8],
    accept: Option<&str>,
) -> reqwest::Response {
    let mut request = client()
        .post(server.url(target))
        .header(header::CONTENT_TYPE, content_type)
        .body(body.to_vec());
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    within("process", request.send()).await.unwrap()
}

fn dimensions(bytes: &[u8]) -> (u32, u32, image::ImageFormat) {
    let format = image::guess_format(bytes).unwrap();
    let decoded = image::load_from_memory(bytes).unwrap();
    (decoded.width(), decoded.height(), format)
}

async fn resize_answers_in_three_forms(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;

    // Stored: 201 with the page's fields, and the result downloads at its upload_url.
    let response = post(&server, "/v1/image/resize?width=12", "image/png", PNG, None).await;
    assert_eq!(response.status(), 201);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!((json["width"].as_u64(), json["height"].as_u64()), (Some(12), Some(8)));
    assert_eq!(json["content_type"], "image/png");
    let name = json["object_name"].as_str().unwrap().to_owned();
    assert!(name.ends_with(".png"));
    let stored = client().get(json["upload_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(stored.status(), 200);
    let bytes = stored.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, json["size"].as_u64().unwrap());
    assert_eq!(dimensions(&bytes), (12, 8, image::ImageFormat::Png));

    // The bytes themselves for `Accept: image/*`, converted to JPEG at a quality.
    let response = post(
        &server,
        "/v1/image/resize?height=8&format=jpeg&quality=60",
        "image/png",
        PNG,
        Some("image/*"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "image/jpeg");
    assert_eq!(response.headers()[header::CONTENT_DISPOSITION], "inline");
    assert_eq!(
        dimensions(&response.bytes().await.unwrap()),
        (12, 8, image::ImageFormat::Jpeg)
    );

    // Chained: a stored object as the source, no body sent again.
    let response = post(
        &server,
        &format!("/v1/image/resize?source={name}&width=6&fit=fill&height=6"),
        "image/png",
        b"",
        Some("image/png"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        dimensions(&response.bytes().await.unwrap()),
        (6, 6, image::ImageFormat::Png)
    );

    // A JPEG input stays JPEG; cover crops to the box.
    let response = post(
        &server,
        "/v1/image/resize?width=10&height=10&fit=cover",
        "image/jpeg",
        JPEG,
        Some("image/jpeg"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        dimensions(&response.bytes().await.unwrap()),
        (10, 10, image::ImageFormat::Jpeg)
    );
}

async fn bad_input_is_refused_clearly(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    let cases: [(&str, &str, &[u8], u16, &str); 8] = [
        ("/v1/image/resize?width=12&colour=red", "image/png", PNG, 400, "colour"),
        ("/v1/image/resize?width=10", "image/png", b"0", 415, "not a PNG image"),
        ("/v1/image/resize?width=0", "image/png", PNG, 400, "`width`"),
        (
            "/v1/image/resize?width=10&format=heic",
            "image/png",
            PNG,
            400,
            "`format`",
        ),
        (
            "/v1/image/resize?width=10&quality=101",
            "image/png",
            PNG,
            400,
            "`quality`",
        ),
        ("/v1/image/resize?width=10&fit=squash", "image/png", PNG, 400, "`fit`"),
        (
            "/v1/image/resize?width=60000&enlarge=true",
            "image/png",
            PNG,
            400,
            "max_output_pixels",
        ),
        (
            "/v1/image/resize?width=10&source=nope.png",
            "image/png",
            b"",
            400,
            "invalid object name",
        ),
    ];
    for (target, content_type, body, status, detail) in cases {
        let response = post(&server, target, content_type, body, None).await;
        assert_eq!(response.status().as_u16(), status, "{target}");
        let json: serde_json::Value = response.json().await.unwrap();
        let text = json["detail"].as_str().unwrap();
        assert!(text.contains(detail), "{target}: {text}");
    }
    // A PNG whose pixel data is garbage: 422; a header claiming 10^10 pixels: 413.
    let mut corrupt = PNG.to_vec();
    let middle = corrupt.len() / 2;
    corrupt[middle..middle + 16].fill(0xAB);
    let response = post(&server, "/v1/image/resize?width=10", "image/png", &corrupt, None).await;
    assert_eq!(response.status(), 422, "{}", response.text().await.unwrap());
    let mut bomb = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bomb.extend(100_000u32.to_be_bytes());
    bomb.extend(100_000u32.to_be_bytes());
    bomb.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
    bomb.extend([0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]);
    let response = post(&server, "/v1/image/resize?width=10", "image/png", &bomb, None).await;
    assert_eq!(response.status(), 413);
    // Nothing was stored by any of them.
    let listed = within("list", fx.storage.list(None, 100)).await.unwrap();
    assert!(listed.objects.is_empty(), "{:?}", listed.objects);
}

crate::on_every_backend!(resize_answers_in_three_forms, bad_input_is_refused_clearly);

/// With `processing.store_results = false` the result comes inline as base64 (200).
#[tokio::test]
async fn results_inline_when_not_stored() {
    let fx = Fixture::with(Backend::Fs, |c| c.processing.store_results = false).await;
    let server = TestServer::start(&fx).await;
    let response = post(&server, "/v1/image/resize?width=12&format=webp", "image/png", PNG, None).await;
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["content_type"], "image/webp");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(json["image"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes.len() as u64, json["size"].as_u64().unwrap());
    assert_eq!(dimensions(&bytes), (12, 8, image::ImageFormat::WebP));
}
