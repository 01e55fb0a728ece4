//! The scheduler runs any op: a test op, unknown to the solver, writes a
//! file into a layer; the second build takes it from the cache by key.

use super::*;
use crate::cache::LockMode;
use crate::frontend::ast::{Instruction, InstructionKind};
use crate::frontend::lower::{PlannedStage, Source, Step};
use crate::frontend::position::{Pos, Span};
use crate::ops::{CacheMap, ExecCtx, Op, OpEnv};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Writes `name` with `content` as a new layer; counts its runs.
#[derive(Debug)]
struct WriteFile {
    name: String,
    content: String,
    runs: Arc<AtomicUsize>,
}

impl Op for WriteFile {
    fn kind(&self) -> &'static str {
        "TEST-WRITE"
    }
    fn definition(&self) -> String {
        format!("{}={}", self.name, self.content)
    }
    fn exec(
        &self,
        env: &OpEnv<'_>,
        parent: &ImageState,
        _map: CacheMap,
        _ctx: &ExecCtx<'_>,
    ) -> Result<ImageState, OpError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let tmp = env.store.temp_dir("test")?;
        std::fs::write(tmp.path().join(&self.name), &self.content).map_err(|source| {
            OpError::Io {
                what: "writing",
                path: tmp.path().join(&self.name),
                source,
            }
        })?;
        let mut state = parent.clone();
        state.layers.extend(crate::layer::commit::commit_layer(
            env.store, env.epoch, tmp,
        )?);
        Ok(state)
    }
}

fn plan(op: Arc<dyn Op>) -> BuildPlan {
    // The instruction is only what progress shows; the solver runs the op.
    let instruction = Instruction {
        span: Span {
            start: Pos { line: 2, col: 1 },
            end_line: 2,
        },
        original: "TEST-WRITE f".into(),
        keyword: "TEST-WRITE".into(),
        // A kind the progress shows (and so the summary counts).
        kind: InstructionKind::Workdir {
            path: "/ignored".into(),
        },
    };
    let step = Step {
        instruction,
        env: Vec::new(),
        args_in_scope: Vec::new(),
        copy_from: None,
        mounts: Vec::new(),
        trigger: false,
        op,
    };
    BuildPlan {
        stages: vec![PlannedStage {
            index: 0,
            name: None,
            base: Source::Scratch,
            platform: None,
            span: Span {
                start: Pos { line: 1, col: 1 },
                end_line: 1,
            },
            steps: vec![step],
            deps: Vec::new(),
        }],
        target: 0,
        order: vec![0],
        global_args: Vec::new(),
        unused_build_args: Vec::new(),
    }
}

fn build(store: &Arc<Store>, op: Arc<dyn Op>) -> BuildResult {
    let platform = crate::frontend::platform::Platform::host();
    let images = Arc::new(crate::image::resolver::Resolver::new(
        store.clone(),
        crate::registry::RegistryOptions::default(),
        false,
        platform.clone(),
    ));
    let req = BuildRequest {
        plan: plan(op),
        context: None,
        no_cache: false,
        epoch: None,
        compression: Compression::default(),
        platform,
        build_id: "test".into(),
        labels: Vec::new(),
        build_args: Vec::new(),
        secrets: Vec::new(),
        images,
        allow_host_network: false,
        explain: false,
        lazy_bases: Default::default(),
        imported: None,
        multi: None,
        cancel: Default::default(),
        explicit_platform: false,
    };
    let (progress, _rx) = Progress::channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(solve(store.clone(), req, progress)).unwrap()
}

#[test]
fn a_new_op_needs_no_change_to_the_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), LockMode::Shared).unwrap());
    let runs = Arc::new(AtomicUsize::new(0));
    let op = |content: &str| -> Arc<dyn Op> {
        Arc::new(WriteFile {
            name: "f".into(),
            content: content.into(),
            runs: runs.clone(),
        })
    };
    let first = build(&store, op("one"));
    assert_eq!((first.executed, first.cached), (1, 0));
    assert_eq!(first.state.layers.len(), 1);
    let snapshot = store.snapshot_path(&first.state.layers[0].diff_id);
    assert_eq!(std::fs::read_to_string(snapshot.join("f")).unwrap(), "one");
    // Same definition: taken from the cache by key, not run.
    let again = build(&store, op("one"));
    assert_eq!((again.executed, again.cached), (0, 1));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(again.state.layers, first.state.layers);
    // Another definition: another key, run again.
    let changed = build(&store, op("two"));
    assert_eq!((changed.executed, changed.cached), (1, 0));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[test]
fn config_only_entries_take_the_layer_times_as_buildkit() {
    use crate::image::config::History;
    let h = |c: Option<&str>| History {
        created: c.map(String::from),
        created_by: String::new(),
        comment: String::new(),
        empty_layer: c.is_none(),
    };
    let mut hist = vec![h(Some("base")), h(None), h(Some("layer")), h(None)];
    fill_created(&mut hist);
    let times: Vec<_> = hist.iter().map(|h| h.created.clone().unwrap()).collect();
    assert_eq!(times, ["base", "layer", "layer", "layer"]);
}
