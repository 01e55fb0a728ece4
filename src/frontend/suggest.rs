//! "Did you mean ...?" suggestions for misspelled names, as BuildKit's
//! `util/suggest`: the closest option at Levenshtein distance under 3.

/// Levenshtein edit distance (insertions, deletions, substitutions).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Give `val` the case of `orig` when `orig` is all lower or all upper case.
fn match_case(val: &str, orig: &str) -> String {
    if orig == orig.to_lowercase() {
        val.to_lowercase()
    } else if orig == orig.to_uppercase() {
        val.to_uppercase()
    } else {
        val.to_string()
    }
}

/// The closest option to `word` (distance under 3), or `None` when `word`
/// is itself an option or nothing is close.
pub fn search(word: &str, options: &[&str], case_sensitive: bool) -> Option<String> {
    let val = if case_sensitive {
        word.to_string()
    } else {
        word.to_lowercase()
    };
    let mut best: Option<String> = None;
    let mut min = 3;
    for opt in options {
        let o = if case_sensitive {
            opt.to_string()
        } else {
            opt.to_lowercase()
        };
        if o == val {
            return None;
        }
        let d = distance(&val, &o);
        if d < min {
            min = d;
            best = Some(if case_sensitive {
                o
            } else {
                match_case(&o, word)
            });
        }
    }
    best
}

/// The closest candidate to `word` (case-sensitive), if it is a likely typo.
pub fn closest(word: &str, candidates: &[&str]) -> Option<String> {
    search(word, candidates, true)
}

/// Append " (did you mean X?)" when a close candidate exists (case-sensitive).
pub fn with_suggestion(message: String, word: &str, candidates: &[&str]) -> String {
    match closest(word, candidates) {
        Some(c) => format!("{message} (did you mean {c}?)"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let kws = ["FROM", "RUN", "COPY", "WORKDIR"];
        assert_eq!(search("FORM", &kws, false).as_deref(), Some("FROM"));
        assert_eq!(search("form", &kws, false).as_deref(), Some("from"));
        assert_eq!(search("COPPY", &kws, false).as_deref(), Some("COPY"));
        assert_eq!(search("XYZZY", &kws, false), None);
        assert_eq!(search("RUN", &kws, false), None);
    }

    #[test]
    fn buildkit_examples() {
        let types = ["bind", "cache", "tmpfs", "secret", "ssh"];
        assert_eq!(closest("tmp", &types).as_deref(), Some("tmpfs"));
        assert_eq!(
            closest("mont", &["mount", "network"]).as_deref(),
            Some("mount")
        );
        assert_eq!(closest("bulid", &["build"]).as_deref(), Some("build"));
    }
}
