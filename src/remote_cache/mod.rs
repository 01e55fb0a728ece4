//! Shared build cache through an OCI registry or an OCI layout directory
//! (`--cache-to`, `--cache-from`): the format ([`format`]), exporting a
//! build's records ([`export`]) and using imported ones ([`import`]) from
//! the solver's key lookup, through [`ImportedCache`].

pub mod export;
pub mod format;
pub mod import;
pub mod inline;
mod spec;

pub use export::{ExportSummary, export};
pub use import::{Imported, import};
pub use spec::{CacheFrom, CacheMode, CacheTarget, CacheTo, parse_cache_from, parse_cache_to};

use crate::cache::LayerRef;
use crate::digest::Digest;
use std::sync::Arc;

/// Errors of cache export and import.
#[derive(Debug, thiserror::Error)]
pub enum RemoteCacheError {
    /// A `--cache-to`/`--cache-from` value is not understood.
    #[error("invalid {flag} {spec:?}: {reason}")]
    Spec {
        /// The flag.
        flag: &'static str,
        /// The value.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// The cache is not in rbuild's format, or is damaged.
    #[error("{0}")]
    Format(String),
    /// Talking to the registry failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::cache::StoreError),
    /// Writing a layer blob failed.
    #[error(transparent)]
    Layer(#[from] crate::layer::LayerError),
    /// A file of a local cache.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> RemoteCacheError + 'a {
    move |source| RemoteCacheError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// A step the build went through (run or cached), for export.
#[derive(Debug, Clone, PartialEq)]
pub struct StepKey {
    /// The stage's index in the plan.
    pub stage: usize,
    /// The step's key.
    pub key: Digest,
    /// The named parts of the key.
    pub parts: Vec<(String, String)>,
    /// Whether the step makes a layer (has a cache record).
    pub makes_layer: bool,
}

/// A step found in an imported cache, its layers now in the store.
#[derive(Debug, Clone)]
pub struct ImportHit {
    /// The result's layers, bottom first (their snapshots are stored).
    pub layers: Vec<LayerRef>,
    /// The result's image config.
    pub config: serde_json::Value,
    /// Which `--cache-from` it came from.
    pub source: String,
    /// The record's named parts, as exported.
    pub parts: Vec<(String, String)>,
}

/// Caches imported for a build, consulted by the solver after the local store.
pub trait ImportedCache: Send + Sync {
    /// A layer step's result by key, with its layers fetched into `store`
    /// (verified against their digests). `Ok(None)`: not in any imported
    /// cache; `Err`: found but unusable (the step is then run).
    fn find(
        &self,
        store: &Arc<crate::cache::Store>,
        key: &Digest,
    ) -> Result<Option<ImportHit>, String>;

    /// Which imported cache, if any, holds the key of a config-only step.
    fn knows(&self, key: &Digest) -> Option<String>;

    /// Whether a hit leaves its layers in the cache's registry (BuildKit's
    /// lazy refs): the build's outputs are pushes that can mount them
    /// there. Else a hit fetches its layers at once.
    fn keeps_remote(&self) -> bool;

    /// Get the files of those `layers` that are not stored yet and that
    /// an imported cache holds (a layer left in its registry by a hit,
    /// needed now by a step that reads it); the layers, with their sizes.
    fn materialize(
        &self,
        store: &Arc<crate::cache::Store>,
        layers: &[LayerRef],
    ) -> Result<Vec<LayerRef>, String>;

    /// Download those compressed `blobs` that an imported cache holds (a
    /// push whose registry would not mount them); how many were fetched.
    fn fetch_blobs(
        &self,
        store: &Arc<crate::cache::Store>,
        blobs: &[Digest],
    ) -> Result<usize, String>;
}
