//! Rate limits: a request budget per caller (the API key, else the client address) and a
//! budget of failed authentications per client address, both GCRA. The counters live in this
//! process ([`local`], `rate_limit.backend = "memory"`) or in Redis ([`redis`], one budget
//! across replicas), which falls back to this process's own counters while Redis does not
//! answer within `rate_limit.redis.timeout`.
//!
//! Every limited response carries `X-RateLimit-Limit` (the bucket size),
//! `X-RateLimit-Remaining` and `X-RateLimit-Reset` (Unix time when the bucket is full again);
//! a refusal is 429 with `Retry-After`.

pub mod decision;
pub mod local;
pub mod redis;

use std::{net::IpAddr, sync::Arc};

use tokio::sync::watch;

use crate::{
    config::{CounterStore, RateLimitSettings, Secret},
    metrics::Metrics,
};

use self::{decision::Quotas, local::LocalLimits, redis::RedisLimits};
pub use self::{
    decision::{Attempt, Decision, RateStatus},
    redis::RedisSetupError,
};

/// Rate limits with their counters in this process or in Redis.
pub enum Limiter {
    /// `rate_limit.backend = "memory"`.
    Local(LocalLimits),
    /// `rate_limit.backend = "redis"`.
    Redis(RedisLimits),
}

impl Limiter {
    /// The limiter `config` asks for; `None` when no budget is configured. With Redis this
    /// connects (waiting a second at most: a replica starts while Redis is down) and starts a
    /// task that follows the server's health (it ends when the limiter is dropped).
    /// `password`, when given, is the Redis password as a watched Secret publishes it.
    pub async fn start(
        config: &RateLimitSettings,
        password: Option<watch::Receiver<Option<Secret>>>,
        metrics: Arc<Metrics>,
    ) -> Result<Option<Limiter>, RedisSetupError> {
        let quotas = Quotas::new(config);
        if !quotas.any() {
            return Ok(None);
        }
        Ok(Some(match &config.store {
            CounterStore::Memory => Limiter::Local(LocalLimits::new(quotas)),
            CounterStore::Redis(redis) => Limiter::Redis(RedisLimits::start(quotas, redis, password, metrics).await?),
        }))
    }

    /// Counts `attempt` of `client` and decides.
    pub async fn decide(&self, client: IpAddr, attempt: Attempt<'_>) -> Decision {
        match self {
            Limiter::Local(local) => local.decide(client, attempt),
            Limiter::Redis(redis) => redis.decide(client, attempt).await,
        }
    }

    /// Forgets clients whose buckets are full again (the in-memory counters; Redis keys
    /// expire by themselves).
    pub fn forget_idle(&self) {
        match self {
            Limiter::Local(local) => local.forget_idle(),
            Limiter::Redis(redis) => redis.fallback().forget_idle(),
        }
    }
}
