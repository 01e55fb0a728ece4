//! Image references parsed exactly as Docker parses them
//! (distribution/reference's `ParseNormalizedNamed` + `TagNameOnly`):
//! `docker.io` is the default registry, official images get `library/`, a
//! missing tag means `latest`, digests and `name:tag@digest` are kept, and
//! invalid references fail with Docker's messages.

use regex::Regex;
use std::fmt;
use std::sync::LazyLock;

/// Docker Hub's canonical domain.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Longest repository path (`library/name` included).
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Why a reference is not valid (distribution/reference's messages).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// A bare 64-hex identifier.
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    Identifier(String),
    /// Upper case in the repository path.
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    /// Upper case found by the full grammar.
    #[error("repository name must be lowercase")]
    ContainsUppercase,
    /// Anything else the grammar refuses.
    #[error("invalid reference format")]
    InvalidFormat,
    /// Empty.
    #[error("repository name must have at least one component")]
    Empty,
    /// Too long.
    #[error("repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")]
    TooLong,
    /// A digest the digest package refuses (go-digest's messages).
    #[error("{0}")]
    Digest(&'static str),
}

const ALNUM: &str = "[a-z0-9]+";
const SEPARATOR: &str = "(?:[._]|__|[-]+)";
const DOMAIN_COMPONENT: &str = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const TAG: &str = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
const DIGEST: &str = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}";

fn domain_and_port() -> String {
    let name = format!("{DOMAIN_COMPONENT}(?:\\.{DOMAIN_COMPONENT})*");
    format!("(?:{name}|\\[(?:[a-fA-F0-9:]+)\\])(?::[0-9]+)?")
}

fn remote_name() -> String {
    let component = format!("{ALNUM}(?:{SEPARATOR}{ALNUM})*");
    format!("{component}(?:/{component})*")
}

/// `^(name)(?::(tag))?(?:@(digest))?$`
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    let name = format!("(?:{}/)?{}", domain_and_port(), remote_name());
    Regex::new(&format!("^({name})(?::({TAG}))?(?:@({DIGEST}))?$")).expect("reference grammar")
});

/// `^(?:(domain)/)?(path)$`
static NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        "^(?:({})/)?({})$",
        domain_and_port(),
        remote_name()
    ))
    .expect("name grammar")
});

static IDENTIFIER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("^[a-f0-9]{64}$").expect("identifier"));

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// Docker Hub's domain and the `library/` prefix, as `splitDockerDomain`.
fn split_docker_domain(name: &str) -> (String, String) {
    let (domain, mut remote) = match name.split_once('/') {
        None => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        Some((d, r)) if d == "localhost" => (d.to_string(), r.to_string()),
        Some(("index.docker.io", r)) => (DEFAULT_DOMAIN.to_string(), r.to_string()),
        Some((d, r)) if d.contains(['.', ':']) || d.to_lowercase() != d => {
            (d.to_string(), r.to_string())
        }
        Some(_) => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        remote = format!("library/{remote}");
    }
    (domain, remote)
}

/// go-digest's `Parse`: a known algorithm and the right length of hex.
fn check_digest(d: &str) -> Result<(), ReferenceError> {
    let (alg, hex) = d.split_once(':').unwrap_or((d, ""));
    let len = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(ReferenceError::Digest("unsupported digest algorithm")),
    };
    if hex.len() != len {
        return Err(ReferenceError::Digest("invalid checksum digest length"));
    }
    if !hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ReferenceError::Digest("invalid checksum digest format"));
    }
    Ok(())
}

impl Reference {
    /// Parse as `docker pull`/`FROM` do: normalised, `latest` added when
    /// there is neither tag nor digest.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let mut r = Self::parse_named(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some("latest".into());
        }
        Ok(r)
    }

    /// `ParseNormalizedNamed`: normalised, no tag added.
    pub fn parse_named(s: &str) -> Result<Reference, ReferenceError> {
        if IDENTIFIER.is_match(s) {
            return Err(ReferenceError::Identifier(s.to_string()));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote = remainder.split(':').next().unwrap_or("");
        if remote.to_lowercase() != remote {
            return Err(ReferenceError::Uppercase(remote.to_string()));
        }
        let full = format!("{domain}/{remainder}");
        let Some(caps) = REFERENCE.captures(&full) else {
            let lower = full.to_lowercase();
            if lower != full && REFERENCE.is_match(&lower) {
                return Err(ReferenceError::ContainsUppercase);
            }
            return Err(ReferenceError::InvalidFormat);
        };
        let name = caps.get(1).map(|m| m.as_str()).unwrap_or("");
        let (domain, path) = match NAME.captures(name) {
            Some(c) => (
                c.get(1).map(|m| m.as_str()).unwrap_or("").to_string(),
                c.get(2).map(|m| m.as_str()).unwrap_or("").to_string(),
            ),
            None => (String::new(), name.to_string()),
        };
        if path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::TooLong);
        }
        if path.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let digest = caps.get(3).map(|m| m.as_str().to_string());
        if let Some(d) = &digest {
            check_digest(d)?;
        }
        Ok(Reference {
            domain,
            path,
            tag: caps.get(2).map(|m| m.as_str().to_string()),
            digest,
        })
    }

    /// The registry host (`docker.io`, `localhost:5000`, ...).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:...`), if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `domain/path`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The name as `docker` shows it (`busybox`, `test/busybox`,
    /// `localhost:5000/x`): Docker Hub's domain and `library/` dropped.
    pub fn familiar_name(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.name();
        }
        match self.path.strip_prefix("library/") {
            Some(rest) if !rest.contains('/') => rest.to_string(),
            _ => self.path.clone(),
        }
    }

    /// The whole reference as `docker` shows it (`busybox:latest`).
    pub fn familiar_string(&self) -> String {
        format!("{}{}", self.familiar_name(), self.suffix())
    }

    fn suffix(&self) -> String {
        let mut s = String::new();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

impl fmt::Display for Reference {
    /// The normalised form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.name(), self.suffix())
    }
}

