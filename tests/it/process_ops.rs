//! The processing operations beyond resize: thumbnail (shrink-on-load), crop modes, trim, pad,
//! rotation by any angle, `compress?max_bytes`, lossy WebP, `keep_metadata`, ICC profiles,
//! `pipeline` on every backend, decompression bombs of every format, and pixels checked
//! against Pillow (an independent implementation, from PyPI).

use std::io::Cursor;

use image::{DynamicImage, GenericImageView, ImageEncoder, RgbImage, RgbaImage};
use reqwest::header;

use crate::support::{Backend, Fixture, TestServer, client, detail, post, within};

/// `image` encoded as `format`.
pub(crate) fn encoded(image: &DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image.write_to(&mut Cursor::new(&mut bytes), format).unwrap();
    bytes
}

/// A photograph-like test card: smooth gradients with texture, `w`×`h`.
pub(crate) fn card(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let ripple = ((f64::from(x) / 7.0).sin() * (f64::from(y) / 5.0).cos() * 40.0) as i32;
        let channel = |base: i32| (base + ripple).clamp(0, 255) as u8;
        image::Rgb([
            channel((x * 255 / w) as i32),
            channel((y * 255 / h) as i32),
            channel(((x + y) * 127 / (w + h)) as i32 + 64),
        ])
    })
}

async fn geometry_operations_do_what_they_say(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    let photo = encoded(&DynamicImage::ImageRgb8(card(1600, 1000)), image::ImageFormat::Jpeg);
    let size = |bytes: &[u8]| image::load_from_memory(bytes).unwrap().dimensions();

    // thumbnail: within the box, aspect kept, never enlarged (the JPEG shrinks on load).
    let (status, body) = post(
        &server,
        "/v1/image/thumbnail?width=200&height=200",
        "image/jpeg",
        &photo,
        "image/*",
    )
    .await;
    assert_eq!(status, 200, "{}", detail(&body));
    assert_eq!(size(&body), (200, 125));
    let (_, body) = post(
        &server,
        "/v1/image/thumbnail?width=4000",
        "image/jpeg",
        &photo,
        "image/*",
    )
    .await;
    assert_eq!(size(&body), (1600, 1000));

    // crop: the largest centred square; smart keeps the textured part of a half-flat image.
    let (_, body) = post(&server, "/v1/image/crop?mode=square", "image/jpeg", &photo, "image/*").await;
    assert_eq!(size(&body), (1000, 1000));
    let half_flat = RgbImage::from_fn(600, 200, |x, y| {
        if x < 400 {
            image::Rgb([200, 200, 200])
        } else {
            image::Rgb([
                ((x * 37 + y * 91) % 256) as u8,
                ((x * y) % 256) as u8,
                ((x ^ y) % 256) as u8,
            ])
        }
    });
    let png = encoded(&DynamicImage::ImageRgb8(half_flat), image::ImageFormat::Png);
    let (status, body) = post(
        &server,
        "/v1/image/crop?mode=smart&width=200",
        "image/png",
        &png,
        "image/png",
    )
    .await;
    assert_eq!(status, 200, "{}", detail(&body));
    let smart = image::load_from_memory(&body).unwrap().to_rgb8();
    assert_eq!(smart.dimensions(), (200, 200));
    let flat = smart.pixels().filter(|p| p.0 == [200, 200, 200]).count();
    assert!(
        flat < 200 * 200 / 10,
        "{flat} flat pixels: the window missed the detail"
    );

    // trim: a logo on a white border comes out as the logo.
    let mut framed = RgbImage::from_pixel(120, 80, image::Rgb([255, 255, 255]));
    for (x, y, pixel) in framed.enumerate_pixels_mut() {
        if (30..70).contains(&x) && (20..45).contains(&y) {
            *pixel = image::Rgb([20, 60, 200]);
        }
    }
    let png = encoded(&DynamicImage::ImageRgb8(framed), image::ImageFormat::Png);
    let (_, body) = post(&server, "/v1/image/trim", "image/png", &png, "image/png").await;
    assert_eq!(size(&body), (40, 25));

    // pad with a colour; rotate by 30° onto a larger canvas of a colour.
    let (_, body) = post(
        &server,
        "/v1/image/pad?all=10&top=0&background=%23ff0000",
        "image/png",
        &png,
        "image/png",
    )
    .await;
    let padded = image::load_from_memory(&body).unwrap().to_rgba8();
    assert_eq!(padded.dimensions(), (140, 90));
    assert_eq!(padded.get_pixel(139, 89).0, [255, 0, 0, 255]);
    assert_eq!(padded.get_pixel(10, 0).0, [255, 255, 255, 255], "no padding on top");
    let (status, body) = post(
        &server,
        "/v1/image/rotate?angle=30&background=00ff00",
        "image/png",
        &png,
        "image/png",
    )
    .await;
    assert_eq!(status, 200, "{}", detail(&body));
    let turned = image::load_from_memory(&body).unwrap().to_rgb8();
    // 120×80 turned by 30°: 120·cos + 80·sin = 143.9, 120·sin + 80·cos = 129.3.
    assert_eq!(turned.dimensions(), (144, 130));
    assert_eq!(turned.get_pixel(0, 0).0, [0, 255, 0], "the corner is the background");
    let (_, body) = post(&server, "/v1/image/rotate?angle=-270", "image/png", &png, "image/png").await;
    assert_eq!(size(&body), (80, 120), "-270° is a lossless quarter turn");
}

