//! `--cache-from`: each cache's manifest and config are read when the build
//! starts (a missing, unreachable or foreign cache is a warning and is
//! skipped). A step found in one is not run; its layers are fetched when
//! the solver takes the hit, every blob verified against its digest.

use super::format::{CacheConfig, CacheEntry, CacheLayer, config_of_manifest};
use super::{CacheFrom, CacheTarget, ImportHit, ImportedCache, RemoteCacheError, io_err};
use crate::cache::{LayerRef, Store};
use crate::digest::Digest;
use crate::frontend::platform::Platform;
use crate::registry::{Reference, RegistryOptions};
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a cache's blobs come from.
enum Origin {
    /// A registry: the cache manifest, pinned by digest.
    Registry(Reference),
    /// An OCI layout directory.
    Local(PathBuf),
}

struct Source {
    name: String,
    origin: Origin,
    config: CacheConfig,
}

/// The caches imported for one build.
pub struct Imported {
    sources: Vec<Source>,
    /// key → (source, record) (the first `--cache-from` that has it).
    index: HashMap<Digest, (usize, usize)>,
    /// diff_id → (source, layer) (the first `--cache-from` that has it).
    layers: HashMap<Digest, (usize, usize)>,
    registry: RegistryOptions,
    /// Hits leave their layers in the registry ([`ImportedCache::keeps_remote`]).
    lazy: bool,
}

impl Imported {
    /// Number of records imported.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether nothing was imported.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Let hits leave their layers in the cache's registry (the caller
    /// knows that every output is a push able to mount them there).
    pub fn set_lazy(&mut self, lazy: bool) {
        self.lazy = lazy;
    }

    /// Whether some imported layer is zstd-compressed (such a layer has
    /// no Docker media type, so it cannot be pushed as it is under those).
    pub fn holds_zstd(&self) -> bool {
        self.sources
            .iter()
            .flat_map(|s| &s.config.layers)
            .any(|l| l.media_type.ends_with("zstd"))
    }
}

/// Read the caches of `from`; what could not be used, as warnings.
pub fn import(
    store: &Arc<Store>,
    from: &[CacheFrom],
    registry: &RegistryOptions,
    platform: &Platform,
) -> (Imported, Vec<String>) {
    let mut imported = Imported {
        sources: Vec::new(),
        index: HashMap::new(),
        layers: HashMap::new(),
        registry: registry.clone(),
        lazy: false,
    };
    let mut warnings = Vec::new();
    for f in from {
        let name = f.target.describe();
        match open(store, &f.target, registry, platform) {
            Ok((origin, config)) => {
                let si = imported.sources.len();
                for (ri, r) in config.records.iter().enumerate() {
                    imported.index.entry(r.key).or_insert((si, ri));
                }
                for (li, l) in config.layers.iter().enumerate() {
                    imported.layers.entry(l.diff_id).or_insert((si, li));
                }
                imported.sources.push(Source {
                    name,
                    origin,
                    config,
                });
            }
            Err(e) => warnings.push(format!("--cache-from {name}: {e}; not used")),
        }
    }
    (imported, warnings)
}

