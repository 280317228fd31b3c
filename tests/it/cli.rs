//! The binary itself, as an operator runs it: a configuration it cannot use stops it with exit
//! 64 and one line naming the key (secrets never printed); `check-config`, `sign` and `probe`
//! do what they say; `serve` logs as configured, reads AWS credentials from the SDK's default
//! chain, and on SIGTERM drains without failing a request, under load too. Processes started
//! here (`Spawned`) serve the tests that need the real binary elsewhere.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::blocking_get;

pub(crate) fn gateway() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_image-gateway"));
    for (key, _) in std::env::vars() {
        if key.starts_with("IMAGE_GATEWAY_") {
            command.env_remove(key);
        }
    }
    // Never the default admin port: tests run side by side.
    command.env("IMAGE_GATEWAY_ADMIN_LISTEN", "127.0.0.1:0");
    command.env("IMAGE_GATEWAY_SHUTDOWN__GRACE", "100ms");
    command
}

/// The real binary serving `./data` of a fresh folder on free loopback ports.
pub(crate) struct Spawned {
    pub child: std::process::Child,
    pub dir: tempfile::TempDir,
    pub addr: std::net::SocketAddr,
    pub admin: std::net::SocketAddr,
}

impl Spawned {
    /// Starts `image-gateway` with `env` added, and waits until `/readyz` answers 200.
    pub(crate) async fn start(env: &[(&str, &str)], stderr: Stdio) -> Spawned {
        let dir = crate::support::scratch_dir();
        let (port, admin_port) = (crate::support::free_port(), crate::support::free_port());
        let mut command = gateway();
        command
            .current_dir(dir.path())
            .env("IMAGE_GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
            .env("IMAGE_GATEWAY_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
            .stderr(stderr);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().unwrap();
        crate::support::within("server ready", async {
            while blocking_get(admin_port, "/readyz").map(|r| r.0) != Some(200) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        Spawned {
            child,
            dir,
            addr: ([127, 0, 0, 1], port).into(),
            admin: ([127, 0, 0, 1], admin_port).into(),
        }
    }

    /// The folder the `fs` backend serves.
    pub(crate) fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn sigterm(&self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    }

    /// Waits (at most 30 s) for the process to exit by itself.
    pub(crate) async fn exit_status(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit after SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_redacted() {
    let dir = crate::support::scratch_dir();
    let file = dir.path().join("gw.toml");
    std::fs::write(
        &file,
        "[storage]\nbackend = \"s3\"\n[storage.s3]\nendpoint = \"http://127.0.0.1:3900\"\nbucket = \"images\"\naccess_key_id = \"GK1\"\n",
    )
    .unwrap();
    let out = gateway()
        .args(["check-config", "--config"])
        .arg(&file)
        .env("IMAGE_GATEWAY_STORAGE__S3__SECRET_ACCESS_KEY", "very-secret-value")
        .env("IMAGE_GATEWAY_STORAGE__TIMEOUT", "3s")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("backend = \"s3\""), "{stdout}");
    assert!(stdout.contains("timeout = \"3s\""), "{stdout}");
    assert!(stdout.contains("secret_access_key = \"[redacted]\""), "{stdout}");
    assert!(!stdout.contains("very-secret-value"));
    let parsed: toml::Value = toml::from_str(&stdout).expect("check-config prints valid TOML");
    assert_eq!(parsed["public_url"].as_str(), Some("http://127.0.0.1:8080"));
}

#[test]
fn a_bad_redis_url_is_named_without_its_password() {
    for (key, value, named) in [
        (
            "IMAGE_GATEWAY_RATE_LIMIT__REDIS__URL",
            "http://user:hunter2@cache:6379",
            "rate_limit.redis.url",
        ),
        (
            "IMAGE_GATEWAY_RATE_LIMIT__REDIS__URL",
            "redis://:hunter2@",
            "rate_limit.redis.url",
        ),
        (
            "IMAGE_GATEWAY_RATE_LIMIT__REDIS__TIMEOUT",
            "0s",
            "rate_limit.redis.timeout",
        ),
        (
            "IMAGE_GATEWAY_RATE_LIMIT__REDIS__CONNECTIONS",
            "0",
            "rate_limit.redis.connections",
        ),
        (
            "IMAGE_GATEWAY_RATE_LIMIT__REDIS__FALLBACK_DIVISOR",
            "0",
            "rate_limit.redis.fallback_divisor",
        ),
        ("IMAGE_GATEWAY_PROCESSING__AVIF_SPEED", "0", "processing.avif_speed"),
        ("IMAGE_GATEWAY_PROCESSING__AVIF_SPEED", "11", "processing.avif_speed"),
    ] {
        let out = gateway()
            .arg("check-config")
            .env("IMAGE_GATEWAY_RATE_LIMIT__BACKEND", "redis")
            .env("IMAGE_GATEWAY_RATE_LIMIT__REDIS__URL", "redis://:hunter2@cache:6379")
            .env(key, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{key}={value}: {stderr}");
        assert!(stderr.contains(&format!("`{named}`")), "{stderr} names {named}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
    let both = gateway()
        .arg("check-config")
        .env("IMAGE_GATEWAY_RATE_LIMIT__BACKEND", "redis")
        .env("IMAGE_GATEWAY_RATE_LIMIT__REDIS__URL", "redis://cache:6379")
        .env("IMAGE_GATEWAY_RATE_LIMIT__REDIS__PASSWORD", "hunter2")
        .env("IMAGE_GATEWAY_RATE_LIMIT__REDIS__PASSWORD_SECRET__NAME", "redis")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&both.stderr);
    assert_eq!(both.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("`rate_limit.redis.password_secret`") && stderr.contains("exclusive"));
    let out = gateway()
        .arg("check-config")
        .env("IMAGE_GATEWAY_RATE_LIMIT__BACKEND", "redis")
        .env("IMAGE_GATEWAY_RATE_LIMIT__REDIS__URL", "rediss://:hunter2@cache:6380/1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("url = \"[redacted]\""), "{stdout}");
    assert!(!stdout.contains("hunter2"));
}

#[test]
fn bad_values_exit_64_with_one_line_naming_the_key() {
    for (key, value, named) in [
        ("IMAGE_GATEWAY_STORAGE__TIMEOUT", "soon", "storage.timeout"),
        ("IMAGE_GATEWAY_UPLOAD__MAX_BYTES", "-3", "upload.max_bytes"),
        ("IMAGE_GATEWAY_LISTEN", "not-an-address", "listen"),
        ("IMAGE_GATEWAY_STORAGE__BACKEND", "s3", "storage.s3.bucket"),
        ("IMAGE_GATEWAY_RATE_LIMIT__BACKEND", "redis", "rate_limit.redis.url"),
        ("IMAGE_GATEWAY_RATE_LIMIT__BACKEND", "valkey", "rate_limit.backend"),
        ("IMAGE_GATEWAY_VARIANTS__PRESETS__CARD", "w=0", "variants.presets.card"),
        ("IMAGE_GATEWAY_VARIANTS__ALLOW", "presets", "variants.allow"),
    ] {
        for command in ["check-config", "serve"] {
            // Free ports: a preset is checked once the listeners are bound.
            let out = gateway()
                .arg(command)
                .env("IMAGE_GATEWAY_LISTEN", "127.0.0.1:0")
                .env("IMAGE_GATEWAY_ADMIN_LISTEN", "127.0.0.1:0")
                .env(key, value)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(64), "{command} with {key}={value}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
            assert!(stderr.contains(&format!("`{named}`")), "{stderr} names {named}");
        }
    }
    let out = gateway()
        .args(["--config", "/nonexistent/gw.toml", "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/gw.toml"));
}

/// `image-gateway` with no arguments serves `./data` on the default backend; on SIGTERM
/// readiness turns 503 at once, a slow download still finishes, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_uses_the_local_folder_and_drains_on_sigterm() {
    use crate::support::{BodyReader, client, raw_request, within};
    let mut server = Spawned::start(&[("IMAGE_GATEWAY_SHUTDOWN__GRACE", "1s")], Stdio::piped()).await;
    let name = "0123456789abcdef0123456789abcdef.gif";
    let data = crate::support::pattern(32 << 20);
    std::fs::write(server.data().join(name), &data).unwrap();
    let url = server.url(&format!("/v1/image/download/{name}"));
    let response = within("get", client().get(&url).send()).await.unwrap();
    let mut body = BodyReader::new(response);
    body.read_at_least(1).await;

    server.sigterm();
    within("readiness drops", async {
        while raw_request(server.admin, "GET", "/readyz", &[]).await.status != 503 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(raw_request(server.addr, "GET", "/readyz", &[]).await.status, 503);
    tokio::time::sleep(Duration::from_millis(300)).await;
    body.finish().await.expect("the slow download finishes");
    assert!(body.received == data, "byte-exact");
    let status = server.exit_status().await;
    assert_eq!(status.code(), Some(0), "exit 0 after a graceful shutdown");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut server.child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(
        log.contains("\"route\":\"download\""),
        "one JSON access line per request: {log}"
    );
    assert!(log.contains("\"outcome\":\"complete\""), "{log}");
    assert!(log.contains("drained"), "{log}");
}

/// `log.format` picks JSON lines or text; `log.level` filters: at `warn` the warning a storage
/// failure logs is there and no info line is.
#[test]
fn log_format_and_level() {
    for (format, level) in [("text", "info"), ("json", "info"), ("json", "warn")] {
        let dir = crate::support::scratch_dir();
        let port = crate::support::free_port();
        let child = gateway()
            .current_dir(dir.path())
            .env("IMAGE_GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
            .env("IMAGE_GATEWAY_LOG__FORMAT", format)
            .env("IMAGE_GATEWAY_LOG__LEVEL", level)
            .env("IMAGE_GATEWAY_STORAGE__FS__ROOT", dir.path().join("data"))
            .env("IMAGE_GATEWAY_AUTH__MODE", "none")
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while blocking_get(port, "/livez").map(|r| r.0) != Some(200) {
            assert!(Instant::now() < deadline, "the server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The storage folder goes away (an unmounted volume): an outage, logged at warn.
        std::fs::remove_dir_all(dir.path().join("data")).unwrap();
        let failed = blocking_get(port, "/v1/image/download/0123456789abcdef0123456789abcdef.png");
        assert_eq!(failed.map(|r| r.0), Some(503), "storage is unavailable");
        assert!(
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let out = child.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = log.lines().collect();
        assert!(
            lines.iter().any(|l| l.contains("request failed")),
            "{level}: the warning: {log}"
        );
        if level == "warn" {
            assert!(
                lines.iter().all(|l| !l.contains("\"INFO\"")),
                "no info lines at warn: {log}"
            );
            continue;
        }
        assert!(lines.iter().any(|l| l.contains("image-gateway serving")), "{log}");
        for line in &lines {
            let parsed = serde_json::from_str::<serde_json::Value>(line);
            assert_eq!(parsed.is_ok(), format == "json", "{format}: {line}");
        }
    }
}

/// `image-gateway sign` prints a URL that the server (same config) accepts without a key.
#[tokio::test]
async fn sign_prints_a_working_url() {
    use image_gateway::{config::Secret, object_name::ImageFormat};
    let key = "signing-key-for-the-cli-0123";
    let fx = crate::support::Fixture::with(crate::support::Backend::Fs, |c| {
        c.auth.mode = image_gateway::config::AuthMode::ApiKey;
        c.auth.api_keys = vec![Secret::new("reader-0123456789abcdef")];
        c.auth.url_signing_key = vec![Secret::new(key)];
    })
    .await;
    let server = crate::support::TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Png, crate::support::pattern(10)).await;
    // The URL `image-gateway sign ARGS…` prints, with the server's key and address.
    let signed_url = |args: &[&str]| {
        let out = gateway()
            .arg("sign")
            .args(args)
            .env("IMAGE_GATEWAY_AUTH__URL_SIGNING_KEY", key)
            .env("IMAGE_GATEWAY_PUBLIC_URL", &server.base)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let url = signed_url(&[name.as_str(), "--ttl", "10m"]);
    assert!(url.starts_with(&server.download_url(&name)), "{url}");
    let response = crate::support::within("signed get", crate::support::client().get(&url).send())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let unsigned = crate::support::within(
        "unsigned get",
        crate::support::client().get(server.download_url(&name)).send(),
    )
    .await
    .unwrap();
    assert_eq!(unsigned.status(), 401);

    // --variant: the URL serves exactly that variant.
    let photo = fx
        .put(ImageFormat::Png, include_bytes!("../fixtures/sample.png").to_vec())
        .await;
    let url = signed_url(&[photo.as_str(), "--variant", "w=16&format=webp"]);
    assert!(
        url.starts_with(&format!("{}?w=16&format=webp&expires=", server.download_url(&photo))),
        "{url}"
    );
    let variant = crate::support::within("signed variant", crate::support::client().get(&url).send())
        .await
        .unwrap();
    assert_eq!(variant.status(), 200);
    assert_eq!(variant.headers()["content-type"], "image/webp");
    let other = url.replace("w=16", "w=400");
    let refused = crate::support::within("other variant", crate::support::client().get(&other).send())
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let bad_variant = gateway()
        .args(["sign", photo.as_str(), "--variant", "w=0"])
        .env("IMAGE_GATEWAY_AUTH__URL_SIGNING_KEY", key)
        .output()
        .unwrap();
    assert_eq!(bad_variant.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&bad_variant.stderr).contains("`w`"));

    let bad = gateway()
        .args(["sign", "nope.png"])
        .env("IMAGE_GATEWAY_AUTH__URL_SIGNING_KEY", key)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(64));
    let unconfigured = gateway().args(["sign", name.as_str()]).output().unwrap();
    assert_eq!(unconfigured.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&unconfigured.stderr).contains("auth.url_signing_key"));
}

/// `image-gateway probe` (what the chart's `helm test` pod runs; the image has no curl): 0 on the
/// expected status, 1 on another status or no connection, 64 on a URL it cannot ask; it needs
/// no configuration, even a broken one.
#[tokio::test]
async fn probe_succeeds_only_on_the_expected_status() {
    let server = Spawned::start(&[], Stdio::null()).await;
    let probe = |args: &[&str]| {
        gateway()
            .arg("probe")
            .args(args)
            .env("IMAGE_GATEWAY_STORAGE__BACKEND", "ftp")
            .output()
            .unwrap()
    };
    let ready = probe(&[&server.url("/readyz")]);
    assert!(ready.status.success(), "{}", String::from_utf8_lossy(&ready.stderr));
    assert_eq!(
        String::from_utf8_lossy(&ready.stdout).trim(),
        format!("{}: 200 OK", server.url("/readyz"))
    );
    let missing = probe(&[&server.url("/nothing-here")]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("answered 404 Not Found, expected 200 OK"));
    assert!(
        probe(&["--expect", "404", &server.url("/nothing-here")])
            .status
            .success()
    );
    let closed = probe(&[&format!("http://127.0.0.1:{}/readyz", crate::support::free_port())]);
    assert_eq!(closed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&closed.stderr).contains("cannot connect"));
    for bad in [
        vec!["https://example.com/readyz"],
        vec!["/readyz"],
        vec!["--expect", "1000", "http://a/"],
    ] {
        assert_eq!(probe(&bad).status.code(), Some(64), "{bad:?}");
    }
    // A listener that accepts and never answers: the probe ends at its timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/readyz", silent.local_addr().unwrap());
    let hung = probe(&["--timeout", "300ms", &url]);
    assert_eq!(hung.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&hung.stderr).contains("no answer"));
}

/// SIGTERM while eight clients download, behind a "load balancer" that polls `/readyz` every
/// 50 ms and stops sending once it turns 503: not one request fails, and the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_fails_no_request() {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use crate::support::{Tally, load, pattern, raw_request, within};
    let env = [
        ("IMAGE_GATEWAY_SHUTDOWN__GRACE", "1s"),
        ("IMAGE_GATEWAY_LOG__LEVEL", "warn"),
    ];
    let mut server = Spawned::start(&env, Stdio::inherit()).await;
    let name = "0123456789abcdef0123456789abcdef.png";
    let data = Arc::new(pattern(256 << 10));
    std::fs::write(server.data().join(name), &data[..]).unwrap();
    let url = server.url(&format!("/v1/image/download/{name}"));

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients = load(url, None, data, 8, stop.clone(), tally.clone());
    let admin = server.admin;
    let balancer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            while raw_request(admin, "GET", "/readyz", &[]).await.status == 200 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            stop.store(true, Ordering::SeqCst);
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.sigterm();
    within("balancer sees 503", balancer).await.unwrap();
    for c in clients {
        within("client stops", c).await.unwrap();
    }
    let status = server.exit_status().await;
    eprintln!("SIGTERM under load: {tally:?}");
    assert_eq!(status.code(), Some(0));
    assert!(tally.get(&tally.complete) > 50, "{tally:?}");
    assert_eq!(tally.failed(), 0, "{tally:?}");
}

/// `storage.s3.credentials = "default"`: the AWS SDK's default chain signs for a real MinIO —
/// from the environment, then from a shared credentials file with a named profile (the same
/// chain that reads IRSA web identity, EKS Pod Identity and instance profiles in a cluster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_credentials_from_the_aws_default_chain() {
    use crate::support::{Minio, S3Server, client, hex};
    let minio = tokio::task::spawn_blocking(Minio::shared).await.unwrap();
    let (id, secret) = tokio::task::block_in_place(|| minio.add_key());
    let dir = crate::support::scratch_dir();
    let profiles = dir.path().join("credentials");
    std::fs::write(
        &profiles,
        format!("[images]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    let prefix = format!("t{}/", hex(12));
    let common = [
        ("IMAGE_GATEWAY_STORAGE__BACKEND", "s3"),
        ("IMAGE_GATEWAY_STORAGE__S3__ENDPOINT", minio.endpoint()),
        ("IMAGE_GATEWAY_STORAGE__S3__BUCKET", minio.bucket()),
        ("IMAGE_GATEWAY_STORAGE__S3__PREFIX", &prefix),
        ("IMAGE_GATEWAY_STORAGE__S3__CREDENTIALS", "default"),
        // Nothing else in the chain may answer first, nor probe the metadata services.
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
    ];
    let from_env = [
        ("AWS_ACCESS_KEY_ID", id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
    ];
    let from_file = [
        ("AWS_SHARED_CREDENTIALS_FILE", profiles.to_str().unwrap()),
        ("AWS_PROFILE", "images"),
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
    ];
    let png = include_bytes!("../fixtures/sample.png");
    for source in [&from_env[..], &from_file[..]] {
        let env: Vec<_> = common.iter().chain(source).copied().collect();
        let server = Spawned::start(&env, Stdio::null()).await;
        let stored = client()
            .post(server.url("/v1/image/upload"))
            .header("Content-Type", "image/png")
            .body(png.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(stored.status(), 201, "{source:?}");
        let json: serde_json::Value = stored.json().await.unwrap();
        let name = json["object_name"].as_str().unwrap();
        let got = client()
            .get(server.url(&format!("/v1/image/download/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200);
        assert_eq!(got.bytes().await.unwrap(), &png[..], "{source:?}");
    }
    tokio::task::block_in_place(|| minio.delete_key(&id));
}
