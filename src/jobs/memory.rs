//! Admission by memory: before a job decodes anything, it reserves the peak memory its input's
//! header says it will need (`processing::estimated_memory`) from the pod's processing budget
//! (`processing.memory_budget`). A job that needs more than the whole budget is refused at
//! once (413); one that does not fit beside the running jobs waits on its worker, first come
//! first served, until they give enough back, its caller leaves or its deadline passes (the
//! wait counts in `processing.job_timeout`; past it the answer is 503, the server being busy). The
//! workers bound how many jobs run, the budget bounds what they hold together: many large images
//! at once queue instead of taking the pod past its memory limit.

use std::{
    collections::VecDeque,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::Duration,
};

use crate::{
    metrics::Metrics,
    processing::{Budget, ProcessError},
};

/// How often a waiting job looks at its own deadline and whether its caller is still there.
const RECHECK: Duration = Duration::from_millis(20);

/// Why a reservation was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The job needs more than the whole budget: it could never run.
    OverBudget { needed: u64, budget: u64 },
    /// The job's deadline passed while it waited: the server is busy (503).
    Waited { needed: u64, waited: Duration },
    /// The job stopped waiting because its caller left.
    Stopped(ProcessError),
}

/// The memory the running jobs may hold together.
pub(crate) struct MemoryBudget {
    total: u64,
    state: Mutex<State>,
    freed: Condvar,
    metrics: Arc<Metrics>,
}

struct State {
    free: u64,
    /// Tickets of the jobs waiting, in arrival order: only the first may take memory, so a
    /// large job is not passed for ever by small ones.
    waiting: VecDeque<u64>,
    next_ticket: u64,
}

/// Memory held by a job until dropped.
pub(crate) struct Reservation {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.lock().free += self.bytes;
        self.budget.metrics.processing.memory_released(self.bytes);
        self.budget.freed.notify_all();
    }
}

