//! The build context: files read with `.dockerignore` applied, COPY/ADD
//! source selection with Docker's rules (wildcards, directories copy their
//! contents, top-level symlinks followed inside the context, nothing outside
//! it), and content digests with a stat cache.

pub mod statcache;

use crate::digest::{Digest, KeyHasher, hash_reader};
use crate::frontend::dockerignore::{IgnoreMatcher, Pattern, clean_path};
use rayon::prelude::*;
use statcache::{StatCache, StatKey};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// Errors about the context.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The source is outside the context.
    #[error("{0}: path escapes the build context")]
    Escape(String),
    /// Nothing matched.
    #[error("\"{0}\": not found in the build context (or excluded by .dockerignore)")]
    NotFound(String),
    /// I/O.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Bad .dockerignore.
    #[error(transparent)]
    Ignore(#[from] crate::frontend::dockerignore::IgnoreError),
}

/// Kind of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Device, fifo or socket.
    Other,
}

/// One file of a selection.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path relative to the selection root ("" for the root itself).
    pub rel: String,
    /// Absolute path on disk.
    pub abs: PathBuf,
    /// Kind.
    pub kind: Kind,
    /// Permission bits (07777).
    pub mode: u32,
    /// Size (files).
    pub size: u64,
    /// mtime in seconds and nanoseconds.
    pub mtime: (i64, i64),
    /// Owner (uid, gid) on disk.
    pub owner: (u32, u32),
    /// What the stat cache compares (files).
    pub stat: Option<StatKey>,
    /// Symlink target.
    pub link: Option<String>,
    /// Content digest (files).
    pub digest: Option<Digest>,
}

impl Entry {
    /// Read an entry's metadata.
    pub fn from_path(rel: String, abs: PathBuf) -> std::io::Result<Entry> {
        let m = fs::symlink_metadata(&abs)?;
        let ft = m.file_type();
        let kind = if ft.is_file() {
            Kind::File
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink
        } else {
            Kind::Other
        };
        let link = if kind == Kind::Symlink {
            Some(fs::read_link(&abs)?.to_string_lossy().into_owned())
        } else {
            None
        };
        Ok(Entry {
            rel,
            abs,
            kind,
            mode: m.mode() & 0o7777,
            size: if kind == Kind::File { m.len() } else { 0 },
            mtime: (m.mtime(), m.mtime_nsec()),
            owner: (m.uid(), m.gid()),
            stat: (kind == Kind::File).then(|| StatKey {
                size: m.len(),
                mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
                ino: m.ino(),
            }),
            link,
            digest: None,
        })
    }
}

/// A source matched by one COPY/ADD argument.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The source as written.
    pub source: String,
    /// The matched path, relative to the context root.
    pub path: String,
    /// The file or directory (top-level symlinks already followed).
    pub root: Entry,
    /// For a directory: every entry below it (sorted, ignore rules applied).
    pub children: Vec<Entry>,
}

/// An open build context.
pub struct Context {
    root: PathBuf,
    ignore: IgnoreMatcher,
    cache: RwLock<StatCache>,
    cache_file: Option<PathBuf>,
}

