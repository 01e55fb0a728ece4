//! Disk usage and pruning. Prune runs under the exclusive store lock, so no
//! build is using what it removes; it keeps everything reachable from image
//! names and from the cache records it keeps.

use super::{CacheRecord, Result, Store, io_err, remove_tree};
use crate::digest::Digest;
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::Path;

/// Sizes in the store.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Usage {
    /// Number and bytes of blobs.
    pub blobs: (usize, u64),
    /// Number and bytes of unpacked snapshots.
    pub snapshots: (usize, u64),
    /// Number of cache records.
    pub records: usize,
    /// Number of image names.
    pub images: usize,
}

impl Usage {
    /// Total bytes.
    pub fn total(&self) -> u64 {
        self.blobs.1 + self.snapshots.1
    }
}

fn tree_size(p: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

fn entries(dir: &Path) -> Vec<(String, std::path::PathBuf)> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .filter(|(n, _)| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

impl Store {
    /// What the store holds.
    pub fn usage(&self) -> Usage {
        let blobs = entries(&self.root.join("blobs/sha256"));
        let snaps = entries(&self.root.join("snapshots"));
        Usage {
            blobs: (
                blobs.len(),
                blobs
                    .iter()
                    .map(|(_, p)| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
                    .sum(),
            ),
            snapshots: (snaps.len(), snaps.iter().map(|(_, p)| tree_size(p)).sum()),
            records: self.records().len(),
            images: self.images().len(),
        }
    }

    /// An index, its manifests and their configs; the configs' layers.
    fn index_roots(
        &self,
        index: &Digest,
        blobs: &mut BTreeSet<Digest>,
        layers: &mut BTreeSet<Digest>,
    ) {
        let json = |d: &Digest| {
            self.read_blob(d)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .unwrap_or_default()
        };
        let digest = |v: &serde_json::Value| v["digest"].as_str()?.parse::<Digest>().ok();
        blobs.insert(*index);
        for m in json(index)["manifests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let Some(md) = digest(&m) else { continue };
            blobs.insert(md);
            let Some(cd) = digest(&json(&md)["config"]) else {
                continue;
            };
            blobs.insert(cd);
            let ids = json(&cd)["rootfs"]["diff_ids"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            layers.extend(
                ids.iter()
                    .filter_map(|d| d.as_str()?.parse::<Digest>().ok()),
            );
        }
    }

    /// Blobs and layers reachable from image names.
    fn image_roots(&self) -> (BTreeSet<Digest>, BTreeSet<Digest>) {
        let (mut blobs, mut layers) = (BTreeSet::new(), BTreeSet::new());
        for entry in self.images().values() {
            blobs.insert(entry.config);
            blobs.extend(entry.manifest);
            if let Some(index) = entry.index {
                self.index_roots(&index, &mut blobs, &mut layers);
            }
            if let Ok(cfg) = self.read_blob(&entry.config)
                && let Ok(cfg) = serde_json::from_slice::<serde_json::Value>(&cfg)
            {
                // Only the diff_ids matter here: read them without the image module.
                let ids = cfg["rootfs"]["diff_ids"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                layers.extend(
                    ids.iter()
                        .filter_map(|d| d.as_str()?.parse::<Digest>().ok()),
                );
            }
        }
        (blobs, layers)
    }

    /// Remove the step logs (`logs/<key>.log`) of keys no kept record has:
    /// failed steps' and pruned ones'.
    fn prune_logs(&self, kept: &[CacheRecord]) -> Result<()> {
        let keys: BTreeSet<String> = kept.iter().map(|r| r.key.hex()).collect();
        for (name, p) in entries(&self.logs_dir()) {
            let keep = name.strip_suffix(".log").is_some_and(|k| keys.contains(k));
            if !keep {
                fs::remove_file(&p).map_err(io_err("removing", &p))?;
            }
        }
        Ok(())
    }

    /// Remove the step pointers (`cache/steps/<id>`) whose record is gone,
    /// and with `all` the config-only steps' notes too.
    fn prune_step_pointers(&self, kept: &[CacheRecord], all: bool) -> Result<()> {
        let keys: BTreeSet<String> = kept.iter().map(|r| r.key.hex()).collect();
        for (name, p) in entries(&self.root.join("cache/steps")) {
            let keep = if name.ends_with(".note") {
                !all
            } else {
                fs::read_to_string(&p).is_ok_and(|k| keys.contains(k.trim()))
            };
            if !keep {
                fs::remove_file(&p).map_err(io_err("removing", &p))?;
            }
        }
        Ok(())
    }

    /// Remove cache records (all with `all`, else the oldest until the store
    /// fits in `keep_bytes`), then everything no longer reachable. Returns
    /// the bytes reclaimed. Call on a store opened with the exclusive lock.
    pub fn prune(&self, all: bool, keep_bytes: Option<u64>) -> Result<u64> {
        let before = self.usage().total();
        let mut records: Vec<CacheRecord> = self.records();
        records.sort_by_key(|r| r.created);
        let (image_blobs, image_layers) = self.image_roots();
        let layer_size: HashMap<Digest, u64> = records
            .iter()
            .flat_map(|r| r.layers.iter())
            .map(|l| {
                (
                    l.diff_id,
                    tree_size(&self.snapshot_path(&l.diff_id)) + l.size,
                )
            })
            .collect();
        let live_size = |recs: &[CacheRecord]| -> u64 {
            let mut set: BTreeSet<Digest> = image_layers.clone();
            for r in recs {
                set.extend(r.layers.iter().map(|l| l.diff_id));
            }
            set.iter()
                .map(|d| layer_size.get(d).copied().unwrap_or(0))
                .sum()
        };
        let mut drop_n = if all { records.len() } else { 0 };
        if let Some(limit) = keep_bytes {
            while drop_n < records.len() && live_size(&records[drop_n..]) > limit {
                drop_n += 1;
            }
        }
        for r in &records[..drop_n] {
            let p = self
                .root
                .join("cache")
                .join(format!("{}.json", r.key.hex()));
            let _ = fs::remove_file(p);
        }
        let kept = &records[drop_n..];
        // Reachable layers and blobs.
        let mut layers = image_layers;
        for r in kept {
            layers.extend(r.layers.iter().map(|l| l.diff_id));
        }
        let mut blobs = image_blobs;
        for l in &layers {
            for (d, _) in self.layer_blobs(l).blobs.values() {
                blobs.insert(*d);
            }
        }
        for r in kept {
            for (n, v) in &r.components {
                if n.starts_with("files:")
                    && let Ok(d) = v.parse()
                {
                    blobs.insert(d);
                }
            }
        }
        for (name, p) in entries(&self.root.join("snapshots")) {
            if Digest::from_hex(&name).is_none_or(|d| !layers.contains(&d)) {
                remove_tree(&p).map_err(io_err("removing", &p))?;
            }
        }
        for (name, p) in entries(&self.root.join("layers")) {
            let keep = name
                .strip_suffix(".json")
                .and_then(Digest::from_hex)
                .is_some_and(|d| layers.contains(&d));
            if !keep {
                fs::remove_file(&p).map_err(io_err("removing", &p))?;
            }
        }
        for (name, p) in entries(&self.root.join("blobs/sha256")) {
            if Digest::from_hex(&name).is_none_or(|d| !blobs.contains(&d)) {
                fs::remove_file(&p).map_err(io_err("removing", &p))?;
            }
        }
        self.prune_logs(kept)?;
        self.prune_step_pointers(kept, all)?;
        self.clear_step_locks();
        let tmp = self.root.join("tmp");
        for (_, p) in entries(&tmp) {
            let _ = remove_tree(&p);
        }
        let after = self.usage().total();
        Ok(before.saturating_sub(after))
    }
}

/// Parse a size like `10GB`, `512MiB`, `1g`, `1000000`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let n: f64 = s[..split].parse().ok()?;
    let unit = s[split..].trim().to_ascii_lowercase();
    let m: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0f64.powi(4),
        _ => return None,
    };
    Some((n * m) as u64)
}
