//! Cache records: a step's cache key mapped to the layers and config it
//! produced (the config as opaque JSON: the store holds bytes and records),
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

/// What the index holds for one cache key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The key.
    pub key: Digest,
    /// A stable name for the step (`stage/index` and instruction), for explaining misses.
    pub step_id: String,
    /// The named components that went into the key.
    pub components: Vec<(String, String)>,
    /// The result's layers, bottom first.
    pub layers: Vec<LayerRef>,
    /// The result's image config (JSON; the store does not read it).
    pub config: serde_json::Value,
    /// Seconds since the epoch when recorded (for pruning oldest first).
    pub created: u64,
}

/// The key a config-only step had last time (no image state: such steps
/// are folded into the config, never looked up), kept to explain a change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepNote {
    /// The key.
    pub key: Digest,
    /// Its named components.
    pub components: Vec<(String, String)>,
}

impl Store {
    fn record_path(&self, key: &Digest) -> std::path::PathBuf {
        self.root.join("cache").join(format!("{}.json", key.hex()))
    }

    /// Look up a key; a record whose layers are missing is treated as absent.
    pub fn get_record(&self, key: &Digest) -> Option<CacheRecord> {
        let data = fs::read(self.record_path(key)).ok()?;
        let rec: CacheRecord = serde_json::from_slice(&data).ok()?;
        let complete = rec.layers.iter().all(|l| self.has_snapshot(&l.diff_id));
        (rec.key == *key && complete).then_some(rec)
    }

    /// The record of `key` even when its layers' files are not all stored
    /// (a step taken from an imported cache whose layers stayed in its
    /// registry): for exporters, which reference such layers' blobs.
    pub fn record_for_export(&self, key: &Digest) -> Option<CacheRecord> {
        let data = fs::read(self.record_path(key)).ok()?;
        let rec: CacheRecord = serde_json::from_slice(&data).ok()?;
        (rec.key == *key).then_some(rec)
    }

    /// Store a record (after its snapshots are in place).
    pub fn put_record(&self, rec: &CacheRecord) -> Result<()> {
        write_atomic(
            &self.record_path(&rec.key),
            &serde_json::to_vec(rec).expect("serialise cache record"),
        )?;
        // The step's latest record, so a miss finds it without reading every record.
        let dir = self.root.join("cache/steps");
        std::fs::create_dir_all(&dir).map_err(super::io_err("creating", &dir))?;
        write_atomic(&self.step_pointer(&rec.step_id), rec.key.hex().as_bytes())
    }

    fn step_pointer(&self, step_id: &str) -> std::path::PathBuf {
        self.root
            .join("cache/steps")
            .join(Digest::of(step_id.as_bytes()).hex())
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

    /// The newest record of a step (by step id), if it is still in the store.
    pub fn latest_record_for_step(&self, step_id: &str) -> Option<CacheRecord> {
        let hex = fs::read_to_string(self.step_pointer(step_id)).ok()?;
        let data = fs::read(self.record_path(&Digest::from_hex(hex.trim())?)).ok()?;
        let rec: CacheRecord = serde_json::from_slice(&data).ok()?;
        (rec.step_id == step_id).then_some(rec)
    }

    /// The note of a config-only step, by step id.
    pub fn step_note(&self, step_id: &str) -> Option<StepNote> {
        let data = fs::read(self.step_pointer(step_id).with_extension("note")).ok()?;
        serde_json::from_slice(&data).ok()
    }

    /// Whether a config-only step of this key was done before in this
    /// store, by any build (whatever its context directory or Dockerfile).
    pub fn config_key_seen(&self, key: &Digest) -> bool {
        self.config_key_marker(key).exists()
    }

    /// Remember that a config-only step of this key was done.
    pub fn note_config_key(&self, key: &Digest) -> Result<()> {
        let dir = self.root.join("cache/steps");
        std::fs::create_dir_all(&dir).map_err(super::io_err("creating", &dir))?;
        write_atomic(&self.config_key_marker(key), b"")
    }

    /// `cache/steps/config-<key>.note` (kept by prune as notes are).
    fn config_key_marker(&self, key: &Digest) -> std::path::PathBuf {
        self.root
            .join("cache/steps")
            .join(format!("config-{}.note", key.hex()))
    }

    /// Replace the note of a config-only step.
    pub fn put_step_note(&self, step_id: &str, note: &StepNote) -> Result<()> {
        let dir = self.root.join("cache/steps");
        std::fs::create_dir_all(&dir).map_err(super::io_err("creating", &dir))?;
        let data = serde_json::to_vec(note).expect("serialise step note");
        write_atomic(&self.step_pointer(step_id).with_extension("note"), &data)
    }
}
