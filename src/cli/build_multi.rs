//! `rbuild build --platform A,B`: each platform lowered and solved as its
//! own graph, all at once, sharing every step whose key matches (a step
//! two platforms reach runs once; the other takes it from the cache);
//! then one image per platform and an index over them.

use super::build::{
    BuildArgs, RegistryPusher, outputs_of, plan_of, progress_mode, report, settle,
    source_date_epoch,
};
use anyhow::{Context as _, Result};
use rbuild::build::io::BuildIo;
use rbuild::build::{Outputs, check_outputs, finish_multi, solve_saving};
use rbuild::cache::Store;
use rbuild::context::Context;
use rbuild::frontend::lower::BuildOptions;
use rbuild::frontend::platform::Platform;
use rbuild::image::resolver::Resolver;
use rbuild::progress::{Mode, Progress};
use rbuild::registry::RegistryOptions;
use rbuild::solver::platforms::{PlatformSolve, StepLocks};
use rbuild::solver::{BuildRequest, BuildResult};
use std::sync::Arc;

/// What every platform's request shares.
struct Common {
    store: Arc<Store>,
    context: Arc<Context>,
    build_id: String,
    locks: Arc<StepLocks>,
    imported: Option<Arc<dyn rbuild::remote_cache::ImportedCache>>,
}

/// Each platform's request, the checks' findings and the unused build args.
type Requests = (
    Vec<BuildRequest>,
    rbuild::frontend::lint::Linter,
    Vec<String>,
);

/// Lower the Dockerfile for each platform; None when a diagnostic was printed.
fn requests(
    args: &BuildArgs,
    src: &super::source::DockerfileSource,
    platforms: &[Platform],
    first: &Arc<Resolver>,
    common: &Common,
    (mode, io): (Mode, &BuildIo),
) -> Result<Option<Requests>> {
    let mut reqs = Vec::new();
    let mut kept = None;
    let mut offset = 0;
    for p in platforms {
        let opts = BuildOptions {
            build_args: args.build_args.clone(),
            target: args.target.clone(),
            target_platform: p.clone(),
            ..Default::default()
        };
        let images = first.sibling(p);
        let Some((plan, linter)) = plan_of(args, src, &opts, &images, false, (mode, &io.err))
        else {
            return Ok(None);
        };
        let vertices: usize = plan
            .order
            .iter()
            .map(|i| plan.stages[*i].steps.len() + 1)
            .sum();
        let unused = plan.unused_build_args.clone();
        kept.get_or_insert((linter, unused));
        reqs.push(BuildRequest {
            plan,
            context: Some(common.context.clone()),
            no_cache: args.no_cache,
            epoch: source_date_epoch(&args.build_args)?,
            compression: Default::default(),
            platform: p.clone(),
            build_id: common.build_id.clone(),
            labels: args.labels.clone(),
            build_args: args.build_args.clone(),
            secrets: args.secrets.clone(),
            images,
            allow_host_network: args.allow.iter().any(|a| a == "network.host"),
            explain: args.explain,
            lazy_bases: Default::default(),
            imported: common.imported.clone(),
            explicit_platform: true,
            multi: Some(PlatformSolve {
                locks: common.locks.clone(),
                vertex_offset: offset,
            }),
            cancel: io.cancel.clone(),
        });
        offset += vertices;
    }
    Ok(kept.map(|(linter, unused)| (reqs, linter, unused)))
}

/// Solve every platform's request at once: their results in order, or
/// the first error.
fn solve_all(
    store: &Arc<Store>,
    reqs: Vec<BuildRequest>,
    progress: Progress,
) -> Result<Result<Vec<(Platform, BuildResult)>, String>> {
    let platforms: Vec<Platform> = reqs.iter().map(|r| r.platform.clone()).collect();
    // The first platform to fail cancels the others (as BuildKit); its
    // error is the build's.
    let group = reqs.first().map(|r| r.cancel.child()).unwrap_or_default();
    let first_failed = std::sync::OnceLock::new();
    let solves = reqs.into_iter().enumerate().map(|(i, mut r)| {
        r.cancel = group.clone();
        let (group, first) = (&group, &first_failed);
        let (store, progress) = (store.clone(), progress.clone());
        async move {
            let r = solve_saving(store, r, progress).await;
            if r.is_err() && !group.is_cancelled() && first.set(i).is_ok() {
                group.cancel();
            }
            r
        }
    });
    let results = super::build_entry::block_on(futures_util::future::join_all(solves))?;
    let first = first_failed.get().copied();
    let mut out = Vec::new();
    let mut error = None;
    for (i, (p, r)) in platforms.into_iter().zip(results).enumerate() {
        match r {
            Ok(r) => out.push((p, r)),
            Err(e) if first.is_none_or(|f| f == i) => {
                error.get_or_insert(format!("[{p}] {e}"));
            }
            Err(_) => {}
        }
    }
    Ok(error.map_or(Ok(out), Err))
}

