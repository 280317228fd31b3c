//! Variants at the download URL (`?w=…&format=…`, `?preset=…`) on every backend: rendered from
//! the stored image, with validators and ranges of their own, snapped to the width buckets,
//! never enlarged; `format=auto` negotiated from `Accept`; refused clearly when an option is
//! wrong (other parameters ignored, as ever); authorized by a signature over exactly one
//! variant.

use image_gateway::{
    auth::signing::UrlSigner,
    clock::unix_now,
    config::{AuthMode, Secret, VariantsAllowed},
    object_name::ImageFormat,
};

use crate::support::{
    Backend, Fixture, JPEG, MISSING_OBJECT, PNG, TestServer, dimensions, metrics_text, raw_request, sample,
};

async fn a_variant_is_rendered_with_validators_and_ranges_of_its_own(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Png, PNG.to_vec()).await;
    let original = raw_request(server.addr, "GET", &format!("/v1/image/download/{name}"), &[]).await;
    assert_eq!((original.status, original.body.as_slice()), (200, PNG));

    let target = format!("/v1/image/download/{name}?w=16&format=webp");
    let variant = raw_request(server.addr, "GET", &target, &[]).await;
    assert_eq!(variant.status, 200);
    assert_eq!(dimensions(&variant.body), (16, 11, image::ImageFormat::WebP));
    assert_eq!(variant.header("content-type"), Some("image/webp"));
    let stem = name.as_str().trim_end_matches(".png");
    assert_eq!(
        variant.header("content-disposition"),
        Some(format!("inline; filename=\"{stem}_w16.webp\"").as_str())
    );
    assert_eq!(
        variant.header("content-length"),
        Some(variant.body.len().to_string().as_str())
    );
    assert_eq!(variant.header("accept-ranges"), Some("bytes"));
    assert_eq!(variant.header("last-modified"), original.header("last-modified"));
    let etag = variant.header("etag").unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag != original.header("etag").unwrap(),
        "{etag}"
    );

    // The same variant however it is asked: a width within the bucket, the long names.
    for same in [
        format!("{target}&q=80"),
        format!("/v1/image/download/{name}?width=15&f=webp"),
    ] {
        let again = raw_request(server.addr, "GET", &same, &[]).await;
        let same_options = !same.contains("q=80");
        assert_eq!(again.header("etag") == Some(etag.as_str()), same_options, "{same}");
        if same_options {
            assert_eq!(again.body, variant.body, "{same}: renders are deterministic");
        }
    }
    // Revalidation answers 304 without a body; ranges cut the rendered bytes; HEAD tells the
    // length.
    let not_modified = raw_request(server.addr, "GET", &target, &[("If-None-Match", &etag)]).await;
    assert_eq!((not_modified.status, not_modified.body.len()), (304, 0));
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));
    let partial = raw_request(server.addr, "GET", &target, &[("Range", "bytes=0-9")]).await;
    assert_eq!(partial.status, 206);
    assert_eq!(partial.body, variant.body[..10]);
    assert_eq!(
        partial.header("content-range"),
        Some(format!("bytes 0-9/{}", variant.body.len()).as_str())
    );
    let head = raw_request(server.addr, "HEAD", &target, &[]).await;
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(
        head.header("content-length"),
        Some(variant.body.len().to_string().as_str())
    );

    // Never enlarged; a re-encode only keeps the size; the stored image is unchanged.
    let wide = raw_request(server.addr, "GET", &format!("/v1/image/download/{name}?w=400"), &[]).await;
    assert_eq!(dimensions(&wide.body), (24, 16, image::ImageFormat::Png));
    let jpeg = fx.put(ImageFormat::Jpeg, JPEG.to_vec()).await;
    let png = raw_request(
        server.addr,
        "GET",
        &format!("/v1/image/download/{jpeg}?format=png"),
        &[],
    )
    .await;
    assert_eq!(dimensions(&png.body), (24, 16, image::ImageFormat::Png));
    let after = raw_request(server.addr, "GET", &format!("/v1/image/download/{name}"), &[]).await;
    assert_eq!(after.body, PNG);
}

async fn wrong_variant_options_are_refused_clearly(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Png, PNG.to_vec()).await;
    for (query, named) in [
        ("w=0", "`w`"),
        ("w=3841", "`w`"),
        ("q=101", "`q`"),
        ("format=svg", "`format`"),
        ("fit=stretch", "`fit`"),
        ("w=16&width=16", "twice"),
    ] {
        let response = raw_request(server.addr, "GET", &format!("/v1/image/download/{name}?{query}"), &[]).await;
        assert_eq!(response.status, 400, "{query}");
        assert!(response.detail().contains(named), "{query}: {}", response.detail());
    }
    // Other parameters are ignored, as on every download (cache busters).
    let busted = raw_request(server.addr, "GET", &format!("/v1/image/download/{name}?v=3"), &[]).await;
    assert_eq!((busted.status, busted.body.as_slice()), (200, PNG));
    let missing = raw_request(server.addr, "GET", &format!("{MISSING_OBJECT}?w=16"), &[]).await;
    assert_eq!(missing.status, 404);
}

