//! The server's content-addressed cache of context files, and building a
//! context directory from a client's file list (paths checked to stay
//! inside it; files hard-linked from the cache).

use super::wire::FileEntry;
use crate::digest::Digest;
use sha2::{Digest as _, Sha256};
use std::path::{Component, Path, PathBuf};

/// Errors of context files.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A bad digest string.
    #[error("invalid digest {0:?}")]
    BadDigest(String),
    /// The uploaded bytes do not hash to the digest.
    #[error("upload of {0}: content does not match its digest")]
    Mismatch(String),
    /// A path leaving the context, absolute, or empty.
    #[error("context path {0:?} is not a plain relative path")]
    BadPath(String),
    /// A file named without proof of holding its content.
    #[error("context file {0:?}: no valid proof of holding content {1}")]
    NoProof(String, String),
    /// A context larger than the server takes.
    #[error("the context is larger than the server's --max-context ({0} bytes)")]
    TooBig(u64),
    /// A file whose content was never uploaded.
    #[error("context file {0:?}: content {1} was not uploaded")]
    Missing(String, String),
    /// An unknown entry kind.
    #[error("context entry {0:?}: unknown kind {1:?}")]
    BadKind(String, String),
    /// File system trouble.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SyncError + 'a {
    move |source| SyncError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Content-addressed context files under `DIR/sha256/HEX`.
pub struct ContextCache {
    dir: PathBuf,
}

impl ContextCache {
    /// The cache in `dir` (created).
    pub fn open(dir: &Path) -> Result<ContextCache, SyncError> {
        let blobs = dir.join("sha256");
        std::fs::create_dir_all(&blobs).map_err(io("creating", &blobs))?;
        std::fs::create_dir_all(dir.join("tmp")).map_err(io("creating", dir))?;
        std::fs::create_dir_all(dir.join("builds")).map_err(io("creating", dir))?;
        std::fs::create_dir_all(dir.join("proofs")).map_err(io("creating", dir))?;
        Ok(ContextCache {
            dir: dir.to_path_buf(),
        })
    }

    /// Where builds' contexts are assembled.
    pub fn work_dir(&self) -> PathBuf {
        self.dir.join("builds")
    }

    /// The file of a digest (`sha256:HEX`), if the digest is well formed.
    pub fn path_of(&self, digest: &str) -> Result<PathBuf, SyncError> {
        let d: Digest = digest
            .parse()
            .map_err(|_| SyncError::BadDigest(digest.to_string()))?;
        Ok(self.dir.join("sha256").join(d.hex()))
    }

    fn proof_path(&self, digest: &str) -> Result<PathBuf, SyncError> {
        let blob = self.path_of(digest)?;
        let hex = blob.file_name().unwrap_or_default().to_owned();
        Ok(self.dir.join("proofs").join(hex))
    }

    /// Check that every file's digest comes with its proof of possession,
    /// and that the context's files add up to at most `max_bytes`.
    pub fn check_files(
        &self,
        files: &[FileEntry],
        proofs: &std::collections::HashMap<String, String>,
        max_bytes: u64,
    ) -> Result<(), SyncError> {
        let mut sizes = std::collections::HashMap::new();
        let mut total = 0u64;
        for f in files {
            let Some(d) = f.digest.as_ref() else {
                continue;
            };
            if !sizes.contains_key(d.as_str()) {
                let stored = std::fs::read(self.proof_path(d)?).unwrap_or_default();
                let given = proofs.get(d).map(|p| p.as_bytes()).unwrap_or_default();
                if stored.is_empty() || !super::api::same(&stored, given) {
                    return Err(SyncError::NoProof(f.path.clone(), d.clone()));
                }
                let len = std::fs::metadata(self.path_of(d)?).map_or(0, |m| m.len());
                sizes.insert(d.as_str(), len);
            }
            total = total.saturating_add(sizes[d.as_str()]);
            if total > max_bytes {
                return Err(SyncError::TooBig(max_bytes));
            }
        }
        Ok(())
    }

