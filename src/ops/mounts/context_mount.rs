//! `RUN --mount=type=bind` of the build context: the step sees what the
//! context would send to BuildKit, and nothing more. The selection (with
//! `.dockerignore` applied, links resolved inside the context) is laid out
//! in the step's own directory: files hard-linked when the mount is
//! read-only and the store shares the context's filesystem, copied
//! otherwise, so that a rw mount's writes never reach the context. Every
//! file is opened inside the context, never by its host path.

use crate::context::{Entry, Kind, Selection};
use crate::fsroot::fd_path;
use std::fs;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn put_file(e: &Entry, to: &Path, writable: bool) -> io::Result<()> {
    if e.size == 0 {
        // Nothing to read (a socket is sent as an empty file).
        let f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)?;
        return f.set_permissions(fs::Permissions::from_mode(e.mode));
    }
    let mut src = e.open()?;
    if !writable
        && rustix::fs::linkat(
            rustix::fs::CWD,
            fd_path(&src),
            rustix::fs::CWD,
            to,
            rustix::fs::AtFlags::SYMLINK_FOLLOW,
        )
        .is_ok()
    {
        return Ok(());
    }
    let mut dst = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)?;
    io::copy(&mut src, &mut dst)?;
    dst.set_permissions(fs::Permissions::from_mode(e.mode))
}

fn put(e: &Entry, to: &Path, writable: bool) -> io::Result<()> {
    match e.kind {
        Kind::Dir => {
            fs::create_dir(to)?;
            fs::set_permissions(to, fs::Permissions::from_mode(e.mode))
        }
        Kind::File => put_file(e, to, writable),
        Kind::Symlink => std::os::unix::fs::symlink(e.link.as_deref().unwrap_or_default(), to),
        Kind::Other => Ok(()), // sockets, fifos and devices are not sent
    }
}

/// Lay out `sel` at `to` (which must not exist) and return it.
pub fn materialize(sel: &Selection, to: &Path, writable: bool) -> io::Result<PathBuf> {
    if sel.root.kind != Kind::Dir {
        put(&sel.root, to, writable)?;
    } else {
        fs::create_dir(to)?;
        // Children come in path order, so every parent exists before its
        // entries; directory modes are applied last for read-only ones.
        let mut dirs = Vec::new();
        for e in &sel.children {
            let p = to.join(&e.rel);
            if e.kind == Kind::Dir {
                fs::create_dir(&p)?;
                dirs.push((p, e.mode));
            } else {
                put(e, &p, writable)?;
            }
        }
        for (p, mode) in dirs.into_iter().rev() {
            fs::set_permissions(p, fs::Permissions::from_mode(mode))?;
        }
        fs::set_permissions(to, fs::Permissions::from_mode(sel.root.mode))?;
    }
    Ok(to.to_path_buf())
}
