//! Where base images come from: the local store (by normalised name) and
//! OCI image layouts (`oci-layout://PATH[:TAG|@DIGEST]`). Layers are
//! imported into the store and unpacked into snapshots, their diff_ids
//! verified. Pulling from registries is `crate::registry`, tied in by
//! `super::resolver`.

use super::ImageState;
use super::config::ImageConfig;
use crate::cache::{LayerRef, Store, StoreError};
use crate::digest::Digest;
use crate::layer::LayerError;
use crate::layer::unpack::unpack_layer;
use sha2::{Digest as _, Sha256};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Errors finding or importing an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The reference names nothing in the store.
    #[error("image {0} not found in the store")]
    NotFound(String),
    /// Not a valid reference (BuildKit's message for FROM).
    #[error("failed to parse stage name {name:?}: {source}")]
    Reference {
        /// The reference as written.
        name: String,
        /// Docker's reason.
        source: crate::registry::ReferenceError,
    },
    /// Pulling failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// An earlier attempt in this build failed (its message).
    #[error("{0}")]
    Failed(String),
    /// An OCI layout is malformed.
    #[error("OCI layout {path}: {reason}")]
    Layout {
        /// The layout directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Layer failure.
    #[error(transparent)]
    Layer(#[from] LayerError),
}

/// A reference to a base image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A registry reference, normalised (`docker.io/library/busybox:latest`).
    Named(crate::registry::Reference),
    /// An OCI image layout directory.
    OciLayout {
        /// Directory.
        path: PathBuf,
        /// `:tag` (matched against `org.opencontainers.image.ref.name`).
        tag: Option<String>,
        /// `@sha256:...`.
        digest: Option<Digest>,
    },
}

/// The name an image is stored under: Docker's normalised form
/// (`busybox` → `docker.io/library/busybox:latest`).
pub fn normalize_name(name: &str) -> String {
    crate::registry::reference::normalize(name)
}

/// How rbuild before normalised names stored them (`name[:latest]`), still
/// looked up so that older stores keep working.
fn legacy_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if name.contains('@') || last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

impl ImageRef {
    /// Parse a FROM / --from reference.
    pub fn parse(s: &str) -> Result<ImageRef, ImageError> {
        let Some(rest) = s.strip_prefix("oci-layout://") else {
            return crate::registry::Reference::parse(s)
                .map(ImageRef::Named)
                .map_err(|source| ImageError::Reference {
                    name: s.to_string(),
                    source,
                });
        };
        if let Some((p, d)) = rest.rsplit_once('@')
            && let Ok(d) = d.parse::<Digest>()
        {
            return Ok(ImageRef::OciLayout {
                path: p.into(),
                tag: None,
                digest: Some(d),
            });
        }
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        Ok(match rest[last_slash..].rfind(':') {
            Some(i) => ImageRef::OciLayout {
                path: rest[..last_slash + i].into(),
                tag: Some(rest[last_slash + i + 1..].to_string()),
                digest: None,
            },
            None => ImageRef::OciLayout {
                path: rest.into(),
                tag: None,
                digest: None,
            },
        })
    }
}

/// A loaded image: its state and identity.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// Layers and config.
    pub state: ImageState,
    /// Its identity in cache keys: the config digest for local images, the
    /// manifest digest for OCI layouts.
    pub manifest: Digest,
}

/// Load (importing if needed) an image, without the network: a named
/// image must be in the store.
pub fn load_image(store: &Store, r: &ImageRef) -> Result<LoadedImage, ImageError> {
    load_image_for(store, r, &crate::frontend::platform::Platform::host())
}

/// [`load_image`] choosing `platform`'s image where an OCI layout holds an
/// index (a stored name holds one platform's image).
pub fn load_image_for(
    store: &Store,
    r: &ImageRef,
    platform: &crate::frontend::platform::Platform,
) -> Result<LoadedImage, ImageError> {
    match r {
        ImageRef::Named(name) => {
            let images = store.images();
            let key = name.to_string();
            // By digest: any stored tag of the repository pulled as that
            // manifest (Docker's RepoDigests).
            let by_digest = || {
                let d: Digest = name.digest()?.parse().ok()?;
                let repo = name.name();
                images.iter().find_map(|(k, e)| {
                    let rest = k.strip_prefix(&repo)?;
                    (rest.starts_with([':', '@']) && e.manifest == Some(d)).then_some(e)
                })
            };
            let entry = images
                .get(&key)
                .or_else(|| images.get(&legacy_name(&name.familiar_string())))
                .or_else(by_digest)
                .ok_or(ImageError::NotFound(key))?;
            // A multi-platform name: the platform's manifest from its index.
            if let Some(m) = entry
                .index
                .filter(|i| store.has_blob(i))
                .and_then(|i| store.read_blob(&i).ok())
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|idx| crate::registry::pull::choose(&idx, platform))
                .filter(|m| store.has_blob(m))
            {
                return load_manifest(store, &m, None);
            }
            match entry.manifest {
                Some(m) if store.has_blob(&m) => load_manifest(store, &m, None),
                _ => load_local(store, &entry.config),
            }
        }
        ImageRef::OciLayout { path, tag, digest } => {
            let m = find_in_layout(path, tag.as_deref(), digest.as_ref(), platform)?;
            load_manifest(store, &m, Some(path))
        }
    }
}

