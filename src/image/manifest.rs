//! Image manifests: make sure each layer has a compressed blob, write the
//! config and manifest blobs, and describe the result.

use super::ImageState;
use super::config::ImageConfig;
use crate::cache::{Store, StoreError};
use crate::digest::Digest;
use crate::layer::LayerError;
use crate::layer::compress::{Compression, LayerCompressor};
use crate::layer::tarball::{TarOptions, write_layer_tar};
use std::io::{self, Read};

/// OCI manifest media type.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI config media type.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Docker (schema 2) manifest media type.
pub const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker config media type.
pub const DOCKER_CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.container.image.v1+json";

/// Which family of media types a manifest uses (`oci-mediatypes=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaTypes {
    /// OCI image spec types.
    #[default]
    Oci,
    /// Docker image manifest v2 schema 2 types (zstd layers stay OCI, as
    /// Docker has no zstd type).
    Docker,
}

impl MediaTypes {
    fn manifest(self) -> &'static str {
        match self {
            MediaTypes::Oci => MANIFEST_MEDIA_TYPE,
            MediaTypes::Docker => DOCKER_MANIFEST_MEDIA_TYPE,
        }
    }
    fn config(self) -> &'static str {
        match self {
            MediaTypes::Oci => CONFIG_MEDIA_TYPE,
            MediaTypes::Docker => DOCKER_CONFIG_MEDIA_TYPE,
        }
    }
    fn layer(self, comp: Compression) -> &'static str {
        match self {
            MediaTypes::Oci => comp.media_type(),
            MediaTypes::Docker => comp.docker_media_type(),
        }
    }
}

/// A layer blob as it appears in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// Media type.
    pub media_type: String,
    /// Blob digest.
    pub digest: Digest,
    /// Blob size.
    pub size: u64,
    /// Uncompressed digest.
    pub diff_id: Digest,
}

/// A written image.
#[derive(Debug, Clone)]
pub struct WrittenImage {
    /// Manifest blob digest.
    pub manifest: Digest,
    /// Manifest size.
    pub manifest_size: u64,
    /// Config blob digest.
    pub config: Digest,
    /// Config size.
    pub config_size: u64,
    /// Layers in order.
    pub layers: Vec<LayerBlob>,
    /// The config.
    pub image_config: ImageConfig,
    /// How the layers are compressed.
    pub compression: Compression,
    /// The media types used.
    pub media_types: MediaTypes,
}

impl WrittenImage {
    /// The manifest's media type.
    pub fn manifest_media_type(&self) -> &'static str {
        self.media_types.manifest()
    }
}

/// Tar options for this process (a non-root builder's files appear as root's).
pub fn tar_options() -> TarOptions {
    let uid = rustix::process::geteuid();
    let gid = rustix::process::getegid();
    TarOptions {
        epoch: None,
        map_owner: (!uid.is_root()).then(|| (uid.as_raw(), gid.as_raw())),
    }
}

fn compression_of(media_type: &str) -> &'static str {
    if media_type.ends_with("zstd") {
        "zstd"
    } else if media_type.ends_with("gzip") {
        "gzip"
    } else {
        "uncompressed"
    }
}

/// Make sure `diff_id` has a blob compressed with `comp`; returns it.
pub fn ensure_layer_blob(
    store: &Store,
    diff_id: &Digest,
    comp: Compression,
) -> Result<(Digest, u64), LayerError> {
    let known = store.layer_blobs(diff_id);
    // A layer of a lazily resolved base (neither blob nor files here) is
    // the blob recorded for it: still in its registry, mounted on push.
    if let Some((d, s)) = known.blobs.get(comp.name())
        && (store.has_blob(d) || crate::registry::lazy::is_remote(store, diff_id, d))
    {
        return Ok((*d, *s));
    }
    let mut out = LayerCompressor::new(store.blob_writer()?, comp).map_err(|e| LayerError::Io {
        what: "compressing",
        path: store.root().to_path_buf(),
        source: e,
    })?;
    // Prefer re-encoding an existing blob: it keeps the exact tar bytes.
    let existing = known.blobs.iter().find(|(_, (d, _))| store.has_blob(d));
    if let Some((name, (d, _))) = existing {
        let path = store.blob_path(d);
        let f = std::fs::File::open(&path).map_err(crate::layer::io_err("opening", &path))?;
        let mut reader: Box<dyn Read> = match compression_of(name) {
            "gzip" => Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(f))),
            "zstd" => Box::new(
                zstd::stream::read::Decoder::new(f)
                    .map_err(crate::layer::io_err("decoding", &path))?,
            ),
            _ => Box::new(io::BufReader::new(f)),
        };
        io::copy(&mut reader, &mut out).map_err(crate::layer::io_err("recompressing", &path))?;
    } else {
        let snap = store.snapshot_path(diff_id);
        out = write_layer_tar(&snap, out, tar_options())?;
    }
    let (writer, got, _) = out.finish().map_err(|e| LayerError::Io {
        what: "compressing",
        path: store.root().to_path_buf(),
        source: e,
    })?;
    if got != *diff_id {
        return Err(LayerError::Store(StoreError::Corrupt {
            path: store.snapshot_path(diff_id),
            reason: format!("layer content now hashes to {got}, expected {diff_id}"),
        }));
    }
    let blob = writer.commit()?;
    store.add_layer_blob(diff_id, comp.name(), blob)?;
    Ok(blob)
}

