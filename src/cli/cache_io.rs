//! `--cache-from` before a build and `--cache-to` after it, with their
//! warnings: a cache that cannot be imported is skipped; a failed export
//! is an error unless `ignore-error=true`.

use super::build::BuildArgs;
use rbuild::build::BuildOutcome;
use rbuild::cache::Store;
use rbuild::frontend::lower::BuildOptions;
use rbuild::progress::Mode;
use rbuild::registry::RegistryOptions;
use rbuild::remote_cache::ImportedCache;
use std::sync::Arc;

/// Import the `--cache-from` caches (None when there are none).
pub fn import(
    store: &Arc<Store>,
    args: &BuildArgs,
    registry: &RegistryOptions,
    opts: &BuildOptions,
    mode: Mode,
) -> Option<Arc<dyn ImportedCache>> {
    if args.cache_from.is_empty() || args.no_cache {
        return None;
    }
    let (imported, warnings) =
        rbuild::remote_cache::import(store, &args.cache_from, registry, &opts.target_platform);
    for w in warnings {
        eprintln!("warning: {w}");
    }
    if mode != Mode::Quiet {
        eprintln!("imported {} cache records", imported.len());
    }
    Some(Arc::new(imported))
}

/// Export to every `--cache-to`; false when one failed without `ignore-error`.
pub fn export(
    store: &Arc<Store>,
    args: &BuildArgs,
    outcome: &BuildOutcome,
    final_stage: usize,
    registry: &RegistryOptions,
    mode: Mode,
) -> bool {
    let mut ok = true;
    for to in &args.cache_to {
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
                    eprintln!(
                        "exported cache to {}: {} records, {} layers (manifest {}){sent}",
                        s.target, s.records, s.layers, s.manifest
                    );
                }
            }
            Err(e) if to.ignore_error => {
                eprintln!(
                    "warning: exporting cache to {}: {e} (ignore-error=true)",
                    to.target.describe()
                )
            }
            Err(e) => {
                eprintln!("error: exporting cache to {}: {e}", to.target.describe());
                ok = false;
            }
        }
    }
    ok
}
