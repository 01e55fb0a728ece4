//! A container's environment, as Docker makes it: the image's `Env`, then
//! `--env-file` and `-e` (a later value replaces an earlier one; `-e K`
//! alone takes `K` from rbuild's own environment, and is left out when that
//! has none), then `PATH`, `HOSTNAME`, `HOME` and, with a terminal, `TERM`
//! when not set.

use std::path::{Path, PathBuf};

/// Errors reading `--env-file`.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The file cannot be read.
    #[error("--env-file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line with a variable name Docker refuses.
    #[error("--env-file {path}:{line}: variable {name:?} contains whitespace")]
    Whitespace {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The name.
        name: String,
    },
    /// `-e =V`.
    #[error("invalid environment variable: {0}")]
    Invalid(String),
}

/// Ordered `K=V` list where setting a key again replaces it in place.
#[derive(Debug, Default, Clone)]
pub struct EnvList(Vec<(String, String)>);

impl EnvList {
    /// Set `k` to `v`.
    pub fn set(&mut self, k: &str, v: &str) {
        match self.0.iter_mut().find(|(n, _)| n == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => self.0.push((k.to_string(), v.to_string())),
        }
    }

    /// Whether `k` is set.
    pub fn has(&self, k: &str) -> bool {
        self.0.iter().any(|(n, _)| n == k)
    }

    /// The value of `k`.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    /// Apply one `-e` / `--env-file` entry: `K=V`, or `K` from `host`.
    pub fn apply(
        &mut self,
        entry: &str,
        host: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), EnvError> {
        match entry.split_once('=') {
            Some(("", _)) => Err(EnvError::Invalid(entry.to_string())),
            Some((k, v)) => {
                self.set(k, v);
                Ok(())
            }
            None if entry.is_empty() => Err(EnvError::Invalid(entry.to_string())),
            None => {
                if let Some(v) = host(entry) {
                    self.set(entry, &v);
                }
                Ok(())
            }
        }
    }

    /// `K=V` strings.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

/// The entries of an env file, as Docker reads one: one `K=V` or `K` per
/// line, blank lines and `#` comments skipped, leading whitespace of a line
/// dropped, the value taken as is (no quotes removed).
pub fn read_env_file(path: &Path) -> Result<Vec<String>, EnvError> {
    let text = std::fs::read_to_string(path).map_err(|source| EnvError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name = line.split('=').next().unwrap_or("");
        if name.contains(char::is_whitespace) {
            return Err(EnvError::Whitespace {
                path: path.to_path_buf(),
                line: i + 1,
                name: name.to_string(),
            });
        }
        out.push(line.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_values_replace_and_bare_names_come_from_the_host() {
        let mut e = EnvList::default();
        let host = |k: &str| (k == "FROM_HOST").then(|| "h".to_string());
        for x in ["A=1", "B=2", "A=3", "FROM_HOST", "UNSET_ON_HOST", "C="] {
            e.apply(x, &host).unwrap();
        }
        assert_eq!(e.to_strings(), ["A=3", "B=2", "FROM_HOST=h", "C="]);
        assert!(e.apply("=x", &host).is_err());
    }

    #[test]
    fn env_file_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("env");
        std::fs::write(&p, "# comment\n\nA=1 2\n  B=\"q\"\nC\n").unwrap();
        assert_eq!(read_env_file(&p).unwrap(), ["A=1 2", "B=\"q\"", "C"]);
        std::fs::write(&p, "A=1\nBAD NAME=2\n").unwrap();
        let err = read_env_file(&p).unwrap_err().to_string();
        assert!(err.contains(":2:"), "{err}");
    }
}
