//! `rbuild du` and `rbuild prune`.

use anyhow::{Context, Result, anyhow};
use clap::Args;
use rbuild::cache::gc::parse_size;
use rbuild::cache::{LockMode, Store, default_root};
use std::process::ExitCode;

/// Arguments of `rbuild prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all cache records (named images are kept).
    #[arg(long)]
    pub all: bool,
    /// Remove the oldest cache records until the store fits in SIZE (e.g. 10GB).
    #[arg(long = "keep-storage")]
    pub keep_storage: Option<String>,
}

fn human(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1}{}", units[i])
}

/// Print disk usage.
pub fn du() -> Result<ExitCode> {
    let root = default_root();
    let store = Store::open(&root, LockMode::Shared)
        .with_context(|| format!("opening store {}", root.display()))?;
    let u = store.usage();
    println!("store:         {}", root.display());
    println!("blobs:         {:>6}  {:>10}", u.blobs.0, human(u.blobs.1));
    println!(
        "snapshots:     {:>6}  {:>10}",
        u.snapshots.0,
        human(u.snapshots.1)
    );
    println!("cache records: {:>6}", u.records);
    println!("images:        {:>6}", u.images);
    println!("total:                 {:>10}", human(u.total()));
    Ok(ExitCode::SUCCESS)
}

/// Prune the store.
pub fn prune(args: PruneArgs) -> Result<ExitCode> {
    let keep = match &args.keep_storage {
        Some(s) => Some(
            parse_size(s)
                .ok_or_else(|| anyhow!("invalid --keep-storage {s:?} (e.g. 10GB, 512MiB)"))?,
        ),
        None => None,
    };
    let root = default_root();
    let store = Store::open(&root, LockMode::Exclusive)
        .with_context(|| format!("opening store {}", root.display()))?;
    let freed = store.prune(args.all, keep)?;
    println!("reclaimed {}", human(freed));
    Ok(ExitCode::SUCCESS)
}
