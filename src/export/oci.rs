//! OCI image layout directories.

use super::{ExportError, io_err};
use crate::cache::Store;
use crate::digest::Digest;
use crate::image::manifest::WrittenImage;
use std::fs;
use std::path::Path;

/// Blobs of an image, in layout order (config, layers, manifest).
pub(crate) fn image_blobs(img: &WrittenImage) -> Vec<Digest> {
    let mut v = vec![img.config];
    v.extend(img.layers.iter().map(|l| l.digest));
    v.push(img.manifest);
    v
}

/// `index.json` for an image with the given names (`org.opencontainers.image.ref.name` = tag).
pub(crate) fn index_json(img: &WrittenImage, names: &[String]) -> Vec<u8> {
    index_json_all(&[(img, names)])
}

/// `index.json` for several images, each with its names (one entry per
/// name, one unnamed entry for an image without).
pub(crate) fn index_json_all(images: &[(&WrittenImage, &[String])]) -> Vec<u8> {
    let descriptor = |img: &WrittenImage, name: Option<&String>| {
        let mut d = serde_json::json!({
            "mediaType": img.manifest_media_type(),
            "digest": img.manifest,
            "size": img.manifest_size,
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
    let mut manifests: Vec<serde_json::Value> = Vec::new();
    for (img, names) in images {
        if names.is_empty() {
            manifests.push(descriptor(img, None));
        }
        manifests.extend(names.iter().map(|n| descriptor(img, Some(n))));
    }
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .expect("serialise index")
}

/// Write (or update) an OCI image layout at `dir`.
pub fn write_oci_layout(
    store: &Store,
    img: &WrittenImage,
    names: &[String],
    dir: &Path,
) -> Result<(), ExportError> {
    write_layout_dir(store, &image_blobs(img), &index_json(img, names), dir)
}

/// Write an OCI layout directory: `blobs` linked (else copied) from the
/// store, `oci-layout`, and `index.json`.
pub(crate) fn write_layout_dir(
    store: &Store,
    blobs: &[Digest],
    index_json: &[u8],
    dir: &Path,
) -> Result<(), ExportError> {
    let blob_dir = dir.join("blobs/sha256");
    fs::create_dir_all(&blob_dir).map_err(io_err("creating", &blob_dir))?;
    for d in blobs {
        let dest = blob_dir.join(d.hex());
        if dest.exists() {
            continue;
        }
        let src = store.blob_path(d);
        if fs::hard_link(&src, &dest).is_err() {
            fs::copy(&src, &dest).map_err(io_err("copying blob to", &dest))?;
        }
    }
    let layout = dir.join("oci-layout");
    fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io_err("writing", &layout))?;
    let index = dir.join("index.json");
    fs::write(&index, index_json).map_err(io_err("writing", &index))
}
