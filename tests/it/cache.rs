//! The hot-object cache through the real server: a herd of first GETs makes one storage read,
//! revalidations, HEAD and ranges of a cached object never reach storage, and an object deleted
//! behind the cache is served no longer than `cache.ttl`. The conformance suite and the
//! download tests also run with the cache on (`fs_cached`, `minio_cached`).

use std::time::{Duration, Instant};

use http::header;
use image_gateway::{config::units::HumanDuration, object_name::ImageFormat};

use crate::support::*;

/// 256 concurrent first GETs of one new 1 MB object: one storage read, 256 exact bodies.
async fn herd_makes_one_storage_read(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let data = pattern(1_000_000);
    let name = fx.put(ImageFormat::Jpeg, data.clone()).await;
    let server = TestServer::start(&fx).await;
    let client = client();
    let url = server.download_url(&name);
    let requests = (0..256).map(|_| {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let response = client.get(url).send().await.unwrap();
            (response.status(), response.bytes().await.unwrap())
        })
    });
    let answers = within("herd", futures_util::future::join_all(requests)).await;
    for answer in answers {
        let (status, body) = answer.unwrap();
        assert_eq!(status, 200);
        assert!(body == data, "every body is the object");
    }
    assert_eq!(storage_calls(&server, Some("get")).await, 1.0, "one storage read");
    assert_eq!(storage_calls(&server, Some("head")).await, 0.0);
    let text = metrics_text(&server).await;
    assert_eq!(sample(&text, "cache_lookups_total", &[("result", "miss")]), Some(1.0));
    let waited = sample(&text, "cache_lookups_total", &[("result", "coalesced")]).unwrap_or(0.0)
        + sample(&text, "cache_lookups_total", &[("result", "hit")]).unwrap_or(0.0);
    assert_eq!(waited, 255.0);
}

/// After one GET, a revalidation (304), HEAD, a range and another GET make no storage call.
async fn cached_object_answers_without_storage(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let data = pattern(50_000);
    let name = fx.put(ImageFormat::Png, data.clone()).await;
    let server = TestServer::start(&fx).await;
    let client = client();
    let url = server.download_url(&name);
    let first = within("get", client.get(&url).send()).await.unwrap();
    assert_eq!(first.status(), 200);
    let etag = first.headers()[header::ETAG].clone();
    let calls = storage_calls(&server, Some("get")).await + storage_calls(&server, Some("head")).await;

    let revalidated = client.get(&url).header(header::IF_NONE_MATCH, etag.clone());
    let revalidated = within("revalidate", revalidated.send()).await.unwrap();
    assert_eq!(revalidated.status(), 304);
    assert_eq!(revalidated.headers()[header::ETAG], etag);
    let head = within("head", client.head(&url).send()).await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()[header::CONTENT_LENGTH], "50000");
    let part = client.get(&url).header(header::RANGE, "bytes=100-199");
    let part = within("range", part.send()).await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), &data[100..200]);
    let again = within("get", client.get(&url).send()).await.unwrap();
    assert_eq!(again.bytes().await.unwrap(), data);

    let after = storage_calls(&server, Some("get")).await + storage_calls(&server, Some("head")).await;
    assert_eq!(after, calls, "no storage call after the first GET");
}

/// An object deleted behind this replica's back (as retention does) is served for at most
/// `cache.ttl` after its deletion, then 404.
async fn deleted_object_lives_at_most_ttl(backend: Backend) {
    let ttl = Duration::from_secs(1);
    let fx = Fixture::with(backend, |c| c.cache.ttl = HumanDuration(ttl)).await;
    let name = fx.put(ImageFormat::Png, pattern(1000)).await;
    let server = TestServer::start(&fx).await;
    let client = client();
    let url = server.download_url(&name);
    assert_eq!(within("get", client.get(&url).send()).await.unwrap().status(), 200);
    within("delete", fx.storage.delete(&name)).await.unwrap();
    let deleted = Instant::now();
    let mut served_after_deletion = 0;
    loop {
        let asked = Instant::now();
        let status = within("get", client.get(&url).send()).await.unwrap().status();
        if status == 404 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            asked.duration_since(deleted) < ttl,
            "served {:?} after deletion",
            asked - deleted
        );
        served_after_deletion += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        served_after_deletion > 0,
        "the cached copy was served after the deletion"
    );
    assert!(
        deleted.elapsed() < ttl + Duration::from_secs(2),
        "gone soon after the ttl"
    );
}

crate::on_cached_backends!(
    herd_makes_one_storage_read,
    cached_object_answers_without_storage,
    deleted_object_lives_at_most_ttl,
);
