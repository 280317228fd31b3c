//! Processing jobs are bounded whatever the client sends: an SVG's filters are costed before
//! rendering, a job past `processing.job_timeout` stops, a job whose client hangs up stops and
//! frees its place (and is counted), every step's result is held to `max_output_pixels`, and a
//! compressed colour profile cannot inflate beyond its bound.

use std::time::Duration;

use image::DynamicImage;
use image_gateway::{
    config::units::HumanDuration,
    object_name::{ImageFormat, ObjectName},
};

use crate::{
    process_ops::{card, encoded},
    support::{Backend, Fixture, TestServer, client, detail, memory_bytes, metrics_text, post, sample, within},
};

/// 230 bytes that used to pin a worker for good: turbulence of 10¹⁰ octaves.
const TURBULENCE: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><filter id="f"><feTurbulence baseFrequency="0.01" numOctaves="10000000000"/></filter><rect width="64" height="64" filter="url(#f)"/></svg>"#;

/// A pipeline of 16 blurs on a stored photograph-like card: many seconds of work in steps of
/// well under a second each (the budget is checked between steps).
fn heavy_pipeline(source: &impl std::fmt::Display) -> String {
    let steps: Vec<String> = (0..16)
        .map(|_| r#"{"op": "filter/blur", "sigma": 8}"#.to_owned())
        .collect();
    format!(
        r#"{{"source": "{source}", "format": "png", "steps": [{}]}}"#,
        steps.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_svg_filters_are_refused_and_leave_the_workers_free() {
    let fx = Fixture::with(Backend::Fs, |c| {
        c.processing.workers = 2;
        c.processing.queue = 16;
    })
    .await;
    let server = TestServer::start(&fx).await;
    // More at once than workers and queue hold: before the cost bound, 18 of these filled
    // every place for good and every processing request was 503 until a restart.
    let hostile = (0..24).map(|_| {
        post(
            &server,
            "/v1/image/convert?format=png",
            "image/svg+xml",
            TURBULENCE.as_bytes(),
            "image/png",
        )
    });
    let answers = within("24 hostile SVGs", futures_util::future::join_all(hostile)).await;
    let refused = answers.iter().filter(|(status, _)| *status == 422).count();
    for (status, body) in &answers {
        // 503 only when every place was taken at that instant; never an image, never a 500.
        assert!(matches!(status, 422 | 503), "{status}: {}", detail(body));
        if *status == 422 {
            assert!(detail(body).contains("filters would cost"), "{}", detail(body));
        }
    }
    assert!(refused >= 1, "no SVG was refused for its filters: {answers:?}");
    let ordinary = TURBULENCE.replace("10000000000", "3");
    let (status, body) = post(
        &server,
        "/v1/image/convert?format=png",
        "image/svg+xml",
        ordinary.as_bytes(),
        "image/png",
    )
    .await;
    assert_eq!(status, 200, "{}", detail(&body));
    assert_eq!(image::load_from_memory(&body).unwrap().width(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_timeout_is_stopped_with_a_422() {
    let fx = Fixture::with(Backend::Fs, |c| {
        c.processing.job_timeout = HumanDuration(Duration::from_millis(200))
    })
    .await;
    let name = stored_card(&fx).await;
    let server = TestServer::start(&fx).await;
    let (status, body) = post(
        &server,
        "/v1/image/pipeline",
        "application/json",
        heavy_pipeline(&name).as_bytes(),
        "image/png",
    )
    .await;
    assert_eq!(status, 422, "{}", detail(&body));
    assert!(detail(&body).contains("processing.job_timeout"), "{}", detail(&body));
    let text = metrics_text(&server).await;
    let timed_out = [("operation", "pipeline"), ("outcome", "timed_out")];
    assert_eq!(sample(&text, "image_processing_jobs_total", &timed_out), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_client_hangs_up_stops_and_frees_its_place() {
    let fx = Fixture::with(Backend::Fs, |c| {
        c.processing.workers = 1;
        c.processing.queue = 0;
    })
    .await;
    let name = stored_card(&fx).await;
    let server = TestServer::start(&fx).await;
    // The client gives up after a second, mid-job.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let sent = impatient
        .post(server.url("/v1/image/pipeline"))
        .header("content-type", "application/json")
        .header("accept", "image/png")
        .body(heavy_pipeline(&name))
        .send()
        .await;
    assert!(
        sent.is_err(),
        "the pipeline ended within a second; the test proves nothing"
    );
    // The place is free again once the worker reaches its next check: the job did not run on to
    // its encode, and it was counted.
    within("the abandoned job's place", async {
        loop {
            let text = metrics_text(&server).await;
            if sample(&text, "image_processing_queue_depth", &[]) == Some(0.0) {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let text = metrics_text(&server).await;
    let abandoned = [("operation", "pipeline"), ("outcome", "abandoned")];
    assert_eq!(
        sample(&text, "image_processing_jobs_total", &abandoned),
        Some(1.0),
        "{text}"
    );
    let encoded_samples = sample(
        &text,
        "image_processing_duration_seconds_count",
        &[("operation", "pipeline"), ("stage", "encode")],
    );
    assert_eq!(encoded_samples.unwrap_or(0.0), 0.0, "the abandoned job ran to its end");
    // The request is logged and counted, as nginx's 499 (client closed request).
    let closed = [("route", "pipeline"), ("method", "POST"), ("status", "499")];
    assert_eq!(sample(&text, "http_requests_total", &closed), Some(1.0), "{text}");
    assert_eq!(sample(&text, "http_requests_in_flight", &[]), Some(0.0));
    let small = encoded(&DynamicImage::ImageRgb8(card(8, 8)), image::ImageFormat::Png);
    let (status, _) = post(
        &server,
        "/v1/image/flip?direction=vertical",
        "image/png",
        &small,
        "image/png",
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_steps_result_is_held_to_the_output_limit() {
    let fx = Fixture::with(Backend::Fs, |c| c.processing.max_output_pixels = 1000).await;
    let server = TestServer::start(&fx).await;
    let png = encoded(&DynamicImage::ImageRgb8(card(40, 40)), image::ImageFormat::Png);
    for target in [
        "/v1/image/flip?direction=horizontal",
        "/v1/image/rotate?angle=90",
        "/v1/image/filter/grayscale",
        "/v1/image/adjust/brightness?value=10",
        "/v1/image/convert?format=webp",
    ] {
        let (status, body) = post(&server, target, "image/png", &png, "image/png").await;
        assert_eq!(
            status, 400,
            "{target}: 1,600 pixels were returned past a limit of 1,000"
        );
        assert!(
            detail(&body).contains("processing.max_output_pixels"),
            "{target}: {}",
            detail(&body)
        );
    }
    let (status, _) = post(&server, "/v1/image/resize?width=20", "image/png", &png, "image/png").await;
    assert_eq!(status, 200, "a result within the limit");
}

/// An 800×800 photo-like PNG, stored: `heavy_pipeline` takes seconds on it.
async fn stored_card(fx: &Fixture) -> ObjectName {
    fx.put(
        ImageFormat::Png,
        encoded(&DynamicImage::ImageRgb8(card(800, 800)), image::ImageFormat::Png),
    )
    .await
}

/// A 16×16 PNG whose iCCP chunk inflates to 64 MiB (64 KB in the file; 400 MB took 811 MB of
/// memory, inflated by the PNG decoder and copied once more): refused before any decoder
/// reads it, for processing and for `extract/metadata`; the same image with an ordinary
/// profile is processed.
#[tokio::test]
async fn a_colour_profile_that_inflates_past_its_bound_is_refused() {
    use image::ImageEncoder;
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let png_with_profile = |profile: Vec<u8>| {
        let mut bytes = Vec::new();
        let mut encoder = image::codecs::png::PngEncoder::new(&mut bytes);
        encoder.set_icc_profile(profile).unwrap();
        encoder
            .write_image(&[128; 16 * 16 * 3], 16, 16, image::ExtendedColorType::Rgb8)
            .unwrap();
        bytes
    };
    let bomb = png_with_profile(vec![0; 64 << 20]);
    assert!(bomb.len() < 200_000, "{} bytes", bomb.len());
    for target in ["/v1/image/convert?format=jpeg", "/v1/image/extract/metadata"] {
        let (status, body) = post(&server, target, "image/png", &bomb, "image/jpeg").await;
        assert_eq!(status, 422, "{target}: {}", detail(&body));
        assert!(detail(&body).contains("colour profile"), "{target}: {}", detail(&body));
    }
    let ordinary = png_with_profile(vec![0; 3144]);
    let (status, body) = post(
        &server,
        "/v1/image/convert?format=jpeg",
        "image/png",
        &ordinary,
        "image/jpeg",
    )
    .await;
    assert_eq!(status, 200, "{}", detail(&body));
}

/// `filter/blur` of a 16-bit RGBA image takes at most one strip of columns (4 MiB) beyond what
/// converting the same image takes, not two more copies of the image (with a kernel of 55
/// taps or more, the `image` crate's blur held its input, its output and a whole intermediate
/// image: σ 50 on 50 MP reached 1.12 GB). Measured on the real binary, a fresh process per
/// request: the most it was resident during the job, above what it was resident before. JPEG
/// answers, whose encoding needs only an 8-bit RGB copy, so the blur's own memory shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blur_of_a_16_bit_image_takes_one_strip_beyond_a_conversion() {
    let (w, h) = (1536u32, 1024u32);
    // A smooth 16-bit gradient: 12 MiB of pixels, a few hundred KB of PNG.
    let gradient =
        image::ImageBuffer::from_fn(w, h, |x, y| image::Rgba([x as u16 * 40, y as u16 * 64, 40_000, 65_535]));
    let png = encoded(&DynamicImage::ImageRgba16(gradient), image::ImageFormat::Png);
    let mut grown = Vec::new();
    for target in [
        "/v1/image/convert?format=jpeg",
        "/v1/image/filter/blur?sigma=9&format=jpeg",
    ] {
        let env = [
            ("IMAGE_GATEWAY_LOG__LEVEL", "warn"),
            ("IMAGE_GATEWAY_PROCESSING__JOB_TIMEOUT", "10m"),
        ];
        let server = crate::cli::Spawned::start(&env, std::process::Stdio::inherit()).await;
        let pid = server.child.id();
        let before = memory_bytes("VmRSS", pid);
        let request = client()
            .post(format!("http://{}{target}", server.addr))
            .header("content-type", "image/png")
            .header("accept", "image/jpeg")
            .body(png.clone());
        let response = within(target, request.send()).await.unwrap();
        assert_eq!(response.status(), 200, "{target}");
        let out = response.bytes().await.unwrap();
        let answer = image::load_from_memory(&out).unwrap();
        assert_eq!((answer.width(), answer.height()), (w, h));
        grown.push(memory_bytes("VmHWM", pid).saturating_sub(before));
    }
    let (convert, blur) = (grown[0] >> 20, grown[1] >> 20);
    eprintln!("{w}x{h} RGBA16: convert {convert} MiB, blur {blur} MiB above the resident memory");
    assert!(
        blur <= convert + 6,
        "the blur took {blur} MiB, converting the same image {convert} MiB (the image is 12 MiB)"
    );
}

/// The side of [`large_png`].
const SIDE: u32 = 1536;

/// A 1536×1536 RGBA8 PNG (9 MiB of pixels) with detail in every row, opaque.
fn large_png() -> Vec<u8> {
    large_png_with_alpha(|_, _| u8::MAX)
}

/// [`large_png`] with the alpha of `alpha(x, y)`.
fn large_png_with_alpha(alpha: impl Fn(u32, u32) -> u8) -> Vec<u8> {
    let pixels = image::ImageBuffer::from_fn(SIDE, SIDE, |x, y| {
        image::Rgba([x as u8, y as u8, (x ^ y) as u8, alpha(x, y)])
    });
    encoded(&DynamicImage::ImageRgba8(pixels), image::ImageFormat::Png)
}

/// What `requests` simultaneous conversions of `png` (stored, so that the jobs read it
/// themselves and the requests hold nothing) to JPEG did to a fresh server of 8 workers whose
/// memory budget is `budget`: the most the process was resident above what it was before,
/// each answer's status and `detail`, and the server's metrics afterwards.
async fn converted_at_once(png: &[u8], requests: usize, budget: &str) -> (u64, Vec<(u16, String)>, String) {
    converted_to_at_once(png, "jpeg", requests, budget).await
}

/// [`converted_at_once`], encoding `format`.
async fn converted_to_at_once(
    png: &[u8],
    format: &str,
    requests: usize,
    budget: &str,
) -> (u64, Vec<(u16, String)>, String) {
    let server = crate::cli::Spawned::start(
        &[
            ("IMAGE_GATEWAY_LOG__LEVEL", "warn"),
            ("IMAGE_GATEWAY_PROCESSING__WORKERS", "8"),
            ("IMAGE_GATEWAY_UPLOAD__MAX_CONCURRENT_PER_CLIENT", "16"),
            // Jobs that wait for memory wait within their deadline: a slow machine must not
            // turn a wait into a refusal here.
            ("IMAGE_GATEWAY_PROCESSING__JOB_TIMEOUT", "10m"),
            // Nor may the request's own bound answer 408 first (a debug-build libaom encode of
            // 1536² beside the other tests took over the default minute).
            ("IMAGE_GATEWAY_SERVER__REQUEST_TIMEOUT", "10m"),
            // As the container image sets it (Dockerfile).
            ("GLIBC_TUNABLES", GLIBC_TUNABLES),
            ("IMAGE_GATEWAY_PROCESSING__MEMORY_BUDGET", budget),
        ],
        std::process::Stdio::inherit(),
    )
    .await;
    let name = "0123456789abcdef0123456789abcdef.png";
    std::fs::write(server.data().join(name), png).unwrap();
    let pid = server.child.id();
    let before = memory_bytes("VmRSS", pid);
    // Debug-build jobs (libaom is built by cmake without optimisation there) that wait for one
    // another on a loaded machine: each request has the whole bound below, not the usual 60 s.
    let patient = crate::support::client_waiting(JOBS_BOUND);
    let conversions = (0..requests).map(|_| async {
        let response = patient
            .post(format!("http://{}/v1/image/pipeline", server.addr))
            .header("content-type", "application/json")
            .header("accept", format!("image/{format}"))
            .body(format!(
                r#"{{"source": "{name}", "format": "{format}", "steps": [{{"op": "flip", "direction": "vertical"}}]}}"#
            ))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        (status, if status == 200 { String::new() } else { detail(&body) })
    });
    // Eight debug-build jobs one after another on a loaded machine: a generous bound of its own.
    let answers = tokio::time::timeout(JOBS_BOUND, futures_util::future::join_all(conversions))
        .await
        .expect("the jobs finished within 10 minutes");
    let grown = memory_bytes("VmHWM", pid).saturating_sub(before);
    let metrics = client()
        .get(format!("http://{}/metrics", server.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    eprintln!(
        "{}-byte PNG: {requests} at once with a budget of {budget}: grew {grown} bytes",
        png.len()
    );
    (grown, answers, metrics)
}

const MIB: u64 = 1 << 20;

/// How long the jobs of [`converted_at_once`] may take together.
const JOBS_BOUND: Duration = Duration::from_secs(600);

/// The container image's allocator setting, read from the Dockerfile.
const GLIBC_TUNABLES: &str = "glibc.malloc.arena_max=2";

#[test]
fn the_allocator_setting_is_the_container_images() {
    let dockerfile = include_str!("../../Dockerfile");
    assert!(dockerfile.contains(&format!("GLIBC_TUNABLES={GLIBC_TUNABLES}")));
}

/// [`large_png`] and the memory the jobs of [`converted_at_once`] (a vertical flip, encoded as
/// `output`) reserve for it.
fn large_png_and_estimate(output: ImageFormat) -> (Vec<u8>, u64) {
    let png = large_png();
    let estimate = flip_estimate(&png, output);
    (png, estimate)
}

/// The memory a job of [`converted_at_once`] reserves for `png`, a [`SIDE`]-square PNG.
fn flip_estimate(png: &[u8], output: ImageFormat) -> u64 {
    use image_gateway::processing::{Flip, Op, estimated_memory};
    let side = u64::from(SIDE);
    let flip = [Op::Flip(Flip::Vertical)];
    estimated_memory(ImageFormat::Png, png, Some((side, side)), &flip, u64::MAX, output)
}

/// The estimate admission goes by is an upper bound of what a job really holds: measured on
/// the real binary, the most it was resident during the job above what it was before; for a
/// JPEG result and AVIF ones, whose encoders hold their own copies of the image: an opaque
/// image (libaom in the container image's build) and a translucent one (rav1e in every build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_holds_no_more_memory_than_its_estimate() {
    let (opaque, translucent) = (large_png(), large_png_with_alpha(|x, _| (x % 200) as u8 + 55));
    for (format, output, png, kind) in [
        ("jpeg", ImageFormat::Jpeg, &opaque, "opaque"),
        ("avif", ImageFormat::Avif, &opaque, "opaque"),
        ("avif", ImageFormat::Avif, &translucent, "translucent"),
    ] {
        let estimate = flip_estimate(png, output);
        let (grown, answers, _) = converted_to_at_once(png, format, 1, "4GiB").await;
        assert_eq!(answers[0].0, 200, "{}", answers[0].1);
        eprintln!(
            "{SIDE}×{SIDE} {kind} RGBA8 PNG flipped to {format}: estimated {} MiB, grew {} MiB",
            estimate / MIB,
            grown / MIB
        );
        assert!(
            grown <= estimate,
            "{format}: the job grew the process by {grown} bytes, its estimate was {estimate}"
        );
        assert!(
            grown >= estimate / 4,
            "{format}: the estimate ({estimate}) is over four times what the job took ({grown})"
        );
    }
}

/// Eight large conversions at once on eight workers: with room for one at a time, the others
/// wait for memory instead of decoding together, and the process stays within twice its budget
/// (the jobs' own memory within the budget, and what the allocator's two arenas keep of it);
/// with room for all, the same requests take several times as much. Under glibc's default of an
/// arena per worker thread, each arena kept its worker's largest job and the budget bounded
/// nothing (252 MiB with it, 258 without).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_jobs_wait_for_memory_and_the_process_stays_within_twice_its_budget() {
    let (png, estimate) = large_png_and_estimate(ImageFormat::Jpeg);
    // One job fits, two do not.
    let budget = estimate * 3 / 2;
    let (bounded, answers, metrics) = converted_at_once(&png, 8, &budget.to_string()).await;
    for (status, detail) in &answers {
        assert_eq!(*status, 200, "{detail}");
    }
    let waited = sample(&metrics, "image_processing_memory_waits_total", &[]).unwrap_or(0.0);
    assert!(waited >= 1.0, "no job waited for memory: {waited}");
    assert_eq!(
        sample(&metrics, "image_processing_memory_reserved_bytes", &[]),
        Some(0.0)
    );
    assert_eq!(
        sample(&metrics, "image_processing_memory_budget_bytes", &[]),
        Some(budget as f64)
    );
    let (free, answers, _) = converted_at_once(&png, 8, "4GiB").await;
    assert!(answers.iter().all(|(status, _)| *status == 200));
    eprintln!(
        "8 conversions at once: {} MiB with a budget of {} MiB, {} MiB without ({waited} waited)",
        bounded / MIB,
        budget / MIB,
        free / MIB
    );
    assert!(
        bounded <= 2 * budget,
        "the process grew by {bounded} bytes, over twice its budget of {budget}"
    );
    assert!(
        free > 3 * budget,
        "without a budget the same jobs took only {free} bytes"
    );
}

/// A job that could never fit is refused before anything is decoded, with the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_larger_than_the_whole_budget_is_refused_before_decoding() {
    let png = large_png();
    let (grown, answers, metrics) = converted_at_once(&png, 1, "16MiB").await;
    let (status, detail) = &answers[0];
    assert_eq!(*status, 413, "{detail}");
    assert!(
        detail.contains("estimated") && detail.contains("memory budget of 16 MiB"),
        "{detail}"
    );
    assert!(grown < 8 * MIB, "the process grew by {} MiB", grown / MIB);
    assert_eq!(
        sample(
            &metrics,
            "image_processing_jobs_total",
            &[("operation", "pipeline"), ("outcome", "refused")]
        ),
        Some(1.0)
    );
}
