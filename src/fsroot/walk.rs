//! The component-by-component walk: every directory is opened with
//! `O_NOFOLLOW` relative to its parent's descriptor, symlinks are read and
//! their targets walked again from the root (absolute) or the current
//! directory (relative), and `..` never climbs above the root.

use super::{Root, file_type};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use std::io;
use std::os::fd::OwnedFd;

/// Symlinks followed in one lookup before giving up (as Linux's ELOOP).
const MAX_HOPS: usize = 40;

/// Directories one walk may create (far beyond any real path's depth).
const MAX_CREATED: usize = 4096;

/// Where a walk ended.
pub(super) struct Walk {
    /// The directories resolved so far, from the root.
    dirs: Vec<String>,
    /// The directory holding the final component (the root for the root).
    pub(super) parent: OwnedFd,
    /// The final component (`None`: the path is the root itself).
    pub(super) name: Option<String>,
    /// The final component's metadata (`None`: it does not exist).
    pub(super) last: Option<Stat>,
    /// Components after a missing directory, kept as written.
    rest: Vec<String>,
}

/// A path's components: "." and empty ones dropped, ".." kept.
fn components(rel: &str) -> Vec<String> {
    rel.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .collect()
}

/// `rel` cleaned lexically: no leading slash, `..` clamped at the root.
pub(super) fn clean(rel: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for c in components(rel) {
        if c == ".." {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out.join("/")
}

fn open_dir_nofollow(dir: &OwnedFd, name: &str) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn dup(fd: &OwnedFd) -> io::Result<OwnedFd> {
    Ok(rustix::io::fcntl_dupfd_cloexec(fd, 0)?)
}

impl Walk {
    /// Walk `rel` inside `root`. With `create`, missing directories are made
    /// (with that mode) on the way, the final component included.
    pub(super) fn run(
        root: &Root,
        rel: &str,
        follow_last: bool,
        create: Option<Mode>,
    ) -> io::Result<Walk> {
        let mut pending: Vec<String> = components(rel);
        pending.reverse();
        let mut dirs: Vec<String> = Vec::new();
        let mut fds: Vec<OwnedFd> = vec![dup(&root.fd)?];
        let mut hops = 0;
        let mut created = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                if !dirs.is_empty() {
                    dirs.pop();
                    fds.pop();
                }
                continue;
            }
            let is_last = pending.is_empty();
            let cur = fds.last().expect("the root descriptor");
            let st = match rustix::fs::statat(cur, part.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) if create.is_some() => {
                    // Bounded: a racing remover cannot spin us forever.
                    created += 1;
                    if created > MAX_CREATED {
                        return Err(Errno::LOOP.into());
                    }
                    let mode = create.unwrap_or(Mode::empty());
                    match rustix::fs::mkdirat(cur, part.as_str(), mode) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    pending.push(part); // look again: it may be a racing symlink
                    continue;
                }
                Err(Errno::NOENT) => {
                    pending.reverse();
                    let parent = fds.pop().expect("the root descriptor");
                    return Ok(Walk {
                        dirs,
                        parent,
                        name: Some(part),
                        last: None,
                        rest: pending,
                    });
                }
                Err(e) => return Err(e.into()),
            };
            let ft = file_type(&st);
            if ft == FileType::Symlink && (!is_last || follow_last) {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(Errno::LOOP.into());
                }
                let target = rustix::fs::readlinkat(cur, part.as_str(), Vec::new())?;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    dirs.clear();
                    fds.truncate(1);
                }
                let mut next = components(&target);
                next.reverse();
                pending.extend(next);
                continue;
            }
            if is_last {
                let parent = fds.pop().expect("the root descriptor");
                return Ok(Walk {
                    dirs,
                    parent,
                    name: Some(part),
                    last: Some(st),
                    rest: Vec::new(),
                });
            }
            if ft != FileType::Directory {
                return Err(Errno::NOTDIR.into());
            }
            let fd = open_dir_nofollow(cur, &part)?;
            dirs.push(part);
            fds.push(fd);
        }
        // The path names a directory reached by `..` or the root itself.
        let parent_fd = fds.pop().expect("the root descriptor");
        match dirs.pop() {
            None => {
                let st = rustix::fs::fstat(&parent_fd)?;
                Ok(Walk {
                    dirs,
                    parent: parent_fd,
                    name: None,
                    last: Some(st),
                    rest: Vec::new(),
                })
            }
            Some(name) => {
                let parent = fds.pop().expect("the root descriptor");
                let st = rustix::fs::fstat(&parent_fd)?;
                Ok(Walk {
                    dirs,
                    parent,
                    name: Some(name),
                    last: Some(st),
                    rest: Vec::new(),
                })
            }
        }
    }

    /// The resolved path: directories, the final name, a missing tail.
    pub(super) fn path(&self) -> String {
        let mut parts: Vec<String> = self.dirs.clone();
        parts.extend(self.name.iter().cloned());
        parts.extend(self.rest.iter().cloned());
        clean(&parts.join("/"))
    }
}
