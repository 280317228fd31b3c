//! MinIO/S3 credentials as they sit in a Kubernetes Secret.

use k8s_openapi::api::core::v1::Secret;

use super::decode::DecodeError;
use crate::{
    config::{Secret as SecretString, SecretKeys},
    storage::S3Credentials,
};

/// The data keys tried in order when the configuration names none: MinIO's usual Secrets,
/// the official MinIO chart's root user, Bitnami's MinIO chart's, then the AWS convention.
pub const DEFAULT_KEYS: [(&str, &str); 4] = [
    ("accesskey", "secretkey"),
    ("rootUser", "rootPassword"),
    ("root-user", "root-password"),
    ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
];

fn value(secret: &Secret, key: &str) -> Option<Result<String, DecodeError>> {
    let bytes = secret.data.as_ref()?.get(key)?;
    Some(
        String::from_utf8(bytes.0.clone())
            .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|_| DecodeError::NotUtf8(key.to_owned())),
    )
}

/// Reads the pair from `secret`: the configured keys, or the first default pair present.
/// SECURITY: errors name data keys, never values.
pub fn decode_s3_credentials(secret: &Secret, keys: Option<&SecretKeys>) -> Result<S3Credentials, DecodeError> {
    let candidates: Vec<(&str, &str)> = match keys {
        Some(k) => vec![(k.access_key_id.as_str(), k.secret_access_key.as_str())],
        None => DEFAULT_KEYS.to_vec(),
    };
    for (id_key, secret_key) in &candidates {
        if let (Some(id), Some(key)) = (value(secret, id_key), value(secret, secret_key)) {
            let (id, key) = (id?, key?);
            if id.is_empty() || key.is_empty() {
                return Err(DecodeError::EmptyPair(format!("{id_key}`/`{secret_key}")));
            }
            return Ok(S3Credentials {
                access_key_id: id,
                secret_access_key: SecretString::new(key),
            });
        }
    }
    let tried: Vec<String> = candidates.iter().map(|(a, b)| format!("{a}/{b}")).collect();
    Err(DecodeError::NoPair(tried.join(", ")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;

    fn secret(pairs: &[(&str, &[u8])]) -> Secret {
        let data: BTreeMap<String, ByteString> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
            .collect();
        Secret {
            data: Some(data),
            ..Default::default()
        }
    }

    #[test]
    fn default_key_order_and_explicit_keys() {
        let minio = secret(&[
            ("accesskey", b"AK"),
            ("secretkey", b"SK\n"),
            ("rootUser", b"root"),
            ("rootPassword", b"pw"),
        ]);
        let creds = decode_s3_credentials(&minio, None).unwrap();
        assert_eq!(
            (creds.access_key_id.as_str(), creds.secret_access_key.expose()),
            ("AK", "SK")
        );
        let root = secret(&[("rootUser", b"root"), ("rootPassword", b"pw")]);
        assert_eq!(decode_s3_credentials(&root, None).unwrap().access_key_id, "root");
        let bitnami = secret(&[("root-user", b"admin"), ("root-password", b"pw")]);
        assert_eq!(decode_s3_credentials(&bitnami, None).unwrap().access_key_id, "admin");
        let aws = secret(&[("AWS_ACCESS_KEY_ID", b"id"), ("AWS_SECRET_ACCESS_KEY", b"key")]);
        assert_eq!(decode_s3_credentials(&aws, None).unwrap().access_key_id, "id");
        let keys = SecretKeys {
            access_key_id: "user".into(),
            secret_access_key: "pass".into(),
        };
        let custom = secret(&[
            ("user", b"u"),
            ("pass", b"p"),
            ("accesskey", b"AK"),
            ("secretkey", b"SK"),
        ]);
        assert_eq!(decode_s3_credentials(&custom, Some(&keys)).unwrap().access_key_id, "u");
    }

    #[test]
    fn malformed_secrets_are_explained_without_values() {
        let half = secret(&[("accesskey", b"AK-visible")]);
        let err = decode_s3_credentials(&half, None).unwrap_err().to_string();
        assert!(
            err.contains("accesskey/secretkey") && !err.contains("AK-visible"),
            "{err}"
        );
        let binary = secret(&[("accesskey", b"AK"), ("secretkey", &[0xff, 0xfe])]);
        assert!(
            decode_s3_credentials(&binary, None)
                .unwrap_err()
                .to_string()
                .contains("not UTF-8")
        );
        let empty = secret(&[("accesskey", b""), ("secretkey", b"x")]);
        assert!(
            decode_s3_credentials(&empty, None)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(decode_s3_credentials(&Secret::default(), None).is_err());
        let creds = decode_s3_credentials(&secret(&[("accesskey", b"AK"), ("secretkey", b"hunter2")]), None).unwrap();
        assert!(!format!("{creds:?}").contains("hunter2"));
    }
}
