//! Committing a layer: a filled diff directory becomes a snapshot in the
//! store, identified by the digest of its deterministic tar (compressed
//! only when an export needs a blob). With SOURCE_DATE_EPOCH, times newer
//! than the epoch are clamped first, so the layer is reproducible.

use super::LayerError;
use super::tarball::write_layer_tar;
use crate::cache::{LayerRef, Store};
use std::path::Path;

/// Turn a diff directory into a layer (an empty one too); the
/// directory is removed when it does not become a snapshot.
pub fn commit_layer(
    store: &Store,
    epoch: Option<u64>,
    dir: tempfile::TempDir,
) -> Result<Option<LayerRef>, LayerError> {
    let path = dir.keep();
    let r = commit_dir_layer(store, epoch, &path);
    if !matches!(r, Ok(Some(_))) {
        let _ = crate::cache::remove_tree(&path);
    }
    r
}

/// Turn the diff directory at `path` (inside the store's temp space) into a
/// layer; the directory is moved into the snapshots.
pub fn commit_dir_layer(
    store: &Store,
    epoch: Option<u64>,
    path: &Path,
) -> Result<Option<LayerRef>, LayerError> {
    // An empty diff is a layer too, as in BuildKit: a RUN, COPY or WORKDIR
    // that changes nothing still adds an (empty) layer to the image.
    if let Some(e) = epoch {
        clamp_times(path, e)?;
    }
    let hasher = crate::digest::HashingWriter::new(std::io::sink());
    let hasher = write_layer_tar(path, hasher, crate::image::manifest::tar_options())?;
    let (_, diff_id, size) = hasher.finish();
    store.commit_snapshot(path, &diff_id)?;
    Ok(Some(LayerRef { diff_id, size }))
}

/// Clamp times in a diff directory to SOURCE_DATE_EPOCH. A failure is an
/// error: a time left unclamped breaks the image's reproducibility.
pub fn clamp_times(dir: &Path, epoch: u64) -> Result<(), LayerError> {
    use std::os::unix::fs::MetadataExt;
    let mut stack = vec![dir.to_path_buf()];
    let mut all = Vec::new();
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(super::io_err("reading", &d))?;
        for e in rd {
            let e = e.map_err(super::io_err("reading", &d))?;
            let p = e.path();
            let ft = e.file_type().map_err(super::io_err("stat", &p))?;
            if ft.is_dir() {
                stack.push(p.clone());
            }
            all.push(p);
        }
    }
    let t = filetime::FileTime::from_unix_time(epoch as i64, 0);
    // Children first, so setting a file's time does not move its directory's.
    for p in all.into_iter().rev() {
        let m = std::fs::symlink_metadata(&p).map_err(super::io_err("stat", &p))?;
        if m.mtime() > epoch as i64 {
            filetime::set_symlink_file_times(&p, t, t)
                .map_err(super::io_err("setting the time of", &p))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn clamps_newer_times_and_keeps_older_ones() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/new"), "n").unwrap();
        std::fs::write(d.path().join("old"), "o").unwrap();
        let old = filetime::FileTime::from_unix_time(1000, 0);
        filetime::set_file_times(d.path().join("old"), old, old).unwrap();
        clamp_times(d.path(), 5000).unwrap();
        let mtime = |p: &str| std::fs::symlink_metadata(d.path().join(p)).unwrap().mtime();
        assert_eq!(mtime("sub/new"), 5000);
        assert_eq!(mtime("sub"), 5000);
        assert_eq!(mtime("old"), 1000);
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        assert!(clamp_times(&d.path().join("absent"), 5000).is_err());
    }
}
