//! The one interface every build operation implements, in the spirit of
//! BuildKit's `solver/types.go` `Op { CacheMap, Exec }`: an op gives its
//! canonical definition and the digests of its inputs (its cache key
//! parts), runs on its parent's state, and says whether it makes a layer.
//! The solver schedules ops by key and never knows what one does.

use super::key::KeyParts;
use crate::cache::{CacheRecord, Store};
use crate::context::Context;
use crate::digest::Digest;
use crate::image::ImageState;
use crate::image::config::{History, ImageConfig, rfc3339};
use crate::layer::compress::Compression;
use crate::layer::view::MergedView;
use serde::Serialize;
use std::any::Any;
use std::path::PathBuf;

/// What a stage, a `COPY --from` or a `RUN --mount from=` refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "ref", rename_all = "lowercase")]
pub enum Source {
    /// The empty filesystem.
    Scratch,
    /// An earlier or later stage, by index.
    Stage(usize),
    /// An image reference (or `oci-layout://...`).
    Image(String),
}

/// The result of a stage (or a base image) as another op sees it.
#[derive(Debug, Clone)]
pub struct StageResult {
    /// Layers and config.
    pub state: ImageState,
    /// Cache key of the last step.
    pub key: Digest,
    /// Merged view of its layers.
    pub view: MergedView,
}

