//! The build as one call, [`build`]: what `rbuild build` runs on this
//! machine, and what `rbuild serve` runs in its own process for each
//! client (with the client's progress sink, output, secrets and
//! cancellation in [`BuildIo`], and the server's shared store). Nothing
//! here exits the process, changes its environment or its directory.

use super::build::{
    BuildArgs, RegistryPusher, outputs_of, plan_of, progress_mode, push_only_hosts, report, settle,
    source_date_epoch,
};
use anyhow::{Context as _, Result};
use rbuild::build::io::BuildIo;
use rbuild::build::{LazyFallback, Outputs, finish, solve_saving};
use rbuild::cache::{LockMode, Store, default_root};
use rbuild::context::Context;
use rbuild::frontend::lower::BuildOptions;
use rbuild::image::manifest::MediaTypes;
use rbuild::image::resolver::Resolver;
use rbuild::progress::{Mode, Progress};
use rbuild::registry::RegistryOptions;
use rbuild::solver::BuildRequest;
use std::process::ExitCode;
use std::sync::Arc;

/// `rbuild build`: through a server (`--server`), else on this machine.
pub fn run(args: BuildArgs) -> Result<ExitCode> {
    if let Some(addr) = &args.server {
        return super::remote::run(&args, addr);
    }
    let code = build(args, BuildIo::local())?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// `rbuild serve`'s builds: parse a client's `rbuild build` flags and run
/// [`build`]; the exit code (2 for flags clap refuses, 1 for an error,
/// printed to `io.err` as the CLI prints it).
pub fn serve_build(argv: Vec<String>, io: BuildIo) -> i32 {
    use clap::Parser as _;
    let argv = ["rbuild", "build"]
        .into_iter()
        .map(String::from)
        .chain(argv);
    let cli = match super::Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            io.err.text(&e.render().to_string());
            return e.exit_code();
        }
    };
    let super::Command::Build(args) = cli.command else {
        io.err.line("error: not a build");
        return 2;
    };
    let err = io.err.clone();
    match build(args, io) {
        Ok(code) => code,
        Err(e) => {
            err.line(format_args!("error: {e:#}"));
            1
        }
    }
}

/// Run `f` to its end: on the runtime of the calling thread when it has
/// one (`rbuild serve`'s builds, on its blocking threads: its workers and
/// blocking pool then serve the solve too), else on a runtime of its own.
pub(super) fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        return Ok(handle.block_on(f));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(f))
}

/// The store `io` shares, else the default one opened.
pub(super) fn store_of(io: &BuildIo) -> Result<Arc<Store>> {
    if let Some(s) = &io.store {
        return Ok(s.clone());
    }
    let root = default_root();
    Ok(Arc::new(
        Store::open(&root, LockMode::Shared)
            .with_context(|| format!("opening store {}", root.display()))?,
    ))
}

/// The build context, with its stat cache in the store; or, when `io`
/// knows its files' digests (a throwaway copy), with those.
pub(super) fn open_context(
    prepared: &super::context_source::PreparedContext,
    store: &Store,
    io: &BuildIo,
) -> Result<Arc<Context>> {
    let statcache = store.root().join("statcache");
    let cache_dir = io.context_digests.is_none().then_some(statcache.as_path());
    let context = Context::open(&prepared.dir, &prepared.dockerfile_path, cache_dir)?;
    if let Some(known) = &io.context_digests {
        context.know_digests(known);
    }
    Ok(Arc::new(context))
}