/// Write the config and manifest of `state` into the store.
pub fn write_image(
    store: &Store,
    state: &ImageState,
    comp: Compression,
    types: MediaTypes,
) -> Result<WrittenImage, LayerError> {
    let mut config: ImageConfig = state.config.clone();
    config.rootfs.diff_ids = state.layers.iter().map(|l| l.diff_id).collect();
    let layers = layer_blobs(store, &config, comp, types)?;
    let config_bytes = config.to_json();
    let (config_digest, config_size) = store.put_blob(&config_bytes)?;
    finish_image(
        store,
        layers,
        (config_digest, config_size),
        config,
        comp,
        types,
    )
}

/// Write the manifest of a stored image by ID, its config blob kept byte
/// for byte (a loaded image's config may carry fields rbuild does not
/// model; rewriting it would change the image ID).
pub fn write_image_for_config(
    store: &Store,
    id: &Digest,
    comp: Compression,
    types: MediaTypes,
) -> Result<WrittenImage, LayerError> {
    let bytes = store.read_blob(id)?;
    let config: ImageConfig = serde_json::from_slice(&bytes).map_err(|e| {
        LayerError::Store(StoreError::Corrupt {
            path: store.blob_path(id),
            reason: e.to_string(),
        })
    })?;
    let layers = layer_blobs(store, &config, comp, types)?;
    finish_image(
        store,
        layers,
        (*id, bytes.len() as u64),
        config,
        comp,
        types,
    )
}

/// Like [`write_image_for_config`], but each layer goes as a blob the store
/// already has (the exact bytes an archive or a registry gave), compressed
/// with `comp` only when it has none. Zstd blobs are not reused for Docker
/// media types (older `docker load` cannot read them).
pub fn write_image_reusing_blobs(
    store: &Store,
    id: &Digest,
    comp: Compression,
    types: MediaTypes,
) -> Result<WrittenImage, LayerError> {
    let bytes = store.read_blob(id)?;
    let config: ImageConfig = serde_json::from_slice(&bytes).map_err(|e| {
        LayerError::Store(StoreError::Corrupt {
            path: store.blob_path(id),
            reason: e.to_string(),
        })
    })?;
    let mut layers = Vec::new();
    for diff_id in &config.rootfs.diff_ids {
        let known = store.layer_blobs(diff_id);
        let usable = |name: &'static str| {
            known
                .blobs
                .get(name)
                .filter(|(d, _)| store.has_blob(d))
                .map(|b| (name, *b))
        };
        let mut order = vec![comp.name(), "gzip", "uncompressed"];
        if types == MediaTypes::Oci {
            order.push("zstd");
        }
        let found = order.into_iter().find_map(usable);
        layers.push(match found {
            Some((name, (digest, size))) => {
                let c = match name {
                    "gzip" => Compression::default(),
                    "zstd" => Compression::Zstd { level: 3 },
                    _ => Compression::None,
                };
                LayerBlob {
                    media_type: types.layer(c).to_string(),
                    digest,
                    size,
                    diff_id: *diff_id,
                }
            }
            None => {
                let (digest, size) = ensure_layer_blob(store, diff_id, comp)?;
                LayerBlob {
                    media_type: types.layer(comp).to_string(),
                    digest,
                    size,
                    diff_id: *diff_id,
                }
            }
        });
    }
    finish_image(
        store,
        layers,
        (*id, bytes.len() as u64),
        config,
        comp,
        types,
    )
}