/// Whether a source argument uses wildcards.
pub fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl Context {
    /// Open `root` with the ignore file for `dockerfile`; `cache_dir` holds stat caches.
    pub fn open(
        root: &Path,
        dockerfile: &Path,
        cache_dir: Option<&Path>,
    ) -> Result<Context, ContextError> {
        let root = fs::canonicalize(root).map_err(|source| ContextError::Io {
            what: "opening context",
            path: root.to_path_buf(),
            source,
        })?;
        let ignore = IgnoreMatcher::load(&root, dockerfile)?;
        let cache_file =
            cache_dir.map(|d| d.join(Digest::of(root.as_os_str().as_encoded_bytes()).hex()));
        let cache = cache_file
            .as_deref()
            .map(StatCache::load)
            .unwrap_or_default();
        Ok(Context {
            root,
            ignore,
            cache: RwLock::new(cache),
            cache_file,
        })
    }

    /// The context directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether a context-relative path is excluded.
    pub fn is_excluded(&self, rel: &str) -> bool {
        !rel.is_empty() && self.ignore.is_excluded(rel)
    }

    /// Clean a source argument into a context-relative path; `..` above the root is an error.
    fn clean_source(&self, src: &str) -> Result<String, ContextError> {
        let c = clean_path(&format!("./{}", src.trim_start_matches('/')));
        if c == ".." || c.starts_with("../") {
            return Err(ContextError::Escape(src.to_string()));
        }
        Ok(if c == "." { String::new() } else { c })
    }

    /// Follow symlinks of a context-relative path inside the context.
    fn follow(&self, src: &str, rel: &str) -> Result<(String, Entry), ContextError> {
        let mut rel = rel.to_string();
        for _ in 0..40 {
            let abs = self.root.join(&rel);
            let e = Entry::from_path(rel.clone(), abs)
                .map_err(|_| ContextError::NotFound(src.to_string()))?;
            let Some(target) = &e.link else {
                return Ok((rel, e));
            };
            let parent = Path::new(&rel)
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let joined = if target.starts_with('/') {
                return Err(ContextError::Escape(format!("{src} (symlink to {target})")));
            } else {
                clean_path(&format!("./{parent}/{target}"))
            };
            if joined == ".." || joined.starts_with("../") {
                return Err(ContextError::Escape(format!("{src} (symlink to {target})")));
            }
            rel = if joined == "." { String::new() } else { joined };
            if self.is_excluded(&rel) {
                return Err(ContextError::NotFound(src.to_string()));
            }
        }
        Err(ContextError::NotFound(src.to_string()))
    }

    /// Select what a COPY/ADD source argument names.
    pub fn select(&self, src: &str) -> Result<Vec<Selection>, ContextError> {
        let clean = self.clean_source(src)?;
        let paths: Vec<String> = if has_wildcards(&clean) {
            let found = self.glob(&clean)?;
            if found.is_empty() {
                return Err(ContextError::NotFound(src.to_string()));
            }
            found
        } else {
            if self.is_excluded(&clean) {
                return Err(ContextError::NotFound(src.to_string()));
            }
            vec![clean]
        };
        let mut out = Vec::new();
        for p in paths {
            let (resolved, mut root) = self.follow(src, &p)?;
            root.rel = String::new();
            let children = if root.kind == Kind::Dir {
                self.walk(&resolved)?
            } else {
                Vec::new()
            };
            out.push(Selection {
                source: src.to_string(),
                path: p,
                root,
                children,
            });
        }
        Ok(out)
    }

    /// Context-relative paths matching a wildcard pattern, segment by segment.
    fn glob(&self, pattern: &str) -> Result<Vec<String>, ContextError> {
        let mut current: Vec<String> = vec![String::new()];
        for seg in pattern.split('/') {
            let pat = Pattern::new(seg).ok().flatten();
            let mut next = Vec::new();
            for base in &current {
                let dir = self.root.join(base);
                if !has_wildcards(seg) {
                    let rel = join_rel(base, seg);
                    if fs::symlink_metadata(self.root.join(&rel)).is_ok() && !self.is_excluded(&rel)
                    {
                        next.push(rel);
                    }
                    continue;
                }
                let Ok(rd) = fs::read_dir(&dir) else { continue };
                let mut names: Vec<String> = rd
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                for n in names {
                    let rel = join_rel(base, &n);
                    if pat.as_ref().is_some_and(|p| p.matches(&n)) && !self.is_excluded(&rel) {
                        next.push(rel);
                    }
                }
            }
            current = next;
        }
        Ok(current)
    }

    /// Every entry below a context directory, sorted, ignore rules applied.
    /// Directories are listed in parallel (rayon), the result is in path order.
    pub fn walk(&self, rel_dir: &str) -> Result<Vec<Entry>, ContextError> {
        self.walk_dir(rel_dir, "")
    }

    fn walk_dir(&self, ctx_dir: &str, sel_prefix: &str) -> Result<Vec<Entry>, ContextError> {
        let abs = self.root.join(ctx_dir);
        let rd = fs::read_dir(&abs).map_err(|source| ContextError::Io {
            what: "reading",
            path: abs.clone(),
            source,
        })?;
        let mut names: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // Each child: its own entry (unless excluded) followed by its subtree.
        let parts: Vec<Result<Vec<Entry>, ContextError>> = names
            .par_iter()
            .map(|n| {
                let ctx_rel = join_rel(ctx_dir, n);
                let excluded = self.is_excluded(&ctx_rel);
                let Ok(e) = Entry::from_path(join_rel(sel_prefix, n), self.root.join(&ctx_rel))
                else {
                    return Ok(Vec::new());
                };
                let is_dir = e.kind == Kind::Dir;
                if excluded && !(is_dir && self.ignore.may_reinclude_below(&ctx_rel)) {
                    return Ok(Vec::new());
                }
                let sel_rel = e.rel.clone();
                let mut out = Vec::new();
                if !excluded {
                    out.push(e);
                }
                if is_dir {
                    out.extend(self.walk_dir(&ctx_rel, &sel_rel)?);
                }
                Ok(out)
            })
            .collect();
        let mut out = Vec::new();
        for p in parts {
            out.extend(p?);
        }
        Ok(out)
    }

    /// Fill in content digests (parallel; unchanged files come from the stat
    /// cache, using the metadata read when the entry was listed).
    pub fn digest(&self, entries: &mut [Entry]) -> Result<(), ContextError> {
        {
            let cache = self.cache.read().expect("stat cache lock");
            entries.par_iter_mut().for_each(|e| {
                if e.kind == Kind::File
                    && e.digest.is_none()
                    && let Some(key) = &e.stat
                {
                    e.digest = cache.get(&e.abs.to_string_lossy(), key);
                }
            });
        }
        let hashed: Vec<Result<(usize, Digest), ContextError>> = entries
            .par_iter()
            .enumerate()
            .filter(|(_, e)| e.kind == Kind::File && e.digest.is_none())
            .map(|(i, e)| {
                let f = fs::File::open(&e.abs).map_err(|source| ContextError::Io {
                    what: "opening",
                    path: e.abs.clone(),
                    source,
                })?;
                let (d, _) = hash_reader(f).map_err(|source| ContextError::Io {
                    what: "reading",
                    path: e.abs.clone(),
                    source,
                })?;
                Ok((i, d))
            })
            .collect();
        if hashed.is_empty() {
            return Ok(());
        }
        let mut cache = self.cache.write().expect("stat cache lock");
        for r in hashed {
            let (i, d) = r?;
            let e = &mut entries[i];
            e.digest = Some(d);
            if let Some(key) = e.stat {
                cache.put(e.abs.to_string_lossy().into_owned(), key, d);
            }
        }
        Ok(())
    }

    /// Persist the stat cache.
    pub fn save_cache(&self) {
        if let Some(f) = &self.cache_file {
            let _ = self.cache.read().expect("stat cache lock").save(f);
        }
    }
}

