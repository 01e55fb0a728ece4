//! The `--warm` config: TOML (the format of `registries.toml`, read with
//! the `toml` crate rbuild already uses; comments let operators say why a
//! project is kept warm, which JSON cannot).
//!
//! ```toml
//! interval = "15m"                  # re-resolve the bases this often
//! bases = ["debian:bookworm"]       # also pulled when their digest changes
//!
//! [[project]]
//! name = "app"
//! git = "https://git.example.com/app.git"   # or: dir = "/src/app"
//! ref = "main"                      # git branch or tag (default: HEAD)
//! context = "."                     # inside the checkout
//! dockerfile = "Dockerfile"         # relative to the context
//! target = "runtime"
//! build_args = { VERSION = "1.2" }
//! tags = ["app:warm"]
//! cache_to = ["type=registry,ref=reg.example.com/app:cache,mode=max"]
//! # bases = ["debian:bookworm"]    # instead of those its FROM lines name
//! ```

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors reading the config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("--warm {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid config.
    #[error("--warm {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong (with the line, from the TOML parser).
        message: String,
    },
}

/// The whole config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmConfig {
    /// How often bases are re-resolved (a Go duration: `30s`, `15m`, `1h`).
    #[serde(default = "default_interval")]
    pub interval: String,
    /// Base images kept current in the store (pulled when they change),
    /// besides those the projects use.
    #[serde(default)]
    pub bases: Vec<String>,
    /// Projects rebuilt when a base they use changes.
    #[serde(default, rename = "project")]
    pub projects: Vec<Project>,
}

fn default_interval() -> String {
    "15m".into()
}

/// A project kept warm.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// Its name (letters, digits, `.`, `_`, `-`).
    pub name: String,
    /// A directory on the server.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// A git URL, cloned with the `git` command.
    #[serde(default)]
    pub git: Option<String>,
    /// A git branch or tag.
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
    /// The context, relative to the directory or checkout.
    #[serde(default = "dot")]
    pub context: String,
    /// The Dockerfile, relative to the context.
    #[serde(default = "dockerfile")]
    pub dockerfile: String,
    /// `--target`.
    #[serde(default)]
    pub target: Option<String>,
    /// `--build-arg`s.
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// `-t` names given to the result.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `--cache-to` exports after each warm build.
    #[serde(default)]
    pub cache_to: Vec<String>,
    /// `--cache-from` imports.
    #[serde(default)]
    pub cache_from: Vec<String>,
    /// `--platform`.
    #[serde(default)]
    pub platform: Option<String>,
    /// The bases it depends on; when absent, those its Dockerfile names
    /// (FROM, COPY --from, RUN --mount=from) after ARG expansion.
    #[serde(default)]
    pub bases: Option<Vec<String>>,
}

fn dot() -> String {
    ".".into()
}

fn dockerfile() -> String {
    "Dockerfile".into()
}

impl WarmConfig {
    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<WarmConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parse and check a config's text.
    pub fn parse(text: &str) -> Result<WarmConfig, String> {
        let c: WarmConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.interval()?;
        let mut names = std::collections::BTreeSet::new();
        for p in &c.projects {
            p.check()?;
            if !names.insert(p.name.as_str()) {
                return Err(format!("project {:?} is listed twice", p.name));
            }
        }
        for b in c
            .bases
            .iter()
            .chain(c.projects.iter().flat_map(|p| p.bases.iter().flatten()))
        {
            crate::registry::Reference::parse(b).map_err(|e| format!("base {b:?}: {e}"))?;
        }
        Ok(c)
    }

    /// The schedule's interval (at least one second).
    pub fn interval(&self) -> Result<Duration, String> {
        let ns = crate::frontend::duration::parse_duration(&self.interval)
            .map_err(|e| format!("interval: {e}"))?;
        let d = Duration::from_nanos(ns);
        if d < Duration::from_secs(1) {
            return Err(format!(
                "interval {:?} is shorter than one second",
                self.interval
            ));
        }
        Ok(d)
    }
}

/// A path inside a checkout: relative, no `..`.
fn inside(what: &str, p: &str) -> Result<(), String> {
    let path = Path::new(p);
    if path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!(
            "{what} {p:?} must be a relative path inside the project"
        ));
    }
    Ok(())
}

impl Project {
    fn check(&self) -> Result<(), String> {
        let n = &self.name;
        if n.is_empty()
            || n.starts_with('.')
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(format!(
                "project name {n:?}: use letters, digits, '.', '_' and '-'"
            ));
        }
        match (&self.dir, &self.git) {
            (Some(_), Some(_)) => return Err(format!("project {n}: both dir and git")),
            (None, None) => return Err(format!("project {n}: needs dir or git")),
            (Some(d), None) if !d.is_absolute() => {
                return Err(format!("project {n}: dir {} must be absolute", d.display()));
            }
            _ => {}
        }
        if self.git_ref.is_some() && self.git.is_none() {
            return Err(format!("project {n}: ref needs git"));
        }
        if let Some(r) = &self.git_ref
            && (r.starts_with('-') || r.is_empty())
        {
            return Err(format!("project {n}: invalid ref {r:?}"));
        }
        if let Some(g) = &self.git
            && g.starts_with('-')
        {
            return Err(format!("project {n}: invalid git URL {g:?}"));
        }
        inside(&format!("project {n}: context"), &self.context)?;
        inside(&format!("project {n}: dockerfile"), &self.dockerfile)?;
        for t in &self.tags {
            crate::registry::reference::validate(t)
                .map_err(|e| format!("project {n}: tag {t:?}: {e}"))?;
        }
        Ok(())
    }

    /// A fingerprint of the project's settings: a changed one rebuilds it.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(sha2::Sha256::digest(&json))[..16].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let c = WarmConfig::parse(
            "interval = \"30s\"\nbases = [\"busybox\"]\n[[project]]\nname = \"app\"\ngit = \"file:///r\"\nbuild_args = { A = \"1\" }\n",
        )
        .unwrap();
        assert_eq!(c.interval().unwrap(), Duration::from_secs(30));
        assert_eq!(c.projects[0].dockerfile, "Dockerfile");
        assert_eq!(c.projects[0].build_args["A"], "1");
        for (bad, why) in [
            ("interval = \"5\"", "missing unit"),
            ("interval = \"10ms\"", "shorter"),
            ("[[project]]\nname = \"a\"", "needs dir or git"),
            ("[[project]]\nname = \"a/b\"\ndir = \"/x\"", "project name"),
            ("[[project]]\nname = \"a\"\ndir = \"x\"", "absolute"),
            (
                "[[project]]\nname = \"a\"\ndir = \"/x\"\ndockerfile = \"../D\"",
                "relative",
            ),
            (
                "[[project]]\nname = \"a\"\ndir = \"/x\"\n[[project]]\nname = \"a\"\ndir = \"/y\"",
                "twice",
            ),
            (
                "[[project]]\nname = \"a\"\ndir = \"/x\"\ncolour = 1",
                "unknown field",
            ),
            ("bases = [\"UPPER\"]", "base"),
        ] {
            let e = WarmConfig::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
