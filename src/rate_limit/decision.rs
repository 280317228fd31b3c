//! What both backends share: the quotas of `[rate_limit]`, what a request is counted as, and
//! the decision with its headers.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::RateLimitSettings;

/// The bucket size.
pub const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// Requests left in the bucket.
pub const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// Unix time when the bucket is full again.
pub const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// The outcome of one check, as headers (and, when refused, how long to wait).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateStatus {
    /// The bucket size (`X-RateLimit-Limit`).
    pub limit: u32,
    /// Requests left (`X-RateLimit-Remaining`).
    pub remaining: u32,
    /// Unix time when the bucket is full again (`X-RateLimit-Reset`).
    pub reset: u64,
    /// `Some(seconds)` when the request is refused.
    pub retry_after: Option<u64>,
}

impl RateStatus {
    /// Writes the status as response headers (with `Retry-After` when refused).
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(LIMIT, HeaderValue::from(self.limit));
        headers.insert(REMAINING, HeaderValue::from(self.remaining));
        headers.insert(RESET, HeaderValue::from(self.reset));
        if let Some(seconds) = self.retry_after {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
    }

    /// Whether the request is refused (429).
    pub fn refused(&self) -> bool {
        self.retry_after.is_some()
    }
}

/// What access control made of a request, which decides the budget it is counted against.
#[derive(Debug, Clone, Copy)]
pub enum Attempt<'a> {
    /// Accepted: one request of this caller's budget (`key:<id>` or `ip:<address>`).
    Accepted(&'a str),
    /// A presented credential that is wrong: one failure of the client's failure budget.
    WrongCredential,
    /// Refused for another reason (no credential, too little scope): no budget is spent.
    Refused,
}

/// The limiter's answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The client spent its failure budget earlier: 429 whatever it sends now.
    Blocked(RateStatus),
    /// The attempt was counted (`None`: no budget applies); refused when the status says so.
    Counted(Option<RateStatus>),
}

/// The bucket parameters, shared by both backends: `per_minute` refills into `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Sustained rate.
    pub per_minute: u32,
    /// Requests allowed at once.
    pub burst: u32,
}

impl Quota {
    /// `None` (no limit) when `per_minute` is 0; `burst` 0 means one minute's worth.
    pub fn new(per_minute: u32, burst: u32) -> Option<Quota> {
        (per_minute > 0).then_some(Quota {
            per_minute,
            burst: if burst == 0 { per_minute } else { burst },
        })
    }

    /// Time for one request's worth of capacity to come back.
    pub fn per_request(&self) -> Duration {
        Duration::from_secs(60) / self.per_minute
    }

    /// This quota divided between `parts` replicas (each keeps at least one request).
    pub fn divided(self, parts: u32) -> Quota {
        let parts = parts.max(1);
        Quota {
            per_minute: (self.per_minute / parts).max(1),
            burst: (self.burst / parts).max(1),
        }
    }
}

/// The two budgets of `[rate_limit]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Requests per caller.
    pub requests: Option<Quota>,
    /// Failed authentications per client address (its burst is one minute's worth).
    pub auth_failures: Option<Quota>,
}

impl Quotas {
    /// The budgets of `[rate_limit]` (0 per minute: none).
    pub fn new(config: &RateLimitSettings) -> Quotas {
        let failures = config.auth_failures_per_minute;
        Quotas {
            requests: Quota::new(config.requests_per_minute, config.burst),
            auth_failures: Quota::new(failures, failures),
        }
    }

    pub(crate) fn divided(self, parts: u32) -> Quotas {
        Quotas {
            requests: self.requests.map(|q| q.divided(parts)),
            auth_failures: self.auth_failures.map(|q| q.divided(parts)),
        }
    }

    pub(crate) fn any(&self) -> bool {
        self.requests.is_some() || self.auth_failures.is_some()
    }
}

pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_from_config_and_divided() {
        assert_eq!(Quota::new(0, 10), None);
        assert_eq!(Quota::new(120, 0).unwrap().burst, 120);
        let quota = Quota::new(60, 10).unwrap();
        assert_eq!(quota.per_request(), Duration::from_secs(1));
        assert_eq!(
            quota.divided(3),
            Quota {
                per_minute: 20,
                burst: 3
            }
        );
        assert_eq!(
            quota.divided(100),
            Quota {
                per_minute: 1,
                burst: 1
            },
            "never zero"
        );
        assert_eq!(quota.divided(0), quota);
    }
}
