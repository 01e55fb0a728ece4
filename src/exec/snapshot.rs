//! Snapshotters: how a RUN step's root filesystem is made from its parent
//! layers, and how its changes are read back as a diff in overlay's format
//! (whiteouts included). Two implementations, chosen per store:
//! [`Overlay`] (the parent layers as lowerdirs, the upper dir is the diff)
//! and [`Copy`] (the parent's files copied into the root, compared with
//! the parent afterwards), for filesystems where overlayfs is unavailable.

use crate::layer::view::MergedView;
use std::io;
use std::path::{Path, PathBuf};

/// The directories of one step: `upper`, `work` and `rootfs` under `dir`.
#[derive(Debug, Clone)]
pub struct StepDirs {
    /// The step's own directory.
    pub dir: PathBuf,
}

impl StepDirs {
    /// Make `upper`, `work`, `rootfs` and `empty` in `dir`.
    pub fn create(dir: &Path) -> io::Result<StepDirs> {
        for d in ["upper", "work", "rootfs", "empty"] {
            std::fs::create_dir(dir.join(d))?;
        }
        Ok(StepDirs {
            dir: dir.to_path_buf(),
        })
    }

    /// Where the step's changes end up.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    /// The step's root (an overlay mount point, or the copied files).
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
}

/// Makes a step's root from its parent and reads back its changes.
pub trait Snapshotter {
    /// Whether the sandbox copies the root instead of mounting an overlay.
    fn copies_rootfs(&self) -> bool;

    /// Prepare the root filesystem of a step on `parent`.
    fn prepare(&self, parent: &MergedView, dirs: &StepDirs) -> io::Result<()>;

    /// Where files placed before the step starts (a heredoc script) go so
    /// that the step sees them.
    fn writable_root(&self, dirs: &StepDirs) -> PathBuf;

    /// Leave the step's changes in `dirs.upper()`, in overlay's format,
    /// without the mount points the step did not create itself
    /// (`targets`: the step's mount targets).
    fn diff(&self, parent: &MergedView, dirs: &StepDirs, targets: &[String]) -> io::Result<()> {
        let upper = dirs.upper();
        let in_parent = |p: &str| parent.stat(&format!("/{p}")).is_some();
        super::clean_mountpoints(&upper, &in_parent);
        for target in targets {
            super::clean_created_path(&upper, target, &in_parent);
        }
        Ok(())
    }
}

/// overlayfs: the parent's layers are the lowerdirs; the upper dir is the diff.
pub struct Overlay;

impl Snapshotter for Overlay {
    fn copies_rootfs(&self) -> bool {
        false
    }

    fn prepare(&self, _parent: &MergedView, _dirs: &StepDirs) -> io::Result<()> {
        // The sandbox mounts the overlay itself.
        Ok(())
    }

    fn writable_root(&self, dirs: &StepDirs) -> PathBuf {
        dirs.upper()
    }
}

/// The copy snapshotter: the parent's files copied into the root, the diff
/// computed against the parent afterwards.
pub struct Copy;

impl Snapshotter for Copy {
    fn copies_rootfs(&self) -> bool {
        true
    }

    fn prepare(&self, parent: &MergedView, dirs: &StepDirs) -> io::Result<()> {
        super::copydiff::populate(parent, &dirs.rootfs())
    }

    fn writable_root(&self, dirs: &StepDirs) -> PathBuf {
        dirs.rootfs()
    }

    fn diff(&self, parent: &MergedView, dirs: &StepDirs, targets: &[String]) -> io::Result<()> {
        super::copydiff::diff_to_upper(parent, &dirs.rootfs(), &dirs.upper())?;
        Overlay.diff(parent, dirs, targets)
    }
}

/// The snapshotter for a store at `root`: overlayfs when it works there,
/// else the copy snapshotter, with the reason overlayfs was not usable.
pub fn for_store(root: &Path) -> (Box<dyn Snapshotter + Send + Sync>, Option<String>) {
    match super::copydiff::overlay_usable(root) {
        Ok(()) => (Box::new(Overlay), None),
        Err(reason) => (Box::new(Copy), Some(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view_of(dirs: &[&Path]) -> MergedView {
        let v: Vec<PathBuf> = dirs.iter().map(|p| p.to_path_buf()).collect();
        MergedView::from_bottom_up(&v)
    }

    #[test]
    fn the_copy_snapshotter_gives_the_changes_as_an_overlay_diff() {
        let t = tempfile::tempdir().unwrap();
        let layer = t.path().join("layer");
        std::fs::create_dir_all(layer.join("etc")).unwrap();
        std::fs::write(layer.join("etc/keep"), "k").unwrap();
        std::fs::write(layer.join("etc/gone"), "g").unwrap();
        let parent = view_of(&[&layer]);
        let step = t.path().join("step");
        std::fs::create_dir(&step).unwrap();
        let dirs = StepDirs::create(&step).unwrap();
        Copy.prepare(&parent, &dirs).unwrap();
        assert_eq!(
            std::fs::read_to_string(dirs.rootfs().join("etc/keep")).unwrap(),
            "k"
        );
        // What a step would do.
        std::fs::remove_file(dirs.rootfs().join("etc/gone")).unwrap();
        std::fs::write(dirs.rootfs().join("new"), "n").unwrap();
        std::fs::create_dir(dirs.rootfs().join("mnt")).unwrap();
        Copy.diff(&parent, &dirs, &["/mnt".to_string()]).unwrap();
        let upper = dirs.upper();
        assert_eq!(std::fs::read_to_string(upper.join("new")).unwrap(), "n");
        assert!(
            !upper.join("etc/keep").exists(),
            "unchanged files are not in the diff"
        );
        assert!(
            !upper.join("mnt").exists(),
            "a mount point the step did not make"
        );
        use std::os::unix::fs::FileTypeExt;
        let gone = std::fs::symlink_metadata(upper.join("etc/gone")).unwrap();
        assert!(
            gone.file_type().is_char_device(),
            "a deletion is a whiteout"
        );
    }

    #[test]
    fn overlay_writes_into_the_upper_dir() {
        let t = tempfile::tempdir().unwrap();
        let dirs = StepDirs::create(t.path()).unwrap();
        assert!(!Overlay.copies_rootfs() && Copy.copies_rootfs());
        assert_eq!(Overlay.writable_root(&dirs), dirs.upper());
        assert_eq!(Copy.writable_root(&dirs), dirs.rootfs());
    }
}
