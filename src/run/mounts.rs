//! A container's mounts: `-v`/`--mount` and the image's VOLUMEs (each gets
//! an anonymous volume unless a mount of the user covers that path), as
//! sandbox mounts, parents before children. Targets are container paths:
//! the sandbox resolves them inside the root filesystem (links re-rooted,
//! `..` clamped), never through the host.

use super::mount_spec::{MountSpec, Source};
use super::volumes::{InUse, VolumeError, Volumes};
use crate::exec::spec::ExtraMount;
use crate::layer::view::{MergedView, clean_components};

/// What the container's mounts hold until it ends.
#[derive(Default)]
pub struct Held {
    /// Volumes in use (locked).
    pub volumes: Vec<InUse>,
    /// Anonymous volumes made for this container (removed with `--rm`).
    pub anonymous: Vec<String>,
}

/// Errors preparing mounts.
#[derive(Debug, thiserror::Error)]
pub enum MountsError {
    /// Volume store failure.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// Two mounts on one path.
    #[error("duplicate mount point: {0}")]
    Duplicate(String),
    /// A bind source is missing (`--mount type=bind`).
    #[error("invalid mount config for type \"bind\": bind source path does not exist: {0}")]
    NoSource(String),
    /// A bind source could not be created (`-v`).
    #[error("creating the bind source {path}: {source}")]
    Create {
        /// The host path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

fn normal(target: &str) -> String {
    format!("/{}", clean_components(target).join("/"))
}

/// The mounts of a container of the image seen as `view`, with
/// `image_volumes` its VOLUME paths.
pub fn prepare(
    volumes: &Volumes,
    view: &MergedView,
    specs: &[MountSpec],
    image_volumes: &[String],
) -> Result<(Vec<ExtraMount>, Held), MountsError> {
    let mut all: Vec<MountSpec> = Vec::new();
    for s in specs {
        let t = normal(&s.target);
        if all.iter().any(|m| m.target == t) {
            return Err(MountsError::Duplicate(t));
        }
        all.push(MountSpec {
            target: t,
            ..s.clone()
        });
    }
    for v in image_volumes {
        let t = normal(v);
        if t != "/" && !all.iter().any(|m| m.target == t) {
            all.push(MountSpec {
                source: Source::Volume(None),
                target: t,
                readonly: false,
                nocopy: false,
            });
        }
    }
    // Parents first, so a mount inside another lands on top of it.
    all.sort_by_key(|m| clean_components(&m.target).len());
    let mut held = Held::default();
    let mut out = Vec::new();
    for m in all {
        let target = m.target.clone();
        match m.source {
            Source::Bind { path, create } => {
                if !path.exists() {
                    if !create {
                        return Err(MountsError::NoSource(path.display().to_string()));
                    }
                    std::fs::create_dir_all(&path).map_err(|source| MountsError::Create {
                        path: path.display().to_string(),
                        source,
                    })?;
                }
                out.push(ExtraMount::Bind {
                    source: path,
                    beneath: None,
                    target,
                    readonly: m.readonly,
                });
            }
            Source::Volume(name) => {
                let anonymous = name.is_none();
                let name = name.unwrap_or_else(super::volumes::random_id);
                let used = volumes.acquire(&name, anonymous, view, &target, m.nocopy)?;
                if anonymous {
                    held.anonymous.push(name);
                }
                out.push(ExtraMount::Bind {
                    source: used.data.clone(),
                    beneath: None,
                    target,
                    readonly: m.readonly,
                });
                held.volumes.push(used);
            }
            Source::Tmpfs { size } => out.push(ExtraMount::Tmpfs { target, size }),
        }
    }
    Ok((out, held))
}