/// Check `s` as `docker build -t` does (`reference.ParseNormalizedNamed`).
pub fn validate(s: &str) -> Result<(), ReferenceError> {
    Reference::parse_named(s).map(|_| ())
}

/// The normalised name an image is stored under (`busybox` →
/// `docker.io/library/busybox:latest`); the input unchanged if it is not a
/// valid reference.
pub fn normalize(s: &str) -> String {
    Reference::parse(s)
        .map(|r| r.to_string())
        .unwrap_or_else(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalises_as_docker() {
        assert_eq!(norm("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(
            norm("docker.io/library/alpine:latest"),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(
            norm("index.docker.io/alpine"),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(
            norm("docker.io/alpine:3.20"),
            "docker.io/library/alpine:3.20"
        );
        assert_eq!(norm("test/busybox"), "docker.io/test/busybox:latest");
        assert_eq!(norm("localhost/x"), "localhost/x:latest");
        assert_eq!(norm("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(norm("example.com/baseos:1.0"), "example.com/baseos:1.0");
        assert_eq!(norm("127.0.0.1:5000/a/b:v1"), "127.0.0.1:5000/a/b:v1");
        assert_eq!(norm("Example.com/org/x"), "Example.com/org/x:latest");
        assert_eq!(norm("[::1]:5000/x"), "[::1]:5000/x:latest");
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(d));
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{d}"));
        let r = Reference::parse(&format!("busybox:1.36@{d}")).unwrap();
        assert_eq!(r.tag(), Some("1.36"));
        assert_eq!(r.familiar_string(), format!("busybox:1.36@{d}"));
    }

    #[test]
    fn familiar_names() {
        let f = |s: &str| Reference::parse(s).unwrap().familiar_string();
        assert_eq!(f("docker.io/library/busybox"), "busybox:latest");
        assert_eq!(f("test/busybox"), "test/busybox:latest");
        assert_eq!(f("docker.io/library/a/b"), "library/a/b:latest");
        assert_eq!(f("localhost:5000/x:1"), "localhost:5000/x:1");
    }

    #[test]
    fn accepts_docker_names() {
        for ok in [
            "busybox",
            "busybox:1.36",
            "test/busybox:latest",
            "localhost:5000/a/b:v1.0-rc_1",
            "Example.com/org/x",
            "a__b",
            "a--b.c",
            "[::1]:5000/x",
            "x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_with_docker_messages() {
        let msg = |s: &str| validate(s).unwrap_err().to_string();
        assert_eq!(
            msg("Foo"),
            "invalid reference format: repository name (library/Foo) must be lowercase"
        );
        assert_eq!(msg("a b"), "invalid reference format");
        assert_eq!(msg("a::b"), "invalid reference format");
        assert_eq!(msg("a:"), "invalid reference format");
        assert_eq!(msg(""), "invalid reference format");
        assert_eq!(msg("a:-x"), "invalid reference format");
        assert_eq!(
            msg(&"a".repeat(256)),
            "repository name must not be more than 255 characters"
        );
        assert!(msg(&"a".repeat(64)).contains("cannot specify 64-byte hexadecimal"));
        assert_eq!(msg("x/a:B$"), "invalid reference format");
        assert_eq!(
            msg("example.com/Org/x"),
            "invalid reference format: repository name (Org/x) must be lowercase"
        );
        assert_eq!(
            msg("x@sha256:0123456789abcdef0123456789abcdef"),
            "invalid checksum digest length"
        );
        assert_eq!(
            msg("x@md5:0123456789abcdef0123456789abcdef"),
            "unsupported digest algorithm"
        );
    }
}
