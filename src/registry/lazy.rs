//! Base layers left in their registry (BuildKit's lazy refs): which
//! compressed blob a layer's diff_id was recorded with by `pull_lazy`, kept
//! as `lazy-layers/<diff_id hex>` in the store. Exporters use such a blob
//! by reference only while neither it nor the layer's files are here; a
//! push mounts it from the base's repository.

use crate::cache::Store;
use crate::digest::Digest;

fn path(store: &Store, diff_id: &Digest) -> std::path::PathBuf {
    store.root().join("lazy-layers").join(diff_id.hex())
}

/// Record that `diff_id` is the layer `blob`, left in its registry.
pub fn record(store: &Store, diff_id: &Digest, blob: &Digest) -> crate::cache::Result<()> {
    let p = path(store, diff_id);
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).map_err(crate::cache::io_err("creating", dir))?;
    }
    crate::cache::write_file_atomic(&p, blob.to_string().as_bytes())
}

/// Whether `diff_id` was recorded as a layer left in its registry.
pub fn is_recorded(store: &Store, diff_id: &Digest) -> bool {
    path(store, diff_id).exists()
}

/// Whether `blob` is `diff_id`'s layer left in its registry: recorded so,
/// and neither the blob nor the layer's files are in the store.
pub fn is_remote(store: &Store, diff_id: &Digest, blob: &Digest) -> bool {
    !store.has_blob(blob)
        && !store.has_snapshot(diff_id)
        && std::fs::read_to_string(path(store, diff_id)).is_ok_and(|s| s.trim() == blob.to_string())
}
