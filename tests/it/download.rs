//! Downloads (`GET|HEAD /v1/image/download/{object_name}`) answer as HTTP caches and clients
//! expect, on every backend and with the hot-object cache on: every format byte-exact with its
//! headers, ranges, conditionals and their precedence, invalid names refused without asking
//! storage, large objects streamed, not buffered; and over h2c.
//!
//! Variants at the same URL: `variants.rs`; ranges at random: `ranges.rs`; storage down:
//! `storage_outages.rs`.

use image_gateway::object_name::ImageFormat;
use reqwest::{StatusCode, header};

use crate::support::{
    Backend, Counting, Fixture, MISSING_OBJECT, TestServer, client, pattern, raw_request, samples, within,
};

async fn serves_every_format_with_its_headers(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    for (format, content_type, bytes) in samples() {
        let name = fx.put(format, bytes.to_vec()).await;
        let response = within("get", client().get(server.download_url(&name)).send())
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{format:?}");
        let h = response.headers().clone();
        assert_eq!(h[header::CONTENT_TYPE], content_type);
        assert_eq!(h[header::CONTENT_LENGTH], bytes.len().to_string());
        assert_eq!(h[header::CONTENT_DISPOSITION], format!("inline; filename=\"{name}\""));
        assert_eq!(h[header::ACCEPT_RANGES], "bytes");
        assert_eq!(h[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let etag = h[header::ETAG].to_str().unwrap();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "strong ETag: {etag}");
        httpdate::parse_http_date(h[header::LAST_MODIFIED].to_str().unwrap()).expect("an HTTP date");
        let csp = h.get(header::CONTENT_SECURITY_POLICY);
        if format == ImageFormat::Svg {
            assert_eq!(csp.unwrap(), "default-src 'none'; style-src 'unsafe-inline'; sandbox");
        } else {
            assert!(csp.is_none(), "{format:?} has no CSP");
        }
        let body = within("body", response.bytes()).await.unwrap();
        assert_eq!(&body[..], bytes, "{format:?} body is byte-exact");
    }
}

async fn every_extension_alias_gets_its_content_type(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    let id = uuid::Uuid::new_v4().simple().to_string();
    for (ext, content_type) in [("jpeg", "image/jpeg"), ("tif", "image/tiff"), ("jpg", "image/jpeg")] {
        let name = image_gateway::object_name::ObjectName::parse(&format!("{id}.{ext}")).unwrap();
        within("put", fx.setup.put(&name, pattern(10).into())).await.unwrap();
        let response = within("get", client().get(server.download_url(&name)).send())
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[header::CONTENT_TYPE], content_type, "{ext}");
    }
}

async fn head_is_get_without_body(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Png, pattern(5000)).await;
    let get = within("get", client().get(server.download_url(&name)).send())
        .await
        .unwrap();
    let head = raw_request(server.addr, "HEAD", &format!("/v1/image/download/{name}"), &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    for name in [
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "content-disposition",
        "accept-ranges",
        "cache-control",
    ] {
        assert_eq!(
            head.header(name),
            get.headers().get(name).map(|v| v.to_str().unwrap()),
            "HEAD and GET agree on {name}"
        );
    }
    assert_eq!(head.header("content-length"), Some("5000"));
    let head_range = raw_request(
        server.addr,
        "HEAD",
        &format!("/v1/image/download/{name}"),
        &[("Range", "bytes=0-9")],
    )
    .await;
    assert_eq!(head_range.status, 206);
    assert_eq!(head_range.header("content-range"), Some("bytes 0-9/5000"));
    assert!(head_range.body.is_empty());
}

