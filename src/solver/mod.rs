//! The solver: stages of the plan as a petgraph DAG, run in parallel where
//! independent (tokio tasks; blocking file work on the blocking pool, hashing
//! and compression on rayon), each step looked up by cache key before it runs.

mod cache_mount;
mod context_mount;
pub mod def_diff;
pub mod keys;
pub mod mount_targets;
pub mod proxy;
pub mod run_error;
pub mod secrets;
pub mod steps;

use crate::cache::{CacheRecord, ImageState, Store, StoreError};
use crate::context::{Context, ContextError};
use crate::digest::{Digest, KeyHasher};
use crate::frontend::lower::{BuildPlan, Source, Step};
use crate::image::config::ImageConfig;
use crate::image::source::ImageError;
use crate::layer::LayerError;
use crate::layer::compress::Compression;
use crate::layer::view::MergedView;
use crate::progress::{Event, Progress};
use petgraph::graph::DiGraph;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use steps::{StepEnv, prepare, run_step, view_of};

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
    /// Context problem.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// Store problem.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Layer problem.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// Image problem.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// COPY/ADD problem.
    #[error(transparent)]
    Copy(#[from] crate::ops::copy::CopyError),
    /// User lookup problem.
    #[error(transparent)]
    User(#[from] crate::ops::users::UserError),
    /// Download problem.
    #[error(transparent)]
    Fetch(#[from] crate::ops::fetch::FetchError),
    /// I/O.
    #[error("{what} {path}: {source}")]
    Io {
        /// What.
        what: &'static str,
        /// Where.
        path: std::path::PathBuf,
        /// Error.
        source: std::io::Error,
    },
    /// Not implemented yet.
    #[error("{0}")]
    Unsupported(String),
    /// A dependency failed.
    #[error("a stage this one depends on failed")]
    DependencyFailed,
    /// Bug.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The result of a stage.
#[derive(Debug, Clone)]
pub struct StageResult {
    /// Layers and config.
    pub state: ImageState,
    /// Cache key of the last step.
    pub key: Digest,
    /// Merged view of its layers.
    pub view: MergedView,
}

/// Everything a build needs besides the plan.
pub struct BuildRequest {
    /// The lowered Dockerfile.
    pub plan: BuildPlan,
    /// The build context.
    pub context: Option<Arc<Context>>,
    /// Ignore the cache.
    pub no_cache: bool,
    /// SOURCE_DATE_EPOCH.
    pub epoch: Option<u64>,
    /// Compression of new layers.
    pub compression: Compression,
    /// Target platform.
    pub platform: crate::frontend::platform::Platform,
    /// Identifies the build for explaining misses (context + Dockerfile path).
    pub build_id: String,
    /// `--label`s added to the final image.
    pub labels: Vec<(String, String)>,
    /// `--build-arg`s (for ONBUILD triggers of base images).
    pub build_args: Vec<(String, String)>,
    /// `--secret`s.
    pub secrets: Vec<(String, steps::SecretSource)>,
    /// Where base images come from (the store, registries).
    pub images: Arc<crate::image::resolver::Resolver>,
    /// `--allow network.host`: RUN may use the host's network.
    pub allow_host_network: bool,
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
}

struct Vertex {
    id: usize,
    name: String,
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

fn vertex_names(plan: &BuildPlan) -> HashMap<(usize, usize), Vertex> {
    let mut out = HashMap::new();
    let mut id = 1;
    for &si in &plan.order {
        let st = &plan.stages[si];
        let label = st.name.clone().unwrap_or_else(|| format!("stage-{si}"));
        let total = st.steps.len() + 1;
        let base = match &st.base {
            Source::Scratch => "scratch".to_string(),
            Source::Stage(i) => plan.stages[*i]
                .name
                .clone()
                .unwrap_or_else(|| i.to_string()),
            Source::Image(r) => r.clone(),
        };
        out.insert(
            (si, 0),
            Vertex {
                id,
                name: format!("[{label} 1/{total}] FROM {base}"),
            },
        );
        id += 1;
        for (k, step) in st.steps.iter().enumerate() {
            let text = step
                .instruction
                .original
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let short: String = text.chars().take(100).collect();
            out.insert(
                (si, k + 1),
                Vertex {
                    id,
                    name: format!("[{label} {}/{total}] {short}", k + 2),
                },
            );
            id += 1;
        }
    }
    out
}

struct Shared {
    store: Arc<Store>,
    req: BuildRequest,
    progress: Progress,
    results: Mutex<HashMap<usize, Result<StageResult, String>>>,
    done: std::sync::Condvar,
    images: Mutex<HashMap<String, StageResult>>,
    vertices: HashMap<(usize, usize), Vertex>,
    counts: Mutex<(usize, usize)>,
}

impl Shared {
    /// Block until stage `i` has finished; its result, or None if it failed.
    fn wait_stage(&self, i: usize) -> Option<StageResult> {
        let mut results = self.results.lock().expect("results");
        loop {
            if let Some(r) = results.get(&i) {
                return r.as_ref().ok().cloned();
            }
            results = self.done.wait(results).expect("results");
        }
    }

    fn stage(&self, i: usize) -> Option<StageResult> {
        self.results
            .lock()
            .expect("results")
            .get(&i)
            .and_then(|r| r.as_ref().ok().cloned())
    }

    fn image(&self, name: &str) -> Result<StageResult, SolveError> {
        if let Some(r) = self.images.lock().expect("images").get(name) {
            return Ok(r.clone());
        }
        let loaded = self.req.images.load(name)?;
        let mut h = KeyHasher::new();
        h.part("image").part(loaded.manifest.to_string());
        let view = view_of(&self.store, &loaded.state);
        let r = StageResult {
            state: loaded.state,
            key: h.finish(),
            view,
        };
        self.images
            .lock()
            .expect("images")
            .insert(name.to_string(), r.clone());
        Ok(r)
    }
}

/// Run the build.
pub async fn solve(
    store: Arc<Store>,
    req: BuildRequest,
    progress: Progress,
) -> Result<BuildResult, SolveError> {
    let vertices = vertex_names(&req.plan);
    let shared = Arc::new(Shared {
        store,
        vertices,
        progress: progress.clone(),
        results: Mutex::new(HashMap::new()),
        done: std::sync::Condvar::new(),
        images: Mutex::new(HashMap::new()),
        counts: Mutex::new((0, 0)),
        req,
    });
    let graph = stage_graph(&shared.req.plan);
    // One blocking task per stage, all started at once: a stage waits for
    // another only at the step that reads it (its FROM, a COPY --from, a
    // RUN --mount from=), so independent work overlaps as in BuildKit.
    let mut handles = Vec::new();
    for n in graph.node_indices() {
        let si = graph[n];
        let sh = shared.clone();
        handles.push(tokio::task::spawn_blocking(move || {
            let r = build_stage(&sh, si);
            let stored = match &r {
                Ok(v) => Ok(v.clone()),
                Err(e) => Err(e.to_string()),
            };
            sh.results.lock().expect("results").insert(si, stored);
            sh.done.notify_all();
            r
        }));
    }
    let mut first_err: Option<SolveError> = None;
    for h in handles {
        match h.await {
            Ok(Ok(_)) => {}
            Ok(Err(SolveError::DependencyFailed)) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(SolveError::Internal(e.to_string()));
            }
        }
    }
    let (cached, executed) = *shared.counts.lock().expect("counts");
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
    finalize(&mut state.config, &shared.req.labels);
    Ok(BuildResult {
        state,
        cached,
        executed,
    })
}

/// The previous build of a COPY/ADD step, usable for hard-linking unchanged
/// files: same parent and definition, and its layer still in the store.
fn previous_copy(
    store: &Store,
    prev: &CacheRecord,
    parts: &[(String, String)],
    parent: &ImageState,
) -> Option<crate::ops::copy::Previous> {
    let same = |name: &str| {
        let a = parts.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let b = prev
            .components
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v);
        a.is_some() && a == b
    };
    let is_copy = parts
        .iter()
        .any(|(n, v)| n == "op" && (v == "COPY" || v == "ADD"));
    if !is_copy
        || !same("parent")
        || !same("def")
        || prev.state.layers.len() != parent.layers.len() + 1
    {
        return None;
    }
    let layer = prev.state.layers.last()?;
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
    Some(crate::ops::copy::Previous { dir, digests })
}

/// The base image's ONBUILD triggers as steps, expanded in its environment.
fn onbuild_steps(
    cfg: &ImageConfig,
    build_args: &[(String, String)],
    plan: &crate::frontend::lower::BuildPlan,
) -> Result<Vec<Step>, SolveError> {
    if cfg.config.on_build.is_empty() {
        return Ok(Vec::new());
    }
    const BASE: &str = "rbuild-onbuild-base";
    struct Env(Vec<(String, String)>);
    impl crate::frontend::lower::BaseEnv for Env {
        fn env(&self, _: &str) -> Option<Vec<(String, String)>> {
            Some(self.0.clone())
        }
    }
    let text = format!("FROM {BASE}\n{}\n", cfg.config.on_build.join("\n"));
    let bad = |e: crate::frontend::FrontendError| {
        SolveError::Unsupported(format!(
            "invalid ONBUILD trigger in base image: {}",
            e.message
        ))
    };
    let (df, mut linter) = crate::frontend::parse_dockerfile(&text).map_err(bad)?;
    let opts = crate::frontend::lower::BuildOptions {
        build_args: build_args.to_vec(),
        ..Default::default()
    };
    let trigger_plan =
        crate::frontend::lower::lower(&df, &opts, &Env(cfg.env_pairs()), &mut linter)
            .map_err(bad)?;
    let mut steps = trigger_plan
        .stages
        .into_iter()
        .next()
        .map(|s| s.steps)
        .unwrap_or_default();
    // `--from=NAME` in a trigger names a stage of this build when one has it.
    let names: Vec<(String, usize)> = plan
        .stages
        .iter()
        .filter_map(|s| s.name.as_ref().map(|n| (n.to_ascii_lowercase(), s.index)))
        .collect();
    let to_stage = |src: &mut Option<Source>| {
        if let Some(Source::Image(n)) = src
            && let Some(i) = crate::frontend::onbuild::stage_index(n, &names, plan.stages.len())
            && plan.order.contains(&i)
        {
            *src = Some(Source::Stage(i));
        }
    };
    for step in &mut steps {
        to_stage(&mut step.copy_from);
        for (_, src) in &mut step.mounts {
            to_stage(src);
        }
    }
    Ok(steps)
}

/// Final touches: `--label`s and the image's creation time (its last history entry's).
fn finalize(cfg: &mut ImageConfig, labels: &[(String, String)]) {
    for (k, v) in labels {
        cfg.config.labels.insert(k.clone(), v.clone());
    }
    cfg.created = cfg.history.iter().rev().find_map(|h| h.created.clone());
}

fn build_stage(sh: &Shared, si: usize) -> Result<StageResult, SolveError> {
    let req = &sh.req;
    let st = &req.plan.stages[si];
    let from_vertex = &sh.vertices[&(si, 0)];
    sh.progress.send(Event::Started {
        id: from_vertex.id,
        name: from_vertex.name.clone(),
    });
    let t0 = std::time::Instant::now();
    let base: Result<StageResult, SolveError> = match &st.base {
        Source::Scratch => {
            let p = &req.platform;
            let mut h = KeyHasher::new();
            h.part("scratch").part(p.to_string());
            let state = ImageState {
                layers: Vec::new(),
                config: ImageConfig::scratch(&p.os, &p.arch, &p.variant),
            };
            Ok(StageResult {
                state,
                key: h.finish(),
                view: MergedView::default(),
            })
        }
        Source::Stage(i) => sh.wait_stage(*i).ok_or(SolveError::DependencyFailed),
        Source::Image(name) => sh.image(name).inspect(|_| {
            if let Some(line) = req.images.describe(name) {
                sh.progress.send(Event::Log {
                    id: from_vertex.id,
                    line,
                });
            }
        }),
    };
    let fail = |e: SolveError| {
        sh.progress.send(Event::Failed {
            id: from_vertex.id,
            error: e.to_string(),
        });
        SolveError::Step {
            step: from_vertex.name.clone(),
            source: Box::new(e),
        }
    };
    let mut cur = base.map_err(fail)?;
    cur.state.config.ensure_path();
    let triggers = onbuild_steps(&cur.state.config, &req.build_args, &req.plan).map_err(fail)?;
    cur.state.config.config.on_build.clear();
    sh.progress.send(Event::Done {
        id: from_vertex.id,
        seconds: t0.elapsed().as_secs_f64(),
    });
    let stage_fn = |i: usize| sh.wait_stage(i);
    let image_fn = |n: &str| sh.image(n);
    let proxies = proxy::proxy_env(&req.build_args);
    let hostname = req
        .build_args
        .iter()
        .rev()
        .find(|(k, v)| k == "BUILDKIT_SANDBOX_HOSTNAME" && !v.is_empty())
        .map(|(_, v)| v.as_str())
        .unwrap_or(steps::DEFAULT_HOSTNAME);
    let env = StepEnv {
        store: &sh.store,
        context: req.context.as_deref(),
        epoch: req.epoch,
        compression: req.compression,
        stages: &stage_fn,
        image: &image_fn,
        secrets: &req.secrets,
        allow_host_network: req.allow_host_network,
        proxy_env: &proxies,
        hostname,
    };
    let mut cmd_set = false;
    for (k, step) in triggers.iter().enumerate() {
        sh.progress.send(Event::Log {
            id: from_vertex.id,
            line: format!("ONBUILD {}", step.instruction.original),
        });
        match run_cached(
            sh,
            &env,
            &cur,
            step,
            si,
            1000 + k,
            from_vertex.id,
            &mut cmd_set,
        ) {
            Ok(next) => cur = next,
            Err(e) => {
                sh.progress.send(Event::Failed {
                    id: from_vertex.id,
                    error: e.to_string(),
                });
                return Err(SolveError::Step {
                    step: format!("ONBUILD {}", step.instruction.original),
                    source: Box::new(e),
                });
            }
        }
    }
    for (k, step) in st.steps.iter().enumerate() {
        let v = &sh.vertices[&(si, k + 1)];
        sh.progress.send(Event::Started {
            id: v.id,
            name: v.name.clone(),
        });
        let t = std::time::Instant::now();
        match run_cached(sh, &env, &cur, step, si, k, v.id, &mut cmd_set) {
            Ok(next) => {
                cur = next;
                sh.progress.send(Event::Done {
                    id: v.id,
                    seconds: t.elapsed().as_secs_f64(),
                });
            }
            Err(e) => {
                sh.progress.send(Event::Failed {
                    id: v.id,
                    error: e.to_string(),
                });
                return Err(SolveError::Step {
                    step: v.name.clone(),
                    source: Box::new(e),
                });
            }
        }
    }
    Ok(cur)
}

#[allow(clippy::too_many_arguments)]
fn run_cached(
    sh: &Shared,
    env: &StepEnv<'_>,
    cur: &StageResult,
    step: &Step,
    si: usize,
    k: usize,
    vid: usize,
    cmd_set: &mut bool,
) -> Result<StageResult, SolveError> {
    let prep = prepare(env, &cur.key, step)?;
    let key = prep.parts.key();
    let step_id = format!(
        "{}|{}|{}",
        sh.req.build_id,
        sh.req.plan.stages[si]
            .name
            .clone()
            .unwrap_or_else(|| si.to_string()),
        k
    );
    if matches!(
        step.instruction.kind,
        crate::frontend::ast::InstructionKind::Cmd(_)
    ) {
        *cmd_set = true;
    }
    if !sh.req.no_cache
        && let Some(rec) = sh.store.get_record(&key)
    {
        sh.progress.send(Event::Cached { id: vid });
        sh.counts.lock().expect("counts").0 += 1;
        let view = view_of(&sh.store, &rec.state);
        return Ok(StageResult {
            state: rec.state,
            key,
            view,
        });
    }
    let mut components = prep.parts.parts.clone();
    components.extend(steps::file_listings(&sh.store, &prep)?);
    let mut prep = prep;
    // Explain the miss against the newest earlier record of this step.
    if let Some(prev) = sh.store.latest_record_for_step(&step_id) {
        prep.previous = previous_copy(&sh.store, &prev, &prep.parts.parts, &cur.state);
        let store = &sh.store;
        let file_diff = |old: &str, new: &str| -> Option<String> {
            let a = store.read_blob(&old.parse().ok()?).ok()?;
            let b = store.read_blob(&new.parse().ok()?).ok()?;
            Some(keys::diff_file_lists(
                &String::from_utf8_lossy(&a),
                &String::from_utf8_lossy(&b),
            ))
        };
        let reason = keys::explain(&components, &prev.components, file_diff);
        sh.progress.send(Event::Miss { id: vid, reason });
    }
    let progress = sh.progress.clone();
    let progress = std::sync::Mutex::new(progress);
    let log = move |line: String| {
        if let Ok(p) = progress.lock() {
            p.send(Event::Log { id: vid, line });
        }
    };
    let state = run_step(env, &cur.state, step, &prep, cmd_set, &log)?;
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    sh.store.put_record(&CacheRecord {
        key,
        step_id,
        components,
        state: state.clone(),
        created,
    })?;
    sh.counts.lock().expect("counts").1 += 1;
    let view = view_of(&sh.store, &state);
    Ok(StageResult { state, key, view })
}
