//! API keys as they sit in a Kubernetes Secret: every data value is an entry (`read:KEY`,
//! `write:KEY`, `KEY`).

use k8s_openapi::api::core::v1::Secret;

use super::decode::DecodeError;
use crate::auth::keys::KeySet;

/// SECURITY: errors name the data key, never the value.
pub fn decode_key_secret(secret: &Secret) -> Result<KeySet, DecodeError> {
    let data = secret.data.clone().unwrap_or_default();
    let mut entries = Vec::with_capacity(data.len());
    for (name, value) in &data {
        let text = String::from_utf8(value.0.clone()).map_err(|_| DecodeError::NotUtf8(name.clone()))?;
        entries.push(text.trim().to_owned());
    }
    KeySet::parse(entries.iter().map(String::as_str)).map_err(DecodeError::KeyEntry)
}
