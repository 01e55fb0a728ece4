//! Archives: an OCI layout as a tar, and a Docker archive (`manifest.json`
//! and `repositories` plus an OCI layout, the format `docker save` writes
//! since Docker 25 and every `docker load` since 1.10 reads). Several images
//! share one archive (blobs once). Written deterministically and streamed.

use super::oci::{image_blobs, index_json_all};
use super::{ExportError, io_err};
use crate::cache::Store;
use crate::image::manifest::WrittenImage;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

/// An image for an archive, with its names (normalised; none for an
/// image saved by ID).
#[derive(Debug, Clone)]
pub struct ArchiveImage {
    /// The image's manifest, config and layer blobs (in the store).
    pub image: WrittenImage,
    /// Its names.
    pub names: Vec<String>,
}

/// Which archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `docker load`'s: an OCI layout plus `manifest.json` and `repositories`.
    Docker,
    /// An OCI image layout as a tar.
    Oci,
}

pub(super) fn header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

pub(super) fn dir_header() -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Directory);
    h
}

pub(super) fn append_bytes<W: Write>(
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
    images: &[ArchiveImage],
    dest: &Path,
) -> Result<(), ExportError> {
    for d in ["blobs/", "blobs/sha256/"] {
        b.append_data(&mut dir_header(), d, std::io::empty())
            .map_err(io_err("writing archive", dest))?;
    }
    let mut seen = std::collections::HashSet::new();
    for d in images.iter().flat_map(|i| image_blobs(&i.image)) {
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
    let index: Vec<(&WrittenImage, &[String])> = images
        .iter()
        .map(|i| (&i.image, i.names.as_slice()))
        .collect();
    append_bytes(b, "index.json", &index_json_all(&index), dest)?;
    Ok(())
}

/// `manifest.json` and `repositories` of a Docker archive.
fn docker_documents(images: &[ArchiveImage]) -> (Vec<u8>, Vec<u8>) {
    let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let manifest: Vec<serde_json::Value> = images
        .iter()
        .map(|i| {
            let layers: Vec<String> = i
                .image
                .layers
                .iter()
                .map(|l| format!("blobs/sha256/{}", l.digest.hex()))
                .collect();
            let mut tags = Vec::new();
            for n in &i.names {
                let Ok(r) = crate::registry::Reference::parse(n) else {
                    continue;
                };
                tags.push(r.familiar_string());
                if let (Some(tag), Some(top)) = (r.tag(), i.image.layers.last()) {
                    repos
                        .entry(r.familiar_name())
                        .or_default()
                        .insert(tag.to_string(), top.digest.hex());
                }
            }
            serde_json::json!({
                "Config": format!("blobs/sha256/{}", i.image.config.hex()),
                "RepoTags": if tags.is_empty() { serde_json::Value::Null } else { tags.into() },
                "Layers": layers,
            })
        })
        .collect();
    (
        serde_json::to_vec(&manifest).expect("serialise"),
        serde_json::to_vec(&repos).expect("serialise"),
    )
}

/// Write images as an archive to `out` (`dest` names it in errors).
pub fn write_archive<W: Write>(
    store: &Store,
    images: &[ArchiveImage],
    format: ArchiveFormat,
    out: W,
    dest: &Path,
) -> Result<W, ExportError> {
    let mut b = tar::Builder::new(out);
    append_layout(&mut b, store, images, dest)?;
    if format == ArchiveFormat::Docker {
        let (manifest, repositories) = docker_documents(images);
        append_bytes(&mut b, "manifest.json", &manifest, dest)?;
        append_bytes(&mut b, "repositories", &repositories, dest)?;
    }
    let mut w = b.into_inner().map_err(io_err("finishing", dest))?;
    w.flush().map_err(io_err("flushing", dest))?;
    Ok(w)
}

pub(super) fn open_dest(dest: &Path) -> Result<Box<dyn Write>, ExportError> {
    if dest == Path::new("-") {
        return Ok(Box::new(std::io::BufWriter::new(std::io::stdout().lock())));
    }
    let f = fs::File::create(dest).map_err(io_err("creating", dest))?;
    Ok(Box::new(std::io::BufWriter::with_capacity(1 << 20, f)))
}

fn one(img: &WrittenImage, names: &[String]) -> [ArchiveImage; 1] {
    [ArchiveImage {
        image: img.clone(),
        names: names.to_vec(),
    }]
}

/// Write an OCI layout as a tar archive (`-` is standard output).
pub fn write_oci_archive(
    store: &Store,
    img: &WrittenImage,
    names: &[String],
    dest: &Path,
) -> Result<(), ExportError> {
    let out = open_dest(dest)?;
    write_archive(store, &one(img, names), ArchiveFormat::Oci, out, dest).map(drop)
}

/// Write a Docker archive (`docker load -i`; `-` is standard output). With
/// no destination (`-o type=docker` as buildx, or `--load`), the archive is
/// streamed into the Docker engine instead.
pub fn write_docker_archive(
    store: &Store,
    img: &WrittenImage,
    names: &[String],
    dest: &Path,
) -> Result<(), ExportError> {
    if dest.as_os_str().is_empty() {
        for line in super::docker_load::load_into_engine(store, &one(img, names))? {
            eprintln!("{line}");
        }
        return Ok(());
    }
    let out = open_dest(dest)?;
    write_archive(store, &one(img, names), ArchiveFormat::Docker, out, dest).map(drop)
}
