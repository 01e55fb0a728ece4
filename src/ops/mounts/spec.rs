//! What a `RUN --mount` and `RUN --network` say, as the frontend parses
//! them and the RUN op uses them.

use serde::Serialize;

/// `RUN --mount` type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// Bind a path from the context or a stage.
    Bind,
    /// A persistent cache directory.
    Cache,
    /// An empty tmpfs.
    Tmpfs,
    /// A secret file or env var.
    Secret,
    /// An SSH agent socket.
    Ssh,
}

/// Cache mount sharing mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// Concurrent writers share it.
    Shared,
    /// A concurrent writer gets a fresh one.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// One `RUN --mount=...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// The type.
    #[serde(rename = "type")]
    pub kind: MountType,
    /// `from=` stage or image.
    pub from: Option<String>,
    /// `source=`.
    pub source: Option<String>,
    /// `target=`.
    pub target: Option<String>,
    /// Read-only (defaults: bind, secret, ssh read-only; cache, tmpfs writable).
    pub readonly: bool,
    /// `size=` for tmpfs, in bytes.
    pub size: Option<u64>,
    /// `id=` of a cache, secret or ssh mount.
    pub id: Option<String>,
    /// `sharing=` of a cache mount.
    pub sharing: Option<Sharing>,
    /// `required` of a secret or ssh mount.
    pub required: bool,
    /// `env=` of a secret mount.
    pub env: Option<String>,
    /// `mode=` (octal).
    pub mode: Option<u32>,
    /// `uid=`.
    pub uid: Option<u32>,
    /// `gid=`.
    pub gid: Option<u32>,
}

/// `RUN --network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// The builder's default (network access).
    Default,
    /// No network.
    None,
    /// The host's network.
    Host,
}
