//! The rate-limit Redis password as it sits in a Kubernetes Secret: one data key.

use k8s_openapi::api::core::v1::Secret;

use super::DecodeError;
use crate::config;

/// The password under data key `key` of `secret`.
pub fn decode_redis_password(secret: &Secret, key: &str) -> Result<config::Secret, DecodeError> {
    let value = secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .ok_or_else(|| DecodeError::MissingKey(key.to_owned()))?;
    let password = String::from_utf8(value.0.clone()).map_err(|_| DecodeError::NotUtf8(key.to_owned()))?;
    if password.is_empty() {
        return Err(DecodeError::Empty(key.to_owned()));
    }
    Ok(config::Secret::new(password))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;

    fn secret(key: &str, value: &[u8]) -> Secret {
        Secret {
            data: Some(BTreeMap::from([(key.to_owned(), ByteString(value.to_vec()))])),
            ..Default::default()
        }
    }

    #[test]
    fn the_password_under_its_key_or_why_not() {
        let decoded = decode_redis_password(&secret("redis-password", b"s3cret"), "redis-password").unwrap();
        assert_eq!(decoded.expose(), "s3cret");
        let missing = decode_redis_password(&secret("password", b"s3cret"), "redis-password").unwrap_err();
        assert_eq!(missing, DecodeError::MissingKey("redis-password".into()));
        assert!(!missing.to_string().contains("s3cret"));
        let binary = decode_redis_password(&secret("redis-password", &[0xff, 0xfe]), "redis-password");
        assert_eq!(binary.unwrap_err(), DecodeError::NotUtf8("redis-password".into()));
        let empty = decode_redis_password(&secret("redis-password", b""), "redis-password");
        assert_eq!(empty.unwrap_err(), DecodeError::Empty("redis-password".into()));
    }
}
