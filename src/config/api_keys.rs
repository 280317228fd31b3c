//! The grammar of an API-key entry, shared by every key source (configuration, key file,
//! Kubernetes Secret): `read:KEY`, `write:KEY`, or a bare `KEY` (scope `read`, the least
//! privilege). Blank lines and `#` comments are skipped. An entry with a `:` whose prefix is not
//! a scope (`revoked:KEY`, `write :KEY`) is refused, never read as a key equal to the whole line.

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
#[error("API key #{position} {problem}")]
pub struct KeyEntryError {
    /// 1-based position among the entries given (comments and blank lines counted).
    pub position: usize,
    /// What is wrong with it.
    pub problem: KeyProblem,
}

/// Why an entry is not a usable key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    /// The key is too short to be a secret.
    #[error("is shorter than {MIN_KEY_LEN} characters")]
    TooShort,
    /// `something:KEY` where `something` is not a scope.
    #[error("has a scope before its `:` that is neither `read` nor `write`")]
    UnknownScope,
}

/// Parses entries in order; the first invalid one fails them all (the configuration, and a key
/// file at start-up: a mistake there is reported before serving).
pub fn parse_entries<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Vec<KeyEntry>, KeyEntryError> {
    let (parsed, invalid) = parse_entries_skipping(entries);
    match invalid.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(parsed),
    }
}

/// Parses entries in order, skipping the invalid ones (returned beside the valid): a key source
/// that changes while serving fails closed, so a key removed in the same edit that breaks
/// another line is still revoked.
pub fn parse_entries_skipping<'a>(entries: impl IntoIterator<Item = &'a str>) -> (Vec<KeyEntry>, Vec<KeyEntryError>) {
    let mut parsed = Vec::new();
    let mut invalid = Vec::new();
    for (index, raw) in entries.into_iter().enumerate() {
        let entry = raw.trim();
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        let refuse = |problem| KeyEntryError {
            position: index + 1,
            problem,
        };
        let (scope, key) = match entry.split_once(':') {
            Some(("read", key)) => (Scope::Read, key),
            Some(("write", key)) => (Scope::Write, key),
            Some(_) => {
                invalid.push(refuse(KeyProblem::UnknownScope));
                continue;
            }
            None => (Scope::Read, entry),
        };
        if key.len() < MIN_KEY_LEN {
            invalid.push(refuse(KeyProblem::TooShort));
            continue;
        }
        parsed.push(KeyEntry {
            scope,
            key: Secret::new(key),
        });
    }
    (parsed, invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_scope_refuses_the_entry_instead_of_reading_the_line_as_a_key() {
        let key = "0123456789abcdef0123";
        for line in [
            format!("revoked:{key}"),
            format!("write :{key}"),
            format!("admin:{key}"),
        ] {
            let (parsed, invalid) = parse_entries_skipping([line.as_str()]);
            assert!(parsed.is_empty(), "{line} was read as a key");
            assert_eq!(invalid[0].problem, KeyProblem::UnknownScope, "{line}");
            assert!(!invalid[0].to_string().contains(key), "the error shows the key");
        }
        let parsed = parse_entries([format!("write:{key}").as_str(), key, "# read:comment"]).unwrap();
        assert_eq!(
            parsed.iter().map(|e| e.scope).collect::<Vec<_>>(),
            [Scope::Write, Scope::Read]
        );
        assert_eq!(parse_entries(["short"]).unwrap_err().problem, KeyProblem::TooShort);
    }
}
