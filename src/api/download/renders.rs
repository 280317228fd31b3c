//! Rendered variants kept in memory, by bytes (`variants.cache_max_bytes`): the source's name
//! and `ETag` are in the key, so a replaced source is a new variant and a stale render is never
//! served. Single flight: any number of simultaneous first requests for one variant wait for
//! one render.

use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use moka::future::Cache;

use crate::{jobs::JobError, object_name::ObjectName};

/// What names a rendered variant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RenderKey {
    pub name: ObjectName,
    /// The source's `ETag` when the variant was asked for.
    pub source_etag: String,
    /// The variant's key (`w400.webp`).
    pub variant: String,
}

/// Where an answer's bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tier {
    /// Rendered for this request (the one render of a herd).
    Rendered,
    /// From memory, or from the render another request of the herd started.
    Memory,
}

impl Tier {
    /// The `tier` label of `image_variants_served_total`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Tier::Rendered => "rendered",
            Tier::Memory => "memory",
        }
    }
}

/// The memory tier of rendered variants.
pub(crate) struct Renders {
    cache: Cache<RenderKey, Bytes>,
}

impl Renders {
    /// At most `max_bytes` of rendered variants (0: none kept; herds still share a render).
    pub(crate) fn new(max_bytes: u64) -> Renders {
        Renders {
            cache: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, bytes: &Bytes| u32::try_from(bytes.len()).unwrap_or(u32::MAX))
                .build(),
        }
    }

    /// The bytes of `key` from memory, or made by `render` (once for all who ask meanwhile);
    /// a failed render is not kept.
    pub(crate) async fn get_or_render(
        &self,
        key: RenderKey,
        render: impl Future<Output = Result<Bytes, JobError>>,
    ) -> Result<(Bytes, Tier), JobError> {
        let rendered = AtomicBool::new(false);
        let init = async {
            rendered.store(true, Ordering::Relaxed);
            render.await
        };
        let bytes = self
            .cache
            .try_get_with(key, init)
            .await
            .map_err(|shared| (*shared).clone())?;
        let tier = if rendered.load(Ordering::Relaxed) {
            Tier::Rendered
        } else {
            Tier::Memory
        };
        Ok((bytes, tier))
    }
}
