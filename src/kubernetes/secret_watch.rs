//! Watches exactly one Secret (kube-runtime `watch_object`: a field selector on its name, so
//! RBAC can be limited with `resourceNames`), with backoff on errors, and hands each decoded
//! version to a publisher. A deleted or malformed Secret keeps the last good value.
//! SECURITY: log lines and metrics name the Secret and the failure, never a value.

use std::{fmt, sync::Arc};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, watcher},
};

use crate::{
    clock::unix_now,
    metrics::{Metrics, SecretPurpose},
};

/// What one watch event did (also the `outcome` label of `k8s_secret_events_total`).
pub use crate::metrics::SecretEvent;

/// One Secret to watch: where it is, what it is for (`storage`, `api_keys`: the `secret`
/// label of the metrics), and where its events are counted.
pub struct SecretWatch {
    pub client: Client,
    pub namespace: String,
    pub name: String,
    pub purpose: SecretPurpose,
    pub metrics: Arc<Metrics>,
}

/// Watches the Secret until the task is dropped: `decode` turns a version into a value,
/// `publish` hands it on, `on_event` sees every outcome (readiness uses it).
pub async fn watch_secret<T, E: fmt::Display>(
    watch: SecretWatch,
    decode: impl Fn(&Secret) -> Result<T, E>,
    publish: impl Fn(T),
    on_event: impl Fn(SecretEvent),
) {
    let SecretWatch {
        client,
        namespace,
        name,
        purpose,
        metrics,
    } = watch;
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    let events = watcher::watch_object(api, &name).default_backoff();
    futures_util::pin_mut!(events);
    while let Some(event) = events.next().await {
        let outcome = match event {
            Ok(Some(secret)) => match decode(&secret) {
                Ok(value) => {
                    publish(value);
                    metrics.kubernetes.secret_applied(purpose, unix_now() as i64);
                    tracing::info!(secret = %format!("{namespace}/{name}"), purpose = purpose.label(), "applied a new version of the Secret");
                    SecretEvent::Applied
                }
                Err(why) => {
                    tracing::warn!(secret = %format!("{namespace}/{name}"), purpose = purpose.label(), problem = %why, "cannot use the Secret; keeping the last good value");
                    SecretEvent::Malformed
                }
            },
            Ok(None) => {
                tracing::warn!(secret = %format!("{namespace}/{name}"), purpose = purpose.label(), "the Secret does not exist (deleted or not created yet); keeping the last good value");
                SecretEvent::Deleted
            }
            Err(e) => {
                tracing::warn!(secret = %format!("{namespace}/{name}"), purpose = purpose.label(), error = %e, "watching the Secret failed; retrying with backoff");
                SecretEvent::Error
            }
        };
        metrics.kubernetes.secret_event(purpose, outcome);
        on_event(outcome);
    }
}

#[cfg(test)]
mod tests {
    //! The watcher against a scripted apiserver (`tower_test::mock`): initial list, MODIFIED,
    //! DELETED, 410 Gone then relist, and 403.

    use std::time::Duration;

