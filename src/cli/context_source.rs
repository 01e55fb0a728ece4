//! Where the build context comes from: a directory, or `-` (standard input
//! holding a Dockerfile, as `docker build - < Dockerfile`, or a tar archive,
//! possibly compressed). URLs and git repositories are clear "not supported
//! yet" errors.

use super::source::{DockerfileSource, read_dockerfile};
use anyhow::{Context as _, Result, bail};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// A context directory and its Dockerfile.
pub struct PreparedContext {
    /// The context directory.
    pub dir: PathBuf,
    /// The Dockerfile.
    pub dockerfile: DockerfileSource,
    /// The Dockerfile's path, for `.dockerignore` lookups.
    pub dockerfile_path: PathBuf,
    /// A temporary directory holding a context read from standard input.
    _tmp: Option<tempfile::TempDir>,
}

/// Docker's test for a git context (`urlutil.IsGitURL`).
fn is_git(s: &str) -> bool {
    let url = s.starts_with("http://") || s.starts_with("https://");
    (url && (s.ends_with(".git") || s.contains(".git#")))
        || ["git://", "git@", "github.com/"]
            .iter()
            .any(|p| s.starts_with(p))
}

/// A reader that decompresses `head ++ rest` when it is a (compressed) tar.
fn archive(bytes: &[u8]) -> Option<Box<dyn Read + '_>> {
    let h = &bytes[..bytes.len().min(512)];
    if h.starts_with(&[0x1f, 0x8b]) {
        Some(Box::new(flate2::read::MultiGzDecoder::new(bytes)))
    } else if h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::new(bytes)
            .ok()
            .map(|d| Box::new(d) as Box<dyn Read>)
    } else if h.starts_with(b"BZh") {
        Some(Box::new(bzip2::read::MultiBzDecoder::new(bytes)))
    } else if h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Box::new(liblzma::read::XzDecoder::new_multi_decoder(bytes)))
    } else if h.len() >= 262 && &h[257..262] == b"ustar" {
        Some(Box::new(bytes))
    } else {
        None
    }
}

/// Resolve the context argument and read the Dockerfile (`-f`).
pub fn prepare(context: &Path, file: Option<&Path>) -> Result<PreparedContext> {
    let arg = context.to_string_lossy();
    if is_git(&arg) {
        bail!(
            "git build contexts are not supported yet ({arg}); clone the repository and build its directory"
        );
    }
    if arg.starts_with("http://") || arg.starts_with("https://") {
        bail!(
            "remote build contexts (URLs) are not supported yet ({arg}); download and unpack it, then build the directory"
        );
    }
    if arg != "-" {
        let dockerfile = read_dockerfile(file, context)?;
        if !context.is_dir() {
            bail!("build context {} is not a directory", context.display());
        }
        let dockerfile_path = dockerfile
            .path
            .clone()
            .unwrap_or_else(|| context.join("Dockerfile"));
        return Ok(PreparedContext {
            dir: context.to_path_buf(),
            dockerfile,
            dockerfile_path,
            _tmp: None,
        });
    }
    if file == Some(Path::new("-")) {
        bail!("invalid argument: can't use stdin for both build context and dockerfile");
    }
    let mut input = Vec::new();
    io::stdin()
        .read_to_end(&mut input)
        .context("reading the build context from standard input")?;
    let tmp = tempfile::Builder::new()
        .prefix("rbuild-context-")
        .tempdir()
        .context("creating a directory for the build context")?;
    let dir = tmp.path().join("context");
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    match archive(&input) {
        Some(reader) => {
            let mut ar = tar::Archive::new(reader);
            ar.set_preserve_permissions(true);
            ar.set_preserve_mtime(true);
            // `unpack` refuses entries that would land outside `dir`.
            ar.unpack(&dir)
                .context("unpacking the build context archive from standard input")?;
            // `-f` names a file inside the archive.
            let f = file.map(|f| dir.join(f.strip_prefix("/").unwrap_or(f)));
            let dockerfile = read_dockerfile(f.as_deref(), &dir)?;
            let dockerfile_path = dockerfile
                .path
                .clone()
                .unwrap_or_else(|| dir.join("Dockerfile"));
            Ok(PreparedContext {
                dir,
                dockerfile,
                dockerfile_path,
                _tmp: Some(tmp),
            })
        }
        None => {
            // A Dockerfile and no context, as `docker build - < Dockerfile`.
            if file.is_some() {
                bail!("-f cannot be used when standard input holds the Dockerfile (context -)");
            }
            let dockerfile_path = dir.join("Dockerfile");
            Ok(PreparedContext {
                dockerfile: DockerfileSource {
                    display: "<stdin>".into(),
                    path: None,
                    text: String::from_utf8_lossy(&input).into_owned(),
                },
                dir,
                dockerfile_path,
                _tmp: Some(tmp),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_git_urls_like_docker() {
        assert!(is_git("https://github.com/moby/moby.git"));
        assert!(is_git("https://example.com/r.git#main:dir"));
        assert!(is_git("git@github.com:moby/moby"));
        assert!(is_git("github.com/moby/moby"));
        assert!(!is_git("https://example.com/ctx.tar.gz"));
        assert!(!is_git("./git@dir"));
    }

    #[test]
    fn sniffs_archives() {
        assert!(archive(b"FROM scratch\n").is_none());
        assert!(archive(&[0x1f, 0x8b, 8, 0]).is_some());
    }
}
