//! Shell wildcard patterns for `${V#p}`, `${V%p}` and `${V/p/r}`.

/// A shell wildcard pattern (`*`, `?`, escaped literals) as used by `${V#p}`,
/// `${V%p}` and `${V/p/r}`; bracket expressions are not supported, as in BuildKit.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Star,
    Any,
    Lit(char),
}

pub(super) struct Pattern(Vec<Tok>);

impl Pattern {
    pub(super) fn parse(p: &str) -> Result<Self, String> {
        let mut toks = Vec::new();
        let mut it = p.chars().peekable();
        while let Some(c) = it.next() {
            match c {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::Any),
                '\\' => match it.peek().copied() {
                    Some('}' | '/') => {}
                    Some(n @ ('*' | '?' | '\\')) => {
                        it.next();
                        toks.push(Tok::Lit(n));
                    }
                    Some(n) => return Err(format!("invalid escape '\\{n}'")),
                    None => return Err("invalid escape '\\'".into()),
                },
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(Pattern(toks))
    }

    /// Lengths of the prefixes of `s` that the whole pattern matches, ascending.
    /// (An NFA simulation: O(chars x tokens), stopping when nothing can match.)
    fn prefix_matches(&self, s: &[char]) -> Vec<usize> {
        let m = self.0.len();
        let closure = |set: &mut Vec<bool>| {
            for i in 0..m {
                if set[i] && self.0[i] == Tok::Star {
                    set[i + 1] = true;
                }
            }
        };
        let mut cur = vec![false; m + 1];
        cur[0] = true;
        closure(&mut cur);
        let mut out = Vec::new();
        for (j, c) in s.iter().enumerate() {
            if cur[m] {
                out.push(j);
            }
            let mut nxt = vec![false; m + 1];
            let mut any = false;
            for i in 0..m {
                if !cur[i] {
                    continue;
                }
                match &self.0[i] {
                    Tok::Star => nxt[i] = true,
                    Tok::Any => nxt[i + 1] = true,
                    Tok::Lit(x) if x == c => nxt[i + 1] = true,
                    Tok::Lit(_) => {}
                }
                any = true;
            }
            if !any {
                return out;
            }
            closure(&mut nxt);
            cur = nxt;
        }
        if cur[m] {
            out.push(s.len());
        }
        out
    }

    fn reversed(&self) -> Pattern {
        Pattern(self.0.iter().rev().cloned().collect())
    }

    pub(super) fn trim_prefix(&self, value: &str, longest: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let lens = self.prefix_matches(&chars);
        let pick = if longest { lens.last() } else { lens.first() };
        match pick {
            Some(&n) => chars[n..].iter().collect(),
            None => value.to_string(),
        }
    }

    pub(super) fn trim_suffix(&self, value: &str, longest: bool) -> String {
        let rev: Vec<char> = value.chars().rev().collect();
        let lens = self.reversed().prefix_matches(&rev);
        let pick = if longest { lens.last() } else { lens.first() };
        match pick {
            Some(&n) => rev[n..].iter().rev().collect(),
            None => value.to_string(),
        }
    }

    /// Longest match starting exactly at `start`, as an end index.
    fn longest_at(&self, chars: &[char], start: usize) -> Option<usize> {
        self.prefix_matches(&chars[start..])
            .last()
            .map(|n| start + n)
    }

    pub(super) fn replace(&self, value: &str, replacement: &str, all: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        let mut last_match_end: Option<usize> = None;
        while i <= chars.len() {
            match self.longest_at(&chars, i) {
                Some(end) if !(end == i && last_match_end == Some(i)) => {
                    out.push_str(replacement);
                    last_match_end = Some(end);
                    if !all {
                        out.extend(&chars[end..]);
                        return out;
                    }
                    if end > i {
                        i = end;
                        continue;
                    }
                    if let Some(c) = chars.get(i) {
                        out.push(*c);
                    }
                    i += 1;
                }
                _ => {
                    if let Some(c) = chars.get(i) {
                        out.push(*c);
                    }
                    i += 1;
                }
            }
        }
        out
    }
}
