//! "Did you mean ...?" suggestions for misspelled names.

/// Edit distance with adjacent transpositions (optimal string alignment), case-insensitive.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1) + usize::from(word.len() > 4);
    candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Append " (did you mean X?)" when a close candidate exists.
pub fn with_suggestion(message: String, word: &str, candidates: &[&str], prefix: &str) -> String {
    match closest(word, candidates) {
        Some(c) => format!("{message} (did you mean {prefix}{c}?)"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let kws = ["FROM", "RUN", "COPY", "WORKDIR"];
        assert_eq!(closest("FORM", &kws), Some("FROM"));
        assert_eq!(closest("COPPY", &kws), Some("COPY"));
        assert_eq!(closest("WORKDIRR", &kws), Some("WORKDIR"));
        assert_eq!(closest("XYZZY", &kws), None);
    }
}
