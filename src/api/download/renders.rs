//! Rendered variants kept in memory, by bytes (`variants.cache_max_bytes`): the source's name
//! and `ETag` are in the key, so a replaced source is a new variant and a stale render is never
//! served. Single flight: any number of simultaneous first requests for one variant wait for
//! one making of it (read from the stored tier, or rendered).

use std::sync::{Mutex, PoisonError};

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

/// Where an answer's bytes came from: rendered for this request (the one render of a herd),
/// read from storage (`variants.store`; rendered before, by any pod), or from memory (or from
/// the making another request of the herd started). Also the metrics' `tier` label.
pub(crate) use crate::metrics::VariantTier as Tier;

/// Why a variant could not be made.
#[derive(Debug, Clone)]
pub(crate) enum RenderError {
    /// The job failed.
    Job(JobError),
    /// It must be rendered, and this server does not process.
    NoProcessing,
}

impl From<JobError> for RenderError {
    fn from(e: JobError) -> RenderError {
        RenderError::Job(e)
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
                .support_invalidation_closures()
                .build(),
        }
    }

    /// The bytes of `key` from memory, or made by `make` (once for all who ask meanwhile),
    /// with the tier they came from; what failed is not kept.
    pub(crate) async fn get_or_make(
        &self,
        key: RenderKey,
        make: impl Future<Output = Result<(Bytes, Tier), RenderError>>,
    ) -> Result<(Bytes, Tier), RenderError> {
        let made = Mutex::new(None);
        let init = async {
            let (bytes, tier) = make.await?;
            *made.lock().unwrap_or_else(PoisonError::into_inner) = Some(tier);
            Ok(bytes)
        };
        let bytes = self
            .cache
            .try_get_with(key, init)
            .await
            .map_err(|shared: std::sync::Arc<RenderError>| (*shared).clone())?;
        let tier = made.into_inner().unwrap_or_else(PoisonError::into_inner);
        Ok((bytes, tier.unwrap_or(Tier::Memory)))
    }

    /// Forgets every rendered variant of `name` (their purge).
    pub(crate) fn forget(&self, name: &ObjectName) {
        let name = name.clone();
        // Only fails when closures are not enabled on the builder, and they are.
        let _ = self.cache.invalidate_entries_if(move |key, _| key.name == name);
    }
}
