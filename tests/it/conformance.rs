//! The storage conformance suite: every backend, and the in-memory backend under the service's
//! wrappers, must pass every test here. (The fs, Garage and MinIO fixtures are the service's
//! own stacks too: `Instrumented(Timeout(backend))`.)

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::TryStreamExt;
use image_gateway::{
    object_name::{ImageFormat, ObjectName},
    storage::{ByteRange, GetResult, StorageError, VariantKey},
};

use crate::support::{Backend, Fixture, pattern, within};

async fn collect(got: GetResult) -> Vec<u8> {
    let chunks: Vec<Bytes> = within("read body", got.body.try_collect()).await.unwrap();
    chunks.concat()
}

async fn put_head_get_round_trip(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let data = pattern(300_000);
    let before = SystemTime::now() - Duration::from_secs(5);
    let name = fx.put(ImageFormat::Png, data.clone()).await;

    let meta = within("head", fx.storage.head(&name)).await.unwrap();
    assert_eq!(meta.len, 300_000);
    assert!(
        meta.etag.starts_with('"') && meta.etag.ends_with('"') && meta.etag.len() > 2,
        "{}",
        meta.etag
    );
    assert!(meta.last_modified >= before && meta.last_modified <= SystemTime::now() + Duration::from_secs(5));

    let got = within("get", fx.storage.get(&name, None)).await.unwrap();
    assert_eq!(got.meta, meta, "get and head agree");
    assert_eq!(got.range, ByteRange { start: 0, end: 299_999 });
    assert_eq!(collect(got).await, data);

    let again = within("head", fx.storage.head(&name)).await.unwrap();
    assert_eq!(again.etag, meta.etag, "ETag is stable");
}

async fn get_range_reads_only_the_range(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let data = pattern(1_000_000);
    let name = fx.put(ImageFormat::Jpeg, data.clone()).await;
    for (start, end) in [(0, 0), (10, 19), (999_000, 999_999), (123_456, 654_321)] {
        let got = within("get range", fx.storage.get(&name, Some(ByteRange { start, end })))
            .await
            .unwrap();
        assert_eq!(got.meta.len, 1_000_000, "meta carries the whole length");
        assert_eq!(got.range, ByteRange { start, end });
        assert_eq!(collect(got).await, &data[start as usize..=end as usize]);
    }
}

async fn missing_objects_are_not_found(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let name = ObjectName::generate(ImageFormat::Gif);
    assert!(matches!(
        within("head", fx.storage.head(&name)).await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        within("get", fx.storage.get(&name, None)).await,
        Err(StorageError::NotFound)
    ));
    within("delete missing", fx.storage.delete(&name))
        .await
        .expect("deleting a missing object is fine");
}

async fn empty_objects(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let name = fx.put(ImageFormat::Svg, Bytes::new()).await;
    let meta = within("head", fx.storage.head(&name)).await.unwrap();
    assert_eq!(meta.len, 0);
    let got = within("get", fx.storage.get(&name, None)).await.unwrap();
    assert!(collect(got).await.is_empty());
}

async fn put_replaces_and_delete_removes(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let name = fx.put(ImageFormat::Webp, pattern(1000)).await;
    let first = within("head", fx.storage.head(&name)).await.unwrap();
    // A different length guarantees a different ETag on every backend.
    within("put", fx.storage.put(&name, Bytes::from(pattern(2000))))
        .await
        .unwrap();
    let second = within("head", fx.storage.head(&name)).await.unwrap();
    assert_eq!(second.len, 2000);
    assert_ne!(first.etag, second.etag, "a new version has a new ETag");
    within("delete", fx.storage.delete(&name)).await.unwrap();
    assert!(matches!(
        within("head", fx.storage.head(&name)).await,
        Err(StorageError::NotFound)
    ));
}

