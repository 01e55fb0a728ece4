//! What each instruction does to an image: config changes (with their
//! history entries) and filesystem changes (COPY, ADD, WORKDIR) committed as
//! layers. Every operation has the same two parts: its cache key, and
//! running it on the parent state.

use super::keys::KeyParts;
use super::{SolveError, StageResult};
use crate::cache::{ImageState, LayerRef, Store};
use crate::context::{Context, Selection, selection_digest};
use crate::digest::Digest;
use crate::frontend::ast::{Healthcheck, InstructionKind};
use crate::frontend::lower::{Source, Step};
use crate::image::config::{HealthConfig, History, ImageConfig, rfc3339};
use crate::layer::compress::Compression;
use crate::layer::tarball::write_layer_tar;
use crate::layer::view::{MergedView, clean_components};
use crate::ops::copy::{CopyPlan, Unpack, execute, parse_chmod};
use crate::ops::users::{chown_ids, user_ids};
use crate::ops::view_select::select_in_view;
use std::path::{Path, PathBuf};

/// Shared inputs of every step of a build.
pub struct StepEnv<'a> {
    /// The store.
    pub store: &'a Store,
    /// The build context (None when the Dockerfile uses none).
    pub context: Option<&'a Context>,
    /// SOURCE_DATE_EPOCH.
    pub epoch: Option<u64>,
    /// Compression of new layers.
    pub compression: Compression,
    /// Results of other stages (for `--from`).
    pub stages: &'a dyn Fn(usize) -> Option<StageResult>,
    /// Images loaded by reference (for `--from=image`).
    pub image: &'a dyn Fn(&str) -> Result<StageResult, SolveError>,
    /// `--secret`s: id → where the value comes from.
    pub secrets: &'a [(String, SecretSource)],
    /// Proxy variables from `--build-arg` for RUN (not in cache keys).
    pub proxy_env: &'a [(String, String)],
    /// RUN's hostname (`BUILDKIT_SANDBOX_HOSTNAME`, default `buildkitsandbox`).
    pub hostname: &'a str,
    /// `--allow network.host` was given.
    pub allow_host_network: bool,
}

/// BuildKit's sandbox hostname.
pub const DEFAULT_HOSTNAME: &str = "buildkitsandbox";

/// Where a `--secret` comes from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// A file (`src=`).
    File(PathBuf),
    /// An environment variable of rbuild (`env=`).
    Env(String),
}

impl SecretSource {
    fn read(&self) -> Option<Vec<u8>> {
        match self {
            SecretSource::File(p) => std::fs::read(p).ok(),
            SecretSource::Env(v) => std::env::var_os(v).map(|s| s.into_encoded_bytes()),
        }
    }
}

/// A step prepared for the cache lookup: its key parts and what it needs to run.
pub struct Prepared {
    /// Key components.
    pub parts: KeyParts,
    /// Resolved COPY/ADD sources.
    pub selections: Vec<Selection>,
    /// Layer view of `--from`, when used.
    pub from_view: Option<MergedView>,
    /// ADD URLs with `--checksum`, fetched only when the step runs.
    pub lazy_urls: Vec<(String, Digest)>,
    /// Where downloads live until the step is done.
    pub downloads: Option<tempfile::TempDir>,
    /// The previous build of this step (same parent and definition): its
    /// layer and the digests of its source files, so files whose content and
    /// metadata did not change are hard-linked instead of copied.
    pub previous: Option<crate::ops::copy::Previous>,
}

