//! Archives: an OCI layout as a tar, and a Docker archive (`manifest.json`
//! plus an OCI layout, the format current `docker save` writes and every
//! `docker load` since 1.10 reads). Written deterministically and streamed.

use super::oci::{image_blobs, index_json};
use super::{ExportError, io_err};
use crate::cache::Store;
use crate::image::manifest::WrittenImage;
use std::fs;
use std::io::Write;
use std::path::Path;

fn header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn dir_header() -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Directory);
    h
}

fn append_bytes<W: Write>(
    b: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
    dest: &Path,
) -> Result<(), ExportError> {
    let mut h = header(data.len() as u64, 0o644);
    b.append_data(&mut h, name, data)
        .map_err(io_err("writing archive", dest))
}

fn append_layout<W: Write>(
    b: &mut tar::Builder<W>,
    store: &Store,
    img: &WrittenImage,
    names: &[String],
    dest: &Path,
) -> Result<(), ExportError> {
    for d in ["blobs/", "blobs/sha256/"] {
        b.append_data(&mut dir_header(), d, std::io::empty())
            .map_err(io_err("writing archive", dest))?;
    }
    let mut seen = std::collections::HashSet::new();
    for d in image_blobs(img) {
        if !seen.insert(d) {
            continue;
        }
        let p = store.blob_path(&d);
        let f = fs::File::open(&p).map_err(io_err("opening", &p))?;
        let size = f.metadata().map_err(io_err("stat", &p))?.len();
        let mut h = header(size, 0o644);
        b.append_data(&mut h, format!("blobs/sha256/{}", d.hex()), f)
            .map_err(io_err("writing archive", dest))?;
    }
    append_bytes(b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, dest)?;
    append_bytes(b, "index.json", &index_json(img, names), dest)?;
    Ok(())
}

fn open_dest(dest: &Path) -> Result<Box<dyn Write>, ExportError> {
    if dest == Path::new("-") {
        return Ok(Box::new(std::io::BufWriter::new(std::io::stdout().lock())));
    }
    let f = fs::File::create(dest).map_err(io_err("creating", dest))?;
    Ok(Box::new(std::io::BufWriter::with_capacity(1 << 20, f)))
}

/// Write an OCI layout as a tar archive.
pub fn write_oci_archive(
    store: &Store,
    img: &WrittenImage,
    names: &[String],
    dest: &Path,
) -> Result<(), ExportError> {
    let mut b = tar::Builder::new(open_dest(dest)?);
    append_layout(&mut b, store, img, names, dest)?;
    let mut w = b.into_inner().map_err(io_err("finishing", dest))?;
    w.flush().map_err(io_err("flushing", dest))
}

/// Write a Docker archive (`docker load -i`).
pub fn write_docker_archive(
    store: &Store,
    img: &WrittenImage,
    names: &[String],
    dest: &Path,
) -> Result<(), ExportError> {
    let mut b = tar::Builder::new(open_dest(dest)?);
    append_layout(&mut b, store, img, names, dest)?;
    // `docker save` writes familiar names (`busybox:latest`).
    let repo_tags: Vec<String> = names
        .iter()
        .map(|n| {
            crate::registry::Reference::parse(n)
                .map(|r| r.familiar_string())
                .unwrap_or_else(|_| n.clone())
        })
        .collect();
    let manifest = serde_json::json!([{
        "Config": format!("blobs/sha256/{}", img.config.hex()),
        "RepoTags": repo_tags,
        "Layers": img.layers.iter().map(|l| format!("blobs/sha256/{}", l.digest.hex())).collect::<Vec<_>>(),
    }]);
    append_bytes(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("serialise"),
        dest,
    )?;
    let mut w = b.into_inner().map_err(io_err("finishing", dest))?;
    w.flush().map_err(io_err("flushing", dest))
}
