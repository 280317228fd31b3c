//! AVIF: made from any decodable format (variants, `format=auto` for clients that name
//! `image/avif`, processing results), checked against its source by an independent decoder
//! (Pillow's libavif), stored and served like any format, and refused clearly as a processing
//! input (the gateway has no AVIF decoder).

use image::{DynamicImage, RgbaImage};

use crate::{
    process_ops::{card, encoded},
    support::{Backend, Fixture, TestServer, client, detail, post, raw_request, within},
};
use image_gateway::object_name::ImageFormat;

/// `avif` decoded by Pillow (libavif), as RGBA.
fn decoded_by_pillow(avif: &[u8]) -> RgbaImage {
    let dir = crate::support::scratch_dir();
    let path = dir.path().join("image.avif");
    std::fs::write(&path, avif).unwrap();
    let program = "import sys, io\nfrom PIL import Image\nim = Image.open(sys.argv[1])\nassert im.format == 'AVIF', im.format\nbuf = io.BytesIO()\nim.convert('RGBA').save(buf, 'PNG')\nsys.stdout.buffer.write(buf.getvalue())\n";
    let png = crate::support::python([std::ffi::OsStr::new("-c"), program.as_ref(), path.as_os_str()]);
    image::load_from_memory(&png).unwrap().to_rgba8()
}

/// Mean absolute difference per channel of two images of one size.
fn mean_difference(a: &RgbaImage, b: &RgbaImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.as_raw().len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variants_become_avif_for_clients_that_name_it_and_keep_the_picture() {
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let photo = encoded(&DynamicImage::ImageRgb8(card(640, 480)), image::ImageFormat::Png);
    let name = fx.put(ImageFormat::Png, photo).await;
    let target = format!("/v1/image/download/{name}?w=320&format=avif");
    let avif = raw_request(server.addr, "GET", &target, &[]).await;
    assert_eq!(avif.status, 200, "{}", avif.detail());
    assert_eq!(avif.header("content-type"), Some("image/avif"));
    let stem = name.as_str().trim_end_matches(".png");
    assert_eq!(
        avif.header("content-disposition"),
        Some(format!("inline; filename=\"{stem}_w320.avif\"").as_str())
    );
    // The same variant as PNG, lossless: the AVIF must look like it.
    let png = raw_request(
        server.addr,
        "GET",
        &format!("/v1/image/download/{name}?w=320&format=png"),
        &[],
    )
    .await;
    let reference = image::load_from_memory(&png.body).unwrap().to_rgba8();
    let seen = decoded_by_pillow(&avif.body);
    assert_eq!(seen.dimensions(), (320, 240));
    let difference = mean_difference(&seen, &reference);
    eprintln!(
        "AVIF q63 speed 9, 320×240: {} bytes (PNG {}), mean difference {difference:.2}",
        avif.body.len(),
        png.body.len()
    );
    assert!(
        difference < 3.0,
        "the AVIF differs from the picture by {difference:.2} per channel"
    );
    assert!(
        avif.body.len() * 8 < png.body.len(),
        "{} bytes of AVIF",
        avif.body.len()
    );

    // `format=auto`: AVIF first, then WebP, then the source's format; one ETag per format.
    let auto = format!("/v1/image/download/{name}?w=320&format=auto");
    let chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
    let mut etags = Vec::new();
    for (accept, content_type) in [
        (chrome, "image/avif"),
        ("image/webp,*/*", "image/webp"),
        ("*/*", "image/png"),
    ] {
        let answer = raw_request(server.addr, "GET", &auto, &[("Accept", accept)]).await;
        assert_eq!(answer.status, 200, "{accept}");
        assert_eq!(answer.header("content-type"), Some(content_type), "{accept}");
        assert_eq!(answer.header("vary"), Some("Accept"), "{accept}");
        etags.push(answer.header("etag").unwrap().to_owned());
    }
    etags.dedup();
    assert_eq!(etags.len(), 3, "{etags:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_makes_avif_at_the_quality_asked() {
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let photo = encoded(&DynamicImage::ImageRgb8(card(400, 300)), image::ImageFormat::Png);
    let mut sizes = Vec::new();
    for quality in [30, 90] {
        let (status, body) = post(
            &server,
            &format!("/v1/image/convert?to_format=avif&quality={quality}"),
            "image/png",
            &photo,
            "image/avif",
        )
        .await;
        assert_eq!(status, 200, "{}", detail(&body));
        assert_eq!(&body[4..12], b"ftypavif");
        assert_eq!(decoded_by_pillow(&body).dimensions(), (400, 300));
        sizes.push(body.len());
    }
    assert!(sizes[0] < sizes[1], "quality 30 is smaller than 90: {sizes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_avif_is_stored_and_served_but_refused_as_a_processing_source() {
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let avif = include_bytes!("../fixtures/sample.avif");
    let uploaded = within(
        "upload",
        client()
            .post(server.url("/v1/image/upload"))
            .header("content-type", "image/avif")
            .body(avif.to_vec())
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(uploaded.status(), 201);
    let json: serde_json::Value = uploaded.json().await.unwrap();
    let name = json["object_name"].as_str().unwrap().to_owned();
    assert!(name.ends_with(".avif"), "{name}");
    let download = raw_request(server.addr, "GET", &format!("/v1/image/download/{name}"), &[]).await;
    assert_eq!((download.status, download.body.as_slice()), (200, &avif[..]));
    assert_eq!(download.header("content-type"), Some("image/avif"));

    let (status, body) = post(
        &server,
        &format!("/v1/image/resize?source={name}&width=10"),
        "",
        b"",
        "application/json",
    )
    .await;
    assert_eq!(status, 422, "{}", detail(&body));
    assert!(detail(&body).contains("not decoded"), "{}", detail(&body));
    let variant = raw_request(server.addr, "GET", &format!("/v1/image/download/{name}?w=16"), &[]).await;
    assert_eq!(variant.status, 422);
    assert!(variant.detail().contains("not decoded"), "{}", variant.detail());

    // A PNG sent as AVIF is refused, as any mislabelled body.
    let png = include_bytes!("../fixtures/sample.png");
    let (status, body) = post(&server, "/v1/image/upload", "image/avif", png, "application/json").await;
    assert_eq!(status, 415, "{}", detail(&body));
}
