//! The solver: stages of the plan as a petgraph DAG, run in parallel where
//! independent (tokio tasks; blocking file work on the blocking pool, hashing
//! and compression on rayon). Within a stage it sees only ops, their keys
//! and their dependencies ([`crate::ops::Op`]): it never knows what an op
//! does. [`schedule`] runs the ops, [`keys`] explains misses.

mod by_definition;
pub mod cancel;
pub mod def_diff;
pub mod keys;
mod materialize;
pub mod platforms;
pub mod proxy;
mod schedule;
pub mod steps;
mod vertices;

use crate::cache::{Store, StoreError};
use crate::frontend::lower::BuildPlan;
use crate::image::ImageState;
use crate::image::config::ImageConfig;
use crate::layer::compress::Compression;
use crate::ops::OpError;
pub use crate::ops::StageResult;
pub use crate::ops::mounts::secrets;
use crate::progress::{Event, Progress};
use petgraph::graph::DiGraph;
use std::collections::HashMap;
use std::sync::Arc;

/// Errors of a build.
#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    /// A step failed: which one, and why.
    #[error("step {step}: {source}")]
    Step {
        /// `[stage 2/5] COPY a b`.
        step: String,
        /// The cause.
        source: Box<SolveError>,
    },
    /// An op failed.
    #[error(transparent)]
    Op(#[from] OpError),
    /// Store problem.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A dependency failed.
    #[error("a stage this one depends on failed")]
    DependencyFailed,
    /// The build was cancelled ([`cancel::Cancel`]).
    #[error("the build was cancelled")]
    Cancelled,
    /// Bug.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Everything a build needs besides the plan.
pub struct BuildRequest {
    /// The lowered Dockerfile.
    pub plan: BuildPlan,
    /// The build context.
    pub context: Option<Arc<crate::context::Context>>,
    /// Ignore the cache.
    pub no_cache: bool,
    /// SOURCE_DATE_EPOCH.
    pub epoch: Option<u64>,
    /// Compression of new layers.
    pub compression: Compression,
    /// Target platform.
    pub platform: crate::frontend::platform::Platform,
    /// The target platform was asked for (`--platform`): the image says
    /// it, as BuildKit's explicit target (else a final stage's `FROM
    /// --platform` is the image's).
    pub explicit_platform: bool,
    /// Identifies the build for explaining misses (context + Dockerfile path).
    pub build_id: String,
    /// `--label`s added to the final image.
    pub labels: Vec<(String, String)>,
    /// `--build-arg`s (proxies and the sandbox hostname for RUN).
    pub build_args: Vec<(String, String)>,
    /// `--secret`s.
    pub secrets: Vec<(String, crate::ops::mounts::SecretSource)>,
    /// Where base images come from (the store, registries).
    pub images: Arc<crate::image::resolver::Resolver>,
    /// `--allow network.host`: RUN may use the host's network.
    pub allow_host_network: bool,
    /// `--explain`: say for every step why it was or was not taken from
    /// the cache (hits and first builds too, not only changes).
    pub explain: bool,
    /// Base images whose files no step reads and whose layers may stay in
    /// their registry (see [`crate::build::lazy_bases`]).
    pub lazy_bases: std::collections::HashSet<String>,
    /// Caches imported with `--cache-from`, consulted after the store.
    pub imported: Option<Arc<dyn crate::remote_cache::ImportedCache>>,
    /// Set when this is one platform of a multi-platform build: the step
    /// locks shared with the other platforms' solves, and how its progress
    /// vertices are numbered and named.
    pub multi: Option<platforms::PlatformSolve>,
    /// Set to stop the build at its next step boundary.
    pub cancel: cancel::Cancel,
}

/// The outcome.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// The final image state.
    pub state: ImageState,
    /// Steps taken from the cache.
    pub cached: usize,
    /// Steps run.
    pub executed: usize,
    /// The keys of the steps the build went through (for `--cache-to`).
    pub steps: Vec<crate::remote_cache::StepKey>,
}

