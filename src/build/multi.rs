//! A multi-platform build's outputs: one image per platform, listed by an
//! OCI image index (or a Docker manifest list) wherever an index can be
//! held: the store, OCI layouts and archives, registries. `type=local`
//! writes one folder per platform (`linux_amd64/`, as BuildKit does);
//! Docker archives and `--load` are a clear error, as BuildKit's.

use super::{BuildError, BuildOutcome, Outputs};
use crate::cache::Store;
use crate::digest::Digest;
use crate::export::multi::{
    WrittenIndex, write_index, write_oci_archive_index, write_oci_layout_index,
};
use crate::export::{ExportError, OutputSpec, OutputType};
use crate::frontend::platform::Platform;
use crate::image::manifest::{MediaTypes, write_image};
use crate::image::source::normalize_name;
use crate::layer::compress::Compression;
use crate::solver::BuildResult;
use std::sync::Arc;

/// What a multi-platform build made.
#[derive(Debug, Clone)]
pub struct MultiOutcome {
    /// This machine's platform's image (else the first platform's): the
    /// one the names point at in the store, as `rbuild run` uses them;
    /// its `result.steps` hold every platform's steps.
    pub outcome: BuildOutcome,
    /// The image ID of each platform.
    pub image_ids: Vec<(Platform, Digest)>,
    /// The first output's index (for `--metadata-file`), when written.
    pub index: Option<Digest>,
}

/// Refuse outputs that cannot hold several platforms' images, before the
/// build starts.
pub fn check_outputs(outputs: &[OutputSpec]) -> Result<(), ExportError> {
    for o in outputs {
        if o.kind == OutputType::DockerArchive {
            let exporter = match o.dest.as_ref().is_none_or(|d| d.as_os_str().is_empty()) {
                true => "docker",
                false => "docker-archive",
            };
            return Err(ExportError::NoIndex { exporter });
        }
    }
    Ok(())
}

/// Indexes written for outputs, one per (compression, media types).
struct Indexes<'a> {
    store: &'a Store,
    results: &'a [(Platform, BuildResult)],
    written: Vec<(Compression, MediaTypes, WrittenIndex)>,
}

impl Indexes<'_> {
    fn get(&mut self, c: Compression, t: MediaTypes) -> Result<WrittenIndex, BuildError> {
        if let Some((_, _, w)) = self.written.iter().find(|(wc, wt, _)| *wc == c && *wt == t) {
            return Ok(w.clone());
        }
        let mut images = Vec::new();
        for (p, r) in self.results {
            images.push((p.clone(), write_image(self.store, &r.state, c, t)?));
        }
        let idx = write_index(self.store, images, t)?;
        self.written.push((c, t, idx.clone()));
        Ok(idx)
    }
}

/// Store each platform's image, point the names at this machine's one,
/// and write every output (an index where it can be held).
pub fn finish_multi(
    store: &Arc<Store>,
    results: Vec<(Platform, BuildResult)>,
    out: &Outputs<'_>,
) -> Result<MultiOutcome, BuildError> {
    check_outputs(&out.outputs)?;
    let names: Vec<String> = out.tags.iter().map(|t| normalize_name(t)).collect();
    let mut image_ids = Vec::new();
    for (p, r) in &results {
        let mut c = r.state.config.clone();
        c.rootfs.diff_ids = r.state.layers.iter().map(|l| l.diff_id).collect();
        image_ids.push((p.clone(), store.put_blob(&c.to_json())?.0));
    }
    let host = Platform::host();
    let main = results
        .iter()
        .position(|(p, _)| p.os == host.os && p.arch == host.arch)
        .unwrap_or(0);
    let image_id = image_ids[main].1;
    let mut indexes = Indexes {
        store,
        results: &results,
        written: Vec::new(),
    };
    if !names.is_empty() {
        let first = out.outputs.first();
        let c = first.map(|o| o.compression).unwrap_or_default();
        let t = first.map(|o| o.media_types).unwrap_or_default();
        let idx = indexes.get(c, t)?.digest;
        for n in &names {
            store.tag_index(n, image_id, idx)?;
        }
    }
    for o in &out.outputs {
        let out_names: Vec<String> = match o.names.is_empty() {
            true => names.clone(),
            false => o.names.iter().map(|n| normalize_name(n)).collect(),
        };
        write_output(store, &mut indexes, o, &out_names, image_id, out)?;
    }
    let index = match out.metadata {
        true => {
            let first = out.outputs.first();
            let c = first.map(|o| o.compression).unwrap_or_default();
            let t = first.map(|o| o.media_types).unwrap_or_default();
            Some(indexes.get(c, t)?.digest)
        }
        false => None,
    };
    let mut result = results[main].1.clone();
    // Every platform's steps, for `--cache-to` (the main platform's first).
    for (i, (_, r)) in results.iter().enumerate() {
        if i != main {
            result.steps.extend(r.steps.iter().cloned());
        }
    }
    Ok(MultiOutcome {
        outcome: BuildOutcome {
            image_id,
            names,
            result,
            metadata: None,
        },
        image_ids,
        index,
    })
}

/// Write one `--output` of a multi-platform build.
fn write_output(
    store: &Arc<Store>,
    indexes: &mut Indexes<'_>,
    o: &OutputSpec,
    names: &[String],
    image_id: Digest,
    out: &Outputs<'_>,
) -> Result<(), BuildError> {
    let dest = o.dest.clone().unwrap_or_default();
    match o.kind {
        OutputType::Image => {
            let idx = indexes.get(o.compression, o.media_types)?;
            for n in names {
                store.tag_index(n, image_id, idx.digest)?;
            }
            if o.push {
                out.pusher
                    .push(store, &idx.digest, names, o.insecure)
                    .map_err(BuildError::Push)?;
            }
        }
        OutputType::OciDir => {
            let idx = indexes.get(o.compression, o.media_types)?;
            write_oci_layout_index(store, &idx, names, &dest)?;
        }
        OutputType::OciArchive => {
            let idx = indexes.get(o.compression, o.media_types)?;
            write_oci_archive_index(store, &idx, names, &dest)?;
        }
        OutputType::DockerArchive => check_outputs(std::slice::from_ref(o))?,
        OutputType::Local => {
            for (p, r) in indexes.results {
                let view = crate::ops::op::view_of(store, &r.state);
                crate::export::export_rootfs(&view, &dest.join(p.folder_name()))?;
            }
        }
        OutputType::Tar => {
            let views: Vec<(String, crate::layer::view::MergedView)> = indexes
                .results
                .iter()
                .map(|(p, r)| (p.folder_name(), crate::ops::op::view_of(store, &r.state)))
                .collect();
            crate::export::export_rootfs_tar(store, &views, &dest)?;
        }
    }
    Ok(())
}
