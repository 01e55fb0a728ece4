//! The build context: files read with `.dockerignore` applied, COPY/ADD
//! source selection with Docker's rules (wildcards, directories copy their
//! contents, top-level symlinks followed inside the context, nothing outside
//! it), and content digests with a stat cache.

mod entry;
pub mod ignore;
pub mod statcache;

pub use entry::{Entry, Kind};

use crate::context::ignore::{IgnoreMatcher, Pattern, clean_path};
use crate::digest::{Digest, KeyHasher, hash_reader};
use crate::fsroot::Root;
use rayon::prelude::*;
use statcache::StatCache;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Errors about the context.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The source is outside the context.
    #[error("{0}: path escapes the build context")]
    Escape(String),
    /// Nothing matched.
    #[error("\"/{}\": not found in the build context (or excluded by .dockerignore)", .0.trim_start_matches('/'))]
    NotFound(String),
    /// Nothing matched in another stage or image.
    #[error("\"/{}\": not found", .0.trim_start_matches('/'))]
    NotInStage(String),
    /// A path matched, but the link it is does not lead to a file inside
    /// the context.
    #[error("\"/{}\": not found in the build context (a link whose target is missing)", .0.trim_start_matches('/'))]
    Unresolved(String),
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
    Ignore(#[from] crate::context::ignore::IgnoreError),
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
    /// Every path of the context is resolved in here.
    dir: Arc<Root>,
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
        let dir = Arc::new(Root::open(&root).map_err(|source| ContextError::Io {
            what: "opening context",
            path: root.clone(),
            source,
        })?);
        let ignore = IgnoreMatcher::load(&dir, dockerfile)?;
        let cache_file =
            cache_dir.map(|d| d.join(Digest::of(root.as_os_str().as_encoded_bytes()).hex()));
        let cache = cache_file
            .as_deref()
            .map(StatCache::load)
            .unwrap_or_default();
        Ok(Context {
            root,
            dir,
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

    /// The entry a context-relative path names, symlinks followed inside
    /// the context (absolute targets re-rooted at it, `..` stopping there, as
    /// BuildKit does): the resolved path and its metadata.
    fn follow(&self, src: &str, rel: &str) -> Result<(String, Entry), ContextError> {
        let not_found = || {
            if has_wildcards(src) {
                ContextError::Unresolved(rel.to_string())
            } else {
                ContextError::NotFound(src.to_string())
            }
        };
        let resolved = self.dir.resolve(rel, true).map_err(|_| not_found())?;
        if self.is_excluded(&resolved) {
            return Err(not_found());
        }
        let st = self.dir.stat(&resolved, false).map_err(|_| not_found())?;
        let abs = self.root.join(&resolved);
        let e = Entry::from_stat(resolved.clone(), abs, &st, None, &self.dir);
        if e.kind == Kind::Symlink {
            return Err(not_found()); // dangling, or a loop
        }
        Ok((resolved, e))
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
            if seg == "**" {
                // Any depth, none included (patternmatcher's `**`).
                for base in &current {
                    next.push(base.clone());
                    if let Ok(below) = self.walk(base) {
                        next.extend(
                            below
                                .into_iter()
                                .filter(|e| e.kind == Kind::Dir)
                                .map(|e| join_rel(base, &e.rel)),
                        );
                    }
                }
                current = next;
                continue;
            }
            for base in &current {
                if !has_wildcards(seg) {
                    let rel = join_rel(base, seg);
                    if self.dir.stat(&rel, false).is_ok() && !self.is_excluded(&rel) {
                        next.push(rel);
                    }
                    continue;
                }
                let Ok(dir) = self.dir.open_dir(base) else {
                    continue;
                };
                let Ok(names) = list_dir(&dir) else { continue };
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
        let io_err = |source: std::io::Error| ContextError::Io {
            what: "reading",
            path: abs.clone(),
            source,
        };
        // Opened inside the context, so a directory swapped for a link since
        // it was listed cannot lead out; its entries are read relative to it.
        let dir = self.dir.open_dir(ctx_dir).map_err(io_err)?;
        let names = list_dir(&dir).map_err(io_err)?;
        // Each child: its own entry (unless excluded) followed by its subtree.
        let parts: Vec<Result<Vec<Entry>, ContextError>> = names
            .par_iter()
            .map(|n| {
                let ctx_rel = join_rel(ctx_dir, n);
                let excluded = self.is_excluded(&ctx_rel);
                let Ok(st) =
                    rustix::fs::statat(&dir, n.as_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                else {
                    return Ok(Vec::new());
                };
                let link = (crate::fsroot::file_type(&st) == rustix::fs::FileType::Symlink)
                    .then(|| rustix::fs::readlinkat(&dir, n.as_str(), Vec::new()).ok())
                    .flatten()
                    .map(|t| t.to_string_lossy().into_owned());
                let e = Entry::from_stat(
                    join_rel(sel_prefix, n),
                    self.root.join(&ctx_rel),
                    &st,
                    link,
                    &self.dir,
                );
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
                let f = e.open().map_err(|source| ContextError::Io {
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

    /// Take these digests of context files (by context-relative path) as
    /// known, as if from the stat cache: the files are not read to be
    /// hashed while their metadata stays as it is now (`rbuild serve`'s
    /// context, copied from its cache of files by digest).
    pub fn know_digests(&self, known: &[(String, Digest)]) {
        use std::os::unix::fs::MetadataExt as _;
        let Ok(mut cache) = self.cache.write() else {
            return;
        };
        for (rel, d) in known {
            let abs = self.root.join(rel);
            let Ok(m) = fs::symlink_metadata(&abs) else {
                continue;
            };
            if m.is_file() {
                let key = statcache::StatKey {
                    size: m.len(),
                    mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                    ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
                    ino: m.ino(),
                };
                cache.put(abs.to_string_lossy().into_owned(), key, *d);
            }
        }
    }

    /// Persist the stat cache.
    pub fn save_cache(&self) {
        if let Some(f) = &self.cache_file {
            let _ = self.cache.read().expect("stat cache lock").save(f);
        }
    }
}

/// The names in a directory (without "." and ".."), sorted.
fn list_dir(dir: &std::os::fd::OwnedFd) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for e in rustix::fs::Dir::read_from(dir)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(String::from_utf8_lossy(n).into_owned());
        }
    }
    names.sort();
    Ok(names)
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
    fn symlinks_resolve_inside_the_context() {
        let (d, c) = ctx(&[("in.txt", "i"), ("etc/hostname", "ctx")], "");
        let link = |t: &str, n: &str| std::os::unix::fs::symlink(t, d.path().join(n)).unwrap();
        link("../../etc/passwd", "out");
        link("in.txt", "ok");
        link("/etc", "abs");
        link("../../../etc", "rel");
        assert!(matches!(c.select("out"), Err(ContextError::NotFound(_))));
        assert_eq!(c.select("ok").unwrap()[0].root.kind, Kind::File);
        for src in ["abs/hostname", "rel/hostname", "a*/hostname", "r*/*"] {
            let s = c.select(src).unwrap();
            let mut e = s[0].root.clone();
            c.digest(std::slice::from_mut(&mut e)).unwrap();
            assert_eq!(e.digest, Some(Digest::of(b"ctx")), "{src}");
        }
        assert!(matches!(
            c.select("abs/passwd"),
            Err(ContextError::NotFound(_))
        ));
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
