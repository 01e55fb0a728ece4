//! Secret files for `RUN --mount=type=secret`. Each step's secrets live in
//! a private directory with a random name (`rbuild-secrets-<pid>-XXXXXX`,
//! mode 0700) on a tmpfs, so they never reach a disk: `/dev/shm` when it is
//! a tmpfs, else `$XDG_RUNTIME_DIR`, else (last resort) the store's
//! temporary directory, which only its owner can enter. Files are created
//! with `O_EXCL|O_NOFOLLOW`, so nothing planted in advance can redirect the
//! write, and their owner and mode are set through the descriptor. The
//! directory is removed when the step ends; what a killed build left is
//! removed by the next build ([`clean_stale`]).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Name prefix of the secret directories (followed by `<pid>-`).
pub const PREFIX: &str = "rbuild-secrets-";

/// Filesystem magic of tmpfs (`statfs.f_type`).
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// A step's private secret directory; removed when dropped.
pub struct SecretDir {
    dir: tempfile::TempDir,
    count: usize,
}

/// The memory-backed directories secrets may live in, in order of choice.
fn memory_bases() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let shm = Path::new("/dev/shm");
    if is_tmpfs(shm) {
        out.push(shm.to_path_buf());
    }
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
        let p = PathBuf::from(x);
        let ours = std::fs::metadata(&p)
            .is_ok_and(|m| m.is_dir() && m.uid() == rustix::process::geteuid().as_raw());
        if p.is_absolute() && ours {
            out.push(p);
        }
    }
    out
}

// `f_type`'s width differs between architectures.
#[allow(clippy::unnecessary_cast)]
fn is_tmpfs(p: &Path) -> bool {
    rustix::fs::statfs(p).is_ok_and(|s| s.f_type as i64 == TMPFS_MAGIC)
}

impl SecretDir {
    /// A new private directory, in memory when possible, else in
    /// `store_tmp` (the store's temporary directory).
    pub fn create(store_tmp: &Path) -> std::io::Result<SecretDir> {
        let pid = std::process::id();
        let mut builder = tempfile::Builder::new();
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let dir = match memory_bases().first() {
            Some(base) => builder
                .prefix(&format!("{PREFIX}{pid}-"))
                .tempdir_in(base)?,
            // The store's own temp naming (`<pid>-…`): its cleanup removes
            // what a killed build left there.
            None => builder
                .prefix(&format!("{pid}-secrets-"))
                .tempdir_in(store_tmp)?,
        };
        Ok(SecretDir { dir, count: 0 })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write one secret as a new file owned by `uid:gid` with `mode`;
    /// returns its path.
    pub fn write(
        &mut self,
        value: &[u8],
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> std::io::Result<PathBuf> {
        self.count += 1;
        let path = self.dir.path().join(format!("secret-{}", self.count));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)?;
        f.write_all(value)?;
        if rustix::process::geteuid().is_root() {
            rustix::fs::fchown(
                &f,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )?;
        }
        rustix::fs::fchmod(&f, rustix::fs::Mode::from_raw_mode(mode & 0o7777))?;
        Ok(path)
    }
}

/// Remove secret directories that builds killed before their cleanup left
/// behind: ours (same owner) whose process is gone.
pub fn clean_stale() {
    let me = rustix::process::geteuid().as_raw();
    for base in memory_bases() {
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = stale_pid(&name) else {
                continue;
            };
            let p = e.path();
            let ours = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir() && m.uid() == me);
            if ours && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(&p);
            }
        }
    }
}

/// The PID in a secret directory's name (`rbuild-secrets-<pid>-XXXXXX`).
fn stale_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, random) = rest.split_once('-')?;
    if random.is_empty() {
        return None;
    }
    pid.parse().ok()
}

/// Where a `--secret` comes from.
#[derive(Debug, Clone)]
pub enum SecretSource {
    /// A file (`src=`).
    File(PathBuf),
    /// An environment variable of rbuild (`env=`).
    Env(String),
    /// A value held in memory (a build of `rbuild serve`: sent with the
    /// request, never written anywhere but the step's secret directory).
    Memory(SecretValue),
}

/// A secret's value; its Debug form does not show it.
#[derive(Clone)]
pub struct SecretValue(pub std::sync::Arc<Vec<u8>>);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<secret, {} bytes>", self.0.len())
    }
}

