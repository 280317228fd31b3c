//! The grammar of an API-key entry, shared by every key source (configuration, key file,
//! Kubernetes Secret): `read:KEY`, `write:KEY`, or a bare `KEY` (scope `read`, the least
//! privilege). Blank lines and `#` comments are skipped.

use super::secret::Secret;

/// Shortest key accepted.
pub const MIN_KEY_LEN: usize = 16;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Download.
    Read,
    /// Upload and download.
    Write,
}

impl Scope {
    /// The scope as written in an entry.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }
}

/// One parsed entry. SECURITY: the key is a [`Secret`]: never in `Debug` or logs.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    /// What the key may do.
    pub scope: Scope,
    /// The key itself.
    pub key: Secret,
}

/// An entry that is not a usable key. SECURITY: it names the entry's position, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("API key #{position} is shorter than {MIN_KEY_LEN} characters")]
pub struct KeyEntryError {
    /// 1-based position among the entries given (comments and blank lines counted).
    pub position: usize,
}

/// Parses entries in order.
pub fn parse_entries<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Vec<KeyEntry>, KeyEntryError> {
    let mut parsed = Vec::new();
    for (index, raw) in entries.into_iter().enumerate() {
        let entry = raw.trim();
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        let (scope, key) = match entry.split_once(':') {
            Some(("read", key)) => (Scope::Read, key),
            Some(("write", key)) => (Scope::Write, key),
            _ => (Scope::Read, entry),
        };
        if key.len() < MIN_KEY_LEN {
            return Err(KeyEntryError { position: index + 1 });
        }
        parsed.push(KeyEntry {
            scope,
            key: Secret::new(key),
        });
    }
    Ok(parsed)
}
