//! Nothing: the canary exists for its Cargo.lock.
