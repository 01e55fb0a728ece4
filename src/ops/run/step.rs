//! Running one RUN step: the step's directory (upper, work, rootfs, hosts,
//! resolv.conf), the root filesystem (overlay or the copy snapshotter),
//! the mounts, the sandbox, and the diff that becomes the layer.

use super::RunOp;
use crate::cache::LayerRef;
use crate::exec::snapshot::{Snapshotter, StepDirs};
use crate::exec::spec::{Network, SandboxSpec};
use crate::image::ImageState;
use crate::layer::view::MergedView;
use crate::ops::mounts::{MountGuards, NetworkMode, step_mounts};
use crate::ops::op::{ExecCtx, OpEnv, OpError, view_of};
use std::path::{Path, PathBuf};

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OpError {
    let path = path.to_path_buf();
    move |source| OpError::Io { what, path, source }
}

/// The file a step sees as /etc/resolv.conf: the host's with the host's
/// network (and none), else one naming slirp4netns's DNS forwarder.
fn step_resolv_conf(network: Network, dir: &Path) -> Result<Option<PathBuf>, OpError> {
    let host = Path::new("/etc/resolv.conf");
    if network != Network::Slirp {
        return Ok(host.exists().then(|| host.to_path_buf()));
    }
    let content =
        crate::exec::network::resolv_conf(&std::fs::read_to_string(host).unwrap_or_default());
    let p = dir.join("resolv.conf");
    std::fs::write(&p, content).map_err(io_err("writing", &p))?;
    Ok(Some(p))
}

/// The step's environment: its ARG and ENV values, PATH and HOME
/// defaulted, proxies from `--build-arg` (not in the key).
fn step_vars(op: &RunOp, env: &OpEnv<'_>, view: &MergedView, uid: u32) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = op.env.clone();
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
        vars.push(("HOME".into(), crate::ops::users::home_dir(view, uid)));
    }
    vars
}

/// The step's /etc/hosts.
fn write_hosts(dir: &Path, hostname: &str) -> Result<(), OpError> {
    let hosts = dir.join("hosts");
    std::fs::write(
        &hosts,
        format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
    )
    .map_err(io_err("writing", &hosts))
}

/// The store's snapshotter: overlayfs when possible, else the copy
/// snapshotter (said once per process).
fn snapshotter(
    env: &OpEnv<'_>,
    log: &(dyn Fn(String) + Sync),
) -> Box<dyn Snapshotter + Send + Sync> {
    let (snap, reason) = crate::exec::snapshot::for_store(env.store.root());
    if let Some(reason) = reason {
        static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            log(format!(
                "warning: overlayfs unavailable ({reason}); using the copy snapshotter"
            ));
        }
    }
    snap
}

/// Write a heredoc script inside the step's root (a link planted at its
/// path must not lead the write out); returns the opened root.
fn place_script(
    root_dir: &Path,
    path: &str,
    content: &str,
) -> Result<crate::fsroot::Root, OpError> {
    let root = crate::fsroot::Root::open(root_dir).map_err(io_err("opening", root_dir))?;
    let _ = root.remove_file(path);
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let mut f = root.create_file(path, 0o755)?;
        f.write_all(content.as_bytes())?;
        f.set_permissions(std::fs::Permissions::from_mode(0o755))
    };
    write().map_err(io_err(
        "writing",
        &root.path().join(path.trim_start_matches('/')),
    ))?;
    Ok(root)
}

/// Refuse what the builder's entitlements do not grant.
fn check_entitlements(op: &RunOp, env: &OpEnv<'_>) -> Result<(), OpError> {
    if op.insecure {
        return Err(OpError::Denied(
            "RUN --security=insecure needs an entitlement rbuild does not grant".into(),
        ));
    }
    if op.network == Some(NetworkMode::Host) && !env.allow_host_network {
        // BuildKit's entitlement check: the host's network is granted by
        // whoever runs the build, never by the Dockerfile alone.
        return Err(OpError::Denied(
            "network.host is not allowed (grant it with --allow network.host)".into(),
        ));
    }
    Ok(())
}

/// Run a RUN step in the sandbox; its changes become the layer. Returns
/// the layer and the argv that ran.
pub fn run_layer(
    env: &OpEnv<'_>,
    parent: &ImageState,
    op: &RunOp,
    ctx: &ExecCtx<'_>,
) -> Result<(Option<LayerRef>, Vec<String>), OpError> {
    check_entitlements(op, env)?;
    let cfg = &parent.config;
    let view = view_of(env.store, parent);
    let user = crate::ops::users::exec_user(&view, &cfg.config.user)?;
    let (argv, script) = op.command.argv(cfg);
    if argv.is_empty() {
        return Err(OpError::Invalid("RUN needs a command".into()));
    }
    let mut vars = step_vars(op, env, &view, user.uid);
    let tmp = env.store.temp_dir("run")?;
    let dir = tmp.path();
    let dirs = StepDirs::create(dir).map_err(io_err("creating the directories of", dir))?;
    write_hosts(dir, env.hostname)?;
    let snap = snapshotter(env, ctx.log);
    snap.prepare(&view, &dirs)
        .map_err(io_err("preparing the root filesystem in", &dirs.rootfs()))?;
    // The heredoc script file lives in the step's root and is removed afterwards.
    let script_root = match &script {
        Some((path, content)) => Some((
            path,
            place_script(&snap.writable_root(&dirs), path, content)?,
        )),
        None => None,
    };
    let mut guards = MountGuards::default();
    let mounts = crate::ops::mounts::targets::resolve(&op.mounts, &cfg.config.working_dir)?;
    let extra = step_mounts(env, &mounts, dir, &mut vars, &mut guards)?;
    let network = match op.network {
        Some(NetworkMode::None) => Network::None,
        Some(NetworkMode::Host) => Network::Host,
        Some(NetworkMode::Default) | None => Network::Slirp,
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
    let emulator = crate::exec::emulate::emulator_for(&cfg.os, &cfg.architecture, &cfg.variant)?;
    let spec = SandboxSpec {
        emulator,
        copy_rootfs: snap.copies_rootfs(),
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
        uid: user.uid,
        gid: user.gid,
        groups: user.groups,
        hostname: env.hostname.to_string(),
        network,
        mounts: extra,
    };
    crate::exec::run_sandboxed(&spec, &ctx.log_file, ctx.log, ctx.stop)
        .map_err(|e| super::error::run_failed(&argv, e, &ctx.log_file))?;
    if let Some((path, root)) = &script_root {
        let _ = root.remove_file(path);
    }
    snap.diff(&view, &dirs, &guards.targets)
        .map_err(io_err("computing the changes of", &dirs.rootfs()))?;
    drop(guards);
    // The upper dir becomes the layer (already in overlay's whiteout format).
    let upper = dirs.upper();
    let layer_dir = env.store.temp_dir("layer")?;
    let target = layer_dir.path().join("diff");
    std::fs::rename(&upper, &target).map_err(io_err("moving", &upper))?;
    let layer = crate::layer::commit::commit_dir_layer(env.store, env.epoch, &target)?;
    Ok((layer, argv))
}
