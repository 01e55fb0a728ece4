//! A build as one library call, for the CLI and the server alike: solve
//! the plan, store the image (its config is the image ID), tag it, and
//! write every output. Pushing is the caller's (a [`Pusher`]), since how
//! to talk to registries and what to print belongs to it.

use crate::cache::Store;
use crate::digest::Digest;
use crate::export::{ExportError, OutputSpec, OutputType};
use crate::image::manifest::{MediaTypes, WrittenImage, write_image};
use crate::image::source::normalize_name;
use crate::layer::compress::Compression;
use crate::progress::Progress;
use crate::solver::{BuildRequest, BuildResult, SolveError, solve};
use std::sync::Arc;

pub mod io;
mod lazy;
mod multi;
pub use lazy::{LazyFallback, bases_on, blobs_fit, lazy_bases};
pub use multi::{MultiOutcome, check_outputs, finish_multi};

/// Errors of a build after lowering.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The solve failed.
    #[error(transparent)]
    Solve(#[from] SolveError),
    /// Storing or tagging the image failed.
    #[error(transparent)]
    Store(#[from] crate::cache::StoreError),
    /// Writing layers or a manifest failed.
    #[error(transparent)]
    Layer(#[from] crate::layer::LayerError),
    /// An output could not be written.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// A push failed.
    #[error("{0}")]
    Push(String),
}

/// Pushes a stored image (by manifest) to the registries of `names`.
pub trait Pusher {
    /// Push `manifest` as each of `names`; `insecure` allows plain HTTP.
    fn push(
        &self,
        store: &Arc<Store>,
        manifest: &Digest,
        names: &[String],
        insecure: bool,
    ) -> Result<(), String>;
}

/// What to do with the built image.
pub struct Outputs<'a> {
    /// `-t` names (normalized here).
    pub tags: Vec<String>,
    /// `--output`s.
    pub outputs: Vec<OutputSpec>,
    /// Also write the manifest that `--metadata-file` describes.
    pub metadata: bool,
    /// Pushes for `push=true` outputs.
    pub pusher: &'a dyn Pusher,
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The image ID (the config blob's digest).
    pub image_id: Digest,
    /// The names it was tagged with.
    pub names: Vec<String>,
    /// The solve's result (state, cached and executed steps).
    pub result: BuildResult,
    /// The manifest `--metadata-file` describes, when asked for.
    pub metadata: Option<WrittenImage>,
}

/// Solve `req` and handle its image as `out` says, on a runtime of its
/// own (call it outside one). The context's stat cache is saved whether
/// the solve succeeds or not.
pub fn build(
    store: Arc<Store>,
    req: BuildRequest,
    progress: Progress,
    out: &Outputs<'_>,
) -> Result<BuildOutcome, BuildError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| SolveError::Internal(format!("starting the runtime: {e}")))?;
    let result = runtime.block_on(solve_saving(store.clone(), req, progress));
    drop(runtime);
    finish(&store, result?, out)
}

/// Solve `req`, then save the context's stat cache (whatever the outcome).
pub async fn solve_saving(
    store: Arc<Store>,
    req: BuildRequest,
    progress: Progress,
) -> Result<BuildResult, SolveError> {
    let context = req.context.clone();
    let result = solve(store, req, progress).await;
    if let Some(c) = context {
        c.save_cache();
    }
    result
}

/// Manifests written for outputs, one per (compression, media types).
struct Manifests<'a> {
    store: &'a Store,
    result: &'a BuildResult,
    written: Vec<WrittenImage>,
}

impl Manifests<'_> {
    fn get(&mut self, c: Compression, t: MediaTypes) -> Result<WrittenImage, BuildError> {
        if let Some(w) = self
            .written
            .iter()
            .find(|w| w.compression == c && w.media_types == t)
        {
            return Ok(w.clone());
        }
        let w = write_image(self.store, &self.result.state, c, t)?;
        self.written.push(w.clone());
        Ok(w)
    }
}

/// Store the image of a solved build, tag it and write its outputs. The
/// local store keeps the config (the image ID) and uncompressed snapshots,
/// as Docker's store does; blobs and a manifest are made only for outputs
/// that carry them.
pub fn finish(
    store: &Arc<Store>,
    result: BuildResult,
    out: &Outputs<'_>,
) -> Result<BuildOutcome, BuildError> {
    let names: Vec<String> = out.tags.iter().map(|t| normalize_name(t)).collect();
    let (image_id, _) = store.put_blob(&{
        let mut c = result.state.config.clone();
        c.rootfs.diff_ids = result.state.layers.iter().map(|l| l.diff_id).collect();
        c.to_json()
    })?;
    for n in &names {
        store.tag(n, image_id)?;
    }
    let mut manifests = Manifests {
        store,
        result: &result,
        written: Vec::new(),
    };
    for o in &out.outputs {
        let out_names: Vec<String> = if o.names.is_empty() {
            names.clone()
        } else {
            o.names.iter().map(|n| normalize_name(n)).collect()
        };
        write_output(store, &mut manifests, o, &out_names, image_id, out.pusher)?;
    }
    let metadata = match out.metadata {
        true => {
            let first = out.outputs.first();
            let c = first.map(|o| o.compression).unwrap_or_default();
            let t = first.map(|o| o.media_types).unwrap_or_default();
            Some(manifests.get(c, t)?)
        }
        false => None,
    };
    Ok(BuildOutcome {
        image_id,
        names,
        result,
        metadata,
    })
}

/// Write one `--output`.
fn write_output(
    store: &Arc<Store>,
    manifests: &mut Manifests<'_>,
    o: &OutputSpec,
    names: &[String],
    image_id: Digest,
    pusher: &dyn Pusher,
) -> Result<(), BuildError> {
    let dest = o.dest.clone().unwrap_or_default();
    match o.kind {
        OutputType::Image => {
            for n in names {
                store.tag(&normalize_name(n), image_id)?;
            }
            if o.push {
                let manifest = manifests.get(o.compression, o.media_types)?.manifest;
                pusher
                    .push(store, &manifest, names, o.insecure)
                    .map_err(BuildError::Push)?;
            }
        }
        OutputType::OciDir => crate::export::write_oci_layout(
            store,
            &manifests.get(o.compression, o.media_types)?,
            names,
            &dest,
        )?,
        OutputType::OciArchive => crate::export::write_oci_archive(
            store,
            &manifests.get(o.compression, o.media_types)?,
            names,
            &dest,
        )?,
        OutputType::DockerArchive => crate::export::write_docker_archive(
            store,
            &manifests.get(o.compression, o.media_types)?,
            names,
            &dest,
        )?,
        OutputType::Local => {
            let view = crate::ops::op::view_of(store, &manifests.result.state);
            crate::export::export_rootfs(&view, &dest)?;
        }
        OutputType::Tar => {
            let view = crate::ops::op::view_of(store, &manifests.result.state);
            crate::export::export_rootfs_tar(store, &[(String::new(), view)], &dest)?;
        }
    }
    Ok(())
}
