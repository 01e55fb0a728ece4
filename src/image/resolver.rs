//! Base images of one build: a named image comes from the store when it is
//! there (no request), else it is pulled; with `--pull` it is always
//! resolved again at its registry. Each name is resolved once per build,
//! shared by the Dockerfile's lowering (a base's ENV) and the solver (FROM,
//! `COPY --from`, `RUN --mount from=`).

use super::source::{ImageError, ImageRef, LoadedImage, load_image, load_image_for, load_manifest};
use crate::cache::{Store, StoreError};
use crate::frontend::platform::Platform;
use crate::registry::RegistryOptions;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

type Slot = Arc<OnceLock<Result<LoadedImage, String>>>;

/// The resolvers of one build, one per platform.
type Family = Arc<Mutex<HashMap<Platform, Arc<Resolver>>>>;

/// A resolver for some platform: the one asked, or a sibling.
pub enum ResolverRef<'a> {
    /// The resolver asked (same platform).
    This(&'a Resolver),
    /// A sibling for another platform.
    Other(Arc<Resolver>),
}

impl std::ops::Deref for ResolverRef<'_> {
    type Target = Resolver;
    fn deref(&self) -> &Resolver {
        match self {
            ResolverRef::This(r) => r,
            ResolverRef::Other(r) => r,
        }
    }
}

/// Resolves and loads base images for a build.
pub struct Resolver {
    store: Arc<Store>,
    registry: RegistryOptions,
    pull_always: bool,
    platform: Platform,
    memo: Mutex<HashMap<String, Slot>>,
    /// Normalised name → what resolving it did, for the progress output.
    notes: Mutex<HashMap<String, String>>,
    /// Normalised name → the `--pull` check's answer, asked once per build
    /// (the lazy and the full load of one base share it).
    checked: Mutex<HashMap<String, Option<String>>>,
    /// This build's resolvers for other platforms.
    family: Family,
}

impl Resolver {
    /// A resolver over `store`, pulling with `registry`'s settings;
    /// `pull_always` is `--pull`.
    pub fn new(
        store: Arc<Store>,
        registry: RegistryOptions,
        pull_always: bool,
        platform: Platform,
    ) -> Resolver {
        Resolver {
            store,
            registry,
            pull_always,
            platform,
            memo: Mutex::new(HashMap::new()),
            notes: Mutex::new(HashMap::new()),
            checked: Mutex::new(HashMap::new()),
            family: Family::default(),
        }
    }

    /// The platform images are resolved for.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// Make this resolver the one its siblings use for its platform.
    pub fn register(self: &Arc<Self>) {
        if let Ok(mut f) = self.family.lock() {
            f.entry(self.platform.clone())
                .or_insert_with(|| self.clone());
        }
    }

    /// The build's resolver for `p` (made on first use, with this one's
    /// store and settings).
    pub fn sibling(&self, p: &Platform) -> Arc<Resolver> {
        let mut f = self.family.lock().expect("resolver family");
        f.entry(p.clone())
            .or_insert_with(|| {
                let mut r = Resolver::new(
                    self.store.clone(),
                    self.registry.clone(),
                    self.pull_always,
                    p.clone(),
                );
                r.family = self.family.clone();
                Arc::new(r)
            })
            .clone()
    }