impl MemoryBudget {
    pub(crate) fn new(total: u64, metrics: Arc<Metrics>) -> Arc<MemoryBudget> {
        metrics.processing.memory_budget(total);
        Arc::new(MemoryBudget {
            total,
            state: Mutex::new(State {
                free: total,
                waiting: VecDeque::new(),
                next_ticket: 0,
            }),
            freed: Condvar::new(),
            metrics,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves only counters behind: still consistent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes `bytes` of the budget, blocking the calling worker until they are free and every
    /// job that came first has been served; `job` is checked while waiting.
    pub(crate) fn reserve(self: &Arc<Self>, bytes: u64, job: &Budget) -> Result<Reservation, Refused> {
        if bytes > self.total {
            return Err(Refused::OverBudget {
                needed: bytes,
                budget: self.total,
            });
        }
        let mut state = self.lock();
        if state.waiting.is_empty() && state.free >= bytes {
            return Ok(self.take(&mut state, bytes));
        }
        self.metrics.processing.memory_wait();
        let waiting_since = std::time::Instant::now();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.waiting.push_back(ticket);
        loop {
            if state.waiting.front() == Some(&ticket) && state.free >= bytes {
                state.waiting.pop_front();
                let reservation = self.take(&mut state, bytes);
                // The next in line may fit in what is left.
                self.freed.notify_all();
                return Ok(reservation);
            }
            if let Err(stopped) = job.check() {
                state.waiting.retain(|&t| t != ticket);
                self.freed.notify_all();
                return Err(match stopped {
                    ProcessError::TimedOut(_) => Refused::Waited {
                        needed: bytes,
                        waited: waiting_since.elapsed(),
                    },
                    stopped => Refused::Stopped(stopped),
                });
            }
            state = self
                .freed
                .wait_timeout(state, RECHECK)
                .map_or_else(|poisoned| poisoned.into_inner().0, |(state, _)| state);
        }
    }

    fn take(self: &Arc<Self>, state: &mut State, bytes: u64) -> Reservation {
        state.free -= bytes;
        self.metrics.processing.memory_reserved(bytes);
        Reservation {
            budget: self.clone(),
            bytes,
        }
    }
}

/// `processing.memory_budget = 0`: half the memory limit of the container's cgroup, or half
/// the machine's memory where there is no limit. The other half is for everything else the
/// process holds (the hot cache, uploads being received, buffers).
pub(crate) fn automatic() -> u64 {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let cgroup_v2 = read("/sys/fs/cgroup/memory.max").and_then(|text| text.trim().parse::<u64>().ok());
    // cgroup v1 writes "no limit" as a huge number, above the machine's memory.
    let cgroup_v1 =
        read("/sys/fs/cgroup/memory/memory.limit_in_bytes").and_then(|text| text.trim().parse::<u64>().ok());
    let machine = read("/proc/meminfo").and_then(|text| {
        let kib = text.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
        Some(kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok()? * 1024)
    });
    let limit = [cgroup_v2, cgroup_v1, machine].into_iter().flatten().min();
    limit.unwrap_or(2 << 30) / 2
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicU64, Ordering},
        thread,
    };

    use super::*;

    fn budget(total: u64) -> Arc<MemoryBudget> {
        MemoryBudget::new(total, Arc::new(Metrics::new()))
    }

    fn minute() -> Budget {
        Budget::detached(Duration::from_secs(60))
    }

    #[test]
    fn a_job_over_the_whole_budget_is_refused_at_once() {
        let memory = budget(100);
        assert_eq!(
            memory.reserve(101, &minute()).err(),
            Some(Refused::OverBudget {
                needed: 101,
                budget: 100
            })
        );
        let all = memory.reserve(100, &minute()).unwrap();
        drop(all);
        assert_eq!(memory.lock().free, 100);
    }

    #[test]
    fn jobs_never_hold_more_than_the_budget_together() {
        let memory = budget(100);
        let (held, most) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let jobs: Vec<_> = (0..8u64)
            .map(|n| {
                let (memory, held, most) = (memory.clone(), held.clone(), most.clone());
                thread::spawn(move || {
                    let bytes = 30 + n * 5;
                    let reservation = memory.reserve(bytes, &minute()).unwrap();
                    let now = held.fetch_add(bytes, Ordering::SeqCst) + bytes;
                    most.fetch_max(now, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(20));
                    held.fetch_sub(bytes, Ordering::SeqCst);
                    drop(reservation);
                })
            })
            .collect();
        for job in jobs {
            job.join().unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!(most <= 100, "held {most} of 100 at once");
        assert!(most >= 65, "two jobs fit at once: {most}");
        assert_eq!(memory.lock().free, 100);
    }

    /// Returns once `count` jobs wait; panics after a minute.
    fn waiting(memory: &MemoryBudget, count: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while memory.lock().waiting.len() < count {
            assert!(std::time::Instant::now() < deadline, "{count} jobs never waited");
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_waiting_large_job_is_not_passed_by_later_small_ones() {
        let memory = budget(100);
        let first = memory.reserve(60, &minute()).unwrap();
        let large = {
            let memory = memory.clone();
            thread::spawn(move || memory.reserve(80, &minute()).map(|_| ()))
        };
        waiting(&memory, 1);
        // 40 are free, but the large job came first: the small one queues behind it.
        let small = {
            let memory = memory.clone();
            thread::spawn(move || memory.reserve(10, &minute()).map(|_| ()))
        };
        // Had it been let through, it would never be in the line.
        waiting(&memory, 2);
        assert_eq!(memory.lock().free, 40);
        drop(first);
        assert_eq!(large.join().unwrap(), Ok(()));
        assert_eq!(small.join().unwrap(), Ok(()));
        assert_eq!(memory.lock().free, 100);
    }

    #[test]
    fn a_job_stops_waiting_at_its_deadline_and_leaves_the_line() {
        let memory = budget(100);
        let held = memory.reserve(100, &minute()).unwrap();
        let refused = memory.reserve(50, &Budget::detached(Duration::from_millis(50))).err();
        assert!(
            matches!(refused, Some(Refused::Waited { needed: 50, waited }) if waited >= Duration::from_millis(40)),
            "{refused:?}"
        );
        assert!(memory.lock().waiting.is_empty());
        drop(held);
        assert!(memory.reserve(50, &minute()).is_ok());
    }

    #[test]
    fn the_automatic_budget_is_half_of_a_limit_at_most() {
        let auto = automatic();
        assert!(auto > 0);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let total_kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap();
        assert!(auto <= total_kib * 1024 / 2, "{auto} is over half of MemTotal");
    }
}
