//! Retention on both backends, with objects of controlled ages: the expired object names go,
//! with their stored variants; fresh objects, their variants and every other key stay; a dry
//! run deletes nothing; runs can overlap.

use std::time::{Duration, SystemTime};

use image_gateway::{
    commands::retention,
    object_name::{ImageFormat, ObjectName},
    storage::{StorageError, VariantKey},
};

use crate::support::{Backend, Fixture, pattern, within};

/// Keys that are not ours to delete: a stray file, an uppercase name, a nested key.
const FOREIGN: [&str; 3] = [
    "notes.txt",
    "0123456789ABCDEF0123456789ABCDEF.png",
    "nested/0123456789abcdef0123456789abcdef.png",
];

/// Writes `key` next to the gateway's objects, bypassing the gateway.
async fn put_foreign(fx: &Fixture, backend: Backend, key: &str) {
    match backend {
        Backend::Fs | Backend::FsCached => {
            let path = fx.config.storage.fs.root.join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"not an image of ours").unwrap();
        }
        Backend::Garage | Backend::Minio | Backend::MinioCached => {
            raw_s3(fx)
                .put_object()
                .bucket(&fx.config.storage.s3.bucket)
                .key(key)
                .body(b"foreign".to_vec().into())
                .send()
                .await
                .unwrap();
        }
        Backend::Memory | Backend::WrappedMemory => unreachable!("retention runs on configurable backends"),
    }
}

async fn foreign_exists(fx: &Fixture, backend: Backend, key: &str) -> bool {
    match backend {
        Backend::Fs | Backend::FsCached => fx.config.storage.fs.root.join(key).is_file(),
        Backend::Garage | Backend::Minio | Backend::MinioCached => raw_s3(fx)
            .head_object()
            .bucket(&fx.config.storage.s3.bucket)
            .key(key)
            .send()
            .await
            .is_ok(),
        Backend::Memory | Backend::WrappedMemory => unreachable!("retention runs on configurable backends"),
    }
}

/// A plain S3 client on the fixture's bucket (keys are absolute, prefix included).
fn raw_s3(fx: &Fixture) -> aws_sdk_s3::Client {
    let s3 = &fx.config.storage.s3;
    let credentials = aws_sdk_s3::config::Credentials::new(
        s3.access_key_id.clone().unwrap(),
        s3.secret_access_key.as_ref().unwrap().expose(),
        None,
        None,
        "test",
    );
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new(s3.region.clone()))
        .endpoint_url(s3.endpoint.clone().unwrap())
        .force_path_style(true)
        .credentials_provider(credentials)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn foreign_keys(fx: &Fixture, backend: Backend) -> Vec<String> {
    let prefix = if backend.is_s3() {
        fx.config.storage.s3.prefix.clone()
    } else {
        String::new()
    };
    let mut keys: Vec<String> = FOREIGN.iter().map(|k| format!("{prefix}{k}")).collect();
    if backend.is_s3() {
        // Outside our prefix altogether: someone else's object in the same bucket.
        keys.push(format!("someone-else/{}", ObjectName::generate(ImageFormat::Png)));
    }
    keys
}

async fn exists(fx: &Fixture, name: &ObjectName) -> bool {
    within("head", fx.setup.head(name)).await.is_ok()
}

async fn expired_names_go_and_everything_else_stays(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let mut old = Vec::new();
    for size in [1000, 2000, 3000] {
        old.push(fx.put(ImageFormat::Png, pattern(size)).await);
    }
    let foreign = foreign_keys(&fx, backend);
    for key in &foreign {
        put_foreign(&fx, backend, key).await;
    }
    // Age by waiting a little more than the maximum age, never days.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fresh = vec![
        fx.put(ImageFormat::Jpeg, pattern(10)).await,
        fx.put(ImageFormat::Gif, pattern(20)).await,
    ];
    let max_age = Duration::from_secs(1);
    let variant = |source: &ObjectName, id: &str| VariantKey::new(source.clone(), id.to_owned()).unwrap();
    let doomed = [variant(&old[0], "00aa.w400.webp"), variant(&old[0], "00bb.w800.png")];
    let kept = variant(&fresh[0], "00aa.w400.webp");
    for key in doomed.iter().chain([&kept]) {
        within("put_variant", fx.storage.put_variant(key, pattern(50).into()))
            .await
            .unwrap();
    }
    let stored = |key: &VariantKey| {
        let storage = fx.storage.clone();
        let key = key.clone();
        async move { !matches!(storage.get_variant(&key).await, Err(StorageError::NotFound)) }
    };

    let dry = retention::run(fx.storage.as_ref(), max_age, SystemTime::now(), true, 2).await;
    assert_eq!(
        (dry.expired, dry.deleted, dry.errors, dry.variants),
        (3, 0, 0, 0),
        "{dry:?}"
    );
    assert!(stored(&doomed[0]).await, "a dry run deletes no variant");
    for name in old.iter().chain(&fresh) {
        assert!(exists(&fx, name).await, "a dry run deletes nothing");
    }

    let report = retention::run(fx.storage.as_ref(), max_age, SystemTime::now(), false, 2).await;
    assert_eq!(
        (
            report.expired,
            report.deleted,
            report.bytes_freed,
            report.errors,
            report.variants
        ),
        (3, 3, 6000, 0, 2),
        "{report:?}"
    );
    for key in &doomed {
        assert!(!stored(key).await, "{key:?} went with its source");
    }
    assert!(stored(&kept).await, "a fresh image's variant stays");
    // fs lists the stray file and the uppercase name (not the nested folder); S3 lists all
    // three under our prefix, and never the key outside it.
    let seen_foreign = if backend.is_s3() { 3 } else { 2 };
    assert_eq!(
        report.foreign, seen_foreign,
        "foreign keys are seen and skipped: {report:?}"
    );
    for name in &old {
        assert!(!exists(&fx, name).await, "expired {name} is gone");
    }
    for name in &fresh {
        assert!(exists(&fx, name).await, "fresh {name} stays");
    }
    for key in &foreign {
        assert!(foreign_exists(&fx, backend, key).await, "foreign key {key} stays");
    }
}

