//! What kind of source an ADD names (HTTP(S) URL, git repository, local
//! path), with BuildKit's rules for `--checksum`. Git sources are refused
//! clearly until rbuild can fetch them.

use super::ast::Add;

/// A git source as BuildKit's `dfgitutil.ParseGitRef` sees one:
/// `git://` and `ssh://` URLs, scp-like `user@host:path`, and HTTP(S) URLs
/// whose path ends in `.git` (before `#ref` and `?query`).
pub fn is_git_source(src: &str) -> bool {
    if src.starts_with("git://") || src.starts_with("ssh://") {
        return true;
    }
    if let Some(rest) = src
        .strip_prefix("https://")
        .or_else(|| src.strip_prefix("http://"))
    {
        let no_frag = rest.split('#').next().unwrap_or("");
        let no_query = no_frag.split('?').next().unwrap_or("");
        return no_query.ends_with(".git");
    }
    // scp-like: user@host:path (user of [A-Za-z0-9_], host without '/').
    if let Some((user, rest)) = src.split_once('@')
        && !user.is_empty()
        && user.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && let Some((host, _)) = rest.split_once(':')
        && !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return true;
    }
    false
}

/// An HTTP(S) source that is not a git repository.
pub fn is_http_source(src: &str) -> bool {
    (src.starts_with("http://") || src.starts_with("https://")) && !is_git_source(src)
}

/// BuildKit's checks of an ADD's sources (after expansion).
pub fn check_add(add: &Add) -> Result<(), String> {
    let sources = &add.paths.sources;
    if add.checksum.as_deref().is_some_and(|c| !c.is_empty()) {
        if sources.len() + add.paths.inline_sources.len() != 1 {
            return Err("checksum can't be specified for multiple sources".into());
        }
        if !sources
            .iter()
            .all(|s| is_http_source(s) || is_git_source(s))
        {
            return Err("checksum requires HTTP(S) or Git sources".into());
        }
    }
    if let Some(g) = sources.iter().find(|s| is_git_source(s)) {
        return Err(format!(
            "ADD {g}: git sources are not supported yet; clone the repository into the build context and COPY it"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_sources_like_buildkit() {
        for g in [
            "https://github.com/moby/buildkit.git",
            "https://github.com/moby/buildkit.git#v0.10.1",
            "https://example.com/r.git?ref=main",
            "git@github.com:moby/buildkit.git",
            "git://example.com/r",
            "ssh://git@example.com/r",
        ] {
            assert!(is_git_source(g), "{g}");
            assert!(!is_http_source(g), "{g}");
        }
        for h in ["https://example.com/a.tar.gz", "http://127.0.0.1:8080/x"] {
            assert!(is_http_source(h) && !is_git_source(h), "{h}");
        }
        for local in [
            "a.txt",
            "dir/",
            "user@host",
            "./git@x:y",
            "github.com/moby/moby",
        ] {
            assert!(!is_git_source(local) && !is_http_source(local), "{local}");
        }
    }
}
