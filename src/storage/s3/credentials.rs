//! The access key pair the S3 backend signs with, wherever it comes from (configuration, a
//! Kubernetes Secret through a watch channel, or the AWS default chain).

use std::fmt;

use crate::config::Secret;

/// An access key pair. SECURITY: `Debug` shows the key id only.
#[derive(Clone)]
pub struct S3Credentials {
    /// The access key id (not secret: `Debug` shows it).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S3Credentials({}, [redacted])", self.access_key_id)
    }
}
