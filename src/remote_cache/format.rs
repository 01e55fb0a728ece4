//! The cache format (docs/cache-format.md): an OCI image manifest whose
//! config blob, of media type [`CACHE_CONFIG_MEDIA_TYPE`], holds the cache
//! records, and whose layers are the records' layer blobs. The config also
//! carries `rootfs.diff_ids` (one per manifest layer), so any OCI tool and
//! rbuild's own puller can copy it as an ordinary artifact.

use super::RemoteCacheError;
use crate::digest::Digest;
use serde::{Deserialize, Serialize};

/// Media type of the cache config blob.
pub const CACHE_CONFIG_MEDIA_TYPE: &str = "application/vnd.rbuild.cache.config.v1+json";
/// The `schema` value of this version of the format.
pub const SCHEMA: &str = "rbuild.cache.v1";

/// A layer blob of the cache (one per manifest layer, same order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheLayer {
    /// The compressed blob's digest (the manifest layer's digest).
    pub digest: Digest,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the compressed blob.
    pub size: u64,
    /// Size of the uncompressed tar.
    pub diff_size: u64,
    /// The blob's media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
}

/// One step's cache record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The step's cache key.
    pub key: Digest,
    /// The key of the state the step ran on (its `parent` part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The named parts the key was computed from (`parent`, `kind`, `def`,
    /// input digests), as `--explain` shows them.
    pub parts: Vec<(String, String)>,
    /// Whether the step makes a layer (else it only changes the config).
    pub makes_layer: bool,
    /// The result's layers, bottom first, as indices into `layers`.
    #[serde(default)]
    pub layers: Vec<usize>,
    /// The result's image config (the step's config changes applied; the
    /// history entries included). Absent for config-only steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
}

/// The rootfs of the config (diff_ids of the manifest's layers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// One per manifest layer.
    pub diff_ids: Vec<Digest>,
}

/// The cache config blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// [`SCHEMA`].
    pub schema: String,
    /// The manifest's layers, described.
    pub layers: Vec<CacheLayer>,
    /// The records.
    pub records: Vec<CacheEntry>,
    /// diff_ids of the manifest's layers (for generic OCI tools).
    pub rootfs: RootFs,
}

impl CacheConfig {
    /// Parse and check a config blob: the schema, and that every record's
    /// layers exist.
    pub fn parse(bytes: &[u8]) -> Result<CacheConfig, RemoteCacheError> {
        let c: CacheConfig = serde_json::from_slice(bytes)
            .map_err(|e| RemoteCacheError::Format(format!("cache config is not valid: {e}")))?;
        if c.schema != SCHEMA {
            return Err(RemoteCacheError::Format(format!(
                "unknown cache schema {:?} (expected {SCHEMA})",
                c.schema
            )));
        }
        let n = c.layers.len();
        if let Some(r) = c.records.iter().find(|r| r.layers.iter().any(|&i| i >= n)) {
            return Err(RemoteCacheError::Format(format!(
                "record {} names a layer that the cache does not have",
                r.key
            )));
        }
        if let Some(r) = c
            .records
            .iter()
            .find(|r| r.makes_layer && r.config.is_none())
        {
            return Err(RemoteCacheError::Format(format!(
                "record {} has no image config",
                r.key
            )));
        }
        Ok(c)
    }

    /// The manifest describing this config (given as stored bytes).
    pub fn manifest(&self, config: (&Digest, u64)) -> serde_json::Value {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::image::manifest::MANIFEST_MEDIA_TYPE,
            "artifactType": CACHE_CONFIG_MEDIA_TYPE,
            "config": {
                "mediaType": CACHE_CONFIG_MEDIA_TYPE,
                "digest": config.0,
                "size": config.1,
            },
            "layers": self.layers.iter().map(|l| serde_json::json!({
                "mediaType": l.media_type, "digest": l.digest, "size": l.size,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Check that `manifest` is a cache manifest; the config's digest and size.
pub fn config_of_manifest(manifest: &[u8]) -> Result<(Digest, u64), RemoteCacheError> {
    let m: serde_json::Value = serde_json::from_slice(manifest)
        .map_err(|e| RemoteCacheError::Format(format!("manifest is not JSON: {e}")))?;
    let media = m["config"]["mediaType"].as_str().unwrap_or("");
    if media != CACHE_CONFIG_MEDIA_TYPE {
        return Err(RemoteCacheError::Format(format!(
            "not an rbuild cache: its config's media type is {media:?}, not {CACHE_CONFIG_MEDIA_TYPE}"
        )));
    }
    let digest = m["config"]["digest"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| RemoteCacheError::Format("config descriptor without digest".into()))?;
    let size = m["config"]["size"].as_u64().unwrap_or(0);
    Ok((digest, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CacheConfig {
        let d = Digest::of(b"blob");
        CacheConfig {
            schema: SCHEMA.into(),
            layers: vec![CacheLayer {
                digest: d,
                diff_id: Digest::of(b"tar"),
                size: 4,
                diff_size: 3,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            }],
            records: vec![CacheEntry {
                key: Digest::of(b"key"),
                parent: Some("p".into()),
                parts: vec![("def".into(), "RUN x".into())],
                makes_layer: true,
                layers: vec![0],
                config: Some(serde_json::json!({"architecture": "amd64"})),
            }],
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![Digest::of(b"tar")],
            },
        }
    }

    #[test]
    fn round_trips_and_rejects_bad_configs() {
        let c = sample();
        let bytes = serde_json::to_vec(&c).unwrap();
        assert_eq!(CacheConfig::parse(&bytes).unwrap(), c);
        let mut bad = c.clone();
        bad.records[0].layers = vec![3];
        let err = CacheConfig::parse(&serde_json::to_vec(&bad).unwrap()).unwrap_err();
        assert!(err.to_string().contains("names a layer"), "{err}");
        let mut foreign = c.clone();
        foreign.schema = "other".into();
        assert!(CacheConfig::parse(&serde_json::to_vec(&foreign).unwrap()).is_err());
        assert!(CacheConfig::parse(b"{\"architecture\":\"amd64\"}").is_err());
    }

    #[test]
    fn only_cache_manifests_are_accepted() {
        let c = sample();
        let d = Digest::of(b"cfg");
        let m = serde_json::to_vec(&c.manifest((&d, 7))).unwrap();
        assert_eq!(config_of_manifest(&m).unwrap(), (d, 7));
        let image = br#"{"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:00"}}"#;
        let err = config_of_manifest(image).unwrap_err();
        assert!(err.to_string().contains("not an rbuild cache"), "{err}");
    }
}
