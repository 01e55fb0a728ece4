//! A diff directory (overlay format: whiteouts are 0/0 character devices or
//! `.wh.` files, opaque directories carry `trusted.overlay.opaque=y`) written
//! as an OCI layer tar: entries sorted by path, numeric owners, hard links
//! kept, xattrs as PAX records, mtimes clamped to `SOURCE_DATE_EPOCH` when set.
//! The same directory always gives the same bytes.

use super::{LayerError, io_err};
use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Options for writing a layer tar.
#[derive(Debug, Clone, Copy, Default)]
pub struct TarOptions {
    /// Clamp every mtime to at most this (SOURCE_DATE_EPOCH).
    pub epoch: Option<u64>,
    /// Map this uid/gid to 0 (a non-root builder's own files appear as root's).
    pub map_owner: Option<(u32, u32)>,
}

const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

fn is_opaque(p: &Path) -> bool {
    OPAQUE_XATTRS
        .iter()
        .any(|x| matches!(xattr::get(p, x), Ok(Some(v)) if v == b"y"))
}

/// Write the diff directory `root` as a tar stream to `out`.
pub fn write_layer_tar<W: Write>(root: &Path, out: W, opts: TarOptions) -> Result<W, LayerError> {
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Complete);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    walk(&mut builder, root, "", opts, &mut links)?;
    builder
        .into_inner()
        .map_err(io_err("finishing tar of", root))
}

fn sorted_entries(dir: &Path) -> io::Result<Vec<(String, std::path::PathBuf)>> {
    let mut v: Vec<(String, std::path::PathBuf)> = fs::read_dir(dir)?
        .map(|e| e.map(|e| (e.file_name().to_string_lossy().into_owned(), e.path())))
        .collect::<io::Result<_>>()?;
    v.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(v)
}

fn walk<W: Write>(
    b: &mut tar::Builder<W>,
    dir: &Path,
    prefix: &str,
    opts: TarOptions,
    links: &mut HashMap<(u64, u64), String>,
) -> Result<(), LayerError> {
    if !prefix.is_empty() && is_opaque(dir) {
        let mut h = base_header(
            &fs::symlink_metadata(dir).map_err(io_err("stat", dir))?,
            opts,
        );
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(0);
        h.set_cksum();
        b.append_data(&mut h, format!("{prefix}.wh..wh..opq"), io::empty())
            .map_err(io_err("writing whiteout for", dir))?;
    }
    for (name, path) in sorted_entries(dir).map_err(io_err("reading", dir))? {
        let meta = fs::symlink_metadata(&path).map_err(io_err("stat", &path))?;
        let ft = meta.file_type();
        let rel = format!("{prefix}{name}");
        // Whiteouts: overlay's 0/0 char device, or an already-OCI `.wh.` file.
        if ft.is_char_device() && meta.rdev() == 0 {
            let mut h = base_header(&meta, opts);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(0);
            h.set_cksum();
            b.append_data(&mut h, format!("{prefix}.wh.{name}"), io::empty())
                .map_err(io_err("writing whiteout for", &path))?;
            continue;
        }
        let mut h = base_header(&meta, opts);
        add_xattrs(b, &path, &meta)?;
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            h.set_cksum();
            b.append_data(&mut h, format!("{rel}/"), io::empty())
                .map_err(io_err("writing", &path))?;
            walk(b, &path, &format!("{rel}/"), opts, links)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(io_err("reading link", &path))?;
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, &rel, &target)
                .map_err(io_err("writing", &path))?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                let id = (meta.dev(), meta.ino());
                if let Some(first) = links.get(&id) {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    b.append_link(&mut h, &rel, first)
                        .map_err(io_err("writing", &path))?;
                    continue;
                }
                links.insert(id, rel.clone());
            }
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            h.set_cksum();
            let f = fs::File::open(&path).map_err(io_err("opening", &path))?;
            b.append_data(&mut h, &rel, f)
                .map_err(io_err("writing", &path))?;
        } else {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else if ft.is_fifo() {
                tar::EntryType::Fifo
            } else {
                continue; // sockets are not stored in layers
            };
            h.set_entry_type(kind);
            h.set_size(0);
            let rdev = meta.rdev();
            h.set_device_major(libc::major(rdev)).ok();
            h.set_device_minor(libc::minor(rdev)).ok();
            h.set_cksum();
            b.append_data(&mut h, &rel, io::empty())
                .map_err(io_err("writing", &path))?;
        }
    }
    Ok(())
}

fn base_header(meta: &fs::Metadata, opts: TarOptions) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    let (mut uid, mut gid) = (meta.uid(), meta.gid());
    if let Some((u, g)) = opts.map_owner {
        if uid == u {
            uid = 0;
        }
        if gid == g {
            gid = 0;
        }
    }
    h.set_uid(uid as u64);
    h.set_gid(gid as u64);
    h.set_mode(meta.mode() & 0o7777);
    let mut mtime = meta.mtime().max(0) as u64;
    if let Some(e) = opts.epoch {
        mtime = mtime.min(e);
    }
    h.set_mtime(mtime);
    h
}

/// PAX records for extended attributes (file capabilities included);
/// overlay's own attributes are not part of the layer.
fn add_xattrs<W: Write>(
    b: &mut tar::Builder<W>,
    path: &Path,
    meta: &fs::Metadata,
) -> Result<(), LayerError> {
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let Ok(names) = xattr::list(path) else {
        return Ok(());
    };
    let mut recs: Vec<(String, Vec<u8>)> = Vec::new();
    for n in names {
        let name = n.to_string_lossy().into_owned();
        if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
            continue;
        }
        if let Ok(Some(v)) = xattr::get(path, &n) {
            recs.push((format!("SCHILY.xattr.{name}"), v));
        }
    }
    if recs.is_empty() {
        return Ok(());
    }
    recs.sort();
    b.append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
        .map_err(io_err("writing xattrs of", path))
}
