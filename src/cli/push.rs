//! `rbuild push NAME[:TAG]` (as `docker push`), `rbuild tag SOURCE TARGET`
//! (as `docker tag`), and the pushing shared with `rbuild build --push`.

use anyhow::{Context as _, Result, bail};
use clap::Args;
use rbuild::cache::{LockMode, Store, default_root};
use rbuild::digest::Digest;
use rbuild::image::ImageState;
use rbuild::image::manifest::{MediaTypes, write_image};
use rbuild::image::source::{ImageRef, load_image, normalize_name};
use rbuild::layer::compress::Compression;
use rbuild::registry::{Reference, RegistryOptions};
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `rbuild push`.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// Allow plain HTTP (and unverified HTTPS) for this registry (`HOST[:PORT]`); repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// The stored image, named as it is pushed (`HOST:PORT/NAME:TAG`).
    pub name: String,
}

/// Arguments of `rbuild tag`.
#[derive(Args, Debug)]
pub struct TagArgs {
    /// A stored image.
    pub source: String,
    /// The new name (`HOST:PORT/NAME:TAG`).
    pub target: String,
}

fn open_store(mode: LockMode) -> Result<Arc<Store>> {
    let root = default_root();
    Ok(Arc::new(Store::open(&root, mode).with_context(|| {
        format!("opening store {}", root.display())
    })?))
}

/// Name a stored image anew (a pulled image keeps its manifest).
pub fn tag(args: TagArgs) -> Result<ExitCode> {
    let target = Reference::parse(&args.target)
        .with_context(|| format!("invalid reference {:?}", args.target))?;
    if target.digest().is_some() {
        bail!(
            "refusing to create a tag with a digest reference: {}",
            args.target
        );
    }
    let store = open_store(LockMode::Shared)?;
    let source = normalize_name(&args.source);
    let Some(entry) = store.images().get(&source).cloned() else {
        bail!("No such image: {}", args.source);
    };
    match entry.manifest {
        Some(m) => store.tag_pulled(&target.to_string(), entry.config, m)?,
        None => store.tag(&target.to_string(), entry.config)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Push a stored image under its name.
pub fn run(args: PushArgs) -> Result<ExitCode> {
    let target = Reference::parse(&args.name)
        .with_context(|| format!("invalid reference {:?}", args.name))?;
    let mut registry = RegistryOptions::load()?;
    registry.insecure = args.insecure_registries;
    let store = open_store(LockMode::Shared)?;
    let name = target.to_string();
    let Some(entry) = store.images().get(&name).cloned() else {
        bail!(
            "An image does not exist locally with the tag: {}",
            args.name
        );
    };
    // A pulled image goes up as it came (the same manifest digest), as
    // `docker push` does; a built one gets a manifest now.
    let manifest = match entry.manifest {
        Some(m) if manifest_complete(&store, &m) => m,
        _ => {
            let image = load_image(&store, &ImageRef::Named(target.clone()))?;
            manifest_for(
                &store,
                &image.state,
                Compression::default(),
                MediaTypes::Oci,
            )?
        }
    };
    push_one(&store, &manifest, &target, &registry, false)?;
    Ok(ExitCode::SUCCESS)
}

/// Whether a stored manifest's config and layers are all stored.
fn manifest_complete(store: &Store, m: &Digest) -> bool {
    let Ok(v) = store
        .read_blob(m)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| e.to_string()))
    else {
        return false;
    };
    let digests = std::iter::once(&v["config"])
        .chain(v["layers"].as_array().map(Vec::as_slice).unwrap_or(&[]))
        .map(|d| d["digest"].as_str().and_then(|s| s.parse::<Digest>().ok()));
    v["config"].is_object()
        && digests
            .into_iter()
            .all(|d| d.is_some_and(|d| store.has_blob(&d)))
}

/// Write (compressing layers as needed) the manifest of an image state.
pub fn manifest_for(
    store: &Store,
    state: &ImageState,
    comp: Compression,
    types: MediaTypes,
) -> Result<Digest> {
    Ok(write_image(store, state, comp, types)?.manifest)
}

/// Push one manifest to one name, printing what happened unless `quiet`
/// (`pushing NAME`, then the digest and what each blob needed).
pub fn push_one(
    store: &Arc<Store>,
    manifest: &Digest,
    target: &Reference,
    registry: &RegistryOptions,
    quiet: bool,
) -> Result<()> {
    if !quiet {
        eprintln!("pushing {target}");
    }
    let p = rbuild::registry::push(store, manifest, target, registry)?;
    if !quiet {
        eprintln!(
            "pushed {target}@{}: {} blobs uploaded, {} mounted, {} already present",
            p.digest, p.uploaded, p.mounted, p.existing
        );
    }
    Ok(())
}

/// The names to push to, parsed (`-t` names for `--push`, or an output's).
pub fn targets(names: &[String]) -> Result<Vec<Reference>> {
    names
        .iter()
        .map(|n| Reference::parse(n).with_context(|| format!("invalid reference {n:?}")))
        .collect()
}
