//! `--cache-from` before a build and `--cache-to` after it, with their
//! warnings: a cache that cannot be imported is skipped; a failed export
//! is an error unless `ignore-error=true`.

use super::build::BuildArgs;
use rbuild::build::BuildOutcome;
use rbuild::build::io::Sink;
use rbuild::cache::Store;
use rbuild::frontend::lower::BuildOptions;
use rbuild::progress::Mode;
use rbuild::registry::RegistryOptions;
use rbuild::remote_cache::ImportedCache;
use std::sync::Arc;

/// Import the `--cache-from` caches (None when there are none).
/// `push_hosts`: the registries pushed to when every output is a push;
/// `oci`: whether the outputs use OCI media types.
pub fn import(
    store: &Arc<Store>,
    args: &BuildArgs,
    registry: &RegistryOptions,
    opts: &BuildOptions,
    (push_hosts, oci): (Option<&[String]>, bool),
    (mode, err): (Mode, &Sink),
) -> Option<Arc<dyn ImportedCache>> {
    if args.cache_from.is_empty() || args.no_cache {
        return None;
    }
    let (mut imported, warnings) =
        rbuild::remote_cache::import(store, &args.cache_from, registry, &opts.target_platform);
    let lazy = lazy_home(args, push_hosts).is_some() && (oci || !imported.holds_zstd());
    imported.set_lazy(lazy);
    for w in warnings {
        err.line(format_args!("warning: {w}"));
    }
    if mode != Mode::Quiet {
        err.line(format_args!("imported {} cache records", imported.len()));
    }
    Some(Arc::new(imported))
}

/// The registry where hits may leave their layers (BuildKit's lazy refs),
/// if any: every output is a push, and every push and every `--cache-to`
/// (gzip) goes to the one registry all registry caches come from, so each
/// layer is mounted there rather than downloaded.
pub fn lazy_home(args: &BuildArgs, push_hosts: Option<&[String]>) -> Option<String> {
    use rbuild::remote_cache::CacheTarget;
    let host = |r: &str| {
        rbuild::registry::Reference::parse(r)
            .ok()
            .map(|r| r.domain().to_string())
    };
    let from: Vec<Option<String>> = args
        .cache_from
        .iter()
        .filter_map(|f| match &f.target {
            CacheTarget::Registry(r) => Some(host(r)),
            CacheTarget::Local(_) | CacheTarget::Inline => None,
        })
        .collect();
    let Some(Some(home)) = from.first().cloned() else {
        return None;
    };
    let pushes = push_hosts.is_some_and(|h| !h.is_empty() && h.iter().all(|x| *x == home));
    let exports = args.cache_to.iter().all(|t| match &t.target {
        CacheTarget::Registry(r) => {
            host(r).as_deref() == Some(home.as_str()) && t.compression.name() == "gzip"
        }
        CacheTarget::Inline => true,
        CacheTarget::Local(_) => false,
    });
    let same = from.iter().all(|h| h.as_deref() == Some(home.as_str()));
    (pushes && exports && same).then_some(home)
}

/// Export to every `--cache-to`; false when one failed without `ignore-error`.
pub fn export(
    store: &Arc<Store>,
    args: &BuildArgs,
    outcome: &BuildOutcome,
    final_stage: usize,
    registry: &RegistryOptions,
    (mode, err): (Mode, &Sink),
) -> bool {
    let mut ok = true;
    for to in &args.cache_to {
        if to.target == rbuild::remote_cache::CacheTarget::Inline {
            continue; // written into the image's config (see `add_inline`)
        }
        match rbuild::remote_cache::export(store, &outcome.result.steps, final_stage, to, registry)
        {
            Ok(s) => {
                if mode != Mode::Quiet {
                    let sent = s
                        .sent
                        .map(|(u, m, e)| {
                            format!("; {u} blobs uploaded, {m} mounted, {e} already present")
                        })
                        .unwrap_or_default();
                    err.line(format_args!(
                        "exported cache to {}: {} records, {} layers (manifest {}){sent}",
                        s.target, s.records, s.layers, s.manifest
                    ));
                }
            }
            Err(e) if to.ignore_error => err.line(format_args!(
                "warning: exporting cache to {}: {e} (ignore-error=true)",
                to.target.describe()
            )),
            Err(e) => {
                err.line(format_args!(
                    "error: exporting cache to {}: {e}",
                    to.target.describe()
                ));
                ok = false;
            }
        }
    }
    ok
}

/// With `--cache-to type=inline`: the final stage's cache records put in
/// the image's config (`mode=max` is not possible inline, as in BuildKit).
pub fn add_inline(
    store: &Store,
    args: &BuildArgs,
    solved: &mut rbuild::solver::BuildResult,
    final_stage: usize,
    (mode, err): (Mode, &Sink),
) {
    use rbuild::remote_cache::{CacheMode, CacheTarget};
    let Some(to) = args
        .cache_to
        .iter()
        .find(|t| t.target == CacheTarget::Inline)
    else {
        return;
    };
    if to.mode == CacheMode::Max {
        err.line("warning: --cache-to type=inline holds the final stage only (mode=min)");
    }
    let (value, n) = rbuild::remote_cache::inline::inline_cache(
        store,
        &solved.steps,
        final_stage,
        &solved.state.layers,
    );
    solved.state.config.inline_cache = Some(value);
    if mode != Mode::Quiet {
        err.line(format_args!(
            "inline cache: {n} records in the image's config"
        ));
    }
}
