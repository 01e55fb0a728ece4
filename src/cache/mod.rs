//! The content store under `$RBUILD_ROOT`: blobs by sha256, unpacked layer
//! snapshots, cache records, image names, and the lock that makes concurrent
//! builds and prune safe. Every write is "temp file/dir in the same
//! filesystem, fsync, rename", so a crash leaves each object whole or absent.

mod blobs;
pub mod checksums;
pub mod gc;
mod images;
pub mod inflight;
mod locks;
mod records;

pub use blobs::BlobWriter;
pub use blobs::write_atomic as write_file_atomic;
pub use images::ImageEntry;
pub use locks::StepLock;
pub use records::{CacheRecord, LayerRef, StepNote};

use rustix::fs::{FlockOperation, flock};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A stored object is not what its name says.
    #[error("corrupt object {path}: {reason}")]
    Corrupt {
        /// Which object.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A name or reference is not in the store.
    #[error("{0}")]
    NotFound(String),
}

/// Result type of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// How the store lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Builds: many at once.
    Shared,
    /// Prune: alone.
    Exclusive,
}

/// An open store.
pub struct Store {
    root: PathBuf,
    _lock: File,
    /// Steps run by builds of this process sharing the store.
    flights: std::sync::Arc<inflight::Flights>,
    /// RUN slots shared by the builds on this store (`rbuild serve --max-runs`).
    run_slots: std::sync::OnceLock<std::sync::Arc<inflight::RunSlots>>,
}

/// The default store root: `$RBUILD_ROOT`, else `/var/lib/rbuild` for root,
/// else `$XDG_DATA_HOME/rbuild` (or `~/.local/share/rbuild`).
pub fn default_root() -> PathBuf {
    if let Some(r) = std::env::var_os("RBUILD_ROOT") {
        return PathBuf::from(r);
    }
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/rbuild");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(x).join("rbuild");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".local/share/rbuild")
}

impl Store {
    /// Open (creating if needed) the store at `root`, taking the lock. The
    /// root is private to its owner (0700, as Docker's /var/lib/docker): a
    /// setuid file in a snapshot or cache is then out of other users' reach.
    pub fn open(root: &Path, mode: LockMode) -> Result<Store> {
        make_private_root(root)?;
        for sub in [
            "blobs/sha256",
            "snapshots",
            "cache",
            "layers",
            "images",
            "tmp",
            "statcache",
            "logs",
        ] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(io_err("creating", &p))?;
        }
        let lock_path = root.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("opening", &lock_path))?;
        let op = match mode {
            LockMode::Shared => FlockOperation::LockShared,
            LockMode::Exclusive => FlockOperation::LockExclusive,
        };
        flock(&lock, op).map_err(|e| StoreError::Io {
            what: "locking",
            path: lock_path.clone(),
            source: e.into(),
        })?;
        let store = Store {
            root: root.to_path_buf(),
            _lock: lock,
            flights: Default::default(),
            run_slots: Default::default(),
        };
        store.clean_stale_tmp();
        Ok(store)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh temporary directory inside the store (same filesystem as the
    /// objects, so results can be renamed into place). Named with our PID so
    /// a later build can remove what a killed build left.
    pub fn temp_dir(&self, what: &str) -> Result<tempfile::TempDir> {
        let dir = self.root.join("tmp");
        tempfile::Builder::new()
            .prefix(&format!("{}-{what}-", std::process::id()))
            .tempdir_in(&dir)
            .map_err(io_err("creating temp dir in", &dir))
    }

    /// Remove temporary entries whose owning process is gone.
    fn clean_stale_tmp(&self) {
        let dir = self.root.join("tmp");
        let Ok(entries) = fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid: Option<i32> = name.split('-').next().and_then(|p| p.parse().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                let p = e.path();
                let _ = if p.is_dir() && !p.is_symlink() {
                    remove_tree(&p)
                } else {
                    fs::remove_file(&p)
                };
            }
        }
    }

    /// Directory of an unpacked layer.
    pub fn snapshot_path(&self, diff_id: &crate::digest::Digest) -> PathBuf {
        self.root.join("snapshots").join(diff_id.hex())
    }

    /// Whether an unpacked layer is present.
    pub fn has_snapshot(&self, diff_id: &crate::digest::Digest) -> bool {
        self.snapshot_path(diff_id).is_dir()
    }

    /// Move a fully written directory into place as the snapshot of `diff_id`.
    /// If another build got there first, ours is discarded.
    pub fn commit_snapshot(&self, dir: &Path, diff_id: &crate::digest::Digest) -> Result<PathBuf> {
        let dest = self.snapshot_path(diff_id);
        if dest.is_dir() {
            let _ = remove_tree(dir);
            return Ok(dest);
        }
        sync_tree(dir);
        match fs::rename(dir, &dest) {
            Ok(()) => {
                sync_dir(&self.root.join("snapshots"));
                Ok(dest)
            }
            Err(_) if dest.is_dir() => {
                let _ = remove_tree(dir);
                Ok(dest)
            }
            Err(e) => Err(io_err("renaming snapshot to", &dest)(e)),
        }
    }

    /// Directory for full build logs.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
}

/// Create `root` (and missing parents) mode 0700, or bring an existing root
/// we own to 0700.
fn make_private_root(root: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match fs::metadata(root) {
        Ok(m) => {
            let ours = m.uid() == rustix::process::geteuid().as_raw();
            if ours && m.mode() & 0o7777 != 0o700 {
                fs::set_permissions(root, fs::Permissions::from_mode(0o700))
                    .map_err(io_err("making private", root))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
            }
            match fs::DirBuilder::new().mode(0o700).create(root) {
                Ok(()) => Ok(()),
                // Created concurrently by another build: fix its mode.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => make_private_root(root),
                Err(e) => Err(io_err("creating", root)(e)),
            }
        }
        Err(e) => Err(io_err("opening", root)(e)),
    }
}

/// fsync a directory (so a rename in it is durable).
pub(crate) fn sync_dir(p: &Path) {
    if let Ok(f) = File::open(p) {
        let _ = f.sync_all();
    }
}

/// Make everything written below `root` durable. One `syncfs` of the store's
/// filesystem instead of an fsync per file: a snapshot of 20,000 files would
/// otherwise spend seconds in fsync.
fn sync_tree(root: &Path) {
    if let Ok(f) = File::open(root) {
        let _ = rustix::fs::syncfs(&f);
    }
}

/// Remove a directory tree, making read-only directories writable first.
pub fn remove_tree(p: &Path) -> io::Result<()> {
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            let mut stack = vec![p.to_path_buf()];
            while let Some(d) = stack.pop() {
                if let Ok(meta) = fs::symlink_metadata(&d)
                    && meta.is_dir()
                {
                    use std::os::unix::fs::PermissionsExt;
                    let _ = fs::set_permissions(&d, fs::Permissions::from_mode(0o755));
                    if let Ok(rd) = fs::read_dir(&d) {
                        stack.extend(rd.flatten().map(|e| e.path()));
                    }
                }
            }
            fs::remove_dir_all(p)
        }
    }
}
