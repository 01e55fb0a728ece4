//! `docker load`: images from an archive into the store. Docker archives
//! (`manifest.json`, from `docker save` of Docker 20 to 28) and OCI layout
//! archives (`index.json`), gzip/zstd/bzip2/xz-compressed or not.

mod import;
pub mod spool;

use crate::cache::{Store, StoreError};
use crate::digest::Digest;
use std::io::Read;

/// Errors of loading an archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The archive could not be read.
    #[error("reading the archive: {0}")]
    Read(String),
    /// An entry's path or link leaves the archive.
    #[error("archive entry {0:?} points outside the archive")]
    Path(String),
    /// A file the archive's index names is not in it.
    #[error("the archive has no file {0:?}")]
    Missing(String),
    /// Neither `manifest.json` nor `index.json`.
    #[error(
        "not an image archive: it has neither manifest.json (docker save) nor index.json (OCI layout)"
    )]
    NotAnArchive,
    /// Something in the archive is wrong.
    #[error("invalid archive: {0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An image loaded from an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Its ID (config digest).
    pub id: Digest,
    /// Its names (normalised); empty for an unnamed image.
    pub names: Vec<String>,
    /// Names that pointed at another image before, with that image's ID
    /// (Docker: "renaming the old one ... to empty string").
    pub replaced: Vec<(String, Digest)>,
}

/// Load every image of the archive read from `input` into the store and
/// name it. An image without a name is kept under its ID.
pub fn load_archive(store: &Store, input: impl Read) -> Result<Vec<Loaded>, ArchiveError> {
    let tmp = store.temp_dir("load")?;
    let spool = spool::Spool::read(input, tmp.path())?;
    let candidates = if spool.has("manifest.json") {
        import::docker_candidates(&spool)?
    } else if spool.has("index.json") {
        import::oci_candidates(&spool)?
    } else {
        return Err(ArchiveError::NotAnArchive);
    };
    let mut out = Vec::new();
    for c in &candidates {
        let id = import::import(store, &spool, c)?;
        let mut replaced = Vec::new();
        for n in &c.names {
            if let Some(old) = store.images().get(n).filter(|e| e.config != id) {
                replaced.push((n.clone(), old.config));
            }
            store.tag(n, id)?;
        }
        if c.names.is_empty() {
            store.tag(&id.to_string(), id)?;
        }
        // An image that lost its last name stays, without one (as Docker's).
        for (_, old) in &replaced {
            if !store.images().values().any(|e| e.config == *old) {
                store.tag(&old.to_string(), *old)?;
            }
        }
        out.push(Loaded {
            id,
            names: c.names.clone(),
            replaced,
        });
    }
    Ok(out)
}