/// Errors of an op.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// Context problem.
    #[error(transparent)]
    Context(#[from] crate::context::ContextError),
    /// Store problem.
    #[error(transparent)]
    Store(#[from] crate::cache::StoreError),
    /// Layer problem.
    #[error(transparent)]
    Layer(#[from] crate::layer::LayerError),
    /// Image problem.
    #[error(transparent)]
    Image(#[from] crate::image::source::ImageError),
    /// COPY/ADD problem.
    #[error(transparent)]
    Copy(#[from] crate::ops::copy::CopyError),
    /// User lookup problem.
    #[error(transparent)]
    User(#[from] crate::ops::users::UserError),
    /// A foreign architecture's RUN without an emulator.
    #[error(transparent)]
    Emulate(#[from] crate::exec::emulate::EmulateError),
    /// Download problem.
    #[error(transparent)]
    Fetch(#[from] crate::ops::fetch::FetchError),
    /// I/O.
    #[error("{what} {path}: {source}")]
    Io {
        /// What.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Error.
        source: std::io::Error,
    },
    /// A RUN's process failed (BuildKit's message, the output's last lines
    /// and where the full log is).
    #[error("{0}")]
    RunFailed(String),
    /// The sandbox could not run the step.
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
    /// A cache mount could not be prepared.
    #[error(transparent)]
    CacheMount(#[from] crate::ops::mounts::cache_mount::CacheMountError),
    /// The step asks for something invalid (a mount on `/`, a missing secret).
    #[error("{0}")]
    Invalid(String),
    /// The build was not granted what the step asks for (an entitlement).
    #[error("{0}")]
    Denied(String),
    /// Not implemented yet.
    #[error("{0}")]
    Unsupported(String),
    /// A stage this op reads failed.
    #[error("a stage this one depends on failed")]
    DependencyFailed,
    /// Bug.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Shared inputs of every op of a build.
pub struct OpEnv<'a> {
    /// The store.
    pub store: &'a Store,
    /// The build context (None when the Dockerfile uses none).
    pub context: Option<&'a Context>,
    /// SOURCE_DATE_EPOCH.
    pub epoch: Option<u64>,
    /// Compression of new layers.
    pub compression: Compression,
    /// Results of other stages (for `--from`); None when that stage failed.
    pub stages: &'a dyn Fn(usize) -> Option<StageResult>,
    /// Images loaded by reference (for `--from=image`).
    pub image: &'a dyn Fn(&str) -> Result<StageResult, OpError>,
    /// The key of a stage's or an image's result, its layers left where
    /// they are (a RUN bind mount's key part, a COPY --from's definition key).
    pub source_key: &'a dyn Fn(&Source) -> Result<Digest, OpError>,
    /// `--secret`s: id → where the value comes from.
    pub secrets: &'a [(String, super::mounts::secrets::SecretSource)],
    /// Proxy variables from `--build-arg` for RUN (not in cache keys).
    pub proxy_env: &'a [(String, String)],
    /// RUN's hostname (`BUILDKIT_SANDBOX_HOSTNAME`, default `buildkitsandbox`).
    pub hostname: &'a str,
    /// `--allow network.host` was given.
    pub allow_host_network: bool,
    /// The platform the stage is built for (its `FROM --platform`, else
    /// the build's target): part of RUN's key.
    pub platform: &'a crate::frontend::platform::Platform,
}

impl OpEnv<'_> {
    /// The result of `src` (a stage or an image).
    pub fn source(&self, src: &Source) -> Result<StageResult, OpError> {
        match src {
            Source::Stage(i) => (self.stages)(*i).ok_or(OpError::DependencyFailed),
            Source::Image(name) => (self.image)(name),
            // Callers treat scratch themselves (an empty view, nothing to mount).
            Source::Scratch => Err(OpError::Internal("scratch has no stage result".into())),
        }
    }
}

/// An op's cache key parts and what it resolved to compute them (its
/// sources, say), handed back to [`Op::exec`] when the key misses.
pub struct CacheMap {
    /// Key components (parent, op kind, definition, input digests).
    pub parts: KeyParts,
    /// What the op resolved, for its own `exec` (downcast there).
    pub inputs: Option<Box<dyn Any + Send>>,
}

impl CacheMap {
    /// The parts every op starts with: the parent's key, the kind and the
    /// canonical definition.
    pub fn new(parent: &Digest, kind: &str, definition: String) -> Self {
        let mut parts = KeyParts::new(parent, kind);
        parts.add("def", definition);
        CacheMap {
            parts,
            inputs: None,
        }
    }
}

/// What an op may use while it runs besides its parent's state.
pub struct ExecCtx<'a> {
    /// The newest earlier record of this step (another key), when there is
    /// one: an op may reuse parts of its result (COPY hard-links unchanged files).
    pub previous: Option<&'a CacheRecord>,
    /// Sends a line of the op's output to the progress stream.
    pub log: &'a (dyn Fn(String) + Sync),
    /// True when a running process of the op should be killed (its build
    /// was cancelled and no other build waits for the step).
    pub stop: &'a (dyn Fn() -> bool + Sync),
    /// Where the op's full output is kept (RUN), named after its cache key.
    pub log_file: PathBuf,
}

/// A build operation: the solver's only view of an instruction.
pub trait Op: Send + Sync + std::fmt::Debug {
    /// The op's kind as it enters the key (`COPY`, `RUN`, `ENV`...).
    fn kind(&self) -> &'static str;

    /// The canonical definition: everything that changes the result and
    /// nothing that does not (no positions, no comments). Hand-written per op.
    fn definition(&self) -> String;

    /// Whether the op may change the filesystem. Ops that do are cached by
    /// key with a record each; the others (config-only) are folded into the
    /// image config as they come.
    fn makes_layer(&self) -> bool {
        true
    }

    /// Whether running the op reads the files of the state it starts from
    /// (a config-only op does not; nor does `COPY --link` without a named
    /// `--chown`). A base that no op reads may stay in its registry
    /// (BuildKit's lazy refs).
    fn reads_parent_files(&self) -> bool {
        self.makes_layer()
    }

    /// The key parts: definition plus the digests of the op's inputs.
    fn cache_map(&self, _env: &OpEnv<'_>, parent_key: &Digest) -> Result<CacheMap, OpError> {
        Ok(CacheMap::new(parent_key, self.kind(), self.definition()))
    }

    /// A key from the definition and the keys of the op's inputs alone,
    /// looked up before [`Op::cache_map`] hashes their content (BuildKit's
    /// definition-based cache key, taken before its content-based one):
    /// a hit needs no input's files. None for ops whose inputs are only
    /// known by content (the build context, a URL).
    fn definition_key(
        &self,
        _env: &OpEnv<'_>,
        _parent_key: &Digest,
    ) -> Result<Option<KeyParts>, OpError> {
        Ok(None)
    }

    /// Components kept in the record for explaining a later miss, but not
    /// in the key (COPY's file lists). Computed only when the op runs.
    fn explain_inputs(
        &self,
        _env: &OpEnv<'_>,
        _map: &CacheMap,
    ) -> Result<Vec<(String, String)>, OpError> {
        Ok(Vec::new())
    }

    /// Run on `parent`, giving the new state.
    fn exec(
        &self,
        env: &OpEnv<'_>,
        parent: &ImageState,
        map: CacheMap,
        ctx: &ExecCtx<'_>,
    ) -> Result<ImageState, OpError>;
}

/// The time a history entry records: SOURCE_DATE_EPOCH, else now.
pub fn now_or_epoch(epoch: Option<u64>) -> String {
    let secs = epoch.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    rfc3339(secs)
}

/// Add a history entry as BuildKit's Dockerfile frontend writes it.
/// `created` is None for config-only entries without SOURCE_DATE_EPOCH:
/// the solver fills them in from the layers' times (as BuildKit's exporter).
pub fn history(cfg: &mut ImageConfig, created: Option<String>, created_by: String, layer: bool) {
    cfg.history.push(History {
        created,
        created_by,
        comment: "buildkit.dockerfile.v0".into(),
        empty_layer: !layer,
    });
}

/// The merged view of an image state's layers.
pub fn view_of(store: &Store, state: &ImageState) -> MergedView {
    let dirs: Vec<PathBuf> = state
        .layers
        .iter()
        .map(|l| store.snapshot_path(&l.diff_id))
        .collect();
    MergedView::from_bottom_up(&dirs)
}
