//! Liveness and readiness. Readiness is decided from state that background tasks keep fresh
//! (a cheap storage check every few seconds, credential sources publishing through watch
//! channels), never by work on the probe's request path.
//!
//! Readiness is about this pod's own ability to serve: not draining, every credential source
//! loaded once (a [`Latch`] each), and storage reached once since start (a latch too, as
//! linkerd's readiness). Storage going away later does not make the pod unready: storage is
//! shared by every replica, so a blip would take all of them out of the Service at once, and
//! the ingress would answer its own 503 without `Retry-After` while our metrics saw nothing.
//! Instead each request answers 503 + `Retry-After` itself, and `storage_reachable` (a gauge)
//! and its alert tell the operator.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::watch;

use crate::storage::StorageError;

/// How often storage is checked in the background.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// A success older than this no longer counts.
const STALE_AFTER: Duration = Duration::from_secs(6);

/// A readiness condition that holds once its source has published a first value.
pub struct Latch {
    name: &'static str,
    loaded: Box<dyn Fn() -> bool + Send + Sync>,
}

impl Latch {
    /// Holds once `source` has a value (a credential source's channel: `None` until first read).
    pub fn loaded<T: Send + Sync + 'static>(name: &'static str, source: watch::Receiver<Option<T>>) -> Latch {
        Latch {
            name,
            loaded: Box::new(move || source.borrow().is_some()),
        }
    }
}

/// Readiness state: latches, storage checks and draining.
#[derive(Default)]
pub struct Health {
    shutting_down: AtomicBool,
    latches: Vec<Latch>,
    storage: Mutex<StorageState>,
}

#[derive(Debug, Default)]
struct StorageState {
    reached_once: bool,
    last_ok: Option<Instant>,
    last_error: Option<String>,
}

impl Health {
    /// Readiness that also waits for every latch.
    pub fn new(latches: Vec<Latch>) -> Health {
        Health {
            latches,
            ..Health::default()
        }
    }

    /// From now on readiness fails: the pod is draining.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Records one background storage check (`Err` carries the reason, shown by `/readyz`
    /// only until storage was reached once).
    pub fn record_storage_check(&self, result: Result<(), &StorageError>) {
        let mut state = self.storage.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match result {
            Ok(()) => {
                state.reached_once = true;
                state.last_ok = Some(Instant::now());
                state.last_error = None;
            }
            Err(e) => state.last_error = Some(e.to_string()),
        }
    }

    /// Whether the last storage check succeeded, recently enough to count (`storage_reachable`).
    pub fn storage_reachable(&self) -> bool {
        let state = self.storage.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.last_error.is_none() && state.last_ok.is_some_and(|t| t.elapsed() <= STALE_AFTER)
    }

    /// `Ok` when ready; otherwise the failed checks.
    pub fn readiness(&self) -> Result<(), NotReady> {
        let mut failed = Vec::new();
        if self.shutting_down.load(Ordering::SeqCst) {
            failed.push(("shutdown", "in progress".to_owned()));
        }
        for latch in &self.latches {
            if !(latch.loaded)() {
                failed.push((latch.name, "not loaded yet".to_owned()));
            }
        }
        let state = self.storage.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !state.reached_once {
            let why = state.last_error.as_deref().unwrap_or("no successful check yet");
            failed.push(("storage", why.to_owned()));
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(NotReady { failed })
        }
    }
}

/// Why the pod is not ready: each failed check's name and reason. `Display` shows both (for the
/// admin listener); [`NotReady::names`] only the names (for the public one: reasons can name
/// internal hosts, ports and paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    failed: Vec<(&'static str, String)>,
}

impl NotReady {
    /// The failed checks' names, joined with `, `.
    pub fn names(&self) -> String {
        self.failed.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
    }
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, why)) in self.failed.iter().enumerate() {
            let separator = if i == 0 { "" } else { "; " };
            write!(f, "{separator}{name}: {why}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_names_each_failed_check() {
        let (credentials, source) = watch::channel(None);
        let health = Health::new(vec![Latch::loaded("credentials", source)]);
        credentials.send_replace(Some(()));
        let not_ready = |health: &Health| health.readiness().unwrap_err().to_string();
        let refused = StorageError::unavailable("connection refused");
        assert_eq!(not_ready(&health), "storage: no successful check yet");
        health.record_storage_check(Err(&refused));
        assert_eq!(not_ready(&health), "storage: storage unavailable: connection refused");
        assert!(!health.storage_reachable());
        health.record_storage_check(Ok(()));
        assert_eq!(health.readiness(), Ok(()));
        assert!(health.storage_reachable());
        // Once reached, a storage outage is the gauge's business, not readiness'.
        health.record_storage_check(Err(&refused));
        assert_eq!(health.readiness(), Ok(()));
        assert!(!health.storage_reachable());
        health.record_storage_check(Ok(()));
        credentials.send_replace(None);
        health.begin_shutdown();
        assert_eq!(not_ready(&health), "shutdown: in progress; credentials: not loaded yet");
        assert_eq!(health.readiness().unwrap_err().names(), "shutdown, credentials");
    }
}
