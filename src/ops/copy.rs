//! COPY and ADD into a new diff directory, with Docker's destination rules:
//! a directory source copies its contents; a file goes to `dest/name` when
//! `dest` ends in `/` or is an existing directory, else to `dest` itself;
//! several sources need a directory destination; `--parents` keeps source
//! paths; missing parent directories are created (owned by `--chown`).
//! Destinations resolve through the image's symlinks without leaving it.

mod archive;
mod job;
mod op;
mod previous;
mod sources;

pub use op::CopyOp;
pub(crate) use sources::select_and_hash;

use crate::context::ignore::IgnoreMatcher;
use crate::context::{Entry, Kind, Selection};
use crate::layer::view::{MergedView, clean_components};
use crate::ops::chmod::Chmod;
use job::FileJob;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A heredoc source of COPY/ADD: a file named `name` holding `content`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    /// The file name.
    pub name: String,
    /// Its content (variables already expanded where asked).
    pub content: String,
}

/// Errors of COPY/ADD.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Several sources and a file destination.
    #[error(
        "When using COPY with more than one source file, the destination must be a directory and end with a /"
    )]
    MultipleToFile,
    /// Filesystem failure.
    #[error("{what} {path}: {source}")]
    Io {
        /// What.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Error.
        source: io::Error,
    },
    /// Bad --chmod.
    #[error("{0}")]
    BadChmod(String),
    /// A path inside a copied tree is not a directory in the image.
    #[error("cannot copy to non-directory: {0}")]
    NotADirectory(String),
    /// Bad archive.
    #[error("extracting {path}: {source:?}")]
    Archive {
        /// Which archive.
        path: PathBuf,
        /// Error.
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, p: &'a Path) -> impl FnOnce(io::Error) -> CopyError + 'a {
    move |source| CopyError::Io {
        what,
        path: p.to_path_buf(),
        source,
    }
}

/// The previous build of the same step: its layer directory and the
/// digests of the source files it copied (by `source path/relative path`).
#[derive(Debug, Clone)]
pub struct Previous {
    /// The layer's snapshot directory (immutable).
    pub dir: PathBuf,
    /// Source file key → content digest.
    pub digests: std::collections::HashMap<String, crate::digest::Digest>,
}

/// What to copy and how.
pub struct CopyPlan<'a> {
    /// Selected sources (context or another stage).
    pub sources: &'a [Selection],
    /// Heredoc sources.
    pub inline: &'a [InlineFile],
    /// Destination as written (expanded).
    pub dest: &'a str,
    /// The stage's working directory.
    pub workdir: &'a str,
    /// Owner of everything written (`--chown`, or root for context files);
    /// `None` keeps each source file's owner (COPY --from).
    pub owner: Option<(u32, u32)>,
    /// `--chmod`.
    pub chmod: Option<Chmod>,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns.
    pub exclude: &'a [String],
    /// The filesystem being copied into (empty for `--link`).
    pub base: &'a MergedView,
    /// Timestamp for created directories (SOURCE_DATE_EPOCH or 0).
    pub created_time: i64,
    /// Which sources that are tar archives are extracted.
    pub unpack: Unpack,
    /// The step's previous layer, to hard-link files that did not change.
    pub previous: Option<&'a Previous>,
}

/// Parse `--chmod` (octal or symbolic).
pub fn parse_chmod(s: &str) -> Result<Chmod, CopyError> {
    Chmod::parse(s).map_err(CopyError::BadChmod)
}

struct Writer<'a> {
    out: &'a Path,
    /// The output, for the deferred work done through descriptors.
    out_root: crate::fsroot::Root,
    /// The step's previous layer, to link unchanged files from.
    prev_root: Option<crate::fsroot::Root>,
    plan: &'a CopyPlan<'a>,
    /// Directories whose mtime must be set after their contents.
    dir_times: Vec<(PathBuf, i64, i64)>,
    /// Regular files to copy, done in parallel once the directories exist;
    /// a later source for the same target replaces an earlier one.
    files: Vec<FileJob>,
    file_index: std::collections::HashMap<PathBuf, usize>,
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn lchown(p: &Path, uid: u32, gid: u32) -> Result<(), CopyError> {
    if !is_root() && uid == 0 && gid == 0 {
        return Ok(()); // mapped to root when the layer is written
    }
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).map_err(io_err("chown", p))
}

fn set_mtime(p: &Path, secs: i64, nanos: i64) {
    let t = filetime::FileTime::from_unix_time(secs, nanos as u32);
    let _ = filetime::set_symlink_file_times(p, t, t);
}

