//! `.dockerignore` with Docker's semantics: patterns cleaned like
//! `filepath.Clean`, leading `/` dropped, `!` exceptions, `*`, `?`, `[...]`,
//! `**`, and a path excluded when it or any parent directory matches.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// Any run of characters except `/`.
    Star,
    /// `**/`: zero or more whole directories.
    AnyDirs,
    /// `**` at the end: anything.
    Rest,
    /// One character except `/`.
    One,
    /// `[...]`.
    Class {
        negate: bool,
        items: Vec<(char, char)>,
    },
    Lit(char),
}

/// One `.dockerignore` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The cleaned pattern text.
    pub text: String,
    /// True for `!pattern` lines.
    pub exception: bool,
    toks: Vec<Tok>,
}

/// Why a `.dockerignore` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// Which file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A pattern is malformed.
    #[error("{path}:{line}: invalid pattern {pattern:?}: {reason}")]
    Pattern {
        /// Which file.
        path: PathBuf,
        /// Line number.
        line: usize,
        /// The pattern.
        pattern: String,
        /// What is wrong.
        reason: String,
    },
}

/// Lexically clean a slash-separated path like Go's `path.Clean`.
pub fn clean_path(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// The syntax check moby/patternmatcher makes with Go's `filepath.Match`:
/// a trailing `\`, an unterminated class, and a class item that is empty,
/// `-` or `]` are errors (`syntax error in pattern`).
fn go_pattern_syntax(p: &str) -> Result<(), String> {
    const BAD: &str = "syntax error in pattern";
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    // One class item or range bound (Go's getEsc).
    let esc = |i: &mut usize| -> Result<(), String> {
        match chars.get(*i) {
            None | Some('-') | Some(']') => Err(BAD.into()),
            Some('\\') => {
                *i += 2;
                if *i > chars.len() {
                    return Err(BAD.into());
                }
                Ok(())
            }
            Some(_) => {
                *i += 1;
                Ok(())
            }
        }
    };
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return Err(BAD.into());
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut ranges = 0;
                loop {
                    if chars.get(i) == Some(&']') && ranges > 0 {
                        i += 1;
                        break;
                    }
                    esc(&mut i)?;
                    if chars.get(i) == Some(&'-') {
                        i += 1;
                        esc(&mut i)?;
                    }
                    ranges += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

fn compile(p: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                toks.push(if i >= chars.len() {
                    Tok::Rest
                } else {
                    Tok::AnyDirs
                });
            }
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::One),
            '\\' => match chars.get(i) {
                Some(n) => {
                    toks.push(Tok::Lit(*n));
                    i += 1;
                }
                None => toks.push(Tok::Lit('\\')),
            },
            '[' => {
                let mut negate = false;
                if matches!(chars.get(i), Some('^')) {
                    negate = true;
                    i += 1;
                }
                let mut items = Vec::new();
                let mut closed = false;
                while i < chars.len() {
                    let mut lo = chars[i];
                    i += 1;
                    if lo == ']' && !items.is_empty() {
                        closed = true;
                        break;
                    }
                    if lo == '\\' {
                        lo = *chars.get(i).ok_or("unterminated character class")?;
                        i += 1;
                    }
                    let mut hi = lo;
                    if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
                        hi = chars[i + 1];
                        i += 2;
                        if hi == '\\' {
                            hi = *chars.get(i).ok_or("unterminated character class")?;
                            i += 1;
                        }
                        if hi < lo {
                            return Err(format!("invalid character class range {lo}-{hi}"));
                        }
                    }
                    items.push((lo, hi));
                }
                if !closed {
                    return Err("unterminated character class".into());
                }
                toks.push(Tok::Class { negate, items });
            }
            c => toks.push(Tok::Lit(c)),
        }
    }
    Ok(toks)
}

