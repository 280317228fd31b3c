//! The hot-object cache's metrics: lookups by result, evictions by cause, its size.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

use super::registry::{gauge_bytes, register};

label_set! {
    /// A lookup's result (`cache_lookups_total{result}`).
    CacheLookup {
        /// Answered from memory.
        Hit => "hit",
        /// This request read storage.
        Miss => "miss",
        /// It waited for another request's read.
        Coalesced => "coalesced",
    }
}

label_set! {
    /// Why the cache dropped an entry on its own (`cache_evictions_total{cause}`).
    Eviction {
        /// To stay within `cache.max_bytes`.
        Size => "size",
        /// Its `ttl` passed.
        Expired => "expired",
    }
}

/// `cache_*`.
pub struct CacheMetrics {
    lookups: IntCounterVec,
    evictions: IntCounterVec,
    bytes: IntGauge,
    entries: IntGauge,
}

impl CacheMetrics {
    pub(super) fn register(r: &Registry) -> CacheMetrics {
        CacheMetrics {
            lookups: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "cache_lookups_total",
                        "Hot-object cache lookups: hit, miss (this request read storage) or coalesced (it waited for another's read)",
                    ),
                    &["result"],
                ),
            ),
            evictions: register(
                r,
                IntCounterVec::new(
                    Opts::new("cache_evictions_total", "Entries the hot-object cache dropped"),
                    &["cause"],
                ),
            ),
            bytes: register(
                r,
                IntGauge::new(
                    "cache_bytes",
                    "Bytes held by the hot-object cache, bookkeeping included",
                ),
            ),
            entries: register(r, IntGauge::new("cache_entries", "Entries in the hot-object cache")),
        }
    }

    /// One lookup.
    pub(crate) fn lookup(&self, result: CacheLookup) {
        self.lookups.with_label_values(&[result.label()]).inc();
    }

    /// An entry of `weight` bytes entered the cache.
    pub(crate) fn added(&self, weight: u64) {
        self.bytes.add(gauge_bytes(weight));
        self.entries.inc();
    }

    /// An entry of `weight` bytes left the cache; `evicted` when the cache dropped it on its
    /// own rather than on our request.
    pub(crate) fn removed(&self, weight: u64, evicted: Option<Eviction>) {
        self.bytes.sub(gauge_bytes(weight));
        self.entries.dec();
        if let Some(cause) = evicted {
            self.evictions.with_label_values(&[cause.label()]).inc();
        }
    }
}
