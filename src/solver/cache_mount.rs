//! `RUN --mount=type=cache`: where a cache lives and how it starts.
//!
//! As in BuildKit, a cache is named by its `id` (the target by default) and
//! by what it starts from: a stage's (or image's) directory when `from=` is
//! given (`source=` choosing the directory, `/` by default), else an empty
//! directory with the `uid`, `gid` and `mode` asked for (which BuildKit
//! ignores when `source=` is set). So a cache seeded from a changed stage,
//! or asked for with another owner, is another cache. It is created once,
//! under a temporary name renamed into place, and then persists.

use super::StageResult;
use super::context_mount::materialize;
use crate::digest::Digest;
use crate::frontend::ast::Mount;
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
                apply_owner(&fresh, m, first.root.mode);
            }
        }
        None => {
            std::fs::create_dir(&fresh).map_err(io("creating", &fresh))?;
            apply_owner(&fresh, m, 0o755);
        }
    }
    // Another build may have made it meanwhile: theirs wins, ours goes.
    match std::fs::rename(&fresh, &path) {
        Ok(()) => Ok(path),
        Err(_) if path.is_dir() => Ok(path),
        Err(e) => Err(io("creating", &path)(e)),
    }
}

/// The `uid`, `gid` and `mode` of a mount on its new directory or file.
pub fn apply_owner(path: &Path, m: &Mount, default_mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::os::unix::fs::chown(path, Some(m.uid.unwrap_or(0)), Some(m.gid.unwrap_or(0)));
    let _ = std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode(m.mode.unwrap_or(default_mode)),
    );
}

/// The directory `source` below the cache `cache` (created if missing):
/// a link there leading out of the cache is an error, as in BuildKit.
pub fn subdir(cache: &Path, source: &str) -> Result<PathBuf, CacheMountError> {
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
    let fd = match root.open_dir_beneath(source) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Created inside the cache (links re-rooted), then checked again.
            root.mkdir_all(source, 0o755).map_err(escape)?;
            root.open_dir_beneath(source).map_err(escape)?
        }
        r => r.map_err(escape)?,
    };
    // The kernel's name for it holds no link for the sandbox to follow.
    std::fs::read_link(crate::fsroot::fd_path(&fd)).map_err(io("resolving", cache))
}