async fn ranges(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    let data = pattern(10_000);
    let name = fx.put(ImageFormat::Webp, data.clone()).await;
    let url = server.download_url(&name);
    // (Range header, status, the bytes expected when 206)
    type Case<'a> = (&'a str, u16, Option<(usize, usize)>);
    let cases: &[Case] = &[
        ("bytes=0-99", 206, Some((0, 99))),
        ("bytes=9000-", 206, Some((9000, 9999))),
        ("bytes=-250", 206, Some((9750, 9999))),
        ("bytes=9990-20000", 206, Some((9990, 9999))),
        ("bytes=-20000", 206, Some((0, 9999))),
        ("bytes=5000-5000", 206, Some((5000, 5000))),
        ("bytes=0-1,5-6", 200, None),
        ("bytes=abc", 200, None),
        ("bytes=9-1", 200, None),
        ("pages=1-2", 200, None),
    ];
    for (range, status, expected) in cases {
        let response = within("get", client().get(&url).header(header::RANGE, *range).send())
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), *status, "{range}");
        let h = response.headers().clone();
        let body = within("body", response.bytes()).await.unwrap();
        match expected {
            Some((a, b)) => {
                assert_eq!(h[header::CONTENT_RANGE], format!("bytes {a}-{b}/10000"), "{range}");
                assert_eq!(h[header::CONTENT_LENGTH], (b - a + 1).to_string());
                assert_eq!(h[header::CONTENT_TYPE], "image/webp");
                assert_eq!(&body[..], &data[*a..=*b], "{range}");
            }
            None => {
                assert!(h.get(header::CONTENT_RANGE).is_none(), "{range}");
                assert_eq!(&body[..], &data[..], "{range}: whole body");
            }
        }
    }
    for range in [
        "bytes=10000-",
        "bytes=20000-30000",
        "bytes=-0",
        "bytes=10000-10001,20000-",
    ] {
        let response = within("get", client().get(&url).header(header::RANGE, range).send())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(response.headers()[header::CONTENT_RANGE], "bytes */10000");
        let json: serde_json::Value = within("json", response.json()).await.unwrap();
        assert!(json["detail"].as_str().unwrap().contains("10000 bytes"));
    }
}

async fn if_range(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Png, pattern(1000)).await;
    let url = server.download_url(&name);
    let first = within("get", client().get(&url).send()).await.unwrap();
    let etag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
    let modified = first.headers()[header::LAST_MODIFIED].to_str().unwrap().to_owned();
    let weak = format!("W/{etag}");
    for (if_range, status) in [
        (etag.as_str(), 206),
        (modified.as_str(), 206),
        ("\"another\"", 200),
        (weak.as_str(), 200),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 200),
    ] {
        let response = within(
            "get",
            client()
                .get(&url)
                .header(header::RANGE, "bytes=0-9")
                .header(header::IF_RANGE, if_range)
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(response.status().as_u16(), status, "If-Range: {if_range}");
        let body = within("body", response.bytes()).await.unwrap();
        assert_eq!(body.len(), if status == 206 { 10 } else { 1000 });
    }
}

