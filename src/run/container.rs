//! One container run: the image loaded, its command, user, environment and
//! mounts worked out, the sandbox started on an overlay with a fresh upper
//! directory in the store's temp space, signals and the terminal wired up,
//! and everything but the volumes removed when it ends.

use super::entrypoint::{CommandError, EntrypointFlag};
use super::env::{EnvError, EnvList};
use super::mount_spec::MountSpec;
use super::mounts::MountsError;
use super::signals::{self, Policy, Target};
use super::tty;
use super::volumes::{VolumeError, Volumes};
use crate::cache::{Store, StoreError};
use crate::exec::ExecError;
use crate::exec::spec::{ContainerOptions, ContainerSpec, Network, SandboxSpec, Stdio};
use crate::image::source::{ImageError, ImageRef, LoadedImage, load_image};
use crate::layer::view::MergedView;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `rbuild run` was asked.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The stored image (name, or id / id prefix).
    pub image: String,
    /// Arguments after the image (replace CMD).
    pub args: Vec<String>,
    /// `--entrypoint`.
    pub entrypoint: EntrypointFlag,
    /// `--env-file` entries then `-e` entries, in order.
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `--network`.
    pub network: Network,
    /// `--hostname` (default: the start of the container's id).
    pub hostname: Option<String>,
    /// `--read-only`.
    pub read_only: bool,
    /// `--rm`: anonymous volumes are removed too.
    pub rm: bool,
    /// `--name`: unique among the store's running containers.
    pub name: Option<String>,
    /// `-v` and `--mount`.
    pub mounts: Vec<MountSpec>,
    /// `-i`.
    pub interactive: bool,
    /// `-t`.
    pub tty: bool,
    /// `--init`.
    pub init: bool,
    /// `--stop-signal` (default: the image's STOPSIGNAL, else SIGTERM).
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds (default 10).
    pub stop_timeout: Option<u64>,
}

