//! Conditional requests (RFC 9110 §13): `If-Match`, `If-Unmodified-Since`, `If-None-Match`,
//! `If-Modified-Since` in the order of §13.2.2, and `If-Range`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, header};

use crate::storage::ObjectMeta;

/// What the preconditions of a GET or HEAD decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Serve the representation; `honour_range` is false when `If-Range` did not match.
    Proceed {
        /// Whether a `Range` header may be honoured.
        honour_range: bool,
    },
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// Evaluates the preconditions of a GET or HEAD against the object's validators.
pub fn evaluate(headers: &HeaderMap, meta: &ObjectMeta) -> Outcome {
    let modified = seconds(meta.last_modified);
    if let Some(matched) = any_matches(headers, &header::IF_MATCH, &meta.etag, Comparison::Strong) {
        if !matched {
            return Outcome::Failed;
        }
    } else if let Some(since) = date(headers, &header::IF_UNMODIFIED_SINCE)
        && modified > since
    {
        return Outcome::Failed;
    }
    if let Some(matched) = any_matches(headers, &header::IF_NONE_MATCH, &meta.etag, Comparison::Weak) {
        if matched {
            return Outcome::NotModified;
        }
    } else if let Some(since) = date(headers, &header::IF_MODIFIED_SINCE)
        && modified <= since
    {
        return Outcome::NotModified;
    }
    Outcome::Proceed {
        honour_range: if_range_holds(headers, meta),
    }
}

/// `If-Range` (§13.1.5): an entity tag must match strongly; a date must equal last-modified.
fn if_range_holds(headers: &HeaderMap, meta: &ObjectMeta) -> bool {
    let Some(value) = headers.get(header::IF_RANGE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return matches(value, &meta.etag, Comparison::Strong) && value != "*";
    }
    httpdate::parse_http_date(value).is_ok_and(|d| d == seconds(meta.last_modified))
}

#[derive(Clone, Copy, PartialEq)]
enum Comparison {
    Strong,
    Weak,
}

/// Whether any field line of the list header `name` matches `current`; `None` when the header
/// is absent. Lines are read in place (no joined copy): this runs on every conditional request.
fn any_matches(headers: &HeaderMap, name: &HeaderName, current: &str, comparison: Comparison) -> Option<bool> {
    let mut lines = headers.get_all(name).iter().peekable();
    lines.peek()?;
    Some(
        lines
            .filter_map(|line| line.to_str().ok())
            .any(|list| matches(list, current, comparison)),
    )
}

fn date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    let value = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(value.trim()).ok()
}

/// HTTP dates have whole seconds; compare at that precision.
fn seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Does the list (`*` or entity-tags) match `current`?
fn matches(list: &str, current: &str, comparison: Comparison) -> bool {
    if list.trim() == "*" {
        return true;
    }
    let (current_weak, current_tag) = split_weak(current);
    if comparison == Comparison::Strong && current_weak {
        return false;
    }
    EntityTags(list).any(|(weak, tag)| tag == current_tag && (comparison == Comparison::Weak || !weak))
}

fn split_weak(tag: &str) -> (bool, &str) {
    match tag.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, tag),
    }
}

/// Iterates `[W/]"opaque"` tags of a comma-separated list; stops at the first malformed one.
struct EntityTags<'a>(&'a str);