async fn runs_page_and_may_overlap(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let mut names = Vec::new();
    for i in 0..9 {
        names.push(fx.put(ImageFormat::Webp, pattern(100 + i)).await);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let max_age = Duration::from_secs(1);
    let (a, b) = tokio::join!(
        retention::run(fx.storage.as_ref(), max_age, SystemTime::now(), false, 2),
        retention::run(fx.storage.as_ref(), max_age, SystemTime::now(), false, 3),
    );
    assert_eq!((a.errors, b.errors), (0, 0), "{a:?} {b:?}");
    assert!(
        a.deleted + b.deleted >= 9,
        "between them every object was deleted: {a:?} {b:?}"
    );
    for name in &names {
        assert!(!exists(&fx, name).await);
    }
    let again = retention::run(fx.storage.as_ref(), max_age, SystemTime::now(), false, 2).await;
    assert_eq!(
        (again.expired, again.deleted, again.errors),
        (0, 0, 0),
        "a second run finds nothing: {again:?}"
    );
}

crate::on_every_backend!(expired_names_go_and_everything_else_stays, runs_page_and_may_overlap);

/// The command a CronJob runs: a summary line, exit 0; `--dry-run` changes nothing.
#[test]
fn retention_command_prints_a_summary() {
    let dir = crate::support::scratch_dir();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let name = "0123456789abcdef0123456789abcdef.png";
    std::fs::write(data.join(name), vec![7u8; 4096]).unwrap();
    std::fs::write(data.join("keep.txt"), b"x").unwrap();
    // What interrupted writes leave: one from two hours ago (a crash), one in progress now.
    let (stale, writing) = (format!(".{name}.1.tmp"), format!(".{name}.2.tmp"));
    std::fs::write(data.join(&stale), b"half").unwrap();
    std::fs::write(data.join(&writing), b"half").unwrap();
    let age = |file: &str, ago: Duration| {
        std::fs::File::options()
            .write(true)
            .open(data.join(file))
            .unwrap()
            .set_modified(SystemTime::now() - ago)
            .unwrap()
    };
    age(name, Duration::from_secs(8 * 24 * 3600));
    age(&stale, Duration::from_secs(2 * 3600));
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_image-gateway"))
            .current_dir(dir.path())
            .arg("retention")
            .args(args)
            .env_remove("IMAGE_GATEWAY_STORAGE__BACKEND")
            .env("IMAGE_GATEWAY_LOG__LEVEL", "warn")
            .output()
            .unwrap()
    };
    let dry = run(&["--dry-run"]);
    assert!(dry.status.success());
    let stdout = String::from_utf8_lossy(&dry.stdout);
    assert!(
        stdout.contains("scanned=2 foreign=1 expired=1 deleted=0") && stdout.contains("dry_run=true"),
        "{stdout}"
    );
    assert!(
        data.join(name).exists() && data.join(&stale).exists(),
        "a dry run removes nothing"
    );
    let young = run(&["--max-age", "30d"]);
    let young = String::from_utf8_lossy(&young.stdout).into_owned();
    assert!(young.contains("expired=0") && young.contains("incomplete=1"), "{young}");
    let real = run(&[]);
    assert!(real.status.success());
    let stdout = String::from_utf8_lossy(&real.stdout);
    assert!(
        stdout.contains("expired=1 deleted=1 bytes_freed=4096 errors=0"),
        "{stdout}"
    );
    assert!(!data.join(name).exists() && data.join("keep.txt").exists());
    assert!(
        !data.join(&stale).exists(),
        "the stale temporary file is left: {stdout}"
    );
    assert!(data.join(&writing).exists(), "a write in progress was removed");
}