impl Writer<'_> {
    /// Make sure the directory `parts` exists in the output, copying the
    /// metadata of an existing directory of the base or creating a new one.
    fn ensure_dir(&mut self, parts: &[String]) -> Result<PathBuf, CopyError> {
        let mut cur = self.out.to_path_buf();
        for i in 0..parts.len() {
            cur.push(&parts[i]);
            if let Some(j) = self.file_index.remove(&cur) {
                self.files[j].target = PathBuf::new(); // a directory replaces a pending file
            }
            // The output is written by host paths, so it must hold no link on
            // the way: an earlier source's symlink or file here is replaced.
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => continue,
                Ok(_) => fs::remove_file(&cur).map_err(io_err("replacing", &cur))?,
                Err(_) => {}
            }
            match self.plan.base.lookup_exact(&parts[..=i]) {
                Some((_, m)) if m.is_dir() => {
                    fs::create_dir(&cur).map_err(io_err("creating", &cur))?;
                    fs::set_permissions(&cur, fs::Permissions::from_mode(m.mode() & 0o7777))
                        .map_err(io_err("chmod", &cur))?;
                    lchown(&cur, m.uid(), m.gid())?;
                    self.dir_times
                        .push((cur.clone(), m.mtime(), m.mtime_nsec()));
                }
                // BuildKit neither follows nor replaces a link (or file) of
                // the image inside a copied tree.
                Some(_) => {
                    return Err(CopyError::NotADirectory(format!(
                        "/{}",
                        parts[..=i].join("/")
                    )));
                }
                None => {
                    fs::create_dir(&cur).map_err(io_err("creating", &cur))?;
                    let mode = Chmod::parent_mode(self.plan.chmod.as_ref());
                    fs::set_permissions(&cur, fs::Permissions::from_mode(mode))
                        .map_err(io_err("chmod", &cur))?;
                    let (u, g) = self.plan.owner.unwrap_or((0, 0));
                    lchown(&cur, u, g)?;
                    self.dir_times
                        .push((cur.clone(), self.plan.created_time, 0));
                }
            }
        }
        Ok(cur)
    }

    fn mode_for(&self, e: &Entry) -> u32 {
        match &self.plan.chmod {
            Some(c) => c.apply(e.mode, e.kind == Kind::Dir),
            None => e.mode,
        }
    }

    /// An identical file (content, mode, owner, mtime) at the same place in
    /// the step's previous layer.
    fn reusable(
        &self,
        target: &Path,
        key: &str,
        e: &Entry,
        mode: u32,
        owner: (u32, u32),
    ) -> Option<String> {
        let prev = self.plan.previous?;
        let rel = target
            .strip_prefix(self.out)
            .ok()?
            .to_string_lossy()
            .into_owned();
        let st = job::stat_nolinks(self.prev_root.as_ref()?, &rel)?;
        let same = crate::fsroot::file_type(&st) == rustix::fs::FileType::RegularFile
            && st.st_size as u64 == e.size
            && st.st_mode & 0o7777 == mode
            && (st.st_uid, st.st_gid) == owner
            && (st.st_mtime, st.st_mtime_nsec as i64) == e.mtime
            && e.digest.is_some()
            && prev.digests.get(key) == e.digest.as_ref();
        same.then_some(rel)
    }

    /// Write one entry at container path `parts`; `key` names its source
    /// (for reuse from the previous layer).
    fn put_keyed(&mut self, parts: &[String], e: &Entry, key: &str) -> Result<(), CopyError> {
        let (parent, name) = parts.split_at(parts.len().saturating_sub(1));
        let dir = self.ensure_dir(parent)?;
        let Some(name) = name.first() else {
            return Ok(()); // the root itself: nothing to write
        };
        let target = dir.join(name);
        if let Some(i) = self.file_index.remove(&target) {
            // A pending file at this path is replaced by this entry.
            self.files[i].target = PathBuf::new();
        }
        if let Ok(m) = fs::symlink_metadata(&target) {
            if m.is_dir() && e.kind == Kind::Dir {
                fs::set_permissions(&target, fs::Permissions::from_mode(self.mode_for(e)))
                    .map_err(io_err("chmod", &target))?;
                return Ok(());
            }
            if m.is_dir() {
                crate::cache::remove_tree(&target).map_err(io_err("replacing", &target))?;
                // Files queued below the directory go with it.
                for j in self
                    .files
                    .iter_mut()
                    .filter(|j| j.target.starts_with(&target))
                {
                    j.target = PathBuf::new();
                }
            } else {
                fs::remove_file(&target).map_err(io_err("replacing", &target))?;
            }
        }
        let (uid, gid) = self.plan.owner.unwrap_or(e.owner);
        if e.kind == Kind::Dir
            && self
                .plan
                .base
                .lookup_exact(parts)
                .is_some_and(|(_, m)| !m.is_dir())
        {
            return Err(CopyError::NotADirectory(format!("/{}", parts.join("/"))));
        }
        match e.kind {
            Kind::Dir => {
                fs::create_dir(&target).map_err(io_err("creating", &target))?;
                fs::set_permissions(&target, fs::Permissions::from_mode(self.mode_for(e)))
                    .map_err(io_err("chmod", &target))?;
                lchown(&target, uid, gid)?;
                self.dir_times.push((target, e.mtime.0, e.mtime.1));
            }
            Kind::File => {
                let mode = self.mode_for(e);
                let link_from = if key.is_empty() {
                    None
                } else {
                    self.reusable(&target, key, e, mode, (uid, gid))
                };
                self.file_index.insert(target.clone(), self.files.len());
                self.files.push(FileJob {
                    link_from,
                    src: e.clone(),
                    target,
                    mode: self.mode_for(e),
                    owner: (uid, gid),
                    mtime: e.mtime,
                });
            }
            Kind::Symlink => {
                let link = e.link.clone().unwrap_or_default();
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(io_err("creating symlink", &target))?;
                lchown(&target, uid, gid)?;
                set_mtime(&target, e.mtime.0, e.mtime.1);
            }
            Kind::Other => {
                // Devices and fifos are not copied from a context (as BuildKit).
            }
        }
        Ok(())
    }
}