impl<'a> Iterator for EntityTags<'a> {
    type Item = (bool, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.0.trim_start_matches([',', ' ', '\t']);
        let (weak, rest) = split_weak(rest);
        let body = rest.strip_prefix('"')?;
        let close = body.find('"')?;
        let tag = &rest[..close + 2];
        self.0 = &body[close + 1..];
        Some((weak, tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn meta() -> ObjectMeta {
        ObjectMeta {
            len: 10,
            etag: "\"abc\"".into(),
            last_modified: UNIX_EPOCH + Duration::from_millis(1_700_000_000_500),
        }
    }

    fn eval(pairs: &[(HeaderName, &str)]) -> Outcome {
        eval_against(&meta(), pairs)
    }

    fn eval_against(meta: &ObjectMeta, pairs: &[(HeaderName, &str)]) -> Outcome {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        evaluate(&headers, meta)
    }

    const LM: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
    const BEFORE: &str = "Tue, 14 Nov 2023 22:13:19 GMT";
    const PROCEED: Outcome = Outcome::Proceed { honour_range: true };

    #[test]
    fn entity_tag_lists() {
        assert!(matches("\"x\", \"abc\"", "\"abc\"", Comparison::Strong));
        assert!(matches("W/\"abc\"", "\"abc\"", Comparison::Weak));
        assert!(!matches("W/\"abc\"", "\"abc\"", Comparison::Strong));
        assert!(matches("\"a,b\", \"abc\"", "\"abc\"", Comparison::Strong));
        assert!(!matches("abc", "\"abc\"", Comparison::Weak));
        assert!(matches(" * ", "\"abc\"", Comparison::Strong));
    }

    #[test]
    fn if_none_match_and_if_modified_since() {
        use header::*;
        assert_eq!(eval(&[(IF_NONE_MATCH, "\"abc\"")]), Outcome::NotModified);
        assert_eq!(eval(&[(IF_NONE_MATCH, "W/\"abc\"")]), Outcome::NotModified);
        assert_eq!(eval(&[(IF_NONE_MATCH, "*")]), Outcome::NotModified);
        assert_eq!(
            eval(&[(IF_NONE_MATCH, "\"x\""), (IF_NONE_MATCH, "\"abc\"")]),
            Outcome::NotModified
        );
        assert_eq!(eval(&[(IF_NONE_MATCH, "\"x\"")]), PROCEED);
        assert_eq!(eval(&[(IF_MODIFIED_SINCE, LM)]), Outcome::NotModified);
        assert_eq!(eval(&[(IF_MODIFIED_SINCE, BEFORE)]), PROCEED);
        assert_eq!(eval(&[(IF_MODIFIED_SINCE, "not a date")]), PROCEED);
        // If-None-Match takes precedence: a non-matching tag ignores If-Modified-Since.
        assert_eq!(eval(&[(IF_NONE_MATCH, "\"x\""), (IF_MODIFIED_SINCE, LM)]), PROCEED);
    }

    #[test]
    fn if_match_and_if_unmodified_since() {
        use header::*;
        assert_eq!(eval(&[(IF_MATCH, "\"abc\"")]), PROCEED);
        assert_eq!(eval(&[(IF_MATCH, "*")]), PROCEED);
        assert_eq!(eval(&[(IF_MATCH, "\"x\"")]), Outcome::Failed);
        assert_eq!(eval(&[(IF_MATCH, "W/\"abc\"")]), Outcome::Failed, "If-Match is strong");
        assert_eq!(eval(&[(IF_UNMODIFIED_SINCE, BEFORE)]), Outcome::Failed);
        assert_eq!(eval(&[(IF_UNMODIFIED_SINCE, LM)]), PROCEED);
        // If-Match takes precedence over If-Unmodified-Since.
        assert_eq!(eval(&[(IF_MATCH, "\"abc\""), (IF_UNMODIFIED_SINCE, BEFORE)]), PROCEED);
        // A failed If-Match wins over a matching If-None-Match.
        assert_eq!(
            eval(&[(IF_MATCH, "\"x\""), (IF_NONE_MATCH, "\"abc\"")]),
            Outcome::Failed
        );
    }

    /// A stored weak validator (some S3 servers hand them out): weak comparison matches it,
    /// strong comparison (If-Match, If-Range) never does.
    #[test]
    fn a_weak_stored_entity_tag() {
        use header::*;
        let weak = ObjectMeta {
            etag: "W/\"abc\"".into(),
            ..meta()
        };
        let with = |pairs: &[(HeaderName, &str)]| eval_against(&weak, pairs);
        assert_eq!(with(&[(IF_NONE_MATCH, "\"abc\"")]), Outcome::NotModified);
        assert_eq!(with(&[(IF_NONE_MATCH, "W/\"abc\"")]), Outcome::NotModified);
        assert_eq!(with(&[(IF_MATCH, "\"abc\"")]), Outcome::Failed);
        assert_eq!(with(&[(IF_MATCH, "W/\"abc\"")]), Outcome::Failed);
        assert_eq!(
            with(&[(IF_MATCH, "*")]),
            PROCEED,
            "* matches any current representation"
        );
        assert_eq!(
            with(&[(IF_RANGE, "W/\"abc\"")]),
            Outcome::Proceed { honour_range: false }
        );
    }

    /// Lists are read tag by tag, with a weak tag beside the strong one that must match.
    #[test]
    fn lists_with_weak_and_strong_tags() {
        use header::*;
        assert_eq!(eval(&[(IF_MATCH, "\"a\", W/\"abc\"")]), Outcome::Failed);
        assert_eq!(eval(&[(IF_MATCH, "W/\"abc\", \"abc\"")]), PROCEED);
        assert_eq!(
            eval(&[(IF_MATCH, "\"x\",\"abc\"")]),
            PROCEED,
            "no space after the comma"
        );
        assert_eq!(
            eval(&[(IF_MATCH, "\"x\""), (IF_MATCH, "\"abc\"")]),
            PROCEED,
            "two lines"
        );
        assert_eq!(eval(&[(IF_NONE_MATCH, "\"x\",\tW/\"abc\"")]), Outcome::NotModified);
        // A malformed tag ends the list: what follows it is not read.
        assert_eq!(eval(&[(IF_NONE_MATCH, "abc, \"abc\"")]), PROCEED);
        assert_eq!(eval(&[(IF_NONE_MATCH, "\"unterminated")]), PROCEED);
        let tags: Vec<_> = EntityTags("W/\"a\", \"b\",\"c,d\"").collect();
        assert_eq!(tags, [(true, "\"a\""), (false, "\"b\""), (false, "\"c,d\"")]);
        // Dates compare at whole seconds (the stored time has 500 ms).
        assert_eq!(eval(&[(IF_UNMODIFIED_SINCE, LM)]), PROCEED);
        assert_eq!(
            eval(&[(IF_RANGE, " \"abc\" ")]),
            PROCEED,
            "surrounding spaces are ignored"
        );
        assert_eq!(eval(&[(IF_RANGE, "*")]), Outcome::Proceed { honour_range: false });
    }

    #[test]
    fn if_range() {
        use header::*;
        assert_eq!(eval(&[(IF_RANGE, "\"abc\"")]), PROCEED);
        assert_eq!(eval(&[(IF_RANGE, LM)]), PROCEED);
        let ignore = Outcome::Proceed { honour_range: false };
        assert_eq!(eval(&[(IF_RANGE, "\"x\"")]), ignore);
        assert_eq!(
            eval(&[(IF_RANGE, "W/\"abc\"")]),
            ignore,
            "weak tags never match If-Range"
        );
        assert_eq!(eval(&[(IF_RANGE, BEFORE)]), ignore);
        assert_eq!(eval(&[(IF_RANGE, "garbage")]), ignore);
    }
}
