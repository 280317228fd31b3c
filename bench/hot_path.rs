//! The request hot path without network: object-name validation, Range parsing and
//! conditional evaluation. `cargo bench --bench hot_path`.

use std::{hint::black_box, time::SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, header};
use image_gateway::{
    api::download::{conditional, range},
    object_name::ObjectName,
    storage::ObjectMeta,
};

fn names(c: &mut Criterion) {
    c.bench_function("name/valid", |b| {
        b.iter(|| ObjectName::parse_encoded(black_box("a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6.png")))
    });
    c.bench_function("name/percent-encoded", |b| {
        b.iter(|| ObjectName::parse_encoded(black_box("a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6%2Epng")))
    });
    c.bench_function("name/invalid", |b| {
        b.iter(|| ObjectName::parse_encoded(black_box("%2e%2e%2fetc%2fpasswd")))
    });
}

fn ranges(c: &mut Criterion) {
    for (label, value) in [
        ("a-b", "bytes=0-1023"),
        ("suffix", "bytes=-500"),
        ("several", "bytes=0-1,5-6,9-10"),
    ] {
        c.bench_function(&format!("range/{label}"), |b| {
            b.iter(|| range::parse(black_box(value), 10_000_000))
        });
    }
}

fn conditionals(c: &mut Criterion) {
    let meta = ObjectMeta {
        len: 1_000_000,
        etag: "\"3e8-18ec532ac910d63b-98c0a7\"".into(),
        last_modified: SystemTime::now(),
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::IF_NONE_MATCH,
        HeaderValue::from_static("\"x\", W/\"3e8-18ec532ac910d63b-98c0a7\""),
    );
    c.bench_function("conditional/if-none-match", |b| {
        b.iter(|| conditional::evaluate(black_box(&headers), &meta))
    });
    let empty = HeaderMap::new();
    c.bench_function("conditional/none", |b| {
        b.iter(|| conditional::evaluate(black_box(&empty), &meta))
    });
}

criterion_group!(hot_path, names, ranges, conditionals);
criterion_main!(hot_path);
