//! ADD of a local tar archive: extracted as in a chroot at the destination,
//! on top of the image. An entry's directory is resolved through the image
//! and what the archive has written so far (so `var/run/x` lands in `/run`
//! when the image has `var/run -> /run`, as Docker's chrooted untar does),
//! then created in the step's output with the image's metadata.

use super::{CopyError, Writer, io_err, is_root};
use crate::context::Selection;
use crate::fsroot::Root;
use crate::layer::extract::{ExtractOptions, Parents, extract_with};
use crate::layer::view::MergedView;
use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;

struct ImageParents<'w, 'a> {
    w: &'w mut Writer<'a>,
    /// The destination directory, resolved in the image: the chroot.
    dest: Vec<String>,
    /// The output over the image, to resolve links on the way.
    view: MergedView,
    out: Root,
    /// Resolved directories, until an entry changes a link.
    cache: HashMap<String, Vec<String>>,
}

impl Parents for ImageParents<'_, '_> {
    fn parent_dir(&mut self, dir_rel: &str) -> io::Result<OwnedFd> {
        let parts = match self.cache.get(dir_rel) {
            Some(p) => p.clone(),
            None => {
                let p = self.view.resolve_in(&self.dest, dir_rel, true);
                self.cache.insert(dir_rel.to_string(), p.clone());
                p
            }
        };
        self.w
            .ensure_dir(&parts)
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.out.mkdir_all(&parts.join("/"), 0o755)
    }

    fn changed(&mut self) {
        self.cache.clear();
    }
}

/// Extract the archive `reader` of `sel` at `dest` (resolved components).
pub(super) fn add_archive(
    w: &mut Writer<'_>,
    sel: &Selection,
    reader: Box<dyn io::Read>,
    dest: &[String],
) -> Result<(), CopyError> {
    w.ensure_dir(dest)?;
    let out_path = w.out.to_path_buf();
    let out = Root::open(&out_path).map_err(io_err("opening", &out_path))?;
    let mut layers = vec![out_path.clone()];
    layers.extend(w.plan.base.layers.iter().cloned());
    let opts = ExtractOptions {
        layer: false,
        preserve_owner: is_root(),
        owner: w.plan.owner,
        mknod: is_root(),
    };
    let root = Root::open(&out_path).map_err(io_err("opening", &out_path))?;
    let mut parents = ImageParents {
        w,
        dest: dest.to_vec(),
        view: MergedView { layers },
        out,
        cache: HashMap::new(),
    };
    extract_with(reader, &root, &mut parents, opts).map_err(|e| CopyError::Archive {
        path: sel.root.abs.clone(),
        source: io::Error::other(e.to_string()),
    })
}
