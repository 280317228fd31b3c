//! Access control: every download and upload passes `AccessControl::authorize` before its
//! handler runs. API keys (`X-API-Key`) with scopes, and signed expiring download URLs.

pub(crate) mod keys;
pub mod signing;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use http::HeaderMap;
use tokio::sync::watch;

use crate::{
    clock::unix_now,
    config::{AuthMode, Settings},
    object_name::ObjectName,
};
use keys::{Holder, KeyEntryError, KeyPublisher, KeySet, KeyStore, Scope};
use signing::{SignatureError, SignedParams, UrlSigner};

pub(crate) const API_KEY_HEADER: &str = "x-api-key";

/// How often the API-key file is checked for changes.
const KEY_FILE_POLL: Duration = Duration::from_secs(2);

/// What a request asks to do.
pub(crate) enum Need<'a> {
    /// Read one stored image, or one variant of it (its key, `w400.webp`): a key with the
    /// read scope, or a signed URL for that name and that variant.
    Download {
        name: &'a ObjectName,
        variant: Option<&'a str>,
        query: Option<&'a str>,
    },
    /// Store an image: the write scope.
    Upload,
    /// Drop an image's rendered variants: the write scope.
    PurgeVariants,
    /// Run an operation (`POST /v1/image/{operation}`): the write scope, as its result may be
    /// stored and its source may be any stored object.
    Process,
}

/// Why access was refused; each has a metric label and maps to one HTTP error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthError {
    #[error("no API key")]
    MissingKey,
    #[error("unknown API key")]
    UnknownKey,
    #[error("this API key has the {} scope; this request needs {}", has.as_str(), needs.as_str())]
    Scope { has: Scope, needs: Scope },
    #[error(transparent)]
    Signature(SignatureError),
}

impl AuthError {
    /// Whether a credential was presented and is wrong (an unknown key, a bad, expired or
    /// malformed signature): a guess, counted against the client's failure budget. A missing
    /// key or a key with too small a scope is not.
    pub(crate) fn is_wrong_credential(&self) -> bool {
        matches!(self, AuthError::UnknownKey | AuthError::Signature(_))
    }
}

/// Who is asking, once allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// `auth.mode = none`.
    Anonymous,
    /// A valid API key with the needed scope.
    Key(Holder),
    /// A download through a valid signed URL, good until `expires` (Unix seconds).
    SignedUrl { expires: u64 },
}

pub(crate) struct AccessControl {
    mode: AuthMode,
    keys: KeyStore,
    signer: Option<UrlSigner>,
}

impl AccessControl {
    /// Builds access control from configuration, reading the key file once; the returned
    /// [`KeySources`] (fed by [`watch_key_file`] and the Secret watcher) swaps in new keys later.
    pub(crate) fn new(settings: &Settings) -> Result<(AccessControl, Arc<KeySources>), KeyFileError> {
        let config = &settings.auth;
        let inline = KeySet::from_entries(&config.api_keys);
        let file = match &config.api_keys_file {
            Some(path) => read_key_file(path)?,
            None => KeySet::default(),
        };
        let (keys, publisher) = KeyStore::new(inline.union(&file));
        let sources = Arc::new(KeySources {
            inline,
            file: Mutex::new(file),
            secret: Mutex::new(KeySet::default()),
            publisher,
        });
        let access = AccessControl {
            mode: config.mode,
            keys,
            signer: UrlSigner::new(&config.url_signing_keys),
        };
        Ok((access, sources))
    }

    pub(crate) fn signer(&self) -> Option<&UrlSigner> {
        self.signer.as_ref()
    }

