//! The copy snapshotter, for when overlayfs cannot be used (for example
//! when the store itself sits on an overlay): the parent filesystem is copied
//! into the root directory, the step runs on it, and the differences become
//! an upper directory in overlay's format (changed entries, 0/0 character
//! devices for deletions), so the rest of the pipeline is the same.

use crate::layer::view::MergedView;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Whether overlayfs can be used for a store at `root`: the kernel knows it
/// and the store is not itself on an overlay (overlay cannot have its upper
/// directory on overlay). `RBUILD_SNAPSHOTTER=copy|overlay` overrides.
pub fn overlay_usable(root: &Path) -> Result<(), String> {
    match std::env::var("RBUILD_SNAPSHOTTER").as_deref() {
        Ok("copy") => return Err("RBUILD_SNAPSHOTTER=copy".into()),
        Ok("overlay") => return Ok(()),
        _ => {}
    }
    let known = fs::read_to_string("/proc/filesystems")
        .map(|s| s.contains("overlay"))
        .unwrap_or(false);
    if !known {
        return Err("the kernel has no overlay filesystem".into());
    }
    const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
    if let Ok(st) = rustix::fs::statfs(root)
        && st.f_type == OVERLAYFS_SUPER_MAGIC
    {
        return Err(format!(
            "the store {} is on an overlay filesystem",
            root.display()
        ));
    }
    Ok(())
}

fn same_meta(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    a.file_type() == b.file_type()
        && a.mode() == b.mode()
        && a.uid() == b.uid()
        && a.gid() == b.gid()
        && a.len() == b.len()
        && a.mtime() == b.mtime()
        && a.mtime_nsec() == b.mtime_nsec()
}

fn copy_entry(src: &Path, dst: &Path, m: &fs::Metadata) -> io::Result<()> {
    let ft = m.file_type();
    if ft.is_dir() {
        fs::create_dir(dst)?;
    } else if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
    } else if ft.is_file() {
        fs::copy(src, dst)?;
    } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
        let kind = if ft.is_char_device() {
            rustix::fs::FileType::CharacterDevice
        } else if ft.is_block_device() {
            rustix::fs::FileType::BlockDevice
        } else {
            rustix::fs::FileType::Fifo
        };
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dst,
            kind,
            rustix::fs::Mode::from_raw_mode(m.mode() & 0o7777),
            m.rdev(),
        )?;
    } else {
        return Ok(()); // sockets are not kept
    }
    if !ft.is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(m.mode() & 0o7777))?;
        if let Ok(names) = xattr::list(src) {
            for n in names {
                if let Ok(Some(v)) = xattr::get(src, &n) {
                    let _ = xattr::set(dst, &n, &v);
                }
            }
        }
    }
    std::os::unix::fs::lchown(dst, Some(m.uid()), Some(m.gid()))?;
    let t = filetime::FileTime::from_unix_time(m.mtime(), m.mtime_nsec() as u32);
    filetime::set_symlink_file_times(dst, t, t)?;
    Ok(())
}

fn whiteout(dst: &Path) -> io::Result<()> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dst,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )?;
    Ok(())
}

/// Copy the merged filesystem of `view` into `root` (files, directories,
/// links, devices, owners, modes, times, xattrs).
pub fn populate(view: &MergedView, root: &Path) -> io::Result<()> {
    fn walk(view: &MergedView, rel: &[String], dst: &Path) -> io::Result<()> {
        for (name, path, m) in view.read_dir(rel) {
            let d = dst.join(&name);
            copy_entry(&path, &d, &m)?;
            if m.is_dir() {
                let mut sub = rel.to_vec();
                sub.push(name);
                walk(view, &sub, &d)?;
                copy_dir_meta(&m, &d)?;
            }
        }
        Ok(())
    }
    walk(view, &[], root)
}

/// Copy the directory `rel` (resolved components) of `view` into the
/// existing directory `dest`: its contents, then its own mode, owner and
/// times (Docker's copy of an image's files into a new volume).
pub fn populate_dir(view: &MergedView, rel: &[String], dest: &Path) -> io::Result<()> {
    fn walk(view: &MergedView, rel: &[String], dst: &Path) -> io::Result<()> {
        for (name, path, m) in view.read_dir(rel) {
            let d = dst.join(&name);
            copy_entry(&path, &d, &m)?;
            if m.is_dir() {
                let mut sub = rel.to_vec();
                sub.push(name);
                walk(view, &sub, &d)?;
                copy_dir_meta(&m, &d)?;
            }
        }
        Ok(())
    }
    walk(view, rel, dest)?;
    if let Some((_, m)) = view.lookup_exact(rel) {
        copy_dir_meta(&m, dest)?;
    }
    Ok(())
}

/// Write into `upper` what changed from `before` (the parent's merged view)
/// to `after` (the root directory the step ran on).
pub fn diff_to_upper(before: &MergedView, after: &Path, upper: &Path) -> io::Result<()> {
    diff_dir(before, &[], after, upper)
}

fn diff_dir(before: &MergedView, rel: &[String], after: &Path, upper: &Path) -> io::Result<()> {
    let old: std::collections::BTreeMap<String, (std::path::PathBuf, fs::Metadata)> = before
        .read_dir(rel)
        .into_iter()
        .map(|(n, p, m)| (n, (p, m)))
        .collect();
    let mut names: Vec<String> = fs::read_dir(after)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in &names {
        let a = after.join(name);
        let am = fs::symlink_metadata(&a)?;
        let u = upper.join(name);
        let mut sub = rel.to_vec();
        sub.push(name.clone());
        match old.get(name) {
            Some((_, bm)) if am.is_dir() && bm.is_dir() => {
                fs::create_dir(&u)?;
                diff_dir(before, &sub, &a, &u)?;
                if fs::read_dir(&u)?.next().is_none() && same_meta(&am, bm) {
                    fs::remove_dir(&u)?; // unchanged
                } else {
                    copy_dir_meta(&am, &u)?; // after children, so the mtime sticks
                }
            }
            Some((_, bm)) if same_meta(&am, bm) && !am.is_dir() => {}
            _ => {
                copy_entry(&a, &u, &am)?;
                if am.is_dir() {
                    copy_new_tree(&a, &u)?;
                    copy_dir_meta(&am, &u)?;
                }
            }
        }
    }
    for name in old.keys() {
        if !names.contains(name) {
            whiteout(&upper.join(name))?;
        }
    }
    Ok(())
}

fn copy_dir_meta(m: &fs::Metadata, dst: &Path) -> io::Result<()> {
    fs::set_permissions(dst, fs::Permissions::from_mode(m.mode() & 0o7777))?;
    std::os::unix::fs::lchown(dst, Some(m.uid()), Some(m.gid()))?;
    let t = filetime::FileTime::from_unix_time(m.mtime(), m.mtime_nsec() as u32);
    filetime::set_file_times(dst, t, t)
}

fn copy_new_tree(src: &Path, dst: &Path) -> io::Result<()> {
    for e in fs::read_dir(src)?.flatten() {
        let m = fs::symlink_metadata(e.path())?;
        let d = dst.join(e.file_name());
        copy_entry(&e.path(), &d, &m)?;
        if m.is_dir() {
            copy_new_tree(&e.path(), &d)?;
            copy_dir_meta(&m, &d)?;
        }
    }
    Ok(())
}