/// A local image by ID: its config names the layers, whose snapshots are in
/// the store (unpacked from a known compressed blob when missing).
pub fn load_local(store: &Store, id: &Digest) -> Result<LoadedImage, ImageError> {
    let config: ImageConfig = serde_json::from_slice(&store.read_blob(id)?).map_err(|e| {
        ImageError::Store(StoreError::Corrupt {
            path: store.blob_path(id),
            reason: e.to_string(),
        })
    })?;
    let mut layers = Vec::new();
    for diff_id in &config.rootfs.diff_ids {
        if !store.has_snapshot(diff_id) {
            // Unpack from a compressed blob if one is known (e.g. an imported image).
            let known = store.layer_blobs(diff_id);
            let Some((name, (blob, _))) = known.blobs.iter().find(|(_, (d, _))| store.has_blob(d))
            else {
                let lazy = match crate::registry::lazy::is_recorded(store, diff_id) {
                    true => {
                        " (left in its registry by a push-only build on a lazily pulled base; `rbuild pull NAME` downloads it)"
                    }
                    false => "",
                };
                return Err(ImageError::Store(StoreError::NotFound(format!(
                    "layer {diff_id} of image {id}{lazy}"
                ))));
            };
            let media = match name.as_str() {
                "gzip" => "tar+gzip",
                "zstd" => "tar+zstd",
                _ => "tar",
            };
            unpack_blob(store, blob, media, diff_id)?;
        }
        layers.push(LayerRef {
            diff_id: *diff_id,
            size: 0,
        });
    }
    Ok(LoadedImage {
        state: ImageState { layers, config },
        manifest: *id,
    })
}

fn layout_err(path: &Path, reason: impl Into<String>) -> ImageError {
    ImageError::Layout {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_layout_blob(layout: &Path, d: &Digest) -> Result<Vec<u8>, ImageError> {
    let p = layout.join("blobs/sha256").join(d.hex());
    let data =
        std::fs::read(&p).map_err(|e| layout_err(layout, format!("reading blob {d}: {e}")))?;
    if Digest::of(&data) != *d {
        return Err(layout_err(
            layout,
            format!("blob {d} does not match its digest"),
        ));
    }
    Ok(data)
}

fn find_in_layout(
    layout: &Path,
    tag: Option<&str>,
    digest: Option<&Digest>,
    platform: &crate::frontend::platform::Platform,
) -> Result<Digest, ImageError> {
    if let Some(d) = digest {
        return Ok(*d);
    }
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("index.json"))
            .map_err(|e| layout_err(layout, format!("index.json: {e}")))?,
    )
    .map_err(|e| layout_err(layout, format!("index.json: {e}")))?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    let pick = manifests.iter().find(|m| match tag {
        Some(t) => m["annotations"]["org.opencontainers.image.ref.name"].as_str() == Some(t),
        None => true,
    });
    let Some(m) = pick else {
        return Err(layout_err(
            layout,
            format!("no image tagged {:?}", tag.unwrap_or("")),
        ));
    };
    let d: Digest = m["digest"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| layout_err(layout, "manifest descriptor without a sha256 digest"))?;
    if m["mediaType"]
        .as_str()
        .is_some_and(|t| t.contains("index") || t.contains("manifest.list"))
    {
        // A multi-platform index: choose the build's platform.
        let idx: serde_json::Value = serde_json::from_slice(&read_layout_blob(layout, &d)?)
            .map_err(|e| layout_err(layout, format!("index {d}: {e}")))?;
        return crate::registry::pull::choose(&idx, platform)
            .ok_or_else(|| layout_err(layout, format!("no manifest for {platform} in index {d}")));
    }
    Ok(d)
}

