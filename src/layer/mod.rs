//! Layers: deterministic tar from a diff directory, parallel compression,
//! unpacking into a diff directory, and a merged view over a layer stack.

pub mod commit;
pub mod compress;
pub mod extract;
pub mod tarball;
pub mod unpack;
pub mod view;

/// Errors of layer handling.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// Filesystem or archive I/O failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An archive entry would land outside its root.
    #[error("layer entry {0:?} escapes the layer root")]
    Escape(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::cache::StoreError),
}

pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> LayerError + 'a {
    move |source| LayerError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}