async fn list_pages_in_key_order(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let mut stored = std::collections::BTreeMap::new();
    for i in 0..7 {
        let name = fx.put(ImageFormat::Png, pattern(100 + i)).await;
        stored.insert(name.to_string(), 100 + i as u64);
    }
    let names: Vec<String> = stored.keys().cloned().collect();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = within("list", fx.storage.list(after.as_deref(), 3)).await.unwrap();
        pages += 1;
        assert!(page.objects.len() <= 3);
        for o in &page.objects {
            assert!(o.last_modified > SystemTime::UNIX_EPOCH);
            assert_eq!(Some(&o.len), stored.get(&o.key), "listed with its size: {}", o.key);
        }
        seen.extend(page.objects.into_iter().map(|o| o.key));
        match page.next_start_after {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(pages < 10, "listing does not terminate");
    }
    assert_eq!(seen, names, "every object once, in key order");
    assert!(pages >= 3, "7 objects in pages of 3 take at least 3 pages");
}

/// One `list_all` pass: every object exactly once (in any order), with its size, in pages of
/// at most the size asked for.
async fn list_all_lists_every_object_once(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let mut stored = std::collections::BTreeMap::new();
    for i in 0..7 {
        let name = fx.put(ImageFormat::Png, pattern(100 + i)).await;
        stored.insert(name.to_string(), 100 + i as u64);
    }
    let pages: Vec<_> = within("list_all", fx.storage.list_all(3).try_collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(pages.iter().all(|page| page.len() <= 3), "pages of at most 3");
    let mut seen: Vec<(String, u64)> = pages.into_iter().flatten().map(|o| (o.key, o.len)).collect();
    seen.sort();
    assert_eq!(
        seen,
        stored.into_iter().collect::<Vec<_>>(),
        "every object once, with its size"
    );
}

async fn puts_are_atomic_for_readers(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let old = pattern(200_000);
    let new: Vec<u8> = old.iter().map(|b| b.wrapping_add(1)).collect();
    let name = fx.put(ImageFormat::Bmp, old.clone()).await;
    let writer = {
        let storage = fx.storage.clone();
        let (name, new) = (name.clone(), Bytes::from(new.clone()));
        tokio::spawn(async move {
            for _ in 0..5 {
                storage.put(&name, new.clone()).await.unwrap();
            }
        })
    };
    for _ in 0..20 {
        let got = within("get", fx.storage.get(&name, None)).await.unwrap();
        let body = collect(got).await;
        assert!(
            body == old || body == new,
            "a reader saw a half-written object ({} bytes)",
            body.len()
        );
    }
    within("writer", writer).await.unwrap();
}

async fn delete_many_deletes_and_forgives_missing(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let kept = fx.put(ImageFormat::Png, pattern(10)).await;
    let mut doomed = Vec::new();
    for i in 0..3 {
        doomed.push(fx.put(ImageFormat::Webp, pattern(20 + i)).await);
    }
    doomed.push(ObjectName::generate(ImageFormat::Webp));
    let failed = within("delete_many", fx.storage.delete_many(&doomed)).await.unwrap();
    assert!(failed.is_empty(), "{failed:?}");
    for name in &doomed {
        assert!(matches!(
            within("head", fx.storage.head(name)).await,
            Err(StorageError::NotFound)
        ));
    }
    assert!(
        within("head", fx.storage.head(&kept)).await.is_ok(),
        "others are untouched"
    );
}

/// Stored variants (the persistent tier): a round trip, apart from the objects (listings leave
/// them out, deleting a source's variants leaves the source and other sources' variants), and
/// purged per source with their count.
async fn stored_variants_round_trip_stay_out_of_listings_and_are_purged_per_source(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let source = fx.put(ImageFormat::Png, pattern(100)).await;
    let other = fx.put(ImageFormat::Jpeg, pattern(200)).await;
    let key = |source: &ObjectName, id: &str| VariantKey::new(source.clone(), id.to_owned()).unwrap();
    let small = key(&source, "0123456789abcdef.w400.webp");
    let large = key(&source, "fedcba9876543210.w800-q80.webp");
    let kept = key(&other, "0123456789abcdef.w400.webp");
    assert!(matches!(
        within("get_variant", fx.storage.get_variant(&small)).await,
        Err(StorageError::NotFound)
    ));
    for (key, len) in [(&small, 1000), (&large, 70_000), (&kept, 10)] {
        within("put_variant", fx.storage.put_variant(key, pattern(len).into()))
            .await
            .unwrap();
    }
    assert_eq!(
        within("get_variant", fx.storage.get_variant(&large)).await.unwrap(),
        pattern(70_000)
    );
    within("put_variant", fx.storage.put_variant(&small, pattern(1001).into()))
        .await
        .unwrap();
    assert_eq!(
        within("get_variant", fx.storage.get_variant(&small)).await.unwrap(),
        pattern(1001),
        "replaced"
    );
    let listed: Vec<String> = within("list_all", fx.storage.list_all(100).try_collect::<Vec<_>>())
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .map(|o| o.key)
        .collect();
    let mut objects = vec![source.to_string(), other.to_string()];
    objects.sort();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    assert_eq!(listed_sorted, objects, "variants are not objects");
    let page = within("list", fx.storage.list(None, 100)).await.unwrap();
    assert_eq!(page.objects.len(), 2, "{:?}", page.objects);

    assert_eq!(
        within("delete_variants", fx.storage.delete_variants(&source))
            .await
            .unwrap(),
        2
    );
    for key in [&small, &large] {
        assert!(matches!(
            within("get_variant", fx.storage.get_variant(key)).await,
            Err(StorageError::NotFound)
        ));
    }
    assert_eq!(
        within("get_variant", fx.storage.get_variant(&kept)).await.unwrap(),
        pattern(10)
    );
    assert!(
        within("head", fx.storage.head(&source)).await.is_ok(),
        "the source stays"
    );
    assert_eq!(
        within("delete_variants", fx.storage.delete_variants(&source))
            .await
            .unwrap(),
        0,
        "none left is not an error"
    );
}

/// A variant's id is what the server makes (`<digest>.<variant>`): anything that could leave
/// its folder or be a hidden file is refused.
#[test]
fn variant_ids_cannot_name_another_path() {
    let source = ObjectName::generate(ImageFormat::Png);
    let key = |id: &str| VariantKey::new(source.clone(), id.to_owned());
    assert_eq!(
        key("0a1b.w400-q80.webp").unwrap().path(),
        format!("variants/{source}/0a1b.w400-q80.webp")
    );
    for bad in [
        "",
        ".hidden",
        "../x",
        "a/b",
        "a..b",
        "A.webp",
        "a b",
        "a\\b",
        &"a".repeat(161),
    ] {
        assert!(key(bad).is_none(), "{bad:?}");
    }
}

macro_rules! conformance {
    ($($on:tt)*) => {
        $($on)*!(
            put_head_get_round_trip,
            get_range_reads_only_the_range,
            missing_objects_are_not_found,
            empty_objects,
            put_replaces_and_delete_removes,
            list_pages_in_key_order,
            list_all_lists_every_object_once,
            puts_are_atomic_for_readers,
            delete_many_deletes_and_forgives_missing,
            stored_variants_round_trip_stay_out_of_listings_and_are_purged_per_source,
        );
    };
}

conformance!(crate::on_every_backend);
conformance!(crate::on_cached_backends);

/// The same suite on the in-memory backend, alone and under the wrappers.
macro_rules! on_memory_stacks {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::support::Backend::Memory).await
                }
            )*
        }
        mod wrapped_memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(crate::support::Backend::WrappedMemory).await
                }
            )*
        }
    };
}

conformance!(on_memory_stacks);

/// The fs backend never lists its own temporary files and lists sizes exactly.
#[tokio::test]
async fn fs_list_skips_temporary_files_and_reports_sizes() {
    let fx = Fixture::new(Backend::Fs).await;
    let name = fx.put(ImageFormat::Png, pattern(1234)).await;
    let root = fx.config.storage.fs.root.clone();
    std::fs::write(root.join(format!(".{name}.abc.tmp")), b"partial").unwrap();
    std::fs::create_dir(root.join("subdir")).unwrap();
    let page = within("list", fx.storage.list(None, 100)).await.unwrap();
    assert_eq!(page.objects.len(), 1);
    assert_eq!(page.objects[0].key, name.to_string());
    assert_eq!(page.objects[0].len, 1234);
    let walked: Vec<_> = within("list_all", fx.storage.list_all(100).try_collect::<Vec<_>>())
        .await
        .unwrap();
    let walked: Vec<_> = walked.into_iter().flatten().map(|o| (o.key, o.len)).collect();
    assert_eq!(walked, [(name.to_string(), 1234)], "the walk skips them too");
}
