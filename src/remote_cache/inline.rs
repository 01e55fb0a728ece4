//! `--cache-to type=inline`: the cache records of the final stage's steps
//! (BuildKit's inline cache holds `mode=min` only) kept in the image's own
//! config under [`INLINE_KEY`], with the image's layers as the cache's
//! layers; `--cache-from REF` of such an image reads them back.

use super::format::{CacheConfig, CacheEntry, CacheLayer, RootFs, SCHEMA};
use super::{RemoteCacheError, StepKey};
use crate::cache::{LayerRef, Store};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The image config key of the inline cache (BuildKit's is
/// `moby.buildkit.cache.v0`).
pub const INLINE_KEY: &str = "rbuild.inline-cache.v1";
/// The `schema` of the inline cache.
pub const INLINE_SCHEMA: &str = "rbuild.inline-cache.v1";

/// The value kept under [`INLINE_KEY`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct InlineCache {
    schema: String,
    /// Uncompressed sizes of the image's layers (bottom first).
    diff_sizes: Vec<u64>,
    /// The records; their `layers` index the image's layers.
    records: Vec<CacheEntry>,
}

/// The inline cache of a build whose image has `layers`: a record for each
/// step of `final_stage` (a layer step's layers are a prefix of the
/// image's). The value, and how many records it holds.
pub fn inline_cache(
    store: &Store,
    steps: &[StepKey],
    final_stage: usize,
    layers: &[LayerRef],
) -> (serde_json::Value, usize) {
    let mut records = Vec::new();
    let mut seen = HashSet::new();
    for s in steps.iter().filter(|s| s.stage == final_stage) {
        if !seen.insert(s.key) {
            continue;
        }
        let mut entry = CacheEntry {
            key: s.key,
            parent: s
                .parts
                .iter()
                .find(|(n, _)| n == "parent")
                .map(|(_, v)| v.clone()),
            parts: s.parts.clone(),
            makes_layer: s.makes_layer,
            layers: Vec::new(),
            config: None,
        };
        if s.makes_layer {
            let Some(rec) = store.record_for_export(&s.key) else {
                continue;
            };
            let n = rec.layers.len();
            let prefix = n <= layers.len()
                && rec
                    .layers
                    .iter()
                    .zip(layers)
                    .all(|(a, b)| a.diff_id == b.diff_id);
            if !prefix {
                continue;
            }
            entry.layers = (0..n).collect();
            entry.config = Some(rec.config.clone());
        }
        records.push(entry);
    }
    let n = records.len();
    let value = InlineCache {
        schema: INLINE_SCHEMA.into(),
        diff_sizes: layers.iter().map(|l| l.size).collect(),
        records,
    };
    (
        serde_json::to_value(value).expect("serialise inline cache"),
        n,
    )
}

/// The cache kept inline in an image: `manifest` and `config` are the
/// image's. `Ok(None)` when the config holds none.
pub fn from_image(manifest: &[u8], config: &[u8]) -> Result<Option<CacheConfig>, RemoteCacheError> {
    let bad = |what: String| RemoteCacheError::Format(format!("inline cache: {what}"));
    let config: serde_json::Value =
        serde_json::from_slice(config).map_err(|e| bad(format!("image config: {e}")))?;
    let Some(inline) = config.get(INLINE_KEY) else {
        return Ok(None);
    };
    let inline: InlineCache =
        serde_json::from_value(inline.clone()).map_err(|e| bad(e.to_string()))?;
    if inline.schema != INLINE_SCHEMA {
        return Err(bad(format!("unknown schema {:?}", inline.schema)));
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(manifest).map_err(|e| bad(format!("manifest: {e}")))?;
    let blobs = manifest["layers"].as_array().cloned().unwrap_or_default();
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if blobs.len() != diff_ids.len() {
        return Err(bad(
            "the manifest's layers and the config's diff_ids differ".into(),
        ));
    }
    let mut layers = Vec::new();
    for (i, (b, d)) in blobs.iter().zip(&diff_ids).enumerate() {
        let digest = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse().ok());
        let (Some(blob), Some(diff_id)) = (digest(&b["digest"]), digest(d)) else {
            return Err(bad(format!("layer {i} has no digest")));
        };
        layers.push(CacheLayer {
            digest: blob,
            diff_id,
            size: b["size"].as_u64().unwrap_or(0),
            diff_size: inline.diff_sizes.get(i).copied().unwrap_or(0),
            media_type: b["mediaType"].as_str().unwrap_or("").to_string(),
        });
    }
    let cache = CacheConfig {
        schema: SCHEMA.into(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: layers.iter().map(|l| l.diff_id).collect(),
        },
        layers,
        records: inline.records,
    };
    // The checks of a cache config (every record's layers exist, …).
    let bytes = serde_json::to_vec(&cache).expect("serialise cache config");
    CacheConfig::parse(&bytes).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn image(records: serde_json::Value) -> (Vec<u8>, Vec<u8>) {
        let (b0, b1) = (Digest::of(b"blob0"), Digest::of(b"blob1"));
        let (d0, d1) = (Digest::of(b"tar0"), Digest::of(b"tar1"));
        let gz = "application/vnd.docker.image.rootfs.diff.tar.gzip";
        let manifest = serde_json::json!({"layers": [
            {"mediaType": gz, "digest": b0, "size": 5},
            {"mediaType": gz, "digest": b1, "size": 6},
        ]});
        let config = serde_json::json!({
            "rootfs": {"type": "layers", "diff_ids": [d0, d1]},
            INLINE_KEY: {"schema": INLINE_SCHEMA, "diff_sizes": [10, 20], "records": records},
        });
        (
            serde_json::to_vec(&manifest).unwrap(),
            serde_json::to_vec(&config).unwrap(),
        )
    }

    #[test]
    fn an_image_inline_cache_names_the_image_layers() {
        let key = Digest::of(b"key");
        let (m, c) = image(serde_json::json!([{
            "key": key, "parts": [["kind", "RUN"]], "makes_layer": true,
            "layers": [0, 1], "config": {"architecture": "amd64"}
        }]));
        let cache = from_image(&m, &c).unwrap().expect("an inline cache");
        assert_eq!(cache.records[0].key, key);
        assert_eq!(cache.layers.len(), 2);
        assert_eq!(cache.layers[1].digest, Digest::of(b"blob1"));
        assert_eq!(cache.layers[1].diff_id, Digest::of(b"tar1"));
        assert_eq!(cache.layers[1].diff_size, 20);
        // A record naming a layer the image lacks: rejected.
        let (m, c) = image(serde_json::json!([{
            "key": key, "parts": [], "makes_layer": true,
            "layers": [2], "config": {"architecture": "amd64"}
        }]));
        assert!(from_image(&m, &c).is_err());
        // An image without one.
        assert!(
            from_image(&m, br#"{"rootfs":{"diff_ids":[]}}"#)
                .unwrap()
                .is_none()
        );
    }
}
