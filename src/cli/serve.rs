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
        tls: a.tls_cert.zip(a.tls_key),
        root: default_root(),
    }))?;
    Ok(ExitCode::SUCCESS)
}
