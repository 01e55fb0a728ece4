//! Base images left in their registry by push-only builds (BuildKit's
//! lazy refs): which bases may stay there, and the push that downloads
//! them after all when the registry will not mount their layers.

use super::Pusher;
use crate::cache::Store;
use crate::digest::Digest;
use crate::image::resolver::Resolver;
use std::sync::Arc;

/// The base images a build may leave in their registry (BuildKit's lazy
/// refs): every output is a push of gzip layers (`push_hosts` are the
/// registries pushed to); the target stage starts from the image, none of
/// its steps reads the base's files (config instructions, `COPY --link`
/// without a named `--chown`), nothing else in the build uses that image,
/// and it lives on every registry pushed to, so the push mounts its layers.
pub fn lazy_bases(
    plan: &crate::frontend::lower::BuildPlan,
    push_hosts: &[String],
) -> std::collections::HashSet<String> {
    use crate::ops::Source;
    let mut lazy = std::collections::HashSet::new();
    let Some(target) = plan.stages.get(plan.target) else {
        return lazy;
    };
    let Source::Image(name) = &target.base else {
        return lazy;
    };
    let Ok(reference) = crate::registry::Reference::parse(name) else {
        return lazy;
    };
    let uses = plan
        .order
        .iter()
        .filter_map(|i| plan.stages.get(*i))
        .flat_map(|st| {
            let steps = st.steps.iter().flat_map(|s| {
                s.copy_from
                    .iter()
                    .chain(s.mounts.iter().filter_map(|(_, m)| m.as_ref()))
            });
            std::iter::once(&st.base).chain(steps)
        })
        .filter(|s| matches!(s, Source::Image(n) if n == name))
        .count();
    let reads = target.steps.iter().any(|s| s.op.reads_parent_files());
    let same_registry =
        !push_hosts.is_empty() && push_hosts.iter().all(|h| h == reference.domain());
    if uses == 1 && !reads && same_registry {
        lazy.insert(name.clone());
    }
    lazy
}

/// The images that stages of `plan` start from and that live on `host`.
pub fn bases_on(plan: &crate::frontend::lower::BuildPlan, host: &str) -> Vec<String> {
    use crate::ops::Source;
    plan.order
        .iter()
        .filter_map(|i| plan.stages.get(*i))
        .filter_map(|st| match &st.base {
            Source::Image(n) => Some(n),
            _ => None,
        })
        .filter(|n| crate::registry::Reference::parse(n).is_ok_and(|r| r.domain() == host))
        .cloned()
        .collect()
}

/// A [`Pusher`] for an image on lazy bases: when a push fails while some
/// blob of the image is not stored (a base layer left in its registry that
/// the registry did not mount, e.g. a base resolved through a mirror), the
/// bases are downloaded (`Resolver::load` fetches only what is missing) and
/// the push is tried once more, so a push never leaves a broken image.
pub struct LazyFallback<'a> {
    /// The pusher that talks to registries.
    pub inner: &'a dyn Pusher,
    /// The build's resolver (its lazy bases were loaded through it).
    pub images: Arc<Resolver>,
    /// The bases loaded lazily.
    pub bases: Vec<String>,
    /// Imported caches whose layers a build may have left in their registry.
    pub imported: Option<Arc<dyn crate::remote_cache::ImportedCache>>,
    /// Told why the bases are downloaded, before they are.
    pub notify: &'a dyn Fn(&str),
}

impl Pusher for LazyFallback<'_> {
    fn push(
        &self,
        store: &Arc<Store>,
        manifest: &Digest,
        names: &[String],
        insecure: bool,
    ) -> Result<(), String> {
        let first = self.inner.push(store, manifest, names, insecure);
        let Err(err) = first else { return Ok(()) };
        let lazy_import = self.imported.as_ref().filter(|i| i.keeps_remote());
        if (self.bases.is_empty() && lazy_import.is_none())
            || missing_blobs(store, manifest).is_empty()
        {
            return Err(err);
        }
        if let Some(imported) = lazy_import {
            (self.notify)(&format!(
                "the push needs layers left in the imported cache's registry ({err}); downloading them"
            ));
            imported
                .fetch_blobs(store, &missing_blobs(store, manifest))
                .map_err(|e| format!("{err}; downloading them failed too: {e}"))?;
        }
        if !self.bases.is_empty() {
            (self.notify)(&format!(
                "the push needs base layers left in their registry ({err}); downloading {}",
                self.bases.join(", ")
            ));
        }
        for b in &self.bases {
            self.images
                .load(b)
                .map_err(|e| format!("{err}; downloading the base {b} failed too: {e}"))?;
        }
        let missing = missing_blobs(store, manifest);
        if let Some(d) = missing.first() {
            return Err(format!(
                "{err}; blob {d} is still not stored after downloading the bases"
            ));
        }
        self.inner.push(store, manifest, names, insecure)
    }
}

/// The config and layer blobs of the stored manifest `manifest` that are
/// not in the store (all of them if the manifest cannot be read).
fn missing_blobs(store: &Store, manifest: &Digest) -> Vec<Digest> {
    let Some(v) = store
        .read_blob(manifest)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return vec![*manifest];
    };
    std::iter::once(&v["config"])
        .chain(v["layers"].as_array().map(Vec::as_slice).unwrap_or(&[]))
        .filter_map(|d| d["digest"].as_str().and_then(|s| s.parse::<Digest>().ok()))
        .filter(|d| !store.has_blob(d))
        .collect()
}

/// Whether the stored manifest of the base `name` (resolved lazily) has
/// layers an output with `oci` media types (else Docker's) can point at as
/// they are: zstd layers have no Docker media type, so under Docker media
/// types such a base is downloaded and its layers recompressed.
pub fn blobs_fit(store: &Store, name: &str, oci: bool) -> bool {
    if oci {
        return true;
    }
    let key = crate::image::source::normalize_name(name);
    let Some(layers) = store
        .images()
        .get(&key)
        .and_then(|e| e.manifest)
        .and_then(|m| store.read_blob(&m).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return false;
    };
    layers["layers"].as_array().is_some_and(|ls| {
        ls.iter()
            .all(|l| !l["mediaType"].as_str().unwrap_or("").ends_with("zstd"))
    })
}
