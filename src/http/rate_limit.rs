//! Per-client rate limits (GCRA, via `governor`): `rate_limit.requests_per_minute` refill into
//! a bucket of `rate_limit.burst`. Every limited response carries `X-RateLimit-Limit` (the
//! bucket size), `X-RateLimit-Remaining` and `X-RateLimit-Reset` (Unix time when the bucket is
//! full again); a refusal is 429 with `Retry-After`.

use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::clock::unix_now;

type Limiter = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

pub const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
pub const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
pub const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

pub struct RateLimits {
    limiter: Limiter,
    clock: DefaultClock,
    burst: u32,
    /// Time for one request's worth of capacity to come back.
    per_request: Duration,
}

/// The outcome of one check, as headers (and, when refused, how long to wait).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateStatus {
    pub limit: u32,
    pub remaining: u32,
    pub reset: u64,
    /// `Some(seconds)` when the request is refused.
    pub retry_after: Option<u64>,
}

impl RateLimits {
    /// `None` (no limits) when `requests_per_minute` is 0; `burst` 0 means one minute's worth.
    pub fn new(requests_per_minute: u32, burst: u32) -> Option<RateLimits> {
        let rate = NonZeroU32::new(requests_per_minute)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        let clock = DefaultClock::default();
        let limiter = RateLimiter::dashmap_with_clock(Quota::per_minute(rate).allow_burst(burst), clock.clone())
            .with_middleware::<StateInformationMiddleware>();
        Some(RateLimits {
            limiter,
            clock,
            burst: burst.get(),
            per_request: Duration::from_secs(60) / rate.get(),
        })
    }

    /// Counts one request of `client` and says whether it may proceed.
    pub fn check(&self, client: &str) -> RateStatus {
        let now = unix_now();
        match self.limiter.check_key(&client.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let refill = self.per_request * (self.burst - remaining);
                RateStatus {
                    limit: self.burst,
                    remaining,
                    reset: now + ceil_secs(refill),
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let refill = wait + self.per_request * (self.burst - 1);
                RateStatus {
                    limit: self.burst,
                    remaining: 0,
                    reset: now + ceil_secs(refill),
                    retry_after: Some(ceil_secs(wait).max(1)),
                }
            }
        }
    }

    /// Forgets clients whose buckets are full again, so memory follows active clients only.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Clients with state (tests watch the sweep with it).
    #[cfg(test)]
    fn tracked_clients(&self) -> usize {
        self.limiter.len()
    }
}

/// Failed authentications per client address (`rate_limit.auth_failures_per_minute`): a
/// client that spends its budget of wrong keys or bad signatures is refused with 429 for every
/// request until one failure's worth has come back — valid keys included, or guessing would go
/// on at full speed behind the 429s.
pub struct AuthFailures {
    budget: RateLimits,
    /// Clients refused until a Unix second, with the status to answer meanwhile.
    blocked: Mutex<HashMap<IpAddr, (u64, RateStatus)>>,
}

impl AuthFailures {
    /// `None` (no budget) when `per_minute` is 0; the burst is one minute's worth.
    pub fn new(per_minute: u32) -> Option<AuthFailures> {
        Some(AuthFailures {
            budget: RateLimits::new(per_minute, per_minute)?,
            blocked: Mutex::new(HashMap::new()),
        })
    }

    /// The 429 status to answer when `client` has spent its budget, before anything is checked.
    pub fn blocked(&self, client: IpAddr) -> Option<RateStatus> {
        let now = unix_now();
        let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        match blocked.get(&client) {
            Some((until, status)) if *until > now => Some(RateStatus {
                retry_after: Some(until - now),
                ..status.clone()
            }),
            Some(_) => {
                blocked.remove(&client);
                None
            }
            None => None,
        }
    }

    /// Counts one failed authentication of `client`; when that spends the budget, the client is
    /// blocked and the status says how long (`retry_after`).
    pub fn failed(&self, client: IpAddr) -> RateStatus {
        let status = self.budget.check(&client.to_string());
        if let Some(wait) = status.retry_after {
            let until = unix_now() + wait;
            let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
            blocked.insert(client, (until, status.clone()));
        }
        status
    }

    /// Forgets clients whose budget is full again and blocks that have ended.
    pub fn forget_idle(&self) {
        self.budget.forget_idle();
        let now = unix_now();
        let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        blocked.retain(|_, (until, _)| *until > now);
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl RateStatus {
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(LIMIT, HeaderValue::from(self.limit));
        headers.insert(REMAINING, HeaderValue::from(self.remaining));
        headers.insert(RESET, HeaderValue::from(self.reset));
        if let Some(seconds) = self.retry_after {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_per_client() {
        let limits = RateLimits::new(60, 3).unwrap();
        let now = unix_now();
        let statuses: Vec<RateStatus> = (0..4).map(|_| limits.check("a")).collect();
        assert_eq!(statuses.iter().map(|s| s.remaining).collect::<Vec<_>>(), [2, 1, 0, 0]);
        assert!(statuses[..3].iter().all(|s| s.retry_after.is_none() && s.limit == 3));
        let refused = &statuses[3];
        assert_eq!(refused.retry_after, Some(1), "one request per second comes back");
        assert!(refused.reset >= now + 3 && refused.reset <= now + 4, "{refused:?}");
        assert_eq!(limits.check("b").remaining, 2, "another client has its own bucket");
        assert_eq!(limits.tracked_clients(), 2);
    }

    #[test]
    fn spent_failure_budget_blocks_the_client() {
        let failures = AuthFailures::new(2).unwrap();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(failures.blocked(a).is_none());
        assert_eq!(failures.failed(a).remaining, 1);
        assert_eq!(failures.failed(a).remaining, 0);
        assert!(failures.blocked(a).is_none(), "the budget is spent, not exceeded");
        let refused = failures.failed(a);
        assert_eq!(refused.retry_after, Some(30), "two per minute: one back in 30 s");
        let blocked = failures.blocked(a).expect("blocked after exceeding the budget");
        assert!(blocked.retry_after.is_some_and(|s| (29..=30).contains(&s)));
        assert_eq!(blocked.limit, 2);
        assert!(failures.blocked(b).is_none(), "another client is not");
        assert!(AuthFailures::new(0).is_none());
    }

    #[test]
    fn zero_rate_means_no_limits() {
        assert!(RateLimits::new(0, 10).is_none());
        assert_eq!(RateLimits::new(120, 0).unwrap().burst, 120);
    }
}
