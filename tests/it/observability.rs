//! Metrics, probes and traces, checked by the real tools: promtool, a real Prometheus scraping
//! the admin listener, a real OTLP collector (rotel) receiving the spans, and readiness
//! following a real Garage that stops and comes back; the public listener's `/readyz` names
//! what is not ready without the internal details the admin listener gives.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use image_gateway::{
    config::{AuthMode, Backend as BackendKind, Config, CredentialsSource, Secret},
    object_name::ImageFormat,
};
use reqwest::header;

use crate::support::{
    Backend, BodyReader, Fixture, Garage, MISSING_OBJECT, S3Server, TestServer, client, free_port, metrics_text,
    pattern, raw_request, sample, until_storage_reachable, within,
};

/// Finds a tool given by `env` or on PATH, or fails naming the install step.
fn tool(env: &str, name: &str, install: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed: run `{install}` (the README's test command, scripts/test.sh, does it)")
        })
}

async fn metrics_count_requests_bytes_and_failures(backend: Backend) {
    const KEY: &str = "metrics-writer-0123456789";
    let fx = Fixture::with(backend, |c| {
        c.auth.mode = AuthMode::ApiKey;
        c.auth.api_keys = vec![Secret::new(format!("write:{KEY}"))];
        c.rate_limit.requests_per_minute = 600;
    })
    .await;
    let server = TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Png, pattern(12_345)).await;
    let big = fx.put(ImageFormat::Png, pattern(16 << 20)).await;
    let target = format!("/v1/image/download/{name}");
    assert_eq!(
        raw_request(server.addr, "GET", &target, &[("X-API-Key", KEY)])
            .await
            .status,
        200
    );
    assert_eq!(
        raw_request(server.addr, "HEAD", &target, &[("X-API-Key", KEY)])
            .await
            .status,
        200
    );
    assert_eq!(raw_request(server.addr, "GET", &target, &[]).await.status, 401);
    let missing = MISSING_OBJECT;
    assert_eq!(
        raw_request(server.addr, "GET", missing, &[("X-API-Key", KEY)])
            .await
            .status,
        404
    );
    let upload = within(
        "upload",
        client()
            .post(server.url("/v1/image/upload"))
            .header("X-API-Key", KEY)
            .header(header::CONTENT_TYPE, "image/gif")
            .body(include_bytes!("../fixtures/sample.gif").to_vec())
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(upload.status(), 201);
    // A client that goes away mid-download.
    let response = within(
        "get",
        client().get(server.download_url(&big)).header("X-API-Key", KEY).send(),
    )
    .await
    .unwrap();
    let mut body = BodyReader::new(response);
    body.read_at_least(64 << 10).await;
    drop(body);

    // Counted when each body ends or is dropped: wait for all six to settle.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = metrics_text(&server).await;
        let ok = [("route", "download"), ("method", "GET"), ("status", "200")];
        let settled = sample(&text, "http_responses_aborted_total", &[("reason", "client_gone")]) == Some(1.0)
            && sample(&text, "http_requests_in_flight", &[]) == Some(0.0)
            && sample(&text, "http_requests_total", &ok) == Some(2.0)
            // One scrape reads the families one after another (duration before in-flight and
            // totals), so a request finishing meanwhile can show in some and not yet in others.
            && sample(&text, "http_request_duration_seconds_count", &[("route", "download"), ("method", "GET")])
                == Some(4.0);
        if settled {
            break text;
        }
        assert!(Instant::now() < deadline, "metrics did not settle:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ok = [("route", "download"), ("method", "GET"), ("status", "200")];
    assert_eq!(
        sample(&text, "http_requests_total", &ok),
        Some(2.0),
        "the aborted download is counted too"
    );
    assert_eq!(
        sample(
            &text,
            "http_requests_total",
            &[("route", "download"), ("method", "HEAD")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "http_requests_total",
            &[("route", "download"), ("status", "401")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "http_requests_total",
            &[("route", "download"), ("status", "404")]
        ),
        Some(1.0)
    );
    let bytes = sample(&text, "http_response_body_bytes_total", &[("route", "download")]).unwrap();
    assert!(
        bytes >= 12_345.0 + 65_536.0,
        "bytes include the aborted download's: {bytes}"
    );
    assert!(bytes < 12_345.0 + (16 << 20) as f64, "{bytes}");
    let duration = [("route", "download"), ("method", "GET")];
    assert_eq!(
        sample(&text, "http_request_duration_seconds_count", &duration),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "auth_failures_total", &[("reason", "missing_key")]),
        Some(1.0)
    );
    assert_eq!(sample(&text, "image_uploads_total", &[("format", "GIF")]), Some(1.0));
    assert_eq!(sample(&text, "ratelimit_rejections_total", &[]), Some(0.0));
    let storage = fx.storage.backend();
    // A plain GET costs one `get` (metadata and body together); HEAD costs one `head`.
    let calls = |operation, outcome| {
        let labels = [("backend", storage), ("operation", operation), ("outcome", outcome)];
        sample(&text, "storage_operation_duration_seconds_count", &labels)
    };
    assert!(calls("get", "ok").unwrap() >= 2.0, "{text}");
    assert!(calls("head", "ok").unwrap() >= 1.0, "{text}");
    assert_eq!(calls("get", "not_found"), Some(1.0), "{text}");
    assert_eq!(calls("head", "not_found"), None, "{text}");
    assert!(sample(&text, "build_info", &[("version", env!("CARGO_PKG_VERSION"))]) == Some(1.0));
    assert!(sample(&text, "process_resident_memory_bytes", &[]).unwrap() > 1e6);
    assert!(sample(&text, "process_open_fds", &[]).unwrap() > 0.0);
    assert!(sample(&text, "readiness_check_duration_seconds_count", &[]).unwrap() >= 1.0);
    assert!(!text.contains(KEY), "no secret in metrics");
    assert!(!text.contains(name.as_str()), "no raw path or object name in labels");

    // `/metrics` lives on the admin listener only.
    assert_eq!(raw_request(server.addr, "GET", "/metrics", &[]).await.status, 404);

    // promtool's linter accepts the exposition.
    let promtool = tool("IG_PROMTOOL_BIN", "promtool", "bash scripts/install-prometheus.sh");
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

crate::on_every_backend!(metrics_count_requests_bytes_and_failures);

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn prometheus_query(port: u16, query: &str) -> Option<f64> {
    let encoded = percent_encoding::utf8_percent_encode(query, percent_encoding::NON_ALPHANUMERIC);
    let url = format!("http://127.0.0.1:{port}/api/v1/query?query={encoded}");
    let response = client().get(url).send().await.ok()?;
    let json: serde_json::Value = response.json().await.ok()?;
    let value = json["data"]["result"].get(0)?["value"][1].as_str()?.to_owned();
    value.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_admin_listener() {
    let prometheus = tool("IG_PROMETHEUS_BIN", "prometheus", "bash scripts/install-prometheus.sh");
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Jpeg, pattern(50_000)).await;
    let dir = crate::support::scratch_dir();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: image-gateway\n    static_configs:\n      - targets: ['{}']\n",
            server.admin
        ),
    )
    .unwrap();
    let port = free_port();
    let _prometheus = Process(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("start prometheus"),
    );
    let downloads = "sum(http_requests_total{route=\"download\",status=\"200\"})";
    let download_some = || async {
        for _ in 0..5 {
            assert_eq!(
                raw_request(server.addr, "GET", &format!("/v1/image/download/{name}"), &[])
                    .await
                    .status,
                200
            );
        }
    };
    download_some().await;
    let first = within("prometheus sees the downloads", async {
        loop {
            if let Some(v) = prometheus_query(port, downloads).await.filter(|v| *v > 0.0) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    download_some().await;
    let second = within("the counter rises", async {
        loop {
            if let Some(v) = prometheus_query(port, downloads).await.filter(|v| *v > first) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    assert!(second >= first + 5.0, "{first} → {second}");
    let p99 =
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{route=\"download\"}[1m])))";
    let quantile = within("a latency quantile", async {
        loop {
            if let Some(v) = prometheus_query(port, p99).await.filter(|v| v.is_finite()) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    assert!(quantile > 0.0 && quantile <= 60.0, "p99 = {quantile}s");
}

/// Readiness is this pod's own state: storage must be reached once before the pod is ready,
/// after that a storage outage shows in `storage_reachable` (and as 503 + Retry-After on each
/// request), not as unreadiness that would take every replica out of the Service at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_latches_and_storage_outages_show_in_a_gauge() {
    let garage = std::sync::Arc::new(tokio::task::spawn_blocking(Garage::start).await.unwrap());
    let mut config = garage.config();
    config.storage.timeout = image_gateway::config::units::HumanDuration(Duration::from_secs(1));
    let storage = crate::support::backend(&config).await;
    let g = garage.clone();
    tokio::task::spawn_blocking(move || g.kill()).await.unwrap();
    let server = TestServer::start_with(config, storage).await;
    server.wait_for("/livez").await;
    let not_yet = within("first readiness answer naming storage", async {
        loop {
            let r = raw_request(server.admin, "GET", "/readyz", &[]).await;
            if r.detail().contains("storage") {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert_eq!(not_yet.status, 503, "never reached storage: not ready");
    assert_eq!(
        raw_request(server.addr, "GET", "/readyz", &[]).await.status,
        503,
        "same answer on the main listener"
    );

    let g = garage.clone();
    tokio::task::spawn_blocking(move || g.restart()).await.unwrap();
    server.wait_for("/readyz").await;
    until_storage_reachable(&server, 1.0).await;

    let g = garage.clone();
    tokio::task::spawn_blocking(move || g.kill()).await.unwrap();
    until_storage_reachable(&server, 0.0).await;
    assert_eq!(
        raw_request(server.admin, "GET", "/readyz", &[]).await.status,
        200,
        "still ready: the outage is storage's, not this pod's"
    );
    let download = raw_request(server.addr, "GET", MISSING_OBJECT, &[]).await;
    assert_eq!(download.status, 503);
    assert_eq!(download.header("retry-after"), Some("5"));
    assert_eq!(
        raw_request(server.admin, "GET", "/livez", &[]).await.status,
        200,
        "still alive"
    );

    let g = garage.clone();
    tokio::task::spawn_blocking(move || g.restart()).await.unwrap();
    until_storage_reachable(&server, 1.0).await;
}

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

/// A real OTLP collector (rotel) printing the spans it receives to a file.
struct Collector {
    _process: Process,
    http: u16,
    spans_file: PathBuf,
}

impl Collector {
    async fn start(dir: &std::path::Path) -> Collector {
        let rotel = tool("IG_ROTEL_BIN", "rotel-agent", "bash scripts/install-python-tools.sh");
        let (grpc, http) = (free_port(), free_port());
        let spans_file = dir.join("rotel.out");
        let process = Process(
            Command::new(rotel)
                .args([
                    "start",
                    "--exporter",
                    "blackhole",
                    "--debug-log",
                    "traces",
                    "--debug-log-verbosity",
                    "detailed",
                ])
                .arg(format!("--otlp-grpc-endpoint=127.0.0.1:{grpc}"))
                .arg(format!("--otlp-http-endpoint=127.0.0.1:{http}"))
                .stdout(std::fs::File::create(&spans_file).unwrap())
                .stderr(Stdio::null())
                .spawn()
                .expect("start rotel"),
        );
        within("collector up", async {
            while tokio::net::TcpStream::connect(("127.0.0.1", http)).await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        Collector {
            _process: process,
            http,
            spans_file,
        }
    }

    fn spans(&self) -> String {
        std::fs::read_to_string(&self.spans_file).unwrap_or_default()
    }
}

/// The real binary serving one webp from `dir`, exporting traces to `endpoint` (with `env`).
async fn traced_gateway(dir: &std::path::Path, endpoint: &str, env: &[(&str, &str)]) -> (Process, SocketAddr) {
    let port = free_port();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join(TRACED_OBJECT), b"RIFF-bytes").unwrap();
    std::fs::write(data.join(PROCESSED_OBJECT), include_bytes!("../fixtures/sample.png")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_image-gateway"));
    command
        .env("IMAGE_GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("IMAGE_GATEWAY_ADMIN_LISTEN", "127.0.0.1:0")
        .env("IMAGE_GATEWAY_STORAGE__FS__ROOT", &data)
        .env("IMAGE_GATEWAY_SHUTDOWN__GRACE", "10ms")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_SERVICE_NAME", "image-gateway-test")
        .env("OTEL_TRACES_SAMPLER", "parentbased_always_on")
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let gateway = Process(command.spawn().unwrap());
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    within("gateway up", async {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    (gateway, addr)
}

/// SIGTERM, and the process's stderr once it has exited (the spans still queued are flushed on
/// the way out).
fn stop(gateway: &mut Process) -> String {
    let pid = gateway.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while gateway.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the gateway did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut log = String::new();
    std::io::Read::read_to_string(&mut gateway.0.stderr.take().unwrap(), &mut log).unwrap();
    log
}

const TRACED_OBJECT: &str = "0123456789abcdef0123456789abcdef.webp";
const PROCESSED_OBJECT: &str = "0123456789abcdef0123456789abcdef.png";

/// A processing job's three stages are spans, children of the request's server span though
/// they run on the processing pool's threads. The spans are exported while the gateway runs
/// (every 100 ms): this test is about their parents, not the flush at exit, so a slow machine
/// cannot make it depend on how long that flush may take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_stages_are_spans_of_the_request() {
    let dir = crate::support::scratch_dir();
    let collector = Collector::start(dir.path()).await;
    let endpoint = format!("http://127.0.0.1:{}", collector.http);
    let (mut gateway, addr) = traced_gateway(dir.path(), &endpoint, &[("OTEL_BSP_SCHEDULE_DELAY", "100")]).await;
    let target = format!("/v1/image/resize?source={PROCESSED_OBJECT}&width=4");
    let response = raw_request(
        addr,
        "POST",
        &target,
        &[("Content-Length", "0"), ("Accept", "image/png")],
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.detail());
    let spans = within("spans arrive", async {
        loop {
            let text = collector.spans();
            if text.contains("Name           : image encode") && text.contains("SPAN_KIND_SERVER") {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    stop(&mut gateway);
    let blocks: Vec<&str> = spans.split("Span #").skip(1).collect();
    let server_id = blocks
        .iter()
        .find(|b| b.contains("Name           : POST /v1/image/{operation}"))
        .and_then(|b| b.lines().find_map(|l| l.trim().strip_prefix("ID             : ")))
        .unwrap_or_else(|| panic!("a server span: {spans}"));
    for stage in ["image decode", "image process", "image encode"] {
        let block = blocks
            .iter()
            .find(|b| b.contains(&format!("Name           : {stage}")))
            .unwrap_or_else(|| panic!("no {stage} span: {spans}"));
        assert!(block.contains(&format!("Parent ID      : {server_id}")), "{block}");
        assert!(block.contains("operation: Str(resize)"), "{block}");
    }
}

/// Spans reach a real OTLP collector: the server span with its HTTP attributes, parented to
/// the caller's `traceparent`, and the storage calls as its children.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_reach_a_real_otlp_collector() {
    let dir = crate::support::scratch_dir();
    let collector = Collector::start(dir.path()).await;
    let name = TRACED_OBJECT;
    let (mut gateway, addr) = traced_gateway(dir.path(), &format!("http://127.0.0.1:{}", collector.http), &[]).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{parent}-01");
    let response = raw_request(
        addr,
        "GET",
        &format!("/v1/image/download/{name}"),
        &[("traceparent", &traceparent)],
    )
    .await;
    assert_eq!(response.status, 200);
    let log = stop(&mut gateway);
    assert!(
        log.contains(&format!("\"trace_id\":\"{trace_id}\"")),
        "the access line carries the trace id: {log}"
    );
    // One line per request, each field once: no copy of the request span beside it.
    let line = log.lines().find(|l| l.contains("\"target\":\"access\"")).unwrap();
    let fields: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).unwrap();
    let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "bytes",
            "client",
            "duration_ms",
            "level",
            "method",
            "outcome",
            "path",
            "route",
            "status",
            "target",
            "timestamp",
            "trace_id"
        ],
        "{line}"
    );
    assert_eq!(fields["client"], "127.0.0.1");
    assert_eq!(fields["path"], format!("/v1/image/download/{name}"));

    let spans = within("spans arrive", async {
        loop {
            let text = collector.spans();
            if text.contains("Name           : storage get") && text.contains("SPAN_KIND_SERVER") {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let blocks: Vec<&str> = spans.split("Span #").skip(1).collect();
    let server_span = blocks
        .iter()
        .find(|b| b.contains("SPAN_KIND_SERVER"))
        .expect("a server span");
    assert!(
        server_span.contains("Name           : GET /v1/image/download/{object_name}"),
        "{server_span}"
    );
    assert!(
        server_span.contains(&format!("Trace ID       : {trace_id}")),
        "{server_span}"
    );
    assert!(
        server_span.contains(&format!("Parent ID      : {parent}")),
        "{server_span}"
    );
    for attribute in [
        "http.request.method: Str(GET)".to_string(),
        "http.route: Str(/v1/image/download/{object_name})".to_string(),
        "http.response.status_code: Int(200)".to_string(),
        format!("url.path: Str(/v1/image/download/{name})"),
    ] {
        assert!(server_span.contains(&attribute), "{attribute} in {server_span}");
    }
    let server_id = server_span
        .lines()
        .find_map(|l| l.trim().strip_prefix("ID             : "))
        .unwrap();
    let child = blocks
        .iter()
        .find(|b| b.contains("Name           : storage get"))
        .expect("a storage get span");
    assert!(child.contains(&format!("Parent ID      : {server_id}")), "{child}");
    assert!(child.contains(&format!("Trace ID       : {trace_id}")));
    assert!(child.contains("storage.backend: Str(fs)"));
    assert!(
        !spans.contains("Name           : storage head"),
        "a plain GET makes one storage call"
    );
    assert!(spans.contains("service.name: Str(image-gateway-test)"));
}

/// A TLS listener in front of the collector, as a mesh sidecar or an ingress would be: it
/// terminates TLS with a certificate of its own CA and forwards the bytes; it counts the
/// handshakes that failed.
struct TlsFront {
    port: u16,
    failed_handshakes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ca_file: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    async fn start(dir: &std::path::Path, upstream: u16) -> TlsFront {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        let crate::support::Certificate { ca, cert, key } = crate::support::certificate(dir, "collector");
        let certs: Vec<_> = CertificateDer::pem_file_iter(&cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(&key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(rustls::crypto::aws_lc_rs::default_provider().into())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let failed_handshakes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let failed = failed_handshakes.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, failed) = (acceptor.clone(), failed.clone());
                tokio::spawn(async move {
                    match acceptor.accept(socket).await {
                        Ok(mut tls) => {
                            if let Ok(mut plain) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await {
                                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                            }
                        }
                        Err(_) => {
                            failed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        TlsFront {
            port,
            failed_handshakes,
            ca_file: ca,
            task,
        }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An `https://` collector: without its CA the export is refused by our TLS client (the
/// certificate is not trusted: nothing is sent); with `OTEL_EXPORTER_OTLP_CERTIFICATE` naming
/// the CA, the spans arrive through TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_reach_a_collector_over_tls() {
    let dir = crate::support::scratch_dir();
    let collector = Collector::start(dir.path()).await;
    let front = TlsFront::start(dir.path(), collector.http).await;
    let endpoint = format!("https://127.0.0.1:{}", front.port);
    let path = format!("/v1/image/download/{TRACED_OBJECT}");

    let (mut untrusting, addr) = traced_gateway(dir.path(), &endpoint, &[]).await;
    assert_eq!(raw_request(addr, "GET", &path, &[]).await.status, 200);
    stop(&mut untrusting);
    within("the untrusted certificate is refused", async {
        while front.failed_handshakes.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(!collector.spans().contains("SPAN_KIND_SERVER"), "nothing got through");

    let ca = front.ca_file.to_str().unwrap();
    let (mut trusting, addr) = traced_gateway(dir.path(), &endpoint, &[("OTEL_EXPORTER_OTLP_CERTIFICATE", ca)]).await;
    assert_eq!(raw_request(addr, "GET", &path, &[]).await.status, 200);
    let log = stop(&mut trusting);
    assert!(!log.contains("traces disabled"), "{log}");
    let spans = within("spans arrive over TLS", async {
        loop {
            let text = collector.spans();
            if text.contains("SPAN_KIND_SERVER") {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(spans.contains("service.name: Str(image-gateway-test)"));

    // A CA file that holds no certificate is a clear start-up message, not a silent exporter.
    let bad = dir.path().join("empty.pem");
    std::fs::write(&bad, "not a certificate\n").unwrap();
    let (mut misconfigured, _) = traced_gateway(
        dir.path(),
        &endpoint,
        &[("OTEL_EXPORTER_OTLP_CERTIFICATE", bad.to_str().unwrap())],
    )
    .await;
    let log = stop(&mut misconfigured);
    assert!(
        log.contains("traces disabled") && log.contains("holds no certificate"),
        "{log}"
    );
}