async fn encoding_options_do_what_they_say(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    let photo = encoded(&DynamicImage::ImageRgb8(card(800, 500)), image::ImageFormat::Png);

    // Lossy WebP: quality changes the size; both decode to the same dimensions.
    let (_, high) = post(
        &server,
        "/v1/image/convert?to_format=webp&quality=95",
        "image/png",
        &photo,
        "image/webp",
    )
    .await;
    let (_, low) = post(
        &server,
        "/v1/image/convert?to_format=webp&quality=30",
        "image/png",
        &photo,
        "image/webp",
    )
    .await;
    assert_eq!(image::guess_format(&low).unwrap(), image::ImageFormat::WebP);
    assert!(
        low.len() * 2 < high.len(),
        "quality 30: {} bytes, 95: {}",
        low.len(),
        high.len()
    );
    assert_eq!(image::load_from_memory(&low).unwrap().dimensions(), (800, 500));

    // compress?max_bytes: the highest quality that fits; 422 when nothing does.
    let (status, body) = post(
        &server,
        "/v1/image/compress?format=jpeg&max_bytes=20000",
        "image/png",
        &photo,
        "image/jpeg",
    )
    .await;
    assert_eq!(status, 200, "{}", detail(&body));
    assert!(body.len() <= 20_000 && body.len() > 5_000, "{} bytes", body.len());
    let (status, body) = post(
        &server,
        "/v1/image/compress?format=jpeg&max_bytes=300",
        "image/png",
        &photo,
        "image/jpeg",
    )
    .await;
    assert_eq!(status, 422);
    assert!(detail(&body).contains("cannot be reached"), "{}", detail(&body));
    let (status, body) = post(
        &server,
        "/v1/image/compress?max_bytes=300",
        "image/png",
        &photo,
        "image/png",
    )
    .await;
    assert_eq!(status, 400);
    assert!(detail(&body).contains("lossy"));

    // Alpha: kept by PNG and WebP, flattened onto `background` by JPEG.
    let glass = DynamicImage::ImageRgba8(RgbaImage::from_pixel(10, 10, image::Rgba([0, 0, 0, 0])));
    let png = encoded(&glass, image::ImageFormat::Png);
    let (_, body) = post(
        &server,
        "/v1/image/convert?to_format=webp",
        "image/png",
        &png,
        "image/webp",
    )
    .await;
    assert_eq!(
        image::load_from_memory(&body).unwrap().to_rgba8().get_pixel(5, 5).0[3],
        0
    );
    let (_, body) = post(
        &server,
        "/v1/image/convert?to_format=jpeg&background=%230000ff",
        "image/png",
        &png,
        "image/jpeg",
    )
    .await;
    let blue = image::load_from_memory(&body).unwrap().to_rgb8().get_pixel(5, 5).0;
    assert!(blue[2] > 230 && blue[0] < 25, "flattened onto blue: {blue:?}");

    // keep_metadata: EXIF kept, orientation reset to 1 (the pixels were turned).
    let mut jpeg = encoded(&DynamicImage::ImageRgb8(card(64, 32)), image::ImageFormat::Jpeg);
    let mut exif = b"Exif\0\0II*\0\x08\0\0\0\x01\0".to_vec();
    exif.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
    let mut segment = vec![0xFF, 0xE1];
    segment.extend(((exif.len() + 2) as u16).to_be_bytes());
    segment.extend(exif);
    jpeg.splice(2..2, segment);
    let (_, kept) = post(
        &server,
        "/v1/image/resize?width=16&keep_metadata=true",
        "image/jpeg",
        &jpeg,
        "image/jpeg",
    )
    .await;
    let (_, stripped) = post(&server, "/v1/image/resize?width=16", "image/jpeg", &jpeg, "image/jpeg").await;
    assert!(!stripped.windows(4).any(|w| w == b"Exif"));
    let mut decoder = image::codecs::jpeg::JpegDecoder::new(Cursor::new(&kept)).unwrap();
    use image::ImageDecoder;
    let block = decoder.exif_metadata().unwrap().expect("EXIF kept");
    assert_eq!(
        image::metadata::Orientation::from_exif_chunk(&block),
        Some(image::metadata::Orientation::NoTransforms)
    );
    assert_eq!(
        image::load_from_memory(&kept).unwrap().dimensions(),
        (16, 32),
        "turned by 6, then 16 wide"
    );
    // WebP results keep it too, in an EXIF chunk the extended header declares.
    let (status, webp) = post(
        &server,
        "/v1/image/resize?width=16&keep_metadata=true&format=webp",
        "image/jpeg",
        &jpeg,
        "image/webp",
    )
    .await;
    assert_eq!(status, 200, "{}", detail(&webp));
    let mut decoder = image::codecs::webp::WebPDecoder::new(Cursor::new(&webp)).unwrap();
    let block = decoder.exif_metadata().unwrap().expect("EXIF kept in the WebP");
    assert_eq!(
        image::metadata::Orientation::from_exif_chunk(&block),
        Some(image::metadata::Orientation::NoTransforms)
    );
    assert_eq!(image::load_from_memory(&webp).unwrap().dimensions(), (16, 32));
}

