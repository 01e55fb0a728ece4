//! Context directories assembled once and shared. The directory a client's
//! file list makes is kept as `serve/contexts/<id>` (the id: a digest of
//! every entry as sent, with its path, kind, mode, mtime, content digest
//! and link target), so a rebuild of the same context, or another build of
//! it at the same time, reads that directory instead of copying every
//! file again (creating and deleting thousands of files per build is most
//! of a no-op build's time with a big context). Builds only read their
//! context (a writable bind mount of it gets a copy). The `KEEP` most
//! recently used directories stay; older ones no build uses are removed,
//! and all of them when the server starts.

use super::context_sync::{ContextCache, SyncError};
use super::wire::FileEntry;
use crate::digest::Digest;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Assembled contexts kept when no build uses them.
const KEEP: usize = 8;

/// Who uses which assembled context, and which were used last.
#[derive(Default)]
struct Uses {
    users: HashMap<String, usize>,
    recent: VecDeque<String>,
}

/// The assembled contexts under one directory.
pub struct Assembled {
    root: PathBuf,
    uses: Mutex<Uses>,
}

/// A context directory in use by one build; given back when dropped.
pub struct Lease {
    set: Arc<Assembled>,
    id: String,
    path: PathBuf,
}

impl Lease {
    /// The context directory (read it only).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SyncError + 'a {
    move |source| SyncError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

impl Assembled {
    /// The contexts under `root`: what an earlier server left is removed.
    pub fn open(root: &Path) -> Result<Arc<Assembled>, SyncError> {
        if root.exists() {
            crate::cache::remove_tree(root).map_err(io("removing", root))?;
        }
        std::fs::create_dir_all(root).map_err(io("creating", root))?;
        Ok(Arc::new(Assembled {
            root: root.to_path_buf(),
            uses: Mutex::default(),
        }))
    }

    /// The context of `files` (from `cache`), assembled unless a build
    /// already did. Call it on a blocking thread.
    pub fn get(
        self: &Arc<Self>,
        cache: &ContextCache,
        files: &[FileEntry],
    ) -> Result<Lease, SyncError> {
        let listed = serde_json::to_vec(files).unwrap_or_default();
        let id = Digest::of(&listed).hex();
        let path = self.root.join(&id);
        {
            let mut uses = self.uses.lock().unwrap_or_else(|e| e.into_inner());
            *uses.users.entry(id.clone()).or_default() += 1;
            uses.recent.retain(|r| *r != id);
            uses.recent.push_front(id.clone());
        }
        // From here on, dropping the lease gives the directory back.
        let lease = Lease {
            set: self.clone(),
            id,
            path,
        };
        if !lease.path.exists() {
            let tmp = tempfile::Builder::new()
                .prefix(".assembling-")
                .tempdir_in(&self.root)
                .map_err(io("creating a directory in", &self.root))?;
            let dir = tmp.path().join("context");
            std::fs::create_dir(&dir).map_err(io("creating", &dir))?;
            cache.assemble(&dir, files)?;
            // Another build of the same context may have been first: its
            // directory is as good, this one goes with `tmp`.
            if let Err(e) = std::fs::rename(&dir, &lease.path)
                && !lease.path.is_dir()
            {
                return Err(io("moving into place", &lease.path)(e));
            }
        }
        Ok(lease)
    }

    /// Remove the directories beyond the `KEEP` most recent that no build
    /// uses (moved aside under the lock, removed after it).
    fn trim(&self) {
        let mut gone = Vec::new();
        {
            let mut uses = self.uses.lock().unwrap_or_else(|e| e.into_inner());
            let Uses { users, recent } = &mut *uses;
            let mut kept = 0;
            recent.retain(|id| {
                let used = users.get(id).is_some_and(|n| *n > 0);
                kept += 1;
                if used || kept <= KEEP {
                    return true;
                }
                let aside = self.root.join(format!(".removing-{id}"));
                if std::fs::rename(self.root.join(id), &aside).is_ok() {
                    gone.push(aside);
                }
                false
            });
        }
        for dir in gone {
            let _ = crate::cache::remove_tree(&dir);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        {
            let mut uses = self.set.uses.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = uses.users.get_mut(&self.id) {
                *n -= 1;
                if *n == 0 {
                    uses.users.remove(&self.id);
                }
            }
        }
        self.set.trim();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, content: &[u8], cache: &ContextCache) -> FileEntry {
        let d = Digest::of(content);
        let (mut tmp, dest) = cache.upload_target(&d.to_string()).unwrap();
        std::io::Write::write_all(&mut tmp, content).unwrap();
        tmp.persist(dest).unwrap();
        FileEntry {
            path: path.into(),
            kind: "file".into(),
            mode: 0o644,
            mtime: (1, 0),
            digest: Some(d.to_string()),
            link: None,
        }
    }

    #[test]
    fn one_directory_per_context_reused_and_old_ones_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ContextCache::open(&dir.path().join("cache")).unwrap();
        let set = Assembled::open(&dir.path().join("contexts")).unwrap();
        let files = vec![entry("a", b"one", &cache)];
        let first = set.get(&cache, &files).unwrap();
        let ino = |l: &Lease| {
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(l.path().join("a")).unwrap())
        };
        let (path, inode) = (first.path().to_path_buf(), ino(&first));
        let again = set.get(&cache, &files).unwrap();
        assert_eq!((again.path(), ino(&again)), (path.as_path(), inode));
        assert_eq!(std::fs::read(path.join("a")).unwrap(), b"one");
        drop((first, again));
        for i in 0..KEEP {
            let other = vec![entry("a", format!("other {i}").as_bytes(), &cache)];
            drop(set.get(&cache, &other).unwrap());
        }
        assert!(
            !path.exists(),
            "the least recent of more than KEEP is removed"
        );
        let left = std::fs::read_dir(dir.path().join("contexts"))
            .unwrap()
            .count();
        assert_eq!(left, KEEP);
    }
}
