//! What runs when: a stage starts from its base and runs its ops in order.
//! An op whose key is in the store is not run (layer ops have a record
//! each); config-only ops are folded into the config as they come, with a
//! note of their key kept only to explain a later change.

use super::platforms::{keep_platform, stage_platform};
use super::vertices::{Vertex, vertex_names};
use super::{BuildRequest, SolveError, keys};
use crate::cache::{CacheRecord, StepNote, Store};
use crate::digest::{Digest, KeyHasher};
use crate::frontend::lower::Source;
use crate::frontend::platform::Platform;
use crate::image::ImageState;
use crate::image::config::ImageConfig;
use crate::layer::view::MergedView;
use crate::ops::op::view_of;
use crate::ops::{ExecCtx, Op, OpEnv, OpError, StageResult};
use crate::progress::{Event, Progress};
use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

/// What the stages of one build share.
pub struct Shared {
    pub(super) store: std::sync::Arc<Store>,
    pub(super) req: BuildRequest,
    pub(super) progress: Progress,
    /// Finished stages: their result, or None when they failed.
    results: Mutex<HashMap<usize, Option<StageResult>>>,
    done: Condvar,
    images: Mutex<HashMap<String, StageResult>>,
    vertices: HashMap<(usize, usize), Vertex>,
    /// Ids of the vertices BuildKit does not show (config-only steps).
    hidden: std::collections::HashSet<usize>,
    counts: Mutex<(usize, usize)>,
    /// Keys of the steps gone through, for `--cache-to`.
    steps: Mutex<Vec<crate::remote_cache::StepKey>>,
}

impl Shared {
    /// The shared state of a build about to start.
    pub fn new(store: std::sync::Arc<Store>, req: BuildRequest, progress: Progress) -> Self {
        // rbuild's --explain shows every step, config-only ones too.
        let mut vertices = vertex_names(&req.plan, req.explain);
        if let Some(m) = &req.multi {
            for v in vertices.values_mut() {
                v.id += m.vertex_offset;
                v.name = v.name.replacen('[', &format!("[{} ", req.platform), 1);
            }
        }
        let hidden = vertices
            .values()
            .filter(|v| v.hidden)
            .map(|v| v.id)
            .collect();
        Shared {
            store,
            hidden,
            vertices,
            progress,
            results: Mutex::new(HashMap::new()),
            done: Condvar::new(),
            images: Mutex::new(HashMap::new()),
            counts: Mutex::new((0, 0)),
            steps: Mutex::new(Vec::new()),
            req,
        }
    }

    /// Record stage `si`'s result (None: it failed) and wake its readers.
    pub fn finish_stage(&self, si: usize, r: Option<StageResult>) {
        if let Ok(mut results) = self.results.lock() {
            results.insert(si, r);
        }
        self.done.notify_all();
    }

    /// (cached, executed) steps so far.
    pub fn counts(&self) -> (usize, usize) {
        self.counts.lock().map(|c| *c).unwrap_or_default()
    }

