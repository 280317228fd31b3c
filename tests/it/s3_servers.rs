//! The real S3 servers the tests run: Garage (crates.io) and MinIO (the Go module proxy), each
//! on free loopback ports, stopped when dropped or when the test process exits.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use image_gateway::{Config, config::Backend as BackendKind};
use tempfile::TempDir;

use crate::support::{blocking_get, free_port, hex};

/// What a test needs of an S3 server, whichever it is.
pub trait S3Server: Send + Sync {
    fn endpoint(&self) -> &str;
    /// The key every test fixture signs with (read and write on the bucket).
    fn key(&self) -> (&str, &str);
    fn bucket(&self) -> &str;
    /// A new key with read and write on the bucket: (access key id, secret).
    fn add_key(&self) -> (String, String);
    /// Deletes a key added with `add_key`: requests signed with it are refused from now on.
    fn delete_key(&self, id: &str);

    /// A gateway configuration for this server, isolated under its own key prefix.
    fn config(&self) -> Config {
        let mut config = Config::default();
        config.storage.backend = BackendKind::S3;
        let s3 = &mut config.storage.s3;
        s3.endpoint = Some(self.endpoint().to_owned());
        s3.bucket = self.bucket().to_owned();
        s3.prefix = format!("t{}/", hex(12));
        s3.access_key_id = Some(self.key().0.to_owned());
        s3.secret_access_key = Some(image_gateway::config::Secret::new(self.key().1.to_owned()));
        config
    }
}

/// The binary named by `env` or found at `cache_path` under the cache, or a failure naming
/// the install step.
pub fn cached_bin(env: &str, cache_path: &str, install: &str) -> PathBuf {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("IG_CACHE").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/image-gateway")
        });
        cache.join(cache_path)
    });
    assert!(
        path.is_file(),
        "{} is not installed: run `bash scripts/{install}` (the README's test command, scripts/test.sh, \
         does it for you) or set {env}",
        path.display()
    );
    path
}

