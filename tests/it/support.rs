//! Test support, for every test file: the storage backends, the real gateway on an ephemeral
//! port, clients and raw requests, the keys and samples tests share, a download load with its
//! tally, and two counts of what the gateway asks of storage (a wrapper at the backend, and
//! the gateway's own metrics). A helper two test files need lives here, once.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener as StdListener, TcpStream},
    path::{Path, PathBuf},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

pub use crate::s3_servers::{Garage, Minio, S3Server};
use bytes::Bytes;
use futures_util::StreamExt;
use image_gateway::{
    Config, Listeners, Overrides,
    config::{AuthMode, Secret, Settings, units::HumanDuration},
    metrics::Metrics,
    object_name::{ImageFormat, ObjectName},
    storage::{self, ByteRange, GetResult, ListPage, MemoryStorage, ObjectMeta, Storage, StorageError},
};
use tempfile::TempDir;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// A temporary folder under `<tmp>/image-gateway-it/<pid>/`. The shared servers live in
/// statics, which are never dropped, so their folders would outlive the test process (MinIO's
/// alone are tens of megabytes per run); the first call removes the folders of test processes
/// that are gone.
pub fn scratch_dir() -> TempDir {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    let root = ROOT.get_or_init(|| {
        let base = std::env::temp_dir().join("image-gateway-it");
        let proc_fs = Path::new("/proc/self").exists();
        for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let pid = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok());
            if proc_fs && pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let root = base.join(std::process::id().to_string());
        std::fs::create_dir_all(&root).unwrap();
        root
    });
    tempfile::tempdir_in(root).unwrap()
}