/// Forward NFA simulation of the pattern over `s`. Calls `accept(k)` for
/// every prefix length `k` the whole pattern matches, in increasing order, and
/// stops early when `accept` returns true (or no state is alive). Runs in
/// O(chars x tokens), so hostile patterns cannot make matching explode.
fn run_nfa(t: &[Tok], s: &[char], mut accept: impl FnMut(usize) -> bool) -> bool {
    let m = t.len();
    // cur[i]: tokens t[..i] match the consumed prefix; grp[i]: inside the
    // `.*/` group of the `**/` token at i.
    let mut cur = vec![false; m + 1];
    let mut grp = vec![false; m];
    cur[0] = true;
    let close = |cur: &mut Vec<bool>| {
        for i in 0..m {
            if cur[i] && matches!(t[i], Tok::Star | Tok::Rest | Tok::AnyDirs) {
                cur[i + 1] = true;
            }
        }
    };
    close(&mut cur);
    for (k, &c) in s.iter().enumerate() {
        if cur[m] && accept(k) {
            return true;
        }
        let mut nxt = vec![false; m + 1];
        let mut ngrp = vec![false; m];
        let mut alive = false;
        for i in 0..m {
            if grp[i] {
                ngrp[i] = true;
                if c == '/' {
                    nxt[i + 1] = true;
                }
                alive = true;
            }
            if !cur[i] {
                continue;
            }
            alive = true;
            match &t[i] {
                Tok::Lit(x) if *x == c => nxt[i + 1] = true,
                Tok::Lit(_) => {}
                Tok::One if c != '/' => nxt[i + 1] = true,
                Tok::One => {}
                Tok::Class { negate, items } => {
                    let hit = items.iter().any(|(lo, hi)| *lo <= c && c <= *hi);
                    if hit != *negate && c != '/' {
                        nxt[i + 1] = true;
                    }
                }
                Tok::Star if c != '/' => nxt[i] = true,
                Tok::Star => {}
                Tok::Rest => nxt[i] = true,
                Tok::AnyDirs => {
                    ngrp[i] = true;
                    if c == '/' {
                        nxt[i + 1] = true;
                    }
                }
            }
        }
        if !alive && !cur[m] {
            return false;
        }
        close(&mut nxt);
        cur = nxt;
        grp = ngrp;
    }
    cur[m] && accept(s.len())
}

impl Pattern {
    /// Parse one pattern line (already trimmed, not a comment).
    pub fn new(line: &str) -> Result<Option<Pattern>, String> {
        let mut p = line.trim();
        let exception = p.starts_with('!');
        if exception {
            p = p[1..].trim();
        }
        if p.is_empty() {
            if exception {
                return Err("illegal exclusion pattern: \"!\"".into());
            }
            return Ok(None);
        }
        let mut text = clean_path(p);
        if text.len() > 1 && text.starts_with('/') {
            text = text[1..].to_string();
        }
        go_pattern_syntax(&text)?;
        let toks = compile(&text)?;
        Ok(Some(Pattern {
            text,
            exception,
            toks,
        }))
    }

    /// Whether the pattern matches exactly this slash-separated path.
    pub fn matches(&self, path: &str) -> bool {
        let chars: Vec<char> = path.chars().collect();
        run_nfa(&self.toks, &chars, |k| k == chars.len())
    }

    /// Whether the pattern matches the path or one of its parent directories.
    fn matches_path_or_parent(&self, chars: &[char]) -> bool {
        run_nfa(&self.toks, chars, |k| k == chars.len() || chars[k] == '/')
    }
}

/// The patterns of a `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct IgnoreMatcher {
    /// Patterns in file order.
    pub patterns: Vec<Pattern>,
}

