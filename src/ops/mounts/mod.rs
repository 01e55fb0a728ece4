//! `RUN --mount`s as sandbox mounts (BuildKit's `convert_runmount.go`):
//! bind (context or stage), cache, tmpfs; secrets have their own module
//! (`convert_secrets.go`).

pub mod cache_mount;
pub mod context_mount;
pub mod secrets;
pub mod spec;
pub mod targets;

use crate::exec::spec::ExtraMount;
use crate::ops::op::{OpEnv, OpError, Source};
pub use secrets::SecretSource;
pub use spec::{Mount, MountType, NetworkMode, Sharing};
use std::path::Path;

/// What must live until a RUN step ends: cache locks, secret files.
#[derive(Default)]
pub struct MountGuards {
    /// Cache locks held.
    pub locks: Vec<std::fs::File>,
    /// The step's secret files (removed when dropped).
    pub secrets: Option<secrets::SecretDir>,
    /// Mount targets (created in the rootfs if missing; removed from the layer).
    pub targets: Vec<String>,
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OpError {
    let path = path.to_path_buf();
    move |source| OpError::Io { what, path, source }
}

/// A bind mount (`type=bind`) from the context or a stage; None when
/// there is nothing to mount (an empty selection, scratch).
fn bind_mount(
    env: &OpEnv<'_>,
    m: &Mount,
    src: Option<&Source>,
    dir: &Path,
    n: usize,
    target: &str,
) -> Result<Option<ExtraMount>, OpError> {
    let sub = m.source.clone().unwrap_or_else(|| "/".into());
    let Some(s) = src else {
        let ctx = env
            .context
            .ok_or_else(|| OpError::Internal("no build context".into()))?;
        let sel = ctx.select(&sub)?;
        let Some(first) = sel.first() else {
            return Ok(None);
        };
        // What the context sends (ignore rules applied), laid out for the
        // step; a rw mount gets copies, whose writes are discarded with the step.
        let at = dir.join(format!("bind-{n}"));
        let host = context_mount::materialize(first, &at, !m.readonly)
            .map_err(io_err("laying out the context for", &at))?;
        return Ok(Some(ExtraMount::Bind {
            beneath: None,
            source: host,
            target: target.to_string(),
            readonly: m.readonly,
        }));
    };
    if *s == Source::Scratch {
        return Ok(None);
    }
    let r = env.source(s)?;
    let mp = dir.join(format!("layers-{n}"));
    std::fs::create_dir_all(&mp).map_err(io_err("creating", &mp))?;
    Ok(Some(ExtraMount::Layers {
        lowerdirs: r.view.layers.clone(),
        mountpoint: mp,
        subpath: sub,
        target: target.to_string(),
        // Writes to a rw bind are discarded with the step.
        writable: (!m.readonly).then(|| dir.join(format!("layers-{n}-rw"))),
    }))
}

/// Translate `RUN --mount`s (targets resolved) into sandbox mounts; secret
/// values given as `env=` are added to `vars`.
pub fn step_mounts(
    env: &OpEnv<'_>,
    mounts: &[(Mount, Option<Source>)],
    dir: &Path,
    vars: &mut Vec<(String, String)>,
    guards: &mut MountGuards,
) -> Result<Vec<ExtraMount>, OpError> {
    let mut out = Vec::new();
    for (n, (m, src)) in mounts.iter().enumerate() {
        let target = m.target.clone().unwrap_or_default();
        match m.kind {
            MountType::Cache => {
                let private = dir.join(format!("private-cache-{n}"));
                out.push(cache_mount::mount(
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
            MountType::Bind => match bind_mount(env, m, src.as_ref(), dir, n, &target)? {
                Some(b) => out.push(b),
                None => continue,
            },
            MountType::Secret => {
                out.extend(secrets::secret_mount(env, m, &target, vars, guards)?);
                continue;
            }
            MountType::Ssh => {
                return Err(OpError::Unsupported(
                    "RUN --mount=type=ssh is not supported yet".into(),
                ));
            }
        }
        guards.targets.push(target);
    }
    Ok(out)
}