/// Errors before the container's command runs (rbuild exits 125).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The image.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The command.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The user.
    #[error(transparent)]
    User(#[from] crate::ops::users::UserError),
    /// The environment.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// Mounts.
    #[error(transparent)]
    Mounts(#[from] MountsError),
    /// A foreign architecture without an emulator.
    #[error(transparent)]
    Emulate(#[from] crate::exec::emulate::EmulateError),
    /// Volumes.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sandbox.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The default network (RUN's) cannot be set up.
    #[error("the container's default network is RUN's: {0} (rbuild run takes --network none|host)")]
    Network(crate::exec::network::NetworkError),
    /// A bad flag value.
    #[error("{0}")]
    Invalid(String),
    /// Filesystem failure.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> RunError + 'a {
    move |source| RunError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The image `name` names: a stored name, or an image id (`sha256:…` or a
/// prefix of its hex digits) of a stored name.
fn load(store: &Store, name: &str) -> Result<LoadedImage, RunError> {
    let by_name = ImageRef::parse(name).map(|r| load_image(store, &r));
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    let id_like = hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    match by_name {
        Ok(Ok(img)) => return Ok(img),
        Ok(Err(e)) if !id_like => return Err(e.into()),
        Err(e) if !id_like => return Err(e.into()),
        _ => {}
    }
    let images = store.images();
    let found = images
        .iter()
        .find(|(_, e)| e.config.hex().starts_with(&hex.to_ascii_lowercase()));
    match found {
        Some((key, _)) => Ok(load_image(store, &ImageRef::parse(key)?)?),
        None => Err(RunError::Image(ImageError::NotFound(name.to_string()))),
    }
}

/// Docker's rule for container names.
fn valid_name(n: &str) -> bool {
    let n = n.strip_prefix('/').unwrap_or(n);
    let mut c = n.chars();
    n.len() >= 2
        && c.next().is_some_and(|x| x.is_ascii_alphanumeric())
        && c.all(|x| x.is_ascii_alphanumeric() || "_.-".contains(x))
}

/// `--name`: a lock held while the container runs.
fn claim_name(store: &Store, name: &str) -> Result<std::fs::File, RunError> {
    if !valid_name(name) {
        return Err(RunError::Invalid(format!(
            "invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    let dir = store.root().join("containers");
    std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
    let p = dir.join(format!("{}.lock", name.trim_start_matches('/')));
    let f = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(io("opening", &p))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|_| {
        RunError::Invalid(format!(
            "Conflict. The container name \"/{name}\" is already in use by a running container"
        ))
    })?;
    Ok(f)
}

/// Run the container; its exit code (128+N when signal N ended it). The
/// signals rbuild forwards are blocked in the calling thread from here on:
/// they are the container's (see [`signals`]); call
/// [`signals::block`] before starting any thread so that none takes them.
pub fn run(store: &Store, req: &RunRequest) -> Result<i32, RunError> {
    signals::block();
    let _name_lock = req
        .name
        .as_deref()
        .map(|n| claim_name(store, n))
        .transpose()?;
    let image = load(store, &req.image)?;
    let cfg = &image.state.config.config;
    let layers: Vec<PathBuf> = image
        .state
        .layers
        .iter()
        .map(|l| store.snapshot_path(&l.diff_id))
        .collect();
    let view = MergedView::from_bottom_up(&layers);
    let argv = super::entrypoint::combine(
        cfg.entrypoint.as_deref(),
        cfg.cmd.as_deref(),
        &req.entrypoint,
        &req.args,
    )?;
    let user = req.user.clone().unwrap_or_else(|| cfg.user.clone());
    let who = crate::ops::users::exec_user(&view, &user)?;
    let cwd = match &req.workdir {
        Some(w) if !w.starts_with('/') => {
            return Err(RunError::Invalid(format!(
                "the working directory '{w}' is invalid, it needs to be an absolute path"
            )));
        }
        Some(w) => w.clone(),
        None if cfg.working_dir.is_empty() => "/".into(),
        None => cfg.working_dir.clone(),
    };
    let stop_name = req
        .stop_signal
        .clone()
        .unwrap_or_else(|| cfg.stop_signal.clone());
    let stop_signal = if stop_name.is_empty() {
        libc::SIGTERM
    } else {
        signals::parse_signal(&stop_name).map_err(|e| RunError::Invalid(e.to_string()))?
    };
    if req.tty && req.interactive && !tty::is_tty(0) {
        return Err(RunError::Invalid("the input device is not a TTY".into()));
    }
    let id = super::volumes::random_id();
    let hostname = req.hostname.clone().unwrap_or_else(|| id[..12].to_string());
    let home = crate::ops::users::home_dir(&view, who.uid);
    let env = environment(&image.state.config.env_pairs(), req, &hostname, &home)?;
    let volumes = Volumes::new(store.root());
    let image_volumes: Vec<String> = cfg.volumes.keys().cloned().collect();
    let (extra, held) = super::mounts::prepare(&volumes, &view, &req.mounts, &image_volumes)?;
    let tmp = store.temp_dir("run")?;
    let dir = tmp.path().to_path_buf();
    let result = (|| {
        let copy_rootfs = prepare_dirs(&dir, &view, store.root(), &hostname)?;
        let emulator = {
            let c = &image.state.config;
            crate::exec::emulate::emulator_for(&c.os, &c.architecture, &c.variant)?
        };
        let spec = ContainerSpec {
            base: SandboxSpec {
                emulator,
                lowerdirs: dedup(view.layers.clone()),
                empty_lower: dir.join("empty"),
                upper: dir.join("upper"),
                work: dir.join("work"),
                rootfs: dir.join("rootfs"),
                hosts_file: dir.join("hosts"),
                resolv_conf: resolv_conf(req.network, &dir)?,
                sync_fd: None,
                argv: argv.clone(),
                env: env.to_strings(),
                cwd: cwd.clone(),
                uid: who.uid,
                gid: who.gid,
                groups: who.groups.clone(),
                hostname: hostname.clone(),
                network: req.network,
                mounts: extra.clone(),
                copy_rootfs,
            },
            options: ContainerOptions {
                stdio: if req.tty { Stdio::Tty } else { Stdio::Inherit },
                readonly_root: req.read_only,
                init: req.init,
                forward_signals: true,
                discard_upper: true,
            },
        };
        start(req, &spec, stop_signal)
    })();
    drop(held.volumes);
    if req.rm {
        for name in &held.anonymous {
            let _ = volumes.remove(name);
        }
    }
    let _ = crate::cache::remove_tree(&dir);
    drop(tmp);
    result
}

/// The container's environment: the image's, then the flags', then what
/// Docker adds when missing.
fn environment(
    image: &[(String, String)],
    req: &RunRequest,
    hostname: &str,
    home: &str,
) -> Result<EnvList, RunError> {
    let mut env = EnvList::default();
    for (k, v) in image {
        env.set(k, v);
    }
    for e in &req.env {
        env.apply(e, &|k| std::env::var(k).ok())?;
    }
    let mut defaults = vec![
        ("PATH", crate::image::config::DEFAULT_PATH),
        ("HOSTNAME", hostname),
        ("HOME", home),
    ];
    if req.tty {
        defaults.push(("TERM", "xterm"));
    }
    for (k, v) in defaults {
        if !env.has(k) {
            env.set(k, v);
        }
    }
    Ok(env)
}

/// Start the container with its streams and signal forwarding; wait for it.
fn start(
    req: &RunRequest,
    spec: &ContainerSpec,
    stop_signal: libc::c_int,
) -> Result<i32, RunError> {
    use std::process::Stdio as S;
    let stdin = if req.interactive && !req.tty {
        S::inherit()
    } else {
        S::null()
    };
    let mut container = crate::exec::attach::spawn(spec, stdin, S::inherit(), S::inherit())
        .map_err(|e| match e {
            ExecError::Network(n) => RunError::Network(n),
            other => RunError::Exec(other),
        })?;
    let target = Target::open(container.pid())
        .map_err(io("opening a pidfd for", Path::new("the sandbox")))?;
    let (mut resize, mut raw, mut output) = (None, None, None);
    if req.tty {
        let master = match container.terminal() {
            Ok(m) => m,
            // The sandbox failed first and said why: its exit code.
            Err(_) => return Ok(container.wait()?),
        };
        let size_from = tty::size_source();
        if let Some(from) = size_from {
            tty::copy_winsize(from, master.as_raw_fd());
        }
        if req.interactive {
            raw = tty::RawMode::enter(0);
        }
        // The forwarder resizes through a descriptor of its own, open until
        // rbuild exits (the pump closes `master` when the output ends).
        let keep = master
            .try_clone()
            .map_err(io("duplicating", Path::new("the terminal")))?;
        if let Some(from) = size_from {
            resize = Some((from, std::os::fd::IntoRawFd::into_raw_fd(keep)));
        }
        output = Some(
            tty::pump(master, req.interactive).map_err(io("reading", Path::new("the terminal")))?,
        );
        container.terminal_ready();
    }
    signals::forward(
        target,
        Policy {
            stop_signal,
            stop_timeout: Duration::from_secs(req.stop_timeout.unwrap_or(10)),
            resize,
        },
    );
    let code = container.wait()?;
    if let Some(o) = output {
        let _ = o.join();
    }
    drop(raw);
    Ok(code)
}

fn dedup(layers: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for l in layers {
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

/// The run's directories and files; whether the copy snapshotter is used
/// (the image's files copied into the root when overlayfs cannot be).
fn prepare_dirs(
    dir: &Path,
    view: &MergedView,
    store_root: &Path,
    hostname: &str,
) -> Result<bool, RunError> {
    for d in ["upper", "work", "rootfs", "empty"] {
        let p = dir.join(d);
        std::fs::create_dir(&p).map_err(io("creating", &p))?;
    }
    let hosts = dir.join("hosts");
    std::fs::write(
        &hosts,
        format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
    )
    .map_err(io("writing", &hosts))?;
    let copy = crate::exec::copydiff::overlay_usable(store_root).is_err();
    if copy {
        let root = dir.join("rootfs");
        crate::exec::copydiff::populate(view, &root)
            .map_err(io("copying the image into", &root))?;
    }
    Ok(copy)
}

/// /etc/resolv.conf: the host's with the host's network (and none), else
/// one naming slirp4netns's DNS forwarder.
fn resolv_conf(network: Network, dir: &Path) -> Result<Option<PathBuf>, RunError> {
    let host = Path::new("/etc/resolv.conf");
    if network != Network::Slirp {
        return Ok(host.exists().then(|| host.to_path_buf()));
    }
    let content =
        crate::exec::network::resolv_conf(&std::fs::read_to_string(host).unwrap_or_default());
    let p = dir.join("resolv.conf");
    std::fs::write(&p, content).map_err(io("writing", &p))?;
    Ok(Some(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RunRequest {
        RunRequest {
            image: "x".into(),
            args: Vec::new(),
            entrypoint: EntrypointFlag::Image,
            env: Vec::new(),
            workdir: None,
            user: None,
            network: Network::None,
            hostname: None,
            read_only: false,
            rm: true,
            name: None,
            mounts: Vec::new(),
            interactive: false,
            tty: false,
            init: false,
            stop_signal: None,
            stop_timeout: None,
        }
    }

    #[test]
    fn docker_adds_path_hostname_home_and_term_when_missing() {
        let image = vec![("A".to_string(), "1".to_string())];
        let env = environment(&image, &request(), "h0st", "/root").unwrap();
        assert_eq!(
            env.to_strings(),
            [
                "A=1",
                &format!("PATH={}", crate::image::config::DEFAULT_PATH),
                "HOSTNAME=h0st",
                "HOME=/root"
            ]
        );
        let req = RunRequest {
            tty: true,
            env: vec!["HOME=/x".into(), "A=2".into(), "PATH=/bin".into()],
            ..request()
        };
        let env = environment(&image, &req, "h", "/root").unwrap();
        assert_eq!(
            env.to_strings(),
            ["A=2", "HOME=/x", "PATH=/bin", "HOSTNAME=h", "TERM=xterm"]
        );
    }

    #[test]
    fn container_names() {
        for ok in ["web", "a1", "my_app.v2-x", "/web"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "a", "-x", "has space", "a/b", "ü1"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
