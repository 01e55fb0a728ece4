//! Unpack an OCI layer tar into a diff directory in overlay format: `.wh.x`
//! becomes a 0/0 character device `x` (or stays a `.wh.x` file when we may not
//! create devices), `.wh..wh..opq` becomes the opaque xattr on its directory.
//! Entries are written inside the directory (see [`super::extract`]).

use super::extract::{ExtractOptions, extract};
use super::{LayerError, io_err};
use crate::fsroot::Root;
use std::io::Read;
use std::path::Path;

/// Whether this process may create device nodes (root).
fn can_mknod() -> bool {
    rustix::process::geteuid().is_root()
}

/// Unpack `tar` (uncompressed) into `dest`, every entry inside it.
pub fn unpack_layer<R: Read>(tar: R, dest: &Path) -> Result<(), LayerError> {
    let root = Root::open(dest).map_err(io_err("opening", dest))?;
    let mknod = can_mknod();
    let opts = ExtractOptions {
        layer: true,
        preserve_owner: mknod,
        owner: None,
        mknod,
    };
    extract(tar, &root, opts)
}