/// Runs the Python of the test tools' venv (Pillow, pyvips with its own libvips, numpy and
/// scikit-image's sample photographs; scripts/install-python-tools.sh) with `args`; returns
/// its standard output, or panics with its standard error.
pub fn python<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Vec<u8> {
    let interpreter = std::env::var_os("IG_PYTHON").unwrap_or_else(|| {
        panic!("IG_PYTHON is not set: run `bash scripts/install-python-tools.sh` and set IG_PYTHON to its venv's python (scripts/test.sh does both)")
    });
    let output = std::process::Command::new(interpreter).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "python: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A memory figure of process `pid` from `/proc/<pid>/status` (`VmRSS`: resident now; `VmHWM`:
/// the most it has been resident), in bytes; 0 when the process is gone.
pub fn memory_bytes(field: &str, pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// The download path of a valid object name that no fixture ever stores.
pub const MISSING_OBJECT: &str = "/v1/image/download/0123456789abcdef0123456789abcdef.png";

/// The API keys and the URL-signing key the access tests configure: one key of each scope (read;
/// `write:` also uploads and processes) and a signing key.
pub const READER: &str = "reader-0123456789abcdef";
pub const WRITER: &str = "writer-0123456789abcdef";
pub const SIGNING_KEY: &str = "signing-key-0123456789abcdef";

/// The sample PNG (24×16) and JPEG, as in [`samples`].
pub const PNG: &[u8] = include_bytes!("../fixtures/sample.png");
pub const JPEG: &[u8] = include_bytes!("../fixtures/sample.jpg");

/// Requires an API key ([`READER`], or [`WRITER`] with the write scope) and signs URLs with
/// [`SIGNING_KEY`].
pub fn with_keys(config: &mut Config) {
    config.auth.mode = AuthMode::ApiKey;
    config.auth.api_keys = vec![Secret::new(READER), Secret::new(format!("write:{WRITER}"))];
    config.auth.url_signing_key = vec![Secret::new(SIGNING_KEY)];
}

/// Every await in a test is bounded by this.
pub const AWAIT_LIMIT: Duration = Duration::from_secs(60);

pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(AWAIT_LIMIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {AWAIT_LIMIT:?}: {what}"))
}

/// A port for a child process to listen on. Ports come from below Linux's ephemeral range
/// (32768+), where the OS never hands out `bind(:0)` ports, and each is handed out once per
/// test process: a port freed here can never be taken meanwhile by a test server that bound
/// port 0, which would send one test's requests to another test's server.
pub fn free_port() -> u16 {
    use std::sync::atomic::AtomicU16;
    const FIRST: u16 = 10_000;
    const LAST: u16 = 32_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        FIRST + (std::process::id() % 2_000) as u16 * 10,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        if port >= LAST {
            NEXT.store(FIRST, Ordering::SeqCst);
            continue;
        }
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn hex(n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(n);
    s
}

/// A blocking `GET` over a fresh connection: the status and the body.
pub fn blocking_get(port: u16, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = std::str::from_utf8(raw.get(9..12)?).ok()?.parse().ok()?;
    Some((status, raw[split + 4..].to_vec()))
}

// ---------------------------------------------------------------------------------------------
// Backends

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Fs,
    Garage,
    Minio,
    /// `fs` with the hot-object cache on (it is off by default there).
    FsCached,
    /// MinIO with the hot-object cache on (the plain S3 variants turn it off, so that tests of
    /// storage behaviour see every call reach storage).
    MinioCached,
    /// The in-memory backend alone (storage tests only: the service cannot be configured with it).
    Memory,
    /// The in-memory backend under the wrappers the service puts around every backend:
    /// `Instrumented(Timeout(memory))` (storage tests only).
    WrappedMemory,
}

impl Backend {
    /// The shared S3 server behind this backend (started on first use), or `None` for `fs`.
    pub fn s3_server(self) -> Option<&'static dyn S3Server> {
        match self {
            Backend::Fs | Backend::FsCached | Backend::Memory | Backend::WrappedMemory => None,
            Backend::Garage => Some(Garage::shared()),
            Backend::Minio | Backend::MinioCached => Some(Minio::shared()),
        }
    }

    pub fn is_s3(self) -> bool {
        matches!(self, Backend::Garage | Backend::Minio | Backend::MinioCached)
    }

    /// Whether the hot-object cache is on.
    pub fn is_cached(self) -> bool {
        matches!(self, Backend::FsCached | Backend::MinioCached)
    }

    /// Whether the service can serve it from its configuration alone.
    fn is_configurable(self) -> bool {
        !matches!(self, Backend::Memory | Backend::WrappedMemory)
    }
}

/// How long a test's own storage calls (setup, inspection) may take: generous, and never the
/// product's `storage.timeout`, so a slow machine slows a test down but does not fail it.
pub const SETUP_STORAGE_TIMEOUT: Duration = Duration::from_secs(600);

/// A storage for a test's own calls: the backend of `config` alone (an S3 client's timeouts at
/// [`SETUP_STORAGE_TIMEOUT`]).
pub async fn setup_storage(config: &Config) -> Arc<dyn Storage> {
    let mut config = config.clone();
    config.storage.timeout = HumanDuration(SETUP_STORAGE_TIMEOUT);
    within("build setup storage", storage::backend(&settings(config).storage, None))
        .await
        .unwrap()
}

/// `config` validated, as the service validates its own.
pub fn settings(config: Config) -> Settings {
    Settings::new(config).expect("a valid configuration")
}

/// The bare configured backend of `config` (`storage.timeout` its own).
pub async fn backend(config: &Config) -> Arc<dyn Storage> {
    let settings = settings(config.clone());
    within("build storage", storage::backend(&settings.storage, None))
        .await
        .unwrap()
}

/// A configured, empty storage of one kind, plus what keeps it alive.
pub struct Fixture {
    pub backend: Backend,
    pub config: Config,
    /// The storage as the service sees it (timeouts, instrumentation, cache): give it to the
    /// server, and use it where the test is about it.
    pub storage: Arc<dyn Storage>,
    /// The same objects for the test's own setup and inspection, without the product's
    /// timeouts or cache ([`SETUP_STORAGE_TIMEOUT`]).
    pub setup: Arc<dyn Storage>,
    _dir: Option<TempDir>,
}

impl Fixture {
    pub async fn new(backend: Backend) -> Fixture {
        Self::with(backend, |_| {}).await
    }

    pub async fn with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Fixture {
        let (mut config, dir) = match tokio::task::spawn_blocking(move || backend.s3_server()).await.unwrap() {
            None => {
                let dir = scratch_dir();
                let mut config = Config::default();
                config.storage.fs.root = dir.path().join("images");
                (config, Some(dir))
            }
            Some(server) => (server.config(), None),
        };
        config.storage.timeout = HumanDuration(Duration::from_secs(5));
        // The test command runs the processing tests a second time with the pure-Rust JPEG
        // decoder, from the same build (IG_JPEG_DECODER=rust).
        if std::env::var("IG_JPEG_DECODER").as_deref() == Ok("rust") {
            config.processing.jpeg_decoder = image_gateway::config::JpegDecoder::Rust;
        }
        config.shutdown.grace = HumanDuration(Duration::from_millis(100));
        config.cache.enabled = Some(backend.is_cached());
        adjust(&mut config);
        let metrics = Arc::new(Metrics::new());
        let memory: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let setup = match backend {
            Backend::Memory | Backend::WrappedMemory => memory.clone(),
            _ => setup_storage(&config).await,
        };
        // The stack the service builds (`storage::build`) around the backend.
        let valid = settings(config.clone());
        let storage: Arc<dyn Storage> = match backend {
            Backend::Memory => memory,
            Backend::WrappedMemory => storage::build(memory, &valid.storage, valid.cache.as_ref(), metrics),
            _ => {
                let bare = self::backend(&config).await;
                storage::build(bare, &valid.storage, valid.cache.as_ref(), metrics)
            }
        };
        Fixture {
            backend,
            config,
            storage,
            setup,
            _dir: dir,
        }
    }

    /// The bare backend (no timeout, metrics or cache): what a test wraps (to count or to inject
    /// faults) before handing it to [`TestServer::start_with`], which builds the service's stack
    /// around it.
    pub fn backend(&self) -> Arc<dyn Storage> {
        self.setup.clone()
    }

    /// Stores `data` directly (not through HTTP, nor through the product's storage timeout)
    /// and returns its name.
    pub async fn put(&self, format: ImageFormat, data: impl Into<Bytes>) -> ObjectName {
        let name = ObjectName::generate(format);
        within("put", self.setup.put(&name, data.into())).await.unwrap();
        name
    }
}

/// The sample image of each format (real files made with Pillow), with the extension used.
pub fn samples() -> Vec<(ImageFormat, &'static str, &'static [u8])> {
    vec![
        (ImageFormat::Png, "image/png", include_bytes!("../fixtures/sample.png")),
        (
            ImageFormat::Jpeg,
            "image/jpeg",
            include_bytes!("../fixtures/sample.jpg"),
        ),
        (
            ImageFormat::Webp,
            "image/webp",
            include_bytes!("../fixtures/sample.webp"),
        ),
        (ImageFormat::Gif, "image/gif", include_bytes!("../fixtures/sample.gif")),
        (ImageFormat::Bmp, "image/bmp", include_bytes!("../fixtures/sample.bmp")),
        (
            ImageFormat::Tiff,
            "image/tiff",
            include_bytes!("../fixtures/sample.tiff"),
        ),
        (
            ImageFormat::Svg,
            "image/svg+xml",
            include_bytes!("../fixtures/sample.svg"),
        ),
        // Made by Pillow (libavif): another encoder than the gateway's.
        (
            ImageFormat::Avif,
            "image/avif",
            include_bytes!("../fixtures/sample.avif"),
        ),
    ]
}

/// Deterministic, non-repeating-looking bytes.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9E37_79B9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The gateway

pub struct TestServer {
    pub addr: SocketAddr,
    /// The admin listener: `/metrics`, `/livez`, `/readyz`.
    pub admin: SocketAddr,
    pub base: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// The service on the fixture's configuration, its storage built by the service itself.
    pub async fn start(fixture: &Fixture) -> TestServer {
        if !fixture.backend.is_configurable() {
            // The bare backend: the service builds its stack around it, as around any.
            return Self::start_with(fixture.config.clone(), fixture.setup.clone()).await;
        }
        Self::start_run(fixture.config.clone(), Overrides::default()).await
    }

    /// The service serving from `storage` (e.g. a wrapper that counts or injects faults).
    pub async fn start_with(config: Config, storage: Arc<dyn Storage>) -> TestServer {
        let overrides = Overrides {
            storage: Some(storage),
            ..Overrides::default()
        };
        Self::start_run(config, overrides).await
    }

    /// The service through `image_gateway::run_with` (what `main` runs), on listeners bound
    /// to port 0; returns once `/livez` answers.
    pub async fn start_run(mut config: Config, overrides: Overrides) -> TestServer {
        let public = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = public.local_addr().unwrap();
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = admin_listener.local_addr().unwrap();
        config.public_url = Some(format!("http://{addr}"));
        let settings = settings(config);
        let listeners = Listeners {
            public,
            admin: admin_listener,
        };
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = image_gateway::run_with(settings, overrides, listeners, shutdown).await {
                panic!("the gateway did not start: {e}");
            }
        });
        let server = TestServer {
            addr,
            admin,
            base: format!("http://{addr}"),
            shutdown: Some(tx),
            task: Some(task),
        };
        server.wait_for("/livez").await;
        server
    }

    /// Waits until `path` answers 200 (`/livez`: serving; `/readyz`: ready for traffic).
    pub async fn wait_for(&self, path: &str) {
        let client = client();
        within(path, async {
            loop {
                assert!(
                    !self.task.as_ref().is_some_and(JoinHandle::is_finished),
                    "the gateway stopped while waiting for {path}"
                );
                if let Ok(r) = client.get(self.url(path)).send().await
                    && r.status() == 200
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn download_url(&self, name: &impl std::fmt::Display) -> String {
        self.url(&format!("/v1/image/download/{name}"))
    }

    /// Signals shutdown and hands back the task to await later.
    pub fn begin_stop(&mut self) -> JoinHandle<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().expect("server running")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn client() -> reqwest::Client {
    client_waiting(AWAIT_LIMIT)
}

/// [`client`], each request bounded by `timeout` instead.
pub fn client_waiting(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).no_proxy().build().unwrap()
}

/// The value of one sample in Prometheus text format, matched by name and labels.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        let matches = metric == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        matches.then(|| value.parse().ok()).flatten()
    })
}