fn excluded(m: &Option<IgnoreMatcher>, rel: &str) -> bool {
    m.as_ref()
        .is_some_and(|m| !rel.is_empty() && m.is_excluded(rel))
}

/// Magic-number sniffing for ADD's local archive extraction.
fn archive_reader(entry: &Entry) -> Option<Box<dyn io::Read>> {
    let mut head = [0u8; 512];
    let mut f = entry.open().ok()?;
    let n = io::Read::read(&mut f, &mut head).ok()?;
    io::Seek::rewind(&mut f).ok()?;
    let h = &head[..n];
    if h.starts_with(&[0x1f, 0x8b]) {
        Some(Box::new(flate2::read::MultiGzDecoder::new(
            io::BufReader::new(f),
        )))
    } else if h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::new(f)
            .ok()
            .map(|d| Box::new(d) as Box<dyn io::Read>)
    } else if h.starts_with(b"BZh") {
        Some(Box::new(bzip2::read::MultiBzDecoder::new(
            io::BufReader::new(f),
        )))
    } else if h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Box::new(liblzma::read::XzDecoder::new_multi_decoder(
            io::BufReader::new(f),
        )))
    } else if n >= 262 && &h[257..262] == b"ustar" {
        Some(Box::new(io::BufReader::new(f)))
    } else {
        None
    }
}

/// How many leading components of a `--parents` source are dropped: those
/// before its first `/./` (BuildKit's pivot); none without one.
fn pivot_depth(source: &str) -> usize {
    source
        .split_once("/./")
        .map_or(0, |(fixed, _)| clean_components(fixed).len())
}

/// Which sources ADD extracts when they are tar archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unpack {
    /// None (COPY, `ADD --unpack=false`).
    Never,
    /// Archives from the context, not downloads (ADD's default).
    Local,
    /// Downloads too (`ADD --unpack=true`).
    All,
}

impl Unpack {
    fn applies_to(self, sel: &Selection) -> bool {
        match self {
            Unpack::Never => false,
            Unpack::Local => !crate::ops::fetch::is_url(&sel.source),
            Unpack::All => true,
        }
    }
}

/// Copy according to `plan` into the empty directory `out`.
pub fn execute(plan: &CopyPlan<'_>, out: &Path) -> Result<(), CopyError> {
    let mut dest = plan.dest.to_string();
    if !dest.starts_with('/') {
        let wd = if plan.workdir.is_empty() {
            "/"
        } else {
            plan.workdir
        };
        dest = format!("{}/{}", wd.trim_end_matches('/'), dest);
    }
    let dir_form = dest.ends_with('/') || dest.ends_with("/.") || plan.dest == ".";
    // Resolve through the image's symlinks (e.g. /usr/local/bin), staying inside.
    let dest_parts = plan.base.resolve(&dest, true);
    let dest_is_dir = dir_form
        || plan
            .base
            .lookup_exact(&dest_parts)
            .is_some_and(|(_, m)| m.is_dir());
    let count = plan.sources.len() + plan.inline.len();
    if count > 1 && !dest_is_dir {
        return Err(CopyError::MultipleToFile);
    }
    let exclude = if plan.exclude.is_empty() {
        None
    } else {
        Some(
            IgnoreMatcher::parse(&plan.exclude.join("\n"), Path::new("--exclude")).map_err(
                |e| CopyError::Io {
                    what: "parsing --exclude",
                    path: PathBuf::from(plan.exclude.join(",")),
                    source: io::Error::other(e.to_string()),
                },
            )?,
        )
    };
    let out_root = crate::fsroot::Root::open(out).map_err(io_err("opening", out))?;
    let prev_root = plan
        .previous
        .and_then(|p| crate::fsroot::Root::open(&p.dir).ok());
    let mut w = Writer {
        out,
        out_root,
        prev_root,
        plan,
        dir_times: Vec::new(),
        files: Vec::new(),
        file_index: std::collections::HashMap::new(),
    };
    if plan.parents && dest_is_dir {
        // BuildKit copies the fixed part's contents with include patterns:
        // the destination exists even when nothing matches.
        w.ensure_dir(&dest_parts)?;
    }
    for sel in plan.sources {
        put_selection(&mut w, sel, &exclude, &dest_parts, dest_is_dir)?;
    }
    for inline in plan.inline {
        put_inline(&mut w, inline, &dest_parts, dest_is_dir)?;
    }
    {
        use rayon::prelude::*;
        let (out_root, prev_root) = (&w.out_root, w.prev_root.as_ref());
        w.files
            .par_iter()
            .filter(|j| !j.target.as_os_str().is_empty())
            .try_for_each(|j| j.run(out_root, prev_root))?;
    }
    for (p, s, n) in w.dir_times.iter().rev() {
        if let Ok(rel) = job::rel_to(&w.out_root, p) {
            job::set_times_nolinks(&w.out_root, &rel, *s, *n);
        }
    }
    Ok(())
}

