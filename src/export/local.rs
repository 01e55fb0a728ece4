//! `--output type=local`: the image's root filesystem copied into a directory.
//!
//! The destination may already hold files (an earlier export): everything is
//! written inside it through descriptors (see [`crate::fsroot`]), so a link
//! left there, or one the image itself brings, never leads a write out.

use super::{ExportError, io_err};
use crate::context::{Entry, Kind};
use crate::fsroot::Root;
use crate::layer::view::MergedView;
use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

fn times(e: &Entry) -> Timestamps {
    let t = Timespec {
        tv_sec: e.mtime.0,
        tv_nsec: e.mtime.1 as _,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Remove a non-directory at `name` (a directory is kept when `keep_dir`).
fn clear(parent: &OwnedFd, name: &str, keep_dir: bool) -> io::Result<()> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if crate::fsroot::file_type(&st) == rustix::fs::FileType::Directory => {
            if keep_dir {
                Ok(())
            } else {
                Err(io::Error::other("a directory is in the way"))
            }
        }
        Ok(_) => Ok(rustix::fs::unlinkat(parent, name, AtFlags::empty())?),
        Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn owner_of(e: &Entry, root_user: bool) -> Option<(rustix::fs::Uid, rustix::fs::Gid)> {
    root_user.then(|| {
        (
            rustix::fs::Uid::from_raw(e.owner.0),
            rustix::fs::Gid::from_raw(e.owner.1),
        )
    })
}

/// Write one entry inside `root`. `linked` maps the inodes of files written
/// so far to their paths, so that hard links stay hard links.
fn put(
    root: &Root,
    e: &Entry,
    root_user: bool,
    linked: &mut std::collections::HashMap<u64, String>,
) -> io::Result<()> {
    let (dir, name) = e.rel.rsplit_once('/').unwrap_or(("", e.rel.as_str()));
    let parent = root.mkdir_all(dir, 0o755)?;
    let owner = owner_of(e, root_user);
    if e.kind == Kind::File
        && let Some(ino) = e.stat.map(|s| s.ino)
    {
        if let Some(first) = linked.get(&ino) {
            let (fdir, fname) = first.rsplit_once('/').unwrap_or(("", first.as_str()));
            let fparent = root.mkdir_all(fdir, 0o755)?;
            clear(&parent, name, false)?;
            return Ok(rustix::fs::linkat(
                &fparent,
                fname,
                &parent,
                name,
                AtFlags::empty(),
            )?);
        }
        linked.insert(ino, e.rel.clone());
    }
    match e.kind {
        Kind::Dir => {
            clear(&parent, name, true)?;
            match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Kind::File => {
            clear(&parent, name, false)?;
            let fd = rustix::fs::openat(
                &parent,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            let mut dst = fs::File::from(fd);
            io::copy(&mut e.open()?, &mut dst)?;
            // Owner first: chown clears setuid/setgid bits, which are kept.
            if let Some((u, g)) = owner {
                rustix::fs::fchown(&dst, Some(u), Some(g))?;
            }
            rustix::fs::fchmod(&dst, Mode::from_raw_mode(e.mode))?;
            rustix::fs::futimens(&dst, &times(e))?;
        }
        Kind::Symlink => {
            clear(&parent, name, false)?;
            rustix::fs::symlinkat(e.link.as_deref().unwrap_or(""), &parent, name)?;
            if let Some((u, g)) = owner {
                rustix::fs::chownat(&parent, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)?;
            }
            rustix::fs::utimensat(&parent, name, &times(e), AtFlags::SYMLINK_NOFOLLOW)?;
        }
        Kind::Other => {}
    }
    Ok(())
}

/// Owner, mode and times of a directory, once its contents are written.
fn finish_dir(root: &Root, e: &Entry, root_user: bool) -> io::Result<()> {
    let (dir, name) = e.rel.rsplit_once('/').unwrap_or(("", e.rel.as_str()));
    let parent = root.mkdir_all(dir, 0o755)?;
    if let Some((u, g)) = owner_of(e, root_user) {
        rustix::fs::chownat(&parent, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)?;
    }
    rustix::fs::chmodat(&parent, name, Mode::from_raw_mode(e.mode), AtFlags::empty())?;
    rustix::fs::utimensat(&parent, name, &times(e), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Copy the merged filesystem of `view` into `dest`.
pub fn export_rootfs(view: &MergedView, dest: &Path) -> Result<(), ExportError> {
    fs::create_dir_all(dest).map_err(io_err("creating", dest))?;
    let root = Root::open(dest).map_err(io_err("opening", dest))?;
    let entries = view
        .walk(&[])
        .into_iter()
        .map(|(rel, path, _)| Entry::from_path(rel, path.clone()).map_err(io_err("reading", &path)))
        .collect::<Result<Vec<Entry>, ExportError>>()?;
    let root_user = rustix::process::geteuid().is_root();
    let mut linked = std::collections::HashMap::new();
    for e in &entries {
        let target = dest.join(&e.rel);
        put(&root, e, root_user, &mut linked).map_err(io_err("writing", &target))?;
    }
    for e in entries.iter().rev().filter(|e| e.kind == Kind::Dir) {
        let target = dest.join(&e.rel);
        finish_dir(&root, e, root_user).map_err(io_err("setting metadata of", &target))?;
    }
    Ok(())
}
