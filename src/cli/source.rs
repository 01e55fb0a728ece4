//! Locating and reading the Dockerfile (`-f FILE`, `-f -`, `CONTEXT/Dockerfile`).

use anyhow::{Context, Result};
use std::io::Read;
use std::path::Path;

/// A Dockerfile's name (for messages), path and text.
pub struct DockerfileSource {
    /// As shown in messages.
    pub display: String,
    /// The file read (None for standard input).
    pub path: Option<std::path::PathBuf>,
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
            path: None,
            text: String::from_utf8_lossy(&buf).into_owned(),
        });
    }
    let mut path = match file {
        Some(f) => f.to_path_buf(),
        None => context.join("Dockerfile"),
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        // As BuildKit: a missing `Dockerfile` falls back to `dockerfile`.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let lower = path.with_file_name("dockerfile");
            match std::fs::read(&lower) {
                Ok(b) if path.file_name() == Some("Dockerfile".as_ref()) => {
                    path = lower;
                    b
                }
                _ => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("reading Dockerfile {}", path.display())));
                }
            }
        }
        Err(e) => {
            return Err(
                anyhow::Error::new(e).context(format!("reading Dockerfile {}", path.display()))
            );
        }
    };
    Ok(DockerfileSource {
        display: path
            .strip_prefix(".")
            .unwrap_or(&path)
            .display()
            .to_string(),
        path: Some(path),
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

/// Print the build checks' findings with the line and a caret.
pub fn print_lint_warnings(
    src: &DockerfileSource,
    linter: &rbuild::frontend::lint::Linter,
    err: &rbuild::build::io::Sink,
) {
    for w in &linter.warnings {
        err.text(&rbuild::frontend::diagnostics::render(
            &src.display,
            &src.text,
            w.pos,
            "warning",
            &format!("{}: {}", w.rule, w.message),
        ));
    }
}

/// The `.dockerignore` of a local context directory (beside the
/// Dockerfile, else at the context's root), for the frontend's
/// CopyIgnoredFile check; None for other contexts or an unreadable file
/// (opening the context reports that).
pub fn local_ignore(
    context: &std::path::Path,
    dockerfile: Option<&std::path::Path>,
) -> Option<std::sync::Arc<rbuild::context::ignore::IgnoreMatcher>> {
    if !context.is_dir() {
        return None;
    }
    let root = rbuild::fsroot::Root::open(context).ok()?;
    let df = dockerfile
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| context.join("Dockerfile"));
    rbuild::context::ignore::IgnoreMatcher::load(&root, &df)
        .ok()
        .map(std::sync::Arc::new)
}
