//! The local image store as `docker images` sees it: images grouped by ID
//! (the config digest) with their names, Docker's lookup of an image by
//! name, `name@digest`, full or short ID, and image sizes.

use super::config::ImageConfig;
use crate::cache::{ImageEntry, Store, StoreError};
use crate::digest::Digest;
use crate::registry::Reference;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// Errors finding images in the store.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// Nothing matches (Docker's text).
    #[error("No such image: {0}")]
    NotFound(String),
    /// A short ID matches several images.
    #[error("ambiguous image ID {0:?}: it is the start of several image IDs")]
    Ambiguous(String),
    /// The store failed or holds a broken config.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One image of the store with all its names.
#[derive(Debug, Clone)]
pub struct LocalImage {
    /// The image ID (config digest).
    pub id: Digest,
    /// Its names (normalised, sorted), without the dangling marker.
    pub names: Vec<(String, ImageEntry)>,
    /// The config.
    pub config: ImageConfig,
    /// The config as stored, for fields the typed config does not keep.
    pub raw_config: serde_json::Value,
}

/// Whether a names-file key is the marker of an image kept without a name.
pub fn is_dangling_key(key: &str) -> bool {
    key.strip_prefix("sha256:")
        .is_some_and(|h| Digest::from_hex(h).is_some())
}

impl LocalImage {
    /// The names as Docker shows them (`busybox:latest`), in order.
    pub fn repo_tags(&self) -> Vec<String> {
        self.names
            .iter()
            .map(|(n, _)| familiar(n))
            .collect::<Vec<_>>()
    }

    /// `repo@manifest-digest` for each name that was pulled or pushed as a
    /// manifest, as Docker's RepoDigests; deduplicated.
    pub fn repo_digests(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (n, e) in &self.names {
            let (Some(m), Ok(r)) = (e.manifest.or(e.pushed), Reference::parse(n)) else {
                continue;
            };
            let d = format!("{}@{m}", r.familiar_name());
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }

    /// Seconds since the epoch the image was created (its config's
    /// `created`, else when it was first named).
    pub fn created_secs(&self) -> Option<i64> {
        self.config
            .created
            .as_deref()
            .and_then(super::config::parse_rfc3339)
            .or_else(|| self.names.iter().map(|(_, e)| e.created as i64).min())
    }

    /// When a name was last given to it (seconds since the epoch).
    pub fn last_tag_time(&self) -> Option<u64> {
        self.names.iter().map(|(_, e)| e.created).max()
    }

    /// The manifest digest a name was pulled as.
    pub fn digest_of(&self, name: &str) -> Option<Digest> {
        self.names
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, e)| e.manifest)
    }
}

/// `docker.io/library/busybox:latest` → `busybox:latest`.
pub fn familiar(name: &str) -> String {
    Reference::parse(name)
        .map(|r| r.familiar_string())
        .unwrap_or_else(|_| name.to_string())
}

fn read_config(store: &Store, id: &Digest) -> Result<(ImageConfig, serde_json::Value), LocalError> {
    let data = store.read_blob(id)?;
    let corrupt = |e: serde_json::Error| {
        LocalError::Store(StoreError::Corrupt {
            path: store.blob_path(id),
            reason: e.to_string(),
        })
    };
    let raw: serde_json::Value = serde_json::from_slice(&data).map_err(corrupt)?;
    let config: ImageConfig = serde_json::from_slice(&data).map_err(corrupt)?;
    Ok((config, raw))
}

fn group(names: BTreeMap<String, ImageEntry>) -> BTreeMap<Digest, Vec<(String, ImageEntry)>> {
    let mut by_id: BTreeMap<Digest, Vec<(String, ImageEntry)>> = BTreeMap::new();
    for (name, entry) in names {
        let v = by_id.entry(entry.config).or_default();
        if !is_dangling_key(&name) {
            v.push((name, entry));
        }
    }
    by_id
}