async fn conditionals_and_precedence(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Gif, pattern(1000)).await;
    let url = server.download_url(&name);
    let first = within("get", client().get(&url).send()).await.unwrap();
    let etag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
    let modified = first.headers()[header::LAST_MODIFIED].to_str().unwrap().to_owned();
    let lm = httpdate::parse_http_date(&modified).unwrap();
    let earlier = httpdate::fmt_http_date(lm - std::time::Duration::from_secs(60));
    let later = httpdate::fmt_http_date(lm + std::time::Duration::from_secs(60));
    let weak = format!("W/{etag}");
    let list = format!("\"x\", {etag}");
    use header::{IF_MATCH as IM, IF_MODIFIED_SINCE as IMS, IF_NONE_MATCH as INM, IF_UNMODIFIED_SINCE as IUS};
    let cases: Vec<(Vec<(header::HeaderName, &str)>, u16)> = vec![
        (vec![(INM.clone(), etag.as_str())], 304),
        (vec![(INM.clone(), weak.as_str())], 304),
        (vec![(INM.clone(), list.as_str())], 304),
        (vec![(INM.clone(), "*")], 304),
        (vec![(INM.clone(), "\"x\"")], 200),
        (vec![(IMS.clone(), modified.as_str())], 304),
        (vec![(IMS.clone(), later.as_str())], 304),
        (vec![(IMS.clone(), earlier.as_str())], 200),
        (vec![(IMS.clone(), "yesterday")], 200),
        (vec![(IM.clone(), etag.as_str())], 200),
        (vec![(IM.clone(), "*")], 200),
        (vec![(IM.clone(), "\"x\"")], 412),
        (vec![(IM.clone(), weak.as_str())], 412),
        (vec![(IUS.clone(), earlier.as_str())], 412),
        (vec![(IUS.clone(), modified.as_str())], 200),
        // Precedence (RFC 9110 §13.2.2).
        (vec![(IM.clone(), etag.as_str()), (IUS.clone(), earlier.as_str())], 200),
        (vec![(IM.clone(), "\"x\""), (INM.clone(), etag.as_str())], 412),
        (vec![(IUS.clone(), earlier.as_str()), (INM.clone(), etag.as_str())], 412),
        (vec![(INM.clone(), "\"x\""), (IMS.clone(), later.as_str())], 200),
        (vec![(INM.clone(), etag.as_str()), (IMS.clone(), earlier.as_str())], 304),
        (vec![(INM.clone(), etag.as_str()), (header::RANGE, "bytes=0-1")], 304),
        (vec![(IM.clone(), "\"x\""), (header::RANGE, "bytes=0-1")], 412),
    ];
    for (headers, status) in cases {
        for method in ["GET", "HEAD"] {
            let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), *v)).collect();
            let response = raw_request(server.addr, method, &format!("/v1/image/download/{name}"), &h).await;
            assert_eq!(response.status, status, "{method} {headers:?}");
            match status {
                304 => {
                    assert!(response.body.is_empty(), "304 has no body");
                    assert_eq!(response.header("etag"), Some(etag.as_str()));
                    assert_eq!(response.header("last-modified"), Some(modified.as_str()));
                    assert!(response.header("cache-control").is_some());
                }
                412 => assert!(response.body.is_empty(), "412 has no body"),
                _ if method == "GET" => assert_eq!(response.body.len(), 1000),
                _ => {}
            }
        }
    }
}

async fn bad_names_are_refused_without_touching_storage(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let counting = Counting::new(fx.backend());
    let server = TestServer::start_with(fx.config.clone(), counting.clone()).await;
    let id = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6";
    // Long, but within `server.max_url_bytes` (longer targets are 414, see the hostile table).
    let long = "a".repeat(3000);
    let cases = [
        format!("{}.png", id.to_uppercase()),
        format!("{}.png", &id[..31]),
        format!("{id}0.png"),
        format!("{id}.exe"),
        format!("{id}.PNG"),
        id.to_string(),
        format!("{id}."),
        format!("{id}.png/"),
        format!("{id}.png/x"),
        "..".to_string(),
        "../../etc/passwd".to_string(),
        "%2e%2e%2f".to_string(),
        "%2e%2e%2fetc%2fpasswd".to_string(),
        format!("{id}.png%00"),
        format!("{id}%00.png"),
        format!("{}%2F{}.png", &id[..16], &id[16..]),
        format!("{id}.png%2F"),
        "".to_string(),
        format!("{long}.png"),
        format!("{id}.png%ff"),
        format!("%2561{}.png", &id[1..]),
        format!("{id}.svg.png"),
    ];
    for name in &cases {
        let target = format!("/v1/image/download/{name}");
        for method in ["GET", "HEAD"] {
            let response = raw_request(server.addr, method, &target, &[]).await;
            assert_eq!(response.status, 400, "{method} {target:.80}");
            if method == "GET" {
                let detail = response.detail();
                assert!(
                    detail.contains("32 lowercase hex"),
                    "detail says what is valid: {detail}"
                );
                assert!(detail.len() < 400, "detail does not echo the input");
            }
        }
    }
    assert_eq!(counting.calls(), 0, "no storage call for an invalid name");
    // And the one-decode rule still accepts an encoded valid name.
    let name = fx.put(ImageFormat::Png, pattern(10)).await;
    let encoded = name.to_string().replace('.', "%2E");
    let response = raw_request(server.addr, "GET", &format!("/v1/image/download/{encoded}"), &[]).await;
    assert_eq!(response.status, 200);
}

async fn missing_object_is_404(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    let response = raw_request(server.addr, "GET", MISSING_OBJECT, &[]).await;
    assert_eq!(response.status, 404);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.detail(), "image not found");
    assert_eq!(response.code(), "not_found");
}

