//! Credentials and API keys from Kubernetes Secrets, end to end: a real kube-apiserver + etcd,
//! the chart's RBAC (get/list/watch on the Secrets' names only), the gateway signing for a real
//! Garage or MinIO with the key from the Secret, and a key rotation with no restart.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use image_gateway::{
    Overrides,
    config::{AuthMode, CredentialsSource, RateLimitBackend, RedisPasswordSecret, SecretName},
    object_name::{ImageFormat, ObjectName},
};
use k8s_openapi::{
    ByteString,
    api::{
        core::v1::{Namespace, Secret, ServiceAccount},
        rbac::v1::{Role, RoleBinding},
    },
};
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use serde::Deserialize;

use crate::s3_servers::run;
use crate::support::{
    Backend, BodyReader, Garage, MISSING_OBJECT, RawResponse, S3Server, Tally, TestServer, client, free_port, load,
    metrics_text, pattern, raw_request, sample, within,
};

// The chart's defaults, so the chart's own RBAC objects (manifests/) can be applied as they are.
const NAMESPACE: &str = "image-gateway";
const CREDENTIALS: &str = "minio-credentials";
const KEYS: &str = "image-gateway-api-keys";
const SA_TOKEN: &str = "image-gateway-sa-token-0123456789";
const ADMIN_TOKEN: &str = "admin-token-0123456789";

/// A binary of the control plane that `scripts/install-kube.sh` builds into the cache
/// (kube-apiserver, kube-controller-manager, etcd), found through `IG_KUBE_BIN_DIR`.
fn kube_bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("IG_KUBE_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/image-gateway/kube"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{name} is not built at {}: run `bash scripts/install-kube.sh` (the README's test command does it)",
        path.display()
    );
    path
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// etcd and a kube-apiserver with RBAC on, on free loopback ports.
struct Cluster {
    url: String,
    _etcd: Process,
    _apiserver: Process,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let (etcd, apiserver) = (kube_bin("etcd"), kube_bin("kube-apiserver"));
        let dir = crate::support::scratch_dir();
        let d = dir.path();
        let (client_port, peer_port, secure_port) = (free_port(), free_port(), free_port());
        let etcd = Process(
            Command::new(etcd)
                .arg(format!("--data-dir={}", d.join("etcd").display()))
                .arg(format!("--listen-client-urls=http://127.0.0.1:{client_port}"))
                .arg(format!("--advertise-client-urls=http://127.0.0.1:{client_port}"))
                .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
                .arg(format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"))
                .arg(format!("--initial-cluster=default=http://127.0.0.1:{peer_port}"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.join("etcd.log")).unwrap())
                .spawn()
                .unwrap(),
        );
        run(Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(d.join("sa.key"))
            .arg("2048"));
        run(Command::new("openssl")
            .args(["rsa", "-pubout", "-in"])
            .arg(d.join("sa.key"))
            .arg("-out")
            .arg(d.join("sa.pub")));
        std::fs::write(
            d.join("tokens.csv"),
            format!(
                "{ADMIN_TOKEN},admin,admin-uid,system:masters\n\
                 {SA_TOKEN},system:serviceaccount:{NAMESPACE}:image-gateway,sa-uid,\"system:serviceaccounts,system:serviceaccounts:{NAMESPACE}\"\n"
            ),
        )
        .unwrap();
        let apiserver = Process(
            Command::new(apiserver)
                .arg(format!("--etcd-servers=http://127.0.0.1:{client_port}"))
                .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
                .arg(format!("--secure-port={secure_port}"))
                .arg(format!("--cert-dir={}", d.join("certs").display()))
                .arg("--service-account-issuer=https://kubernetes.default.svc")
                .arg(format!("--service-account-key-file={}", d.join("sa.pub").display()))
                .arg(format!(
                    "--service-account-signing-key-file={}",
                    d.join("sa.key").display()
                ))
                .arg("--api-audiences=https://kubernetes.default.svc")
                .arg(format!("--token-auth-file={}", d.join("tokens.csv").display()))
                .args(["--authorization-mode=RBAC", "--service-cluster-ip-range=198.19.0.0/24"])
                .arg("--disable-admission-plugins=ServiceAccount")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.join("apiserver.log")).unwrap())
                .spawn()
                .unwrap(),
        );
        Cluster {
            url: format!("https://127.0.0.1:{secure_port}"),
            _etcd: etcd,
            _apiserver: apiserver,
            _dir: dir,
        }
    }

    /// A client acting as `token` (TLS to the apiserver's self-signed serving certificate is
    /// not verified: the test made the apiserver itself, on loopback).
    async fn client(&self, token: &str) -> Client {
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    insecure-skip-tls-verify: true\n\
             users:\n- name: user\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: user\n    namespace: {NAMESPACE}\ncurrent-context: test\n",
            self.url
        );
        let kubeconfig = Kubeconfig::from_yaml(&yaml).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
        Client::try_from(config).unwrap()
    }
}

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    }
}

