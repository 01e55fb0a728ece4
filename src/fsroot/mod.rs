//! Paths from untrusted sources (a Dockerfile, a build context, an archive,
//! an image) resolved inside their root, never by the host's own resolution.
//!
//! A [`Root`] holds a descriptor of a directory. Every lookup below it treats
//! that directory as `/`: an absolute symlink target is re-rooted at it and
//! `..` stops there, as BuildKit's fsutil and runc's securejoin do. Opens go
//! through `openat2(RESOLVE_IN_ROOT)`, so a link swapped between a check and
//! an open still cannot lead out; on kernels without `openat2` a
//! component-by-component walk with `O_NOFOLLOW` descriptors does the same.
//! Creating directories and files (mount targets, extracted archives) walks
//! the same way and creates each missing component relative to its parent's
//! descriptor, like runc's `MkdirAllInRoot` and `CreateInRoot`.

mod walk;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use walk::Walk;

/// A directory that untrusted paths are resolved in.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// `/proc/self/fd/N` for a descriptor: a mount(2) source or target naming
/// exactly that object, whatever happens to the path it was opened by.
pub fn fd_path(fd: &impl AsFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

/// Whether a stat result is a directory, a symlink, ...
pub fn file_type(st: &Stat) -> rustix::fs::FileType {
    rustix::fs::FileType::from_raw_mode(st.st_mode)
}

/// Strip leading slashes; the root itself is ".".
fn relative(rel: &str) -> &str {
    let r = rel.trim_start_matches('/');
    if r.is_empty() { "." } else { r }
}

impl Root {
    /// Open `dir` (a trusted host path) as a root.
    pub fn open(dir: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd,
            path: dir.to_path_buf(),
        })
    }

    /// The host path the root was opened by (for messages and cache keys).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root's descriptor.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Open `rel` inside the root with `flags`; `follow_last` decides whether
    /// a final symlink is followed (inside the root) or opened itself (with
    /// `O_PATH`).
    pub fn open_at(&self, rel: &str, flags: OFlags, follow_last: bool) -> io::Result<OwnedFd> {
        let mut flags = flags | OFlags::CLOEXEC;
        if !follow_last {
            flags |= OFlags::NOFOLLOW;
        }
        let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        for _ in 0..16 {
            match rustix::fs::openat2(&self.fd, relative(rel), flags, Mode::empty(), how) {
                // A rename elsewhere raced the lookup: the kernel asks to retry.
                Err(Errno::AGAIN) => continue,
                Err(Errno::NOSYS) => return self.open_by_walk(rel, flags, follow_last),
                r => return r.map_err(Into::into),
            }
        }
        self.open_by_walk(rel, flags, follow_last)
    }

    fn open_by_walk(&self, rel: &str, flags: OFlags, follow_last: bool) -> io::Result<OwnedFd> {
        let w = Walk::run(self, rel, follow_last, None)?;
        match (&w.name, w.last) {
            (_, None) => Err(Errno::NOENT.into()),
            (None, Some(_)) => Ok(rustix::fs::openat(&w.parent, ".", flags, Mode::empty())?),
            (Some(name), Some(_)) => Ok(rustix::fs::openat(
                &w.parent,
                name.as_str(),
                flags | OFlags::NOFOLLOW,
                Mode::empty(),
            )?),
        }
    }

    /// An `O_PATH` descriptor of the directory `rel`, which must lie below
    /// the root: a link leading above it is an error (`EXDEV`), not
    /// re-rooted (`RESOLVE_BENEATH`, as BuildKit treats a cache's subpath).
    pub fn open_dir_beneath(&self, rel: &str) -> io::Result<OwnedFd> {
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        loop {
            match rustix::fs::openat2(&self.fd, relative(rel), flags, Mode::empty(), how) {
                Err(Errno::AGAIN) => continue,
                r => return r.map_err(Into::into),
            }
        }
    }

    /// An `O_PATH` descriptor of the directory `rel` of a tree rbuild made
    /// itself (a step's output, a stored layer): no link may be on the way
    /// (`RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS`), so one planted since the
    /// path was checked fails the open instead of leading out.
    pub fn open_dir_nolinks(&self, rel: &str) -> io::Result<OwnedFd> {
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        loop {
            match rustix::fs::openat2(&self.fd, relative(rel), flags, Mode::empty(), how) {
                Err(Errno::AGAIN) => continue,
                r => return r.map_err(Into::into),
            }
        }
    }

    /// An `O_PATH` descriptor of `rel`.
    pub fn open_path(&self, rel: &str, follow_last: bool) -> io::Result<OwnedFd> {
        self.open_at(rel, OFlags::PATH, follow_last)
    }

    /// Open a file of the root for reading (a final symlink followed inside).
    pub fn open_file(&self, rel: &str) -> io::Result<File> {
        Ok(File::from(self.open_at(rel, OFlags::RDONLY, true)?))
    }

    /// Open a directory of the root for listing.
    pub fn open_dir(&self, rel: &str) -> io::Result<OwnedFd> {
        self.open_at(rel, OFlags::RDONLY | OFlags::DIRECTORY, true)
    }

    /// Metadata of `rel` (of a final symlink itself unless `follow_last`).
    pub fn stat(&self, rel: &str, follow_last: bool) -> io::Result<Stat> {
        Ok(rustix::fs::fstat(self.open_path(rel, follow_last)?)?)
    }

    /// The target of the symlink `rel`.
    pub fn read_link(&self, rel: &str) -> io::Result<String> {
        let fd = self.open_path(rel, false)?;
        let t = rustix::fs::readlinkat(&fd, "", Vec::new())?;
        Ok(t.to_string_lossy().into_owned())
    }

    /// The path `rel` names inside the root with every symlink resolved
    /// (re-rooted, `..` clamped): no leading slash, "" for the root. A
    /// missing tail is appended as written (cleaned).
    pub fn resolve(&self, rel: &str, follow_last: bool) -> io::Result<String> {
        let w = Walk::run(self, rel, follow_last, None)?;
        Ok(w.path())
    }

    /// Create the missing directories of `rel` inside the root (mode `mode`,
    /// umask applied) and return an `O_PATH` descriptor of the directory.
    /// Symlinks on the way are followed inside the root; a non-directory on
    /// the way is an error.
    pub fn mkdir_all(&self, rel: &str, mode: u32) -> io::Result<OwnedFd> {
        let w = Walk::run(self, rel, true, Some(Mode::from_raw_mode(mode)))?;
        match (&w.name, w.last) {
            (None, _) => Ok(rustix::fs::openat(
                &w.parent,
                ".",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?),
            (Some(name), Some(st)) if file_type(&st) == rustix::fs::FileType::Directory => {
                Ok(rustix::fs::openat(
                    &w.parent,
                    name.as_str(),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?)
            }
            _ => Err(Errno::NOTDIR.into()),
        }
    }

    /// The directory that will hold `rel` (created if missing) and the final
    /// name; a final symlink is followed inside the root.
    pub fn parent_of(&self, rel: &str, follow_last: bool) -> io::Result<(OwnedFd, String)> {
        let resolved = if follow_last {
            self.resolve(rel, true)?
        } else {
            walk::clean(rel)
        };
        let (dir, name) = match resolved.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", resolved.as_str()),
        };
        if name.is_empty() {
            return Err(Errno::ISDIR.into());
        }
        Ok((self.mkdir_all(dir, 0o755)?, name.to_string()))
    }

    /// A mount target for a file: `rel` as it is when it exists (a final
    /// symlink followed inside the root), else a new empty file; directories
    /// on the way are created. Nothing existing is changed.
    pub fn ensure_file(&self, rel: &str) -> io::Result<OwnedFd> {
        let (dir, name) = self.parent_of(rel, true)?;
        match rustix::fs::openat(
            &dir,
            name.as_str(),
            OFlags::RDONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        ) {
            Ok(fd) => Ok(fd),
            Err(Errno::EXIST) => Ok(rustix::fs::openat(
                &dir,
                name.as_str(),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?),
            Err(e) => Err(e.into()),
        }
    }

    /// Create (or truncate) the regular file `rel` for writing, mode `mode`.
    /// A final symlink is followed inside the root; what it names must be a
    /// regular file or missing.
    pub fn create_file(&self, rel: &str, mode: u32) -> io::Result<File> {
        let (dir, name) = self.parent_of(rel, true)?;
        let fd = rustix::fs::openat(
            &dir,
            name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        Ok(File::from(fd))
    }

    /// Remove the file `rel` (not following a final symlink).
    pub fn remove_file(&self, rel: &str) -> io::Result<()> {
        let w = Walk::run(self, rel, false, None)?;
        match (&w.name, w.last) {
            (Some(name), Some(_)) => Ok(rustix::fs::unlinkat(
                &w.parent,
                name.as_str(),
                AtFlags::empty(),
            )?),
            _ => Err(Errno::NOENT.into()),
        }
    }
}

#[cfg(test)]
mod tests;
