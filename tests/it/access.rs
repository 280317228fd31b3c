//! Access control against the real server, on both backends: API keys and scopes (downloads,
//! uploads, operations), the key file's reload, signed URLs, CORS, the Cache-Control an
//! answer gets for how it was authorized. Rate limits: `rate_limits.rs`.

use std::time::Duration;

use image_gateway::{
    auth::signing::UrlSigner,
    clock::unix_now,
    config::{AuthMode, Secret},
    object_name::ImageFormat,
};
use reqwest::{StatusCode, header};

use crate::support::{
    Backend, Fixture, PNG, READER, SIGNING_KEY, TestServer, WRITER, client, pattern, raw_request, response_detail,
    upload, with_keys, within,
};

async fn api_keys_and_scopes(backend: Backend) {
    let fx = Fixture::with(backend, with_keys).await;
    let server = TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Png, PNG.to_vec()).await;
    let target = format!("/v1/image/download/{name}");

    for headers in [
        vec![],
        vec![("X-API-Key", "wrong-0123456789abcdef")],
        vec![("X-API-Key", READER), ("X-API-Key", READER)],
    ] {
        let response = raw_request(server.addr, "GET", &target, &headers).await;
        assert_eq!(response.status, 401, "{headers:?}");
        assert_eq!(response.detail(), "Invalid or missing API key");
        assert_eq!(
            response.header("www-authenticate"),
            Some("ApiKey realm=\"image-gateway\", header=\"X-API-Key\"")
        );
    }
    for key in [READER, WRITER] {
        let response = raw_request(server.addr, "GET", &target, &[("X-API-Key", key)]).await;
        assert_eq!(response.status, 200, "{key}");
        assert_eq!(response.body, PNG);
    }
    let refused = upload(&server, Some(READER), "image/png", PNG.to_vec()).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(response_detail(refused).await.contains("read scope"));
    assert_eq!(upload(&server, None, "image/png", PNG.to_vec()).await.status(), 401);
    let stored = upload(&server, Some(WRITER), "image/png", PNG.to_vec()).await;
    assert_eq!(stored.status(), 201);
    // An operation takes the write scope too: its result is stored, its source any object.
    let resize = server.url(&format!("/v1/image/resize?width=8&source={name}"));
    for (key, status) in [(Some(READER), 403), (None, 401), (Some(WRITER), 201)] {
        let mut request = client().post(&resize);
        if let Some(key) = key {
            request = request.header("X-API-Key", key);
        }
        let response = within("resize", request.send()).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{key:?}");
    }
    // Probes stay open; a bad name is refused before any key check, without storage.
    assert_eq!(raw_request(server.addr, "GET", "/readyz", &[]).await.status, 200);
    assert_eq!(
        raw_request(server.addr, "GET", "/v1/image/download/nope.png", &[])
            .await
            .status,
        400
    );
}