/// The admin listener's `/metrics`.
pub async fn metrics_text(server: &TestServer) -> String {
    let response = raw_request(server.admin, "GET", "/metrics", &[]).await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    String::from_utf8(response.body).unwrap()
}

/// The storage calls the server has made, from its `storage_operation_duration_seconds_count`
/// (every backend and outcome): of `operation` (`"get"`, `"head"`, …), or of every operation
/// when `None`. Readiness checks (`operation="check"`) are never counted, as [`Counting`]
/// does not count them. The other way to count: wrap the backend in a [`Counting`].
pub async fn storage_calls(server: &TestServer, operation: Option<&str>) -> f64 {
    let text = metrics_text(server).await;
    text.lines()
        .filter_map(|line| line.strip_prefix("storage_operation_duration_seconds_count{"))
        .filter_map(|rest| rest.rsplit_once("} "))
        .filter(|(labels, _)| match operation {
            Some(operation) => labels.contains(&format!("operation=\"{operation}\"")),
            None => !labels.contains("operation=\"check\""),
        })
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum()
}

/// Waits until the gateway's `storage_reachable` gauge reads `value` (0 or 1).
pub async fn until_storage_reachable(server: &TestServer, value: f64) {
    within(&format!("storage_reachable = {value}"), async {
        while sample(&metrics_text(server).await, "storage_reachable", &[]) != Some(value) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Load

/// What happened to the downloads of [`load`]: each outcome counted.
#[derive(Debug, Default)]
pub struct Tally {
    pub complete: AtomicU64,
    pub unavailable: AtomicU64,
    pub aborted: AtomicU64,
    /// A 200 whose body ended short but cleanly: must stay zero.
    pub short: AtomicU64,
    pub other: AtomicU64,
}

impl Tally {
    pub fn get(&self, counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }

    /// Everything but a complete download: aborted, 503, short or anything else.
    pub fn failed(&self) -> u64 {
        [&self.aborted, &self.unavailable, &self.short, &self.other]
            .iter()
            .map(|counter| self.get(counter))
            .sum()
    }
}

/// Downloads `url` in a loop on `clients` tasks until `stop`, classifying every outcome.
pub fn load(
    url: String,
    api_key: Option<&'static str>,
    expected: Arc<Vec<u8>>,
    clients: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|_| {
            let (url, expected, stop, tally) = (url.clone(), expected.clone(), stop.clone(), tally.clone());
            tokio::spawn(async move {
                let client = client();
                while !stop.load(Ordering::SeqCst) {
                    let mut request = client.get(&url);
                    if let Some(key) = api_key {
                        request = request.header("X-API-Key", key);
                    }
                    let counter = match request.send().await {
                        Ok(r) if r.status() == 200 => match r.bytes().await {
                            Ok(body) if body[..] == expected[..] => &tally.complete,
                            Ok(_) => &tally.short,
                            Err(_) => &tally.aborted,
                        },
                        Ok(r) if r.status() == 503 && r.headers().contains_key("retry-after") => &tally.unavailable,
                        Ok(_) => &tally.other,
                        Err(_) => &tally.aborted,
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    if std::ptr::eq(counter, &tally.unavailable) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect()
}

/// A response body read the way a client that pauses and resumes reads it.
pub struct BodyReader {
    stream: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Bytes>> + Send>>,
    pub received: Vec<u8>,
}

impl BodyReader {
    pub fn new(response: reqwest::Response) -> BodyReader {
        BodyReader {
            stream: Box::pin(response.bytes_stream()),
            received: Vec::new(),
        }
    }

    /// Reads until at least `n` bytes have arrived; the transfer must not fail meanwhile.
    pub async fn read_at_least(&mut self, n: usize) {
        while self.received.len() < n {
            let chunk = within("body chunk", self.stream.next())
                .await
                .expect("body ended early");
            self.received.extend_from_slice(&chunk.expect("body chunk"));
        }
    }

    /// Reads to the end: `Ok` if the body completed, `Err` if the transfer failed.
    pub async fn finish(&mut self) -> Result<(), reqwest::Error> {
        while let Some(chunk) = within("body chunk", self.stream.next()).await {
            self.received.extend_from_slice(&chunk?);
        }
        Ok(())
    }
}

/// A response read off a raw socket: for request targets a URL library would normalise.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Status, headers and body of an HTTP/1.1 answer; `None` if `raw` has no complete head.
    pub fn parse(raw: &[u8]) -> Option<RawResponse> {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next()?;
        if !status_line.starts_with("HTTP/1.") {
            return None;
        }
        let status = status_line.split(' ').nth(1)?.parse().ok()?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Some(RawResponse {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn detail(&self) -> String {
        self.json_field("detail")
    }

    /// The error's stable `code`.
    pub fn code(&self) -> String {
        self.json_field("code")
    }

    fn json_field(&self, name: &str) -> String {
        let json: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)));
        json[name]
            .as_str()
            .unwrap_or_else(|| panic!("a string `{name}`"))
            .to_owned()
    }
}

/// Sends `METHOD target HTTP/1.1` exactly as given and reads the whole answer.
pub async fn raw_request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> RawResponse {
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    within("raw request", raw_exchange(addr, request.as_bytes()))
        .await
        .expect("a complete response head")
}

/// Sends `raw` on a new connection and reads until the server closes it; `None` when no
/// complete HTTP/1.1 head came back. The server may answer and close before it has read
/// everything (413, 431), so a failed write is not an error. No half-close: the request must
/// say `Connection: close` for the server to end the exchange.
pub async fn raw_exchange(addr: SocketAddr, raw: &[u8]) -> Option<RawResponse> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let _ = stream.write_all(raw).await;
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received).await;
    RawResponse::parse(&received)
}

// ---------------------------------------------------------------------------------------------
// Storage instrumentation

/// Counts calls and body bytes pulled from the wrapped storage: what reaches the backend, under
/// the stack the service builds around it. The service's own count is [`storage_calls`].
pub struct Counting {
    inner: Arc<dyn Storage>,
    calls: AtomicU64,
    pulled: Arc<AtomicU64>,
}

impl Counting {
    pub fn new(inner: Arc<dyn Storage>) -> Arc<Counting> {
        Arc::new(Counting {
            inner,
            calls: AtomicU64::new(0),
            pulled: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn pulled(&self) -> u64 {
        self.pulled.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Storage for Counting {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn head(&self, name: &ObjectName) -> Result<ObjectMeta, StorageError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.head(name).await
    }

    async fn get(&self, name: &ObjectName, range: Option<ByteRange>) -> Result<GetResult, StorageError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut got = self.inner.get(name, range).await?;
        let pulled = self.pulled.clone();
        got.body = Box::pin(got.body.inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                pulled.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
        }));
        Ok(got)
    }

    async fn put(&self, name: &ObjectName, data: Bytes) -> Result<(), StorageError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.put(name, data).await
    }

    async fn delete(&self, name: &ObjectName) -> Result<(), StorageError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(name).await
    }

    async fn delete_many(&self, names: &[ObjectName]) -> Result<Vec<(ObjectName, StorageError)>, StorageError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.delete_many(names).await
    }

    async fn list(&self, start_after: Option<&str>, limit: usize) -> Result<ListPage, StorageError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.list(start_after, limit).await
    }

    /// Readiness checks are not what the tests count.
    async fn check(&self) -> Result<(), StorageError> {
        self.inner.check().await
    }
}

/// Runs each named `async fn name(backend: Backend)` once per backend the service can be
/// configured with, as `fs::name`, `garage::name` and `minio::name`.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        $crate::on_every_backend!(@backend fs, Fs, $($name),*);
        $crate::on_every_backend!(@backend garage, Garage, $($name),*);
        $crate::on_every_backend!(@backend minio, Minio, $($name),*);
    };
    (@cached $($name:ident),* $(,)?) => {
        $crate::on_every_backend!(@backend fs_cached, FsCached, $($name),*);
        $crate::on_every_backend!(@backend minio_cached, MinioCached, $($name),*);
    };
    (@backend $module:ident, $variant:ident, $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::$variant).await
                }
            )*
        }
    };
}

