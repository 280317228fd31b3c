//! Why a version of a Secret cannot be used (it then keeps the last good value).

/// Why a version of a Secret cannot be used. SECURITY: names data keys, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The value of this data key is not UTF-8.
    #[error("data key `{0}` is not UTF-8")]
    NotUtf8(String),
    /// The access key id or secret under these data keys is empty.
    #[error("data keys `{0}` are empty")]
    EmptyPair(String),
    /// The value of this data key is empty.
    #[error("data key `{0}` is empty")]
    Empty(String),
    /// This data key is not in the Secret.
    #[error("data key `{0}` is missing")]
    MissingKey(String),
    /// None of these data key pairs is present.
    #[error("none of the data key pairs {0} is present")]
    NoPair(String),
}
