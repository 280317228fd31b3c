//! `POST /v1/image/{operation}` over HTTP on every backend: results stored, inline or as bytes,
//! chained from a stored object, and refused clearly when the input or parameters are bad.

use reqwest::header;

use crate::support::{Backend, Fixture, JPEG, PNG, TestServer, client, dimensions, post_response, within};

async fn resize_answers_in_three_forms(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;

    // Stored: 201 with the page's fields, and the result downloads at its upload_url.
    let response = post_response(&server, "/v1/image/resize?width=12", "image/png", PNG, None).await;
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
    let response = post_response(
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
    let response = post_response(
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
    let response = post_response(
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
        let response = post_response(&server, target, content_type, body, None).await;
        assert_eq!(response.status().as_u16(), status, "{target}");
        let json: serde_json::Value = response.json().await.unwrap();
        let text = json["detail"].as_str().unwrap();
        assert!(text.contains(detail), "{target}: {text}");
    }
    // A PNG whose pixel data is garbage: 422; a header claiming 10^10 pixels: 413.
    let mut corrupt = PNG.to_vec();
    let middle = corrupt.len() / 2;
    corrupt[middle..middle + 16].fill(0xAB);
    let response = post_response(&server, "/v1/image/resize?width=10", "image/png", &corrupt, None).await;
    assert_eq!(response.status(), 422, "{}", response.text().await.unwrap());
    let mut bomb = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bomb.extend(100_000u32.to_be_bytes());
    bomb.extend(100_000u32.to_be_bytes());
    bomb.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
    bomb.extend([0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]);
    let response = post_response(&server, "/v1/image/resize?width=10", "image/png", &bomb, None).await;
    assert_eq!(response.status(), 413);
    // Nothing was stored by any of them.
    let listed = within("list", fx.setup.list(None, 100)).await.unwrap();
    assert!(listed.objects.is_empty(), "{:?}", listed.objects);
}

crate::on_every_backend!(
    resize_answers_in_three_forms,
    bad_input_is_refused_clearly,
    every_operation_does_what_it_says,
    filters_and_adjustments,
    metadata_is_extracted_and_gps_flagged,
    dominant_colors_with_their_shares
);

/// With `processing.store_results = false` the result comes inline as base64 (200).
#[tokio::test]
async fn results_inline_when_not_stored() {
    let fx = Fixture::with(Backend::Fs, |c| c.processing.store_results = false).await;
    let server = TestServer::start(&fx).await;
    let response = post_response(&server, "/v1/image/resize?width=12&format=webp", "image/png", PNG, None).await;
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

/// A 64×32 JPEG of four solid quadrants (red, green / blue, white) with an EXIF Orientation.
fn oriented_jpeg(orientation: u16) -> Vec<u8> {
    let image = image::RgbImage::from_fn(64, 32, |x, y| {
        image::Rgb(match (x < 32, y < 16) {
            (true, true) => [255, 0, 0],
            (false, true) => [0, 255, 0],
            (true, false) => [0, 0, 255],
            (false, false) => [255, 255, 255],
        })
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .encode_image(&image)
        .unwrap();
    // APP1 "Exif\0\0", a little-endian TIFF header and one IFD entry: Orientation (0x0112).
    let mut exif = b"Exif\0\0II*\0\x08\0\0\0\x01\0".to_vec();
    exif.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0]);
    exif.extend(orientation.to_le_bytes());
    exif.extend([0, 0, 0, 0, 0, 0]);
    let mut segment = vec![0xFF, 0xE1];
    segment.extend(((exif.len() + 2) as u16).to_be_bytes());
    segment.extend(exif);
    jpeg.splice(2..2, segment);
    jpeg
}

/// Every EXIF orientation is applied before anything else: the result is upright, with the
/// quadrant each orientation puts top-left (the table of the EXIF specification, not the
/// decoder's code) and width and height swapped for 5–8.
#[tokio::test]
async fn exif_orientation_is_applied() {
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let (red, green, blue, white) = ([255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]);
    // Orientation → (top-left colour, top-right colour, swapped).
    let expected = [
        (1, red, green, false),
        (2, green, red, false),
        (3, white, blue, false),
        (4, blue, white, false),
        (5, red, blue, true),
        (6, blue, red, true),
        (7, white, green, true),
        (8, green, white, true),
    ];
    for (orientation, top_left, top_right, swapped) in expected {
        let response = post_response(
            &server,
            "/v1/image/resize?format=png",
            "image/jpeg",
            &oriented_jpeg(orientation),
            Some("image/png"),
        )
        .await;
        assert_eq!(response.status(), 200, "orientation {orientation}");
        let result = image::load_from_memory(&response.bytes().await.unwrap())
            .unwrap()
            .to_rgb8();
        let (w, h) = result.dimensions();
        assert_eq!(
            (w, h),
            if swapped { (32, 64) } else { (64, 32) },
            "orientation {orientation}"
        );
        let near = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(x, y)| x.abs_diff(y) < 40);
        assert!(
            near(result.get_pixel(4, 4).0, top_left),
            "orientation {orientation}: {:?}",
            result.get_pixel(4, 4)
        );
        assert!(
            near(result.get_pixel(w - 5, 4).0, top_right),
            "orientation {orientation}: {:?}",
            result.get_pixel(w - 5, 4)
        );
    }
}

/// Metadata is not carried over: a JPEG with EXIF comes out without an EXIF segment.
#[tokio::test]
async fn metadata_is_stripped() {
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let input = oriented_jpeg(6);
    assert!(input.windows(4).any(|w| w == b"Exif"));
    let response = post_response(
        &server,
        "/v1/image/resize?width=16",
        "image/jpeg",
        &input,
        Some("image/jpeg"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let output = response.bytes().await.unwrap();
    assert!(!output.windows(4).any(|w| w == b"Exif"), "EXIF survived");
    assert_eq!(
        image::load_from_memory(&output).unwrap().height(),
        32,
        "rotated, then 16 wide"
    );
}

/// Each job is counted by outcome, its stages timed, its pixels counted, its stored result
/// counted apart from uploads.
#[tokio::test]
async fn processing_is_measured() {
    use crate::support::{metrics_text, sample};
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    assert_eq!(
        post_response(&server, "/v1/image/resize?width=12", "image/png", PNG, None)
            .await
            .status(),
        201
    );
    assert_eq!(
        post_response(&server, "/v1/image/resize?width=12", "image/png", b"nope", None)
            .await
            .status(),
        415
    );
    let text = metrics_text(&server).await;
    let resize = ("operation", "resize");
    assert_eq!(
        sample(&text, "image_processing_jobs_total", &[resize, ("outcome", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "image_processing_jobs_total", &[resize, ("outcome", "refused")]),
        Some(1.0)
    );
    for stage in ["decode", "process", "encode"] {
        let count = sample(
            &text,
            "image_processing_duration_seconds_count",
            &[resize, ("stage", stage)],
        );
        assert_eq!(count, Some(1.0), "{stage}");
    }
    assert_eq!(
        sample(&text, "image_processing_pixels_total", &[resize]),
        Some(24.0 * 16.0)
    );
    assert_eq!(sample(&text, "image_processing_queue_depth", &[]), Some(0.0));
    // The stored result counts as a processing result, not as an upload.
    assert_eq!(
        sample(
            &text,
            "image_processing_results_stored_total",
            &[resize, ("format", "PNG")]
        ),
        Some(1.0)
    );
    assert_eq!(sample(&text, "image_uploads_total", &[("format", "PNG")]), None);
}

/// The other operations over HTTP, each checked on the quadrant image (red, green / blue, white).
async fn every_operation_does_what_it_says(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    let quadrants = oriented_jpeg(1);
    let run = |target: String, accept: &'static str| {
        let server = &server;
        let quadrants = quadrants.clone();
        async move {
            let response = post_response(server, &target, "image/jpeg", &quadrants, Some(accept)).await;
            assert_eq!(response.status(), 200, "{target}");
            response.bytes().await.unwrap().to_vec()
        }
    };
    let rgb = |bytes: &[u8]| image::load_from_memory(bytes).unwrap().to_rgb8();
    let near = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(x, y)| x.abs_diff(y) < 40);
    let (red, green, blue) = ([255, 0, 0], [0, 255, 0], [0, 0, 255]);

    let webp = run("/v1/image/convert?to_format=webp".into(), "image/*").await;
    assert_eq!(dimensions(&webp), (64, 32, image::ImageFormat::WebP));
    let small = run("/v1/image/compress?quality=20".into(), "image/jpeg").await;
    let large = run("/v1/image/compress?quality=95".into(), "image/jpeg").await;
    assert!(
        small.len() < large.len(),
        "quality 20: {} bytes, 95: {}",
        small.len(),
        large.len()
    );
    let stripped = run("/v1/image/strip-exif".into(), "image/jpeg").await;
    assert!(!stripped.windows(4).any(|w| w == b"Exif"));

    let turned = rgb(&run("/v1/image/rotate?angle=90&format=png".into(), "image/png").await);
    assert_eq!(turned.dimensions(), (32, 64));
    assert!(
        near(turned.get_pixel(4, 4).0, blue),
        "90° clockwise puts the bottom left on top"
    );
    let mirrored = rgb(&run("/v1/image/flip?direction=horizontal&format=png".into(), "image/png").await);
    assert!(near(mirrored.get_pixel(4, 4).0, green));
    let cropped = rgb(&run(
        "/v1/image/crop?mode=coordinates&x=32&y=0&width=32&height=16&format=png".into(),
        "image/png",
    )
    .await);
    assert_eq!(cropped.dimensions(), (32, 16));
    assert!(
        cropped.pixels().all(|p| near(p.0, green)),
        "only the green quadrant is kept"
    );
    let gray = rgb(&run("/v1/image/filter/grayscale?format=png".into(), "image/png").await);
    assert!(gray.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
    let blurred = rgb(&run("/v1/image/filter/blur?sigma=4&format=png".into(), "image/png").await);
    assert_eq!(blurred.dimensions(), (64, 32));
    let edge = blurred.get_pixel(32, 4).0;
    assert!(
        !near(edge, red) && !near(edge, green),
        "the red/green edge is blended: {edge:?}"
    );

    for (target, status, detail) in [
        ("/v1/image/rotate?angle=361", 400, "`angle`"),
        ("/v1/image/rotate?angle=45&background=red", 400, "`background`"),
        ("/v1/image/flip?direction=diagonal", 400, "`direction`"),
        ("/v1/image/crop?width=100&height=10", 400, "does not lie within"),
        ("/v1/image/crop?x=2&height=10", 400, "`width` is required"),
        ("/v1/image/crop?mode=entropy&width=10&height=10", 400, "`mode`"),
        ("/v1/image/crop?mode=square&x=1", 400, "`x` and `y`"),
        ("/v1/image/pad", 400, "`all`"),
        ("/v1/image/thumbnail", 400, "`width` or `height`"),
        ("/v1/image/compress?max_bytes=100&format=png", 400, "lossy"),
        ("/v1/image/trim?threshold=256", 400, "`threshold`"),
        ("/v1/image/filter/blur?sigma=0", 400, "`sigma`"),
        ("/v1/image/convert", 400, "`to_format`"),
        ("/v1/image/rotate?angle=90&sigma=1", 400, "sigma"),
        ("/v1/image/sharpen-ish", 404, "no such endpoint"),
    ] {
        let response = post_response(&server, target, "image/jpeg", &quadrants, None).await;
        assert_eq!(response.status().as_u16(), status, "{target}");
        let json: serde_json::Value = response.json().await.unwrap();
        assert!(json["detail"].as_str().unwrap().contains(detail), "{target}: {json}");
    }
}

/// An animated GIF is refused (422), never processed as its first frame only.
#[tokio::test]
async fn animated_images_are_refused_not_cut_to_one_frame() {
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let mut frames = Vec::new();
    for colour in [[255u8, 0, 0, 255], [0, 0, 255, 255]] {
        frames.push(image::Frame::new(image::RgbaImage::from_pixel(
            4,
            4,
            image::Rgba(colour),
        )));
    }
    let mut gif = Vec::new();
    image::codecs::gif::GifEncoder::new(&mut gif)
        .encode_frames(frames)
        .unwrap();
    let response = post_response(&server, "/v1/image/resize?width=2", "image/gif", &gif, None).await;
    assert_eq!(response.status(), 422);
    let json: serde_json::Value = response.json().await.unwrap();
    assert!(
        json["detail"].as_str().unwrap().contains("animated (2 frames)"),
        "{json}"
    );
}

/// Sharpen, sepia, brightness, contrast and saturation over HTTP, on a mid-gray-and-colour image.
async fn filters_and_adjustments(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    // Left half a muted red (180, 90, 60), right half mid gray (128, 128, 128); PNG, exact.
    let source = image::RgbImage::from_fn(16, 8, |x, _| {
        image::Rgb(if x < 8 { [180, 90, 60] } else { [128, 128, 128] })
    });
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(source)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let run = |target: &'static str| {
        let (server, png) = (&server, png.clone());
        async move {
            let response = post_response(server, target, "image/png", &png, Some("image/png")).await;
            assert_eq!(response.status(), 200, "{target}");
            image::load_from_memory(&response.bytes().await.unwrap())
                .unwrap()
                .to_rgb8()
        }
    };
    let brighter = run("/v1/image/adjust/brightness?value=40").await;
    assert_eq!(brighter.get_pixel(12, 4).0, [168, 168, 168]);
    let flat = run("/v1/image/adjust/contrast?value=-100").await;
    assert!(
        flat.get_pixel(1, 4).0.iter().all(|c| c.abs_diff(128) <= 2),
        "{:?}",
        flat.get_pixel(1, 4)
    );
    let gray = run("/v1/image/adjust/saturation?value=0").await;
    let [r, g, b] = gray.get_pixel(1, 4).0;
    assert!(r == g && g == b, "saturation 0 is gray: {r} {g} {b}");
    let vivid = run("/v1/image/adjust/saturation?value=2").await;
    assert!(
        vivid.get_pixel(1, 4)[0] > 180 && vivid.get_pixel(1, 4)[2] < 60,
        "{:?}",
        vivid.get_pixel(1, 4)
    );
    let sepia = run("/v1/image/filter/sepia").await;
    let [r, g, b] = sepia.get_pixel(12, 4).0;
    assert!(r > g && g > b, "sepia is warm: {r} {g} {b}");
    let sharp = run("/v1/image/filter/sharpen?sigma=1").await;
    assert_eq!(sharp.dimensions(), (16, 8));
    let (inside, edge) = (sharp.get_pixel(12, 4).0, sharp.get_pixel(8, 4).0);
    assert_eq!(inside, [128, 128, 128], "flat areas are left alone");
    assert_ne!(edge, [128, 128, 128], "the edge is sharpened");
    for (target, detail) in [
        ("/v1/image/adjust/brightness", "`value` is required"),
        ("/v1/image/adjust/contrast?value=500", "`value`"),
        ("/v1/image/adjust/saturation?value=-1", "`value`"),
        ("/v1/image/filter/sharpen?sigma=99", "`sigma`"),
    ] {
        let response = post_response(&server, target, "image/png", &png, None).await;
        assert_eq!(response.status(), 400, "{target}");
        let json: serde_json::Value = response.json().await.unwrap();
        assert!(json["detail"].as_str().unwrap().contains(detail), "{target}: {json}");
    }
}

/// `extract/metadata` describes without decoding pixels, and flags GPS data.
async fn metadata_is_extracted_and_gps_flagged(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    // A JPEG whose EXIF holds an orientation and a GPS directory (latitude reference "N").
    let mut jpeg = oriented_jpeg(1);
    let app1_end = 4 + usize::from(u16::from_be_bytes([jpeg[4], jpeg[5]]));
    let mut tiff = b"II*\0\x08\0\0\0\x02\0".to_vec();
    tiff.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
    tiff.extend([0x25, 0x88, 4, 0, 1, 0, 0, 0, 38, 0, 0, 0]);
    tiff.extend([0, 0, 0, 0]);
    tiff.extend([1, 0, 0x01, 0x00, 2, 0, 2, 0, 0, 0, b'N', 0, 0, 0, 0, 0, 0, 0]);
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend(((tiff.len() + 8) as u16).to_be_bytes());
    app1.extend(b"Exif\0\0");
    app1.extend(tiff);
    jpeg.splice(2..app1_end, app1);
    let response = post_response(&server, "/v1/image/extract/metadata", "image/jpeg", &jpeg, None).await;
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["format"], "jpeg");
    assert_eq!(
        (json["width"].as_u64(), json["height"].as_u64()),
        (Some(64), Some(32)),
        "{json}"
    );
    // Orientation 6: stored 64×32, shown (and processed) 32×64.
    assert_eq!(
        (json["display_width"].as_u64(), json["display_height"].as_u64()),
        (Some(32), Some(64)),
        "{json}"
    );
    assert_eq!(json["has_alpha"], false);
    assert_eq!(json["animated"], false);
    assert_eq!(json["exif"]["orientation"], 6, "{json}");
    assert_eq!(json["exif"]["gps"], true, "{json}");
    assert!(json["exif"]["warning"].as_str().unwrap().contains("GPS"));
    // A PNG without EXIF: exif is null; nothing is stored either way.
    let response = post_response(&server, "/v1/image/extract/metadata", "image/png", PNG, None).await;
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (json["width"].as_u64(), json["exif"].is_null()),
        (Some(24), true),
        "{json}"
    );
    assert!(
        within("list", fx.setup.list(None, 10))
            .await
            .unwrap()
            .objects
            .is_empty()
    );
}

/// `extract/colors` on an image three quarters red and one quarter blue.
async fn dominant_colors_with_their_shares(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    let source = image::RgbImage::from_fn(40, 40, |x, _| {
        image::Rgb(if x < 30 { [220, 20, 20] } else { [20, 20, 220] })
    });
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(source)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let response = post_response(&server, "/v1/image/extract/colors?count=2", "image/png", &png, None).await;
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.unwrap();
    let colors = json["colors"].as_array().unwrap();
    assert!(!colors.is_empty() && colors.len() <= 2, "{json}");
    let hex = |c: &serde_json::Value| u32::from_str_radix(&c["hex"].as_str().unwrap()[1..], 16).unwrap();
    let first = hex(&colors[0]);
    assert!(
        first >> 16 > 150 && first & 0xFF < 100,
        "the first colour is the red: {json}"
    );
    let share = colors[0]["share"].as_f64().unwrap();
    assert!((0.6..=0.85).contains(&share), "about three quarters: {json}");
    let response = post_response(&server, "/v1/image/extract/colors?count=40", "image/png", &png, None).await;
    assert_eq!(response.status(), 400);
}

/// `processing.enabled = false` (download-only replicas, processing in pods of its own): the
/// real binary starts no worker thread, answers processing 503 with `Retry-After` (behind the
/// chart's ingress it only gets those while the processing pods are unready) and a `detail` that
/// names the setting, and still stores and serves images. With the default, its workers are there.
#[tokio::test]
async fn processing_can_be_turned_off_for_download_only_replicas() {
    let workers = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with("image-worker"))
            .count()
    };
    let default = crate::cli::Spawned::start(
        &[("IMAGE_GATEWAY_PROCESSING__WORKERS", "2")],
        std::process::Stdio::null(),
    )
    .await;
    assert_eq!(workers(default.child.id()), 2, "the default starts its workers");
    let env = [
        ("IMAGE_GATEWAY_PROCESSING__ENABLED", "false"),
        ("IMAGE_GATEWAY_PROCESSING__WORKERS", "2"),
    ];
    let server = crate::cli::Spawned::start(&env, std::process::Stdio::null()).await;
    assert_eq!(workers(server.child.id()), 0, "no worker thread");
    let base = format!("http://{}", server.addr);
    let send = |path: &str| {
        client()
            .post(format!("{base}{path}"))
            .header(header::CONTENT_TYPE, "image/png")
            .body(PNG.to_vec())
            .send()
    };
    for path in ["/v1/image/resize?width=12", "/v1/image/pipeline"] {
        let response = within("process", send(path)).await.unwrap();
        assert_eq!(response.status(), 503, "{path}");
        assert_eq!(response.headers()[header::RETRY_AFTER], "5", "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(
            body["detail"].as_str().unwrap().contains("processing.enabled = false"),
            "{body}"
        );
    }
    let stored = within("upload", send("/v1/image/upload")).await.unwrap();
    assert_eq!(stored.status(), 201);
    let url = stored.json::<serde_json::Value>().await.unwrap()["upload_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = url.split_once("/v1/").map(|(_, p)| format!("{base}/v1/{p}")).unwrap();
    let fetched = within("download", client().get(&path).send()).await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), PNG);
    // A variant needs processing: 503 too, the original still served.
    let variant = within("download", client().get(format!("{path}?w=16")).send())
        .await
        .unwrap();
    assert_eq!(variant.status(), 503);
    assert_eq!(variant.headers()[header::RETRY_AFTER], "5");
}
