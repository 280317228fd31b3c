//! Liveness and readiness. Readiness is decided from state that a background task keeps
//! fresh (a cheap storage check every few seconds), never by work on the probe's request path.
//!
//! Readiness is about this pod's own ability to serve: started, credentials loaded, not
//! draining, and storage reached once since start (a latch, as linkerd's readiness). Storage
//! going away later does not make the pod unready: storage is shared by every replica, so a
//! blip would take all of them out of the Service at once, and the ingress would answer its own
//! 503 without `Retry-After` while our metrics saw nothing. Instead each request answers 503 +
//! `Retry-After` itself, and `storage_reachable` (a gauge) and its alert tell the operator.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// How often storage is checked in the background.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// A success older than this no longer counts.
const STALE_AFTER: Duration = Duration::from_secs(6);

#[derive(Debug, Default)]
pub struct Health {
    shutting_down: AtomicBool,
    credentials_loaded: AtomicBool,
    storage: Mutex<StorageState>,
}

#[derive(Debug, Default)]
struct StorageState {
    reached_once: bool,
    last_ok: Option<Instant>,
    last_error: Option<String>,
}

impl Health {
    /// Credentials count as loaded from the start when they come from configuration.
    pub fn new(credentials_loaded: bool) -> Health {
        let health = Health::default();
        health.credentials_loaded.store(credentials_loaded, Ordering::SeqCst);
        health
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    pub fn set_credentials_loaded(&self, loaded: bool) {
        self.credentials_loaded.store(loaded, Ordering::SeqCst);
    }

    pub fn record_storage_check(&self, result: Result<(), String>) {
        let mut state = self.storage.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match result {
            Ok(()) => {
                state.reached_once = true;
                state.last_ok = Some(Instant::now());
                state.last_error = None;
            }
            Err(e) => state.last_error = Some(e),
        }
    }

    /// Whether the last storage check succeeded, recently enough to count (`storage_reachable`).
    pub fn storage_reachable(&self) -> bool {
        let state = self.storage.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.last_error.is_none() && state.last_ok.is_some_and(|t| t.elapsed() <= STALE_AFTER)
    }

    /// `Ok` when ready; otherwise the failed checks, for the 503 body.
    pub fn readiness(&self) -> Result<(), String> {
        let mut failed = Vec::new();
        if self.is_shutting_down() {
            failed.push("shutdown: in progress".to_owned());
        }
        if !self.credentials_loaded.load(Ordering::SeqCst) {
            failed.push("credentials: not loaded yet".to_owned());
        }
        let state = self.storage.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !state.reached_once {
            let why = state.last_error.as_deref().unwrap_or("no successful check yet");
            failed.push(format!("storage: {why}"));
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_names_each_failed_check() {
        let health = Health::new(true);
        assert_eq!(health.readiness().unwrap_err(), "storage: no successful check yet");
        health.record_storage_check(Err("connection refused".into()));
        assert_eq!(health.readiness().unwrap_err(), "storage: connection refused");
        assert!(!health.storage_reachable());
        health.record_storage_check(Ok(()));
        assert_eq!(health.readiness(), Ok(()));
        assert!(health.storage_reachable());
        // Once reached, a storage outage is the gauge's business, not readiness'.
        health.record_storage_check(Err("connection refused".into()));
        assert_eq!(health.readiness(), Ok(()));
        assert!(!health.storage_reachable());
        health.record_storage_check(Ok(()));
        health.set_credentials_loaded(false);
        health.begin_shutdown();
        assert_eq!(
            health.readiness().unwrap_err(),
            "shutdown: in progress; credentials: not loaded yet"
        );
    }
}
