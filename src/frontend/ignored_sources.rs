//! BuildKit's CopyIgnoredFile check: a COPY or ADD source from the build
//! context that the `.dockerignore` excludes (so the step cannot find it).
//! As BuildKit, nothing is checked when the file has exception patterns
//! (`!…`): what they bring back cannot be told from a source's name.

use super::lint::Linter;
use super::position::Pos;
use crate::context::ignore::{IgnoreMatcher, clean_path};

/// Warn for each of `sources` (of a COPY, or an ADD with `add`) that
/// `ignore` excludes.
pub fn check(
    ignore: Option<&IgnoreMatcher>,
    add: bool,
    sources: &[String],
    at: Pos,
    linter: &mut Linter,
) {
    let Some(m) = ignore else { return };
    if m.patterns.is_empty() || m.patterns.iter().any(|p| p.exception) {
        return;
    }
    let cmd = if add { "Add" } else { "Copy" };
    for src in sources {
        if add && (crate::ops::fetch::is_url(src) || src.starts_with("git@")) {
            continue;
        }
        let clean = match clean_path(src.trim_start_matches('/')) {
            c if c.is_empty() => ".".to_string(),
            c => c,
        };
        // The context's root is excluded only by a pattern of everything.
        let excluded = match clean.as_str() {
            "." => m
                .patterns
                .iter()
                .any(|p| matches!(p.text.as_str(), "*" | "**" | "**/*")),
            path => m.is_excluded(path),
        };
        if excluded {
            linter.report(
                "CopyIgnoredFile",
                at,
                format!("Attempting to {cmd} file {clean:?} that is excluded by .dockerignore"),
            );
        }
    }
}
