//! `rbuild serve`: run the build server.

use anyhow::{Context as _, Result};
use clap::Args;
use rbuild::cache::default_root;
use rbuild::server::limits::Limits;
use rbuild::server::{ServeOptions, serve};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `rbuild serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Where to listen: `unix:///PATH` (mode 0600) or `tcp://HOST:PORT`
    /// (needs --token-file; off loopback also --tls-cert and --tls-key).
    #[arg(long)]
    pub listen: String,
    /// A file whose first line is the bearer token clients must send
    /// (`rbuild build --server` reads it from $RBUILD_SERVER_TOKEN).
    #[arg(long = "token-file")]
    pub token_file: Option<PathBuf>,
    /// TLS certificate chain (PEM) for tcp:// (clients use https://HOST:PORT).
    #[arg(long = "tls-cert", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) going with --tls-cert.
    #[arg(long = "tls-key", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Builds run at once; more wait in a queue.
    #[arg(long = "max-builds", default_value_t = 4)]
    pub max_builds: usize,
    /// Keep caches warm: a TOML file listing bases and projects (see README).
    #[arg(long)]
    pub warm: Option<PathBuf>,
    /// Builds waiting in the queue; more are refused (HTTP 503) until one starts.
    #[arg(long = "max-queue", default_value_t = 64)]
    pub max_queue: usize,
    /// RUN steps running at once over all builds (default: no limit).
    #[arg(long = "max-runs")]
    pub max_runs: Option<usize>,
    /// Largest request body (a build request lists the context's files), e.g. 64MiB.
    #[arg(long = "max-request", default_value = "64MiB", value_parser = size)]
    pub max_request: u64,
    /// Largest context file, e.g. 1GiB.
    #[arg(long = "max-file", default_value = "1GiB", value_parser = size)]
    pub max_file: u64,
    /// Largest context of one build (its files added up), e.g. 8GiB.
    #[arg(long = "max-context", default_value = "8GiB", value_parser = size)]
    pub max_context: u64,
    /// Build log (RUN output) bytes streamed per build; later lines are dropped.
    #[arg(long = "max-log", default_value = "64MiB", value_parser = size)]
    pub max_log: u64,
}

fn size(s: &str) -> Result<u64, String> {
    rbuild::cache::gc::parse_size(s).ok_or_else(|| format!("invalid size {s:?} (e.g. 64MiB, 1GB)"))
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
        limits: Limits {
            max_queue: a.max_queue,
            max_runs: a.max_runs,
            max_request: usize::try_from(a.max_request).unwrap_or(usize::MAX),
            max_blob: usize::try_from(a.max_file).unwrap_or(usize::MAX),
            max_context: a.max_context,
            max_log: a.max_log,
        },
        tls: a.tls_cert.zip(a.tls_key),
        root: default_root(),
        warm: a.warm,
        build: std::sync::Arc::new(super::build_entry::serve_build),
    }))?;
    Ok(ExitCode::SUCCESS)
}