/// Run a multi-platform build.
pub fn run(args: &BuildArgs, platforms: Vec<Platform>, io: &BuildIo) -> Result<i32> {
    let mode = progress_mode(&args.progress, args.quiet)?;
    let mut registry = RegistryOptions::load()?;
    registry.insecure = args.insecure_registries.clone();
    let mut outputs = outputs_of(args)?;
    check_outputs(&outputs)?;
    let prepared = super::context_source::prepare(&args.context, args.file.as_deref())?;
    let src = &prepared.dockerfile;
    let store = super::build_entry::store_of(io)?;
    rbuild::solver::secrets::clean_stale();
    let first = Arc::new(Resolver::new(
        store.clone(),
        registry.clone(),
        args.pull,
        platforms[0].clone(),
    ));
    first.register();
    let dockerfile_path = prepared.dockerfile_path.clone();
    let context = super::build_entry::open_context(&prepared, &store, io)?;
    let first_opts = BuildOptions {
        target_platform: platforms[0].clone(),
        ..Default::default()
    };
    let common = Common {
        store: store.clone(),
        build_id: io.build_id_or(context.root(), &dockerfile_path),
        context,
        locks: Arc::default(),
        imported: super::cache_io::import(
            &store,
            args,
            &registry,
            &first_opts,
            (None, true),
            (mode, &io.err),
        ),
    };
    let Some((mut reqs, linter, unused_args)) =
        requests(args, src, &platforms, &first, &common, (mode, io))?
    else {
        return Ok(1);
    };
    let compression = outputs.first().map(|o| o.compression).unwrap_or_default();
    for r in &mut reqs {
        r.compression = compression;
    }
    let final_stage = reqs[0].plan.target;
    let (progress, rx) = Progress::channel();
    let renderer = io.spawn_view(
        rx,
        if args.explain && mode == Mode::Auto {
            Mode::Plain
        } else {
            mode
        },
    );
    let solved = solve_all(&common.store, reqs, progress)?;
    let _ = renderer.join();
    let Some(results) = settle(solved, (src, &linter), &unused_args, (mode, io)) else {
        return Ok(1);
    };
    let pusher = RegistryPusher {
        registry: registry.clone(),
        err: (mode != Mode::Quiet).then(|| io.err.clone()),
    };
    let out = Outputs {
        tags: args.tags.clone(),
        outputs: std::mem::take(&mut outputs),
        metadata: args.metadata_file.is_some() || args.iidfile.is_some(),
        pusher: &pusher,
    };
    let multi = finish_multi(&store, results, &out)?;
    report(args, &multi.outcome, io)?;
    write_metadata(args, &multi)?;
    if mode != Mode::Quiet {
        for (p, id) in &multi.image_ids {
            io.err.line(format_args!("image {id} ({p})"));
        }
    }
    let both = (mode, &io.err);
    if !super::cache_io::export(&store, args, &multi.outcome, final_stage, &registry, both) {
        return Ok(1);
    }
    Ok(0)
}

/// `--metadata-file` and `--iidfile` of a multi-platform build: the
/// index's digest (as buildx writes them).
fn write_metadata(args: &BuildArgs, multi: &rbuild::build::MultiOutcome) -> Result<()> {
    let Some(index) = &multi.index else {
        return Ok(());
    };
    if let Some(f) = &args.iidfile {
        std::fs::write(f, index.to_string()).with_context(|| format!("writing {}", f.display()))?;
    }
    let Some(f) = &args.metadata_file else {
        return Ok(());
    };
    let meta = serde_json::json!({
        "containerimage.digest": index,
        "image.name": multi.outcome.names.join(","),
    });
    std::fs::write(f, serde_json::to_vec_pretty(&meta)?)
        .with_context(|| format!("writing {}", f.display()))
}
