//! API keys as they sit in a Kubernetes Secret: every data value is an entry (`read:KEY`,
//! `write:KEY`, `KEY`).

use k8s_openapi::api::core::v1::Secret;

use crate::auth::keys::KeySet;

/// The keys of `secret`. It fails closed: a value that is not UTF-8 or not a valid entry is
/// skipped (and logged by its data key, never its value), so the other keys still apply and a
/// key removed in the same edit is revoked.
pub fn decode_key_secret(secret: &Secret) -> KeySet {
    let data = secret.data.clone().unwrap_or_default();
    let mut entries = Vec::with_capacity(data.len());
    let mut names = Vec::with_capacity(data.len());
    for (name, value) in &data {
        match String::from_utf8(value.0.clone()) {
            Ok(text) => {
                entries.push(text.trim().to_owned());
                names.push(name.as_str());
            }
            Err(_) => tracing::warn!(data_key = %name, "skipping an API key that is not UTF-8"),
        }
    }
    let (keys, invalid) = KeySet::parse_skipping(entries.iter().map(String::as_str));
    for e in invalid {
        let name = names.get(e.position - 1).copied().unwrap_or_default();
        tracing::warn!(data_key = %name, "skipping an API key shorter than the minimum");
    }
    keys
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;

    use super::*;

    #[test]
    fn invalid_values_are_skipped_and_the_rest_applies() {
        let data = [
            ("good", b"write:good-key-0123456789".to_vec()),
            ("short", b"tiny".to_vec()),
            ("binary", vec![0xff, 0xfe]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v)))
        .collect();
        let keys = decode_key_secret(&Secret {
            data: Some(data),
            ..Default::default()
        });
        assert_eq!(keys.len(), 1);
        assert!(keys.find("good-key-0123456789").is_some());
        assert!(keys.find("tiny").is_none());
        assert_eq!(decode_key_secret(&Secret::default()).len(), 0);
    }
}
