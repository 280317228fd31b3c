//! `Cache-Control` for an image: configured (`http.cache_control`), or following the access.

use http::HeaderValue;

use crate::auth::Caller;

/// The `Cache-Control` policy for image responses.
#[derive(Debug, Clone, Default)]
pub struct CachePolicy {
    configured: Option<HeaderValue>,
}

impl CachePolicy {
    /// `configured` wins for every caller; `None` follows the access.
    pub fn new(configured: Option<HeaderValue>) -> CachePolicy {
        CachePolicy { configured }
    }

    /// The value for an image sent to `caller` at `now` (Unix seconds). Always `immutable`:
    /// names are never reused.
    pub fn for_caller(&self, caller: &Caller, now: u64) -> HeaderValue {
        if let Some(configured) = &self.configured {
            return configured.clone();
        }
        match caller {
            Caller::Anonymous => HeaderValue::from_static("public, max-age=31536000, immutable"),
            // SECURITY: a shared cache must not hand a key-protected image to anyone else.
            Caller::Key(_) => HeaderValue::from_static("private, max-age=31536000, immutable"),
            // Cacheable by URL (the URL is the credential), but not past its expiry.
            Caller::SignedUrl { expires } => {
                let left = expires.saturating_sub(now);
                HeaderValue::try_from(format!("public, max-age={left}, immutable"))
                    .unwrap_or(HeaderValue::from_static("no-cache"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::{Holder, Scope};

    #[test]
    fn follows_the_access_unless_configured() {
        let policy = CachePolicy::default();
        let holder = Holder {
            scope: Scope::Read,
            id: "0123456789abcdef".into(),
        };
        assert_eq!(
            policy.for_caller(&Caller::Anonymous, 0),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            policy.for_caller(&Caller::Key(holder), 0),
            "private, max-age=31536000, immutable"
        );
        assert_eq!(
            policy.for_caller(&Caller::SignedUrl { expires: 1_000 }, 400),
            "public, max-age=600, immutable"
        );
        assert_eq!(
            policy.for_caller(&Caller::SignedUrl { expires: 1_000 }, 2_000),
            "public, max-age=0, immutable"
        );
        let fixed = CachePolicy::new(Some(HeaderValue::from_static("no-store")));
        assert_eq!(fixed.for_caller(&Caller::Anonymous, 0), "no-store");
    }
}
