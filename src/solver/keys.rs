//! Cache keys. A step's key is the hash of its parent's key, its kind, its
//! canonical definition (what changes the result, never positions or
//! comments) and the digests of its inputs. Each named component is kept in
//! the cache record so a later miss can say what changed.

#[cfg(test)]
use crate::digest::Digest;

pub use crate::ops::key::KeyParts;

/// Explain the difference between this key's parts and an earlier record's.
pub fn explain(
    now: &[(String, String)],
    before: &[(String, String)],
    file_diff: impl Fn(&str, &str) -> Option<String>,
) -> String {
    let mut reasons = Vec::new();
    let changed = |n: &str| {
        let old = before.iter().find(|(b, _)| b == n).map(|(_, v)| v);
        let new = now.iter().find(|(b, _)| b == n).map(|(_, v)| v);
        old != new
    };
    for (name, value) in now {
        // The file list says more than the selection digest.
        if let Some(path) = name.strip_prefix("source:")
            && changed(&format!("files:{path}"))
        {
            continue;
        }
        match before.iter().find(|(n, _)| n == name) {
            None => reasons.push(format!("{name} is new")),
            Some((_, old)) if old != value => {
                let detail = if name == "parent" {
                    "the previous step changed".to_string()
                } else if let Some(d) = name
                    .strip_prefix("files:")
                    .and_then(|_| file_diff(old, value))
                {
                    d
                } else if name.starts_with("source:") {
                    "source content changed".to_string()
                } else if let Some(d) = (name == "def")
                    .then(|| super::def_diff::describe(old, value))
                    .flatten()
                {
                    d
                } else {
                    format!("{old:?} -> {value:?}")
                };
                reasons.push(format!("{name}: {detail}"));
            }
            _ => {}
        }
    }
    for (name, _) in before {
        if !now.iter().any(|(n, _)| n == name) {
            reasons.push(format!("{name} was removed"));
        }
    }
    if reasons.is_empty() {
        "no earlier record matches (cache pruned or --no-cache)".into()
    } else {
        reasons.join("; ")
    }
}

/// Compare two file lists ("digest path" lines) and describe the changes.
pub fn diff_file_lists(old: &str, new: &str) -> String {
    let parse = |s: &str| -> std::collections::BTreeMap<String, String> {
        s.lines()
            .filter_map(|l| {
                l.split_once(' ')
                    .map(|(d, p)| (p.to_string(), d.to_string()))
            })
            .collect()
    };
    let (a, b) = (parse(old), parse(new));
    let mut changes = Vec::new();
    for (p, d) in &b {
        match a.get(p) {
            None => changes.push(format!("{p} added")),
            Some(o) if o != d => changes.push(format!("{p} changed")),
            _ => {}
        }
    }
    for p in a.keys() {
        if !b.contains_key(p) {
            changes.push(format!("{p} removed"));
        }
    }
    let n = changes.len();
    if n == 0 {
        return "file metadata changed".into();
    }
    let mut s = changes.into_iter().take(5).collect::<Vec<_>>().join(", ");
    if n > 5 {
        s.push_str(&format!(" (+{} more)", n - 5));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_every_part() {
        let p = Digest::of(b"parent");
        let mut a = KeyParts::new(&p, "ENV");
        a.add("def", "A=1");
        let mut b = KeyParts::new(&p, "ENV");
        b.add("def", "A=2");
        assert_ne!(a.key(), b.key());
        let mut c = KeyParts::new(&p, "ENV");
        c.add("def", "A=1");
        assert_eq!(a.key(), c.key());
    }

    #[test]
    fn explains_changes() {
        let before = vec![("parent".into(), "x".into()), ("arg:V".into(), "1".into())];
        let now = vec![("parent".into(), "x".into()), ("arg:V".into(), "2".into())];
        assert_eq!(explain(&now, &before, |_, _| None), "arg:V: \"1\" -> \"2\"");
        assert_eq!(
            diff_file_lists("a x\nb y\n", "a x\nc y2\n"),
            "y2 added, y removed"
        );
    }
}