/// Copy one selected source (a directory's contents, or a file, which an
/// ADD may unpack) under `dest_parts`.
fn put_selection(
    w: &mut Writer<'_>,
    sel: &Selection,
    exclude: &Option<IgnoreMatcher>,
    dest_parts: &[String],
    dest_is_dir: bool,
) -> Result<(), CopyError> {
    let plan = w.plan;
    let mut base_parts = dest_parts.to_vec();
    // --parents: the path below the pivot (`/./`, else the root) is kept.
    let kept: Vec<String> = if plan.parents {
        clean_components(&sel.path)
            .into_iter()
            .skip(pivot_depth(&sel.source))
            .collect()
    } else {
        Vec::new()
    };
    if plan.parents {
        base_parts.extend(kept.iter().take(kept.len().saturating_sub(1)).cloned());
    }
    match sel.root.kind {
        Kind::Dir => {
            if plan.parents {
                base_parts.extend(kept.last().cloned());
            }
            // A new destination directory is made like any parent (0755,
            // root or --chown), as BuildKit's copy does.
            w.ensure_dir(&base_parts)?;
            for e in &sel.children {
                if excluded(exclude, &e.rel) {
                    continue;
                }
                let mut parts = base_parts.clone();
                parts.extend(clean_components(&e.rel));
                let key = format!("{}/{}", sel.path, e.rel);
                w.put_keyed(&parts, e, &key)?;
            }
        }
        _ => {
            let name = Path::new(&sel.path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            if excluded(exclude, name.as_deref().unwrap_or("")) {
                return Ok(());
            }
            if plan.unpack.applies_to(sel)
                && sel.root.kind == Kind::File
                && let Some(reader) = archive_reader(&sel.root)
            {
                archive::add_archive(w, sel, reader, &base_parts)?;
                return Ok(());
            }
            let mut parts = base_parts.clone();
            if dest_is_dir || plan.parents {
                parts.push(name.unwrap_or_default());
            }
            w.put_keyed(&parts, &sel.root, &sel.path)?;
        }
    }
    Ok(())
}

/// Write a heredoc source as a file (mode 0644 or `--chmod`, owned by
/// `--chown` or root).
fn put_inline(
    w: &mut Writer<'_>,
    inline: &InlineFile,
    dest_parts: &[String],
    dest_is_dir: bool,
) -> Result<(), CopyError> {
    let plan = w.plan;
    let mut parts = dest_parts.to_vec();
    if dest_is_dir {
        parts.push(inline.name.clone());
    }
    let (parent, _) = parts.split_at(parts.len() - 1);
    let dir = w.ensure_dir(parent)?;
    let target = dir.join(parts.last().expect("a file name"));
    match fs::symlink_metadata(&target) {
        Ok(m) if m.is_dir() => {
            crate::cache::remove_tree(&target).map_err(io_err("replacing", &target))?
        }
        Ok(_) => fs::remove_file(&target).map_err(io_err("replacing", &target))?,
        Err(_) => {}
    }
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&target)
            .map_err(io_err("creating", &target))?;
        io::Write::write_all(&mut f, inline.content.as_bytes())
            .map_err(io_err("writing", &target))?;
    }
    fs::set_permissions(
        &target,
        fs::Permissions::from_mode(plan.chmod.as_ref().map_or(0o644, |c| c.apply(0o644, false))),
    )
    .map_err(io_err("chmod", &target))?;
    let (u, g) = plan.owner.unwrap_or((0, 0));
    lchown(&target, u, g)?;
    set_mtime(&target, plan.created_time, 0);
    Ok(())
}
