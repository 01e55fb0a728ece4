//! `--cache-to`: the records of the steps a build went through (the final
//! stage's with `mode=min`, every stage's with `mode=max`) written as a
//! cache manifest ([`super::format`]) and pushed to a registry (blobs it
//! already holds are not uploaded again: push's HEAD check and mounts) or
//! written to an OCI layout directory.

use super::format::{CacheConfig, CacheEntry, CacheLayer, RootFs, SCHEMA};
use super::{CacheMode, CacheTarget, CacheTo, RemoteCacheError, StepKey, io_err};
use crate::cache::Store;
use crate::digest::Digest;
use crate::image::manifest::ensure_layer_blob;
use crate::registry::{Reference, RegistryOptions};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// The cache manifest's digest.
    pub manifest: Digest,
    /// Records exported.
    pub records: usize,
    /// Layer blobs referenced.
    pub layers: usize,
    /// Where (`--cache-to`'s target, described).
    pub target: String,
    /// For a registry: blobs (uploaded, mounted, already there).
    pub sent: Option<(usize, usize, usize)>,
}

/// Export the records of `steps` (`final_stage`: the plan's target) as `to` says.
pub fn export(
    store: &Arc<Store>,
    steps: &[StepKey],
    final_stage: usize,
    to: &CacheTo,
    registry: &RegistryOptions,
) -> Result<ExportSummary, RemoteCacheError> {
    let mut chosen: Vec<&StepKey> = steps
        .iter()
        .filter(|s| to.mode == CacheMode::Max || s.stage == final_stage)
        .collect();
    // Stages run in parallel: their steps in plan order, so that the same
    // build exports the same cache (a stable sort keeps each stage's order).
    chosen.sort_by_key(|s| s.stage);
    let config = cache_config(store, &chosen, to)?;
    let config_bytes = serde_json::to_vec(&config).expect("serialise cache config");
    let (cd, cs) = store.put_blob(&config_bytes)?;
    let manifest_bytes =
        serde_json::to_vec(&config.manifest((&cd, cs))).expect("serialise cache manifest");
    let (manifest, _) = store.put_blob(&manifest_bytes)?;
    let sent = match &to.target {
        CacheTarget::Registry(r) => {
            let target = Reference::parse(r).map_err(|e| RemoteCacheError::Spec {
                flag: "--cache-to",
                spec: r.clone(),
                reason: e.to_string(),
            })?;
            let p = crate::registry::push(store, &manifest, &target, registry)?;
            Some((p.uploaded, p.mounted, p.existing))
        }
        CacheTarget::Local(dir) => {
            write_layout(store, dir, &config, &manifest)?;
            None
        }
        CacheTarget::Inline => {
            return Err(RemoteCacheError::Format(
                "an inline cache is written into the image's config, not exported".into(),
            ));
        }
    };
    Ok(ExportSummary {
        manifest,
        records: config.records.len(),
        layers: config.layers.len(),
        target: to.target.describe(),
        sent,
    })
}

/// The cache config of `steps`: each layer step's record (from the
/// store), each config-only step's key, and the layers' blobs.
fn cache_config(
    store: &Store,
    steps: &[&StepKey],
    to: &CacheTo,
) -> Result<CacheConfig, RemoteCacheError> {
    let mut layers: Vec<CacheLayer> = Vec::new();
    let mut index: HashMap<Digest, usize> = HashMap::new();
    let mut records = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for s in steps {
        if !seen.insert(s.key) {
            continue;
        }
        let parent = s
            .parts
            .iter()
            .find(|(n, _)| n == "parent")
            .map(|(_, v)| v.clone());
        let mut entry = CacheEntry {
            key: s.key,
            parent,
            parts: s.parts.clone(),
            makes_layer: s.makes_layer,
            layers: Vec::new(),
            config: None,
        };
        if s.makes_layer {
            let Some(rec) = store.record_for_export(&s.key) else {
                continue; // pruned meanwhile: nothing to export
            };
            for l in &rec.layers {
                let i = match index.get(&l.diff_id) {
                    Some(i) => *i,
                    None => {
                        let (digest, size) = ensure_layer_blob(store, &l.diff_id, to.compression)?;
                        layers.push(CacheLayer {
                            digest,
                            diff_id: l.diff_id,
                            size,
                            diff_size: l.size,
                            media_type: to.compression.media_type().to_string(),
                        });
                        index.insert(l.diff_id, layers.len() - 1);
                        layers.len() - 1
                    }
                };
                entry.layers.push(i);
            }
            entry.config = Some(rec.config.clone());
        }
        records.push(entry);
    }
    let diff_ids = layers.iter().map(|l| l.diff_id).collect();
    Ok(CacheConfig {
        schema: SCHEMA.into(),
        layers,
        records,
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
    })
}

/// Write the cache as an OCI layout in `dir` (blobs already there are kept;
/// `index.json` names the new manifest `latest`).
fn write_layout(
    store: &Store,
    dir: &Path,
    config: &CacheConfig,
    manifest: &Digest,
) -> Result<(), RemoteCacheError> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(io_err("creating", &blobs))?;
    let manifest_bytes = store.read_blob(manifest)?;
    let (config_digest, _) = super::format::config_of_manifest(&manifest_bytes)?;
    let mut all: Vec<Digest> = config.layers.iter().map(|l| l.digest).collect();
    all.extend([config_digest, *manifest]);
    for d in all {
        let dest = blobs.join(d.hex());
        if dest.is_file() {
            continue;
        }
        if !store.has_blob(&d) {
            return Err(RemoteCacheError::Format(format!(
                "blob {d} is not in the store (a base layer left in its registry): \
                 pull the base image first, or export to a registry"
            )));
        }
        let src = store.blob_path(&d);
        let tmp = blobs.join(format!(".tmp-{}", d.hex()));
        std::fs::copy(&src, &tmp).map_err(io_err("copying blob to", &tmp))?;
        std::fs::rename(&tmp, &dest).map_err(io_err("renaming", &dest))?;
    }
    let layout = dir.join("oci-layout");
    std::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(io_err("writing", &layout))?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": crate::image::manifest::MANIFEST_MEDIA_TYPE,
            "artifactType": super::format::CACHE_CONFIG_MEDIA_TYPE,
            "digest": manifest,
            "size": manifest_bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    });
    let path = dir.join("index.json");
    let tmp = dir.join(".index.json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(&index).expect("serialise index"),
    )
    .map_err(io_err("writing", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err("renaming", &path))?;
    Ok(())
}