/// Every image of the store whose config can be read, newest first.
pub fn list(store: &Store) -> Vec<LocalImage> {
    let mut out: Vec<LocalImage> = group(store.images())
        .into_iter()
        .filter_map(|(id, names)| {
            let (config, raw_config) = read_config(store, &id).ok()?;
            Some(LocalImage {
                id,
                names,
                config,
                raw_config,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.created_secs()
            .cmp(&a.created_secs())
            .then_with(|| a.repo_tags().cmp(&b.repo_tags()))
    });
    out
}

/// The image with this ID.
pub fn by_id(store: &Store, id: &Digest) -> Result<LocalImage, LocalError> {
    let names = group(store.images())
        .remove(id)
        .ok_or_else(|| LocalError::NotFound(id.to_string()))?;
    let (config, raw_config) = read_config(store, id)?;
    Ok(LocalImage {
        id: *id,
        names,
        config,
        raw_config,
    })
}

/// How an image was named in a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// By a name (`busybox`): the normalised name found.
    Name(String),
    /// By `repo@sha256:...`: the repository's names pulled as that manifest.
    Digest(Vec<String>),
    /// By its full or short ID.
    Id,
}

/// Find an image as Docker does: a name (normalised; `latest` added), a
/// `name@digest`, then a full or short (hex prefix) ID.
pub fn find(store: &Store, s: &str) -> Result<(LocalImage, Named), LocalError> {
    let names = store.images();
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    if hex.len() == 64
        && let Some(id) = Digest::from_hex(hex)
    {
        return Ok((by_id(store, &id)?, Named::Id));
    }
    if let Ok(r) = Reference::parse(s) {
        if let Some(d) = r.digest().and_then(|d| d.parse::<Digest>().ok()) {
            let repo = r.name();
            let hits: Vec<(&String, &ImageEntry)> = names
                .iter()
                .filter(|(k, e)| {
                    k.strip_prefix(&repo)
                        .is_some_and(|rest| rest.starts_with([':', '@']))
                        && e.manifest == Some(d)
                })
                .collect();
            if let Some((_, e)) = hits.first() {
                let named = Named::Digest(hits.iter().map(|(k, _)| (*k).clone()).collect());
                return Ok((by_id(store, &e.config)?, named));
            }
        } else {
            let key = r.to_string();
            if let Some(e) = names.get(&key) {
                return Ok((by_id(store, &e.config)?, Named::Name(key)));
            }
        }
    }
    let is_hex = !hex.is_empty() && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if is_hex {
        let ids: HashSet<Digest> = names
            .values()
            .map(|e| e.config)
            .filter(|d| d.hex().starts_with(hex))
            .collect();
        match ids.len() {
            0 => {}
            1 => {
                let id = ids.into_iter().next().expect("one id");
                return Ok((by_id(store, &id)?, Named::Id));
            }
            _ => return Err(LocalError::Ambiguous(s.to_string())),
        }
    }
    Err(LocalError::NotFound(s.to_string()))
}

/// Bytes of a layer as Docker counts them: the sizes of its regular files
/// (a hard-linked file once), not of directories, links or whiteouts.
pub fn layer_size(store: &Store, diff_id: &Digest) -> u64 {
    tree_file_bytes(&store.snapshot_path(diff_id))
}

fn tree_file_bytes(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() && (m.nlink() == 1 || seen.insert((m.dev(), m.ino()))) {
                total += m.len();
            }
        }
    }
    total
}

/// The image's size: its layers' sizes added up (Docker's `Size`).
pub fn image_size(store: &Store, img: &LocalImage) -> u64 {
    img.config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| layer_size(store, d))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangling_keys_are_ids_only() {
        let id = Digest::of(b"x");
        assert!(is_dangling_key(&id.to_string()));
        assert!(!is_dangling_key("docker.io/library/busybox:latest"));
        assert!(!is_dangling_key("sha256:abc"));
    }

    #[test]
    fn familiar_names_drop_docker_hub() {
        assert_eq!(
            familiar("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert_eq!(familiar("127.0.0.1:5000/a/b:1"), "127.0.0.1:5000/a/b:1");
    }
}
