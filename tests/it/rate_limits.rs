//! Rate limits keep one client from spending everyone's capacity, and make guessing keys and
//! signatures slow. Requests are limited per API key, or per client address, that address taken
//! from `X-Forwarded-For` only behind a trusted proxy; every answer says what is left
//! (`X-RateLimit-*`), a refusal when to retry. Failed authentications (wrong keys, forged
//! signatures) spend a budget of their own per client address (an IPv6 client's per /64), past
//! which the client gets 429 for everything, a valid key included.
//!
//! The same limits shared by several gateways through Redis: `shared_limits.rs`.

use image_gateway::{
    clock::unix_now,
    config::{AuthMode, Secret},
    object_name::ImageFormat,
};

use crate::support::{
    Backend, Fixture, MISSING_OBJECT, READER, SIGNING_KEY, TestServer, WRITER, metrics_text, pattern, raw_request,
    sample, with_keys,
};

async fn rate_limits_per_key_and_client(backend: Backend) {
    let fx = Fixture::with(backend, |c| {
        with_keys(c);
        c.rate_limit.requests_per_minute = 60;
        c.rate_limit.burst = 3;
    })
    .await;
    let server = TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Gif, pattern(100)).await;
    let target = format!("/v1/image/download/{name}");
    let before = unix_now();
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let response = raw_request(server.addr, "GET", &target, &[("X-API-Key", READER)]).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-ratelimit-limit"), Some("3"));
        let reset: u64 = response.header("x-ratelimit-reset").unwrap().parse().unwrap();
        assert!(reset >= before && reset <= unix_now() + 4, "Unix time: {reset}");
        remaining.push(response.header("x-ratelimit-remaining").unwrap().to_owned());
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let refused = raw_request(server.addr, "GET", &target, &[("X-API-Key", READER)]).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.detail(), "Rate limit exceeded. Please try again later.");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    assert!(refused.header("x-ratelimit-reset").is_some());
    let text = metrics_text(&server).await;
    assert_eq!(
        sample(&text, "ratelimit_rejections_total", &[]),
        Some(1.0),
        "the 429 is counted"
    );
    // Another key has its own budget; errors inside the budget carry the headers too.
    let other = raw_request(server.addr, "GET", MISSING_OBJECT, &[("X-API-Key", WRITER)]).await;
    assert_eq!(other.status, 404);
    assert_eq!(other.header("x-ratelimit-remaining"), Some("2"));
}

#[tokio::test]
async fn rate_limits_per_client_address_trust_only_configured_proxies() {
    for (trusted, separate_buckets) in [(vec![], false), (vec!["127.0.0.0/8".to_string()], true)] {
        let fx = Fixture::with(Backend::Fs, |c| {
            c.rate_limit.requests_per_minute = 1;
            c.rate_limit.burst = 1;
            c.server.trusted_proxies = trusted.clone();
        })
        .await;
        let server = TestServer::start(&fx).await;
        let name = fx.put(ImageFormat::Png, pattern(10)).await;
        let target = format!("/v1/image/download/{name}");
        let first = raw_request(server.addr, "GET", &target, &[("X-Forwarded-For", "198.51.100.1")]).await;
        assert_eq!(first.status, 200);
        let second = raw_request(server.addr, "GET", &target, &[("X-Forwarded-For", "198.51.100.2")]).await;
        assert_eq!(second.status == 200, separate_buckets, "trusted proxies {trusted:?}");
    }
}

crate::on_every_backend!(rate_limits_per_key_and_client);