/// Creates the chart's namespace, once the apiserver answers.
async fn create_namespace(admin: &Client) {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(NAMESPACE.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    within("apiserver ready", async {
        while Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

/// Applies the ServiceAccount, Role and RoleBinding exactly as the chart renders them
/// (manifests/base/image-gateway.yaml): read only the named Secrets.
async fn grant(admin: &Client) {
    let rendered = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/base/image-gateway.yaml"
    ))
    .unwrap();
    let pp = PostParams::default();
    let mut applied = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&rendered) {
        let value = serde_yaml::Value::deserialize(document).unwrap();
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_owned();
        match kind.as_str() {
            "ServiceAccount" => {
                let sa: ServiceAccount = serde_yaml::from_value(value).unwrap();
                // The apiserver's admission cache sees a new namespace a moment after it is created.
                within("namespace usable", async {
                    while Api::<ServiceAccount>::namespaced(admin.clone(), NAMESPACE)
                        .create(&pp, &sa)
                        .await
                        .is_err()
                    {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
                .await;
            }
            "Role" => {
                let role: Role = serde_yaml::from_value(value).unwrap();
                let rules = role.rules.clone().unwrap();
                assert_eq!(rules.len(), 1, "one rule: {rules:?}");
                assert_eq!(rules[0].resources.as_deref(), Some(&["secrets".to_string()][..]));
                assert_eq!(rules[0].verbs, ["get", "list", "watch"]);
                assert_eq!(
                    rules[0].resource_names.as_deref(),
                    Some(&[CREDENTIALS.to_string(), KEYS.to_string()][..])
                );
                Api::<Role>::namespaced(admin.clone(), NAMESPACE)
                    .create(&pp, &role)
                    .await
                    .unwrap();
            }
            "RoleBinding" => {
                let binding: RoleBinding = serde_yaml::from_value(value).unwrap();
                Api::<RoleBinding>::namespaced(admin.clone(), NAMESPACE)
                    .create(&pp, &binding)
                    .await
                    .unwrap();
            }
            _ => continue,
        }
        applied.push(kind);
    }
    applied.sort();
    assert_eq!(
        applied,
        ["Role", "RoleBinding", "ServiceAccount"],
        "the chart ships all three"
    );
}

async fn applied(server: &TestServer, purpose: &str) -> f64 {
    let text = metrics_text(server).await;
    sample(
        &text,
        "k8s_secret_events_total",
        &[("secret", purpose), ("outcome", "applied")],
    )
    .unwrap_or(0.0)
}

async fn until_applied(server: &TestServer, purpose: &str, count: f64) {
    within("the Secret's new version is applied", async {
        while applied(server, purpose).await < count {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

async fn download(server: &TestServer, name: &ObjectName, key: &str) -> RawResponse {
    raw_request(
        server.addr,
        "GET",
        &format!("/v1/image/download/{name}"),
        &[("X-API-Key", key)],
    )
    .await
}

async fn status(server: &TestServer, name: &ObjectName, key: &str) -> u16 {
    download(server, name, key).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_from_a_real_apiserver_rotate_without_restart_garage() {
    secrets_rotate_without_restart(Backend::Garage).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_from_a_real_apiserver_rotate_without_restart_minio() {
    secrets_rotate_without_restart(Backend::Minio).await
}

async fn secrets_rotate_without_restart(backend: Backend) {
    let (cluster, s3) = tokio::task::spawn_blocking(move || (Cluster::start(), backend.s3_server().unwrap()))
        .await
        .unwrap();
    let admin = cluster.client(ADMIN_TOKEN).await;
    create_namespace(&admin).await;
    grant(&admin).await;
    let secrets = Api::<Secret>::namespaced(admin.clone(), NAMESPACE);
    let pp = PostParams::default();
    // The gateway starts with a key of its own, so that deleting it leaves the shared server's
    // other users alone.
    let old_key = tokio::task::block_in_place(|| s3.add_key());
    secrets
        .create(
            &pp,
            &secret(CREDENTIALS, &[("accesskey", &old_key.0), ("secretkey", &old_key.1)]),
        )
        .await
        .unwrap();
    let reader = "reader-from-secret-0123456789";
    secrets.create(&pp, &secret(KEYS, &[("app", reader)])).await.unwrap();
    secrets
        .create(&pp, &secret("unrelated", &[("password", "not-for-the-gateway")]))
        .await
        .unwrap();

    // The gateway acts as the service account.
    let sa = cluster.client(SA_TOKEN).await;
    let forbidden = Api::<Secret>::namespaced(sa.clone(), NAMESPACE).get("unrelated").await;
    assert!(
        matches!(forbidden, Err(kube::Error::Api(ref e)) if e.code == 403),
        "{forbidden:?}"
    );
    assert!(
        Api::<Secret>::namespaced(sa.clone(), NAMESPACE)
            .get(CREDENTIALS)
            .await
            .is_ok()
    );
    // And nothing more: no listing of every Secret, no writes.
    let as_sa = Api::<Secret>::namespaced(sa.clone(), NAMESPACE);
    let listed = as_sa.list(&Default::default()).await;
    assert!(
        matches!(listed, Err(kube::Error::Api(ref e)) if e.code == 403),
        "{listed:?}"
    );
    let written = as_sa.create(&pp, &secret("planted", &[("k", "v")])).await;
    assert!(
        matches!(written, Err(kube::Error::Api(ref e)) if e.code == 403),
        "{written:?}"
    );
    let changed = with_version(&secrets, secret(CREDENTIALS, &[("accesskey", "x")])).await;
    let replaced = as_sa.replace(CREDENTIALS, &pp, &changed).await;
    assert!(
        matches!(replaced, Err(kube::Error::Api(ref e)) if e.code == 403),
        "{replaced:?}"
    );

    let mut config = s3.config();
    // Every request must reach storage with the credentials of the moment.
    config.cache.enabled = Some(false);
    config.storage.s3.credentials = CredentialsSource::Kubernetes;
    config.storage.s3.access_key_id = None;
    config.storage.s3.secret_access_key = None;
    config.storage.s3.secret.name = CREDENTIALS.into();
    config.storage.s3.secret.namespace = Some(NAMESPACE.into());
    config.auth.mode = AuthMode::ApiKey;
    config.auth.api_keys_secret = Some(SecretName {
        name: KEYS.into(),
        namespace: Some(NAMESPACE.into()),
    });
    config.shutdown.grace = image_gateway::config::units::HumanDuration(Duration::from_millis(100));
    // Not a test of timeouts: a loaded machine must not turn a slow storage answer into a 503.
    config.storage.timeout = image_gateway::config::units::HumanDuration(Duration::from_secs(120));
    // Objects go in with the static key, under the gateway's prefix.
    let mut seed_config = s3.config();
    seed_config.storage.s3.prefix = config.storage.s3.prefix.clone();
    let seed = crate::support::setup_storage(&seed_config).await;
    let name = ObjectName::generate(ImageFormat::Png);
    seed.put(&name, Bytes::from(pattern(1000))).await.unwrap();
    let big = ObjectName::generate(ImageFormat::Png);
    seed.put(&big, Bytes::from(pattern(32 << 20))).await.unwrap();
    // The service builds its storage and reads both Secrets as the chart's service account.
    let overrides = Overrides {
        kube: Some(sa.clone()),
        ..Overrides::default()
    };
    let server = TestServer::start_run(config, overrides).await;
    server.wait_for("/readyz").await;
    let first = download(&server, &name, reader).await;
    assert_eq!(first.status, 200, "{}", first.detail());
    assert_eq!(status(&server, &name, "unknown-key-0123456789").await, 401);

    // Rotation: a new key in the S3 server and in the Secret; then the old key is deleted there.
    // A download running across the rotation is not interrupted.
    let response = within(
        "slow download",
        client()
            .get(server.download_url(&big))
            .header("X-API-Key", reader)
            .send(),
    )
    .await
    .unwrap();
    let mut body = BodyReader::new(response);
    body.read_at_least(1 << 20).await;
    // And four clients download all through the rotation: not one request may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let small = Arc::new(pattern(1000));
    let clients = load(
        server.download_url(&name),
        Some(reader),
        small,
        4,
        stop.clone(),
        tally.clone(),
    );
    let new_key = tokio::task::block_in_place(|| s3.add_key());
    let rotated = secret(CREDENTIALS, &[("accesskey", &new_key.0), ("secretkey", &new_key.1)]);
    secrets
        .replace(CREDENTIALS, &pp, &with_version(&secrets, rotated).await)
        .await
        .unwrap();
    until_applied(&server, "storage", 2.0).await;
    tokio::task::block_in_place(|| s3.delete_key(&old_key.0));
    assert_eq!(status(&server, &name, reader).await, 200, "signed with the rotated key");
    let after = tally.get(&tally.complete);
    within("downloads go on after the rotation", async {
        while tally.get(&tally.complete) < after + 20 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        within("client stops", c).await.unwrap();
    }
    eprintln!("rotation under load: {tally:?}");
    assert_eq!(tally.failed(), 0, "no request fails across the rotation: {tally:?}");
    body.finish().await.expect("the download across the rotation completes");
    assert_eq!(body.received.len(), 32 << 20);

    // API keys are added and revoked by editing their Secret.
    let writer = "writer-from-secret-0123456789";
    let keys = secret(KEYS, &[("app", &format!("write:{writer}"))]);
    secrets
        .replace(KEYS, &pp, &with_version(&secrets, keys).await)
        .await
        .unwrap();
    until_applied(&server, "api_keys", 2.0).await;
    assert_eq!(status(&server, &name, writer).await, 200);
    assert_eq!(status(&server, &name, reader).await, 401, "the reader key was revoked");

    // A Secret holding a wrong key: storage refuses us, which is 503, not 404.
    let wrong = secret(
        CREDENTIALS,
        &[("accesskey", &new_key.0), ("secretkey", &"cd".repeat(32))],
    );
    secrets
        .replace(CREDENTIALS, &pp, &with_version(&secrets, wrong).await)
        .await
        .unwrap();
    until_applied(&server, "storage", 3.0).await;
    let refused = raw_request(
        server.addr,
        "GET",
        &format!("/v1/image/download/{name}"),
        &[("X-API-Key", writer)],
    )
    .await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), Some("5"));

    // Malformed, then deleted: the last good credentials stay in use.
    let good = secret(CREDENTIALS, &[("accesskey", &new_key.0), ("secretkey", &new_key.1)]);
    secrets
        .replace(CREDENTIALS, &pp, &with_version(&secrets, good).await)
        .await
        .unwrap();
    until_applied(&server, "storage", 4.0).await;
    let malformed = secret(CREDENTIALS, &[("accesskey", &new_key.0)]);
    secrets
        .replace(CREDENTIALS, &pp, &with_version(&secrets, malformed).await)
        .await
        .unwrap();
    secrets.delete(CREDENTIALS, &DeleteParams::default()).await.unwrap();
    within("deletion observed", async {
        loop {
            let text = metrics_text(&server).await;
            let deleted = sample(
                &text,
                "k8s_secret_events_total",
                &[("secret", "storage"), ("outcome", "deleted")],
            );
            let malformed = sample(
                &text,
                "k8s_secret_events_total",
                &[("secret", "storage"), ("outcome", "malformed")],
            );
            if deleted == Some(1.0) && malformed == Some(1.0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(
        status(&server, &name, writer).await,
        200,
        "the last good key is still used"
    );
    let text = metrics_text(&server).await;
    assert!(
        sample(
            &text,
            "k8s_secret_last_success_timestamp_seconds",
            &[("secret", "storage")]
        )
        .unwrap()
            > 1.7e9
    );
    assert!(
        !text.contains(&new_key.1) && !text.contains(writer),
        "no secret in metrics"
    );

    // API keys fail closed: the writer's key is removed in the same edit that adds an invalid
    // value; the invalid value is skipped and the removal applies. (Before issue 14 the whole
    // version was refused as malformed and the removed key kept working.)
    let second = "second-writer-0123456789";
    let keys = secret(KEYS, &[("app", &format!("write:{second}")), ("broken", "short")]);
    secrets
        .replace(KEYS, &pp, &with_version(&secrets, keys).await)
        .await
        .unwrap();
    until_applied(&server, "api_keys", 3.0).await;
    assert_eq!(status(&server, &name, second).await, 200);
    assert_eq!(
        status(&server, &name, writer).await,
        401,
        "removed with an invalid line: revoked"
    );
    // A deleted key Secret revokes every key it held.
    secrets.delete(KEYS, &DeleteParams::default()).await.unwrap();
    within("deleting the Secret revokes its keys", async {
        while status(&server, &name, second).await != 401 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

/// The object with the server's current resourceVersion, for `replace`.
async fn with_version(api: &Api<Secret>, mut secret: Secret) -> Secret {
    let current = api.get(secret.metadata.name.as_deref().unwrap()).await.unwrap();
    secret.metadata.resource_version = current.metadata.resource_version;
    secret
}

/// Readiness waits for the first credentials from the Secret, and S3 signs with whatever the
/// watch channel holds right now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_the_secret_arrives() {
    let garage = tokio::task::spawn_blocking(Garage::shared).await.unwrap();
    let mut config = garage.config();
    let (access_key, secret_key) = garage.key();
    config.storage.s3.credentials = CredentialsSource::Kubernetes;
    config.storage.s3.secret.name = CREDENTIALS.into();
    let (sender, receiver) = tokio::sync::watch::channel(None);
    let overrides = Overrides {
        storage_credentials: Some(receiver),
        ..Overrides::default()
    };
    let server = TestServer::start_run(config, overrides).await;
    let not_ready = within("first readiness answer", async {
        loop {
            let r = raw_request(server.admin, "GET", "/readyz", &[]).await;
            if r.detail().contains("credentials") {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(not_ready.status, 503);
    let missing = raw_request(server.addr, "GET", MISSING_OBJECT, &[]).await;
    assert_eq!(
        missing.status, 503,
        "without credentials storage is unavailable, not 'not found'"
    );
    sender.send_replace(Some(image_gateway::storage::S3Credentials {
        access_key_id: access_key.to_owned(),
        secret_access_key: image_gateway::config::Secret::new(secret_key.to_owned()),
    }));
    server.wait_for("/readyz").await;
    let found = raw_request(server.addr, "GET", MISSING_OBJECT, &[]).await;
    assert_eq!(found.status, 404, "signed now: the object is simply not there");
}

/// `redis-cli` against the test's Redis, authenticated with `password`.
fn redis_cli(port: u16, password: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--no-auth-warning", "-a", password])
        .args(args)
        .output()
        .expect("redis-cli (Debian's redis-tools, scripts/install-redis.sh)");
    assert!(
        out.status.success(),
        "redis-cli {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The limiter's (fallback decisions, decisions in Redis) so far.
async fn decisions(server: &TestServer) -> (f64, f64) {
    let text = metrics_text(server).await;
    let read = |name| sample(&text, name, &[]).unwrap_or(0.0);
    (
        read("ratelimit_fallback_decisions_total"),
        read("ratelimit_redis_duration_seconds_count"),
    )
}

/// Waits until a request's rate-limit decision is taken in Redis (a broken connection is
/// noticed by the first request after it, which the replica then decides alone until its
/// probe reconnects), then checks three more are too.
async fn three_decisions_in_redis(server: &TestServer) {
    within("rate-limit decisions in Redis", async {
        loop {
            let (fallbacks, calls) = decisions(server).await;
            let _ = raw_request(server.addr, "GET", MISSING_OBJECT, &[]).await;
            if decisions(server).await == (fallbacks, calls + 1.0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let (fallbacks, calls) = decisions(server).await;
    for _ in 0..3 {
        let response = raw_request(server.addr, "GET", MISSING_OBJECT, &[]).await;
        assert_eq!(response.status, 404);
        assert!(response.header("x-ratelimit-remaining").is_some());
    }
    assert_eq!(decisions(server).await, (fallbacks, calls + 3.0));
}

/// The rate-limit Redis password from a watched Secret, like the other credentials: the
/// gateway authenticates with it, and a rotation (Redis's password first, then the Secret)
/// reaches the connections made afterwards, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_password_follows_its_secret() {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let admin = cluster.client(ADMIN_TOKEN).await;
    create_namespace(&admin).await;
    let secrets = Api::<Secret>::namespaced(admin.clone(), NAMESPACE);
    let (first, second) = ("first-redis-password-0", "second-redis-password-0");
    let stored = secrets
        .create(
            &PostParams::default(),
            &secret("redis-auth", &[("redis-password", first)]),
        )
        .await
        .unwrap();
    let port = free_port();
    let args = ["--port", &port.to_string(), "--requirepass", first].map(String::from);
    let redis = crate::shared_limits::Redis::start_with(port, args.to_vec()).await;

    let fixture = crate::support::Fixture::new(Backend::Fs).await;
    let mut config = fixture.config.clone();
    config.rate_limit.requests_per_minute = 600;
    config.rate_limit.backend = RateLimitBackend::Redis;
    config.rate_limit.redis.url = Some(image_gateway::config::Secret::new(redis.url()));
    config.rate_limit.redis.password_secret = Some(RedisPasswordSecret {
        name: "redis-auth".into(),
        namespace: Some(NAMESPACE.into()),
        key: "redis-password".into(),
    });
    let overrides = Overrides {
        kube: Some(admin.clone()),
        ..Overrides::default()
    };
    let server = TestServer::start_run(config, overrides).await;
    three_decisions_in_redis(&server).await;

    redis_cli(port, first, &["CONFIG", "SET", "requirepass", second]);
    let mut rotated = secret("redis-auth", &[("redis-password", second)]);
    rotated.metadata.resource_version = stored.metadata.resource_version.clone();
    secrets
        .replace("redis-auth", &PostParams::default(), &rotated)
        .await
        .unwrap();
    until_applied(&server, "redis_password", 2.0).await;
    // Every client connection dropped: the gateway's new ones need the new password.
    let killed: u32 = redis_cli(port, second, &["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])
        .parse()
        .unwrap();
    assert!(killed >= 1, "the gateway was connected");
    three_decisions_in_redis(&server).await;
    assert!(
        redis_cli(port, second, &["CLIENT", "LIST"]).lines().count() >= 2,
        "the gateway connected again, with the rotated password"
    );
}