/// A downloaded file as a COPY/ADD selection (mode 0600, as Docker's ADD).
fn url_selection(url: &str, d: &crate::ops::fetch::Downloaded) -> Result<Selection, SolveError> {
    let mut root =
        crate::context::Entry::from_path(String::new(), d.path.clone()).map_err(|source| {
            SolveError::Io {
                what: "stat",
                path: d.path.clone(),
                source,
            }
        })?;
    root.mode = 0o600;
    root.mtime = (d.mtime.unwrap_or(0), 0);
    root.owner = (0, 0);
    root.digest = Some(d.digest);
    Ok(Selection {
        source: url.to_string(),
        path: d.name.clone(),
        root,
        children: Vec::new(),
    })
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

/// The canonical definition of a step (what goes in its key besides inputs).
pub fn canonical(kind: &InstructionKind) -> String {
    match kind {
        InstructionKind::Env { pairs } | InstructionKind::Label { pairs } => pairs
            .iter()
            .map(|p| format!("{}={}", p.key, p.value))
            .collect::<Vec<_>>()
            .join("\n"),
        InstructionKind::Arg { args } => args
            .iter()
            .map(|a| format!("{}={}", a.name, a.default.as_deref().unwrap_or("<unset>")))
            .collect::<Vec<_>>()
            .join("\n"),
        InstructionKind::Copy(c) => format!(
            "dest={} chown={:?} chmod={:?} link={} parents={:?} exclude={:?} from={:?}",
            c.paths.dest,
            c.options.chown,
            c.options.chmod,
            c.options.link,
            // With --parents the sources as written (their `/./` pivots)
            // decide where files land.
            c.parents.then_some(&c.paths.sources),
            c.options.exclude,
            c.from
        ),
        InstructionKind::Add(a) => format!(
            "dest={} chown={:?} chmod={:?} link={} exclude={:?} checksum={:?} unpack={:?}",
            a.paths.dest,
            a.options.chown,
            a.options.chmod,
            a.options.link,
            a.options.exclude,
            a.checksum,
            a.unpack
        ),
        other => {
            // Everything else is position-free already.
            serde_json::to_string(other).unwrap_or_default()
        }
    }
}

fn now_or_epoch(epoch: Option<u64>) -> String {
    let secs = epoch.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    rfc3339(secs)
}

fn history(cfg: &mut ImageConfig, epoch: Option<u64>, created_by: String, layer: bool) {
    cfg.history.push(History {
        created: Some(now_or_epoch(epoch)),
        created_by,
        comment: "buildkit.dockerfile.v0".into(),
        empty_layer: !layer,
    });
}

/// Resolve the sources of a COPY/ADD (context or `--from`) and add their
/// digests to the key.
pub fn prepare(
    env: &StepEnv<'_>,
    parent_key: &Digest,
    step: &Step,
) -> Result<Prepared, SolveError> {
    let kind = &step.instruction.kind;
    let mut parts = KeyParts::new(parent_key, kind.name());
    parts.add("def", canonical(kind));
    let mut selections = Vec::new();
    let mut from_view = None;
    let mut lazy_urls = Vec::new();
    let mut downloads: Option<tempfile::TempDir> = None;
    let paths = match kind {
        InstructionKind::Copy(c) => Some((&c.paths, false)),
        InstructionKind::Add(a) => Some((&a.paths, true)),
        _ => None,
    };
    if let Some((paths, is_add)) = paths {
        for inline in &paths.inline_sources {
            parts.add(
                format!("inline:{}", inline.name),
                Digest::of(inline.content.as_bytes()).to_string(),
            );
        }
        let view = match &step.copy_from {
            Some(Source::Stage(i)) => Some(
                (env.stages)(*i)
                    .map(|r| r.view)
                    .ok_or(SolveError::DependencyFailed)?,
            ),
            Some(Source::Image(name)) => Some((env.image)(name)?.view),
            Some(Source::Scratch) => Some(MergedView::default()),
            None => None,
        };
        let checksum = match kind {
            InstructionKind::Add(a) => a.checksum.clone(),
            _ => None,
        };
        for src in &paths.sources {
            if is_add && crate::ops::fetch::is_url(src) {
                match &checksum {
                    // The checksum is the key: no download unless the step runs.
                    Some(c) => {
                        let d = crate::ops::fetch::parse_checksum(c)?;
                        parts.add(format!("url:{src}"), d.to_string());
                        lazy_urls.push((src.clone(), d));
                    }
                    None => {
                        if downloads.is_none() {
                            downloads = Some(env.store.temp_dir("download")?);
                        }
                        let dir = downloads
                            .as_ref()
                            .expect("download dir")
                            .path()
                            .join(selections.len().to_string());
                        std::fs::create_dir_all(&dir).map_err(|source| SolveError::Io {
                            what: "creating",
                            path: dir.clone(),
                            source,
                        })?;
                        let got = crate::ops::fetch::download(src, &dir, None)?;
                        parts.add(format!("url:{src}"), got.digest.to_string());
                        selections.push(url_selection(src, &got)?);
                    }
                }
                continue;
            }
            if is_add && src.starts_with("git@") {
                return Err(SolveError::Unsupported(format!(
                    "ADD {src}: git sources are not supported yet"
                )));
            }
            let found = match &view {
                Some(v) => select_in_view(v, src),
                None => {
                    let ctx = env
                        .context
                        .ok_or_else(|| SolveError::Internal("no build context".into()))?;
                    ctx.select(src)
                }
            };
            let mut sels = match found {
                // A wildcard that matches nothing copies nothing (BuildKit's
                // AllowEmptyWildcard); a plain path must exist.
                Err(
                    crate::context::ContextError::NotFound(_)
                    | crate::context::ContextError::NotInStage(_),
                ) if crate::context::has_wildcards(src) => {
                    parts.add(format!("source:{src}"), "empty".to_string());
                    Vec::new()
                }
                r => r?,
            };
            for sel in sels.iter_mut() {
                let mut all: Vec<crate::context::Entry> =
                    Vec::with_capacity(sel.children.len() + 1);
                all.push(sel.root.clone());
                all.append(&mut sel.children);
                match (&view, env.context) {
                    (None, Some(ctx)) => ctx.digest(&mut all)?,
                    _ => digest_plain(&mut all)?,
                }
                sel.root = all.remove(0);
                sel.children = all;
                parts.add(
                    format!("source:{}", sel.path),
                    selection_digest(sel).to_string(),
                );
            }
            selections.extend(sels);
        }
        from_view = view;
    }
    if matches!(kind, InstructionKind::Run(_)) && env.hostname != DEFAULT_HOSTNAME {
        parts.add("hostname", env.hostname.to_string());
    }
    for (k, v) in &step.args_in_scope {
        if matches!(kind, InstructionKind::Run(_)) {
            parts.add(format!("arg:{k}"), v.clone());
        }
    }
    // Bind mounts: their content is an input of the step.
    for (m, src) in &step.mounts {
        if m.kind != crate::frontend::ast::MountType::Bind {
            continue;
        }
        let target = m.target.clone().unwrap_or_default();
        let source = m.source.clone().unwrap_or_else(|| "/".into());
        match src {
            None => {
                let ctx = env
                    .context
                    .ok_or_else(|| SolveError::Internal("no build context".into()))?;
                for mut sel in ctx.select(&source)? {
                    let mut all = vec![sel.root.clone()];
                    all.append(&mut sel.children);
                    ctx.digest(&mut all)?;
                    sel.root = all.remove(0);
                    sel.children = all;
                    parts.add(format!("bind:{target}"), selection_digest(&sel).to_string());
                }
            }
            Some(Source::Stage(i)) => {
                let r = (env.stages)(*i).ok_or(SolveError::DependencyFailed)?;
                parts.add(format!("bind:{target}"), format!("{}:{source}", r.key));
            }
            Some(Source::Image(name)) => {
                let r = (env.image)(name)?;
                parts.add(format!("bind:{target}"), format!("{}:{source}", r.key));
            }
            Some(Source::Scratch) => {}
        }
    }
    Ok(Prepared {
        parts,
        selections,
        from_view,
        lazy_urls,
        downloads,
        previous: None,
    })
}

/// The file lists of a step's sources, stored as blobs: not part of the key,
/// but kept in the cache record so a later miss can name the changed files.
/// Computed only when the step runs.
pub fn file_listings(store: &Store, prep: &Prepared) -> Result<Vec<(String, String)>, SolveError> {
    let mut out = Vec::new();
    for sel in &prep.selections {
        let listing: String = std::iter::once(&sel.root)
            .chain(sel.children.iter())
            .filter_map(|e| {
                let path = if e.rel.is_empty() {
                    sel.path.clone()
                } else {
                    format!("{}/{}", sel.path, e.rel)
                };
                e.digest.map(|d| format!("{} {path}\n", d.hex()))
            })
            .collect();
        let (d, _) = store.put_blob(listing.as_bytes())?;
        out.push((format!("files:{}", sel.path), d.to_string()));
    }
    Ok(out)
}

/// Hash entries outside the context (another stage's files).
fn digest_plain(entries: &mut [crate::context::Entry]) -> Result<(), SolveError> {
    use rayon::prelude::*;
    let res: Vec<Result<Option<Digest>, std::io::Error>> = entries
        .par_iter()
        .map(|e| {
            if e.kind != crate::context::Kind::File {
                return Ok(None);
            }
            crate::digest::hash_reader(e.open()?).map(|(d, _)| Some(d))
        })
        .collect();
    for (e, r) in entries.iter_mut().zip(res) {
        e.digest = r.map_err(|source| SolveError::Io {
            what: "hashing",
            path: e.abs.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Clamp mtimes in a diff directory to SOURCE_DATE_EPOCH.
fn clamp_times(dir: &Path, epoch: u64) {
    let mut stack = vec![dir.to_path_buf()];
    let mut all = Vec::new();
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(p.clone());
                }
                all.push(p);
            }
        }
    }
    for p in all.into_iter().rev() {
        if let Ok(m) = std::fs::symlink_metadata(&p) {
            use std::os::unix::fs::MetadataExt;
            if m.mtime() > epoch as i64 {
                let t = filetime::FileTime::from_unix_time(epoch as i64, 0);
                let _ = filetime::set_symlink_file_times(&p, t, t);
            }
        }
    }
}

/// Turn a filled diff directory into a layer (None if it is empty).
pub fn commit_layer(
    env: &StepEnv<'_>,
    dir: tempfile::TempDir,
) -> Result<Option<LayerRef>, SolveError> {
    let path = dir.keep();
    let r = commit_dir_layer(env, &path);
    if !matches!(r, Ok(Some(_))) {
        let _ = crate::cache::remove_tree(&path);
    }
    r
}

/// Turn the diff directory at `path` (inside the store's temp space) into a
/// layer; the directory is moved into the snapshots.
pub fn commit_dir_layer(env: &StepEnv<'_>, path: &Path) -> Result<Option<LayerRef>, SolveError> {
    let empty = std::fs::read_dir(path)
        .map(|mut r| r.next().is_none())
        .unwrap_or(true);
    if empty {
        return Ok(None);
    }
    if let Some(e) = env.epoch {
        clamp_times(path, e);
    }
    // The layer is identified by its diff_id; it stays an uncompressed
    // snapshot until an export needs a blob (compressed then, in parallel).
    let store = env.store;
    let hasher = crate::digest::HashingWriter::new(std::io::sink());
    let hasher = write_layer_tar(path, hasher, crate::image::manifest::tar_options())?;
    let (_, diff_id, size) = hasher.finish();
    store.commit_snapshot(path, &diff_id)?;
    Ok(Some(LayerRef { diff_id, size }))
}

fn expose_ports(ports: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for p in ports {
        let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
        let proto = proto.to_ascii_lowercase();
        match num.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    for n in a..=b.min(a + 65535) {
                        out.push(format!("{n}/{proto}"));
                    }
                }
            }
            None => out.push(format!("{num}/{proto}")),
        }
    }
    out
}