async fn signed_urls(backend: Backend) {
    let fx = Fixture::with(backend, with_keys).await;
    let server = TestServer::start(&fx).await;
    let response = upload(&server, Some(WRITER), "image/png", PNG.to_vec()).await;
    assert_eq!(response.status(), 201);
    let json: serde_json::Value = within("json", response.json()).await.unwrap();
    let name = image_gateway::object_name::ObjectName::parse(json["object_name"].as_str().unwrap()).unwrap();
    let signed_url = json["signed_url"]
        .as_str()
        .expect("signed_url when signing is configured");
    let ttl = fx.config.auth.signed_url_ttl.0.as_secs();
    let query = signed_url.split_once('?').unwrap().1;
    let expires: u64 = query
        .split('&')
        .find_map(|p| p.strip_prefix("expires="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(expires >= unix_now() + ttl - 5 && expires <= unix_now() + ttl + 5);

    // No key needed: an <img src> or a CDN can fetch it, with GET or HEAD.
    let got = within("signed get", client().get(signed_url).send()).await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(&within("body", got.bytes()).await.unwrap()[..], PNG);
    let path = signed_url.strip_prefix(&server.base).unwrap();
    assert_eq!(raw_request(server.addr, "HEAD", path, &[]).await.status, 200);

    let signer = UrlSigner::new(&[Secret::new(SIGNING_KEY)]).unwrap();
    let past = unix_now() - 10;
    let expired = format!(
        "/v1/image/download/{name}?expires={past}&signature={}",
        signer.sign(&name, past)
    );
    let response = raw_request(server.addr, "GET", &expired, &[]).await;
    assert_eq!((response.status, response.detail().as_str()), (403, "URL expired"));

    let other = fx.put(ImageFormat::Png, PNG.to_vec()).await;
    let future = unix_now() + 60;
    let forged = UrlSigner::new(&[Secret::new("another-key-0123456789")]).unwrap();
    for target in [
        format!("/v1/image/download/{other}?{query}"),
        format!(
            "/v1/image/download/{name}?expires={future}&signature={}",
            forged.sign(&name, future)
        ),
        format!(
            "/v1/image/download/{name}?expires={}&signature={}",
            future + 1,
            signer.sign(&name, future)
        ),
        format!("/v1/image/download/{name}?expires={future}&signature=zz"),
        format!("/v1/image/download/{name}?expires={future}"),
    ] {
        let response = raw_request(server.addr, "GET", &target, &[]).await;
        assert_eq!(response.status, 403, "{target}");
        assert!(
            response.detail().contains("signature") || response.detail().contains("signed URL"),
            "{target}"
        );
    }
}

async fn cors(backend: Backend) {
    let fx = Fixture::with(backend, |c| {
        with_keys(c);
        c.cors.allowed_origins = vec!["https://app.example".into()];
    })
    .await;
    let server = TestServer::start(&fx).await;
    let name = fx
        .put(ImageFormat::Webp, include_bytes!("../fixtures/sample.webp").to_vec())
        .await;
    let target = format!("/v1/image/download/{name}");
    let preflight = [
        ("Origin", "https://app.example"),
        ("Access-Control-Request-Method", "GET"),
        ("Access-Control-Request-Headers", "x-api-key, range"),
    ];
    let response = raw_request(server.addr, "OPTIONS", &target, &preflight).await;
    assert_eq!(response.status, 204);
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(response.header("access-control-allow-methods"), Some("GET, HEAD"));
    let allowed = response
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("x-api-key") && allowed.contains("range"));
    let upload_preflight = raw_request(server.addr, "OPTIONS", "/v1/image/upload", &preflight).await;
    assert_eq!(upload_preflight.header("access-control-allow-methods"), Some("POST"));
    let evil = [
        ("Origin", "https://evil.example"),
        ("Access-Control-Request-Method", "GET"),
    ];
    let response = raw_request(server.addr, "OPTIONS", &target, &evil).await;
    assert_eq!(response.status, 403);
    assert!(response.header("access-control-allow-origin").is_none());

    for (key, status) in [(READER, 200), ("wrong-0123456789abcdef", 401)] {
        let response = raw_request(
            server.addr,
            "GET",
            &target,
            &[("Origin", "https://app.example"), ("X-API-Key", key)],
        )
        .await;
        assert_eq!(response.status, status);
        assert_eq!(
            response.header("access-control-allow-origin"),
            Some("https://app.example"),
            "{status}"
        );
        let exposed = response.header("access-control-expose-headers").unwrap();
        for name in [
            "Content-Length",
            "Content-Range",
            "ETag",
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
        ] {
            assert!(exposed.contains(name), "exposes {name}");
        }
        assert!(response.header("vary").unwrap().contains("Origin"));
    }
    let response = raw_request(
        server.addr,
        "GET",
        &target,
        &[("Origin", "https://evil.example"), ("X-API-Key", READER)],
    )
    .await;
    assert_eq!(response.status, 200);
    assert!(response.header("access-control-allow-origin").is_none());
}

async fn cache_control_follows_the_access(backend: Backend) {
    let fx = Fixture::with(backend, with_keys).await;
    let server = TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Png, PNG.to_vec()).await;
    let keyed = raw_request(
        server.addr,
        "GET",
        &format!("/v1/image/download/{name}"),
        &[("X-API-Key", READER)],
    )
    .await;
    assert_eq!(
        keyed.header("cache-control"),
        Some("private, max-age=31536000, immutable")
    );
    let signer = UrlSigner::new(&[Secret::new(SIGNING_KEY)]).unwrap();
    let expires = unix_now() + 600;
    let target = format!(
        "/v1/image/download/{name}?expires={expires}&signature={}",
        signer.sign(&name, expires)
    );
    let signed = raw_request(server.addr, "GET", &target, &[]).await;
    let value = signed.header("cache-control").unwrap();
    let max_age: u64 = value
        .strip_prefix("public, max-age=")
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (595..=600).contains(&max_age),
        "never cached past the URL's expiry: {value}"
    );
    let not_modified = raw_request(server.addr, "GET", &target, &[("If-None-Match", "*")]).await;
    assert_eq!(not_modified.status, 304);
    assert!(
        not_modified
            .header("cache-control")
            .unwrap()
            .starts_with("public, max-age=")
    );

    let fx = Fixture::with(backend, |c| {
        with_keys(c);
        c.http.cache_control = Some("no-store".into());
    })
    .await;
    let server = TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Png, PNG.to_vec()).await;
    let configured = raw_request(
        server.addr,
        "GET",
        &format!("/v1/image/download/{name}"),
        &[("X-API-Key", READER)],
    )
    .await;
    assert_eq!(configured.header("cache-control"), Some("no-store"));
}