/// The same for the backends with the hot-object cache on, as `fs_cached::name` and
/// `minio_cached::name`.
#[macro_export]
macro_rules! on_cached_backends {
    ($($name:ident),* $(,)?) => {
        $crate::on_every_backend!(@cached $($name),*);
    };
}

/// A CA of its own and a serving certificate for 127.0.0.1 signed by it, as PEM files (webpki
/// refuses a self-signed CA certificate presented as the server's own); made with `openssl`.
pub struct Certificate {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Makes a [`Certificate`] named `name` in `dir`.
pub fn certificate(dir: &Path, name: &str) -> Certificate {
    let (ca, ca_key) = (dir.join("ca.crt"), dir.join("ca.key"));
    let (cert, key, csr) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.csr")),
    );
    let ext = dir.join("san.ext");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    let p = |path: &PathBuf| path.to_str().unwrap().to_owned();
    for args in [
        format!(
            "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=ca -keyout {} -out {}",
            p(&ca_key),
            p(&ca)
        ),
        format!(
            "req -newkey rsa:2048 -nodes -subj /CN={name} -keyout {} -out {}",
            p(&key),
            p(&csr)
        ),
        format!(
            "x509 -req -days 1 -in {} -CA {} -CAkey {} -CAcreateserial -extfile {} -out {}",
            p(&csr),
            p(&ca),
            p(&ca_key),
            p(&ext),
            p(&cert)
        ),
    ] {
        let made = std::process::Command::new("openssl")
            .args(args.split(' '))
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    Certificate { ca, cert, key }
}

/// Uploads `body` as `content_type`, with the API key `key` when given; the response.
pub async fn upload(server: &TestServer, key: Option<&str>, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    let mut request = client()
        .post(server.url("/v1/image/upload"))
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body);
    if let Some(key) = key {
        request = request.header("X-API-Key", key);
    }
    within("upload", request.send()).await.unwrap()
}