    /// Remove the cached context files (and their proofs) last written
    /// before `older_than` ago: `rbuild --server ADDR prune` clears them
    /// as BuildKit's prune clears its context transfers, and the next
    /// build uploads what it needs again. Recent files are kept, so an
    /// upload under way is not lost before its build. Returns how many
    /// files and bytes went.
    pub fn prune(&self, older_than: std::time::Duration) -> (usize, u64) {
        let cutoff = std::time::SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(std::time::UNIX_EPOCH);
        let Ok(rd) = std::fs::read_dir(self.dir.join("sha256")) else {
            return (0, 0);
        };
        let (mut files, mut bytes) = (0, 0);
        for e in rd.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if !meta.is_file() || meta.modified().is_ok_and(|m| m > cutoff) {
                continue;
            }
            // The proof first: a file without its proof is never used.
            let _ = std::fs::remove_file(self.dir.join("proofs").join(e.file_name()));
            if std::fs::remove_file(e.path()).is_ok() {
                files += 1;
                bytes += meta.len();
            }
        }
        (files, bytes)
    }

    /// Which digests are not cached (or have no proof kept yet).
    pub fn missing(&self, digests: &[String]) -> Result<Vec<String>, SyncError> {
        let mut out = Vec::new();
        for d in digests {
            let have = self.path_of(d)?.exists() && self.proof_path(d)?.exists();
            if !have && !out.contains(d) {
                out.push(d.clone());
            }
        }
        Ok(out)
    }

    /// A temporary file for an upload, and where it goes once checked.
    pub fn upload_target(
        &self,
        digest: &str,
    ) -> Result<(tempfile::NamedTempFile, PathBuf), SyncError> {
        let dest = self.path_of(digest)?;
        let tmp_dir = self.dir.join("tmp");
        let tmp = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(io("creating", &tmp_dir))?;
        Ok((tmp, dest))
    }

    /// Keep an upload whose bytes hashed to `hash` if that is `digest`,
    /// with its proof of possession.
    pub fn commit(
        &self,
        tmp: tempfile::NamedTempFile,
        (hash, proof): (Sha256, super::wire::Proof),
        digest: &str,
        dest: &Path,
    ) -> Result<(), SyncError> {
        let got = format!("sha256:{}", hex::encode(hash.finalize()));
        if got != digest {
            return Err(SyncError::Mismatch(digest.to_string()));
        }
        let proof_path = self.proof_path(digest)?;
        crate::cache::write_file_atomic(&proof_path, proof.finish().as_bytes()).map_err(|e| {
            SyncError::Io {
                what: "storing",
                path: proof_path.clone(),
                source: std::io::Error::other(e.to_string()),
            }
        })?;
        tmp.persist(dest)
            .map_err(|e| SyncError::Io {
                what: "storing",
                path: dest.to_path_buf(),
                source: e.error,
            })
            .map(|_| ())
    }

    /// Build the context `files` describe in `root` (an empty directory).
    pub fn assemble(&self, root: &Path, files: &[FileEntry]) -> Result<(), SyncError> {
        let mut dirs = Vec::new();
        for f in files {
            let rel = safe_rel(&f.path)?;
            no_links_on_the_way(root, &rel, &f.path)?;
            let dest = root.join(&rel);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
            }
            match f.kind.as_str() {
                "dir" => {
                    std::fs::create_dir_all(&dest).map_err(io("creating", &dest))?;
                    dirs.push((dest, f));
                }
                "file" => {
                    let d = f.digest.clone().unwrap_or_default();
                    let src = self.path_of(&d)?;
                    if !src.exists() {
                        return Err(SyncError::Missing(f.path.clone(), d));
                    }
                    // A copy, not a link: the cached file's mode and mtime stay its own.
                    std::fs::copy(&src, &dest).map_err(io("copying", &dest))?;
                    set_meta(&dest, f)?;
                }
                "symlink" => {
                    let target = f.link.clone().unwrap_or_default();
                    std::os::unix::fs::symlink(&target, &dest).map_err(io("linking", &dest))?;
                    let t = filetime::FileTime::from_unix_time(f.mtime.0, f.mtime.1 as u32);
                    let _ = filetime::set_symlink_file_times(&dest, t, t);
                }
                other => return Err(SyncError::BadKind(f.path.clone(), other.to_string())),
            }
        }
        // Directories last (deepest first), after their entries changed their mtimes.
        for (dest, f) in dirs.iter().rev() {
            set_meta(dest, f)?;
        }
        Ok(())
    }
}

/// Refuse a path below a symlink, or onto an entry already made (except a
/// directory listed again): writes never follow links out of `root`.
fn no_links_on_the_way(root: &Path, rel: &Path, shown: &str) -> Result<(), SyncError> {
    let mut at = root.to_path_buf();
    for c in rel.components() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() && !m.file_type().is_symlink() => {}
            Ok(_) => return Err(SyncError::BadPath(shown.to_string())),
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// Mode and mtime of an assembled entry.
fn set_meta(dest: &Path, f: &FileEntry) -> Result<(), SyncError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(f.mode & 0o7777))
        .map_err(io("setting the mode of", dest))?;
    let t = filetime::FileTime::from_unix_time(f.mtime.0, f.mtime.1 as u32);
    filetime::set_file_times(dest, t, t).map_err(io("setting the times of", dest))
}

/// A client's path as a relative path with only normal components.
pub fn safe_rel(p: &str) -> Result<PathBuf, SyncError> {
    let bad = || SyncError::BadPath(p.to_string());
    let path = Path::new(p);
    if p.is_empty() || p.contains('\0') {
        return Err(bad());
    }
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return Err(bad()),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(bad());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_paths_leaving_the_context() {
        for bad in ["../x", "/etc/passwd", "a/../../b", "", "."] {
            assert!(safe_rel(bad).is_err(), "{bad}");
        }
        assert_eq!(safe_rel("a/./b").unwrap(), PathBuf::from("a/b"));
    }

    #[test]
    fn a_symlinked_dir_cannot_lead_out() {
        // A link entry first, then a file "below" it: create_dir_all would
        // follow the link, so assembly must not write through it.
        let d = tempfile::tempdir().unwrap();
        let cache = ContextCache::open(&d.path().join("c")).unwrap();
        let root = d.path().join("root");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let (mut tmp, dest) = cache
            .upload_target(&format!("sha256:{}", hex::encode(Sha256::digest(b"x"))))
            .unwrap();
        std::io::Write::write_all(&mut tmp, b"x").unwrap();
        let dig = format!("sha256:{}", hex::encode(Sha256::digest(b"x")));
        cache
            .commit(
                tmp,
                (
                    Sha256::new_with_prefix(b"x"),
                    super::super::wire::Proof::new(),
                ),
                &dig,
                &dest,
            )
            .unwrap();
        let files = vec![
            FileEntry {
                path: "l".into(),
                kind: "symlink".into(),
                mode: 0o777,
                mtime: (0, 0),
                digest: None,
                link: Some(outside.display().to_string()),
            },
            FileEntry {
                path: "l/f".into(),
                kind: "file".into(),
                mode: 0o644,
                mtime: (0, 0),
                digest: Some(dig),
                link: None,
            },
        ];
        assert!(matches!(
            cache.assemble(&root, &files),
            Err(SyncError::BadPath(p)) if p == "l/f"
        ));
        assert!(!outside.join("f").exists());
    }
}