fn shell_of(cfg: &ImageConfig) -> Vec<String> {
    if cfg.config.shell.is_empty() {
        vec!["/bin/sh".into(), "-c".into()]
    } else {
        cfg.config.shell.clone()
    }
}

fn go_quote_list(v: &[String]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| crate::frontend::raw::go_quote(s))
        .collect();
    format!("[{}]", items.join(" "))
}

/// Run a step on `parent`, giving the new image state.
pub fn run_step(
    env: &StepEnv<'_>,
    parent: &ImageState,
    step: &Step,
    prep: &Prepared,
    cmd_set: &mut bool,
    log: &(dyn Fn(String) + Sync),
) -> Result<ImageState, SolveError> {
    let mut state = parent.clone();
    let cfg = &mut state.config;
    let epoch = env.epoch;
    match &step.instruction.kind {
        InstructionKind::Env { pairs } => {
            for p in pairs {
                cfg.set_env(&p.key, &p.value);
            }
            history(cfg, epoch, format!("ENV {}", pairs_text(pairs)), false);
        }
        InstructionKind::Label { pairs } => {
            for p in pairs {
                cfg.config.labels.insert(p.key.clone(), p.value.clone());
            }
            history(cfg, epoch, format!("LABEL {}", pairs_text(pairs)), false);
        }
        InstructionKind::Arg { args } => {
            let s: Vec<String> = args
                .iter()
                .map(|a| match &a.default {
                    Some(v) => format!("{}={v}", a.name),
                    None => a.name.clone(),
                })
                .collect();
            history(cfg, epoch, format!("ARG {}", s.join(" ")), false);
        }
        InstructionKind::Expose { ports } => {
            for p in expose_ports(ports) {
                cfg.config.exposed_ports.insert(p, serde_json::json!({}));
            }
            let keys: Vec<String> = cfg
                .config
                .exposed_ports
                .keys()
                .map(|k| format!("{k}:{{}}"))
                .collect();
            history(cfg, epoch, format!("EXPOSE map[{}]", keys.join(" ")), false);
        }
        InstructionKind::Volume { paths } => {
            for p in paths {
                cfg.config.volumes.insert(p.clone(), serde_json::json!({}));
            }
            history(cfg, epoch, format!("VOLUME [{}]", paths.join(" ")), false);
        }
        InstructionKind::User { user } => {
            cfg.config.user = user.clone();
            history(cfg, epoch, format!("USER {user}"), false);
        }
        InstructionKind::Stopsignal { signal } => {
            cfg.config.stop_signal = signal.clone();
            history(cfg, epoch, format!("STOPSIGNAL {signal}"), false);
        }
        InstructionKind::Shell { shell } => {
            cfg.config.shell = shell.clone();
            history(cfg, epoch, format!("SHELL [{}]", shell.join(" ")), false);
        }
        InstructionKind::Maintainer { name } => {
            cfg.author = name.clone();
            history(cfg, epoch, format!("MAINTAINER {name}"), false);
        }
        InstructionKind::Onbuild { expression, .. } => {
            cfg.config.on_build.push(expression.clone());
            history(cfg, epoch, format!("ONBUILD {expression}"), false);
        }
        InstructionKind::Cmd(c) => {
            let args = if c.exec_form {
                c.args.clone()
            } else {
                let mut v = shell_of(cfg);
                v.extend(c.args.iter().cloned());
                v
            };
            history(cfg, epoch, format!("CMD {}", go_quote_list(&args)), false);
            cfg.config.cmd = Some(args);
            *cmd_set = true;
        }
        InstructionKind::Entrypoint(c) => {
            let args = if c.exec_form {
                c.args.clone()
            } else {
                let mut v = shell_of(cfg);
                v.extend(c.args.iter().cloned());
                v
            };
            history(
                cfg,
                epoch,
                format!("ENTRYPOINT {}", go_quote_list(&args)),
                false,
            );
            cfg.config.entrypoint = if args.is_empty() { None } else { Some(args) };
            if !*cmd_set {
                cfg.config.cmd = None;
            }
        }
        InstructionKind::Healthcheck { health } => {
            let hc = match health {
                Healthcheck::None => HealthConfig {
                    test: vec!["NONE".into()],
                    ..Default::default()
                },
                Healthcheck::Cmd {
                    test,
                    interval_ns,
                    timeout_ns,
                    start_period_ns,
                    start_interval_ns,
                    retries,
                } => HealthConfig {
                    test: test.clone(),
                    interval: *interval_ns,
                    timeout: *timeout_ns,
                    start_period: *start_period_ns,
                    start_interval: *start_interval_ns,
                    retries: *retries,
                },
            };
            history(
                cfg,
                epoch,
                format!("HEALTHCHECK &{{{}}}", go_quote_list(&hc.test)),
                false,
            );
            cfg.config.healthcheck = Some(hc);
        }
        InstructionKind::Workdir { path } => {
            let wd = if path.starts_with('/') {
                path.clone()
            } else {
                let cur = if cfg.config.working_dir.is_empty() {
                    "/"
                } else {
                    cfg.config.working_dir.as_str()
                };
                format!("{}/{}", cur.trim_end_matches('/'), path)
            };
            let parts = clean_components(&wd);
            let wd = format!("/{}", parts.join("/"));
            cfg.config.working_dir = wd.clone();
            let mut layer = None;
            if wd != "/" {
                let view = view_of(env.store, parent);
                let owner = user_ids(&view, &cfg.config.user)?;
                let tmp = env.store.temp_dir("workdir")?;
                let created_time = epoch.map(|e| e as i64).unwrap_or(0);
                let resolved = view.resolve(&wd, true);
                if view.lookup_exact(&resolved).is_none() {
                    mkdir_all(&view, tmp.path(), &resolved, owner, created_time)?;
                }
                layer = commit_layer(env, tmp)?;
            }
            let has_layer = layer.is_some();
            if let Some(l) = layer {
                state.layers.push(l);
            }
            history(&mut state.config, epoch, format!("WORKDIR {wd}"), has_layer);
        }
        InstructionKind::Copy(c) => {
            let layer = copy_layer(
                env,
                parent,
                &c.paths,
                &c.options,
                c.parents,
                Unpack::Never,
                prep,
            )?;
            let has = layer.is_some();
            state.layers.extend(layer);
            let text = copy_history("COPY", flag_text(&c.options, c.from.as_deref()), &c.paths);
            history(&mut state.config, epoch, text, has);
        }
        InstructionKind::Add(a) => {
            let unpack = match a.unpack {
                Some(false) => Unpack::Never,
                Some(true) => Unpack::All,
                None => Unpack::Local,
            };
            let layer = copy_layer(env, parent, &a.paths, &a.options, false, unpack, prep)?;
            let has = layer.is_some();
            state.layers.extend(layer);
            let text = copy_history("ADD", flag_text(&a.options, None), &a.paths);
            history(&mut state.config, epoch, text, has);
        }
        InstructionKind::Run(run) => {
            let (layer, created_by) = run_layer(env, parent, step, run, log)?;
            let has = layer.is_some();
            state.layers.extend(layer);
            history(&mut state.config, epoch, created_by, has);
        }
    }
    Ok(state)
}

