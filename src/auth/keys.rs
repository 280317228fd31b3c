//! API keys: parsed once into SHA-256 digests with a scope, looked up in constant time.
//!
//! A key entry is `read:KEY`, `write:KEY`, or a bare `KEY` (scope `read`: the least privilege).
//! `write` allows uploads and downloads; `read` allows downloads. SECURITY: only digests are
//! kept in memory, and a presented key is compared with every stored digest through
//! [`subtle::ConstantTimeEq`], without early exit, so timing tells nothing about any key.

use std::{fmt, sync::Arc};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

pub use crate::config::api_keys::{KeyEntry, KeyEntryError, Scope};

type KeyDigest = [u8; 32];

/// The digest of a key (also its identity for rate limits; never the key itself).
pub fn digest(key: &str) -> KeyDigest {
    Sha256::digest(key.as_bytes()).into()
}

/// SECURITY: the only comparison of key material; its time does not depend on the bytes.
fn constant_time_eq(a: &KeyDigest, b: &KeyDigest) -> bool {
    bool::from(a.ct_eq(b))
}

/// An immutable set of keys; swap a whole new set in through [`KeyStore`].
#[derive(Clone, Default)]
pub struct KeySet {
    entries: Vec<(KeyDigest, Scope)>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeySet({} keys)", self.entries.len())
    }
}

/// An accepted key: its scope, and a short, non-reversible id for rate limits and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub scope: Scope,
    pub id: String,
}

impl KeySet {
    /// Parses entries (`read:KEY`, `write:KEY`, `KEY`; see [`crate::config::api_keys`]).
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<KeySet, KeyEntryError> {
        Ok(KeySet::from_entries(&crate::config::api_keys::parse_entries(entries)?))
    }

