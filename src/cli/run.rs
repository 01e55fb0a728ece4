//! `rbuild run`: run a stored image as a container (see `rbuild::run`).

use anyhow::Result;
use clap::Args;
use rbuild::cache::{LockMode, Store, default_root};
use rbuild::exec::spec::Network;
use rbuild::frontend::platform::Platform;
use rbuild::image::resolver::Resolver;
use rbuild::image::source::ImageRef;
use rbuild::registry::RegistryOptions;
use rbuild::run::entrypoint::EntrypointFlag;
use rbuild::run::mount_spec::{parse_mount_flag, parse_volume_flag};
use rbuild::run::{RunRequest, run as run_container};
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `rbuild run`.
#[derive(Args, Debug)]
#[command(
    about = "Run a stored image as a container",
    long_about = "Run a stored image as a container, as `docker run --rm` would: the \
same sandbox as RUN steps, on the image's layers with a writable layer of its own. \
That writable layer is thrown away when the container ends; only volumes (-v, --mount) \
keep data. The exit code is the command's; 125 when rbuild cannot run the container, \
126 when the command cannot be invoked, 127 when it is not found. The default network \
is RUN's: a network namespace of its own with outbound access through slirp4netns \
(Docker's default is a bridge).",
    disable_help_flag = true
)]
pub struct RunArgs {
    /// Print help (`-h` is --hostname, as in docker run).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Remove the container's anonymous volumes when it ends (its writable layer always goes).
    #[arg(long)]
    pub rm: bool,
    /// Name of the container (unique among running containers).
    #[arg(long)]
    pub name: Option<String>,
    /// Set an environment variable (`K=V`, or `K` to take it from this environment).
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Read environment variables from a file (`K=V` lines).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<std::path::PathBuf>,
    /// Bind a host path (`/HOST:/CTR[:ro|rw]`, created if missing), mount a named
    /// volume (`NAME:/CTR`) or a new anonymous volume (`/CTR`).
    #[arg(short = 'v', long = "volume", value_name = "SPEC")]
    pub volume: Vec<String>,
    /// A mount: `type=bind|volume|tmpfs,source=...,target=...[,readonly]`.
    #[arg(long = "mount", value_name = "SPEC")]
    pub mount: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// User (`NAME|UID[:GROUP|GID]`).
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Replace the image's ENTRYPOINT (and drop its CMD); `""` for none.
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,
    /// Network: `default` (RUN's: slirp4netns, also `bridge`), `none` or `host`.
    #[arg(long, default_value = "default")]
    pub network: String,
    /// Hostname (default: the first 12 digits of the container's id).
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Mount the container's root filesystem read-only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Keep standard input open and pass it to the container.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give the container a terminal (with -i: raw mode, window size followed).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Run an init as PID 1 that reaps orphans and passes signals on.
    #[arg(long)]
    pub init: bool,
    /// Signal that SIGTERM to rbuild becomes (default: the image's STOPSIGNAL).
    #[arg(long = "stop-signal", value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Pull the image: `missing` (not in the store), `always` or `never`.
    #[arg(long, default_value = "missing", value_name = "WHEN")]
    pub pull: String,
    /// Seconds after the stop signal before the container is killed (default 10).
    #[arg(long = "stop-timeout", value_name = "SECONDS")]
    pub stop_timeout: Option<u64>,
    /// The stored image (name or id).
    pub image: String,
    /// The command and its arguments (replace the image's CMD).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `--pull`: make sure the image is in the store (a registry reference
/// only; an image id or OCI layout is never pulled). RBUILD_OFFLINE and
/// registries.toml apply as for FROM.
fn pull(store: &Arc<Store>, image: &str, when: &str) -> Result<(), String> {
    let always = match when {
        "missing" => false,
        "always" => true,
        "never" => return Ok(()),
        other => {
            return Err(format!(
                "--pull {other:?}: expected missing, always or never"
            ));
        }
    };
    let Ok(ImageRef::Named(_)) = ImageRef::parse(image) else {
        return Ok(());
    };
    if !always
        && rbuild::image::source::load_image(
            store,
            &ImageRef::parse(image).map_err(|e| e.to_string())?,
        )
        .is_ok()
    {
        return Ok(());
    }
    let hex = image.strip_prefix("sha256:").unwrap_or(image);
    let id_like = hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    if id_like
        && store
            .images()
            .values()
            .any(|e| e.config.hex().starts_with(hex))
    {
        return Ok(());
    }
    let registry = RegistryOptions::load().map_err(|e| e.to_string())?;
    let resolver = Resolver::new(store.clone(), registry, always, Platform::host());
    resolver.load(image).map_err(|e| e.to_string())?;
    if let Some(note) = resolver.describe(image).filter(|n| n.contains("pulled")) {
        eprintln!("{note}");
    }
    Ok(())
}

fn request(a: RunArgs) -> Result<RunRequest, String> {
    let network = match a.network.as_str() {
        "default" | "bridge" | "slirp4netns" => Network::Slirp,
        "none" => Network::None,
        "host" => Network::Host,
        other => {
            return Err(format!(
                "--network {other:?}: expected default, none or host"
            ));
        }
    };
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(rbuild::run::env::read_env_file(f).map_err(|e| e.to_string())?);
    }
    env.extend(a.env);
    let mut mounts = Vec::new();
    for v in &a.volume {
        mounts.push(parse_volume_flag(v).map_err(|e| e.to_string())?);
    }
    for m in &a.mount {
        mounts.push(parse_mount_flag(m).map_err(|e| e.to_string())?);
    }
    Ok(RunRequest {
        image: a.image,
        args: a.args,
        entrypoint: match a.entrypoint {
            None => EntrypointFlag::Image,
            Some(e) if e.is_empty() => EntrypointFlag::Empty,
            Some(e) => EntrypointFlag::Command(e),
        },
        env,
        workdir: a.workdir,
        user: a.user,
        network,
        hostname: a.hostname,
        read_only: a.read_only,
        rm: a.rm,
        name: a.name,
        mounts,
        interactive: a.interactive,
        tty: a.tty,
        init: a.init,
        stop_signal: a.stop_signal,
        stop_timeout: a.stop_timeout,
    })
}

/// Run the container; rbuild's exit code is the container's (125 when it
/// could not be run).
pub fn run(a: RunArgs) -> Result<ExitCode> {
    // Before any thread exists: signals are for the container.
    rbuild::run::signals::block();
    let fail = |msg: String| {
        eprintln!("rbuild run: {msg}");
        Ok(ExitCode::from(125))
    };
    let when = a.pull.clone();
    let req = match request(a) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let root = default_root();
    let store = match Store::open(&root, LockMode::Shared) {
        Ok(s) => Arc::new(s),
        Err(e) => return fail(format!("opening store {}: {e}", root.display())),
    };
    if let Err(e) = pull(&store, &req.image, &when) {
        return fail(e);
    }
    match run_container(&store, &req) {
        Ok(code) => Ok(ExitCode::from(code.clamp(0, 255) as u8)),
        Err(e) => fail(e.to_string()),
    }
}