/// The argv of a RUN: exec form as is; shell form through the stage's SHELL;
/// a lone heredoc is the script (run directly when it has a `#!` line).
fn run_argv(
    cfg: &ImageConfig,
    run: &crate::frontend::ast::Run,
    original: &str,
) -> (Vec<String>, Option<(String, String)>) {
    let cmd = &run.command;
    if cmd.exec_form {
        return (cmd.args.clone(), None);
    }
    let line = cmd.args.join(" ");
    let docs = crate::frontend::instructions::run_heredoc_files(&cmd.heredocs);
    if docs.len() == 1
        && crate::frontend::lines::parse_heredoc_word(line.trim())
            .ok()
            .flatten()
            .is_some()
    {
        let content = docs[0].content.clone();
        if content.starts_with("#!") {
            let path = format!("/.rbuild-heredoc-{}", docs[0].name);
            return (vec![path.clone()], Some((path, content)));
        }
        let mut v = shell_of(cfg);
        v.push(content);
        return (v, None);
    }
    let mut script = line;
    for d in &docs {
        script.push('\n');
        script.push_str(&d.content);
        script.push_str(&d.name);
    }
    let _ = original;
    let mut v = shell_of(cfg);
    v.push(script);
    (v, None)
}

/// Run a RUN step in the sandbox; its changes become the layer.
fn run_layer(
    env: &StepEnv<'_>,
    parent: &ImageState,
    step: &Step,
    run: &crate::frontend::ast::Run,
    log: &(dyn Fn(String) + Sync),
) -> Result<(Option<LayerRef>, String), SolveError> {
    use crate::exec::spec::{Network, SandboxSpec};
    if run.security == Some(crate::frontend::ast::SecurityMode::Insecure) {
        return Err(SolveError::Unsupported(
            "RUN --security=insecure needs an entitlement rbuild does not grant".into(),
        ));
    }
    if run.network == Some(crate::frontend::ast::NetworkMode::Host) && !env.allow_host_network {
        // BuildKit's entitlement check: the host's network is granted by
        // whoever runs the build, never by the Dockerfile alone.
        return Err(SolveError::Unsupported(
            "network.host is not allowed (grant it with --allow network.host)".into(),
        ));
    }
    let cfg = &parent.config;
    let view = view_of(env.store, parent);
    let crate::ops::users::ExecUser {
        uid,
        gid,
        groups: extra_groups,
    } = crate::ops::users::exec_user(&view, &cfg.config.user)?;
    let (argv, script) = run_argv(cfg, run, &step.instruction.original);
    if argv.is_empty() {
        return Err(SolveError::Unsupported("RUN needs a command".into()));
    }
    // Environment: the step's ARG and ENV values, PATH defaulted.
    let mut vars: Vec<(String, String)> = step.env.clone();
    if !vars.iter().any(|(k, _)| k == "PATH") {
        vars.push(("PATH".into(), crate::image::config::DEFAULT_PATH.into()));
    }
    for (k, v) in env.proxy_env {
        match vars.iter_mut().find(|(n, _)| n == k) {
            Some(slot) => slot.1 = v.clone(),
            None => vars.push((k.clone(), v.clone())),
        }
    }
    if !vars.iter().any(|(k, _)| k == "HOME") {
        vars.push(("HOME".into(), crate::ops::users::home_dir(&view, uid)));
    }
    let tmp = env.store.temp_dir("run")?;
    let dir = tmp.path();
    for d in ["upper", "work", "rootfs", "empty"] {
        std::fs::create_dir(dir.join(d)).map_err(|source| SolveError::Io {
            what: "creating",
            path: dir.join(d),
            source,
        })?;
    }
    let hostname = env.hostname.to_string();
    std::fs::write(
        dir.join("hosts"),
        format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
    )
    .map_err(|source| SolveError::Io {
        what: "writing",
        path: dir.join("hosts"),
        source,
    })?;
    // overlayfs when possible; else the copy snapshotter (said once per build).
    let copy_mode = crate::exec::copydiff::overlay_usable(env.store.root()).err();
    if let Some(reason) = &copy_mode {
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            log(format!(
                "warning: overlayfs unavailable ({reason}); using the copy snapshotter"
            ));
        }
        crate::exec::copydiff::populate(&view, &dir.join("rootfs")).map_err(|source| {
            SolveError::Io {
                what: "copying the parent filesystem into",
                path: dir.join("rootfs"),
                source,
            }
        })?;
    }
    // The heredoc script file lives in the step's root and is removed afterwards.
    let script_root = if copy_mode.is_some() {
        dir.join("rootfs")
    } else {
        dir.join("upper")
    };
    // Written inside the root: with the copy snapshotter the root holds the
    // parent's files, and a link planted at the script's path must not lead
    // the write out (nor into the image's files: whatever is there goes).
    let script_root = match &script {
        Some(_) => {
            Some(
                crate::fsroot::Root::open(&script_root).map_err(|source| SolveError::Io {
                    what: "opening",
                    path: script_root.clone(),
                    source,
                })?,
            )
        }
        None => None,
    };
    if let (Some((path, content)), Some(root)) = (&script, &script_root) {
        let _ = root.remove_file(path);
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = root.create_file(path, 0o755)?;
            f.write_all(content.as_bytes())?;
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o755))
        };
        write().map_err(|source| SolveError::Io {
            what: "writing",
            path: root.path().join(path.trim_start_matches('/')),
            source,
        })?;
    }
    let mut guards = MountGuards::default();
    let step = &Step {
        mounts: super::mount_targets::resolve(&step.mounts, &cfg.config.working_dir)?,
        ..step.clone()
    };
    let mounts = step_mounts(env, step, dir, &mut vars, &mut guards)?;
    let network = match run.network {
        Some(crate::frontend::ast::NetworkMode::None) => Network::None,
        Some(crate::frontend::ast::NetworkMode::Host) => Network::Host,
        Some(crate::frontend::ast::NetworkMode::Default) | None => Network::Slirp,
    };
    let resolv_conf = step_resolv_conf(network, dir)?;
    // A layer that occurs twice is fully covered by its upper occurrence, and
    // overlayfs refuses the same directory twice: keep the topmost.
    let mut lowerdirs: Vec<PathBuf> = Vec::new();
    for l in &view.layers {
        if !lowerdirs.contains(l) {
            lowerdirs.push(l.clone());
        }
    }
    let spec = SandboxSpec {
        copy_rootfs: copy_mode.is_some(),
        lowerdirs,
        empty_lower: dir.join("empty"),
        upper: dir.join("upper"),
        work: dir.join("work"),
        rootfs: dir.join("rootfs"),
        hosts_file: dir.join("hosts"),
        resolv_conf,
        sync_fd: None,
        argv: argv.clone(),
        env: vars.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        cwd: if cfg.config.working_dir.is_empty() {
            "/".into()
        } else {
            cfg.config.working_dir.clone()
        },
        uid,
        gid,
        groups: extra_groups,
        hostname,
        network,
        mounts,
    };
    let log_path = env
        .store
        .logs_dir()
        .join(format!("{}.log", std::process::id()));
    crate::exec::run_sandboxed(&spec, &log_path, log)
        .map_err(|e| super::run_error::run_failed(&argv, e))?;
    let upper = dir.join("upper");
    if let (Some((path, _)), Some(root)) = (&script, &script_root) {
        let _ = root.remove_file(path);
    }
    if copy_mode.is_some() {
        crate::exec::copydiff::diff_to_upper(&view, &dir.join("rootfs"), &upper).map_err(
            |source| SolveError::Io {
                what: "computing the changes of",
                path: dir.join("rootfs"),
                source,
            },
        )?;
    }
    crate::exec::clean_mountpoints(&upper, &|p: &str| view.stat(&format!("/{p}")).is_some());
    for target in &guards.targets {
        crate::exec::clean_created_path(&upper, target, &|p: &str| {
            view.stat(&format!("/{p}")).is_some()
        });
    }
    drop(guards);
    // The upper dir becomes the layer (already in overlay's whiteout format).
    let layer_dir = env.store.temp_dir("layer")?;
    let target = layer_dir.path().join("diff");
    std::fs::rename(&upper, &target).map_err(|source| SolveError::Io {
        what: "moving",
        path: upper.clone(),
        source,
    })?;
    let layer = commit_dir_layer(env, &target)?;
    let mut created_by = String::from("RUN ");
    if !step.args_in_scope.is_empty() {
        let kv: Vec<String> = step
            .args_in_scope
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        created_by.push_str(&format!("|{} {} ", kv.len(), kv.join(" ")));
    }
    created_by.push_str(&argv.join(" "));
    created_by.push_str(" # buildkit");
    Ok((layer, created_by))
}