async fn a_signed_url_authorizes_exactly_one_variant(backend: Backend) {
    const SIGNING_KEY: &str = "variant-signing-key-0123456789";
    let fx = Fixture::with(backend, |c| {
        c.auth.mode = AuthMode::ApiKey;
        c.auth.api_keys = vec![Secret::new("reader-key-0123456789abcdef")];
        c.auth.url_signing_key = vec![Secret::new(SIGNING_KEY)];
    })
    .await;
    let server = TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Png, PNG.to_vec()).await;
    let signer = UrlSigner::new(&[Secret::new(SIGNING_KEY)]).unwrap();
    let expires = unix_now() + 600;
    let signed = |variant: Option<&str>| {
        format!(
            "expires={expires}&signature={}",
            signer.sign_for(&name, variant, expires)
        )
    };
    let get = |query: String| {
        let target = format!("/v1/image/download/{name}?{query}");
        async move { raw_request(server.addr, "GET", &target, &[]).await }
    };
    let ok = get(format!("w=16&format=webp&{}", signed(Some("w16.webp")))).await;
    assert_eq!(ok.status, 200);
    assert_eq!(dimensions(&ok.body).0, 16);
    // Equal options in another spelling are the same variant.
    assert_eq!(
        get(format!("width=15&f=webp&{}", signed(Some("w16.webp"))))
            .await
            .status,
        200
    );
    for (what, query) in [
        (
            "another size",
            format!("w=400&format=webp&{}", signed(Some("w16.webp"))),
        ),
        (
            "another format",
            format!("w=16&format=png&{}", signed(Some("w16.webp"))),
        ),
        ("the original's signature", format!("w=16&format=webp&{}", signed(None))),
    ] {
        let refused = get(query).await;
        assert_eq!(refused.status, 403, "{what}");
        assert!(refused.detail().contains("signature"), "{what}");
    }
    assert_eq!(
        get("w=16&format=webp".to_owned()).await.status,
        401,
        "no key, no signature"
    );
    assert_eq!(get(signed(None)).await.status, 200, "the original's URL still works");
}

/// `format=auto`: WebP for a client that names it in `Accept`, the source's format for one that
/// does not, each with its own `ETag`, both answered `Vary: Accept` (304s too); a fixed format
/// and the original do not vary.
async fn format_auto_follows_accept_and_says_so_in_vary(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Png, PNG.to_vec()).await;
    let target = format!("/v1/image/download/{name}?w=16&format=auto");
    // A browser that takes WebP and not AVIF (tests/it/avif.rs has those that take AVIF).
    let browser = [("Accept", "image/webp,image/*,*/*;q=0.8")];
    let webp = raw_request(server.addr, "GET", &target, &browser).await;
    assert_eq!(webp.status, 200);
    assert_eq!(dimensions(&webp.body), (16, 11, image::ImageFormat::WebP));
    assert_eq!(webp.header("vary"), Some("Accept"));
    let stem = name.as_str().trim_end_matches(".png");
    assert_eq!(
        webp.header("content-disposition"),
        Some(format!("inline; filename=\"{stem}_w16.webp\"").as_str())
    );
    for accept in [&[][..], &[("Accept", "image/*,*/*")][..]] {
        let png = raw_request(server.addr, "GET", &target, accept).await;
        assert_eq!(dimensions(&png.body), (16, 11, image::ImageFormat::Png), "{accept:?}");
        assert_eq!(png.header("vary"), Some("Accept"));
        assert_ne!(png.header("etag"), webp.header("etag"), "one ETag per format");
    }
    let etag = webp.header("etag").unwrap();
    let revalidated = raw_request(server.addr, "GET", &target, &[browser[0], ("If-None-Match", etag)]).await;
    assert_eq!((revalidated.status, revalidated.header("vary")), (304, Some("Accept")));
    let other_client = raw_request(server.addr, "GET", &target, &[("If-None-Match", etag)]).await;
    assert_eq!(
        other_client.status, 200,
        "a client without WebP gets the PNG, not a 304"
    );
    let fixed = format!("/v1/image/download/{name}?w=16&format=webp");
    assert_eq!(
        raw_request(server.addr, "GET", &fixed, &browser).await.header("vary"),
        None
    );
    let original = format!("/v1/image/download/{name}");
    assert_eq!(
        raw_request(server.addr, "GET", &original, &browser)
            .await
            .header("vary"),
        None
    );
}