fn layer_blobs(
    store: &Store,
    config: &ImageConfig,
    comp: Compression,
    types: MediaTypes,
) -> Result<Vec<LayerBlob>, LayerError> {
    let mut layers = Vec::new();
    for diff_id in &config.rootfs.diff_ids {
        if let Some(l) = remote_as_is(store, diff_id, comp, types) {
            layers.push(l);
            continue;
        }
        let (digest, size) = ensure_layer_blob(store, diff_id, comp)?;
        layers.push(LayerBlob {
            media_type: types.layer(comp).to_string(),
            digest,
            size,
            diff_id: *diff_id,
        });
    }
    Ok(layers)
}

/// A layer of a lazily resolved base known only as a blob left in its
/// registry compressed otherwise than `comp` (nothing here to recompress):
/// that blob as it is, as BuildKit keeps a base's blobs unless compression
/// is forced. Not for zstd under Docker media types (which have none).
fn remote_as_is(
    store: &Store,
    diff_id: &Digest,
    comp: Compression,
    types: MediaTypes,
) -> Option<LayerBlob> {
    let known = store.layer_blobs(diff_id);
    if known.blobs.contains_key(comp.name())
        || store.has_snapshot(diff_id)
        || known.blobs.values().any(|(d, _)| store.has_blob(d))
    {
        return None;
    }
    let (name, (digest, size)) = known
        .blobs
        .iter()
        .find(|(_, (d, _))| crate::registry::lazy::is_remote(store, diff_id, d))?;
    let c = match name.as_str() {
        "gzip" => Compression::default(),
        "zstd" if types == MediaTypes::Docker => return None,
        "zstd" => Compression::Zstd { level: 3 },
        _ => Compression::None,
    };
    Some(LayerBlob {
        media_type: types.layer(c).to_string(),
        digest: *digest,
        size: *size,
        diff_id: *diff_id,
    })
}

fn finish_image(
    store: &Store,
    layers: Vec<LayerBlob>,
    (config_digest, config_size): (Digest, u64),
    config: ImageConfig,
    comp: Compression,
    types: MediaTypes,
) -> Result<WrittenImage, LayerError> {
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": types.manifest(),
        "config": {"mediaType": types.config(), "digest": config_digest, "size": config_size},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": l.media_type, "digest": l.digest, "size": l.size
        })).collect::<Vec<_>>(),
    });
    let manifest_bytes = serde_json::to_vec(&manifest).expect("serialise manifest");
    // Validate against the OCI types before anything depends on it.
    serde_json::from_slice::<oci_spec::image::ImageManifest>(&manifest_bytes).map_err(|e| {
        LayerError::Store(StoreError::Corrupt {
            path: store.root().to_path_buf(),
            reason: format!("generated manifest is not a valid OCI manifest: {e}"),
        })
    })?;
    let (manifest_digest, manifest_size) = store.put_blob(&manifest_bytes)?;
    Ok(WrittenImage {
        manifest: manifest_digest,
        manifest_size,
        config: config_digest,
        config_size,
        layers,
        image_config: config,
        compression: comp,
        media_types: types,
    })
}

/// A manifest already in the store (a pulled image's), described as a
/// written image, when its config and every layer blob are stored.
pub fn read_written(store: &Store, manifest: &Digest) -> Option<WrittenImage> {
    let bytes = store.read_blob(manifest).ok()?;
    let m: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let digest = |v: &serde_json::Value| v["digest"].as_str()?.parse::<Digest>().ok();
    let config = digest(&m["config"])?;
    let image_config: ImageConfig = serde_json::from_slice(&store.read_blob(&config).ok()?).ok()?;
    let layers: Vec<LayerBlob> = m["layers"]
        .as_array()?
        .iter()
        .zip(&image_config.rootfs.diff_ids)
        .map(|(l, diff_id)| {
            let d = digest(l).filter(|d| store.has_blob(d))?;
            Some(LayerBlob {
                media_type: l["mediaType"].as_str()?.to_string(),
                digest: d,
                size: l["size"].as_u64()?,
                diff_id: *diff_id,
            })
        })
        .collect::<Option<_>>()?;
    if layers.len() != image_config.rootfs.diff_ids.len() {
        return None;
    }
    let media_types = if m["mediaType"] == DOCKER_MANIFEST_MEDIA_TYPE {
        MediaTypes::Docker
    } else {
        MediaTypes::Oci
    };
    let compression = match layers.first().map(|l| compression_of(&l.media_type)) {
        Some("zstd") => Compression::Zstd { level: 3 },
        Some("uncompressed") => Compression::None,
        _ => Compression::default(),
    };
    Some(WrittenImage {
        manifest: *manifest,
        manifest_size: bytes.len() as u64,
        config,
        config_size: m["config"]["size"].as_u64()?,
        layers,
        image_config,
        compression,
        media_types,
    })
}
