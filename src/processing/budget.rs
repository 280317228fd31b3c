//! A job's allowance: its deadline (`processing.job_timeout`, counted from the moment a worker
//! starts it) and whether anyone still waits for its result. A job that runs past its deadline,
//! or whose client has hung up (or whose request timed out), stops at the next check: between
//! steps, between encoding attempts, between rows of the loops that can take long. What a single
//! library call does cannot be interrupted, so each such call is bounded before it starts (pixel
//! limits, the SVG filter cost in `svg.rs`), and the deadline bounds the rest.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use super::error::ProcessError;

/// Cancels the job it was made with when dropped before [`Abandon::disarm`]: the caller's
/// future holds it, so a client that goes away (or a request timeout that drops the handler)
/// stops the work it started.
pub(super) struct Abandon(Option<Arc<AtomicBool>>);

impl Abandon {
    /// The result has arrived: nothing to cancel.
    pub(super) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if let Some(flag) = self.0.take() {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

/// What a running job checks.
#[derive(Debug, Clone)]
pub struct Budget {
    started: Instant,
    limit: Duration,
    abandoned: Arc<AtomicBool>,
}

impl Budget {
    /// A budget of `limit` from now, and the guard whose drop abandons it.
    pub(super) fn start(limit: Duration, abandoned: Arc<AtomicBool>) -> Budget {
        Budget {
            started: Instant::now(),
            limit,
            abandoned,
        }
    }

    /// A flag for [`Budget::start`] and the guard that raises it.
    pub(super) fn guard() -> (Arc<AtomicBool>, Abandon) {
        let flag = Arc::new(AtomicBool::new(false));
        (flag.clone(), Abandon(Some(flag)))
    }

    /// A budget nobody cancels, of `limit` (tools, benchmarks and tests that call the
    /// operations directly).
    pub fn detached(limit: Duration) -> Budget {
        Budget::start(limit, Arc::new(AtomicBool::new(false)))
    }

    /// Whether the caller has gone.
    pub(super) fn abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Relaxed)
    }

    /// `Err` once the caller has gone or the deadline has passed: the job stops there.
    pub fn check(&self) -> Result<(), ProcessError> {
        if self.abandoned() {
            return Err(ProcessError::Abandoned);
        }
        if self.started.elapsed() > self.limit {
            return Err(ProcessError::TimedOut(self.limit));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_guard_stops_the_job_and_a_disarmed_one_does_not() {
        let (flag, guard) = Budget::guard();
        let budget = Budget::start(Duration::from_secs(60), flag);
        assert_eq!(budget.check(), Ok(()));
        drop(guard);
        assert_eq!(budget.check(), Err(ProcessError::Abandoned));

        let (flag, guard) = Budget::guard();
        let budget = Budget::start(Duration::from_secs(60), flag);
        guard.disarm();
        assert_eq!(budget.check(), Ok(()));
    }

    #[test]
    fn the_deadline_counts_from_the_start() {
        let budget = Budget::detached(Duration::from_millis(20));
        assert_eq!(budget.check(), Ok(()));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(budget.check(), Err(ProcessError::TimedOut(Duration::from_millis(20))));
    }
}