/// Named presets (`variants.presets`) with `variants.allow = "presets"`: a preset renders its
/// options, anything else asking for a variant is 400, the original is still served, and the
/// served API description lists the presets.
async fn presets_only_serves_the_named_variants(backend: Backend) {
    let fx = Fixture::with(backend, |c| {
        c.variants.presets = [("card".to_owned(), "w=16&format=webp".to_owned())].into();
        c.variants.allow = VariantsAllowed::Presets;
    })
    .await;
    let server = TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Png, PNG.to_vec()).await;
    let get = |query: &str| {
        let target = format!("/v1/image/download/{name}?{query}");
        async move { raw_request(server.addr, "GET", &target, &[]).await }
    };
    let card = get("preset=card").await;
    assert_eq!(card.status, 200);
    assert_eq!(dimensions(&card.body), (16, 11, image::ImageFormat::WebP));
    for (query, named) in [
        ("w=16&format=webp", "presets only"),
        ("preset=card&w=32", "`w`"),
        ("preset=hero", "no preset is named `hero`"),
    ] {
        let refused = get(query).await;
        assert_eq!(refused.status, 400, "{query}");
        assert!(refused.detail().contains(named), "{query}: {}", refused.detail());
    }
    assert_eq!(get("v=2").await.body, PNG, "the original");
    let described = raw_request(server.addr, "GET", "/openapi.yaml", &[]).await;
    let described = String::from_utf8(described.body).unwrap();
    assert!(described.contains(r#"preset: { type: string, enum: ["card"] }"#));
}

/// 256 simultaneous first requests for one new variant: one render, 256 equal answers; the
/// next request is served from memory.
async fn a_herd_of_first_requests_makes_one_render(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let server = TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Jpeg, JPEG.to_vec()).await;
    let target = format!("/v1/image/download/{name}?w=16&format=png");
    let herd: Vec<_> = (0..256)
        .map(|_| {
            let (addr, target) = (server.addr, target.clone());
            tokio::spawn(async move { raw_request(addr, "GET", &target, &[]).await })
        })
        .collect();
    let mut bodies = Vec::new();
    for request in herd {
        let response = request.await.unwrap();
        assert_eq!(response.status, 200);
        bodies.push(response.body);
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]), "every answer the same bytes");
    assert_eq!(dimensions(&bodies[0]).0, 16);
    let after = raw_request(server.addr, "GET", &target, &[]).await;
    assert_eq!(after.body, bodies[0]);
    let text = metrics_text(&server).await;
    let renders = sample(
        &text,
        "image_processing_jobs_total",
        &[("operation", "variant"), ("outcome", "ok")],
    );
    assert_eq!(renders, Some(1.0), "one render for the herd and the request after it");
    let served = |tier| {
        sample(
            &text,
            "image_variants_served_total",
            &[("tier", tier), ("format", "PNG")],
        )
    };
    assert_eq!((served("rendered"), served("memory")), (Some(1.0), Some(256.0)));
    let bytes = |kind| {
        sample(
            &text,
            "image_variants_bytes_total",
            &[("kind", kind), ("format", "PNG")],
        )
    };
    assert_eq!(bytes("variant"), Some(257.0 * bodies[0].len() as f64));
    assert_eq!(
        bytes("source"),
        Some(257.0 * JPEG.len() as f64),
        "what the variants replaced"
    );
}

