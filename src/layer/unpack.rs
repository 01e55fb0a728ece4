//! Unpack an OCI layer tar into a diff directory in overlay format: `.wh.x`
//! becomes a 0/0 character device `x` (or stays a `.wh.x` file when we may not
//! create devices), `.wh..wh..opq` becomes the opaque xattr on its directory.
//! Entries that would land outside the directory are refused.

use super::{LayerError, io_err};
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// Whether this process may create device nodes (root).
fn can_mknod() -> bool {
    rustix::process::geteuid().is_root()
}

fn safe_rel(p: &Path) -> Result<PathBuf, LayerError> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return Err(LayerError::Escape(p.display().to_string())),
        }
    }
    Ok(out)
}

/// Unpack `tar` (uncompressed) into `dest`.
pub fn unpack_layer<R: Read>(tar: R, dest: &Path) -> Result<(), LayerError> {
    let mut ar = tar::Archive::new(tar);
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    ar.set_unpack_xattrs(true);
    ar.set_preserve_ownerships(can_mknod());
    ar.set_overwrite(true);
    let mknod = can_mknod();
    let mut dirs: Vec<(PathBuf, u64)> = Vec::new();
    for entry in ar.entries().map_err(io_err("reading layer for", dest))? {
        let mut entry = entry.map_err(io_err("reading layer entry for", dest))?;
        let path = entry
            .path()
            .map_err(io_err("reading entry name in", dest))?
            .into_owned();
        let rel = safe_rel(&path)?;
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == ".wh..wh..opq" {
            let dir = dest.join(rel.parent().unwrap_or(Path::new("")));
            fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
            let attr = if mknod {
                "trusted.overlay.opaque"
            } else {
                "user.overlay.opaque"
            };
            xattr::set(&dir, attr, b"y").map_err(io_err("marking opaque", &dir))?;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let target = dest.join(rel.with_file_name(hidden));
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
            }
            if mknod {
                let _ = fs::remove_file(&target);
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &target,
                    rustix::fs::FileType::CharacterDevice,
                    rustix::fs::Mode::empty(),
                    0,
                )
                .map_err(|e| LayerError::Io {
                    what: "creating whiteout",
                    path: target.clone(),
                    source: e.into(),
                })?;
            } else {
                let p = dest.join(&rel);
                fs::write(&p, b"").map_err(io_err("creating whiteout", &p))?;
            }
            continue;
        }
        if entry.header().entry_type().is_dir() {
            dirs.push((rel.clone(), entry.header().mtime().unwrap_or(0)));
        }
        if !entry
            .unpack_in(dest)
            .map_err(io_err("unpacking into", dest))?
        {
            return Err(LayerError::Escape(path.display().to_string()));
        }
    }
    // Directory mtimes change while their children are written: restore them.
    for (rel, mtime) in dirs.into_iter().rev() {
        let p = dest.join(rel);
        let t = filetime::FileTime::from_unix_time(mtime as i64, 0);
        let _ = filetime::set_symlink_file_times(&p, t, t);
    }
    Ok(())
}