fn join_rel(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}/{name}")
    }
}

/// The digest of a selection's content: names, kinds, modes, sizes, link
/// targets and file contents (not mtimes or owners, like BuildKit's
/// content checksums). Entries must have digests.
pub fn selection_digest(sel: &Selection) -> Digest {
    let mut h = KeyHasher::new();
    h.part(&sel.path);
    for e in std::iter::once(&sel.root).chain(sel.children.iter()) {
        h.part(&e.rel);
        let mut meta = [0u8; 13];
        meta[0] = e.kind as u8;
        meta[1..5].copy_from_slice(&e.mode.to_le_bytes());
        meta[5..].copy_from_slice(&e.size.to_le_bytes());
        h.part(meta);
        if let Some(l) = &e.link {
            h.part(l);
        }
        if let Some(d) = &e.digest {
            h.part(d.0);
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(files: &[(&str, &str)], ignore: &str) -> (tempfile::TempDir, Context) {
        let d = tempfile::tempdir().unwrap();
        for (p, c) in files {
            let path = d.path().join(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, c).unwrap();
        }
        fs::write(d.path().join(".dockerignore"), ignore).unwrap();
        let c = Context::open(d.path(), &d.path().join("Dockerfile"), None).unwrap();
        (d, c)
    }

    #[test]
    fn selects_files_dirs_and_wildcards_with_ignores() {
        let (_d, c) = ctx(
            &[
                ("a.txt", "a"),
                ("b.txt", "b"),
                ("src/x.rs", "x"),
                ("src/y.log", "y"),
            ],
            "*.log\nsrc/*.log\n",
        );
        let s = c.select("*.txt").unwrap();
        assert_eq!(
            s.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(),
            ["a.txt", "b.txt"]
        );
        let s = c.select("src").unwrap();
        assert_eq!(
            s[0].children
                .iter()
                .map(|e| e.rel.as_str())
                .collect::<Vec<_>>(),
            ["x.rs"]
        );
        assert!(matches!(
            c.select("src/y.log"),
            Err(ContextError::NotFound(_))
        ));
        assert!(matches!(c.select("nope*"), Err(ContextError::NotFound(_))));
        assert!(matches!(
            c.select("../etc/passwd"),
            Err(ContextError::Escape(_))
        ));
    }

    #[test]
    fn symlinks_leading_out_are_refused() {
        let (d, c) = ctx(&[("in.txt", "i")], "");
        std::os::unix::fs::symlink("../../etc/passwd", d.path().join("out")).unwrap();
        std::os::unix::fs::symlink("in.txt", d.path().join("ok")).unwrap();
        assert!(matches!(c.select("out"), Err(ContextError::Escape(_))));
        assert_eq!(c.select("ok").unwrap()[0].root.kind, Kind::File);
    }

    #[test]
    fn digest_changes_with_content_not_mtime() {
        let (d, c) = ctx(&[("f", "one")], "");
        let mut s = c.select("f").unwrap();
        c.digest(std::slice::from_mut(&mut s[0].root)).unwrap();
        let d1 = selection_digest(&s[0]);
        fs::write(d.path().join("f"), "two").unwrap();
        let mut s = c.select("f").unwrap();
        c.digest(std::slice::from_mut(&mut s[0].root)).unwrap();
        assert_ne!(d1, selection_digest(&s[0]));
    }
}
