//! Image names in the local store: `name:tag` → image ID (the config
//! digest, as Docker's image store). Layers stay uncompressed snapshots until
//! an export needs blobs, as in Docker's own store.

use super::blobs::write_atomic;
use super::{Result, Store, StoreError, io_err};
use crate::digest::Digest;
use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;

/// One named image. An image kept without a name (loaded from an archive
/// that names none: Docker's dangling `<none>:<none>`) is stored under its
/// own ID (`sha256:<hex>`) as the name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageEntry {
    /// The image ID: digest of the config blob.
    pub config: Digest,
    /// Seconds since the epoch when tagged.
    pub created: u64,
    /// For a pulled image: the platform manifest's digest (kept in the
    /// store; the image's identity in cache keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Digest>,
    /// The manifest digest this name was last pushed as (Docker's
    /// RepoDigests for a pushed image); not the image's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed: Option<Digest>,
    /// For a multi-platform build: the image index (stored, with every
    /// platform's manifest) the name was built as; `config` is this
    /// machine's image of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Digest>,
}

impl Store {
    fn images_file(&self) -> std::path::PathBuf {
        self.root.join("images/index.json")
    }

    /// All names.
    pub fn images(&self) -> BTreeMap<String, ImageEntry> {
        fs::read(self.images_file())
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default()
    }

    /// Point `name` at an image ID (read-modify-write under a file lock).
    pub fn tag(&self, name: &str, config: Digest) -> Result<()> {
        self.tag_entry(name, config, None)
    }

    /// Point `name` at a pulled image: its config and manifest.
    pub fn tag_pulled(&self, name: &str, config: Digest, manifest: Digest) -> Result<()> {
        self.tag_entry(name, config, Some(manifest))
    }

    /// Point `name` at a multi-platform image: this machine's config and
    /// the stored index over every platform's manifest.
    pub fn tag_index(&self, name: &str, config: Digest, index: Digest) -> Result<()> {
        self.tag_entry(name, config, None)?;
        let _lock = self.lock_names()?;
        let mut all = self.images();
        match all.get_mut(name) {
            Some(e) if e.index == Some(index) => return Ok(()),
            Some(e) => e.index = Some(index),
            None => return Ok(()),
        }
        write_atomic(
            &self.images_file(),
            &serde_json::to_vec_pretty(&all).expect("serialise images"),
        )
    }

    /// Take the names file's lock (held until the returned file is dropped).
    fn lock_names(&self) -> Result<fs::File> {
        let lock_path = self.root.join("images/lock");
        let lock = fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("opening", &lock_path))?;
        flock(&lock, FlockOperation::LockExclusive).map_err(|e| StoreError::Io {
            what: "locking",
            path: lock_path.clone(),
            source: e.into(),
        })?;
        Ok(lock)
    }

    /// Remove names (read-modify-write under the names lock); returns the
    /// entries that were removed. Unknown names are skipped.
    pub fn untag(&self, names: &[String]) -> Result<Vec<(String, ImageEntry)>> {
        let _lock = self.lock_names()?;
        let mut all = self.images();
        let removed: Vec<(String, ImageEntry)> = names
            .iter()
            .filter_map(|n| all.remove(n).map(|e| (n.clone(), e)))
            .collect();
        if !removed.is_empty() {
            write_atomic(
                &self.images_file(),
                &serde_json::to_vec_pretty(&all).expect("serialise images"),
            )?;
        }
        Ok(removed)
    }

    /// Record that `name` was pushed as `manifest` (if it still names
    /// `config`).
    pub fn set_pushed(&self, name: &str, config: Digest, manifest: Digest) -> Result<()> {
        let _lock = self.lock_names()?;
        let mut all = self.images();
        match all.get_mut(name) {
            Some(e) if e.config == config && e.pushed != Some(manifest) => {
                e.pushed = Some(manifest)
            }
            _ => return Ok(()),
        }
        write_atomic(
            &self.images_file(),
            &serde_json::to_vec_pretty(&all).expect("serialise images"),
        )
    }

    fn tag_entry(&self, name: &str, config: Digest, manifest: Option<Digest>) -> Result<()> {
        if self
            .images()
            .get(name)
            .is_some_and(|e| e.config == config && e.manifest == manifest && e.index.is_none())
        {
            return Ok(()); // unchanged: no rewrite, no fsync
        }
        let _lock = self.lock_names()?;
        let mut all = self.images();
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // A named image is no longer dangling (see `ImageEntry`).
        all.remove(&config.to_string());
        all.insert(
            name.to_string(),
            ImageEntry {
                config,
                created,
                manifest,
                pushed: None,
                index: None,
            },
        );
        write_atomic(
            &self.images_file(),
            &serde_json::to_vec_pretty(&all).expect("serialise images"),
        )
    }

    /// The image ID of a name.
    pub fn resolve_image(&self, name: &str) -> Option<Digest> {
        self.images().get(name).map(|e| e.config)
    }
}
