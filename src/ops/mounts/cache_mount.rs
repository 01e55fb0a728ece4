//! `RUN --mount=type=cache`: where a cache lives and how it starts.
//!
//! As in BuildKit, a cache is named by its `id` (the target by default) and
//! by what it starts from: a stage's (or image's) directory when `from=` is
//! given (`source=` choosing the directory, `/` by default), else an empty
//! directory with the `uid`, `gid` and `mode` asked for (which BuildKit
//! ignores when `source=` is set). So a cache seeded from a changed stage,
//! or asked for with another owner, is another cache. It is created once,
//! under a temporary name renamed into place, and then persists.

use super::Mount;
use super::context_mount::materialize;
use crate::digest::Digest;
use crate::ops::op::StageResult;
use std::path::{Path, PathBuf};

/// Errors preparing a cache mount.
#[derive(Debug, thiserror::Error)]
pub enum CacheMountError {
    /// The `source=` of `from=` does not exist there.
    #[error("cache mount from={from} source={path}: {err}")]
    Source {
        /// The stage or image.
        from: String,
        /// The path asked for.
        path: String,
        /// Why.
        err: String,
    },
    /// Filesystem work failed.
    #[error("{what} {}: {err}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
}

/// The name of a cache: its id and what it starts from.
pub fn cache_name(m: &Mount, target: &str, from: Option<&StageResult>) -> String {
    let id = m.id.clone().unwrap_or_else(|| target.to_string());
    let base = match (from, &m.source) {
        (Some(r), src) => format!("from:{}:{}", r.key, src.as_deref().unwrap_or("/")),
        (None, _) if m.uid.is_some() || m.gid.is_some() || m.mode.is_some() => format!(
            "mkdir:{:o}:{}:{}",
            m.mode.unwrap_or(0o755),
            m.uid.unwrap_or(0),
            m.gid.unwrap_or(0)
        ),
        (None, _) => String::new(),
    };
    if base.is_empty() {
        Digest::of(id.as_bytes()).hex()
    } else {
        Digest::of(format!("{id}\n{base}").as_bytes()).hex()
    }
}

fn io<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> CacheMountError + 'a {
    move |err| CacheMountError::Io {
        what,
        path: path.to_path_buf(),
        err,
    }
}

/// The cache's directory under `base`, created and seeded if new.
pub fn cache_dir(
    base: &Path,
    name: &str,
    m: &Mount,
    from: Option<&StageResult>,
) -> Result<PathBuf, CacheMountError> {
    let path = base.join(name);
    if path.is_dir() {
        return Ok(path);
    }
    std::fs::create_dir_all(base).map_err(io("creating", base))?;
    let tmp = tempfile::Builder::new()
        .prefix(".new-")
        .tempdir_in(base)
        .map_err(io("creating", base))?;
    let fresh = tmp.path().join("cache");
    match from {
        Some(r) => {
            let src = m.source.clone().unwrap_or_else(|| "/".into());
            let err = |e: String| CacheMountError::Source {
                from: m.from.clone().unwrap_or_default(),
                path: src.clone(),
                err: e,
            };
            let sel = crate::ops::view_select::select_in_view(&r.view, &src)
                .map_err(|e| err(e.to_string()))?;
            let first = sel.first().ok_or_else(|| err("not found".into()))?;
            if first.root.kind != crate::context::Kind::Dir {
                return Err(err("not a directory".into()));
            }
            materialize(first, &fresh, true).map_err(io("seeding", &fresh))?;
            if m.source.is_none() {
                apply_owner(&fresh, m, first.root.mode)
                    .map_err(io("setting the owner of", &fresh))?;
            }
        }
        None => {
            std::fs::create_dir(&fresh).map_err(io("creating", &fresh))?;
            apply_owner(&fresh, m, 0o755).map_err(io("setting the owner of", &fresh))?;
        }
    }
    // Another build may have made it meanwhile: theirs wins, ours goes.
    match std::fs::rename(&fresh, &path) {
        Ok(()) => Ok(path),
        Err(_) if path.is_dir() => Ok(path),
        Err(e) => Err(io("creating", &path)(e)),
    }
}

