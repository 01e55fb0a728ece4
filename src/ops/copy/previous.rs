//! Hard-link reuse: the previous build of a COPY/ADD step (same parent and
//! definition, its layer still in the store) lends its unchanged files, so
//! a rebuild after one changed file copies one file.

use crate::cache::{CacheRecord, Store};
use crate::digest::Digest;
use crate::image::ImageState;
use crate::ops::key::KeyParts;
use std::collections::HashMap;

/// The previous build's layer and the digests of its source files, when it
/// can be reused for this one.
pub fn previous_copy(
    store: &Store,
    prev: &CacheRecord,
    parts: &KeyParts,
    parent: &ImageState,
) -> Option<super::Previous> {
    let same = |name: &str| {
        let a = parts.parts.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let b = prev
            .components
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v);
        a.is_some() && a == b
    };
    if !same("op")
        || !same("parent")
        || !same("def")
        || prev.layers.len() != parent.layers.len() + 1
    {
        return None;
    }
    let layer = prev.layers.last()?;
    let dir = store.snapshot_path(&layer.diff_id);
    if !dir.is_dir() {
        return None;
    }
    let mut digests = HashMap::new();
    for (n, v) in &prev.components {
        if n.starts_with("files:")
            && let Ok(d) = v.parse::<Digest>()
            && let Ok(list) = store.read_blob(&d)
        {
            for line in String::from_utf8_lossy(&list).lines() {
                if let Some((dg, path)) = line.split_once(' ')
                    && let Some(dg) = Digest::from_hex(dg)
                {
                    digests.insert(path.to_string(), dg);
                }
            }
        }
    }
    Some(super::Previous { dir, digests })
}
