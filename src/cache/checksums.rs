//! Remembered content digests of files in snapshots. A snapshot never
//! changes once committed (its directory is named by its diff_id), so the
//! digest of one of its files, found once, holds for every later build, as
//! BuildKit caches checksums per ref: `COPY --from` does not re-read a
//! stage's files on every build. Kept in one file, `checksums.json`,
//! replaced atomically; entries of removed snapshots are dropped on save.

use super::Store;
use crate::digest::Digest;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The digests of snapshot files, by `path\0size\0mtime`.
pub struct Checksums {
    file: PathBuf,
    snapshots: PathBuf,
    map: Mutex<(HashMap<String, String>, bool)>,
}

impl Checksums {
    /// Load the store's remembered digests (none when the file is missing or unreadable).
    pub fn open(store: &Store) -> Checksums {
        let file = store.root().join("checksums.json");
        let map = std::fs::read(&file)
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default();
        Checksums {
            file,
            snapshots: store.root().join("snapshots"),
            map: Mutex::new((map, false)),
        }
    }

    /// The digest remembered for `key`.
    pub fn get(&self, key: &str) -> Option<Digest> {
        let m = self.map.lock().ok()?;
        m.0.get(key).and_then(|v| v.parse().ok())
    }

    /// Remember `digest` for `key`.
    pub fn put(&self, key: String, digest: Digest) {
        if let Ok(mut m) = self.map.lock() {
            m.0.insert(key, digest.to_string());
            m.1 = true;
        }
    }

    /// Write the map back if it changed, without entries of snapshots that
    /// are gone. Best effort: a lost write only costs a re-hash.
    pub fn save(&self) {
        let Ok(mut m) = self.map.lock() else { return };
        if !m.1 {
            return;
        }
        let mut present: HashMap<PathBuf, bool> = HashMap::new();
        let snapshots = &self.snapshots;
        m.0.retain(|k, _| {
            let path = Path::new(k.split('\0').next().unwrap_or(""));
            let Ok(rel) = path.strip_prefix(snapshots) else {
                return false;
            };
            let Some(first) = rel.components().next() else {
                return false;
            };
            let dir = snapshots.join(first);
            *present.entry(dir.clone()).or_insert_with(|| dir.is_dir())
        });
        if let Ok(data) = serde_json::to_vec(&m.0)
            && super::blobs::write_atomic(&self.file, &data).is_ok()
        {
            m.1 = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::LockMode;

    #[test]
    fn remembers_digests_and_forgets_removed_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), LockMode::Shared).unwrap();
        let snaps = store.root().join("snapshots");
        std::fs::create_dir_all(snaps.join("aaa")).unwrap();
        let kept = format!("{}\0 1\01.0", snaps.join("aaa/f").display());
        let gone = format!("{}\0 1\01.0", snaps.join("bbb/f").display());
        let m = Checksums::open(&store);
        m.put(kept.clone(), Digest::of(b"a"));
        m.put(gone.clone(), Digest::of(b"b"));
        m.save();
        let again = Checksums::open(&store);
        assert_eq!(again.get(&kept), Some(Digest::of(b"a")));
        assert_eq!(again.get(&gone), None, "bbb is not a snapshot");
    }
}
