//! The regular files of a COPY, written in parallel once every entry has
//! been placed. By then a later source may have replaced a directory on a
//! file's way with a link, so each file is created relative to a descriptor
//! of its directory opened with no link allowed anywhere on the way: a
//! planted link fails the step instead of leading out of the output.

use super::{CopyError, io_err, is_root};
use crate::context::Entry;
use crate::fsroot::{Root, file_type};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timespec, Timestamps};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// One regular file to copy.
pub(super) struct FileJob {
    /// The same file in the step's previous layer (relative to it), linked
    /// instead of copied.
    pub link_from: Option<String>,
    /// The source, opened inside its root (the context) when it has one.
    pub src: Entry,
    /// Where it goes (under the output); empty when a later entry replaced it.
    pub target: PathBuf,
    pub mode: u32,
    pub owner: (u32, u32),
    pub mtime: (i64, i64),
}

/// `dir/name` split at the last slash.
pub(super) fn split(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}

/// The directory holding `rel` in `root` (no link on the way) and the name.
pub(super) fn parent_nolinks<'a>(root: &Root, rel: &'a str) -> io::Result<(OwnedFd, &'a str)> {
    let (dir, name) = split(rel);
    Ok((root.open_dir_nolinks(dir)?, name))
}

/// Metadata of `rel` in `root` (no link followed anywhere).
pub(super) fn stat_nolinks(root: &Root, rel: &str) -> Option<Stat> {
    let (dir, name) = parent_nolinks(root, rel).ok()?;
    rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).ok()
}

/// Set the times of `rel` in the output, never through a link.
pub(super) fn set_times_nolinks(out: &Root, rel: &str, secs: i64, nanos: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: nanos as _,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    if let Ok((dir, name)) = parent_nolinks(out, rel) {
        let _ = rustix::fs::utimensat(&dir, name, &times, AtFlags::SYMLINK_NOFOLLOW);
    }
}

/// `path` relative to the root it lies in.
pub(super) fn rel_to(root: &Root, path: &Path) -> io::Result<String> {
    path.strip_prefix(root.path())
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|_| {
            io::Error::other(format!(
                "{} is outside {}",
                path.display(),
                root.path().display()
            ))
        })
}

impl FileJob {
    /// Link the previous layer's identical file, or copy: openat, copy,
    /// fchown, fchmod, futimens.
    pub(super) fn run(&self, out: &Root, previous: Option<&Root>) -> Result<(), CopyError> {
        let rel = rel_to(out, &self.target).map_err(io_err("creating", &self.target))?;
        let (dir, name) = parent_nolinks(out, &rel).map_err(io_err("creating", &self.target))?;
        if let (Some(from), Some(prev)) = (&self.link_from, previous)
            && let Ok((pdir, pname)) = parent_nolinks(prev, from)
            && rustix::fs::statat(&pdir, pname, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| file_type(&st) == FileType::RegularFile)
            && rustix::fs::linkat(&pdir, pname, &dir, name, AtFlags::empty()).is_ok()
        {
            return Ok(());
        }
        let fd = rustix::fs::openat(
            &dir,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io_err("creating", &self.target)(e.into()))?;
        let mut dst = std::fs::File::from(fd);
        // An empty file (or a socket's stub) has nothing to read.
        if self.src.size > 0 {
            let mut src = self.src.open().map_err(io_err("opening", &self.src.abs))?;
            io::copy(&mut src, &mut dst).map_err(io_err("copying to", &self.target))?;
        }
        // Owner first: chown clears setuid/setgid bits, which are kept.
        let (uid, gid) = self.owner;
        if is_root() || (uid, gid) != (0, 0) {
            std::os::unix::fs::fchown(&dst, Some(uid), Some(gid))
                .map_err(io_err("chown", &self.target))?;
        }
        rustix::fs::fchmod(&dst, Mode::from_raw_mode(self.mode))
            .map_err(|e| io_err("chmod", &self.target)(e.into()))?;
        let t = Timespec {
            tv_sec: self.mtime.0,
            tv_nsec: self.mtime.1 as _,
        };
        let times = Timestamps {
            last_access: t,
            last_modification: t,
        };
        rustix::fs::futimens(&dst, &times)
            .map_err(|e| io_err("setting times of", &self.target)(e.into()))?;
        Ok(())
    }
}