/// Build on this machine: the exit code (0, or 1 when the build failed
/// with its error printed to `io.err`); Err for a problem before the
/// build starts (bad flags, no Dockerfile, no store).
pub fn build(mut args: BuildArgs, io: BuildIo) -> Result<i32> {
    args.secrets.extend(io.secret_sources());
    let platforms = super::platforms::cli_platforms(&args.platform)?;
    if platforms.len() > 1 {
        return super::build_multi::run(&args, platforms, &io);
    }
    let mode = progress_mode(&args.progress, args.quiet)?;
    let mut registry = RegistryOptions::load()?;
    registry.insecure = args.insecure_registries.clone();
    let outputs = outputs_of(&args)?;
    let prepared = super::context_source::prepare(&args.context, args.file.as_deref())?;
    let src = &prepared.dockerfile;
    let store = store_of(&io)?;
    // Secrets a killed build left in memory.
    rbuild::solver::secrets::clean_stale();
    let mut opts = BuildOptions {
        build_args: args.build_args.clone(),
        target: args.target.clone(),
        ..Default::default()
    };
    if let Some(p) = platforms.first() {
        opts.target_platform = p.clone();
    }
    let images = Arc::new(Resolver::new(
        store.clone(),
        registry.clone(),
        args.pull,
        opts.target_platform.clone(),
    ));
    let push_hosts = push_only_hosts(&args, &outputs);
    let lazy = push_hosts.is_some();
    let Some((plan, linter)) = plan_of(&args, src, &opts, &images, lazy, (mode, &io.err)) else {
        return Ok(1);
    };
    let oci = outputs.iter().all(|o| o.media_types == MediaTypes::Oci);
    let mut lazy_bases = push_hosts
        .clone()
        .map(|hosts| rbuild::build::lazy_bases(&plan, &hosts))
        .unwrap_or_default();
    // With a cache whose hits stay in its registry, every base there may
    // stay too until a step reads it (then it is fetched).
    if let Some(home) =
        super::cache_io::lazy_home(&args, push_hosts.as_deref()).filter(|_| !args.no_cache)
    {
        lazy_bases.extend(rbuild::build::bases_on(&plan, &home));
    }
    lazy_bases.retain(|b| rbuild::build::blobs_fit(&store, b, oci));
    let dockerfile_path = prepared.dockerfile_path.clone();
    let context = open_context(&prepared, &store, &io)?;
    let build_id = io.build_id_or(context.root(), &dockerfile_path);
    let imported = super::cache_io::import(
        &store,
        &args,
        &registry,
        &opts,
        (push_hosts.as_deref(), oci),
        (mode, &io.err),
    );
    let req = BuildRequest {
        context: Some(context),
        no_cache: args.no_cache,
        epoch: source_date_epoch(&args.build_args)?,
        compression: outputs.first().map(|o| o.compression).unwrap_or_default(),
        platform: opts.target_platform.clone(),
        build_id,
        labels: args.labels.clone(),
        build_args: args.build_args.clone(),
        secrets: args.secrets.clone(),
        images,
        allow_host_network: args.allow.iter().any(|a| a == "network.host"),
        explain: args.explain,
        lazy_bases,
        imported,
        multi: None,
        explicit_platform: !platforms.is_empty(),
        cancel: io.cancel.clone(),
        plan,
    };
    let solving = Solving {
        args: &args,
        src,
        linter,
        store,
        registry,
        outputs,
        mode,
        io: &io,
    };
    solving.run(req)
}

/// A build ready to solve: what it needs after the solve.
struct Solving<'a> {
    args: &'a BuildArgs,
    src: &'a super::source::DockerfileSource,
    linter: rbuild::frontend::lint::Linter,
    store: Arc<Store>,
    registry: RegistryOptions,
    outputs: Vec<rbuild::export::OutputSpec>,
    mode: Mode,
    io: &'a BuildIo,
}

impl Solving<'_> {
    /// Solve, let the progress view finish, then store and export (as
    /// rbuild::build::build does, with the view's last lines before the
    /// pushes').
    fn run(self, req: BuildRequest) -> Result<i32> {
        let (args, io, mode, store) = (self.args, self.io, self.mode, &self.store);
        let unused_args = req.plan.unused_build_args.clone();
        let final_stage = req.plan.target;
        let resolver = req.images.clone();
        let lazy_list: Vec<String> = req.lazy_bases.iter().cloned().collect();
        let imported = req.imported.clone();
        let (progress, rx) = Progress::channel();
        let shown = if args.explain && mode == Mode::Auto {
            Mode::Plain
        } else {
            mode
        };
        let view = io.spawn_view(rx, shown);
        let solved = block_on(solve_saving(store.clone(), req, progress))?;
        let _ = view.join();
        let checks = (self.src, &self.linter);
        let Some(mut solved) = settle(solved, checks, &unused_args, (mode, io)) else {
            return Ok(1);
        };
        let quiet = mode == Mode::Quiet;
        let pusher = RegistryPusher {
            registry: self.registry.clone(),
            err: (!quiet).then(|| io.err.clone()),
        };
        let notify = |m: &str| {
            if !quiet {
                io.err.line(m);
            }
        };
        let pusher = LazyFallback {
            inner: &pusher,
            images: resolver,
            bases: lazy_list,
            imported,
            notify: &notify,
        };
        let out = Outputs {
            tags: args.tags.clone(),
            outputs: self.outputs,
            metadata: args.metadata_file.is_some(),
            pusher: &pusher,
        };
        let both = (mode, &io.err);
        super::cache_io::add_inline(store, args, &mut solved, final_stage, both);
        let outcome = finish(store, solved, &out)?;
        report(args, &outcome, io)?;
        if !super::cache_io::export(store, args, &outcome, final_stage, &self.registry, both) {
            return Ok(1);
        }
        Ok(0)
    }
}