/// A pipeline runs its steps on one decode and one encode and stores one result.
async fn pipeline_chains_steps_on_one_decode(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    let png = encoded(&DynamicImage::ImageRgb8(card(300, 200)), image::ImageFormat::Png);
    let (status, body) = post(&server, "/v1/image/upload", "image/png", &png, "application/json").await;
    assert_eq!(status, 201);
    let uploaded: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let source = uploaded["object_name"].as_str().unwrap();
    let pipeline = serde_json::json!({
        "source": source,
        "format": "webp",
        "quality": 70,
        "steps": [
            {"op": "resize", "width": 150},
            {"op": "rotate", "angle": 90},
            {"op": "filter/grayscale"},
            {"op": "crop", "mode": "coordinates", "x": 0, "y": 0, "width": 100, "height": 150},
        ],
    });
    let request = client()
        .post(server.url("/v1/image/pipeline"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(pipeline.to_string());
    let response = within("pipeline", request.send()).await.unwrap();
    assert_eq!(response.status(), 201);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (json["width"].as_u64(), json["height"].as_u64()),
        (Some(100), Some(150))
    );
    assert_eq!(json["content_type"], "image/webp");
    let result = client().get(json["upload_url"].as_str().unwrap()).send().await.unwrap();
    let image = image::load_from_memory(&result.bytes().await.unwrap())
        .unwrap()
        .to_rgb8();
    assert_eq!(image.dimensions(), (100, 150));
    let [r, g, b] = image.get_pixel(50, 75).0;
    assert!(r.abs_diff(g) < 8 && g.abs_diff(b) < 8, "grey: {r} {g} {b}");
    // Two objects in storage: the upload and the pipeline's one result (no intermediates).
    let listed = within("list", fx.setup.list(None, 100)).await.unwrap();
    assert_eq!(listed.objects.len(), 2, "{:?}", listed.objects);

    // Mistakes name the step; a body that is not JSON is refused before anything runs.
    let bad = serde_json::json!({"source": source, "steps": [{"op": "flip", "direction": "vertical"}, {"op": "resize", "width": -1}]});
    let (status, body) = post(
        &server,
        "/v1/image/pipeline",
        "application/json",
        bad.to_string().as_bytes(),
        "*/*",
    )
    .await;
    assert_eq!(status, 400);
    assert!(detail(&body).starts_with("steps[1]: `width`"), "{}", detail(&body));
    let (status, _) = post(&server, "/v1/image/pipeline", "image/png", &png, "*/*").await;
    assert_eq!(status, 415);
    let missing = serde_json::json!({"source": "0123456789abcdef0123456789abcdef.png", "steps": [{"op": "trim"}]});
    let (status, _) = post(
        &server,
        "/v1/image/pipeline",
        "application/json",
        missing.to_string().as_bytes(),
        "*/*",
    )
    .await;
    assert_eq!(status, 404);
    let listed = within("list", fx.setup.list(None, 100)).await.unwrap();
    assert_eq!(listed.objects.len(), 2, "nothing stored by the refused pipelines");
}

crate::on_every_backend!(
    pipeline_chains_steps_on_one_decode,
    geometry_operations_do_what_they_say,
    encoding_options_do_what_they_say,
    svg_input_is_rasterized_at_the_size_asked
);

/// A header that declares 10^10 pixels (or the format's maximum) in every format is refused
/// with 413 before any decoding, and nothing is stored.
#[tokio::test]
async fn decompression_bombs_of_every_format_are_refused() {
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let tiny = DynamicImage::ImageRgb8(RgbImage::from_pixel(1, 1, image::Rgb([9, 9, 9])));
    let big = 100_000u32;
    let mut png = encoded(&tiny, image::ImageFormat::Png);
    png[16..20].copy_from_slice(&big.to_be_bytes());
    png[20..24].copy_from_slice(&big.to_be_bytes());
    let mut jpeg = encoded(&tiny, image::ImageFormat::Jpeg);
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    let mut gif = encoded(&tiny, image::ImageFormat::Gif);
    gif[6..10].copy_from_slice(&[0xFF; 4]);
    let descriptor = gif.iter().position(|b| *b == 0x2C).unwrap();
    gif[descriptor + 5..descriptor + 9].copy_from_slice(&[0xFF; 4]);
    let mut bmp = encoded(&tiny, image::ImageFormat::Bmp);
    bmp[18..22].copy_from_slice(&(big as i32).to_le_bytes());
    bmp[22..26].copy_from_slice(&(big as i32).to_le_bytes());
    let mut webp = encoded(&DynamicImage::ImageRgba8(tiny.to_rgba8()), image::ImageFormat::WebP);
    let vp8l = webp.windows(4).position(|w| w == b"VP8L").unwrap();
    let bits = 0x3FFF | (0x3FFF << 14) | (1 << 28);
    webp[vp8l + 9..vp8l + 13].copy_from_slice(&u32::to_le_bytes(bits));
    let mut tiff = encoded(&tiny, image::ImageFormat::Tiff);
    let ifd = u32::from_le_bytes(tiff[4..8].try_into().unwrap()) as usize;
    let entries = u16::from_le_bytes(tiff[ifd..ifd + 2].try_into().unwrap()) as usize;
    for entry in (0..entries).map(|i| ifd + 2 + 12 * i) {
        let tag = u16::from_le_bytes(tiff[entry..entry + 2].try_into().unwrap());
        if tag == 256 || tag == 257 {
            tiff[entry + 2..entry + 4].copy_from_slice(&4u16.to_le_bytes());
            tiff[entry + 8..entry + 12].copy_from_slice(&big.to_le_bytes());
        }
    }
    for (content_type, bomb) in [
        ("image/png", png),
        ("image/jpeg", jpeg),
        ("image/gif", gif),
        ("image/bmp", bmp),
        ("image/webp", webp),
        ("image/tiff", tiff),
    ] {
        let (status, body) = post(&server, "/v1/image/thumbnail?width=10", content_type, &bomb, "image/*").await;
        assert_eq!(status, 413, "{content_type}: {}", detail(&body));
        // Truncated: the first half of a real image is refused (400 or 422), never a 5xx.
        let real = encoded(&DynamicImage::ImageRgb8(card(64, 64)), format_of(content_type));
        let (status, body) = post(
            &server,
            "/v1/image/thumbnail?width=10",
            content_type,
            &real[..real.len() / 2],
            "image/*",
        )
        .await;
        assert!(
            matches!(status, 400 | 415 | 422),
            "{content_type} truncated: {status} {}",
            detail(&body)
        );
    }
    let listed = within("list", fx.setup.list(None, 100)).await.unwrap();
    assert!(listed.objects.is_empty());
}

fn format_of(content_type: &str) -> image::ImageFormat {
    image::ImageFormat::from_mime_type(content_type).unwrap()
}

/// Runs `script` with Pillow on `input` (a file); the script prints the result as PNG to stdout.
fn with_pillow(script: &str, input: &[u8]) -> RgbaImage {
    let dir = crate::support::scratch_dir();
    let path = dir.path().join("input");
    std::fs::write(&path, input).unwrap();
    pillow_png(&format!("im = Image.open(sys.argv[1])\n{script}"), &path)
}

/// Runs `script` (Pillow's `Image`, `ImageOps` and `ImageCms` imported, `path` as `sys.argv[1]`)
/// and returns the image it leaves in `out`.
fn pillow_png(script: &str, path: &std::path::Path) -> RgbaImage {
    let program = format!(
        "import sys, io\nfrom PIL import Image, ImageOps, ImageCms\n{script}\nbuf = io.BytesIO()\nout.save(buf, 'PNG')\nsys.stdout.buffer.write(buf.getvalue())\n"
    );
    let png = crate::support::python([std::ffi::OsStr::new("-c"), program.as_ref(), path.as_os_str()]);
    image::load_from_memory(&png).unwrap().to_rgba8()
}

/// Mean and largest absolute difference per channel between two images of one size.
fn difference(a: &RgbaImage, b: &RgbaImage) -> (f64, u8) {
    assert_eq!(a.dimensions(), b.dimensions());
    let (mut sum, mut most, mut n) = (0u64, 0u8, 0u64);
    for (p, q) in a.pixels().zip(b.pixels()) {
        for (x, y) in p.0.iter().zip(q.0) {
            let d = x.abs_diff(y);
            sum += u64::from(d);
            most = most.max(d);
            n += 1;
        }
    }
    (sum as f64 / n as f64, most)
}

#[tokio::test]
async fn pixels_agree_with_pillow() {
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let png = encoded(&DynamicImage::ImageRgb8(card(403, 251)), image::ImageFormat::Png);
    let ours = |bytes: Vec<u8>| {
        image::load_from_memory(&bytes)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
            .to_rgba8()
    };

    // Lanczos3 resampling to an exact size.
    let (_, body) = post(
        &server,
        "/v1/image/resize?width=150&height=90&fit=fill",
        "image/png",
        &png,
        "image/png",
    )
    .await;
    let reference = with_pillow(
        "out = im.convert('RGB').resize((150, 90), Image.Resampling.LANCZOS).convert('RGBA')",
        &png,
    );
    let (mean, most) = difference(&ours(body), &reference);
    assert!(mean < 1.5 && most < 24, "resize: mean {mean:.2}, max {most}");

    // Shrink-on-load: a JPEG thumbnail decoded at 1/4 scale stays close to Pillow's full decode.
    let jpeg = encoded(&DynamicImage::ImageRgb8(card(1600, 1000)), image::ImageFormat::Jpeg);
    let (_, body) = post(
        &server,
        "/v1/image/thumbnail?width=200&format=png",
        "image/jpeg",
        &jpeg,
        "image/png",
    )
    .await;
    let reference = with_pillow(
        "out = im.convert('RGB').resize((200, 125), Image.Resampling.LANCZOS).convert('RGBA')",
        &jpeg,
    );
    let (mean, most) = difference(&ours(body), &reference);
    assert!(mean < 3.0 && most < 48, "thumbnail: mean {mean:.2}, max {most}");

    // Lossless geometry is exact: a quarter turn, a mirror and a crop.
    for (target, script) in [
        (
            "/v1/image/rotate?angle=90",
            "out = im.convert('RGBA').transpose(Image.Transpose.ROTATE_270)",
        ),
        (
            "/v1/image/flip?direction=horizontal",
            "out = im.convert('RGBA').transpose(Image.Transpose.FLIP_LEFT_RIGHT)",
        ),
        (
            "/v1/image/crop?x=10&y=20&width=100&height=50",
            "out = im.convert('RGBA').crop((10, 20, 110, 70))",
        ),
    ] {
        let (_, body) = post(&server, target, "image/png", &png, "image/png").await;
        assert_eq!(
            difference(&ours(body), &with_pillow(script, &png)),
            (0.0, 0),
            "{target}"
        );
    }

    // A turn by 30° (clockwise here, counter-clockwise in Pillow): the canvas and, away from
    // the anti-aliased edges, the bilinear samples agree.
    let (_, body) = post(
        &server,
        "/v1/image/rotate?angle=30&background=%23000000",
        "image/png",
        &png,
        "image/png",
    )
    .await;
    let turned = ours(body);
    let reference = with_pillow(
        "out = im.convert('RGBA').rotate(-30, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=(0, 0, 0, 255))",
        &png,
    );
    let (w, h) = turned.dimensions();
    assert!(
        w.abs_diff(reference.width()) <= 1 && h.abs_diff(reference.height()) <= 1,
        "{w}×{h} vs {:?}",
        reference.dimensions()
    );
    let (cw, ch) = (w.min(reference.width()), h.min(reference.height()));
    let centre = |image: &RgbaImage| image::imageops::crop_imm(image, cw / 2 - 60, ch / 2 - 40, 120, 80).to_image();
    let (mean, _) = difference(&centre(&turned), &centre(&reference));
    assert!(mean < 4.0, "rotate 30: mean {mean:.2}");

    // An embedded ICC profile (Adobe RGB) is converted to sRGB, as Pillow's LittleCMS does.
    let adobe = moxcms::ColorProfile::new_adobe_rgb().encode().unwrap();
    let flat = RgbImage::from_fn(16, 16, |x, y| image::Rgb([(x * 16) as u8, 140, (y * 16) as u8]));
    let mut tagged = Vec::new();
    let mut encoder = image::codecs::png::PngEncoder::new(&mut tagged);
    encoder.set_icc_profile(adobe).unwrap();
    encoder
        .write_image(flat.as_raw(), 16, 16, image::ExtendedColorType::Rgb8)
        .unwrap();
    let (status, body) = post(
        &server,
        "/v1/image/convert?to_format=png",
        "image/png",
        &tagged,
        "image/png",
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let converted = ours(body);
    let reference = with_pillow(
        "src = ImageCms.ImageCmsProfile(io.BytesIO(im.info['icc_profile']))\nout = ImageCms.profileToProfile(im.convert('RGB'), src, ImageCms.createProfile('sRGB')).convert('RGBA')",
        &tagged,
    );
    let untouched = DynamicImage::ImageRgb8(flat).to_rgba8();
    let (mean, most) = difference(&converted, &reference);
    assert!(mean < 1.5 && most <= 6, "ICC: mean {mean:.2}, max {most}");
    assert!(
        difference(&untouched, &reference).0 > 5.0,
        "the profile must matter for this test to mean anything"
    );
}

/// SVG input is rasterized (resvg): at the first step's size directly (crisp, not upscaled
/// pixels), within the pixel limit, embedded `data:` images drawn, external references refused.
async fn svg_input_is_rasterized_at_the_size_asked(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    let svg = br##"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="20" height="20" fill="#ff0000"/><rect x="20" width="20" height="20" fill="#0000ff"/></svg>"##;
    let (status, body) = post(
        &server,
        "/v1/image/convert?to_format=png",
        "image/svg+xml",
        svg,
        "image/png",
    )
    .await;
    assert_eq!(status, 200, "{}", detail(&body));
    let small = image::load_from_memory(&body).unwrap().to_rgba8();
    assert_eq!(small.dimensions(), (40, 20));
    assert_eq!(small.get_pixel(5, 5).0, [255, 0, 0, 255]);
    let (status, body) = post(
        &server,
        "/v1/image/resize?width=400&enlarge=true",
        "image/svg+xml",
        svg,
        "image/png",
    )
    .await;
    assert_eq!(status, 200, "{}", detail(&body));
    let big = image::load_from_memory(&body).unwrap().to_rgba8();
    assert_eq!(big.dimensions(), (400, 200));
    assert_eq!(
        big.get_pixel(198, 100).0,
        [255, 0, 0, 255],
        "rendered at 400 wide, the edge stays sharp"
    );
    assert_eq!(big.get_pixel(201, 100).0, [0, 0, 255, 255]);

    let huge = br#"<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"><rect width="10" height="10"/></svg>"#;
    let (status, body) = post(
        &server,
        "/v1/image/convert?to_format=png",
        "image/svg+xml",
        huge,
        "image/png",
    )
    .await;
    assert_eq!(status, 413, "{}", detail(&body));
    let (status, body) = post(
        &server,
        "/v1/image/thumbnail?width=100",
        "image/svg+xml",
        huge,
        "image/png",
    )
    .await;
    assert_eq!(
        status,
        200,
        "a thumbnail of it renders at 100×100 only: {}",
        detail(&body)
    );

    let green = encoded(
        &DynamicImage::ImageRgb8(RgbImage::from_pixel(4, 4, image::Rgb([0, 255, 0]))),
        image::ImageFormat::Png,
    );
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(&green);
    let embedded = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><image width="8" height="8" href="data:image/png;base64,{data}"/></svg>"#
    );
    let (status, body) = post(
        &server,
        "/v1/image/convert?to_format=png",
        "image/svg+xml",
        embedded.as_bytes(),
        "image/png",
    )
    .await;
    assert_eq!(status, 200, "{}", detail(&body));
    assert_eq!(
        image::load_from_memory(&body).unwrap().to_rgba8().get_pixel(4, 4).0,
        [0, 255, 0, 255]
    );
    let external = br#"<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><image width="8" height="8" href="http://127.0.0.1:9/x.png"/></svg>"#;
    let (status, _) = post(
        &server,
        "/v1/image/convert?to_format=png",
        "image/svg+xml",
        external,
        "image/png",
    )
    .await;
    assert_eq!(status, 415, "external references never reach the renderer");
}

/// PSNR (dB) of `b` against `a` over the `w`×`h` window at (`x`, `y`), colour channels only.
fn window_psnr(a: &RgbaImage, b: &RgbaImage, (x, y, w, h): (u32, u32, u32, u32)) -> f64 {
    let mut sum = 0f64;
    for j in y..y + h {
        for i in x..x + w {
            let (p, q) = (a.get_pixel(i, j).0, b.get_pixel(i, j).0);
            sum += (0..3).map(|c| (f64::from(p[c]) - f64::from(q[c])).powi(2)).sum::<f64>();
        }
    }
    let mse = sum / f64::from(w * h * 3);
    10.0 * (255.0f64.powi(2) / mse.max(1e-10)).log10()
}

/// A JPEG whose size is not a multiple of 8 decoded at 1/8 scale has a last row and column
/// that stand for only part of a block (3201×1601 at 1/8: 401×201 pixels for 400.125×200.125):
/// resampling those to the target as if they were whole misplaced the bottom and right edges
/// by up to 0.43 output pixels. Shrunk on load, the result must match the same pixels resized
/// from a full decode (a PNG of them) as well at the bottom-right corner as at the top-left,
/// whatever the EXIF orientation brings to the top left.
#[tokio::test]
async fn shrink_on_load_keeps_the_edges_in_place() {
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    // A grid of 64-pixel squares (4 output pixels at 1/16): any shift shows at their edges. The
    // image's edges fall mid-square (a 1-pixel sliver there would be the encoder's padding at
    // 1/8, a whole pixel of it, whatever the resampling).
    let grid = RgbImage::from_fn(3201, 1601, |x, y| {
        let on = ((x + 32) / 64 + (y + 32) / 64) % 2 == 0;
        image::Rgb(if on { [230, 200, 40] } else { [20, 40, 120] })
    });
    let plain = encoded(&DynamicImage::ImageRgb8(grid), image::ImageFormat::Jpeg);
    let resize = async |body: &[u8], content_type: &str| {
        let (status, out) = post(
            &server,
            "/v1/image/resize?width=200&format=png",
            content_type,
            body,
            "image/png",
        )
        .await;
        assert_eq!(status, 200, "{}", detail(&out));
        image::load_from_memory(&out).unwrap().to_rgba8()
    };
    // Upright, half a turn (the padding ends top and left) and a quarter turn (bottom and left).
    for orientation in [1, 3, 6] {
        let jpeg = with_orientation(&plain, orientation);
        let mut upright = image::load_from_memory(&plain).unwrap();
        upright.apply_orientation(image::metadata::Orientation::from_exif(orientation).unwrap());
        let png = encoded(&upright, image::ImageFormat::Png);
        let (shrunk, full) = (resize(&jpeg, "image/jpeg").await, resize(&png, "image/png").await);
        assert_eq!(shrunk.dimensions(), full.dimensions());
        let (w, h) = full.dimensions();
        let (cw, ch) = (w.min(48), h.min(48));
        let top_left = window_psnr(&full, &shrunk, (0, 0, cw, ch));
        let bottom_right = window_psnr(&full, &shrunk, (w - cw, h - ch, cw, ch));
        eprintln!(
            "orientation {orientation}, shrink-on-load vs full decode, {w}×{h}: top left {top_left:.1} dB, bottom right {bottom_right:.1} dB"
        );
        for (corner, psnr) in [("top-left", top_left), ("bottom-right", bottom_right)] {
            assert!(
                psnr > 36.0,
                "orientation {orientation}: the {corner} corner is {psnr:.1} dB: an edge moved"
            );
        }
    }
}

/// `jpeg` with an EXIF block holding only `orientation`.
fn with_orientation(jpeg: &[u8], orientation: u8) -> Vec<u8> {
    let mut exif = b"II*\0\x08\0\0\0\x01\0".to_vec();
    exif.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0, orientation, 0, 0, 0]);
    exif.extend([0; 4]);
    with_exif(jpeg, &exif)
}

