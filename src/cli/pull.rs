//! `rbuild pull REF`: pull an image into the store, as `docker pull`.

use anyhow::{Context as _, Result};
use clap::Args;
use rbuild::cache::{LockMode, Store, default_root};
use rbuild::frontend::platform::Platform;
use rbuild::image::resolver::Resolver;
use rbuild::registry::{Reference, RegistryOptions};
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `rbuild pull`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// Allow plain HTTP (and unverified HTTPS) for this registry (`HOST[:PORT]`); repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// The image (`busybox`, `HOST:PORT/NAME:TAG`, `NAME@sha256:...`).
    pub reference: String,
}

/// Pull the image and name it in the store.
pub fn run(args: PullArgs) -> Result<ExitCode> {
    let reference = Reference::parse(&args.reference)
        .with_context(|| format!("invalid reference {:?}", args.reference))?;
    let mut registry = RegistryOptions::load()?;
    registry.insecure = args.insecure_registries;
    let root = default_root();
    let store = Arc::new(
        Store::open(&root, LockMode::Shared)
            .with_context(|| format!("opening store {}", root.display()))?,
    );
    let resolver = Resolver::new(store, registry, true, Platform::host());
    let image = resolver.load(&args.reference)?;
    println!("Digest: {}", image.manifest);
    println!("{reference}");
    Ok(ExitCode::SUCCESS)
}
