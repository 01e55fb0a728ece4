//! `rbuild volume ls|create|inspect|rm`, as `docker volume`.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use rbuild::cache::{LockMode, Store, default_root};
use rbuild::run::volumes::{VolumeError, Volumes};
use std::collections::BTreeMap;
use std::process::ExitCode;

/// Arguments of `rbuild volume`.
#[derive(Args, Debug)]
pub struct VolumeArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: VolumeCommand,
}

/// `rbuild volume` subcommands.
#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        /// Only names.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Create a volume (a random name when none is given); prints its name.
    Create {
        /// Label `K=V` (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// The name.
        name: Option<String>,
    },
    /// Show volumes as JSON.
    Inspect {
        /// Names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes no running container uses.
    #[command(alias = "remove")]
    Rm {
        /// No error for a volume that does not exist.
        #[arg(short, long)]
        force: bool,
        /// Names.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove the anonymous volumes no running container uses (with
    /// `--all`, named ones too), as `docker volume prune`.
    Prune {
        /// Named volumes too.
        #[arg(short, long)]
        all: bool,
    },
}

/// The store's volumes; the store is opened (made private, locked shared)
/// first, as for every command.
fn volumes() -> Result<(Store, Volumes)> {
    let root = default_root();
    let store = Store::open(&root, LockMode::Shared)
        .with_context(|| format!("opening store {}", root.display()))?;
    let v = Volumes::new(store.root());
    Ok((store, v))
}

/// Run a `rbuild volume` subcommand.
pub fn run(a: VolumeArgs) -> Result<ExitCode> {
    let (_store, v) = volumes()?;
    match a.command {
        VolumeCommand::Ls { quiet } => {
            if !quiet {
                println!("DRIVER    VOLUME NAME");
            }
            for i in v.list() {
                if quiet {
                    println!("{}", i.name);
                } else {
                    println!("{:<10}{}", i.driver, i.name);
                }
            }
        }
        VolumeCommand::Create { labels, name } => {
            let mut map = BTreeMap::new();
            for l in labels {
                let (k, val) = l.split_once('=').unwrap_or((l.as_str(), ""));
                map.insert(k.to_string(), val.to_string());
            }
            let info = v.create(name.as_deref(), map, false)?;
            println!("{}", info.name);
        }
        VolumeCommand::Inspect { names } => {
            let mut out = Vec::new();
            let mut missing = Vec::new();
            for n in &names {
                match v.inspect(n) {
                    Ok(i) => out.push(i),
                    Err(e) => missing.push(e.to_string()),
                }
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&out).context("serialising")?
            );
            if !missing.is_empty() {
                bail!("{}", missing.join("\n"));
            }
        }
        VolumeCommand::Rm { force, names } => {
            let mut failed = Vec::new();
            for n in &names {
                match v.remove(n) {
                    Ok(()) => println!("{n}"),
                    Err(VolumeError::NotFound(_)) if force => {}
                    Err(e) => failed.push(e.to_string()),
                }
            }
            if !failed.is_empty() {
                bail!("{}", failed.join("\n"));
            }
        }
        VolumeCommand::Prune { all } => {
            println!("Deleted Volumes:");
            for i in v.list().into_iter().filter(|i| all || i.anonymous) {
                if v.remove(&i.name).is_ok() {
                    println!("{}", i.name);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