/// `jpeg` with an APP1 segment holding `exif` (TIFF header first) right after its SOI.
fn with_exif(jpeg: &[u8], exif: &[u8]) -> Vec<u8> {
    let mut segment = vec![0xFF, 0xE1];
    segment.extend(((exif.len() + 8) as u16).to_be_bytes());
    segment.extend(b"Exif\0\0");
    segment.extend(exif);
    let mut out = jpeg.to_vec();
    out.splice(2..2, segment);
    out
}

/// A q95 JPEG with EXIF (GPS included): `strip-exif` keeps every byte of the image and drops
/// the EXIF segment, again and again; a re-encode that names no quality keeps the source's
/// (q95, estimated from its tables), not 80.
#[tokio::test]
async fn strip_exif_is_lossless_and_reencodes_keep_the_source_quality() {
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .encode_image(&DynamicImage::ImageRgb8(card(640, 400)))
        .unwrap();
    // APP1 Exif: Orientation 1 and a GPS directory.
    let mut exif = b"Exif\0\0II*\0\x08\0\0\0\x02\0".to_vec();
    exif.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0]);
    exif.extend([0x25, 0x88, 4, 0, 1, 0, 0, 0, 38, 0, 0, 0]);
    exif.extend([0; 10]);
    let mut segment = vec![0xFF, 0xE1];
    segment.extend(((exif.len() + 2) as u16).to_be_bytes());
    segment.extend(&exif);
    jpeg.splice(2..2, segment.iter().copied());
    let mut stripped = jpeg.clone();
    for pass in 1..=5 {
        let (status, body) = post(&server, "/v1/image/strip-exif", "image/jpeg", &stripped, "image/jpeg").await;
        assert_eq!(status, 200, "pass {pass}: {}", detail(&body));
        stripped = body;
        assert_eq!(
            stripped.len(),
            jpeg.len() - segment.len(),
            "pass {pass}: only the EXIF segment went"
        );
    }
    assert!(!stripped.windows(4).any(|w| w == b"Exif"));
    let (source, result) = (
        image::load_from_memory(&jpeg).unwrap(),
        image::load_from_memory(&stripped).unwrap(),
    );
    assert_eq!(
        source.to_rgb8(),
        result.to_rgb8(),
        "five passes, and not one pixel changed"
    );
    // A re-encode (JPEG to JPEG, no quality named) keeps the source's quality: its size stays
    // near the source's (at 80 it was a third of it).
    let (status, again) = post(
        &server,
        "/v1/image/convert?format=jpeg",
        "image/jpeg",
        &stripped,
        "image/jpeg",
    )
    .await;
    assert_eq!(status, 200);
    let (status, at_80) = post(
        &server,
        "/v1/image/convert?format=jpeg&quality=80",
        "image/jpeg",
        &stripped,
        "image/jpeg",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        again.len() as f64 > at_80.len() as f64 * 1.4,
        "no quality given: {} bytes; quality 80: {} bytes",
        again.len(),
        at_80.len()
    );
}

