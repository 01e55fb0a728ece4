//! `--output type=local`: the image's root filesystem copied into a directory.

use super::{ExportError, io_err};
use crate::context::Kind;
use crate::layer::view::MergedView;
use crate::ops::view_select::walk_view;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Copy the merged filesystem of `view` into `dest`.
pub fn export_rootfs(view: &MergedView, dest: &Path) -> Result<(), ExportError> {
    fs::create_dir_all(dest).map_err(io_err("creating", dest))?;
    let mut entries = Vec::new();
    walk_view(view, &[], "", &mut entries).map_err(|e| ExportError::Io {
        what: "reading image filesystem for",
        path: dest.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let mut dirs = Vec::new();
    let root = rustix::process::geteuid().is_root();
    for e in &entries {
        let target = dest.join(&e.rel);
        let owner = fs::symlink_metadata(&e.abs).map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.uid(), m.gid())
        });
        match e.kind {
            Kind::Dir => {
                fs::create_dir_all(&target).map_err(io_err("creating", &target))?;
                dirs.push((target.clone(), e.mode, e.mtime));
            }
            Kind::File => {
                let _ = fs::remove_file(&target);
                fs::copy(&e.abs, &target).map_err(io_err("copying to", &target))?;
                fs::set_permissions(&target, fs::Permissions::from_mode(e.mode))
                    .map_err(io_err("chmod", &target))?;
            }
            Kind::Symlink => {
                let _ = fs::remove_file(&target);
                std::os::unix::fs::symlink(e.link.as_deref().unwrap_or(""), &target)
                    .map_err(io_err("creating symlink", &target))?;
            }
            Kind::Other => {}
        }
        if let Ok((uid, gid)) = owner
            && root
        {
            let _ = std::os::unix::fs::lchown(&target, Some(uid), Some(gid));
        }
        if e.kind != Kind::Dir {
            let t = filetime::FileTime::from_unix_time(e.mtime.0, e.mtime.1 as u32);
            let _ = filetime::set_symlink_file_times(&target, t, t);
        }
    }
    for (d, mode, (s, n)) in dirs.into_iter().rev() {
        let _ = fs::set_permissions(&d, fs::Permissions::from_mode(mode));
        let t = filetime::FileTime::from_unix_time(s, n as u32);
        let _ = filetime::set_file_times(&d, t, t);
    }
    Ok(())
}