/// Load an image from its manifest (blobs from the store, or copied from an
/// OCI layout), unpacking layers that have no snapshot yet.
pub(crate) fn load_manifest(
    store: &Store,
    m: &Digest,
    layout: Option<&PathBuf>,
) -> Result<LoadedImage, ImageError> {
    let fetch = |d: &Digest| -> Result<Vec<u8>, ImageError> {
        if store.has_blob(d) {
            return Ok(store.read_blob(d)?);
        }
        match layout {
            Some(l) => {
                let data = read_layout_blob(l, d)?;
                store.put_blob(&data)?;
                Ok(data)
            }
            None => Err(ImageError::Store(StoreError::NotFound(format!(
                "blob {d} not in the store"
            )))),
        }
    };
    let manifest: serde_json::Value = serde_json::from_slice(&fetch(m)?).map_err(|e| {
        ImageError::Store(StoreError::Corrupt {
            path: store.blob_path(m),
            reason: e.to_string(),
        })
    })?;
    let cfg_digest: Digest = manifest["config"]["digest"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ImageError::NotFound(format!("manifest {m} has no config")))?;
    let config: ImageConfig = serde_json::from_slice(&fetch(&cfg_digest)?).map_err(|e| {
        ImageError::Store(StoreError::Corrupt {
            path: store.blob_path(&cfg_digest),
            reason: e.to_string(),
        })
    })?;
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    if layers.len() != config.rootfs.diff_ids.len() {
        return Err(ImageError::Store(StoreError::Corrupt {
            path: store.blob_path(m),
            reason: "layer count differs from the config's diff_ids".into(),
        }));
    }
    let mut refs = Vec::new();
    for (l, diff_id) in layers.iter().zip(&config.rootfs.diff_ids) {
        let d: Digest = l["digest"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                ImageError::Store(StoreError::Corrupt {
                    path: store.blob_path(m),
                    reason: "layer without digest".into(),
                })
            })?;
        let media = l["mediaType"].as_str().unwrap_or_default().to_string();
        if !store.has_blob(&d) {
            let _ = fetch(&d)?;
        }
        let size = if store.has_snapshot(diff_id) {
            0
        } else {
            unpack_blob(store, &d, &media, diff_id)?
        };
        let comp = if media.ends_with("zstd") {
            "zstd"
        } else if media.ends_with("gzip") {
            "gzip"
        } else {
            "uncompressed"
        };
        store.add_layer_blob(diff_id, comp, (d, l["size"].as_u64().unwrap_or(0)))?;
        refs.push(LayerRef {
            diff_id: *diff_id,
            size,
        });
    }
    Ok(LoadedImage {
        state: ImageState {
            layers: refs,
            config,
        },
        manifest: *m,
    })
}

/// Reader that hashes what it reads.
struct HashRead<R> {
    inner: R,
    h: Sha256,
    n: u64,
}

impl<R: Read> Read for HashRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.h.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

fn unpack_blob(
    store: &Store,
    blob: &Digest,
    media: &str,
    diff_id: &Digest,
) -> Result<u64, ImageError> {
    let path = store.blob_path(blob);
    let f = std::fs::File::open(&path).map_err(crate::layer::io_err("opening", &path))?;
    unpack_reader(store, f, media, diff_id, *blob)
}

/// Unpack the (compressed, as `media` says) layer `blob` read from `f` into
/// the snapshot of `diff_id`, which it must decompress to. Returns the
/// uncompressed size.
pub(crate) fn unpack_reader<'a>(
    store: &Store,
    f: impl Read + 'a,
    media: &str,
    diff_id: &Digest,
    blob: Digest,
) -> Result<u64, ImageError> {
    let path = store.blob_path(&blob);
    let reader: Box<dyn Read + 'a> = if media.ends_with("zstd") {
        Box::new(
            zstd::stream::read::Decoder::new(f).map_err(crate::layer::io_err("decoding", &path))?,
        )
    } else if media.ends_with("gzip") || media.ends_with("tar.gzip") {
        Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(f)))
    } else {
        Box::new(io::BufReader::new(f))
    };
    let mut hr = HashRead {
        inner: reader,
        h: Sha256::new(),
        n: 0,
    };
    let tmp = store.temp_dir("unpack")?;
    unpack_layer(&mut hr, tmp.path())?;
    // Drain trailing padding so the hash covers the whole stream.
    io::copy(&mut hr, &mut io::sink()).map_err(crate::layer::io_err("reading", &path))?;
    let got = Digest(hr.h.finalize().into());
    if got != *diff_id {
        return Err(ImageError::Store(StoreError::Corrupt {
            path,
            reason: format!("layer decompresses to {got}, config says {diff_id}"),
        }));
    }
    let dir = tmp.keep();
    store.commit_snapshot(&dir, diff_id)?;
    Ok(hr.n)
}