/// The file a step sees as /etc/resolv.conf: the host's with the host's
/// network (and none), else one naming slirp4netns's DNS forwarder.
fn step_resolv_conf(
    network: crate::exec::spec::Network,
    dir: &Path,
) -> Result<Option<PathBuf>, SolveError> {
    let host = Path::new("/etc/resolv.conf");
    if network != crate::exec::spec::Network::Slirp {
        return Ok(host.exists().then(|| host.to_path_buf()));
    }
    let content =
        crate::exec::network::resolv_conf(&std::fs::read_to_string(host).unwrap_or_default());
    let p = dir.join("resolv.conf");
    std::fs::write(&p, content).map_err(|source| SolveError::Io {
        what: "writing",
        path: p.clone(),
        source,
    })?;
    Ok(Some(p))
}

/// What must live until a RUN step ends: cache locks, secret files.
#[derive(Default)]
struct MountGuards {
    locks: Vec<std::fs::File>,
    /// The step's secret files (removed when dropped).
    secrets: Option<super::secrets::SecretDir>,
    /// Mount targets (created in the rootfs if missing; removed from the layer).
    targets: Vec<String>,
}

/// Translate `RUN --mount`s into sandbox mounts.
fn step_mounts(
    env: &StepEnv<'_>,
    step: &Step,
    dir: &Path,
    vars: &mut Vec<(String, String)>,
    guards: &mut MountGuards,
) -> Result<Vec<crate::exec::spec::ExtraMount>, SolveError> {
    use crate::exec::spec::ExtraMount;
    use crate::frontend::ast::MountType;
    let mut out = Vec::new();
    for (n, (m, src)) in step.mounts.iter().enumerate() {
        let target = m.target.clone().unwrap_or_default();
        match m.kind {
            MountType::Cache => {
                let private = dir.join(format!("private-cache-{n}"));
                out.push(super::cache_mount::mount(
                    env,
                    m,
                    src.as_ref(),
                    &target,
                    &private,
                    &mut guards.locks,
                )?);
            }
            MountType::Tmpfs => out.push(ExtraMount::Tmpfs {
                target: target.clone(),
                size: m.size.unwrap_or(0),
            }),
            MountType::Bind => {
                let sub = m.source.clone().unwrap_or_else(|| "/".into());
                match src {
                    None => {
                        let ctx = env
                            .context
                            .ok_or_else(|| SolveError::Internal("no build context".into()))?;
                        let sel = ctx.select(&sub)?;
                        let Some(first) = sel.first() else { continue };
                        // What the context sends (ignore rules applied), laid
                        // out for the step; a rw mount gets copies, whose
                        // writes are discarded with the step.
                        let at = dir.join(format!("bind-{n}"));
                        let host = super::context_mount::materialize(first, &at, !m.readonly)
                            .map_err(|source| SolveError::Io {
                                what: "laying out the context for",
                                path: at.clone(),
                                source,
                            })?;
                        out.push(ExtraMount::Bind {
                            beneath: None,
                            source: host,
                            target: target.clone(),
                            readonly: m.readonly,
                        });
                    }
                    Some(s) => {
                        let r = match s {
                            Source::Stage(i) => {
                                (env.stages)(*i).ok_or(SolveError::DependencyFailed)?
                            }
                            Source::Image(name) => (env.image)(name)?,
                            Source::Scratch => continue,
                        };
                        let mp = dir.join(format!("layers-{n}"));
                        std::fs::create_dir_all(&mp).map_err(|source| SolveError::Io {
                            what: "creating",
                            path: mp.clone(),
                            source,
                        })?;
                        out.push(ExtraMount::Layers {
                            lowerdirs: r.view.layers.clone(),
                            mountpoint: mp,
                            subpath: sub,
                            target: target.clone(),
                            // Writes to a rw bind are discarded with the step.
                            writable: (!m.readonly).then(|| dir.join(format!("layers-{n}-rw"))),
                        });
                    }
                }
            }
            MountType::Secret => {
                let id = m.id.clone().unwrap_or_else(|| {
                    Path::new(&target)
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default()
                });
                let value = env
                    .secrets
                    .iter()
                    .find(|(i, _)| *i == id)
                    .and_then(|(_, s)| s.read());
                let Some(value) = value else {
                    if m.required {
                        return Err(SolveError::Unsupported(format!(
                            "secret {id}: not found (provide it with --secret id={id},src=FILE)"
                        )));
                    }
                    continue;
                };
                if let Some(var) = &m.env {
                    vars.push((var.clone(), String::from_utf8_lossy(&value).into_owned()));
                    if m.target.is_none() {
                        continue;
                    }
                }
                let file = write_secret(env, guards, m, &value)?;
                let t = if target.is_empty() {
                    format!("/run/secrets/{id}")
                } else {
                    target.clone()
                };
                guards.targets.push(t.clone());
                out.push(ExtraMount::Bind {
                    beneath: None,
                    source: file,
                    target: t,
                    readonly: true,
                });
                continue;
            }
            MountType::Ssh => {
                return Err(SolveError::Unsupported(
                    "RUN --mount=type=ssh is not supported yet".into(),
                ));
            }
        }
        guards.targets.push(target);
    }
    Ok(out)
}