/// Stage-level DAG (petgraph): edges from a stage to the stages that read it.
pub fn stage_graph(plan: &BuildPlan) -> DiGraph<usize, ()> {
    let mut g = DiGraph::new();
    let nodes: HashMap<usize, _> = plan.order.iter().map(|i| (*i, g.add_node(*i))).collect();
    for i in &plan.order {
        for d in &plan.stages[*i].deps {
            if let (Some(a), Some(b)) = (nodes.get(d), nodes.get(i)) {
                g.add_edge(*a, *b, ());
            }
        }
    }
    g
}

/// Run the build.
pub async fn solve(
    store: Arc<Store>,
    req: BuildRequest,
    progress: Progress,
) -> Result<BuildResult, SolveError> {
    let graph = stage_graph(&req.plan);
    // The first step to fail cancels the other stages (BuildKit's
    // behaviour); its error is the build's.
    let mut req = req;
    let failed = req.cancel.child();
    req.cancel = failed.clone();
    let first_failed = Arc::new(std::sync::OnceLock::new());
    let shared = Arc::new(schedule::Shared::new(store, req, progress.clone()));
    // One blocking task per stage, all started at once: a stage waits for
    // another only at the step that reads it (its FROM, a COPY --from, a
    // RUN --mount from=), so independent work overlaps as in BuildKit.
    let mut handles = Vec::new();
    for n in graph.node_indices() {
        let si = graph[n];
        let sh = shared.clone();
        let (failed, first) = (failed.clone(), first_failed.clone());
        handles.push(tokio::task::spawn_blocking(move || {
            let r = schedule::build_stage(&sh, si);
            let own = matches!(&r, Err(e) if !matches!(e, SolveError::DependencyFailed | SolveError::Cancelled));
            // A failure after the cancel may be its consequence (a RUN killed).
            if own && !failed.is_cancelled() && first.set(si).is_ok() {
                failed.cancel();
            }
            sh.finish_stage(si, r.as_ref().ok().cloned());
            (si, r)
        }));
    }
    let mut first_err: Option<SolveError> = None;
    for h in handles {
        match h.await {
            Ok((_, Ok(_))) | Ok((_, Err(SolveError::DependencyFailed))) => {}
            Ok((si, Err(e))) if first_failed.get() == Some(&si) => first_err = Some(e),
            Ok((_, Err(e))) if first_failed.get().is_none() => {
                first_err.get_or_insert(e);
            }
            Ok(_) => {}
            Err(e) => {
                first_err.get_or_insert(SolveError::Internal(e.to_string()));
            }
        }
    }
    let (cached, executed) = shared.counts();
    progress.send(Event::Finished {
        seconds: progress.elapsed(),
        cached,
        executed,
    });
    if let Some(e) = first_err {
        return Err(e);
    }
    let target = shared.req.plan.target;
    let mut state = shared
        .stage(target)
        .map(|r| r.state)
        .ok_or(SolveError::DependencyFailed)?;
    if shared.req.explicit_platform {
        platforms::set_target_platform(&mut state.config, &shared.req.platform);
    }
    finalize(&mut state.config, &shared.req.labels);
    Ok(BuildResult {
        state,
        cached,
        executed,
        steps: shared.step_keys(),
    })
}

/// Final touches: `--label`s, the created times of config-only history
/// entries (as BuildKit's exporter: the first new layer's time, or the
/// previous entry's), and the image's creation time (its last entry's).
fn finalize(cfg: &mut ImageConfig, labels: &[(String, String)]) {
    for (k, v) in labels {
        cfg.config.labels.insert(k.clone(), v.clone());
    }
    fill_created(&mut cfg.history);
    cfg.created = cfg.history.iter().rev().find_map(|h| h.created.clone());
}

/// BuildKit's `normalizeLayersAndHistory` for times: an entry without one
/// takes the first time after a gap, or the previous entry's.
fn fill_created(history: &mut [crate::image::config::History]) {
    let mut created: Option<String> = None;
    let mut gap = false;
    for h in history.iter() {
        match &h.created {
            Some(c) => {
                created = Some(c.clone());
                if gap {
                    break;
                }
            }
            None => gap = true,
        }
    }
    let mut gap = false;
    for h in history.iter_mut() {
        match &h.created {
            Some(c) => {
                if gap {
                    created = Some(c.clone());
                }
            }
            None => {
                gap = true;
                h.created = created.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests;