/// Runs a command to completion; a failure shows its output.
pub fn run(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server process that dies with the test process: a shell wrapper SIGKILLs it as soon as
/// our end of its stdin closes (also when the test binary itself is killed).
struct Tied(Mutex<Option<(Child, ChildStdin)>>);

impl Tied {
    fn new() -> Tied {
        Tied(Mutex::new(None))
    }

    fn spawn(&self, command: &mut Command, log: &Path) {
        let script = "log=$1; shift; \"$@\" >>\"$log\" 2>&1 & child=$!; \
                      read -r _; kill -9 $child 2>/dev/null; wait $child 2>/dev/null";
        let program = command.get_program().to_owned();
        let args: Vec<_> = command.get_args().map(OsStr::to_owned).collect();
        let mut wrapper = Command::new("sh");
        wrapper.args(["-c", script, "sh"]).arg(log).arg(program).args(args);
        for (k, v) in command.get_envs() {
            match v {
                Some(v) => wrapper.env(k, v),
                None => wrapper.env_remove(k),
            };
        }
        let mut child = wrapper.stdin(Stdio::piped()).spawn().expect("start server");
        let stdin = child.stdin.take().unwrap();
        *self.0.lock().unwrap() = Some((child, stdin));
    }

    fn kill(&self) {
        if let Some((mut child, stdin)) = self.0.lock().unwrap().take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// Polls `GET path` on `port` until it answers 200.
fn await_healthy(what: &str, port: u16, path: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while blocking_get(port, path).map(|r| r.0) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "{what} did not become healthy within 30s; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// Garage

pub fn garage_bin() -> PathBuf {
    cached_bin("IG_GARAGE_BIN", "garage/bin/garage", "install-garage.sh")
}

/// A real single-node Garage S3 server.
pub struct Garage {
    endpoint: String,
    access_key: String,
    secret_key: String,
    admin_port: u16,
    process: Tied,
    dir: TempDir,
}

impl Garage {
    /// One Garage for the whole test binary; tests keep apart by key prefix.
    pub fn shared() -> &'static Garage {
        static SHARED: OnceLock<Garage> = OnceLock::new();
        SHARED.get_or_init(Garage::start)
    }

    /// A Garage of one's own (for tests that stop it).
    pub fn start() -> Garage {
        let dir = crate::support::scratch_dir();
        let (rpc, s3, admin) = (free_port(), free_port(), free_port());
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"lmdb\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\
                 [s3_api]\ns3_region = \"us-east-1\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
                 [admin]\napi_bind_addr = \"127.0.0.1:{admin}\"\n",
                d = dir.path().display(),
                secret = hex(64),
            ),
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let garage = Garage {
            endpoint: format!("http://127.0.0.1:{s3}"),
            access_key: format!("GK{}", hex(24)),
            secret_key: hex(64),
            admin_port: admin,
            process: Tied::new(),
            dir,
        };
        garage.spawn();
        garage
    }

    /// Starts the server process (again) on the same ports and data, and waits until healthy.
    fn spawn(&self) {
        let log = self.dir.path().join("garage.log");
        self.process.spawn(
            Command::new(garage_bin())
                .arg("-c")
                .arg(self.config_path())
                .args(["server", "--single-node", "--default-bucket"])
                .env("GARAGE_DEFAULT_ACCESS_KEY", &self.access_key)
                .env("GARAGE_DEFAULT_SECRET_KEY", &self.secret_key)
                .env("GARAGE_DEFAULT_BUCKET", "images")
                .env("RUST_LOG", "warn"),
            &log,
        );
        await_healthy("Garage", self.admin_port, "/health", &log);
    }

    /// Kills the server (SIGKILL) and waits until it is gone.
    pub fn kill(&self) {
        self.process.kill();
    }

    /// Brings a killed server back with its data, keys and ports.
    pub fn restart(&self) {
        self.kill();
        self.spawn();
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    fn cli(&self, args: &[&str]) {
        run(Command::new(garage_bin())
            .arg("-c")
            .arg(self.config_path())
            .args(args)
            .env("RUST_LOG", "warn"));
    }
}

impl S3Server for Garage {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }
    fn key(&self) -> (&str, &str) {
        (&self.access_key, &self.secret_key)
    }
    fn bucket(&self) -> &str {
        "images"
    }
    fn add_key(&self) -> (String, String) {
        let (id, secret) = (format!("GK{}", hex(24)), hex(64));
        self.cli(&["key", "import", &id, &secret, "-n", &id, "--yes"]);
        self.cli(&["bucket", "allow", "--read", "--write", "images", "--key", &id]);
        (id, secret)
    }
    fn delete_key(&self, id: &str) {
        self.cli(&["key", "delete", "--yes", id]);
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// MinIO

pub fn minio_bin() -> PathBuf {
    cached_bin("IG_MINIO_BIN", "minio/minio", "install-minio.sh")
}

/// MinIO's client, built beside the server: the tests manage users with it.
fn mc_bin() -> PathBuf {
    let minio = minio_bin();
    let mc = minio.with_file_name("mc");
    assert!(
        mc.is_file(),
        "mc is not installed beside {}: run `bash scripts/install-minio.sh`",
        minio.display()
    );
    mc
}

/// A real single-drive MinIO server with a bucket `images`. The fixtures sign with the root
/// user; further keys are MinIO users with the built-in `readwrite` policy.
pub struct Minio {
    endpoint: String,
    root_user: String,
    root_password: String,
    process: Tied,
    dir: TempDir,
}

impl Minio {
    /// One MinIO for the whole test binary; tests keep apart by key prefix.
    pub fn shared() -> &'static Minio {
        static SHARED: OnceLock<Minio> = OnceLock::new();
        SHARED.get_or_init(Minio::start)
    }

    /// A MinIO of one's own.
    pub fn start() -> Minio {
        let dir = crate::support::scratch_dir();
        let port = free_port();
        let minio = Minio {
            endpoint: format!("http://127.0.0.1:{port}"),
            root_user: format!("root{}", hex(12)),
            root_password: hex(40),
            process: Tied::new(),
            dir,
        };
        let log = minio.dir.path().join("minio.log");
        minio.process.spawn(
            Command::new(minio_bin())
                .arg("server")
                .arg(minio.dir.path().join("data"))
                .arg("--address")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--console-address")
                .arg(format!("127.0.0.1:{}", free_port()))
                .arg("--quiet")
                .env("MINIO_ROOT_USER", &minio.root_user)
                .env("MINIO_ROOT_PASSWORD", &minio.root_password)
                .env("MINIO_BROWSER", "off")
                .env("MINIO_UPDATE", "off")
                .env("HOME", minio.dir.path()),
            &log,
        );
        await_healthy("MinIO", port, "/minio/health/ready", &log);
        minio.mc(&["mb", "--ignore-existing", "local/images"]);
        minio
    }

    fn mc(&self, args: &[&str]) {
        let host = self.endpoint.replacen(
            "http://",
            &format!("http://{}:{}@", self.root_user, self.root_password),
            1,
        );
        run(Command::new(mc_bin())
            .arg("--config-dir")
            .arg(self.dir.path().join("mc"))
            .args(["--quiet", "--no-color"])
            .args(args)
            .env("MC_HOST_local", host));
    }
}

impl S3Server for Minio {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }
    fn key(&self) -> (&str, &str) {
        (&self.root_user, &self.root_password)
    }
    fn bucket(&self) -> &str {
        "images"
    }
    fn add_key(&self) -> (String, String) {
        // MinIO's limits: access key ids of 3 to 20 characters, secrets of 8 to 40.
        let (id, secret) = (format!("u{}", hex(19)), hex(40));
        self.mc(&["admin", "user", "add", "local", &id, &secret]);
        self.mc(&["admin", "policy", "attach", "local", "readwrite", "--user", &id]);
        (id, secret)
    }
    fn delete_key(&self, id: &str) {
        self.mc(&["admin", "user", "remove", "local", id]);
    }
}

impl Drop for Minio {
    fn drop(&mut self) {
        self.process.kill();
    }
}