impl IgnoreMatcher {
    /// Parse the contents of a `.dockerignore` file.
    pub fn parse(text: &str, source: &Path) -> Result<IgnoreMatcher, IgnoreError> {
        let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            match Pattern::new(line) {
                Ok(Some(p)) => patterns.push(p),
                Ok(None) => {}
                Err(reason) => {
                    return Err(IgnoreError::Pattern {
                        path: source.to_path_buf(),
                        line: i + 1,
                        pattern: line.to_string(),
                        reason,
                    });
                }
            }
        }
        Ok(IgnoreMatcher { patterns })
    }

    /// Load the ignore file for a build: `<Dockerfile>.dockerignore` beside
    /// the Dockerfile if present, else `<context>/.dockerignore`, else none.
    /// Files inside the context are read through it (a `.dockerignore` that
    /// is a symlink cannot name a host file); a Dockerfile named outside the
    /// context (`-f`) is the caller's own path.
    pub fn load(
        context: &crate::fsroot::Root,
        dockerfile: &Path,
    ) -> Result<IgnoreMatcher, IgnoreError> {
        let mut beside = dockerfile.as_os_str().to_owned();
        beside.push(".dockerignore");
        let candidates = [PathBuf::from(beside), context.path().join(".dockerignore")];
        let read = |path: &Path| -> std::io::Result<Vec<u8>> {
            match path.strip_prefix(context.path()) {
                Ok(rel) => {
                    let mut bytes = Vec::new();
                    std::io::Read::read_to_end(
                        &mut context.open_file(&rel.to_string_lossy())?,
                        &mut bytes,
                    )?;
                    Ok(bytes)
                }
                Err(_) => std::fs::read(path),
            }
        };
        for path in candidates {
            match read(&path) {
                Ok(bytes) => return Self::parse(&String::from_utf8_lossy(&bytes), &path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(IgnoreError::Read { path, source }),
            }
        }
        Ok(IgnoreMatcher::default())
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded.
    pub fn is_excluded(&self, path: &str) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        let path = clean_path(path.trim_start_matches('/'));
        let chars: Vec<char> = path.chars().collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exception != matched {
                continue;
            }
            if p.matches_path_or_parent(&chars) {
                matched = !p.exception;
            }
        }
        matched
    }

    /// Whether an excluded directory may still contain included files
    /// (an exception pattern could re-include something below it).
    pub fn may_reinclude_below(&self, dir: &str) -> bool {
        let dir = clean_path(dir);
        self.patterns.iter().any(|p| {
            p.exception
                && (p.text.starts_with(&format!("{dir}/"))
                    || p.text.contains('*')
                    || p.text.contains('?')
                    || p.text.contains('['))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> IgnoreMatcher {
        IgnoreMatcher::parse(text, Path::new(".dockerignore")).unwrap()
    }

    #[test]
    fn basic_globs_and_parents() {
        let ig = m("*.log\nbuild\n/tmp/\n# comment\n");
        assert!(ig.is_excluded("a.log"));
        assert!(!ig.is_excluded("dir/a.log"), "* does not cross directories");
        assert!(ig.is_excluded("build/x/y.o"), "parent directory match");
        assert!(ig.is_excluded("tmp/file"));
        assert!(!ig.is_excluded("src/main.rs"));
    }

    #[test]
    fn double_star_and_exceptions() {
        let ig = m("**/*.md\n!README.md\nnode_modules\n!node_modules/keep\n");
        assert!(ig.is_excluded("docs/a/b.md"));
        assert!(ig.is_excluded("top.md"));
        assert!(!ig.is_excluded("README.md"));
        assert!(ig.is_excluded("node_modules/x"));
        assert!(!ig.is_excluded("node_modules/keep"));
        let all = m("**\n!src\n");
        assert!(all.is_excluded("anything/else"));
        assert!(!all.is_excluded("src"));
    }

    #[test]
    fn cleaned_patterns_and_classes() {
        let ig = m("./a/../b/*.txt\n  spaced  \nfile[0-9].c\n?x\n");
        assert_eq!(ig.patterns[0].text, "b/*.txt");
        assert!(ig.is_excluded("b/q.txt"));
        assert!(ig.is_excluded("spaced"));
        assert!(ig.is_excluded("file7.c"));
        assert!(!ig.is_excluded("filex.c"));
        assert!(ig.is_excluded("ax"));
        assert!(!ig.is_excluded("abx"));
    }

    #[test]
    fn last_match_wins() {
        let ig = m("*.txt\n!keep*.txt\nkeep-not.txt\n");
        assert!(ig.is_excluded("a.txt"));
        assert!(!ig.is_excluded("keep1.txt"));
        assert!(ig.is_excluded("keep-not.txt"));
    }

    #[test]
    fn invalid_class_is_an_error() {
        assert!(IgnoreMatcher::parse("[a-", Path::new("x")).is_err());
        for bad in ["!", "! ", "x\\", "[a-]", "[]a]", "[-a]", "["] {
            assert!(
                IgnoreMatcher::parse(bad, Path::new("x")).is_err(),
                "{bad:?} should be refused"
            );
        }
        for good in [
            "[a-c]", "[\\]]", "[^a]x", "**/*.go", "!keep", "a\\*b", "\\\\",
        ] {
            assert!(
                IgnoreMatcher::parse(good, Path::new("x")).is_ok(),
                "{good:?} should be accepted"
            );
        }
    }

    #[test]
    fn dockerfile_specific_ignore_file_takes_precedence() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "a\n").unwrap();
        std::fs::write(dir.path().join("app.Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join("app.Dockerfile.dockerignore"), "b\n").unwrap();
        let ig = IgnoreMatcher::load(
            &crate::fsroot::Root::open(dir.path()).unwrap(),
            &dir.path().join("app.Dockerfile"),
        )
        .unwrap();
        assert!(ig.is_excluded("b") && !ig.is_excluded("a"));
        let ig = IgnoreMatcher::load(
            &crate::fsroot::Root::open(dir.path()).unwrap(),
            &dir.path().join("Dockerfile"),
        )
        .unwrap();
        assert!(ig.is_excluded("a") && !ig.is_excluded("b"));
    }
}
