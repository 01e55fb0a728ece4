//! Locating and reading the Dockerfile (`-f FILE`, `-f -`, `CONTEXT/Dockerfile`).

use anyhow::{Context, Result};
use std::io::Read;
use std::path::Path;

/// A Dockerfile's name (for messages), path and text.
pub struct DockerfileSource {
    /// As shown in messages.
    pub display: String,
    /// The contents (invalid UTF-8 replaced).
    pub text: String,
}

/// Read the Dockerfile named by `-f` (relative to the current directory, as
/// docker does), or `CONTEXT/Dockerfile`.
pub fn read_dockerfile(file: Option<&Path>, context: &Path) -> Result<DockerfileSource> {
    if file == Some(Path::new("-")) {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading the Dockerfile from standard input")?;
        return Ok(DockerfileSource {
            display: "<stdin>".into(),
            text: String::from_utf8_lossy(&buf).into_owned(),
        });
    }
    let path = match file {
        Some(f) => f.to_path_buf(),
        None => context.join("Dockerfile"),
    };
    let bytes =
        std::fs::read(&path).with_context(|| format!("reading Dockerfile {}", path.display()))?;
    Ok(DockerfileSource {
        display: path
            .strip_prefix(".")
            .unwrap_or(&path)
            .display()
            .to_string(),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// Parse `K=V` (or `K`, taking the value from the environment, as docker does).
pub fn parse_build_arg(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some(("", _)) => Err(format!("invalid --build-arg {s:?}: empty name")),
        Some((k, v)) => Ok((k.to_string(), v.to_string())),
        None => match std::env::var(s) {
            Ok(v) => Ok((s.to_string(), v)),
            Err(_) => Ok((s.to_string(), String::new())),
        },
    }
}
