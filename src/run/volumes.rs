//! Volumes kept in the store, as Docker's `local` driver keeps them:
//! `<store>/volumes/NAME/_data` holds the data, `volume.json` what
//! `rbuild volume inspect` shows. A container using a volume holds a shared
//! lock on its `lock` file, so `rbuild volume rm` refuses a volume in use.
//! A new (empty) volume is filled from the image's content at its mount
//! path on first use, as Docker does, unless `nocopy` is asked.

use crate::layer::view::MergedView;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Errors of the volume store.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// No such volume.
    #[error("no such volume: {0}")]
    NotFound(String),
    /// A running container uses it.
    #[error("remove {0}: volume is in use")]
    InUse(String),
    /// A name Docker refuses.
    #[error(
        "{0:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
    )]
    BadName(String),
    /// Filesystem failure.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> VolumeError + 'a {
    move |source| VolumeError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// What `rbuild volume inspect` shows (Docker's field names).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeInfo {
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Always `local`.
    pub driver: String,
    /// Labels given at creation.
    pub labels: BTreeMap<String, String>,
    /// Where the data is on the host.
    pub mountpoint: PathBuf,
    /// The name.
    pub name: String,
    /// Driver options (none).
    pub options: BTreeMap<String, String>,
    /// Always `local`.
    pub scope: String,
    /// Created for one container (`-v /path`, an image's VOLUME).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
}

/// The volumes of a store.
pub struct Volumes {
    dir: PathBuf,
}

/// A volume a container uses: its data directory, locked while it lives.
pub struct InUse {
    /// The volume's name.
    pub name: String,
    /// Its data directory.
    pub data: PathBuf,
    _lock: File,
}

/// A random 64-hex-digit id (Docker's anonymous volume and container ids).
pub fn random_id() -> String {
    let mut b = [0u8; 32];
    if let Ok(mut f) = File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    hex::encode(b)
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    crate::image::config::rfc3339(secs)
}

