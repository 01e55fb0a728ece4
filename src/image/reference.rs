//! Image references checked with Docker's grammar (distribution/reference's
//! `ParseNormalizedNamed`), with its error texts.

use regex::Regex;
use std::sync::LazyLock;

/// Longest repository path (`library/name` included).
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Why a reference is not valid (distribution/reference's messages).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
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

/// Docker Hub's domain and the `library/` prefix, as `splitDockerDomain`.
fn split_docker_domain(name: &str) -> (String, String) {
    let (domain, mut remote) = match name.split_once('/') {
        None => ("docker.io".to_string(), name.to_string()),
        Some((d, r)) if d == "localhost" => (d.to_string(), r.to_string()),
        Some(("index.docker.io", r)) => ("docker.io".to_string(), r.to_string()),
        Some((d, r)) if d.contains(['.', ':']) || d.to_lowercase() != d => {
            (d.to_string(), r.to_string())
        }
        Some(_) => ("docker.io".to_string(), name.to_string()),
    };
    if domain == "docker.io" && !remote.contains('/') {
        remote = format!("library/{remote}");
    }
    (domain, remote)
}

/// Check `s` as `docker build -t` does (`reference.ParseNormalizedNamed`).
pub fn validate(s: &str) -> Result<(), ReferenceError> {
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
    let path = NAME
        .captures(name)
        .and_then(|c| c.get(2))
        .map(|m| m.as_str())
        .unwrap_or(name);
    if path.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::TooLong);
    }
    if path.is_empty() {
        return Err(ReferenceError::Empty);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