/// Resolve a cache: its manifest (checked to be a cache) and its config.
fn open(
    store: &Arc<Store>,
    target: &CacheTarget,
    registry: &RegistryOptions,
    platform: &Platform,
) -> Result<(Origin, CacheConfig), RemoteCacheError> {
    match target {
        CacheTarget::Registry(r) => {
            let reference = Reference::parse(r).map_err(|e| RemoteCacheError::Spec {
                flag: "--cache-from",
                spec: r.clone(),
                reason: e.to_string(),
            })?;
            // Manifest and config only: the layers stay in the registry.
            let pulled = crate::registry::pull_lazy(store, &reference, registry, platform)?;
            // Named in the store, so that a push to its registry mounts
            // the cache's layers from its repository.
            store.tag_pulled(&reference.to_string(), pulled.config, pulled.manifest)?;
            let manifest = store.read_blob(&pulled.manifest)?;
            let config = match config_of_manifest(&manifest) {
                Ok((config, _)) => CacheConfig::parse(&store.read_blob(&config)?)?,
                // An image: its inline cache, if it has one.
                Err(e) => {
                    let image_config = store.read_blob(&pulled.config)?;
                    super::inline::from_image(&manifest, &image_config)?.ok_or(e)?
                }
            };
            let pinned = format!("{}@{}", reference.name(), pulled.manifest);
            let pinned = Reference::parse(&pinned).map_err(|e| RemoteCacheError::Spec {
                flag: "--cache-from",
                spec: pinned.clone(),
                reason: e.to_string(),
            })?;
            Ok((Origin::Registry(pinned), config))
        }
        CacheTarget::Local(dir) => {
            let index_path = dir.join("index.json");
            let index: serde_json::Value = std::fs::read(&index_path)
                .map_err(io_err("reading", &index_path))
                .and_then(|b| {
                    serde_json::from_slice(&b).map_err(|e| {
                        RemoteCacheError::Format(format!("{}: {e}", index_path.display()))
                    })
                })?;
            // The cache's entry (by artifact type), else the first.
            let entries = index["manifests"].as_array().cloned().unwrap_or_default();
            let entry = entries
                .iter()
                .find(|m| m["artifactType"] == super::format::CACHE_CONFIG_MEDIA_TYPE)
                .or(entries.first())
                .cloned()
                .unwrap_or_default();
            let manifest: Digest = entry["digest"]
                .as_str()
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| {
                    RemoteCacheError::Format(format!("{}: no manifest", index_path.display()))
                })?;
            let bytes = read_verified(dir, &manifest)?;
            let (config, _) = config_of_manifest(&bytes)?;
            let config = CacheConfig::parse(&read_verified(dir, &config)?)?;
            Ok((Origin::Local(dir.clone()), config))
        }
        CacheTarget::Inline => Err(RemoteCacheError::Format(
            "an inline cache is read from its image's reference".into(),
        )),
    }
}

/// A blob of a layout directory, verified against its digest.
fn read_verified(dir: &std::path::Path, d: &Digest) -> Result<Vec<u8>, RemoteCacheError> {
    let p = dir.join("blobs/sha256").join(d.hex());
    let data = std::fs::read(&p).map_err(io_err("reading", &p))?;
    if Digest::of(&data) != *d {
        return Err(RemoteCacheError::Format(format!(
            "blob {} does not match its digest {d}",
            p.display()
        )));
    }
    Ok(data)
}

impl Imported {
    /// The layers of `rec`: fetched into snapshots when the store lacks
    /// them, unless hits stay lazy and `src` is a registry (then recorded
    /// as left there, as a lazily pulled base's).
    fn layers_of(
        &self,
        store: &Arc<Store>,
        src: &Source,
        rec: &CacheEntry,
    ) -> Result<Vec<LayerRef>, RemoteCacheError> {
        let remote = self.lazy && matches!(src.origin, Origin::Registry(_));
        let mut out = Vec::new();
        for &i in &rec.layers {
            let l = &src.config.layers[i];
            if !remote {
                self.local_layer(store, src, l)?;
            } else if !store.has_snapshot(&l.diff_id)
                && !store.has_blob(&l.digest)
                && !crate::registry::lazy::is_remote(store, &l.diff_id, &l.digest)
            {
                store.add_layer_blob(&l.diff_id, compression(l), (l.digest, l.size))?;
                crate::registry::lazy::record(store, &l.diff_id, &l.digest)?;
            }
            out.push(LayerRef {
                diff_id: l.diff_id,
                size: l.diff_size,
            });
        }
        Ok(out)
    }

    /// Make sure the layer `l` of `src` has its snapshot in the store.
    fn local_layer(
        &self,
        store: &Arc<Store>,
        src: &Source,
        l: &CacheLayer,
    ) -> Result<(), RemoteCacheError> {
        if !store.has_snapshot(&l.diff_id) {
            if !store.has_blob(&l.digest) {
                self.fetch_blob(store, src, &l.digest)?;
            }
            let path = store.blob_path(&l.digest);
            let f = std::fs::File::open(&path).map_err(io_err("opening", &path))?;
            crate::image::source::unpack_reader(
                store,
                std::io::BufReader::new(f),
                &l.media_type,
                &l.diff_id,
                l.digest,
            )
            .map_err(|e| RemoteCacheError::Format(format!("layer {}: {e}", l.digest)))?;
        }
        if store.has_blob(&l.digest) {
            store.add_layer_blob(&l.diff_id, compression(l), (l.digest, l.size))?;
        }
        Ok(())
    }