/// A q95 JPEG of orientation 6 with EXIF, `width`×`height`.
#[cfg(feature = "libjpeg-turbo")]
fn turned_q95_jpeg(width: u32, height: u32) -> Vec<u8> {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .encode_image(&DynamicImage::ImageRgb8(card(width, height)))
        .unwrap();
    // Orientation 6 (turn a quarter clockwise to show) and a Make.
    let mut exif = b"II*\0\x08\0\0\0\x02\0".to_vec();
    exif.extend([0x0F, 0x01, 2, 0, 4, 0, 0, 0, b'C', b'a', b'm', 0]);
    exif.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
    exif.extend([0; 4]);
    with_exif(&jpeg, &exif)
}

/// `rotate` by right angles and `flip` move a JPEG's DCT coefficients (libjpeg-turbo's
/// transform; the test command builds with it): the result is the source turned (its EXIF
/// orientation folded in) at the source's size, and four quarter turns give back exactly the
/// same pixels. Where an edge's partial MCU forbids it, the job re-encodes at the source's
/// quality, at the right size.
#[cfg(feature = "libjpeg-turbo")]
#[tokio::test]
async fn right_angle_turns_of_a_jpeg_keep_every_coefficient() {
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let jpeg = turned_q95_jpeg(640, 480);
    let rotate = async |bytes: &[u8], query: &str| {
        let (status, body) = post(
            &server,
            &format!("/v1/image/rotate?{query}"),
            "image/jpeg",
            bytes,
            "image/jpeg",
        )
        .await;
        assert_eq!(status, 200, "{query}: {}", detail(&body));
        body
    };
    let first = rotate(&jpeg, "angle=90").await;
    // Upright (480×640), then a quarter turn: 640×480, drawn as the decode path draws it.
    let mut expected = image::load_from_memory(&jpeg).unwrap();
    expected.apply_orientation(image::metadata::Orientation::Rotate90);
    let expected = expected.rotate90().to_rgba8();
    let result = image::load_from_memory(&first).unwrap().to_rgba8();
    let (mean, most) = difference(&expected, &result);
    eprintln!(
        "lossless turn vs decode-and-turn: mean {mean:.3}, largest {most}; {} → {} bytes",
        jpeg.len(),
        first.len()
    );
    assert!(mean < 0.5 && most <= 4, "mean {mean}, largest {most}");
    assert!(
        (first.len() as f64) > jpeg.len() as f64 * 0.95,
        "{} bytes from {}: requantised",
        first.len(),
        jpeg.len()
    );
    assert!(
        !first.windows(4).any(|w| w == b"Exif"),
        "metadata is dropped by default"
    );
    let mut again = first.clone();
    for _ in 0..4 {
        again = rotate(&again, "angle=90").await;
    }
    let (_, flipped) = post(
        &server,
        "/v1/image/flip?direction=horizontal",
        "image/jpeg",
        &again,
        "image/jpeg",
    )
    .await;
    let (_, flipped) = post(
        &server,
        "/v1/image/flip?direction=horizontal",
        "image/jpeg",
        &flipped,
        "image/jpeg",
    )
    .await;
    assert!(
        image::load_from_memory(&flipped).unwrap().to_rgba8() == result,
        "four quarter turns and two mirrors: every pixel as it was"
    );
    // keep_metadata: the EXIF stays, upright.
    let kept = rotate(&jpeg, "angle=90&keep_metadata=true").await;
    let exif = kept
        .windows(6)
        .position(|w| w == b"Exif\0\0")
        .expect("the EXIF block is kept");
    assert!(kept[exif..].windows(3).any(|w| w == b"Cam"), "its fields stay");
    assert_eq!(
        image::metadata::Orientation::from_exif_chunk(&kept[exif + 6..])
            .unwrap_or(image::metadata::Orientation::NoTransforms),
        image::metadata::Orientation::NoTransforms
    );

    // 641×481 (4:2:0, 16-pixel MCUs): the bottom edge cannot move to the left losslessly.
    let odd = turned_q95_jpeg(641, 481);
    let turned = rotate(&odd, "angle=90").await;
    let at_80 = rotate(&odd, "angle=90&quality=80").await;
    assert_eq!(image::load_from_memory(&turned).unwrap().dimensions(), (641, 481));
    assert!(
        turned.len() as f64 > at_80.len() as f64 * 1.4,
        "re-encoded at the source's quality: {} bytes; quality 80: {} bytes",
        turned.len(),
        at_80.len()
    );
}