/// Write a secret's value into the step's private secret directory (made
/// on first use) with the mount's owner and mode (root, 0400 by default).
fn write_secret(
    env: &StepEnv<'_>,
    guards: &mut MountGuards,
    m: &crate::frontend::ast::Mount,
    value: &[u8],
) -> Result<PathBuf, SolveError> {
    let store_tmp = env.store.root().join("tmp");
    if guards.secrets.is_none() {
        let d = super::secrets::SecretDir::create(&store_tmp).map_err(|source| SolveError::Io {
            what: "creating a secret directory for",
            path: store_tmp.clone(),
            source,
        })?;
        guards.secrets = Some(d);
    }
    let Some(dir) = guards.secrets.as_mut() else {
        return Err(SolveError::Internal("no secret directory".into()));
    };
    let (uid, gid) = (m.uid.unwrap_or(0), m.gid.unwrap_or(0));
    dir.write(value, uid, gid, m.mode.unwrap_or(0o400))
        .map_err(|source| SolveError::Io {
            what: "writing a secret in",
            path: dir.path().to_path_buf(),
            source,
        })
}

/// `k=v k2=v2`, as history records ENV and LABEL.
fn pairs_text(pairs: &[crate::frontend::ast::KeyValue]) -> String {
    let s: Vec<String> = pairs
        .iter()
        .map(|p| format!("{}={}", p.key, p.value))
        .collect();
    s.join(" ")
}