crate::on_every_backend!(cache_control_follows_the_access, api_keys_and_scopes, signed_urls, cors);

#[tokio::test]
async fn key_file_changes_apply_without_restart() {
    let dir = crate::support::scratch_dir();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("# readers\n{READER}\n")).unwrap();
    let fx = Fixture::with(Backend::Fs, |c| {
        c.auth.mode = AuthMode::ApiKey;
        c.auth.api_keys_file = Some(keys.clone());
    })
    .await;
    let server = TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Png, pattern(10)).await;
    let target = format!("/v1/image/download/{name}");
    let status = |key: &'static str| {
        let target = target.clone();
        let addr = server.addr;
        async move { raw_request(addr, "GET", &target, &[("X-API-Key", key)]).await.status }
    };
    assert_eq!(status(READER).await, 200);
    assert_eq!(status(WRITER).await, 401);
    std::fs::write(&keys, format!("write:{WRITER}\n")).unwrap();
    within("the new key set is picked up", async {
        while status(WRITER).await != 200 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(status(READER).await, 401, "a key removed from the file is revoked");
    // Fail closed: the writer's key is removed in the same edit that adds an invalid line. The
    // invalid line is skipped, the removal applies, the valid lines apply. (Before issue 14 the
    // whole file was refused and the removed key kept working.)
    std::fs::write(&keys, format!("{READER}\nwrite:short\n")).unwrap();
    within("the removal applies despite the invalid line", async {
        while status(WRITER).await != 401 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(status(READER).await, 200, "the valid line applies");
    // A deleted file revokes every key it held.
    std::fs::remove_file(&keys).unwrap();
    within("a deleted file revokes its keys", async {
        while status(READER).await != 401 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn openapi_document_is_served() {
    let fx = Fixture::with(Backend::Fs, with_keys).await;
    let server = TestServer::start(&fx).await;
    let response = within("openapi", client().get(server.url("/openapi.yaml")).send())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/yaml");
    let text = within("body", response.text()).await.unwrap();
    assert_eq!(text, include_str!("../../docs/openapi.yaml"));
    assert!(text.starts_with("openapi: 3.1"));
}