async fn methods_and_unknown_paths(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Png, pattern(10)).await;
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let response = raw_request(
            server.addr,
            method,
            &format!("/v1/image/download/{name}"),
            &[("Content-Length", "0")],
        )
        .await;
        assert_eq!(response.status, 405, "{method}");
        assert_eq!(response.header("allow"), Some("GET, HEAD"));
        assert!(response.detail().contains("GET, HEAD"));
    }
    let response = raw_request(server.addr, "GET", "/v1/image/upload", &[]).await;
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("POST"));
    for path in [
        "/",
        "/v1/image/download",
        "/v1/image/downloads/x.png",
        "/v2/image/download/x.png",
        "/metrics",
    ] {
        let response = raw_request(server.addr, "GET", path, &[]).await;
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(response.detail(), "no such endpoint");
    }
    let head = within("get stored", client().get(server.download_url(&name)).send())
        .await
        .unwrap();
    assert_eq!(head.status(), 200, "the object is untouched");
}

/// 64 MiB is streamed: after the client has read only its first MiB, storage has been read
/// far less than the whole object (bounded by socket buffers and one chunk).
async fn large_objects_stream_without_buffering(backend: Backend) {
    const SIZE: usize = 64 << 20;
    let fx = Fixture::new(backend).await;
    let data = pattern(SIZE);
    let name = fx.put(ImageFormat::Tiff, data.clone()).await;
    let counting = Counting::new(fx.backend());
    let server = TestServer::start_with(fx.config.clone(), counting.clone()).await;
    // A raw client with a fixed 256 KiB receive buffer: the kernel's autotuning would otherwise
    // let the socket hold up to net.ipv4.tcp_rmem's maximum (32 MiB on these machines), which
    // says nothing about the server buffering.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(256 << 10).unwrap();
    let mut stream = within("connect", socket.connect(server.addr)).await.unwrap();
    let get = format!("GET /v1/image/download/{name} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut stream, get.as_bytes())
        .await
        .unwrap();
    let mut received = Vec::with_capacity(SIZE + 4096);
    let mut buffer = vec![0u8; 64 << 10];
    while received.len() < (1 << 20) {
        let n = within("read", tokio::io::AsyncReadExt::read(&mut stream, &mut buffer))
            .await
            .unwrap();
        assert!(n > 0, "the download ended early");
        received.extend_from_slice(&buffer[..n]);
    }
    // Give the server every chance to run ahead if it were buffering.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let pulled = counting.pulled();
    assert!(
        pulled < (SIZE as u64) / 2,
        "storage read {pulled} bytes while the client had read 1 MiB"
    );
    within(
        "the rest",
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut received),
    )
    .await
    .unwrap();
    let head_end = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&received[..head_end]).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 200") && head.contains(&format!("content-length: {SIZE}")),
        "{head}"
    );
    assert_eq!(received.len() - head_end, SIZE);
    assert!(received[head_end..] == data[..], "the 64 MiB body is byte-exact");
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let fx = Fixture::new(Backend::Fs).await;
    let server = TestServer::start(&fx).await;
    let data = pattern(100_000);
    let name = fx.put(ImageFormat::Png, data.clone()).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .build()
        .unwrap();
    let response = within(
        "h2 get",
        h2.get(server.download_url(&name))
            .header(header::RANGE, "bytes=10-19")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 206);
    assert_eq!(&within("body", response.bytes()).await.unwrap()[..], &data[10..20]);
}

/// The download tests, run on every backend and again with the hot-object cache on.
macro_rules! download_tests {
    ($($on:tt)*) => {
        $($on)*!(
            serves_every_format_with_its_headers,
            every_extension_alias_gets_its_content_type,
            head_is_get_without_body,
            ranges,
            if_range,
            conditionals_and_precedence,
            bad_names_are_refused_without_touching_storage,
            missing_object_is_404,
            methods_and_unknown_paths,
            large_objects_stream_without_buffering,
        );
    };
}

download_tests!(crate::on_every_backend);
download_tests!(crate::on_cached_backends);