    /// Parses entries, skipping invalid ones (returned beside the set; see
    /// [`crate::config::api_keys::parse_entries_skipping`]).
    pub fn parse_skipping<'a>(entries: impl IntoIterator<Item = &'a str>) -> (KeySet, Vec<KeyEntryError>) {
        let (entries, invalid) = crate::config::api_keys::parse_entries_skipping(entries);
        (KeySet::from_entries(&entries), invalid)
    }

    /// The set of already parsed entries (only their digests are kept).
    pub fn from_entries(entries: &[KeyEntry]) -> KeySet {
        KeySet {
            entries: entries.iter().map(|e| (digest(e.key.expose()), e.scope)).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The holder of `presented`, if it is one of ours. Every entry is compared, in constant time.
    pub fn find(&self, presented: &str) -> Option<Holder> {
        self.find_with(presented, constant_time_eq)
    }

    /// `find` with the comparison injected, so a test can watch every comparison made.
    fn find_with(&self, presented: &str, eq: impl Fn(&KeyDigest, &KeyDigest) -> bool) -> Option<Holder> {
        let wanted = digest(presented);
        let mut found: Option<Scope> = None;
        // No early exit: every entry costs the same whether or not an earlier one matched.
        for (stored, scope) in &self.entries {
            if eq(stored, &wanted) {
                found = Some(found.map_or(*scope, |s| s.max(*scope)));
            }
        }
        found.map(|scope| Holder {
            scope,
            id: hex::encode(&wanted[..8]),
        })
    }

    /// Merges two sets (config keys plus file keys).
    pub fn union(&self, other: &KeySet) -> KeySet {
        let mut entries = self.entries.clone();
        entries.extend_from_slice(&other.entries);
        KeySet { entries }
    }
}

/// The current key set, swappable at runtime (file reloads now, a Kubernetes Secret later).
#[derive(Clone)]
pub struct KeyStore {
    current: watch::Receiver<Arc<KeySet>>,
}

/// Publishes new key sets to a [`KeyStore`].
pub struct KeyPublisher {
    sender: watch::Sender<Arc<KeySet>>,
}

impl KeyStore {
    pub fn new(initial: KeySet) -> (KeyStore, KeyPublisher) {
        let (sender, current) = watch::channel(Arc::new(initial));
        (KeyStore { current }, KeyPublisher { sender })
    }

    pub fn current(&self) -> Arc<KeySet> {
        self.current.borrow().clone()
    }
}

impl KeyPublisher {
    pub fn publish(&self, keys: KeySet) {
        self.sender.send_replace(Arc::new(keys));
    }

    /// True once no [`KeyStore`] reads the keys any more.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Resolves once no [`KeyStore`] reads the keys any more.
    pub async fn closed(&self) {
        self.sender.closed().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READER: &str = "reader-key-0123456789";
    const WRITER: &str = "writer-key-0123456789";

    #[test]
    fn scopes_and_lookup() {
        let set = KeySet::parse([
            "# comment",
            "",
            READER,
            &format!("write:{WRITER}"),
            "read:another-key-0123456789",
        ])
        .unwrap();
        assert_eq!(set.len(), 3);
        assert_eq!(set.find(READER).unwrap().scope, Scope::Read);
        assert_eq!(set.find(WRITER).unwrap().scope, Scope::Write);
        assert_eq!(set.find("another-key-0123456789").unwrap().scope, Scope::Read);
        assert!(set.find("reader-key-012345678").is_none());
        assert!(set.find("").is_none());
        assert!(
            set.find(&format!("write:{WRITER}")).is_none(),
            "the scope prefix is not part of the key"
        );
        let id = set.find(READER).unwrap().id;
        assert_eq!(id.len(), 16);
        assert!(!READER.contains(&id), "the id is a digest, not the key");
    }

    #[test]
    fn debug_shows_the_count_never_a_key_or_digest() {
        let set = KeySet::parse([READER, WRITER]).unwrap();
        let shown = format!("{set:?}");
        assert_eq!(shown, "KeySet(2 keys)");
        assert!(!shown.contains(&hex::encode(&digest(READER)[..8])));
    }

    #[test]
    fn short_keys_are_refused_without_echoing_them() {
        let err = KeySet::parse(["write:tiny"]).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("#1") && !err.contains("tiny"), "{err}");
    }

    #[test]
    fn lookup_compares_every_digest_in_constant_time() {
        let set = KeySet::parse([READER, WRITER, "read:third-key-0123456789"]).unwrap();
        let compared = std::cell::Cell::new(0);
        let watched = |a: &KeyDigest, b: &KeyDigest| {
            compared.set(compared.get() + 1);
            constant_time_eq(a, b)
        };
        // The match is the first entry, yet all three are compared.
        assert_eq!(set.find_with(READER, watched).unwrap().scope, Scope::Read);
        assert_eq!(compared.get(), 3);
        assert!(set.find_with("unknown-key-0123456789", watched).is_none());
        assert_eq!(compared.get(), 6);
        // And the comparison is equality of the digests (a digest differing in its last byte
        // is not equal).
        let (a, b) = (digest(READER), digest(WRITER));
        assert!(constant_time_eq(&a, &a) && !constant_time_eq(&a, &b));
        let mut last = a;
        last[last.len() - 1] ^= 1;
        assert!(!constant_time_eq(&a, &last));
    }

    #[test]
    fn sixteen_characters_is_the_shortest_key() {
        assert!(KeySet::parse(["0123456789abcdef"]).is_ok());
        assert!(KeySet::parse(["write:0123456789abcdef"]).is_ok());
        let err = KeySet::parse([READER, "0123456789abcde"]).unwrap_err();
        assert!(err.to_string().contains("#2"), "{err}");
        assert!(KeySet::parse(["read:0123456789abcde"]).is_err());
        // Leading and trailing space is not part of the key.
        assert!(KeySet::parse(["  0123456789abcde  "]).is_err());
    }

    #[test]
    fn union_and_the_highest_scope_wins() {
        let empty = KeySet::parse(["# only a comment", ""]).unwrap();
        assert_eq!(empty.len(), 0);
        let readers = KeySet::parse([READER]).unwrap();
        let writers = KeySet::parse([format!("write:{WRITER}").as_str(), &format!("write:{READER}")]).unwrap();
        let both = readers.union(&writers);
        assert_eq!(both.len(), 3);
        assert_eq!(readers.len(), 1, "union leaves its operands alone");
        assert_eq!(both.find(WRITER).unwrap().scope, Scope::Write);
        assert_eq!(both.find(READER).unwrap().scope, Scope::Write, "read and write: write");
        assert_eq!(empty.union(&readers).find(READER).unwrap().scope, Scope::Read);
        assert_eq!(Scope::Read.as_str(), "read");
        assert_eq!(Scope::Write.as_str(), "write");
    }

    #[test]
    fn store_swaps_sets() {
        let (store, publisher) = KeyStore::new(KeySet::parse([READER]).unwrap());
        assert!(store.current().find(READER).is_some());
        publisher.publish(KeySet::parse([WRITER]).unwrap());
        assert!(store.current().find(READER).is_none());
        assert!(store.current().find(WRITER).is_some());
        assert!(!publisher.is_closed());
        let copy = store.clone();
        drop(store);
        assert!(!publisher.is_closed(), "a clone still reads");
        drop(copy);
        assert!(publisher.is_closed());
    }

    #[tokio::test]
    async fn closed_resolves_only_once_no_store_reads_the_keys() {
        let (store, publisher) = KeyStore::new(KeySet::default());
        let early = tokio::time::timeout(std::time::Duration::from_millis(50), publisher.closed()).await;
        assert!(early.is_err(), "resolved while a store still reads the keys");
        assert!(!publisher.is_closed());
        drop(store);
        tokio::time::timeout(std::time::Duration::from_secs(60), publisher.closed())
            .await
            .expect("resolves once the store is dropped");
        assert!(publisher.is_closed());
    }
}