/// Wrong keys and forged signatures spend a per-client budget (`rate_limit.auth_failures_per_minute`,
/// 30 by default); past it the client gets 429 for everything, a valid key included, while
/// another client (here behind a trusted proxy) is unaffected. Before: 60 wrong keys, 60 401s.
#[tokio::test]
async fn failed_authentication_is_rate_limited_per_client() {
    let fx = Fixture::with(crate::support::Backend::Fs, |c| {
        c.auth.mode = AuthMode::ApiKey;
        c.auth.api_keys = vec![Secret::new(READER)];
        c.server.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let server = TestServer::start(&fx).await;
    let get = |headers: Vec<(&'static str, String)>| {
        let addr = server.addr;
        async move {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            raw_request(addr, "GET", MISSING_OBJECT, &headers).await
        }
    };
    let wrong = || vec![("X-API-Key", format!("wrong-key-{}", "0".repeat(16)))];
    for i in 0..30u32 {
        let r = get(wrong()).await;
        assert_eq!(r.status, 401, "failure {i} is within the budget");
        assert_eq!(r.header("x-ratelimit-limit"), Some("30"));
        assert_eq!(r.header("x-ratelimit-remaining"), Some((29 - i).to_string().as_str()));
    }
    let refused = get(wrong()).await;
    assert_eq!(refused.status, 429);
    assert!(
        refused
            .header("retry-after")
            .is_some_and(|s| s.parse::<u64>().unwrap() >= 1)
    );
    let valid = get(vec![("X-API-Key", READER.to_owned())]).await;
    assert_eq!(valid.status, 429, "a blocked client cannot test keys either");
    // A missing key is not a guess and never counted; another client address has its own budget.
    let other = get(vec![
        ("X-API-Key", READER.to_owned()),
        ("X-Forwarded-For", "192.0.2.7".into()),
    ])
    .await;
    assert_eq!(other.status, 404, "another client is served");
}

/// An IPv6 client rotating its address inside its /64 (through a trusted proxy here) still
/// spends one budget of failed authentications; a proxy that writes `ip:port` hops names the
/// client, not itself. Before: every address of the /64 had a budget of its own, and a hop
/// with a port was charged to the proxy, so everyone behind it shared one.
#[tokio::test]
async fn ipv6_clients_rotating_within_their_network_share_one_budget() {
    let fx = Fixture::with(crate::support::Backend::Fs, |c| {
        c.auth.mode = AuthMode::ApiKey;
        c.auth.api_keys = vec![Secret::new(READER)];
        c.server.trusted_proxies = vec!["127.0.0.1".into()];
        c.rate_limit.auth_failures_per_minute = 3;
    })
    .await;
    let server = TestServer::start(&fx).await;
    let wrong = format!("wrong-key-{}", "0".repeat(16));
    let from = |hop: String, key: &str| {
        let (addr, key) = (server.addr, key.to_owned());
        async move {
            raw_request(
                addr,
                "GET",
                MISSING_OBJECT,
                &[("X-API-Key", key.as_str()), ("X-Forwarded-For", hop.as_str())],
            )
            .await
        }
    };
    for i in 1..=3 {
        assert_eq!(
            from(format!("2001:db8:1:2::{i}"), &wrong).await.status,
            401,
            "failure {i}"
        );
    }
    assert_eq!(
        from("2001:db8:1:2:ffff::9".into(), &wrong).await.status,
        429,
        "the same /64"
    );
    assert_eq!(
        from("2001:db8:1:3::1".into(), READER).await.status,
        404,
        "another /64 is served"
    );
    // ip:port hops: the clients behind the proxy keep budgets of their own.
    for i in 1..=3 {
        assert_eq!(
            from("198.51.100.7:5555".into(), &wrong).await.status,
            401,
            "failure {i}"
        );
    }
    assert_eq!(from("198.51.100.7:6666".into(), &wrong).await.status, 429);
    assert_eq!(
        from("198.51.100.8:5555".into(), READER).await.status,
        404,
        "not charged to the proxy"
    );
}

#[tokio::test]
async fn forged_signatures_are_rate_limited_per_client() {
    let fx = Fixture::with(crate::support::Backend::Fs, |c| {
        c.auth.url_signing_key = vec![Secret::new(SIGNING_KEY)];
        c.rate_limit.auth_failures_per_minute = 5;
    })
    .await;
    let server = TestServer::start(&fx).await;
    let forged = format!("{MISSING_OBJECT}?expires=4102444800&signature={}", "ab".repeat(32));
    for _ in 0..5 {
        assert_eq!(raw_request(server.addr, "GET", &forged, &[]).await.status, 403);
    }
    assert_eq!(raw_request(server.addr, "GET", &forged, &[]).await.status, 429);
    assert_eq!(
        raw_request(server.addr, "GET", MISSING_OBJECT, &[]).await.status,
        429,
        "blocked for unsigned requests too"
    );
}
