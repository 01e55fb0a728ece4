//! ADD's remote sources: download a URL into the store's temporary space,
//! hashing as it streams, and verify `--checksum`.

use crate::digest::{Digest, HashingWriter};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors fetching a URL.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request failed.
    #[error("downloading {url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The content is not what `--checksum` says.
    #[error("digest mismatch for {url}: expected {expected}, got {got}")]
    Checksum {
        /// The URL.
        url: String,
        /// From `--checksum`.
        expected: String,
        /// What arrived.
        got: Digest,
    },
    /// Bad `--checksum` value.
    #[error("invalid --checksum {0:?}: expected sha256:<64 hex digits>")]
    BadChecksum(String),
    /// Local I/O.
    #[error("{what} {path}: {source}")]
    Io {
        /// What.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Error.
        source: io::Error,
    },
}

/// A downloaded file.
#[derive(Debug, Clone)]
pub struct Downloaded {
    /// Where it is.
    pub path: PathBuf,
    /// Its sha256.
    pub digest: Digest,
    /// `Last-Modified`, as Unix seconds.
    pub mtime: Option<i64>,
    /// The file name for a directory destination (last URL path segment).
    pub name: String,
}

/// Whether an ADD source is a URL.
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Parse `--checksum` (only sha256 is accepted, as BuildKit).
pub fn parse_checksum(s: &str) -> Result<Digest, FetchError> {
    s.parse()
        .map_err(|_| FetchError::BadChecksum(s.to_string()))
}

/// The destination name of a URL: its last non-empty path segment.
pub fn url_file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let after_host = path.splitn(4, '/').nth(3).unwrap_or("");
    after_host
        .rsplit('/')
        .find(|s| !s.is_empty())
        .unwrap_or("index.html")
        .to_string()
}

/// Download `url` into `dir`; verify against `expected` when given.
pub fn download(
    url: &str,
    dir: &Path,
    expected: Option<&Digest>,
) -> Result<Downloaded, FetchError> {
    let http = |reason: String| FetchError::Http {
        url: url.to_string(),
        reason,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_global(Some(Duration::from_secs(1800)))
        .build()
        .into();
    let resp = agent.get(url).call().map_err(|e| http(e.to_string()))?;
    let mtime = resp
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64);
    let name = url_file_name(url);
    let path = dir.join("download");
    let file = std::fs::File::create(&path).map_err(|source| FetchError::Io {
        what: "creating",
        path: path.clone(),
        source,
    })?;
    let mut w = HashingWriter::new(io::BufWriter::new(file));
    let mut body = resp.into_body();
    io::copy(&mut body.as_reader(), &mut w).map_err(|e| http(e.to_string()))?;
    let (mut buf, digest, _) = w.finish();
    buf.flush().map_err(|source| FetchError::Io {
        what: "writing",
        path: path.clone(),
        source,
    })?;
    if let Some(e) = expected
        && *e != digest
    {
        return Err(FetchError::Checksum {
            url: url.to_string(),
            expected: e.to_string(),
            got: digest,
        });
    }
    Ok(Downloaded {
        path,
        digest,
        mtime,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_urls() {
        assert_eq!(
            url_file_name("https://example.com/a/b/file.tar.gz?x=1"),
            "file.tar.gz"
        );
        assert_eq!(url_file_name("http://example.com/dir/"), "dir");
        assert_eq!(url_file_name("http://example.com"), "index.html");
        assert!(parse_checksum("sha256:abc").is_err());
    }
}