    /// Malformed signed-URL parameters are always refused. Then a request with an API key is
    /// judged by its key; a download without one may be judged by its signed URL; with
    /// `auth.mode = none` everything else is allowed.
    pub(crate) fn authorize(&self, need: Need<'_>, headers: &HeaderMap) -> Result<Caller, AuthError> {
        if let Need::Download { name, variant, query } = &need {
            let params = SignedParams::from_query(*query).map_err(AuthError::Signature)?;
            if let (Some(params), false) = (params, headers.contains_key(API_KEY_HEADER)) {
                let signer = self
                    .signer
                    .as_ref()
                    .ok_or(AuthError::Signature(SignatureError::Invalid))?;
                signer
                    .verify_for(name, *variant, &params, unix_now())
                    .map_err(AuthError::Signature)?;
                return Ok(Caller::SignedUrl {
                    expires: params.expires,
                });
            }
        }
        if self.mode == AuthMode::None {
            return Ok(Caller::Anonymous);
        }
        let mut presented = headers.get_all(API_KEY_HEADER).iter();
        let key = match (presented.next(), presented.next()) {
            (Some(value), None) => value.to_str().map_err(|_| AuthError::UnknownKey)?,
            (None, _) => return Err(AuthError::MissingKey),
            (Some(_), Some(_)) => return Err(AuthError::UnknownKey),
        };
        let holder = self.keys.current().find(key.trim()).ok_or(AuthError::UnknownKey)?;
        let needed = match need {
            Need::Download { .. } => Scope::Read,
            Need::Upload | Need::Process | Need::PurgeVariants => Scope::Write,
        };
        if holder.scope < needed {
            return Err(AuthError::Scope {
                has: holder.scope,
                needs: needed,
            });
        }
        Ok(Caller::Key(holder))
    }
}

/// The key file cannot be used. SECURITY: errors name the file and the line number, never a
/// line's content.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file cannot be read.
    #[error("auth.api_keys_file: cannot read {path}: {source}")]
    Read {
        /// The file, as configured.
        path: String,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// A line of the file is not a usable key.
    #[error("auth.api_keys_file {path}: {source}")]
    Entry {
        /// The file, as configured.
        path: String,
        /// Which line (its number; comments and blank lines counted).
        source: KeyEntryError,
    },
}

fn read_key_file(path: &Path) -> Result<KeySet, KeyFileError> {
    let shown = || path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read { path: shown(), source })?;
    KeySet::parse(text.lines()).map_err(|source| KeyFileError::Entry { path: shown(), source })
}

fn file_version(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The key sources (configuration, key file, Secret), published together as one set.
pub(crate) struct KeySources {
    inline: KeySet,
    file: Mutex<KeySet>,
    secret: Mutex<KeySet>,
    publisher: KeyPublisher,
}

impl KeySources {
    pub(crate) fn set_file(&self, keys: KeySet) {
        *self.file.lock().unwrap_or_else(|p| p.into_inner()) = keys;
        self.publish();
    }

    pub(crate) fn set_secret(&self, keys: KeySet) {
        *self.secret.lock().unwrap_or_else(|p| p.into_inner()) = keys;
        self.publish();
    }

    fn publish(&self) {
        let file = self.file.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let secret = self.secret.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.publisher.publish(self.inline.union(&file).union(&secret));
    }

    /// True once no [`KeyStore`] reads the keys any more.
    pub(crate) fn is_closed(&self) -> bool {
        self.publisher.is_closed()
    }

    /// Applies every key set published on `secret` (the Kubernetes Secret's watch channel),
    /// until the channel closes or no [`KeyStore`] reads the keys any more.
    pub(crate) async fn follow_secret(self: Arc<Self>, mut secret: watch::Receiver<Option<KeySet>>) {
        loop {
            let keys = secret.borrow_and_update().clone();
            if let Some(keys) = keys {
                self.set_secret(keys);
            }
            tokio::select! {
                changed = secret.changed() => if changed.is_err() { return },
                () = self.publisher.closed() => return,
            }
        }
    }
}

/// Reloads the key file when it changes (polled). It fails closed: invalid lines are skipped
/// (and logged by number), so a key removed in the same edit is still revoked; a file that
/// vanishes or cannot be read revokes every key it held. Ends when every reader of the key
/// store is gone.
pub(crate) async fn watch_key_file(path: PathBuf, sources: Arc<KeySources>) {
    let mut seen = file_version(&path);
    loop {
        tokio::time::sleep(KEY_FILE_POLL).await;
        if sources.is_closed() {
            return;
        }
        let version = file_version(&path);
        if version == seen {
            continue;
        }
        seen = version;
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let (keys, invalid) = KeySet::parse_skipping(text.lines());
                for e in &invalid {
                    tracing::warn!(file = %path.display(), error = %e, "skipping an invalid line of the API-key file");
                }
                tracing::info!(file = %path.display(), keys = keys.len(), skipped = invalid.len(), "reloaded API keys");
                sources.set_file(keys);
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read the API-key file; revoking every key it held");
                sources.set_file(KeySet::default());
            }
        }
    }
}