/// A mount's `mode=`, `uid=`, `gid=` (root and `default_mode` when absent).
/// `COPY [--flags] src... dest # buildkit`, as BuildKit records it.
fn copy_history(cmd: &str, flags: String, paths: &crate::frontend::ast::SourcesAndDest) -> String {
    let mut words = vec![cmd.to_string()];
    if !flags.is_empty() {
        words.push(flags);
    }
    words.extend(paths.sources.iter().cloned());
    words.extend(paths.inline_sources.iter().map(|i| format!("<<{}", i.name)));
    words.push(paths.dest.clone());
    format!("{} # buildkit", words.join(" "))
}

fn flag_text(o: &crate::frontend::ast::CopyOptions, from: Option<&str>) -> String {
    let mut s = Vec::new();
    if let Some(f) = from {
        s.push(format!("--from={f}"));
    }
    if let Some(c) = &o.chown {
        s.push(format!("--chown={c}"));
    }
    if let Some(c) = &o.chmod {
        s.push(format!("--chmod={c}"));
    }
    if o.link {
        s.push("--link".into());
    }
    s.join(" ")
}

fn mkdir_all(
    view: &MergedView,
    out: &Path,
    parts: &[String],
    owner: (u32, u32),
    t: i64,
) -> Result<(), SolveError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut cur = out.to_path_buf();
    let mut created = Vec::new();
    for i in 0..parts.len() {
        cur.push(&parts[i]);
        std::fs::create_dir(&cur).map_err(|source| SolveError::Io {
            what: "creating",
            path: cur.clone(),
            source,
        })?;
        let (mode, uid, gid, mt) = match view.lookup_exact(&parts[..=i]) {
            Some((_, m)) if m.is_dir() => (m.mode() & 0o7777, m.uid(), m.gid(), m.mtime()),
            _ => (0o755, owner.0, owner.1, t),
        };
        std::fs::set_permissions(&cur, std::fs::Permissions::from_mode(mode)).map_err(
            |source| SolveError::Io {
                what: "chmod",
                path: cur.clone(),
                source,
            },
        )?;
        if rustix::process::geteuid().is_root() || (uid, gid) != (0, 0) {
            std::os::unix::fs::lchown(&cur, Some(uid), Some(gid)).map_err(|source| {
                SolveError::Io {
                    what: "chown",
                    path: cur.clone(),
                    source,
                }
            })?;
        }
        created.push((cur.clone(), mt));
    }
    for (p, mt) in created.into_iter().rev() {
        let ft = filetime::FileTime::from_unix_time(mt, 0);
        let _ = filetime::set_symlink_file_times(&p, ft, ft);
    }
    Ok(())
}

