//! `rbuild serve`: run the build server.

use anyhow::{Context as _, Result};
use clap::Args;
use rbuild::cache::default_root;
use rbuild::server::{ServeOptions, serve};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `rbuild serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Where to listen: `unix:///PATH` (mode 0600) or `tcp://HOST:PORT`
    /// (loopback only, needs --token-file).
    #[arg(long)]
    pub listen: String,
    /// A file whose first line is the bearer token clients must send
    /// (`rbuild build --server` reads it from $RBUILD_SERVER_TOKEN).
    #[arg(long = "token-file")]
    pub token_file: Option<PathBuf>,
    /// Builds run at once; more wait in a queue.
    #[arg(long = "max-builds", default_value_t = 4)]
    pub max_builds: usize,
    /// Keep caches warm: a TOML file listing bases and projects (see README).
    #[arg(long)]
    pub warm: Option<PathBuf>,
}

/// Serve until SIGTERM or SIGINT.
pub fn run(a: ServeArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(ServeOptions {
        listen: a.listen,
        token_file: a.token_file,
        max_builds: a.max_builds,
        root: default_root(),
        warm: a.warm,
    }))?;
    Ok(ExitCode::SUCCESS)
}