/// POSTs `body` to `target` as `content_type`, asking for `accept` when given; the response.
pub async fn post_response(
    server: &TestServer,
    target: &str,
    content_type: &str,
    body: &[u8],
    accept: Option<&str>,
) -> reqwest::Response {
    let mut request = client()
        .post(server.url(target))
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body.to_vec());
    if let Some(accept) = accept {
        request = request.header(reqwest::header::ACCEPT, accept);
    }
    within("post", request.send()).await.unwrap()
}

/// POSTs `body` (or nothing, for `?source=`) asking for `accept`; the status and the body.
pub async fn post(server: &TestServer, target: &str, content_type: &str, body: &[u8], accept: &str) -> (u16, Vec<u8>) {
    let response = post_response(server, target, content_type, body, Some(accept)).await;
    let status = response.status().as_u16();
    (status, within("post body", response.bytes()).await.unwrap().to_vec())
}

/// The `detail` of an error body; empty when there is none.
pub fn detail(body: &[u8]) -> String {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    json["detail"].as_str().unwrap_or_default().to_owned()
}

/// The `detail` of an error response, its body read; there must be one.
pub async fn response_detail(response: reqwest::Response) -> String {
    let body = within("body", response.bytes()).await.unwrap();
    let detail = detail(&body);
    assert!(!detail.is_empty(), "a detail: {:?}", String::from_utf8_lossy(&body));
    detail
}

/// Width, height and format of an encoded image.
pub fn dimensions(bytes: &[u8]) -> (u32, u32, image::ImageFormat) {
    let format = image::guess_format(bytes).unwrap();
    let decoded = image::load_from_memory(bytes).unwrap();
    (decoded.width(), decoded.height(), format)
}