    /// Get one blob of `src` into the store, verified against its digest.
    fn fetch_blob(
        &self,
        store: &Arc<Store>,
        src: &Source,
        d: &Digest,
    ) -> Result<(), RemoteCacheError> {
        match &src.origin {
            Origin::Registry(r) => {
                crate::registry::blobs::download_blobs(store, r, &self.registry, &[*d])?;
                Ok(())
            }
            Origin::Local(dir) => {
                let p = dir.join("blobs/sha256").join(d.hex());
                let mut f = std::fs::File::open(&p).map_err(io_err("opening", &p))?;
                let mut w = store.blob_writer()?;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = f.read(&mut buf).map_err(io_err("reading", &p))?;
                    if n == 0 {
                        break;
                    }
                    std::io::Write::write_all(&mut w, &buf[..n]).map_err(io_err("storing", &p))?;
                }
                let (got, _) = w.commit_expecting(d)?;
                if got != *d {
                    return Err(RemoteCacheError::Format(format!(
                        "blob {} does not match its digest (it is {got}): rejected",
                        p.display()
                    )));
                }
                Ok(())
            }
        }
    }
}

/// The store's name for a cache layer's compression.
fn compression(l: &CacheLayer) -> &'static str {
    if l.media_type.ends_with("zstd") {
        "zstd"
    } else if l.media_type.ends_with("gzip") {
        "gzip"
    } else {
        "uncompressed"
    }
}

impl ImportedCache for Imported {
    fn find(&self, store: &Arc<Store>, key: &Digest) -> Result<Option<ImportHit>, String> {
        let Some(&(si, ri)) = self.index.get(key) else {
            return Ok(None);
        };
        let src = &self.sources[si];
        let rec = &src.config.records[ri];
        let Some(config) = rec.config.clone().filter(|_| rec.makes_layer) else {
            return Ok(None);
        };
        let layers = self
            .layers_of(store, src, rec)
            .map_err(|e| format!("imported cache {}: {e}", src.name))?;
        Ok(Some(ImportHit {
            layers,
            config,
            source: src.name.clone(),
            parts: rec.parts.clone(),
        }))
    }

    fn knows(&self, key: &Digest) -> Option<String> {
        let &(si, _) = self.index.get(key)?;
        Some(self.sources[si].name.clone())
    }

    fn keeps_remote(&self) -> bool {
        self.lazy
    }

    fn materialize(
        &self,
        store: &Arc<Store>,
        layers: &[LayerRef],
    ) -> Result<Vec<LayerRef>, String> {
        let mut out = layers.to_vec();
        for l in &mut out {
            let Some(&(si, li)) = self.layers.get(&l.diff_id) else {
                continue;
            };
            let src = &self.sources[si];
            let cl = &src.config.layers[li];
            if !store.has_snapshot(&l.diff_id) {
                self.local_layer(store, src, cl)
                    .map_err(|e| format!("imported cache {}: {e}", src.name))?;
            }
            if l.size == 0 {
                l.size = cl.diff_size;
            }
        }
        Ok(out)
    }

    fn fetch_blobs(&self, store: &Arc<Store>, blobs: &[Digest]) -> Result<usize, String> {
        let mut n = 0;
        for d in blobs.iter().filter(|d| !store.has_blob(d)) {
            let found = self
                .sources
                .iter()
                .find(|s| s.config.layers.iter().any(|l| l.digest == *d));
            if let Some(src) = found {
                self.fetch_blob(store, src, d)
                    .map_err(|e| format!("imported cache {}: {e}", src.name))?;
                n += 1;
            }
        }
        Ok(n)
    }
}
