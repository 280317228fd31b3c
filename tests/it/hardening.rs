//! What a hostile client could do before issue 14, each reproduced against the running service:
//! these tests failed on the code before the fix.

use std::time::Duration;

use image_gateway::config::{Backend as BackendKind, Config, CredentialsSource, Secret};

use crate::support::{TestServer, free_port, raw_request, within};

/// `/readyz` on the public listener names the failed checks without their reasons (which can
/// carry internal hosts, ports and paths); the admin listener keeps the reasons.
#[tokio::test]
async fn public_readiness_names_checks_without_internal_details() {
    let port = free_port(); // nothing listens there: storage is never reached
    let mut config = Config::default();
    config.storage.backend = BackendKind::S3;
    config.storage.timeout = image_gateway::config::units::HumanDuration(Duration::from_secs(1));
    let s3 = &mut config.storage.s3;
    s3.endpoint = Some(format!("http://127.0.0.1:{port}"));
    s3.bucket = "images".into();
    s3.credentials = CredentialsSource::Static;
    s3.access_key_id = Some("GK0123456789".into());
    s3.secret_access_key = Some(Secret::new("0123456789abcdef"));
    let server = TestServer::start_run(config, Default::default()).await;
    let admin = within("the admin listener explains", async {
        loop {
            let r = raw_request(server.admin, "GET", "/readyz", &[]).await;
            if r.detail().contains(&port.to_string()) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(admin.status, 503);
    let public = raw_request(server.addr, "GET", "/readyz", &[]).await;
    assert_eq!(public.status, 503);
    assert_eq!(public.detail(), "not ready: storage");
    assert_eq!(public.code(), "not_ready");
    assert!(!String::from_utf8_lossy(&public.body).contains("127.0.0.1"));
}
