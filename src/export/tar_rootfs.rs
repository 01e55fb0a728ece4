//! BuildKit's `tar` exporter: the root filesystem (or, for several
//! platforms, one directory per platform) as a tar archive.

use super::ExportError;
use super::archive::open_dest;
use crate::cache::Store;
use crate::layer::view::MergedView;
use std::path::Path;

/// Write the filesystems of `views` (relative directory, view) as one tar
/// archive at `dest` (`-`: standard output). A single view at `""` is the
/// archive's root.
pub fn export_rootfs_tar(
    store: &Store,
    views: &[(String, MergedView)],
    dest: &Path,
) -> Result<(), ExportError> {
    let tmp = store.temp_dir("tar-export")?;
    for (dir, view) in views {
        super::export_rootfs(view, &tmp.path().join(dir))?;
    }
    let out = open_dest(dest)?;
    let mut out = crate::layer::tarball::write_layer_tar(
        tmp.path(),
        out,
        crate::image::manifest::tar_options(),
    )?;
    out.flush().map_err(super::io_err("writing", dest))?;
    Ok(())
}
