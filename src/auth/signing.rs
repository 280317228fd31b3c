//! Signed, expiring download URLs: `?expires=<unix>&signature=<hex HMAC-SHA256>`.
//!
//! The MAC covers `GET`, the download path of the validated object name and the expiry, one
//! per line, and for a variant (`?w=400&format=webp`) a fourth line, the variant's normalized
//! key (`w400.webp`): one signed URL authorizes exactly one variant, never every size. HEAD
//! verifies as GET (it is GET without a body). Signing uses the first key;
//! verification accepts any configured key, so keys rotate by putting the new one first.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    clock::unix_now,
    config::Secret,
    object_name::{DOWNLOAD_PREFIX, ObjectName},
};

type HmacSha256 = Hmac<Sha256>;

/// The last second of year 9999: later expiry times are malformed, not merely far off.
const MAX_EXPIRES: u64 = 253_402_300_799;

/// Bytes in an HMAC-SHA256 signature (64 hex characters).
const SIGNATURE_LEN: usize = 32;

/// Why a signed URL was refused (all 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature is genuine but `expires` has passed.
    #[error("URL expired")]
    Expired,
    /// The signature matches no configured key (or none is configured).
    #[error("invalid URL signature")]
    Invalid,
    /// `expires` or `signature` is missing, repeated or unparsable.
    #[error("a signed URL needs exactly one `expires` (Unix time) and one `signature` (hex) parameter")]
    Malformed,
}

/// The `expires` and `signature` query parameters, when a request carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedParams {
    /// Expiry in Unix seconds (at most the end of year 9999).
    pub expires: u64,
    /// The HMAC-SHA256 signature, decoded from hex (32 bytes).
    pub signature: Vec<u8>,
}

impl SignedParams {
    /// `Ok(None)` when the query has neither parameter; `Malformed` when it has one, twice,
    /// or unparsable.
    pub fn from_query(query: Option<&str>) -> Result<Option<SignedParams>, SignatureError> {
        let (mut expires, mut signature) = (None, None);
        for pair in query.unwrap_or_default().split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match name {
                "expires" => &mut expires,
                "signature" => &mut signature,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(SignatureError::Malformed);
            }
        }
        match (expires, signature) {
            (None, None) => Ok(None),
            (Some(expires), Some(signature)) => Ok(Some(SignedParams {
                expires: expires
                    .parse()
                    .ok()
                    .filter(|e| *e <= MAX_EXPIRES)
                    .ok_or(SignatureError::Malformed)?,
                signature: hex::decode(signature)
                    .ok()
                    .filter(|s| s.len() == SIGNATURE_LEN)
                    .ok_or(SignatureError::Malformed)?,
            })),
            _ => Err(SignatureError::Malformed),
        }
    }
}

/// Signs and verifies download URLs with the configured `auth.url_signing_key`s.
#[derive(Clone)]
pub struct UrlSigner {
    keys: Vec<Secret>,
}

impl UrlSigner {
    /// `None` when no key is configured.
    pub fn new(keys: &[Secret]) -> Option<UrlSigner> {
        (!keys.is_empty()).then(|| UrlSigner { keys: keys.to_vec() })
    }