fn copy_layer(
    env: &StepEnv<'_>,
    parent: &ImageState,
    paths: &crate::frontend::ast::SourcesAndDest,
    opts: &crate::frontend::ast::CopyOptions,
    parents: bool,
    unpack: Unpack,
    prep: &Prepared,
) -> Result<Option<LayerRef>, SolveError> {
    let full_view = view_of(env.store, parent);
    let empty = MergedView::default();
    let base = if opts.link { &empty } else { &full_view };
    let owner = match &opts.chown {
        Some(c) => Some(chown_ids(&full_view, c)?),
        // Context files belong to root; files from another stage keep their owner (as BuildKit).
        None if prep.from_view.is_none() => Some((0, 0)),
        None => None,
    };
    let chmod = match &opts.chmod {
        Some(m) => Some(parse_chmod(m)?),
        None => None,
    };
    let mut selections = prep.selections.clone();
    let fetch_dir = if prep.lazy_urls.is_empty() {
        None
    } else {
        Some(env.store.temp_dir("download")?)
    };
    for (i, (url, sum)) in prep.lazy_urls.iter().enumerate() {
        let dir = fetch_dir
            .as_ref()
            .expect("download dir")
            .path()
            .join(i.to_string());
        std::fs::create_dir_all(&dir).map_err(|source| SolveError::Io {
            what: "creating",
            path: dir.clone(),
            source,
        })?;
        let got = crate::ops::fetch::download(url, &dir, Some(sum))?;
        selections.push(url_selection(url, &got)?);
    }
    let tmp = env.store.temp_dir("copy")?;
    let plan = CopyPlan {
        sources: &selections,
        inline: &paths.inline_sources,
        dest: &paths.dest,
        workdir: &parent.config.config.working_dir,
        owner,
        chmod,
        parents,
        exclude: &opts.exclude,
        base,
        created_time: env.epoch.map(|e| e as i64).unwrap_or(0),
        unpack: if prep.from_view.is_none() {
            unpack
        } else {
            Unpack::Never
        },
        // Reuse shares inodes with the previous layer: never when mtimes
        // will be clamped afterwards (that would touch the previous layer).
        previous: prep.previous.as_ref().filter(|_| env.epoch.is_none()),
    };
    execute(&plan, tmp.path())?;
    commit_layer(env, tmp)
}
