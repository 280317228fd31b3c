//! Rate limits shared through a real Redis (`rate_limit.backend = "redis"`, Debian's
//! redis-server from `scripts/install-redis.sh`): two gateway processes keep one budget, Redis
//! killed mid-run and back, the failed-authentication budget, TLS and a password.

use std::{
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use tempfile::TempDir;

use crate::{
    cli::Spawned,
    s3_servers::cached_bin,
    support::{blocking_get, certificate, client, free_port, hex, sample, scratch_dir, within},
};

/// A redis-server process on a loopback port, without persistence; restartable on that port.
pub(crate) struct Redis {
    child: Option<Child>,
    pub(crate) port: u16,
    args: Vec<String>,
    dir: TempDir,
}

impl Redis {
    /// Plain TCP on a free port.
    pub(crate) async fn start() -> Redis {
        let port = free_port();
        Redis::start_with(port, vec!["--port".into(), port.to_string()]).await
    }

    pub(crate) async fn start_with(port: u16, mut args: Vec<String>) -> Redis {
        let dir = scratch_dir();
        for arg in ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir"] {
            args.push(arg.into());
        }
        args.push(dir.path().to_str().unwrap().into());
        let mut redis = Redis {
            child: None,
            port,
            args,
            dir,
        };
        redis.restart().await;
        redis
    }

    /// Starts the server (again), empty, and waits until its port accepts connections.
    async fn restart(&mut self) {
        let bin = cached_bin("IG_REDIS_BIN", "redis/redis-server", "install-redis.sh");
        let log = std::fs::File::create(self.dir.path().join("redis.log")).unwrap();
        let child = Command::new(bin)
            .args(&self.args)
            .stdout(Stdio::from(log))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let port = self.port;
        within("redis-server listening", async {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    /// SIGKILL, as a node failure would: no goodbye to the clients.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a run of requests got back.
#[derive(Debug, Default)]
struct Tally {
    /// Let through (the object does not exist: 404).
    allowed: usize,
    limited: usize,
}

/// `n` downloads spread over `gateways` in turn, each answered 404 (allowed; no such object)
/// or 429; anything else fails the test.
async fn spend(gateways: &[&Spawned], n: usize) -> Tally {
    let client = client();
    let mut tally = Tally::default();
    for i in 0..n {
        let url = gateways[i % gateways.len()].url(&format!("/v1/image/download/{}.png", hex(32)));
        let response = client.get(url).send().await.unwrap();
        match response.status().as_u16() {
            404 => tally.allowed += 1,
            429 => tally.limited += 1,
            status => panic!("request {i}: {status} {}", response.text().await.unwrap()),
        }
    }
    tally
}

fn metric(gateway: &Spawned, name: &str) -> f64 {
    let (status, body) = blocking_get(gateway.admin.port(), "/metrics").expect("metrics answer");
    assert_eq!(status, 200);
    sample(&String::from_utf8(body).unwrap(), name, &[]).unwrap_or(0.0)
}

/// The environment of a gateway limited to 60 requests a minute (a burst of 60) in `redis`.
fn redis_env(url: &str, prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("IMAGE_GATEWAY_RATE_LIMIT__REQUESTS_PER_MINUTE", "60".into()),
        ("IMAGE_GATEWAY_RATE_LIMIT__BACKEND", "redis".into()),
        ("IMAGE_GATEWAY_RATE_LIMIT__REDIS__URL", url.into()),
        ("IMAGE_GATEWAY_RATE_LIMIT__REDIS__KEY_PREFIX", prefix.into()),
    ]
}

async fn spawn(env: &[(&'static str, String)]) -> Spawned {
    spawn_logging(env, Stdio::null()).await
}

async fn spawn_logging(env: &[(&'static str, String)], stderr: Stdio) -> Spawned {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Spawned::start(&env, stderr).await
}

/// One budget refills at 1/s: a run of a few seconds may see a request or two come back.
const REFILL_SLACK: usize = 3;

#[tokio::test]
async fn two_gateways_share_one_budget() {
    let redis = Redis::start().await;
    let env = redis_env(&redis.url(), "it-share:");
    let (a, b) = (spawn(&env).await, spawn(&env).await);
    let tally = spend(&[&a, &b], 120).await;
    assert!(
        (60..=60 + REFILL_SLACK).contains(&tally.allowed),
        "one budget of 60 between two gateways: {tally:?}"
    );

    let response = client()
        .get(b.url(&format!("/v1/image/download/{}.png", hex(32))))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let headers = response.headers();
    assert_eq!(headers["x-ratelimit-limit"], "60");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    assert!(headers.contains_key("retry-after") && headers.contains_key("x-ratelimit-reset"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().starts_with("Rate limit exceeded"),
        "{body}"
    );

    for gateway in [&a, &b] {
        assert_eq!(metric(gateway, "ratelimit_fallback_decisions_total"), 0.0);
        assert_eq!(metric(gateway, "ratelimit_redis_up"), 1.0);
        assert!(metric(gateway, "ratelimit_redis_duration_seconds_count") >= 60.0);
    }

    // The same two gateways with their counters in memory: each has its own 60.
    let memory = [("IMAGE_GATEWAY_RATE_LIMIT__REQUESTS_PER_MINUTE", "60".to_owned())];
    let (c, d) = (spawn(&memory).await, spawn(&memory).await);
    assert_eq!(spend(&[&c, &d], 120).await.allowed, 120, "memory: 60 per gateway");
}

#[tokio::test]
async fn redis_outage_falls_back_to_local_limits_and_recovers() {
    let mut redis = Redis::start().await;
    let mut env = redis_env(&redis.url(), "it-outage:");
    env.push(("IMAGE_GATEWAY_RATE_LIMIT__REDIS__TIMEOUT", "20ms".into()));
    let (a, b) = (spawn(&env).await, spawn(&env).await);
    assert_eq!(spend(&[&a, &b], 20).await.allowed, 20);

    redis.kill();
    // Each gateway decides alone now, from a full bucket of its own: nothing fails.
    let tally = spend(&[&a, &b], 40).await;
    assert_eq!(tally.allowed, 40, "{tally:?}");
    for gateway in [&a, &b] {
        assert!(metric(gateway, "ratelimit_fallback_decisions_total") >= 20.0);
        assert_eq!(metric(gateway, "ratelimit_redis_up"), 0.0);
    }
    // Still alone: 70 more on one gateway meet its own bucket (60, of which 20 are spent).
    let alone = spend(&[&a], 70).await;
    assert!((40..=40 + REFILL_SLACK).contains(&alone.allowed), "{alone:?}");

    redis.restart().await;
    within("both gateways back on Redis", async {
        while metric(&a, "ratelimit_redis_up") != 1.0 || metric(&b, "ratelimit_redis_up") != 1.0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let fallbacks = [&a, &b].map(|g| metric(g, "ratelimit_fallback_decisions_total"));
    // Shared again (the restarted Redis starts empty): one budget of 60 between the two.
    let shared = spend(&[&a, &b], 90).await;
    assert!((60..=60 + REFILL_SLACK).contains(&shared.allowed), "{shared:?}");
    assert_eq!(
        [&a, &b].map(|g| metric(g, "ratelimit_fallback_decisions_total")),
        fallbacks,
        "no decision without Redis once it is back"
    );
}

#[tokio::test]
async fn failed_authentications_are_counted_across_gateways() {
    let redis = Redis::start().await;
    let dir = scratch_dir();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "write:the-right-key-0123456789\n").unwrap();
    let mut env = redis_env(&redis.url(), "it-auth:");
    env.extend([
        ("IMAGE_GATEWAY_AUTH__MODE", "api_key".to_owned()),
        ("IMAGE_GATEWAY_AUTH__API_KEYS_FILE", keys.to_str().unwrap().to_owned()),
        ("IMAGE_GATEWAY_RATE_LIMIT__AUTH_FAILURES_PER_MINUTE", "4".to_owned()),
    ]);
    let (a, b) = (spawn(&env).await, spawn(&env).await);
    let client = client();
    let get = |gateway: &Spawned, key: &str| {
        client
            .get(gateway.url(&format!("/v1/image/download/{}.png", hex(32))))
            .header("x-api-key", key)
            .send()
    };
    for (i, gateway) in [&a, &b, &a, &b].into_iter().enumerate() {
        let response = get(gateway, "a-wrong-guess-0123456789").await.unwrap();
        assert_eq!(response.status(), 401, "guess {i}");
        assert_eq!(
            response.headers()["x-ratelimit-remaining"],
            (3 - i).to_string().as_str()
        );
    }
    assert_eq!(get(&a, "a-wrong-guess-0123456789").await.unwrap().status(), 429);
    // Blocked on the other gateway too, even with the right key.
    let blocked = get(&b, "the-right-key-0123456789").await.unwrap();
    assert_eq!(blocked.status(), 429);
    assert_eq!(blocked.headers()["x-ratelimit-limit"], "4");
    assert!(blocked.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn tls_and_password_from_the_environment() {
    let dir = scratch_dir();
    let certs = certificate(dir.path(), "redis");
    let port = free_port();
    let path = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let redis = Redis::start_with(
        port,
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &path(&certs.cert),
            "--tls-key-file",
            &path(&certs.key),
            "--tls-ca-cert-file",
            &path(&certs.ca),
            "--tls-auth-clients",
            "no",
            "--requirepass",
            "the-redis-password",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let mut env = redis_env(&url, "it-tls:");
    env.push(("IMAGE_GATEWAY_RATE_LIMIT__REDIS__CA_FILE", path(&certs.ca)));
    let mut right = env.clone();
    right.push(("IMAGE_GATEWAY_RATE_LIMIT__REDIS__PASSWORD", "the-redis-password".into()));
    let gateway = spawn(&right).await;
    let client = client();
    for remaining in ["59", "58"] {
        let response = client
            .get(gateway.url(&format!("/v1/image/download/{}.png", hex(32))))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        assert_eq!(response.headers()["x-ratelimit-remaining"], remaining);
    }
    assert_eq!(metric(&gateway, "ratelimit_fallback_decisions_total"), 0.0);
    assert_eq!(metric(&gateway, "ratelimit_redis_duration_seconds_count"), 2.0);

    // A wrong password: Redis refuses, the gateway decides alone and says so, without the
    // password in its log.
    let log_dir = scratch_dir();
    let log_path = log_dir.path().join("gateway.log");
    let mut wrong = env.clone();
    wrong.push(("IMAGE_GATEWAY_RATE_LIMIT__REDIS__PASSWORD", "not-the-password".into()));
    let log = std::fs::File::create(&log_path).unwrap();
    let refused = spawn_logging(&wrong, Stdio::from(log)).await;
    assert_eq!(spend(&[&refused], 3).await.allowed, 3);
    assert!(metric(&refused, "ratelimit_fallback_decisions_total") >= 3.0);
    drop(refused);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("rate-limit Redis failed"), "{log}");
    assert!(!log.contains("not-the-password") && !log.contains("the-redis-password"));
}

#[tokio::test]
async fn rates_beyond_one_per_microsecond_are_counted_in_redis_too() {
    let redis = Redis::start().await;
    let mut env = redis_env(&redis.url(), "it-fast:");
    env[0].1 = "1000000000".into();
    let gateway = spawn(&env).await;
    assert_eq!(spend(&[&gateway], 5).await.allowed, 5);
    assert_eq!(metric(&gateway, "ratelimit_fallback_decisions_total"), 0.0);
    assert_eq!(metric(&gateway, "ratelimit_redis_duration_seconds_count"), 5.0);
}

#[tokio::test]
async fn a_slow_redis_is_decided_around_within_the_timeout() {
    let port = free_port();
    let args = ["--port", &port.to_string(), "--enable-debug-command", "local"].map(String::from);
    let redis = Redis::start_with(port, args.to_vec()).await;
    let mut env = redis_env(&redis.url(), "it-slow:");
    env.push(("IMAGE_GATEWAY_RATE_LIMIT__REDIS__TIMEOUT", "20ms".into()));
    let gateway = spawn(&env).await;
    assert_eq!(spend(&[&gateway], 2).await.allowed, 2);
    // Redis stops answering anyone for 3 s; the requests sent meanwhile are answered before
    // it wakes up.
    let sleeping = std::thread::spawn(move || {
        Command::new("redis-cli")
            .args(["-p", &port.to_string(), "DEBUG", "SLEEP", "3"])
            .output()
            .expect("redis-cli (scripts/install-redis.sh)")
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let tally = spend(&[&gateway], 5).await;
    assert!(!sleeping.is_finished(), "answered while Redis was still asleep");
    assert_eq!(tally.allowed, 5);
    let (status, body) = blocking_get(gateway.admin.port(), "/metrics").unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    assert_eq!(
        sample(&text, "ratelimit_redis_errors_total", &[("reason", "timeout")]),
        Some(1.0)
    );
    assert_eq!(sample(&text, "ratelimit_fallback_decisions_total", &[]), Some(5.0));
    assert!(sleeping.join().unwrap().status.success());
}
