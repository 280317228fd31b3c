//! The wall clock in Unix seconds, the one place the library reads it for expiries, rate-limit
//! resets and metrics (functions that decide on time take `now` as an argument).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the clock is set before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