    /// The keys of the steps gone through so far.
    pub fn step_keys(&self) -> Vec<crate::remote_cache::StepKey> {
        self.steps.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub(super) fn note_step(
        &self,
        stage: usize,
        key: Digest,
        parts: &[(String, String)],
        layer: bool,
    ) {
        if let Ok(mut s) = self.steps.lock() {
            s.push(crate::remote_cache::StepKey {
                stage,
                key,
                parts: parts.to_vec(),
                makes_layer: layer,
            });
        }
    }

    /// Count a step as cached or run, unless its vertex is not shown
    /// (the summary counts what the progress shows, as BuildKit's).
    pub(super) fn count_for(&self, vid: usize, cached: bool) {
        if !self.hidden.contains(&vid) {
            self.count(cached);
        }
    }

    pub(super) fn count(&self, cached: bool) {
        if let Ok(mut c) = self.counts.lock() {
            if cached {
                c.0 += 1;
            } else {
                c.1 += 1;
            }
        }
    }

    /// Block until stage `i` has finished; its result, or None if it failed.
    fn wait_stage(&self, i: usize) -> Option<StageResult> {
        let mut results = self.results.lock().ok()?;
        loop {
            if let Some(r) = results.get(&i) {
                return r.clone();
            }
            results = self.done.wait(results).ok()?;
        }
    }

    /// Stage `i`'s result if it finished well.
    pub fn stage(&self, i: usize) -> Option<StageResult> {
        self.results.lock().ok()?.get(&i).cloned().flatten()
    }

    fn image(&self, name: &str) -> Result<StageResult, OpError> {
        self.image_for(name, &self.req.platform)
    }

    /// Image `name` for `platform` (a stage's `FROM --platform`).
    fn image_for(&self, name: &str, platform: &Platform) -> Result<StageResult, OpError> {
        let memo = format!("{platform}|{name}");
        if let Some(r) = self.images.lock().ok().and_then(|m| m.get(&memo).cloned()) {
            return Ok(r);
        }
        let images = self.req.images.for_platform(platform);
        let loaded = if self.req.lazy_bases.contains(name) {
            images.load_lazy(name)?
        } else {
            images.load(name)?
        };
        let mut loaded = loaded;
        // A base's inline cache is its own, not its children's.
        loaded.state.config.inline_cache = None;
        let mut h = KeyHasher::new();
        h.part("image").part(loaded.manifest.to_string());
        let view = view_of(&self.store, &loaded.state);
        let r = StageResult {
            state: loaded.state,
            key: h.finish(),
            view,
        };
        if let Ok(mut m) = self.images.lock() {
            m.insert(memo, r.clone());
        }
        Ok(r)
    }

    /// With `--explain`: why a step was taken from the cache.
    pub(super) fn explain_hit(&self, vid: usize, key: &Digest, parts: usize) {
        if self.req.explain && !self.req.no_cache {
            let line = format!(
                "cache hit: key {} (parent, definition and {} inputs unchanged)",
                key,
                parts.saturating_sub(3)
            );
            self.send_for(vid, Event::Log { id: vid, line });
        }
    }

    /// With `--explain`: a step that has never been built here.
    fn explain_first(&self, vid: usize) {
        if self.req.explain {
            let reason = if self.req.no_cache {
                "--no-cache".to_string()
            } else {
                "no earlier build of this step".to_string()
            };
            self.send_for(vid, Event::Miss { id: vid, reason });
        }
    }

    /// Send a step's event, unless its vertex is not shown.
    pub(super) fn send_for(&self, vid: usize, e: Event) {
        if !self.hidden.contains(&vid) {
            self.progress.send(e);
        }
    }

    fn failed(&self, v: &Vertex, e: SolveError) -> SolveError {
        self.progress.send(Event::Failed {
            id: v.id,
            error: e.to_string(),
        });
        SolveError::Step {
            step: v.name.clone(),
            source: Box::new(e),
        }
    }
}

/// The state a stage starts from.
fn stage_base(
    sh: &Shared,
    si: usize,
    from: &Vertex,
    p: &Platform,
) -> Result<StageResult, SolveError> {
    let req = &sh.req;
    match &req.plan.stages[si].base {
        Source::Scratch => {
            // No platform in the key: what is built on scratch without a
            // RUN (whose key has the platform) is the same on every one.
            let mut h = KeyHasher::new();
            h.part("scratch");
            if p.os != "linux" {
                // Another OS has other defaults (shell, PATH).
                h.part(&p.os);
            }
            Ok(StageResult {
                state: ImageState {
                    layers: Vec::new(),
                    config: ImageConfig::scratch(&p.os, &p.arch, &p.variant),
                },
                key: h.finish(),
                view: MergedView::default(),
            })
        }
        Source::Stage(i) => sh.wait_stage(*i).ok_or(SolveError::DependencyFailed),
        Source::Image(name) => {
            let r = sh.image_for(name, p)?;
            let c = &r.state.config;
            let got = Platform::from_oci(&c.os, &c.architecture, &c.variant);
            if !c.architecture.is_empty() && (got.os != p.os || got.arch != p.arch) {
                // BuildKit's InvalidBaseImagePlatform check.
                let line = format!(
                    "warning: InvalidBaseImagePlatform: Base image {name} was pulled with platform \"{got}\", expected \"{p}\" for current build"
                );
                sh.progress.send(Event::Log { id: from.id, line });
            }
            if let Some(line) = req.images.for_platform(p).describe(name) {
                sh.progress.send(Event::Log { id: from.id, line });
            }
            Ok(r)
        }
    }
}

/// Build stage `si`: its base, then its ops in order.
pub fn build_stage(sh: &Shared, si: usize) -> Result<StageResult, SolveError> {
    let req = &sh.req;
    let from = &sh.vertices[&(si, 0)];
    if !from.hidden {
        sh.progress.send(Event::Started {
            id: from.id,
            name: from.name.clone(),
        });
    }
    let t0 = std::time::Instant::now();
    // As BuildKit: `FROM --platform=X scratch` is the target's platform.
    let value = match req.plan.stages[si].base {
        Source::Scratch => None,
        _ => req.plan.stages[si].platform.as_deref(),
    };
    let platform = stage_platform(value, &req.platform)
        .map_err(|e| sh.failed(from, SolveError::Internal(e)))?;
    let mut cur = stage_base(sh, si, from, &platform).map_err(|e| sh.failed(from, e))?;
    cur.state.config.ensure_path();
    // The base's ONBUILD triggers are steps of this stage (lowered by the frontend).
    cur.state.config.config.on_build.clear();
    if !from.hidden {
        sh.progress.send(Event::Done {
            id: from.id,
            seconds: t0.elapsed().as_secs_f64(),
        });
    }
    // What another stage or image gives a step is read: its layers left
    // in a registry are fetched first.
    let stage_fn = |i: usize| {
        let r = sh.wait_stage(i)?;
        sh.local(r, sh.base_image_of(i))
            .map_err(|e| {
                let line = format!("error: stage {i}: {e}");
                sh.progress.send(Event::Log { id: from.id, line });
            })
            .ok()
    };
    let image_fn = |n: &str| sh.local(sh.image(n)?, Some(n));
    let key_fn = |s: &Source| match s {
        Source::Stage(i) => sh
            .wait_stage(*i)
            .map(|r| r.key)
            .ok_or(OpError::DependencyFailed),
        Source::Image(n) => Ok(sh.image(n)?.key),
        Source::Scratch => Err(OpError::Internal("scratch has no key".into())),
    };
    let proxies = super::proxy::proxy_env(&req.build_args);
    let hostname = req
        .build_args
        .iter()
        .rev()
        .find(|(k, v)| k == "BUILDKIT_SANDBOX_HOSTNAME" && !v.is_empty())
        .map(|(_, v)| v.as_str())
        .unwrap_or(crate::ops::run::DEFAULT_HOSTNAME);
    let env = OpEnv {
        store: &sh.store,
        context: req.context.as_deref(),
        epoch: req.epoch,
        compression: req.compression,
        stages: &stage_fn,
        image: &image_fn,
        source_key: &key_fn,
        secrets: &req.secrets,
        allow_host_network: req.allow_host_network,
        proxy_env: &proxies,
        hostname,
        platform: &platform,
    };
    let stage_name = req.plan.stages[si]
        .name
        .clone()
        .unwrap_or_else(|| si.to_string());
    for (k, step) in req.plan.stages[si].steps.iter().enumerate() {
        let v = &sh.vertices[&(si, k + 1)];
        if req.cancel.is_cancelled() {
            return Err(SolveError::Cancelled);
        }
        if !v.hidden {
            sh.progress.send(Event::Started {
                id: v.id,
                name: v.name.clone(),
            });
        }
        let t = std::time::Instant::now();
        let step_id = format!("{}|{stage_name}|{k}", req.build_id);
        cur = run_op(sh, &env, &cur, step.op.as_ref(), (si, &step_id), v.id)
            .map_err(|e| sh.failed(v, e))?;
        if !v.hidden {
            sh.progress.send(Event::Done {
                id: v.id,
                seconds: t.elapsed().as_secs_f64(),
            });
        }
    }
    Ok(cur)
}

/// Run one op on `cur`: from the cache when its key is there (layer ops),
/// folded into the config (config-only ops), else executed and recorded.
fn run_op(
    sh: &Shared,
    env: &OpEnv<'_>,
    cur: &StageResult,
    op: &dyn Op,
    (si, step_id): (usize, &str),
    vid: usize,
) -> Result<StageResult, SolveError> {
    let by_definition = match op.makes_layer() {
        true => op.definition_key(env, &cur.key)?,
        false => None,
    };
    if let Some(parts) = &by_definition
        && let Some(mut r) = sh.definition_hit(parts, (si, step_id), vid)?
    {
        keep_platform(&mut r.state.config, &cur.state.config);
        return Ok(r);
    }
    let map = op.cache_map(env, &cur.key)?;
    let key = map.parts.key();
    sh.note_step(si, key, &map.parts.parts, op.makes_layer());
    if !op.makes_layer() {
        return fold_config(sh, env, cur, op, map, step_id, vid);
    }
    // Another platform's solve running this very step: wait, then take
    // its record from the store.
    let slot = sh.req.multi.as_ref().map(|m| m.locks.slot(&key));
    let _running = slot.as_ref().and_then(|s| s.lock().ok());
    let mut r = run_layer_op(sh, env, cur, op, map, (si, step_id, key), vid)?;
    if let Some(m) = &sh.req.multi {
        m.locks.mark(&key);
    }
    keep_platform(&mut r.state.config, &cur.state.config);
    if let Some(parts) = &by_definition {
        sh.record_definition(parts, (si, step_id), &r)?;
    }
    Ok(r)
}

/// A layer op: from the store's or an imported cache, else run and recorded.
fn run_layer_op(
    sh: &Shared,
    env: &OpEnv<'_>,
    cur: &StageResult,
    op: &dyn Op,
    map: crate::ops::CacheMap,
    (si, step_id, key): (usize, &str, Digest),
    vid: usize,
) -> Result<StageResult, SolveError> {
    let shared = sh.req.multi.as_ref().is_some_and(|m| m.locks.ran(&key));
    let parts = map.parts.parts.len();
    if let Some(r) = stored_hit(sh, &key, parts, vid, (false, shared)) {
        return Ok(r);
    }
    if let Some(r) = imported_hit(sh, &key, Some(&map.parts.parts), step_id, vid)? {
        return Ok(r);
    }
    // Run it holding its lock, unless a concurrent build ran it meanwhile.
    let _lock = if sh.req.no_cache {
        None
    } else {
        let (lock, waited) = sh.store.lock_step(&key, || {
            let line = "waiting for another build running this step".to_string();
            sh.send_for(vid, Event::Log { id: vid, line });
        })?;
        if let Some(r) = stored_hit(sh, &key, parts, vid, (waited, false)) {
            return Ok(r);
        }
        Some(lock)
    };
    let mut components = map.parts.parts.clone();
    components.extend(op.explain_inputs(env, &map)?);
    // Explain the miss against the newest earlier record of this step.
    let previous = sh.store.latest_record_for_step(step_id);
    match &previous {
        Some(prev) => {
            let reason = explain(&sh.store, &components, &prev.components);
            sh.send_for(vid, Event::Miss { id: vid, reason });
        }
        None => sh.explain_first(vid),
    }
    let local;
    let cur = if op.reads_parent_files() {
        local = sh.local(cur.clone(), sh.base_image_of(si))?;
        &local
    } else {
        cur
    };
    let state = exec(sh, env, cur, op, map, previous.as_ref(), &key, vid)?;
    sh.store.put_record(&CacheRecord {
        key,
        step_id: step_id.to_string(),
        components,
        layers: state.layers.clone(),
        config: state.config_json(),
        created: now_secs(),
    })?;
    sh.count_for(vid, false);
    let view = view_of(&sh.store, &state);
    Ok(StageResult { state, key, view })
}

/// A layer step whose record is in the store (not with `--no-cache`);
/// `waited`: it was just run by a concurrent build we waited for;
/// `shared`: another platform's solve of this build ran it (taken even
/// with `--no-cache`).
pub(super) fn stored_hit(
    sh: &Shared,
    key: &Digest,
    parts: usize,
    vid: usize,
    (waited, shared): (bool, bool),
) -> Option<StageResult> {
    if sh.req.no_cache && !shared {
        return None;
    }
    let state = ImageState::from_record(&sh.store.get_record(key)?)?;
    if waited && sh.req.explain {
        let line = format!("cache hit: key {key} (just built by a concurrent build)");
        sh.send_for(vid, Event::Log { id: vid, line });
    } else {
        sh.explain_hit(vid, key, parts);
    }
    sh.send_for(vid, Event::Cached { id: vid });
    sh.count_for(vid, true);
    let view = view_of(&sh.store, &state);
    Some(StageResult {
        state,
        key: *key,
        view,
    })
}

/// A config-only op: applied to the config, never looked up. Its key's
/// parts are noted under the step's id, so a later change is explained
/// and an unchanged one shown as cached.
fn fold_config(
    sh: &Shared,
    env: &OpEnv<'_>,
    cur: &StageResult,
    op: &dyn Op,
    map: crate::ops::CacheMap,
    step_id: &str,
    vid: usize,
) -> Result<StageResult, SolveError> {
    let key = map.parts.key();
    let components = map.parts.parts.clone();
    let note = sh.store.step_note(step_id);
    let local = !sh.req.no_cache
        && (note.as_ref().is_some_and(|n| n.key == key) || sh.store.config_key_seen(&key));
    let imported = (!sh.req.no_cache && !local)
        .then(|| sh.req.imported.as_ref()?.knows(&key))
        .flatten();
    let unchanged = local || imported.is_some();
    if local {
        sh.explain_hit(vid, &key, components.len());
        sh.send_for(vid, Event::Cached { id: vid });
    } else if let Some(from) = &imported {
        if sh.req.explain {
            let line = format!("cache hit: key {key} from the imported cache {from}");
            sh.send_for(vid, Event::Log { id: vid, line });
        }
        let from = from.clone();
        sh.send_for(vid, Event::CacheImported { id: vid, from });
        sh.send_for(vid, Event::Cached { id: vid });
    } else if let Some(n) = &note {
        let reason = explain(&sh.store, &components, &n.components);
        sh.send_for(vid, Event::Miss { id: vid, reason });
    } else {
        sh.explain_first(vid);
    }
    sh.count_for(vid, unchanged);
    let state = exec(sh, env, cur, op, map, None, &key, vid)?;
    if note.is_none_or(|n| n.key != key) {
        sh.store
            .put_step_note(step_id, &StepNote { key, components })?;
    }
    if !sh.store.config_key_seen(&key) {
        sh.store.note_config_key(&key)?;
    }
    Ok(StageResult {
        state,
        key,
        view: cur.view.clone(),
    })
}

/// A layer step found in a `--cache-from` cache: its layers fetched, its
/// record kept in the store (with `parts`, else the imported record's). A cache entry that cannot be used (a blob
/// that does not match its digest) is said and the step is run.
pub(super) fn imported_hit(
    sh: &Shared,
    key: &Digest,
    parts: Option<&[(String, String)]>,
    step_id: &str,
    vid: usize,
) -> Result<Option<StageResult>, SolveError> {
    let Some(imported) = sh.req.imported.as_ref().filter(|_| !sh.req.no_cache) else {
        return Ok(None);
    };
    let hit = match imported.find(&sh.store, key) {
        Ok(Some(h)) => h,
        Ok(None) => return Ok(None),
        Err(e) => {
            let line = format!("warning: {e}; the step is run");
            sh.send_for(vid, Event::Log { id: vid, line });
            return Ok(None);
        }
    };
    let rec = CacheRecord {
        key: *key,
        step_id: step_id.to_string(),
        components: parts.map(<[_]>::to_vec).unwrap_or(hit.parts),
        layers: hit.layers,
        config: hit.config,
        created: now_secs(),
    };
    let Some(state) = ImageState::from_record(&rec) else {
        return Ok(None);
    };
    sh.store.put_record(&rec)?;
    if sh.req.explain {
        let line = format!(
            "cache hit: key {key} from the imported cache {}",
            hit.source
        );
        sh.send_for(vid, Event::Log { id: vid, line });
    }
    let from = hit.source;
    sh.send_for(vid, Event::CacheImported { id: vid, from });
    sh.send_for(vid, Event::Cached { id: vid });
    sh.count_for(vid, true);
    let view = view_of(&sh.store, &state);
    Ok(Some(StageResult {
        state,
        key: *key,
        view,
    }))
}

#[allow(clippy::too_many_arguments)]
fn exec(
    sh: &Shared,
    env: &OpEnv<'_>,
    cur: &StageResult,
    op: &dyn Op,
    map: crate::ops::CacheMap,
    previous: Option<&CacheRecord>,
    key: &Digest,
    vid: usize,
) -> Result<ImageState, SolveError> {
    let progress = Mutex::new(sh.progress.clone());
    let log = move |line: String| {
        if let Ok(p) = progress.lock() {
            p.send(Event::Log { id: vid, line });
        }
    };
    // `rbuild serve --max-runs`: RUN steps of all builds share slots.
    let _slot = match op.kind() {
        "RUN" => sh.store.run_slot(|| {
            let line = "waiting for a free RUN slot (rbuild serve --max-runs)".to_string();
            sh.send_for(vid, Event::Log { id: vid, line });
        })?,
        _ => None,
    };
    // Cancelled: a RUN no other build waits for is killed.
    let stop = || sh.req.cancel.is_cancelled() && !sh.store.step_awaited(key);
    let ctx = ExecCtx {
        previous,
        log: &log,
        stop: &stop,
        log_file: sh.store.logs_dir().join(format!("{}.log", key.hex())),
    };
    Ok(op.exec(env, &cur.state, map, &ctx)?)
}

/// Why a key differs from an earlier one of the same step.
fn explain(store: &Store, now: &[(String, String)], before: &[(String, String)]) -> String {
    let file_diff = |old: &str, new: &str| -> Option<String> {
        let a = store.read_blob(&old.parse().ok()?).ok()?;
        let b = store.read_blob(&new.parse().ok()?).ok()?;
        Some(keys::diff_file_lists(
            &String::from_utf8_lossy(&a),
            &String::from_utf8_lossy(&b),
        ))
    };
    keys::explain(now, before, file_diff)
}

pub(super) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
