//! Counters in Redis (`rate_limit.backend = "redis"`): one budget per caller across every
//! replica. Each decision is one `EVALSHA` of `gcra.lua` (one round trip, atomic, on Redis's
//! clock) on one of `rate_limit.redis.connections` multiplexed connections.
//!
//! When Redis errs or takes longer than `rate_limit.redis.timeout`, this replica decides with
//! its own in-memory counters ([`LocalLimits`], the quotas divided by
//! `rate_limit.redis.fallback_divisor`) and stops asking Redis; a probe task pings it every
//! second and switches back once it answers. A request never waits longer than the timeout
//! and never fails because of the limiter.

use std::{
    net::IpAddr,
    path::PathBuf,
    pin::Pin,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::Stream;
use redis::{
    BasicAuth, Client, IntoConnectionInfo, RedisResult, Script, StreamingCredentialsProvider, TlsCertificates,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use tokio::sync::{Notify, watch};

use super::{
    decision::{Attempt, Decision, Quota, Quotas, RateStatus, ceil_secs},
    local::LocalLimits,
};
use crate::{
    clock::unix_now,
    config::{RedisSettings, Secret},
    metrics::{Metrics, RedisFailure},
};

/// How often an unreachable Redis is asked again.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Longest wait for a connection (and a probe's answer, and the start).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the Redis backend cannot be built (a configuration mistake, found at start-up).
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    /// The URL (or the TLS set-up) is refused by the client.
    #[error("rate_limit.redis.url: {0}")]
    Url(redis::RedisError),
    /// The CA file cannot be read.
    #[error("cannot read rate_limit.redis.ca_file {path}: {source}")]
    CaFile {
        /// The configured file.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
}

/// Rate limits counted in Redis, with this replica's own counters as the fallback.
pub struct RedisLimits {
    quotas: Quotas,
    fallback: LocalLimits,
    shared: Arc<Shared>,
}

/// What the request path and the probe task share.
struct Shared {
    connections: Vec<ConnectionManager>,
    next: AtomicUsize,
    script: Script,
    timeout: Duration,
    prefix: String,
    /// Whether decisions go to Redis (false: the fallback decides, the probe is at work).
    up: AtomicBool,
    /// Wakes the probe when a call fails.
    went_down: Arc<Notify>,
    metrics: Arc<Metrics>,
}

/// A call to Redis that did not give an answer in time.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("no answer in time")]
    Timeout,
    #[error(transparent)]
    Error(redis::RedisError),
}

impl RedisLimits {
    /// Connects (waiting a second at most: a Redis that is down only means this
    /// replica starts on its own counters) and starts the probe.
    pub async fn start(
        quotas: Quotas,
        config: &RedisSettings,
        password: Option<watch::Receiver<Option<Secret>>>,
        metrics: Arc<Metrics>,
    ) -> Result<RedisLimits, RedisSetupError> {
        let client = client(config)?;
        let mut manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(PROBE_INTERVAL);
        if let Some(password) = password {
            let username = client
                .get_connection_info()
                .redis_settings()
                .username()
                .unwrap_or("default")
                .to_owned();
            manager_config = manager_config.set_credentials_provider(WatchedPassword { username, password });
        }
        let connections = (0..config.connections.get())
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(RedisSetupError::Url)?;
        let shared = Arc::new(Shared {
            connections,
            next: AtomicUsize::new(0),
            script: Script::new(include_str!("gcra.lua")),
            timeout: config.timeout,
            prefix: config.key_prefix.clone(),
            up: AtomicBool::new(false),
            went_down: Arc::new(Notify::new()),
            metrics,
        });
        match shared.answers().await {
            Ok(()) => shared.up.store(true, Ordering::Release),
            Err(failure) => tracing::warn!(
                error = %failure,
                "rate-limit Redis failed at start; this replica counts alone until it answers"
            ),
        }
        shared.metrics.rate_limit.redis_up(shared.up.load(Ordering::Acquire));
        tokio::spawn(probe(Arc::downgrade(&shared)));
        Ok(RedisLimits {
            quotas,
            fallback: LocalLimits::new(quotas.divided(config.fallback_divisor.get())),
            shared,
        })
    }

    /// The in-memory counters used while Redis is unreachable.
    pub fn fallback(&self) -> &LocalLimits {
        &self.fallback
    }

    /// Counts `attempt` of `client` in Redis and decides; the fallback decides when Redis
    /// is known to be down or does not answer within the timeout.
    pub async fn decide(&self, client: IpAddr, attempt: Attempt<'_>) -> Decision {
        let check_block = self.quotas.auth_failures.is_some();
        let (mode, bucket, quota) = match attempt {
            Attempt::Accepted(identity) => ("accepted", format!("req:{identity}"), self.quotas.requests),
            Attempt::WrongCredential => ("failed", format!("fail:{client}"), self.quotas.auth_failures),
            Attempt::Refused => ("refused", format!("fail:{client}"), None),
        };
        let (mode, quota) = match quota {
            Some(quota) => (mode, quota),
            // Nothing to count, and no block to look at: no round trip.
            None if !check_block => return Decision::Counted(None),
            None => (
                "refused",
                Quota {
                    per_minute: 1,
                    burst: 1,
                },
            ),
        };
        let shared = &self.shared;
        if !shared.up.load(Ordering::Acquire) {
            shared.metrics.rate_limit.fallback();
            return self.fallback.decide(client, attempt);
        }
        let block = format!("{}block:{client}", shared.prefix);
        let bucket = format!("{}{bucket}", shared.prefix);
        let mut invocation = shared.script.key(block);
        invocation
            .key(bucket)
            .arg(mode)
            // GCRA in whole µs: rates above 60 million a minute count as that.
            .arg((quota.per_request().as_micros() as u64).max(1))
            .arg(quota.burst)
            .arg(u8::from(check_block));
        let mut connection = shared.connection();
        let start = Instant::now();
        match within(shared.timeout, invocation.invoke_async::<[i64; 4]>(&mut connection)).await {
            Ok(reply) => {
                shared.metrics.rate_limit.redis_call(start.elapsed());
                self.status(reply, quota)
            }
            Err(failure) => {
                shared.failed(failure);
                self.fallback.decide(client, attempt)
            }
        }
    }

    /// The script's reply `[verdict, remaining, wait µs, µs until full]` as a decision.
    fn status(&self, [verdict, remaining, wait, full_in]: [i64; 4], quota: Quota) -> Decision {
        let now = unix_now();
        let secs = |micros: i64| ceil_secs(Duration::from_micros(u64::try_from(micros).unwrap_or(0)));
        let status = |limit: u32| RateStatus {
            limit,
            remaining: u32::try_from(remaining).unwrap_or(0),
            reset: now + secs(full_in),
            retry_after: (verdict != 0).then(|| secs(wait).max(1)),
        };
        match verdict {
            0 | 1 => Decision::Counted(Some(status(quota.burst))),
            2 => Decision::Blocked(status(self.quotas.auth_failures.map_or(quota.burst, |q| q.burst))),
            _ => Decision::Counted(None),
        }
    }
}

impl Shared {
    /// The next connection in turn.
    fn connection(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[i].clone()
    }

    /// Records a failed call and, the first time, switches to the fallback.
    fn failed(&self, failure: Failure) {
        let reason = match &failure {
            // The client's own response timeout (the same) may fire first.
            Failure::Timeout => RedisFailure::Timeout,
            Failure::Error(e) if e.is_timeout() => RedisFailure::Timeout,
            Failure::Error(_) => RedisFailure::Error,
        };
        self.metrics.rate_limit.redis_failed(reason);
        if self.up.swap(false, Ordering::AcqRel) {
            self.metrics.rate_limit.redis_up(false);
            tracing::warn!(
                error = %failure,
                timeout_ms = self.timeout.as_millis() as u64,
                "rate-limit Redis failed; this replica counts alone until it answers"
            );
            self.went_down.notify_one();
        }
    }

    /// Checks that every connection is up and has the script loaded (after a restart Redis
    /// has forgotten it), each within [`CONNECT_TIMEOUT`].
    async fn answers(&self) -> Result<(), Failure> {
        for connection in &self.connections {
            let mut connection = connection.clone();
            within(CONNECT_TIMEOUT, self.script.load_async(&mut connection)).await?;
        }
        Ok(())
    }
}

/// The answer of a call to Redis, or why there was none within `limit`.
async fn within<T>(limit: Duration, call: impl Future<Output = RedisResult<T>>) -> Result<T, Failure> {
    match tokio::time::timeout(limit, call).await {
        Ok(answer) => answer.map_err(Failure::Error),
        Err(_) => Err(Failure::Timeout),
    }
}

/// While Redis is down, pings it every [`PROBE_INTERVAL`] and switches back when it answers;
/// ends when the limiter is dropped.
async fn probe(shared: Weak<Shared>) {
    loop {
        let Some(strong) = shared.upgrade() else { return };
        if strong.up.load(Ordering::Acquire) {
            let went_down = strong.went_down.clone();
            drop(strong);
            // Wakes at least every interval, so a dropped limiter ends the task.
            let _ = tokio::time::timeout(PROBE_INTERVAL, went_down.notified()).await;
            continue;
        }
        drop(strong);
        // Waits before probing: a Redis that answers the probe but fails real calls flips
        // the state (and logs) at most once per interval.
        tokio::time::sleep(PROBE_INTERVAL).await;
        let Some(strong) = shared.upgrade() else { return };
        if strong.answers().await.is_ok() {
            strong.up.store(true, Ordering::Release);
            strong.metrics.rate_limit.redis_up(true);
            tracing::info!("rate-limit Redis answers again; limits are shared across replicas");
        }
    }
}

/// The password of a watched Secret, as redis-rs asks for credentials: a new connection takes
/// the current one (waiting for the first), and open connections re-authenticate with each
/// new one.
struct WatchedPassword {
    username: String,
    password: watch::Receiver<Option<Secret>>,
}

impl StreamingCredentialsProvider for WatchedPassword {
    fn subscribe(&self) -> Pin<Box<dyn Stream<Item = RedisResult<BasicAuth>> + Send + 'static>> {
        let mut password = self.password.clone();
        // The current value counts as new to this subscriber.
        password.mark_changed();
        let username = self.username.clone();
        Box::pin(futures_util::stream::unfold(password, move |mut password| {
            let username = username.clone();
            async move {
                loop {
                    // Ends with the watch (the service is stopping).
                    password.changed().await.ok()?;
                    let current = password.borrow_and_update().clone();
                    if let Some(current) = current {
                        let auth = BasicAuth::new(username, current.expose().to_owned());
                        return Some((Ok(auth), password));
                    }
                }
            }
        }))
    }
}

/// The client for `rate_limit.redis.url`, with the password and CA of the configuration.
fn client(config: &RedisSettings) -> Result<Client, RedisSetupError> {
    let mut info = config
        .url
        .expose()
        .into_connection_info()
        .map_err(RedisSetupError::Url)?;
    if let Some(password) = &config.password {
        let settings = info.redis_settings().clone().set_password(password.expose());
        info = info.set_redis_settings(settings);
    }
    match &config.ca_file {
        None => Client::open(info),
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| RedisSetupError::CaFile {
                path: path.clone(),
                source,
            })?;
            let certificates = TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            };
            Client::build_with_tls(info, certificates)
        }
    }
    .map_err(RedisSetupError::Url)
}