/// The `uid`, `gid` and `mode` of a mount on its new directory or file. A
/// chown that an unprivileged rbuild may not make (rootless) is skipped;
/// every other failure is an error.
pub fn apply_owner(path: &Path, m: &Mount, default_mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let (uid, gid) = (m.uid.unwrap_or(0), m.gid.unwrap_or(0));
    match std::os::unix::fs::chown(path, Some(uid), Some(gid)) {
        Ok(()) => {}
        Err(e)
            if e.kind() == std::io::ErrorKind::PermissionDenied
                && !rustix::process::geteuid().is_root() => {}
        Err(e) => return Err(e),
    }
    std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode(m.mode.unwrap_or(default_mode)),
    )
}

/// Make the directory `source` below the cache `cache` if it is missing
/// (inside the cache); the sandbox opens it beneath the cache when it
/// mounts it, so a link leading out fails there, as in BuildKit.
pub fn ensure_subdir(cache: &Path, source: &str) -> Result<(), CacheMountError> {
    let root = crate::fsroot::Root::open(cache).map_err(io("opening", cache))?;
    let escape = |err: std::io::Error| CacheMountError::Source {
        from: "the cache".into(),
        path: source.to_string(),
        err: if err.raw_os_error() == Some(libc::EXDEV) {
            "path escapes the cache mount".into()
        } else {
            err.to_string()
        },
    };
    match root.open_dir_beneath(source) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            root.mkdir_all(source, 0o755).map_err(escape)?;
            Ok(())
        }
        r => r.map(drop).map_err(escape),
    }
}

/// A `RUN --mount=type=cache`: its directory (created and seeded when new),
/// locked as `sharing=` asks, as a bind of the step.
pub fn mount(
    env: &crate::ops::op::OpEnv<'_>,
    m: &Mount,
    src: Option<&crate::ops::op::Source>,
    target: &str,
    private: &Path,
    locks: &mut Vec<std::fs::File>,
) -> Result<crate::exec::spec::ExtraMount, crate::ops::op::OpError> {
    use super::Sharing;
    use crate::ops::op::OpError;
    use crate::ops::op::Source;
    use rustix::fs::{FlockOperation, flock};
    let from = match src {
        Some(Source::Stage(i)) => Some((env.stages)(*i).ok_or(OpError::DependencyFailed)?),
        Some(Source::Image(name)) => Some((env.image)(name)?),
        _ => None,
    };
    let name = cache_name(m, target, from.as_ref());
    let base = env.store.root().join("cachemounts");
    let mut source = cache_dir(&base, &name, m, from.as_ref()).map_err(OpError::CacheMount)?;
    let lock_path = base.join(format!("{name}.lock"));
    let lock_err = |e: std::io::Error| OpError::Io {
        what: "locking",
        path: lock_path.clone(),
        source: e,
    };
    match m.sharing.unwrap_or(Sharing::Shared) {
        Sharing::Shared => {}
        Sharing::Locked => {
            let f = std::fs::File::create(&lock_path).map_err(lock_err)?;
            flock(&f, FlockOperation::LockExclusive).map_err(|e| lock_err(e.into()))?;
            locks.push(f);
        }
        Sharing::Private => {
            let f = std::fs::File::create(&lock_path).map_err(lock_err)?;
            if flock(&f, FlockOperation::NonBlockingLockExclusive).is_ok() {
                locks.push(f);
            } else {
                // In use by another build: a fresh, throw-away cache.
                std::fs::create_dir_all(private).map_err(|e| OpError::Io {
                    what: "creating",
                    path: private.to_path_buf(),
                    source: e,
                })?;
                source = private.to_path_buf();
            }
        }
    }
    // Without from=, source= names a directory of the cache (checked once
    // the lock is held; opened beneath the cache when mounted).
    let beneath = match (&from, &m.source) {
        (None, Some(sub)) => {
            ensure_subdir(&source, sub).map_err(OpError::CacheMount)?;
            Some(sub.clone())
        }
        _ => None,
    };
    Ok(crate::exec::spec::ExtraMount::Bind {
        source,
        beneath,
        target: target.to_string(),
        readonly: m.readonly,
    })
}
