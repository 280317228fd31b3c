//! The one integration test binary: the real server on ephemeral ports, real Garage and MinIO
//! S3 servers shared by all tests (each under its own key prefix), and real HTTP clients.

mod s3_servers;
mod support;

mod access;
mod avif;
mod bad_requests;
mod cache;
mod cli;
mod conformance;
mod connections;
mod download;
mod kubernetes;
mod observability;
mod process;
mod process_budget;
mod process_ops;
mod process_reference;
mod ranges;
mod rate_limits;
mod retention;
mod shared_limits;
mod shutdown;
mod storage_outages;
mod svg;
mod upload;
mod variants;
