//! Tar archives written inside a root: image layers into a snapshot, and
//! `ADD` archives into their destination. Every entry is created relative to
//! the descriptor of its parent directory, resolved inside the root (see
//! [`crate::fsroot`]): an entry that goes through a symlink, absolute or
//! relative, lands inside the root, as if extracted in a chroot there, the
//! way Docker extracts archives. Nothing is written through the host's own
//! path resolution.

use super::{LayerError, io_err};
use crate::fsroot::{Root, file_type};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::Path;

/// How entries are written.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// An image layer: `.wh.name` becomes an overlay whiteout (a 0/0
    /// character device, or stays a `.wh.` file without `mknod`) and
    /// `.wh..wh..opq` the opaque xattr on its directory.
    pub layer: bool,
    /// Keep the archive's owners (only root may).
    pub preserve_owner: bool,
    /// Give every entry this owner instead (`ADD --chown`).
    pub owner: Option<(u32, u32)>,
    /// Device nodes may be created (root).
    pub mknod: bool,
}

/// Where an entry's directory is: a descriptor of the directory that holds
/// `dir_rel` (relative to the extraction root), created when missing.
pub trait Parents {
    /// The directory `dir_rel` ("" for the root).
    fn parent_dir(&mut self, dir_rel: &str) -> io::Result<OwnedFd>;
    /// An entry changed what paths resolve to (a link was made or removed).
    fn changed(&mut self) {}
}

/// Parents resolved inside the root alone (an empty destination).
pub struct InRoot<'a>(pub &'a Root);

impl Parents for InRoot<'_> {
    fn parent_dir(&mut self, dir_rel: &str) -> io::Result<OwnedFd> {
        self.0.mkdir_all(dir_rel, 0o755)
    }
}

/// The entry's path cleaned: no leading slash, `.` dropped; `..` that would
/// climb above the root is refused.
fn entry_rel(path: &Path) -> Result<String, LayerError> {
    let mut out: Vec<String> = Vec::new();
    for c in path.to_string_lossy().split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(LayerError::Escape(path.display().to_string()));
                }
            }
            n => out.push(n.to_string()),
        }
    }
    Ok(out.join("/"))
}

fn split(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}

/// Remove what is at `name` unless it is a directory and `keep_dir`;
/// returns whether a directory is (still) there.
fn clear(parent: &OwnedFd, name: &str, keep_dir: bool) -> io::Result<bool> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
        Ok(st) if file_type(&st) == FileType::Directory => {
            if keep_dir {
                return Ok(true);
            }
            // The kernel's name for the directory the descriptor holds: no
            // link on it, and remove_tree follows none.
            let dir = std::fs::read_link(crate::fsroot::fd_path(parent))?;
            crate::cache::remove_tree(&dir.join(name))?;
            Ok(false)
        }
        Ok(_) => {
            rustix::fs::unlinkat(parent, name, AtFlags::empty())?;
            Ok(false)
        }
    }
}

fn times(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime as i64,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

struct Writer<'a> {
    root: &'a Root,
    parents: &'a mut dyn Parents,
    opts: ExtractOptions,
    /// Directories whose mtime is set once their contents are written.
    dirs: Vec<(String, u64)>,
}