    fn mac(key: &Secret, name: &ObjectName, variant: Option<&str>, expires: u64) -> HmacSha256 {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(key.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(format!("GET\n{DOWNLOAD_PREFIX}{name}\n{expires}").as_bytes());
        if let Some(variant) = variant {
            mac.update(format!("\n{variant}").as_bytes());
        }
        mac
    }

    /// The hex signature of a download of `name` valid until `expires` (Unix seconds).
    pub fn sign(&self, name: &ObjectName, expires: u64) -> String {
        self.sign_for(name, None, expires)
    }

    /// The hex signature of a download of `name`, or of its `variant` (its key, `w400.webp`),
    /// valid until `expires` (Unix seconds).
    pub fn sign_for(&self, name: &ObjectName, variant: Option<&str>, expires: u64) -> String {
        hex::encode(Self::mac(&self.keys[0], name, variant, expires).finalize().into_bytes())
    }

    /// The query string (`expires=…&signature=…`) of a URL valid for `ttl` from now.
    pub fn query(&self, name: &ObjectName, ttl: Duration) -> String {
        self.query_for(name, None, ttl)
    }

    /// [`UrlSigner::query`] for `name`'s `variant` (its key, `w400.webp`), or `name` itself.
    pub fn query_for(&self, name: &ObjectName, variant: Option<&str>, ttl: Duration) -> String {
        self.query_at(name, variant, ttl, unix_now())
    }

    /// [`UrlSigner::query_for`] with the clock given: valid until `now + ttl` (at least a second).
    fn query_at(&self, name: &ObjectName, variant: Option<&str>, ttl: Duration, now: u64) -> String {
        let expires = now.saturating_add(ttl.as_secs().max(1));
        format!("expires={expires}&signature={}", self.sign_for(name, variant, expires))
    }

    /// Checks the signature first (in constant time, against every key), then the expiry,
    /// so "URL expired" is only ever said of a URL we really signed.
    pub fn verify(&self, name: &ObjectName, params: &SignedParams, now: u64) -> Result<(), SignatureError> {
        self.verify_for(name, None, params, now)
    }

    /// [`UrlSigner::verify`] of a download of `name`'s `variant` (its key), or of `name` itself.
    pub fn verify_for(
        &self,
        name: &ObjectName,
        variant: Option<&str>,
        params: &SignedParams,
        now: u64,
    ) -> Result<(), SignatureError> {
        let genuine = self.keys.iter().any(|key| {
            Self::mac(key, name, variant, params.expires)
                .verify_slice(&params.signature)
                .is_ok()
        });
        if !genuine {
            return Err(SignatureError::Invalid);
        }
        if params.expires < now {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> ObjectName {
        ObjectName::parse("a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6.png").unwrap()
    }

    fn params(query: &str) -> SignedParams {
        SignedParams::from_query(Some(query)).unwrap().unwrap()
    }

    #[test]
    fn sign_and_verify() {
        let signer = UrlSigner::new(&[Secret::new("k1-0123456789abcdef")]).unwrap();
        let query = signer.query(&name(), Duration::from_secs(3600));
        let p = params(&query);
        assert!(p.expires >= unix_now() + 3599);
        assert_eq!(signer.verify(&name(), &p, unix_now()), Ok(()));
        assert_eq!(signer.verify(&name(), &p, p.expires + 1), Err(SignatureError::Expired));
        let other = ObjectName::parse("a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6.jpg").unwrap();
        assert_eq!(signer.verify(&other, &p, unix_now()), Err(SignatureError::Invalid));
        let mut tampered = p.clone();
        tampered.expires += 1;
        assert_eq!(
            signer.verify(&name(), &tampered, unix_now()),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn a_variant_signature_authorizes_that_variant_only() {
        let signer = UrlSigner::new(&[Secret::new("k1-0123456789abcdef")]).unwrap();
        let expires = unix_now() + 60;
        let signed = |variant| SignedParams {
            expires,
            signature: hex::decode(signer.sign_for(&name(), variant, expires)).unwrap(),
        };
        let (now, w400) = (unix_now(), Some("w400.webp"));
        assert_eq!(signer.verify_for(&name(), w400, &signed(w400), now), Ok(()));
        for (what, other) in [
            ("the original", None),
            ("another size", Some("w3840.webp")),
            ("another format", Some("w400.png")),
        ] {
            assert_eq!(
                signer.verify_for(&name(), other, &signed(w400), now),
                Err(SignatureError::Invalid),
                "a w400.webp signature must not authorize {what}"
            );
        }
        assert_eq!(
            signer.verify_for(&name(), w400, &signed(None), now),
            Err(SignatureError::Invalid),
            "the original's signature must not authorize a variant"
        );
        assert_eq!(signer.sign(&name(), expires), signer.sign_for(&name(), None, expires));
        // The query the `sign --variant` command prints carries that variant's signature.
        let query = params(&signer.query_for(&name(), w400, Duration::from_secs(60)));
        assert!(query.expires >= now + 59);
        assert_eq!(signer.verify_for(&name(), w400, &query, now), Ok(()));
        assert_eq!(
            signer.verify_for(&name(), None, &query, now),
            Err(SignatureError::Invalid)
        );
    }

    /// The clock is the test's: exact expiry times, and the last valid second.
    #[test]
    fn expiry_follows_the_given_clock_to_the_second() {
        let signer = UrlSigner::new(&[Secret::new("k1-0123456789abcdef")]).unwrap();
        let p = params(&signer.query_at(&name(), None, Duration::from_secs(3600), 1_000));
        assert_eq!(p.expires, 4_600);
        assert_eq!(
            signer.verify(&name(), &p, 4_600),
            Ok(()),
            "valid through its last second"
        );
        assert_eq!(signer.verify(&name(), &p, 4_601), Err(SignatureError::Expired));
        assert_eq!(signer.verify(&name(), &p, 0), Ok(()));
        // A zero TTL still gives a URL for the current second and the next.
        let p = params(&signer.query_at(&name(), None, Duration::ZERO, 1_000));
        assert_eq!(p.expires, 1_001);
        // Sub-second TTLs round down, then up to one second.
        let p = params(&signer.query_at(&name(), None, Duration::from_millis(2_900), 1_000));
        assert_eq!(p.expires, 1_002);
        // No overflow at the end of time.
        let p = signer.query_at(&name(), None, Duration::from_secs(10), u64::MAX);
        assert!(p.starts_with(&format!("expires={}&", u64::MAX)), "{p}");
        // unix_now is the real clock.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!((now..=now + 1).contains(&unix_now()));
    }

    #[test]
    fn expiry_times_past_year_9999_are_malformed() {
        let sig = "ab".repeat(32);
        assert_eq!(
            params(&format!("expires=253402300799&signature={sig}")).expires,
            MAX_EXPIRES
        );
        assert_eq!(
            SignedParams::from_query(Some(&format!("expires=253402300800&signature={sig}"))),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            SignedParams::from_query(Some(&format!("expires=1&signature={}", "ab".repeat(33)))),
            Err(SignatureError::Malformed),
            "too long"
        );
        assert_eq!(
            SignedParams::from_query(Some(&format!("expires=1&signature={sig}&signature={sig}"))),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn rotation_verifies_with_every_key_and_signs_with_the_first() {
        let old = UrlSigner::new(&[Secret::new("old-key")]).unwrap();
        let rotated = UrlSigner::new(&[Secret::new("new-key"), Secret::new("old-key")]).unwrap();
        let from_old = params(&old.query(&name(), Duration::from_secs(60)));
        assert_eq!(rotated.verify(&name(), &from_old, unix_now()), Ok(()));
        let from_new = params(&rotated.query(&name(), Duration::from_secs(60)));
        assert_eq!(old.verify(&name(), &from_new, unix_now()), Err(SignatureError::Invalid));
    }

    #[test]
    fn query_parsing() {
        assert_eq!(SignedParams::from_query(None), Ok(None));
        assert_eq!(SignedParams::from_query(Some("x=1")), Ok(None));
        for bad in [
            "expires=1",
            "signature=ab",
            "expires=x&signature=ab",
            "expires=1&signature=zz",
            "expires=1&expires=2&signature=ab",
        ] {
            assert_eq!(
                SignedParams::from_query(Some(bad)),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        let sig = "ab".repeat(32);
        assert_eq!(params(&format!("v=2&signature={sig}&expires=5")).expires, 5);
        assert!(
            SignedParams::from_query(Some("expires=1&signature=abcd")).is_err(),
            "too short"
        );
    }
}
