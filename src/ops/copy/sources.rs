//! COPY/ADD's inputs: the sources resolved in the context, another stage or
//! a URL, and their content digests (the cache key's inputs). `--from`
//! sources are hashed once per source snapshot and the digests remembered.

use super::CopyOp;
use crate::context::{Entry, Selection, selection_digest};
use crate::digest::Digest;
use crate::layer::view::MergedView;
use crate::ops::key::KeyParts;
use crate::ops::op::{OpEnv, OpError, Source};
use crate::ops::view_select::select_in_view;

/// What a COPY/ADD resolved for its key, used again when it runs.
pub struct CopyInputs {
    /// Resolved sources.
    pub selections: Vec<Selection>,
    /// Layer view of `--from`, when used.
    pub from_view: Option<MergedView>,
    /// ADD URLs with `--checksum`, fetched only when the step runs.
    pub lazy_urls: Vec<(String, Digest)>,
    /// Where downloads live until the step is done.
    pub downloads: Option<tempfile::TempDir>,
}

fn io_err(what: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> OpError {
    let path = path.to_path_buf();
    move |source| OpError::Io { what, path, source }
}

/// A downloaded file as a COPY/ADD selection (mode 0600, as Docker's ADD).
pub fn url_selection(url: &str, d: &crate::ops::fetch::Downloaded) -> Result<Selection, OpError> {
    let mut root =
        Entry::from_path(String::new(), d.path.clone()).map_err(io_err("stat", &d.path))?;
    root.mode = 0o600;
    root.mtime = (d.mtime.unwrap_or(0), 0);
    root.owner = (0, 0);
    root.digest = Some(d.digest);
    Ok(Selection {
        source: url.to_string(),
        path: d.name.clone(),
        root,
        children: Vec::new(),
    })
}

/// Download `url` into a new numbered directory of `dir`.
pub fn fetch_into(
    dir: &tempfile::TempDir,
    n: usize,
    url: &str,
    sum: Option<&Digest>,
) -> Result<Selection, OpError> {
    let at = dir.path().join(n.to_string());
    std::fs::create_dir_all(&at).map_err(io_err("creating", &at))?;
    let got = crate::ops::fetch::download(url, &at, sum)?;
    url_selection(url, &got)
}

impl CopyOp {
    /// Resolve the sources and add their digests to `parts`.
    pub(super) fn resolve(
        &self,
        env: &OpEnv<'_>,
        parts: &mut KeyParts,
    ) -> Result<CopyInputs, OpError> {
        for inline in &self.inline {
            parts.add(
                format!("inline:{}", inline.name),
                Digest::of(inline.content.as_bytes()).to_string(),
            );
        }
        let view = match &self.from {
            Some(Source::Scratch) => Some(MergedView::default()),
            Some(src) => Some(env.source(src)?.view),
            None => None,
        };
        let mut inputs = CopyInputs {
            selections: Vec::new(),
            from_view: None,
            lazy_urls: Vec::new(),
            downloads: None,
        };
        for src in &self.sources {
            if self.add && crate::ops::fetch::is_url(src) {
                self.url_source(env, src, parts, &mut inputs)?;
                continue;
            }
            if self.add && src.starts_with("git@") {
                return Err(OpError::Unsupported(format!(
                    "ADD {src}: git sources are not supported yet"
                )));
            }
            let sels = select_and_hash(env, view.as_ref(), src, parts)?;
            inputs.selections.extend(sels);
        }
        inputs.from_view = view;
        Ok(inputs)
    }

    fn url_source(
        &self,
        env: &OpEnv<'_>,
        src: &str,
        parts: &mut KeyParts,
        inputs: &mut CopyInputs,
    ) -> Result<(), OpError> {
        match &self.checksum {
            // The checksum is the key: no download unless the step runs.
            Some(c) => {
                let d = crate::ops::fetch::parse_checksum(c)?;
                parts.add(format!("url:{src}"), d.to_string());
                inputs.lazy_urls.push((src.to_string(), d));
            }
            None => {
                if inputs.downloads.is_none() {
                    inputs.downloads = Some(env.store.temp_dir("download")?);
                }
                let Some(dir) = inputs.downloads.as_ref() else {
                    return Err(OpError::Internal("no download directory".into()));
                };
                let sel = fetch_into(dir, inputs.selections.len(), src, None)?;
                let digest = sel.root.digest.unwrap_or_else(|| Digest::of(b""));
                parts.add(format!("url:{src}"), digest.to_string());
                inputs.selections.push(sel);
            }
        }
        Ok(())
    }
}

/// Select `src` in the context (or `view`) and digest what was selected.
pub(crate) fn select_and_hash(
    env: &OpEnv<'_>,
    view: Option<&MergedView>,
    src: &str,
    parts: &mut KeyParts,
) -> Result<Vec<Selection>, OpError> {
    let found = match view {
        Some(v) => select_in_view(v, src),
        None => env
            .context
            .ok_or_else(|| OpError::Internal("no build context".into()))?
            .select(src),
    };
    let mut sels = match found {
        // A wildcard that matches nothing copies nothing (BuildKit's
        // AllowEmptyWildcard); a plain path must exist.
        Err(
            crate::context::ContextError::NotFound(_) | crate::context::ContextError::NotInStage(_),
        ) if crate::context::has_wildcards(src) => {
            parts.add(format!("source:{src}"), "empty".to_string());
            Vec::new()
        }
        r => r?,
    };
    for sel in sels.iter_mut() {
        let mut all: Vec<Entry> = Vec::with_capacity(sel.children.len() + 1);
        all.push(sel.root.clone());
        all.append(&mut sel.children);
        match (view, env.context) {
            (None, Some(ctx)) => ctx.digest(&mut all)?,
            _ => digest_plain(env, &mut all)?,
        }
        sel.root = all.remove(0);
        sel.children = all;
        parts.add(
            format!("source:{}", sel.path),
            selection_digest(sel).to_string(),
        );
    }
    Ok(sels)
}

/// Hash entries outside the context (another stage's files). A snapshot
/// never changes once committed, so a file's digest is remembered by its
/// snapshot path, size and mtime: the next build reads no file again.
fn digest_plain(env: &OpEnv<'_>, entries: &mut [Entry]) -> Result<(), OpError> {
    use rayon::prelude::*;
    let snapshots = env.store.root().join("snapshots");
    let memo = crate::cache::checksums::Checksums::open(env.store);
    let res: Vec<Result<Option<Digest>, std::io::Error>> = entries
        .par_iter()
        .map(|e| {
            if e.kind != crate::context::Kind::File {
                return Ok(None);
            }
            let key = e.abs.starts_with(&snapshots).then(|| {
                format!(
                    "{}\0{}\0{}.{}",
                    e.abs.display(),
                    e.size,
                    e.mtime.0,
                    e.mtime.1
                )
            });
            if let Some(d) = key.as_deref().and_then(|k| memo.get(k)) {
                return Ok(Some(d));
            }
            let (d, _) = crate::digest::hash_reader(e.open()?)?;
            if let Some(k) = key {
                memo.put(k, d);
            }
            Ok(Some(d))
        })
        .collect();
    memo.save();
    for (e, r) in entries.iter_mut().zip(res) {
        e.digest = r.map_err(io_err("hashing", &e.abs))?;
    }
    Ok(())
}

/// The file lists of a step's sources, stored as blobs: not part of the key,
/// but kept in the cache record so a later miss can name the changed files.
pub fn file_listings(
    store: &crate::cache::Store,
    selections: &[Selection],
) -> Result<Vec<(String, String)>, OpError> {
    let mut out = Vec::new();
    for sel in selections {
        let listing: String = std::iter::once(&sel.root)
            .chain(sel.children.iter())
            .filter_map(|e| {
                let path = if e.rel.is_empty() {
                    sel.path.clone()
                } else {
                    format!("{}/{}", sel.path, e.rel)
                };
                e.digest.map(|d| format!("{} {path}\n", d.hex()))
            })
            .collect();
        let (d, _) = store.put_blob(listing.as_bytes())?;
        out.push((
            format!("{}{}", crate::ops::key::EXPLAIN_ONLY, sel.path),
            d.to_string(),
        ));
    }
    Ok(out)
}