impl Writer<'_> {
    fn owner(&self, h: &tar::Header) -> Option<(u32, u32)> {
        if let Some(o) = self.opts.owner {
            return Some(o);
        }
        if !self.opts.preserve_owner {
            return None;
        }
        Some((h.uid().ok()? as u32, h.gid().ok()? as u32))
    }

    /// Mode, owner and xattrs of an entry opened as `fd`.
    fn finish(
        &self,
        fd: &OwnedFd,
        h: &tar::Header,
        xattrs: &[(String, Vec<u8>)],
    ) -> io::Result<()> {
        if let Some((u, g)) = self.owner(h) {
            rustix::fs::fchown(
                fd,
                Some(rustix::fs::Uid::from_raw(u)),
                Some(rustix::fs::Gid::from_raw(g)),
            )?;
        }
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))?;
        if !xattrs.is_empty() {
            let f = std::fs::File::from(rustix::io::fcntl_dupfd_cloexec(fd, 0)?);
            for (k, v) in xattrs {
                // Best effort, as tar does: a filesystem may refuse a namespace.
                let _ = xattr::FileExt::set_xattr(&f, k, v);
            }
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, mut e: tar::Entry<'_, R>) -> Result<(), LayerError> {
        let path = e
            .path()
            .map_err(io_err("reading entry name in", self.root.path()))?
            .into_owned();
        let rel = entry_rel(&path)?;
        if rel.is_empty() {
            return Ok(());
        }
        let at = self.root.path().join(&rel);
        let err = |what| io_err(what, &at);
        let (dir_rel, name) = split(&rel);
        let parent = self
            .parents
            .parent_dir(dir_rel)
            .map_err(err("creating parents of"))?;
        if self.opts.layer && name.starts_with(".wh.") {
            return self
                .whiteout(&parent, name)
                .map_err(err("writing whiteout"));
        }
        let xattrs: Vec<(String, Vec<u8>)> = e
            .pax_extensions()
            .ok()
            .flatten()
            .map(|exts| {
                exts.flatten()
                    .filter_map(|x| {
                        let k = x.key().ok()?.strip_prefix("SCHILY.xattr.")?.to_string();
                        Some((k, x.value_bytes().to_vec()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let h = e.header().clone();
        use tar::EntryType as T;
        let done = match h.entry_type() {
            T::Directory => {
                self.dirs.push((rel.clone(), h.mtime().unwrap_or(0)));
                self.directory(&parent, name, &h, &xattrs)
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                self.regular(&mut e, &parent, name, &h, &xattrs)
            }
            T::Symlink | T::Link => {
                let target = e
                    .link_name()
                    .map_err(err("reading link of"))?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if h.entry_type() == T::Symlink {
                    self.symlink(&parent, name, &target, &h)
                } else {
                    let trel = entry_rel(Path::new(&target))?;
                    self.hard_link(&parent, name, &trel)
                }
            }
            T::Char | T::Block | T::Fifo => self.node(&parent, name, &h),
            _ => Ok(()), // pax/GNU headers are consumed by the reader
        };
        done.map_err(err("writing"))
    }

    fn directory(
        &mut self,
        parent: &OwnedFd,
        name: &str,
        h: &tar::Header,
        xattrs: &[(String, Vec<u8>)],
    ) -> io::Result<()> {
        if !clear(parent, name, true)? {
            rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700))?;
        }
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        self.finish(&fd, h, xattrs)
    }

    fn regular(
        &mut self,
        data: &mut impl Read,
        parent: &OwnedFd,
        name: &str,
        h: &tar::Header,
        xattrs: &[(String, Vec<u8>)],
    ) -> io::Result<()> {
        clear(parent, name, false)?;
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let mut f = std::fs::File::from(fd);
        io::copy(data, &mut f)?;
        let fd = OwnedFd::from(f);
        self.finish(&fd, h, xattrs)?;
        rustix::fs::futimens(&fd, &times(h.mtime().unwrap_or(0)))?;
        Ok(())
    }

    fn symlink(
        &mut self,
        parent: &OwnedFd,
        name: &str,
        target: &str,
        h: &tar::Header,
    ) -> io::Result<()> {
        clear(parent, name, false)?;
        rustix::fs::symlinkat(target, parent, name)?;
        self.parents.changed();
        self.link_metadata(parent, name, h, h.mtime().unwrap_or(0))
    }

    /// A hard link to `target` (a path of the archive, resolved like one).
    fn hard_link(&mut self, parent: &OwnedFd, name: &str, target: &str) -> io::Result<()> {
        let (tdir, tname) = split(target);
        let tparent = self.parents.parent_dir(tdir)?;
        clear(parent, name, false)?;
        rustix::fs::linkat(&tparent, tname, parent, name, AtFlags::empty())?;
        Ok(())
    }

    /// A device (root only, as with tar) or a fifo.
    fn node(&mut self, parent: &OwnedFd, name: &str, h: &tar::Header) -> io::Result<()> {
        use tar::EntryType as T;
        let ft = match h.entry_type() {
            T::Char if self.opts.mknod => FileType::CharacterDevice,
            T::Block if self.opts.mknod => FileType::BlockDevice,
            T::Fifo => FileType::Fifo,
            _ => return Ok(()),
        };
        let dev = rustix::fs::makedev(
            h.device_major().ok().flatten().unwrap_or(0),
            h.device_minor().ok().flatten().unwrap_or(0),
        );
        clear(parent, name, false)?;
        rustix::fs::mknodat(parent, name, ft, Mode::from_raw_mode(0o600), dev)?;
        // A node cannot be opened to fchmod it: chmod through the parent,
        // with the final component never followed (it was just made).
        let mode = h.mode().unwrap_or(0o600) & 0o7777;
        rustix::fs::chmodat(parent, name, Mode::from_raw_mode(mode), AtFlags::empty())?;
        self.link_metadata(parent, name, h, h.mtime().unwrap_or(0))
    }

    /// Owner and mtime of an entry that cannot be opened (a symlink, a node).
    fn link_metadata(
        &self,
        parent: &OwnedFd,
        name: &str,
        h: &tar::Header,
        mtime: u64,
    ) -> io::Result<()> {
        if let Some((u, g)) = self.owner(h) {
            rustix::fs::chownat(
                parent,
                name,
                Some(rustix::fs::Uid::from_raw(u)),
                Some(rustix::fs::Gid::from_raw(g)),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        rustix::fs::utimensat(parent, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }

    fn whiteout(&self, parent: &OwnedFd, name: &str) -> io::Result<()> {
        if name == ".wh..wh..opq" {
            let attr = if self.opts.mknod {
                "trusted.overlay.opaque"
            } else {
                "user.overlay.opaque"
            };
            let dir = rustix::fs::openat(
                parent,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            return xattr::FileExt::set_xattr(&std::fs::File::from(dir), attr, b"y");
        }
        let hidden = &name[4..];
        if !self.opts.mknod {
            clear(parent, name, false)?;
            rustix::fs::openat(
                parent,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            return Ok(());
        }
        clear(parent, hidden, false)?;
        rustix::fs::mknodat(parent, hidden, FileType::CharacterDevice, Mode::empty(), 0)?;
        Ok(())
    }
}

/// Write the (uncompressed) archive `tar` inside `root`.
pub fn extract<R: Read>(tar: R, root: &Root, opts: ExtractOptions) -> Result<(), LayerError> {
    extract_with(tar, root, &mut InRoot(root), opts)
}

/// Write `tar` inside `root`, with entries' directories found by `parents`.
pub fn extract_with<R: Read>(
    tar: R,
    root: &Root,
    parents: &mut dyn Parents,
    opts: ExtractOptions,
) -> Result<(), LayerError> {
    let mut ar = tar::Archive::new(tar);
    let mut w = Writer {
        root,
        parents,
        opts,
        dirs: Vec::new(),
    };
    for entry in ar
        .entries()
        .map_err(io_err("reading archive for", root.path()))?
    {
        let entry = entry.map_err(io_err("reading archive entry for", root.path()))?;
        w.entry(entry)?;
    }
    // Directory mtimes change while their children are written: set them last.
    let dirs = std::mem::take(&mut w.dirs);
    for (rel, mtime) in dirs.iter().rev() {
        let (dir_rel, name) = split(rel);
        if let Ok(parent) = w.parents.parent_dir(dir_rel) {
            let _ = rustix::fs::utimensat(&parent, name, &times(*mtime), AtFlags::SYMLINK_NOFOLLOW);
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "extract/tests.rs"]
mod tests;