    /// The resolver for `p`: this one, or a sibling.
    pub fn for_platform(&self, p: &Platform) -> ResolverRef<'_> {
        if *p == self.platform {
            ResolverRef::This(self)
        } else {
            ResolverRef::Other(self.sibling(p))
        }
    }

    /// Whether a stored image is for this resolver's platform (a name
    /// holds one platform's image; another's is pulled for the build).
    fn fits(&self, image: &LoadedImage) -> bool {
        let c = &image.state.config;
        let p = Platform::from_oci(&c.os, &c.architecture, &c.variant);
        p.os == self.platform.os
            && p.arch == self.platform.arch
            && (self.platform.variant.is_empty() || p.variant == self.platform.variant)
    }

    /// The image `name` refers to (`busybox`, `host:5000/x@sha256:...`,
    /// `oci-layout://DIR:TAG`). Concurrent callers for one name wait for a
    /// single resolution.
    pub fn load(&self, name: &str) -> Result<LoadedImage, ImageError> {
        // `busybox` and `docker.io/library/busybox:latest` resolve once.
        let key = match ImageRef::parse(name) {
            Ok(ImageRef::Named(r)) => r.to_string(),
            _ => name.to_string(),
        };
        let slot = self
            .memo
            .lock()
            .expect("resolver memo")
            .entry(key)
            .or_default()
            .clone();
        slot.get_or_init(|| self.resolve(name).map_err(|e| e.to_string()))
            .clone()
            .map_err(ImageError::Failed)
    }

    /// The image `name` without its layers' files (BuildKit's lazy refs),
    /// for a stage that never reads its base's files (only config
    /// instructions and `COPY --link`) and is pushed to a registry: a
    /// stored image as `load` gives it; else its manifest and config are
    /// fetched (`registry::pull_lazy`), its layers stay in the registry,
    /// and pushing the result to that registry mounts them. The layers'
    /// sizes are 0 (unknown until unpacked). A later `load` of the same
    /// name downloads what is missing.
    pub fn load_lazy(&self, name: &str) -> Result<LoadedImage, ImageError> {
        // Names hold this machine's images: another platform's base is
        // resolved (and checked) in full.
        if self.platform != Platform::host() {
            return self.load(name);
        }
        let r = ImageRef::parse(name)?;
        let ImageRef::Named(reference) = &r else {
            return self.load(name);
        };
        if let Some(Some(Ok(done))) = self
            .memo
            .lock()
            .expect("resolver memo")
            .get(&reference.to_string())
            .map(|s| s.get().cloned())
        {
            return Ok(done);
        }
        let stored = || match load_image(&self.store, &r) {
            Err(ImageError::Store(StoreError::NotFound(_))) => self.lazy_from_store(reference),
            other => other,
        };
        if !self.pull_always || self.registry.offline {
            match stored() {
                Err(ImageError::NotFound(_)) if !self.registry.offline => {}
                other => return other,
            }
        } else if self.stored_is_current(reference).is_some() {
            return stored();
        }
        let pulled =
            crate::registry::pull_lazy(&self.store, reference, &self.registry, &self.platform)?;
        self.store
            .tag_pulled(&reference.to_string(), pulled.config, pulled.manifest)?;
        self.notes.lock().expect("notes").insert(
            reference.to_string(),
            format!("layers left at {} (lazy)", pulled.host),
        );
        self.lazy_from_store(reference)
    }

    /// A stored image whose layers may not be: its config and the
    /// diff_ids (sizes 0) of its stored manifest.
    fn lazy_from_store(
        &self,
        reference: &crate::registry::Reference,
    ) -> Result<LoadedImage, ImageError> {
        let key = reference.to_string();
        let entry = self.store.images().get(&key).cloned();
        let Some((manifest, config)) = entry.and_then(|e| Some((e.manifest?, e.config))) else {
            return Err(ImageError::NotFound(key));
        };
        let config: crate::image::config::ImageConfig =
            serde_json::from_slice(&self.store.read_blob(&config)?)
                .map_err(|e| ImageError::Failed(format!("{key}: image config: {e}")))?;
        let layers = config
            .rootfs
            .diff_ids
            .iter()
            .map(|d| crate::cache::LayerRef {
                diff_id: *d,
                size: 0,
            })
            .collect();
        Ok(LoadedImage {
            state: crate::image::ImageState { layers, config },
            manifest,
        })
    }

    /// A line for the progress output saying what `name` resolved to
    /// (`resolve docker.io/library/busybox:latest@sha256:…`, and where it
    /// was pulled from when it was), once it has been loaded.
    pub fn describe(&self, name: &str) -> Option<String> {
        let Ok(ImageRef::Named(r)) = ImageRef::parse(name) else {
            return None;
        };
        let key = r.to_string();
        let slot = self.memo.lock().expect("resolver memo").get(&key)?.clone();
        let image = slot.get()?.as_ref().ok()?;
        let name = format!(
            "{}{}",
            r.name(),
            r.tag().map(|t| format!(":{t}")).unwrap_or_default()
        );
        let note = self.notes.lock().expect("notes").get(&key).cloned();
        Some(match note {
            Some(n) => format!("resolve {name}@{} ({n})", image.manifest),
            None => format!("resolve {name}@{} (stored)", image.manifest),
        })
    }

    /// With `--pull`, a stored image whose tag still names it at the
    /// registry (one HEAD request): the host that said so.
    fn stored_is_current(&self, reference: &crate::registry::Reference) -> Option<String> {
        let key = reference.to_string();
        if let Some(answer) = self.checked.lock().expect("checked").get(&key) {
            return answer.clone();
        }
        let entry = self.store.images().get(&key).cloned()?;
        let manifest = entry.manifest.filter(|m| self.store.has_blob(m))?;
        let answer = crate::registry::check::is_current(
            &self.store,
            reference,
            &self.registry,
            &self.platform,
            &manifest,
        )
        .ok()
        .flatten();
        self.checked
            .lock()
            .expect("checked")
            .insert(key, answer.clone());
        answer
    }

    fn resolve(&self, name: &str) -> Result<LoadedImage, ImageError> {
        let r = ImageRef::parse(name)?;
        let ImageRef::Named(reference) = &r else {
            return load_image_for(&self.store, &r, &self.platform);
        };
        if !self.pull_always || self.registry.offline {
            match load_image_for(&self.store, &r, &self.platform) {
                Ok(img) if !self.fits(&img) && !self.registry.offline => {}
                Err(ImageError::NotFound(n)) if self.registry.offline => {
                    return Err(ImageError::Failed(format!(
                        "image {n} not found in the store (RBUILD_OFFLINE is set: nothing is pulled)"
                    )));
                }
                Err(ImageError::NotFound(_)) => {}
                // Stored without its layers (resolved lazily): the pull
                // downloads what is missing.
                Err(ImageError::Store(StoreError::NotFound(_))) if !self.registry.offline => {}
                other => return other,
            }
        }
        if let Some(host) = self.stored_is_current(reference) {
            match load_image_for(&self.store, &r, &self.platform) {
                Err(ImageError::Store(StoreError::NotFound(_))) => {}
                other => {
                    self.notes
                        .lock()
                        .expect("notes")
                        .insert(reference.to_string(), format!("up to date at {host}"));
                    return other;
                }
            }
        }
        let t0 = std::time::Instant::now();
        let pulled =
            match crate::registry::pull(&self.store, reference, &self.registry, &self.platform) {
                Ok(p) => p,
                // A name built here for another platform (`--platform
                // linux/arm64 -t x`) that no registry has: the stored image,
                // as docker uses a local image (the build warns that its
                // platform differs).
                Err(e) => {
                    let built_here = (self.store.images())
                        .get(&reference.to_string())
                        .is_some_and(|entry| entry.manifest.is_none());
                    if !built_here {
                        return Err(e.into());
                    }
                    return load_image_for(&self.store, &r, &self.platform).map_err(|_| e.into());
                }
            };
        self.notes.lock().expect("notes").insert(
            reference.to_string(),
            format!(
                "pulled from {}: {} layers downloaded in {:.1}s",
                pulled.host,
                pulled.downloaded,
                t0.elapsed().as_secs_f64()
            ),
        );
        let loaded = load_manifest(&self.store, &pulled.manifest, None)?;
        // The name keeps this machine's image (`rbuild run` uses it);
        // another platform's stays in the store by digest only.
        if self.platform == Platform::host() {
            self.store
                .tag_pulled(&reference.to_string(), pulled.config, pulled.manifest)?;
        }
        Ok(loaded)
    }
}