/// The CMYK profile the test uses: Ghostscript's default (Debian's `libgs-common`, which the
/// test command installs).
const CMYK_PROFILE: &str = "/usr/share/color/icc/ghostscript/default_cmyk.icc";

/// A CMYK JPEG with an embedded CMYK profile (as Photoshop writes them: Adobe-inverted ink) is
/// converted through its profile, as LittleCMS converts it (Pillow's ImageCms): pure cyan is
/// (0, 156, 228)-like, not the naive (0, 255, 255).
#[tokio::test]
async fn cmyk_jpegs_are_converted_through_their_profile() {
    assert!(
        std::path::Path::new(CMYK_PROFILE).exists(),
        "{CMYK_PROFILE} is missing; the test command installs it (Debian's libgs-common)"
    );
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    // Patches of pure inks, a rich black and a mix, saved by Pillow with the profile embedded.
    let script = format!(
        "profile = open({CMYK_PROFILE:?}, 'rb').read()\n\
         cmyk = Image.new('CMYK', (96, 32))\n\
         inks = [(255, 0, 0, 0), (0, 255, 0, 0), (0, 0, 255, 0), (0, 0, 0, 255), (60, 30, 10, 40), (0, 0, 0, 0)]\n\
         for i, ink in enumerate(inks):\n    cmyk.paste(ink, (i * 16, 0, i * 16 + 16, 32))\n\
         jpeg = io.BytesIO()\n\
         cmyk.save(jpeg, 'JPEG', quality=100, icc_profile=profile)\n\
         open(sys.argv[1] + '.jpg', 'wb').write(jpeg.getvalue())\n\
         srgb = ImageCms.createProfile('sRGB')\n\
         out = ImageCms.profileToProfile(Image.open(io.BytesIO(jpeg.getvalue())), ImageCms.ImageCmsProfile(io.BytesIO(profile)), srgb, renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC, outputMode='RGB')"
    );
    let dir = crate::support::scratch_dir();
    let input = dir.path().join("cmyk");
    let reference = pillow_png(&script, &input);
    let jpeg = std::fs::read(dir.path().join("cmyk.jpg")).unwrap();
    let (status, png) = post(
        &server,
        "/v1/image/convert?format=png",
        "image/jpeg",
        &jpeg,
        "image/png",
    )
    .await;
    assert_eq!(status, 200, "{}", detail(&png));
    let ours = image::load_from_memory(&png).unwrap().to_rgba8();
    let cyan = ours.get_pixel(8, 16).0;
    assert!(
        cyan[1] < 200,
        "pure cyan came out {cyan:?}: the profile was not used (naively it is 0, 255, 255)"
    );
    // moxcms and LittleCMS agree within 1 level on every patch (measured: 0, 1, 0, 0, 1, 0),
    // against 100+ for the naive conversion. The reference uses the relative colorimetric
    // intent: towards Pillow's built-in sRGB, a v4 profile, LittleCMS's perceptual intent also
    // rescales this v2 profile's black point to the v4 perceptual reference medium (up to 21
    // levels on the magenta, yellow and rich black patches), which neither moxcms nor libvips
    // does; with a v2 sRGB profile its perceptual result is the relative one.
    let mut total = 0u32;
    for patch in 0..6u32 {
        let (x, y) = (patch * 16 + 8, 16);
        let (a, b) = (ours.get_pixel(x, y).0, reference.get_pixel(x, y).0);
        let worst = a.iter().zip(b).map(|(p, q)| p.abs_diff(q)).max().unwrap();
        total += u32::from(worst);
        assert!(worst <= 2, "patch {patch}: ours {a:?}, LittleCMS {b:?}");
    }
    assert!(total <= 4, "the patches differ by {total} levels in all");
}

