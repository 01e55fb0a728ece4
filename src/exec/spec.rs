//! What the sandbox helper needs to run one RUN step.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Network of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Network {
    /// The default: a new network namespace with outbound access through
    /// slirp4netns (see [`super::network`]).
    Slirp,
    /// A new, empty network namespace (loopback only).
    None,
    /// The host's network namespace.
    Host,
}

/// An extra mount of a step (`RUN --mount`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ExtraMount {
    /// Bind a host directory or file (a cache, a context path, a secret).
    Bind {
        /// Host path.
        source: PathBuf,
        /// A directory below `source` to bind instead, opened beneath it
        /// when mounting (a link leading out of `source` fails).
        #[serde(default)]
        beneath: Option<String>,
        /// Container path.
        target: String,
        /// Mount read-only.
        readonly: bool,
    },
    /// Read-only overlay of another stage's layers, then bind `subpath` of it.
    Layers {
        /// Diff directories, topmost first.
        lowerdirs: Vec<PathBuf>,
        /// Where to assemble the overlay on the host.
        mountpoint: PathBuf,
        /// Path inside the stage.
        subpath: String,
        /// `rw`: a directory for the overlay's upper and work directories;
        /// the writes land there and are discarded with the step.
        writable: Option<PathBuf>,
        /// Container path.
        target: String,
    },
    /// An empty tmpfs.
    Tmpfs {
        /// Container path.
        target: String,
        /// Size limit in bytes (0: default).
        size: u64,
    },
}

/// One sandboxed process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Overlay lower directories, topmost first (may be empty).
    pub lowerdirs: Vec<PathBuf>,
    /// An empty directory used when there are no layers.
    pub empty_lower: PathBuf,
    /// Overlay upper directory (becomes the layer).
    pub upper: PathBuf,
    /// Overlay work directory.
    pub work: PathBuf,
    /// Where the root filesystem is assembled.
    pub rootfs: PathBuf,
    /// Content of /etc/hosts, written to `hosts_file`.
    pub hosts_file: PathBuf,
    /// File bound read-only at /etc/resolv.conf (none: leave the image's).
    pub resolv_conf: Option<PathBuf>,
    /// [`Network::Slirp`]: the descriptor on which the helper says its
    /// network namespace exists (set by [`super::run_sandboxed`]).
    pub sync_fd: Option<i32>,
    /// The command.
    pub argv: Vec<String>,
    /// `K=V` environment.
    pub env: Vec<String>,
    /// Working directory inside the container.
    pub cwd: String,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Hostname.
    pub hostname: String,
    /// Network mode.
    pub network: Network,
    /// `RUN --mount`s.
    pub mounts: Vec<ExtraMount>,
    /// The copy snapshotter: `rootfs` already holds a copy of the parent
    /// filesystem; bind it instead of mounting an overlay.
    pub copy_rootfs: bool,
    /// A foreign architecture's step: the QEMU user emulator that runs
    /// the command (see [`super::emulate`]).
    #[serde(default)]
    pub emulator: Option<Emulator>,
}

/// The emulator of a foreign architecture's step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Emulator {
    /// Host path of the static emulator, bound into the step's `/dev`.
    pub path: PathBuf,
    /// Its binfmt_misc registration inside the step (see [`super::binfmt`]).
    pub binfmt: Option<String>,
}

/// How the command's standard streams are set up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stdio {
    /// RUN steps: /dev/null as stdin, stdout and stderr as given.
    #[default]
    Null,
    /// `rbuild run`: the three streams the helper was given, as they are.
    Inherit,
    /// `rbuild run -t`: the streams are a terminal, made the controlling
    /// terminal of the command's session.
    Tty,
}

/// What `rbuild run` adds to a [`SandboxSpec`]. A RUN step sends a bare
/// `SandboxSpec`, which reads as every option at its default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerOptions {
    /// Standard streams.
    #[serde(default)]
    pub stdio: Stdio,
    /// Mount the root filesystem read-only once everything is mounted on it
    /// (`--read-only`).
    #[serde(default)]
    pub readonly_root: bool,
    /// A small init is PID 1: it reaps every orphan and forwards signals to
    /// the command (`--init`).
    #[serde(default)]
    pub init: bool,
    /// The helper forwards the signals it receives to the command's PID 1
    /// (RUN steps die with rbuild instead).
    #[serde(default)]
    pub forward_signals: bool,
    /// The upper directory is thrown away afterwards: overlayfs need not
    /// sync it (`volatile`).
    #[serde(default)]
    pub discard_upper: bool,
}

/// One sandboxed process with its [`ContainerOptions`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// The sandbox, as a RUN step has it.
    #[serde(flatten)]
    pub base: SandboxSpec,
    /// The options of `rbuild run`.
    #[serde(flatten)]
    pub options: ContainerOptions,
}