impl SecretSource {
    fn read(&self) -> Option<Vec<u8>> {
        match self {
            SecretSource::File(p) => std::fs::read(p).ok(),
            SecretSource::Env(v) => std::env::var_os(v).map(|s| s.into_encoded_bytes()),
            SecretSource::Memory(v) => Some(v.0.to_vec()),
        }
    }
}

/// A `RUN --mount=type=secret`: the value as a file in the step's private
/// secret directory, bound read-only at the target (`/run/secrets/ID` by
/// default), and/or as the variable `env=`. None when an optional secret
/// is not given.
pub fn secret_mount(
    env: &crate::ops::op::OpEnv<'_>,
    m: &super::Mount,
    target: &str,
    vars: &mut Vec<(String, String)>,
    guards: &mut super::MountGuards,
) -> Result<Option<crate::exec::spec::ExtraMount>, crate::ops::op::OpError> {
    use crate::ops::op::OpError;
    let id = m.id.clone().unwrap_or_else(|| {
        Path::new(target)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let value = env
        .secrets
        .iter()
        .find(|(i, _)| *i == id)
        .and_then(|(_, s)| s.read());
    let Some(value) = value else {
        if m.required {
            return Err(OpError::Invalid(format!(
                "secret {id}: not found (provide it with --secret id={id},src=FILE)"
            )));
        }
        return Ok(None);
    };
    if let Some(var) = &m.env {
        vars.push((var.clone(), String::from_utf8_lossy(&value).into_owned()));
        if m.target.is_none() {
            return Ok(None);
        }
    }
    let file = write_secret(env, guards, m, &value)?;
    let t = if target.is_empty() {
        format!("/run/secrets/{id}")
    } else {
        target.to_string()
    };
    guards.targets.push(t.clone());
    Ok(Some(crate::exec::spec::ExtraMount::Bind {
        beneath: None,
        source: file,
        target: t,
        readonly: true,
    }))
}

/// Write a secret's value into the step's private secret directory (made
/// on first use) with the mount's owner and mode (root, 0400 by default).
fn write_secret(
    env: &crate::ops::op::OpEnv<'_>,
    guards: &mut super::MountGuards,
    m: &super::Mount,
    value: &[u8],
) -> Result<PathBuf, crate::ops::op::OpError> {
    use crate::ops::op::OpError;
    let store_tmp = env.store.root().join("tmp");
    if guards.secrets.is_none() {
        let d = SecretDir::create(&store_tmp).map_err(|source| OpError::Io {
            what: "creating a secret directory for",
            path: store_tmp.clone(),
            source,
        })?;
        guards.secrets = Some(d);
    }
    let Some(dir) = guards.secrets.as_mut() else {
        return Err(OpError::Internal("no secret directory".into()));
    };
    let (uid, gid) = (m.uid.unwrap_or(0), m.gid.unwrap_or(0));
    dir.write(value, uid, gid, m.mode.unwrap_or(0o400))
        .map_err(|source| OpError::Io {
            what: "writing a secret in",
            path: dir.path().to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_their_pid() {
        assert_eq!(stale_pid("rbuild-secrets-123-AbC9zx"), Some(123));
        assert_eq!(stale_pid("rbuild-secrets-123-"), None);
        assert_eq!(stale_pid("rbuild-secrets-x-abc"), None);
        assert_eq!(stale_pid("rbuild-secret-1-0-abc"), None);
    }

    #[test]
    fn secret_files_are_private_and_never_replace_a_file() {
        let store = tempfile::tempdir().unwrap();
        let mut d = SecretDir::create(store.path()).unwrap();
        let m = std::fs::metadata(d.path()).unwrap();
        assert_eq!(m.mode() & 0o777, 0o700);
        let me = rustix::process::geteuid().as_raw();
        let f = d.write(b"v", me, me, 0o440).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, 0o440);
        assert_eq!(std::fs::read(&f).unwrap(), b"v");
        // A link planted at the next name is not followed.
        let target = store.path().join("victim");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, d.path().join("secret-2")).unwrap();
        assert!(d.write(b"x", me, me, 0o400).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        let path = d.path().to_path_buf();
        drop(d);
        assert!(!path.exists());
    }
}