/// `variants.store`: a variant rendered once is served by a new server (a restart, another pod,
/// a pod that does not process) from storage without a render (one read for a herd), the same bytes under the same `ETag`; `DELETE
/// …/variants` (write scope) drops it from storage and memory, and the next request renders it
/// again.
async fn stored_variants_outlive_a_restart_and_are_purged_on_request(backend: Backend) {
    const READER: &str = "reader-0123456789abcdef";
    const WRITER: &str = "writer-0123456789abcdef";
    let fx = Fixture::with(backend, |c| {
        c.variants.store = true;
        c.auth.mode = AuthMode::ApiKey;
        c.auth.api_keys = vec![Secret::new(READER), Secret::new(format!("write:{WRITER}"))];
    })
    .await;
    let name = fx.put(ImageFormat::Jpeg, JPEG.to_vec()).await;
    let target = format!("/v1/image/download/{name}?w=16&format=webp");
    let read = [("X-API-Key", READER)];
    let renders = |text: &str| {
        sample(
            text,
            "image_processing_jobs_total",
            &[("operation", "variant"), ("outcome", "ok")],
        )
        .unwrap_or(0.0)
    };
    let served = |text: &str, tier| {
        sample(
            text,
            "image_variants_served_total",
            &[("tier", tier), ("format", "WebP")],
        )
        .unwrap_or(0.0)
    };
    let (first_body, first_etag) = {
        let server = TestServer::start(&fx).await;
        let first = raw_request(server.addr, "GET", &target, &read).await;
        assert_eq!(first.status, 200);
        assert_eq!(renders(&metrics_text(&server).await), 1.0);
        (first.body.clone(), first.header("etag").unwrap().to_owned())
    };
    {
        // A server that does not process (the chart's serving pods) serves what is stored: a
        // herd of first requests there makes one storage read.
        let mut config = fx.config.clone();
        config.processing.enabled = false;
        let serving = TestServer::start_run(config, image_gateway::Overrides::default()).await;
        let herd: Vec<_> = (0..64)
            .map(|_| {
                let (addr, target) = (serving.addr, target.clone());
                tokio::spawn(async move { raw_request(addr, "GET", &target, &[("X-API-Key", READER)]).await })
            })
            .collect();
        for request in herd {
            let stored = request.await.unwrap();
            assert_eq!((stored.status, &stored.body), (200, &first_body));
        }
        let text = metrics_text(&serving).await;
        let reads = sample(
            &text,
            "storage_operation_duration_seconds_count",
            &[("operation", "get_variant"), ("outcome", "ok")],
        );
        assert_eq!(reads, Some(1.0), "one storage read for the herd");
        assert_eq!((served(&text, "stored"), served(&text, "memory")), (1.0, 63.0));
        let other = format!("/v1/image/download/{name}?w=32&format=webp");
        let unrendered = raw_request(serving.addr, "GET", &other, &read).await;
        assert_eq!(unrendered.status, 503, "not stored, and this server does not render");
    }

    let server = TestServer::start(&fx).await;
    let again = raw_request(server.addr, "GET", &target, &read).await;
    assert_eq!((again.status, &again.body), (200, &first_body));
    assert_eq!(again.header("etag"), Some(first_etag.as_str()));
    let text = metrics_text(&server).await;
    assert_eq!(
        (renders(&text), served(&text, "stored")),
        (0.0, 1.0),
        "served from storage, not rendered"
    );

    let purge = format!("/v1/image/download/{name}/variants");
    assert_eq!(raw_request(server.addr, "DELETE", &purge, &read).await.status, 403);
    assert_eq!(raw_request(server.addr, "GET", &purge, &read).await.status, 405);
    let purged = raw_request(server.addr, "DELETE", &purge, &[("X-API-Key", WRITER)]).await;
    assert_eq!(purged.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&purged.body).unwrap();
    assert_eq!(json, serde_json::json!({"object_name": name.as_str(), "deleted": 1}));
    let rendered = raw_request(server.addr, "GET", &target, &read).await;
    assert_eq!((rendered.status, &rendered.body), (200, &first_body));
    assert_eq!(
        renders(&metrics_text(&server).await),
        1.0,
        "rendered again: gone from storage and from memory"
    );
    let bad = raw_request(
        server.addr,
        "DELETE",
        "/v1/image/download/abc.png/variants",
        &[("X-API-Key", WRITER)],
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.detail().contains("invalid object name"), "{}", bad.detail());
}

/// A variant whose render would not fit in the whole processing memory budget is 422 (the
/// stored image cannot be rendered here), the figures given; the original is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variant_over_the_memory_budget_is_refused_and_the_original_served() {
    let fx = Fixture::with(Backend::Fs, |c| {
        c.processing.memory_budget = image_gateway::config::units::ByteSize(1 << 20);
    })
    .await;
    let server = TestServer::start(&fx).await;
    let name = fx.put(ImageFormat::Png, PNG.to_vec()).await;
    let refused = raw_request(server.addr, "GET", &format!("/v1/image/download/{name}?w=16"), &[]).await;
    assert_eq!(refused.status, 422);
    assert!(
        refused
            .detail()
            .contains("over this server's processing memory budget of 1 MiB"),
        "{}",
        refused.detail()
    );
    let original = raw_request(server.addr, "GET", &format!("/v1/image/download/{name}"), &[]).await;
    assert_eq!((original.status, original.body.as_slice()), (200, PNG));
}

crate::on_every_backend!(
    stored_variants_outlive_a_restart_and_are_purged_on_request,
    a_herd_of_first_requests_makes_one_render,
    a_variant_is_rendered_with_validators_and_ranges_of_its_own,
    wrong_variant_options_are_refused_clearly,
    a_signed_url_authorizes_exactly_one_variant,
    format_auto_follows_accept_and_says_so_in_vary,
    presets_only_serves_the_named_variants,
);
