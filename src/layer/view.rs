//! A read-only merged view of a stack of diff directories (top layer first),
//! honouring whiteouts and opaque directories, with paths resolved inside the
//! root: symlinks are followed as if the stack were `/`, never outside it.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// How a directory shows in one layer.
enum DirInLayer {
    /// Every component is a real directory there.
    Present { dir: PathBuf, opaque: bool },
    /// Missing there (lower layers may have it unless an opaque directory
    /// is on the way).
    Absent { opaque: bool },
    /// A file, link or whiteout on the way hides it and all lower layers.
    Hidden,
}

/// A merged filesystem over layers.
#[derive(Debug, Clone, Default)]
pub struct MergedView {
    /// Diff directories, topmost first.
    pub layers: Vec<PathBuf>,
}

fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|x| matches!(xattr::get(p, x), Ok(Some(v)) if v == b"y"))
}

/// Split a container path into normal components (`..` clamps at the root).
pub fn clean_components(p: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n.to_string_lossy().into_owned()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

impl MergedView {
    /// A view over `layers` given bottom first (image order).
    pub fn from_bottom_up(layers: &[PathBuf]) -> Self {
        MergedView {
            layers: layers.iter().rev().cloned().collect(),
        }
    }

    /// Find the file for an already-resolved relative path (no symlink
    /// following): the layer path and its metadata.
    pub fn lookup_exact(&self, rel: &[String]) -> Option<(PathBuf, fs::Metadata)> {
        'layers: for layer in &self.layers {
            // A whiteout or opaque directory on the way hides lower layers.
            let mut cur = layer.clone();
            for (i, part) in rel.iter().enumerate() {
                cur.push(part);
                let last = i + 1 == rel.len();
                match fs::symlink_metadata(&cur) {
                    Ok(m) if is_whiteout(&m) => return None,
                    Ok(m) if last => return Some((cur, m)),
                    Ok(m) if m.is_dir() => {
                        if is_opaque(&cur) && !Self::exists_in(layer, rel) {
                            return None;
                        }
                    }
                    Ok(_) => return None, // a non-directory hides what is below the path
                    Err(_) => {
                        let wh = cur.with_file_name(format!(".wh.{part}"));
                        if fs::symlink_metadata(&wh).is_ok() {
                            return None;
                        }
                        continue 'layers;
                    }
                }
            }
            if rel.is_empty() {
                return fs::symlink_metadata(layer).ok().map(|m| (layer.clone(), m));
            }
        }
        None
    }

    /// Whether `rel` exists in `layer` itself, through real directories only
    /// (a link in a layer is never followed by the host).
    fn exists_in(layer: &Path, rel: &[String]) -> bool {
        let mut p = layer.to_path_buf();
        for (i, part) in rel.iter().enumerate() {
            p.push(part);
            match fs::symlink_metadata(&p) {
                Ok(_) if i + 1 == rel.len() => return true,
                Ok(m) if m.is_dir() => {}
                _ => return false,
            }
        }
        true
    }

    /// How a directory of the view shows in `layer`: its host path when
    /// every component is a real directory there, whether an opaque
    /// directory is on the way, or why it does not show.
    fn dir_in(layer: &Path, rel: &[String]) -> DirInLayer {
        let mut dir = layer.to_path_buf();
        let mut opaque = is_opaque(&dir);
        for part in rel {
            let whiteout = dir.join(format!(".wh.{part}"));
            dir.push(part);
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => opaque |= is_opaque(&dir),
                // A file, a link or a whiteout hides everything below it.
                Ok(_) => return DirInLayer::Hidden,
                Err(_) if fs::symlink_metadata(&whiteout).is_ok() => return DirInLayer::Hidden,
                Err(_) => return DirInLayer::Absent { opaque },
            }
        }
        DirInLayer::Present { dir, opaque }
    }

    /// Resolve a container path following symlinks inside the view (up to 40
    /// hops); returns the normalised components. `follow_last` decides
    /// whether a final symlink is followed.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Vec<String> {
        self.resolve_in(&[], path, follow_last)
    }

    /// Resolve `path` (relative to the directory `root` of the view) as if
    /// `root` were `/`: absolute link targets restart at it and `..` stops
    /// there, as in a chroot. Returns the full components, `root` first.
    pub fn resolve_in(&self, root: &[String], path: &str, follow_last: bool) -> Vec<String> {
        let mut pending: Vec<String> = clean_components(path);
        pending.reverse();
        let mut done: Vec<String> = root.to_vec();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                if done.len() > root.len() {
                    done.pop();
                }
                continue;
            }
            done.push(part);
            let last = pending.is_empty();
            if last && !follow_last {
                break;
            }
            if let Some((p, m)) = self.lookup_exact(&done)
                && m.file_type().is_symlink()
            {
                hops += 1;
                if hops > 40 {
                    break;
                }
                let target = fs::read_link(&p)
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                done.pop();
                if target.starts_with('/') {
                    done.truncate(root.len());
                }
                // `pending` is a stack: the target's parts go on top, first
                // part last; its `..` are taken against what is resolved.
                let next: Vec<String> = target
                    .split('/')
                    .filter(|c| !c.is_empty() && *c != ".")
                    .map(str::to_string)
                    .collect();
                pending.extend(next.into_iter().rev());
            }
        }
        done
    }

    /// Metadata of a container path, following symlinks.
    pub fn stat(&self, path: &str) -> Option<(PathBuf, fs::Metadata)> {
        let rel = self.resolve(path, true);
        self.lookup_exact(&rel)
    }

    /// Every entry below the directory `dir`, depth first in name order:
    /// (path relative to `dir`, path in its layer, metadata).
    pub fn walk(&self, dir: &[String]) -> Vec<(String, PathBuf, fs::Metadata)> {
        let mut out = Vec::new();
        self.walk_into(dir, "", &mut out);
        out
    }

    fn walk_into(
        &self,
        dir: &[String],
        prefix: &str,
        out: &mut Vec<(String, PathBuf, fs::Metadata)>,
    ) {
        for (name, path, meta) in self.read_dir(dir) {
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let is_dir = meta.is_dir();
            out.push((rel.clone(), path, meta));
            if is_dir {
                let mut sub = dir.to_vec();
                sub.push(name);
                self.walk_into(&sub, &rel, out);
            }
        }
    }

    /// Entries of a directory in the merged view (names sorted), with the
    /// file each name resolves to.
    pub fn read_dir(&self, rel: &[String]) -> Vec<(String, PathBuf, fs::Metadata)> {
        let mut seen: std::collections::BTreeMap<String, Option<(PathBuf, fs::Metadata)>> =
            std::collections::BTreeMap::new();
        for layer in &self.layers {
            let (dir, opaque) = match Self::dir_in(layer, rel) {
                DirInLayer::Present { dir, opaque } => (dir, opaque),
                DirInLayer::Absent { opaque: false } => continue,
                DirInLayer::Absent { opaque: true } | DirInLayer::Hidden => break,
            };
            if let Ok(rd) = fs::read_dir(&dir) {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if let Some(hidden) = name.strip_prefix(".wh.") {
                        if name != ".wh..wh..opq" {
                            seen.entry(hidden.to_string()).or_insert(None);
                        }
                        continue;
                    }
                    if seen.contains_key(&name) {
                        continue;
                    }
                    match fs::symlink_metadata(e.path()) {
                        Ok(m) if is_whiteout(&m) => {
                            seen.insert(name, None);
                        }
                        Ok(m) => {
                            seen.insert(name, Some((e.path(), m)));
                        }
                        Err(_) => {}
                    }
                }
            }
            if opaque {
                break; // lower layers are hidden below an opaque directory
            }
        }
        seen.into_iter()
            .filter_map(|(n, v)| v.map(|(p, m)| (n, p, m)))
            .collect()
    }

    /// Read a whole file from the view (following symlinks).
    pub fn read_file(&self, path: &str) -> Option<Vec<u8>> {
        let (p, m) = self.stat(path)?;
        if !m.is_file() {
            return None;
        }
        fs::read(p).ok()
    }
}
