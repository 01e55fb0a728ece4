//! Multi-platform images: an OCI image index (or a Docker manifest list)
//! over one manifest per platform, in the store, an OCI layout or an OCI
//! archive. The layout's `index.json` names the index, as BuildKit's OCI
//! exporter writes it.

use super::archive::{append_bytes, dir_header, header, open_dest};
use super::oci::image_blobs;
use super::{ExportError, io_err};
use crate::cache::Store;
use crate::digest::Digest;
use crate::frontend::platform::Platform;
use crate::image::manifest::{MediaTypes, WrittenImage};
use std::fs;
use std::io::Write;
use std::path::Path;

/// OCI image index media type.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Docker manifest list media type (`oci-mediatypes=false`).
pub const DOCKER_LIST_MEDIA_TYPE: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";

/// An index written into the store, with the images it lists.
#[derive(Debug, Clone)]
pub struct WrittenIndex {
    /// The index blob's digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub media_type: &'static str,
    /// One image per platform, in `--platform` order.
    pub images: Vec<(Platform, WrittenImage)>,
}

/// Write the index of `images` (their manifests already stored).
pub fn write_index(
    store: &Store,
    images: Vec<(Platform, WrittenImage)>,
    types: MediaTypes,
) -> Result<WrittenIndex, ExportError> {
    let media_type = match types {
        MediaTypes::Oci => INDEX_MEDIA_TYPE,
        MediaTypes::Docker => DOCKER_LIST_MEDIA_TYPE,
    };
    let manifests: Vec<serde_json::Value> = images
        .iter()
        .map(|(p, w)| {
            serde_json::json!({
                "mediaType": w.manifest_media_type(),
                "digest": w.manifest,
                "size": w.manifest_size,
                "platform": platform_of(p, w),
            })
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": manifests,
    }))
    .map_err(|e| ExportError::Spec {
        spec: "index".into(),
        reason: e.to_string(),
    })?;
    let (digest, size) = store.put_blob(&body)?;
    Ok(WrittenIndex {
        digest,
        size,
        media_type,
        images,
    })
}

/// An index entry's platform: the image config's (its variant may come
/// from the base, e.g. `arm64/v8`), else the build's.
fn platform_of(p: &Platform, w: &WrittenImage) -> serde_json::Value {
    let c = &w.image_config;
    if c.os.is_empty() || c.architecture.is_empty() {
        return p.to_oci_json();
    }
    let mut v = serde_json::json!({"architecture": c.architecture, "os": c.os});
    if !c.variant.is_empty() {
        v["variant"] = c.variant.clone().into();
    }
    v
}

/// Every blob of the index, the index last.
fn blobs(idx: &WrittenIndex) -> Vec<Digest> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<Digest> = idx
        .images
        .iter()
        .flat_map(|(_, w)| image_blobs(w))
        .filter(|d| seen.insert(*d))
        .collect();
    out.push(idx.digest);
    out
}

/// The layout's `index.json`: the index once per name (or unnamed).
fn layout_index_json(idx: &WrittenIndex, names: &[String]) -> Vec<u8> {
    let descriptor = |name: Option<&String>| {
        let mut d = serde_json::json!({
            "mediaType": idx.media_type,
            "digest": idx.digest,
            "size": idx.size,
        });
        if let Some(n) = name {
            let tag = n
                .rsplit_once(':')
                .filter(|(_, t)| !t.contains('/'))
                .map(|(_, t)| t)
                .unwrap_or("latest");
            d["annotations"] = serde_json::json!({
                "io.containerd.image.name": n,
                "org.opencontainers.image.ref.name": tag,
            });
        }
        d
    };
    let manifests: Vec<serde_json::Value> = if names.is_empty() {
        vec![descriptor(None)]
    } else {
        names.iter().map(|n| descriptor(Some(n))).collect()
    };
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": manifests,
    }))
    .unwrap_or_default()
}

/// Write an OCI layout directory holding the index.
pub fn write_oci_layout_index(
    store: &Store,
    idx: &WrittenIndex,
    names: &[String],
    dir: &Path,
) -> Result<(), ExportError> {
    let json = layout_index_json(idx, names);
    super::oci::write_layout_dir(store, &blobs(idx), &json, dir)
}

/// Write an OCI archive (a layout as a tar; `-` is standard output)
/// holding the index.
pub fn write_oci_archive_index(
    store: &Store,
    idx: &WrittenIndex,
    names: &[String],
    dest: &Path,
) -> Result<(), ExportError> {
    let mut b = tar::Builder::new(open_dest(dest)?);
    for d in ["blobs/", "blobs/sha256/"] {
        b.append_data(&mut dir_header(), d, std::io::empty())
            .map_err(io_err("writing archive", dest))?;
    }
    for d in blobs(idx) {
        let p = store.blob_path(&d);
        let f = fs::File::open(&p).map_err(io_err("opening", &p))?;
        let size = f.metadata().map_err(io_err("stat", &p))?.len();
        b.append_data(
            &mut header(size, 0o644),
            format!("blobs/sha256/{}", d.hex()),
            f,
        )
        .map_err(io_err("writing archive", dest))?;
    }
    append_bytes(
        &mut b,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        dest,
    )?;
    append_bytes(&mut b, "index.json", &layout_index_json(idx, names), dest)?;
    let mut w = b.into_inner().map_err(io_err("finishing", dest))?;
    w.flush().map_err(io_err("flushing", dest))
}