    use http::{Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::json;
    use tokio::sync::mpsc;
    use tower_test::mock;

    use super::*;

    fn secret(resource_version: &str, value: &str) -> serde_json::Value {
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("creds".into()),
                namespace: Some("ns".into()),
                resource_version: Some(resource_version.into()),
                ..Default::default()
            },
            data: Some([("value".to_string(), k8s_openapi::ByteString(value.as_bytes().to_vec()))].into()),
            ..Default::default()
        };
        let mut json = serde_json::to_value(secret).unwrap();
        json["apiVersion"] = json!("v1");
        json["kind"] = json!("Secret");
        json
    }

    fn list(resource_version: &str, items: Vec<serde_json::Value>) -> Response<Body> {
        let body = json!({"apiVersion": "v1", "kind": "SecretList", "metadata": {"resourceVersion": resource_version}, "items": items});
        Response::new(Body::from(serde_json::to_vec(&body).unwrap()))
    }

    fn watch_events(events: &[serde_json::Value]) -> Response<Body> {
        let mut body = Vec::new();
        for event in events {
            body.extend(serde_json::to_vec(event).unwrap());
            body.push(b'\n');
        }
        Response::new(Body::from(body))
    }

    fn status(code: u16, reason: &str) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "message": reason, "reason": reason, "code": code})
    }

    type Handle = mock::Handle<Request<Body>, Response<Body>>;

    /// The next request, which must be a list (`watch` false) or a watch (`watch` true)
    /// selecting exactly the one Secret by name.
    async fn expect(handle: &mut Handle, watch: bool) -> mock::SendResponse<Response<Body>> {
        let (request, send) = tokio::time::timeout(Duration::from_secs(30), handle.next_request())
            .await
            .expect("the watcher sends its next request")
            .expect("a request");
        let uri = request.uri().to_string();
        assert!(uri.starts_with("/api/v1/namespaces/ns/secrets?"), "{uri}");
        assert!(
            uri.contains("fieldSelector=metadata.name%3Dcreds"),
            "watches only this Secret: {uri}"
        );
        assert_eq!(uri.contains("watch=true"), watch, "{uri}");
        send
    }

    async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
        tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("in time")
            .expect("open")
    }

    #[tokio::test]
    async fn follows_a_scripted_apiserver() {
        let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
        let metrics = Arc::new(Metrics::new());
        let (values, mut published) = mpsc::unbounded_channel();
        let (events, mut seen) = mpsc::unbounded_channel();
        let watch = SecretWatch {
            client: Client::new(service, "ns"),
            namespace: "ns".into(),
            name: "creds".into(),
            purpose: SecretPurpose::Storage,
            metrics: metrics.clone(),
        };
        let decode = |secret: &Secret| -> Result<String, String> {
            let data = secret.data.as_ref().ok_or("no data")?;
            let value = data.get("value").ok_or("no `value` key")?;
            String::from_utf8(value.0.clone()).map_err(|_| "not UTF-8".into())
        };
        let task = tokio::spawn(watch_secret(
            watch,
            decode,
            move |v| values.send(v).unwrap(),
            move |e| events.send(e).unwrap(),
        ));

        // Initial list: the current version is applied.
        expect(&mut handle, false)
            .await
            .send_response(list("10", vec![secret("10", "first")]));
        assert_eq!(next(&mut published).await, "first");
        assert_eq!(next(&mut seen).await, SecretEvent::Applied);

        // Watch: MODIFIED applies, a malformed version is refused, DELETED keeps the last good
        // value, and 410 Gone makes the watcher list again.
        let malformed = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "ns", "resourceVersion": "12"}, "data": {}});
        expect(&mut handle, true).await.send_response(watch_events(&[
            json!({"type": "MODIFIED", "object": secret("11", "second")}),
            json!({"type": "MODIFIED", "object": malformed}),
            json!({"type": "DELETED", "object": secret("13", "second")}),
            json!({"type": "ERROR", "object": status(410, "Expired")}),
        ]));
        assert_eq!(next(&mut published).await, "second");
        assert_eq!(next(&mut seen).await, SecretEvent::Applied);
        assert_eq!(next(&mut seen).await, SecretEvent::Malformed);
        assert_eq!(next(&mut seen).await, SecretEvent::Deleted);
        assert_eq!(
            next(&mut seen).await,
            SecretEvent::Error,
            "410 Gone is reported, then relisted"
        );
        expect(&mut handle, false)
            .await
            .send_response(list("20", vec![secret("20", "third")]));
        assert_eq!(next(&mut published).await, "third");
        assert_eq!(next(&mut seen).await, SecretEvent::Applied);

        // 403: reported, nothing published, retried with backoff.
        let mut forbidden = Response::new(Body::from(serde_json::to_vec(&status(403, "Forbidden")).unwrap()));
        *forbidden.status_mut() = StatusCode::FORBIDDEN;
        expect(&mut handle, true).await.send_response(forbidden);
        assert_eq!(next(&mut seen).await, SecretEvent::Error);
        // The retried watch resumes from the last resource version it saw.
        let retried = expect(&mut handle, true).await;
        retried.send_response(watch_events(&[
            json!({"type": "MODIFIED", "object": secret("30", "fourth")}),
        ]));
        assert_eq!(next(&mut published).await, "fourth");

        let counted = |outcome| metrics.kubernetes.secret_events(SecretPurpose::Storage, outcome);
        assert_eq!(
            (
                counted(SecretEvent::Applied),
                counted(SecretEvent::Malformed),
                counted(SecretEvent::Deleted),
                counted(SecretEvent::Error)
            ),
            (4, 1, 1, 2)
        );
        assert!(published.try_recv().is_err(), "nothing else was published");
        task.abort();
    }
}