impl Volumes {
    /// The volumes under the store root `root`.
    pub fn new(root: &Path) -> Volumes {
        Volumes {
            dir: root.join("volumes"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Create `name` (a random name when `None`); an existing volume is
    /// kept as it is (as `docker volume create` does).
    pub fn create(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
        anonymous: bool,
    ) -> Result<VolumeInfo, VolumeError> {
        let name = match name {
            Some(n) if !super::mount_spec::valid_volume_name(n) => {
                return Err(VolumeError::BadName(n.into()));
            }
            Some(n) => n.to_string(),
            None => random_id(),
        };
        if let Ok(v) = self.inspect(&name) {
            return Ok(v);
        }
        let dir = self.path(&name);
        let data = dir.join("_data");
        std::fs::create_dir_all(&data).map_err(io("creating", &data))?;
        let info = VolumeInfo {
            created_at: now_rfc3339(),
            driver: "local".into(),
            labels,
            mountpoint: data,
            name,
            options: BTreeMap::new(),
            scope: "local".into(),
            anonymous,
        };
        let meta = dir.join("volume.json");
        let json = serde_json::to_vec_pretty(&info).expect("serialise volume");
        crate::cache::write_file_atomic(&meta, &json).map_err(|e| VolumeError::Io {
            what: "writing",
            path: meta.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(info)
    }

    /// A volume's details.
    pub fn inspect(&self, name: &str) -> Result<VolumeInfo, VolumeError> {
        if !super::mount_spec::valid_volume_name(name) {
            return Err(VolumeError::NotFound(name.into()));
        }
        let meta = self.path(name).join("volume.json");
        let data = std::fs::read(&meta).map_err(|_| VolumeError::NotFound(name.into()))?;
        serde_json::from_slice(&data).map_err(|e| VolumeError::Io {
            what: "reading",
            path: meta,
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// Every volume, by name.
    pub fn list(&self) -> Vec<VolumeInfo> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<VolumeInfo> = rd
            .flatten()
            .filter_map(|e| self.inspect(&e.file_name().to_string_lossy()).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn lock_file(&self, name: &str) -> Result<File, VolumeError> {
        let p = self.path(name).join("lock");
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(io("opening", &p))
    }

    /// Remove a volume no running container uses.
    pub fn remove(&self, name: &str) -> Result<(), VolumeError> {
        self.inspect(name)?;
        let lock = self.lock_file(name)?;
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            return Err(VolumeError::InUse(name.into()));
        }
        let dir = self.path(name);
        // Out of sight first (one rename), then removed.
        let gone = self
            .dir
            .join(format!(".removing-{}-{name}", std::process::id()));
        std::fs::rename(&dir, &gone).map_err(io("removing", &dir))?;
        crate::cache::remove_tree(&gone).map_err(io("removing", &gone))
    }

    /// Take `name` for a container (creating it when missing). A volume
    /// whose data directory is empty is filled from `view` at `target`
    /// first, unless `nocopy`.
    pub fn acquire(
        &self,
        name: &str,
        anonymous: bool,
        view: &MergedView,
        target: &str,
        nocopy: bool,
    ) -> Result<InUse, VolumeError> {
        let info = self.create(Some(name), BTreeMap::new(), anonymous)?;
        // Shared while the container runs: `remove` needs it exclusive.
        let lock = self.lock_file(name)?;
        let _ = rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockShared);
        let data = info.mountpoint.clone();
        let empty = || {
            std::fs::read_dir(&data)
                .map(|mut r| r.next().is_none())
                .unwrap_or(false)
        };
        if !nocopy && empty() {
            // One container fills it; another one starting meanwhile waits.
            let p = self.path(name).join("fill.lock");
            let fill = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&p)
                .map_err(io("opening", &p))?;
            let _ = rustix::fs::flock(&fill, rustix::fs::FlockOperation::LockExclusive);
            let rel = view.resolve(target, true);
            if empty() && view.lookup_exact(&rel).is_some_and(|(_, m)| m.is_dir()) {
                crate::exec::copydiff::populate_dir(view, &rel, &data)
                    .map_err(io("filling the volume from the image at", &data))?;
            }
        }
        Ok(InUse {
            name: name.to_string(),
            data,
            _lock: lock,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_inspect_remove() {
        let d = tempfile::tempdir().unwrap();
        let v = Volumes::new(d.path());
        let a = v.create(Some("data"), BTreeMap::new(), false).unwrap();
        assert_eq!(a.mountpoint, d.path().join("volumes/data/_data"));
        assert!(a.mountpoint.is_dir());
        let anon = v.create(None, BTreeMap::new(), true).unwrap();
        assert_eq!(anon.name.len(), 64);
        let names: Vec<String> = v.list().into_iter().map(|i| i.name).collect();
        assert!(names.contains(&"data".to_string()) && names.contains(&anon.name));
        assert!(matches!(
            v.create(Some("bad/name"), BTreeMap::new(), false),
            Err(VolumeError::BadName(_))
        ));
        // In use: refused; released: removed.
        let empty = MergedView::default();
        let held = v.acquire("data", false, &empty, "/x", false).unwrap();
        assert!(matches!(v.remove("data"), Err(VolumeError::InUse(_))));
        drop(held);
        v.remove("data").unwrap();
        assert!(matches!(v.inspect("data"), Err(VolumeError::NotFound(_))));
        assert!(!d.path().join("volumes/data").exists());
    }

    #[test]
    fn a_new_volume_is_filled_from_the_image_once() {
        let d = tempfile::tempdir().unwrap();
        let layer = d.path().join("layer");
        std::fs::create_dir_all(layer.join("srv/sub")).unwrap();
        std::fs::write(layer.join("srv/sub/f"), "image").unwrap();
        let view = MergedView::from_bottom_up(&[layer]);
        let v = Volumes::new(&d.path().join("store"));
        let u = v.acquire("vol", false, &view, "/srv", false).unwrap();
        assert_eq!(
            std::fs::read_to_string(u.data.join("sub/f")).unwrap(),
            "image"
        );
        std::fs::write(u.data.join("sub/f"), "changed").unwrap();
        drop(u);
        let u = v.acquire("vol", false, &view, "/srv", false).unwrap();
        assert_eq!(
            std::fs::read_to_string(u.data.join("sub/f")).unwrap(),
            "changed"
        );
        let n = v.acquire("nocopy", false, &view, "/srv", true).unwrap();
        assert!(std::fs::read_dir(&n.data).unwrap().next().is_none());
    }
}
