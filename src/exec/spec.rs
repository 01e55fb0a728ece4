//! What the sandbox helper needs to run one RUN step.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Network of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Network {
    /// A new, empty network namespace (loopback only).
    None,
    /// The host's network namespace.
    Host,
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
}
