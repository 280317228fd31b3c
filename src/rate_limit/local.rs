//! The counters of this process (`rate_limit.backend = "memory"`, and Redis's fallback):
//! GCRA through `governor`.

use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use governor::{
    RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};

use super::decision::{Attempt, Decision, Quota, Quotas, RateStatus, ceil_secs};
use crate::clock::unix_now;

type Limiter = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// Both budgets, counted in this process.
pub struct LocalLimits {
    requests: Option<RateLimits>,
    failures: Option<AuthFailures>,
}

impl LocalLimits {
    /// Counters for `quotas`.
    pub fn new(quotas: Quotas) -> LocalLimits {
        LocalLimits {
            requests: quotas.requests.map(RateLimits::new),
            failures: quotas.auth_failures.map(AuthFailures::new),
        }
    }

    /// Counts `attempt` of `client` and decides (see [`super::Limiter::decide`]).
    pub fn decide(&self, client: IpAddr, attempt: Attempt<'_>) -> Decision {
        if let Some(status) = self.failures.as_ref().and_then(|f| f.blocked(client)) {
            return Decision::Blocked(status);
        }
        Decision::Counted(match attempt {
            Attempt::Accepted(identity) => self.requests.as_ref().map(|r| r.check(identity)),
            Attempt::WrongCredential => self.failures.as_ref().map(|f| f.failed(client)),
            Attempt::Refused => None,
        })
    }

    /// Forgets clients whose buckets are full again, so memory follows active clients only.
    pub fn forget_idle(&self) {
        if let Some(requests) = &self.requests {
            requests.forget_idle();
        }
        if let Some(failures) = &self.failures {
            failures.forget_idle();
        }
    }
}

/// One budget per caller, counted in this process.
pub struct RateLimits {
    limiter: Limiter,
    clock: DefaultClock,
    burst: u32,
    /// Time for one request's worth of capacity to come back.
    per_request: Duration,
}

impl RateLimits {
    /// Buckets of `quota`.
    pub fn new(quota: Quota) -> RateLimits {
        let clock = DefaultClock::default();
        let rate = NonZeroU32::new(quota.per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(quota.burst).unwrap_or(NonZeroU32::MIN);
        let limiter =
            RateLimiter::dashmap_with_clock(governor::Quota::per_minute(rate).allow_burst(burst), clock.clone())
                .with_middleware::<StateInformationMiddleware>();
        RateLimits {
            limiter,
            clock,
            burst: burst.get(),
            per_request: quota.per_request(),
        }
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
    /// A budget of `quota`.
    pub fn new(quota: Quota) -> AuthFailures {
        AuthFailures {
            budget: RateLimits::new(quota),
            blocked: Mutex::new(HashMap::new()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_per_client() {
        let limits = RateLimits::new(Quota::new(60, 3).unwrap());
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
        let failures = AuthFailures::new(Quota::new(2, 2).unwrap());
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
    }
}
