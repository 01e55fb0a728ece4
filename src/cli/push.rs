//! `rbuild push NAME[:TAG]` (as `docker push`), `rbuild tag SOURCE TARGET`
//! (as `docker tag`), and the pushing shared with `rbuild build --push`.

use anyhow::{Context as _, Result, bail};
use clap::Args;
use rbuild::build::io::Sink;
use rbuild::cache::{LockMode, Store, default_root};
use rbuild::digest::Digest;
use rbuild::image::manifest::{MediaTypes, write_image_for_config};
use rbuild::image::source::{ImageRef, load_image};
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
    // By name, name@digest or (short) ID, as `docker tag`.
    let (image, named) = rbuild::image::local::find(&store, &args.source)?;
    let (manifest, index) = match named {
        rbuild::image::local::Named::Name(n) => (
            image.digest_of(&n),
            store.images().get(&n).and_then(|e| e.index),
        ),
        _ => (None, None),
    };
    match (manifest, index) {
        // A multi-platform build's name: the new one names its index too.
        (_, Some(i)) => store.tag_index(&target.to_string(), image.id, i)?,
        (Some(m), None) => store.tag_pulled(&target.to_string(), image.id, m)?,
        (None, None) => store.tag(&target.to_string(), image.id)?,
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
    let manifest = match (entry.index, entry.manifest) {
        // A multi-platform build: its index, with every platform's image.
        (Some(i), _) if index_complete(&store, &i) => i,
        (_, Some(m)) if manifest_complete(&store, &m) => m,
        _ => {
            // Unpacks what is missing; the config goes up byte for byte (a
            // loaded image keeps the ID it has here).
            load_image(&store, &ImageRef::Named(target.clone()))?;
            write_image_for_config(
                &store,
                &entry.config,
                Compression::default(),
                MediaTypes::Oci,
            )?
            .manifest
        }
    };
    push_one(&store, &manifest, &target, &registry, Some(&Sink::stderr()))?;
    Ok(ExitCode::SUCCESS)
}

/// Whether a stored index's manifests are all complete.
fn index_complete(store: &Store, i: &Digest) -> bool {
    let Some(v) = store
        .read_blob(i)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return false;
    };
    v["manifests"].as_array().is_some_and(|ms| {
        ms.iter().all(|m| {
            m["digest"]
                .as_str()
                .and_then(|d| d.parse().ok())
                .is_some_and(|d| manifest_complete(store, &d))
        })
    })
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

/// Push one manifest to one name, printing what happened to `err` when
/// given (`pushing NAME`, then the digest and what each blob needed).
pub fn push_one(
    store: &Arc<Store>,
    manifest: &Digest,
    target: &Reference,
    registry: &RegistryOptions,
    err: Option<&Sink>,
) -> Result<()> {
    if let Some(err) = err {
        err.line(format_args!("pushing {target}"));
    }
    let p = rbuild::registry::push(store, manifest, target, registry)?;
    // The name's RepoDigest from now on, as Docker records a push.
    if let Some(config) = store
        .read_blob(&p.digest)
        .ok()
        .and_then(|m| serde_json::from_slice::<serde_json::Value>(&m).ok())
        .and_then(|m| m["config"]["digest"].as_str()?.parse().ok())
    {
        store.set_pushed(&target.to_string(), config, p.digest)?;
    }
    if let Some(err) = err {
        err.line(format_args!(
            "pushed {target}@{}: {} blobs uploaded, {} mounted, {} already present",
            p.digest, p.uploaded, p.mounted, p.existing
        ));
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
