//! Cache records: a step's cache key mapped to the image state it produced,
//! with the key's components so a miss can be explained.

use super::blobs::write_atomic;
use super::{Result, Store};
use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use std::fs;

/// A layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub size: u64,
}

/// The state of an image after a step: its layers and its config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageState {
    /// Layers, bottom first.
    pub layers: Vec<LayerRef>,
    /// The image config (history included).
    pub config: crate::image::config::ImageConfig,
}

/// What the index holds for one cache key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The key.
    pub key: Digest,
    /// A stable name for the step (`stage/index` and instruction), for explaining misses.
    pub step_id: String,
    /// The named components that went into the key.
    pub components: Vec<(String, String)>,
    /// The result.
    pub state: ImageState,
    /// Seconds since the epoch when recorded (for pruning oldest first).
    pub created: u64,
}

impl Store {
    fn record_path(&self, key: &Digest) -> std::path::PathBuf {
        self.root.join("cache").join(format!("{}.json", key.hex()))
    }

    /// Look up a key; a record whose layers are missing is treated as absent.
    pub fn get_record(&self, key: &Digest) -> Option<CacheRecord> {
        let data = fs::read(self.record_path(key)).ok()?;
        let rec: CacheRecord = serde_json::from_slice(&data).ok()?;
        let complete = rec
            .state
            .layers
            .iter()
            .all(|l| self.has_snapshot(&l.diff_id));
        (rec.key == *key && complete).then_some(rec)
    }

    /// Store a record (after its snapshots are in place).
    pub fn put_record(&self, rec: &CacheRecord) -> Result<()> {
        write_atomic(
            &self.record_path(&rec.key),
            &serde_json::to_vec(rec).expect("serialise cache record"),
        )
    }

    /// All records (for explaining misses, du and prune).
    pub fn records(&self) -> Vec<CacheRecord> {
        let Ok(rd) = fs::read_dir(self.root.join("cache")) else {
            return Vec::new();
        };
        rd.flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|d| serde_json::from_slice(&d).ok())
            .collect()
    }

    /// Records of the same step (by step id), newest first.
    pub fn records_for_step(&self, step_id: &str) -> Vec<CacheRecord> {
        let mut v: Vec<CacheRecord> = self
            .records()
            .into_iter()
            .filter(|r| r.step_id == step_id)
            .collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.created));
        v
    }
}
