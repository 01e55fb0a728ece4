//! COPY --from sources: select paths in another stage's (or image's) merged
//! filesystem with the same rules as the build context.

use crate::context::ignore::Pattern;
use crate::context::{ContextError, Entry, Kind, Selection, has_wildcards};
use crate::layer::view::MergedView;

fn entry(rel: String, path: &std::path::Path) -> Result<Entry, ContextError> {
    Entry::from_path(rel, path.to_path_buf()).map_err(|source| ContextError::Io {
        what: "stat",
        path: path.to_path_buf(),
        source,
    })
}

/// Walk a directory of the view: every entry below it, sorted, with paths
/// relative to it (under `prefix`).
pub fn walk_view(
    view: &MergedView,
    dir: &[String],
    prefix: &str,
    out: &mut Vec<Entry>,
) -> Result<(), ContextError> {
    for (rel, path, _) in view.walk(dir) {
        let rel = if prefix.is_empty() {
            rel
        } else {
            format!("{prefix}/{rel}")
        };
        out.push(entry(rel, &path)?);
    }
    Ok(())
}

/// Select what `src` names in `view`.
pub fn select_in_view(view: &MergedView, src: &str) -> Result<Vec<Selection>, ContextError> {
    let parts = crate::layer::view::clean_components(src);
    let candidates: Vec<Vec<String>> = if has_wildcards(src) {
        let mut current: Vec<Vec<String>> = vec![Vec::new()];
        for seg in &parts {
            let pat = Pattern::new(seg).ok().flatten();
            let mut next = Vec::new();
            if seg == "**" {
                // Any depth, none included (patternmatcher's `**`).
                for base in &current {
                    next.push(base.clone());
                    let dir = view.resolve(&format!("/{}", base.join("/")), true);
                    let mut below = Vec::new();
                    walk_view(view, &dir, "", &mut below)?;
                    for e in below.into_iter().filter(|e| e.kind == Kind::Dir) {
                        let mut c = base.clone();
                        c.extend(crate::layer::view::clean_components(&e.rel));
                        next.push(c);
                    }
                }
                current = next;
                continue;
            }
            for base in &current {
                let dir = view.resolve(&format!("/{}", base.join("/")), true);
                for (name, _, _) in view.read_dir(&dir) {
                    if pat.as_ref().is_some_and(|p| p.matches(&name)) {
                        let mut c = dir.clone();
                        c.push(name);
                        next.push(c);
                    }
                }
            }
            current = next;
        }
        current
    } else {
        vec![parts]
    };
    let mut out = Vec::new();
    for c in candidates {
        let resolved = view.resolve(&format!("/{}", c.join("/")), true);
        let Some((path, meta)) = view.lookup_exact(&resolved) else {
            continue;
        };
        let mut root = entry(String::new(), &path)?;
        root.rel = String::new();
        let mut children = Vec::new();
        if meta.is_dir() {
            walk_view(view, &resolved, "", &mut children)?;
        }
        out.push(Selection {
            source: src.to_string(),
            path: c.join("/"),
            root,
            children,
        });
    }
    if out.is_empty() {
        return Err(ContextError::NotInStage(src.to_string()));
    }
    Ok(out)
}
