//! Layers left in a registry by the build (a step taken from an imported
//! cache whose outputs are pushes, a base loaded lazily): their files are
//! fetched only when a step reads them (a RUN on them, a COPY --from of
//! them, a mount), as BuildKit unlazies a ref.

use super::schedule::Shared;
use crate::frontend::lower::Source;
use crate::image::source::ImageError;
use crate::ops::op::view_of;
use crate::ops::{OpError, StageResult};

impl Shared {
    /// The image a stage starts from, through the stages it is built on.
    pub(super) fn base_image_of(&self, mut si: usize) -> Option<&str> {
        for _ in 0..=self.req.plan.stages.len() {
            match &self.req.plan.stages.get(si)?.base {
                Source::Stage(j) => si = *j,
                Source::Image(name) => return Some(name),
                Source::Scratch => return None,
            }
        }
        None
    }

    /// `r` with the files of all its layers in the store: those an
    /// imported cache holds fetched from it, the rest by loading `base`
    /// (the image it is built on) in full.
    pub(super) fn local(&self, r: StageResult, base: Option<&str>) -> Result<StageResult, OpError> {
        let missing = |layers: &[crate::cache::LayerRef]| {
            layers
                .iter()
                .find(|l| !self.store.has_snapshot(&l.diff_id))
                .map(|l| l.diff_id)
        };
        if missing(&r.state.layers).is_none() {
            return Ok(r);
        }
        let mut r = r;
        if let Some(imported) = &self.req.imported {
            r.state.layers = imported
                .materialize(&self.store, &r.state.layers)
                .map_err(|e| OpError::Image(ImageError::Failed(e)))?;
        }
        if missing(&r.state.layers).is_some()
            && let Some(b) = base
        {
            let loaded = self.req.images.load(b)?;
            for l in &mut r.state.layers {
                if let Some(full) = loaded.state.layers.iter().find(|x| x.diff_id == l.diff_id) {
                    l.size = full.size;
                }
            }
        }
        if let Some(d) = missing(&r.state.layers) {
            return Err(OpError::Image(ImageError::Failed(format!(
                "layer {d} is not stored and no imported cache or base image holds it"
            ))));
        }
        r.view = view_of(&self.store, &r.state);
        Ok(r)
    }
}