/// A pipeline body over its limit (64 KiB) is a 413 that names the JSON body, not an image.
#[tokio::test]
async fn an_oversized_pipeline_is_named_as_a_json_body() {
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let body = format!(
        r#"{{"source": "0123456789abcdef0123456789abcdef.png", "pad": "{}"}}"#,
        " ".repeat(70_000)
    );
    let (status, answer) = post(
        &server,
        "/v1/image/pipeline",
        "application/json",
        body.as_bytes(),
        "application/json",
    )
    .await;
    assert_eq!(status, 413);
    let detail = detail(&answer);
    assert!(detail.contains("JSON body") && !detail.contains("image"), "{detail}");
}

/// `keep_metadata=true` with a TIFF result: the photograph's EXIF (camera, date, GPS; written
/// big-endian by Pillow) is there for an independent reader (Pillow) as the TIFF's own tags
/// and Exif/GPS directories, its pixel dimensions the result's; without `keep_metadata`, none.
#[tokio::test]
async fn tiff_results_keep_the_exif_as_their_own_tags() {
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let dir = crate::support::scratch_dir();
    let photo = dir.path().join("photo.jpg");
    let make = "from PIL import Image, TiffImagePlugin\n\
        import sys\n\
        R = TiffImagePlugin.IFDRational\n\
        e = Image.Exif()\n\
        e[0x010F] = 'Cam'\n\
        e.get_ifd(0x8769)[0x9003] = '2026:01:02 03:04:05'\n\
        e.get_ifd(0x8769)[0xA002] = 640\n\
        gps = e.get_ifd(0x8825)\n\
        gps[1] = 'N'\n\
        gps[2] = (R(51, 1), R(30, 1), R(1234, 100))\n\
        e.endian = '>'\n\
        Image.new('RGB', (64, 48), (200, 100, 50)).save(sys.argv[1], 'JPEG', exif=e.tobytes())\n";
    crate::support::python([std::ffi::OsStr::new("-c"), make.as_ref(), photo.as_os_str()]);
    let jpeg = std::fs::read(&photo).unwrap();
    let read = "from PIL import Image\n\
        import json, sys\n\
        im = Image.open(sys.argv[1])\n\
        e = im.getexif()\n\
        x, g = e.get_ifd(0x8769), e.get_ifd(0x8825)\n\
        print(json.dumps({'size': im.size, 'make': e.get(0x010F), 'taken': x.get(0x9003),\n\
            'width': x.get(0xA002), 'north': g.get(1), 'latitude': [float(v) for v in g.get(2, ())]}))\n";
    let mut seen = Vec::new();
    for keep in [true, false] {
        let target = format!("/v1/image/resize?width=32&format=tiff&keep_metadata={keep}");
        let (status, tiff) = post(&server, &target, "image/jpeg", &jpeg, "image/tiff").await;
        assert_eq!(status, 200, "{}", detail(&tiff));
        let path = dir.path().join(format!("result-{keep}.tiff"));
        std::fs::write(&path, &tiff).unwrap();
        let json = crate::support::python([std::ffi::OsStr::new("-c"), read.as_ref(), path.as_os_str()]);
        seen.push(serde_json::from_slice::<serde_json::Value>(&json).unwrap());
    }
    assert_eq!(
        seen[0],
        serde_json::json!({"size": [32, 24], "make": "Cam", "taken": "2026:01:02 03:04:05",
            "width": 32, "north": "N", "latitude": [51.0, 30.0, 12.34]}),
        "kept"
    );
    assert_eq!(
        seen[1],
        serde_json::json!({"size": [32, 24], "make": null, "taken": null, "width": null, "north": null, "latitude": []}),
        "dropped"
    );
}
