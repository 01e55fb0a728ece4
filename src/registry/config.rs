//! Per-registry settings: mirrors, plain HTTP, TLS verification, extra CAs,
//! read from a TOML file shaped as BuildKit's `buildkitd.toml`:
//!
//! ```toml
//! [registry."docker.io"]
//! mirrors = ["127.0.0.1:5000"]
//!
//! [registry."127.0.0.1:5000"]
//! http = true          # plain HTTP
//! insecure = true      # HTTPS without certificate verification
//! ca = ["/etc/rbuild/ca.pem"]
//! ```
//!
//! The file is `$RBUILD_CONFIG`, else `/etc/rbuild/registries.toml` when it
//! exists, else BuildKit's `/etc/buildkit/buildkitd.toml`. Other top-level
//! tables (as in a full `buildkitd.toml`) are ignored.

use super::RegistryError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the config file is looked for when `$RBUILD_CONFIG` is unset.
pub const DEFAULT_CONFIG: &str = "/etc/rbuild/registries.toml";
/// BuildKit's own config, read (its `[registry]` tables) when neither of
/// the above exists, so a machine set up for BuildKit's mirrors works as is.
pub const BUILDKIT_CONFIG: &str = "/etc/buildkit/buildkitd.toml";

/// Settings of one registry host (BuildKit's `[registry."HOST"]`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Hosts tried, in order, before this registry when pulling.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// Speak plain HTTP to this host.
    #[serde(default)]
    pub http: bool,
    /// Do not verify this host's TLS certificate.
    #[serde(default)]
    pub insecure: bool,
    /// Extra CA certificates (PEM files) for this host.
    #[serde(default)]
    pub ca: Vec<PathBuf>,
    /// BuildKit's client certificates: accepted so that a `buildkitd.toml`
    /// can be used as is, not used yet.
    #[serde(default, rename = "keypair")]
    _keypair: Option<toml::Value>,
    /// BuildKit's certificate directory: accepted, not used yet.
    #[serde(default, rename = "tlsconfigdir")]
    _tlsconfigdir: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(default)]
    registry: BTreeMap<String, HostConfig>,
}

/// How rbuild talks to registries: the config file and command-line flags.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// `[registry."HOST"]` entries.
    pub hosts: BTreeMap<String, HostConfig>,
    /// `--insecure-registry HOST[:PORT]`: HTTPS without verification, then
    /// plain HTTP (Docker's rule for insecure registries).
    pub insecure: Vec<String>,
    /// `RBUILD_OFFLINE=1`: never contact a registry (images must be stored).
    pub offline: bool,
}

/// How to reach one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` as used in URLs.
    pub host: String,
    /// Schemes to try in order: `https` and/or `http`.
    pub schemes: Vec<&'static str>,
    /// Skip TLS certificate verification.
    pub skip_verify: bool,
    /// Extra CA files.
    pub ca: Vec<PathBuf>,
    /// A mirror (failures fall through to the next endpoint).
    pub mirror: bool,
}

/// Loopback hosts may use plain HTTP without configuration (Docker's rule).
fn is_loopback(host: &str) -> bool {
    let h = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host),
    };
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl RegistryOptions {
    /// Read the config file (`$RBUILD_CONFIG`, else the default path if it exists).
    pub fn load() -> Result<RegistryOptions, RegistryError> {
        let mut o = Self::load_file()?;
        o.offline = std::env::var("RBUILD_OFFLINE").is_ok_and(|v| !v.is_empty() && v != "0");
        Ok(o)
    }

    fn load_file() -> Result<RegistryOptions, RegistryError> {
        match std::env::var_os("RBUILD_CONFIG") {
            Some(p) if !p.is_empty() => Self::from_file(Path::new(&p)),
            _ if Path::new(DEFAULT_CONFIG).exists() => Self::from_file(Path::new(DEFAULT_CONFIG)),
            // Not rbuild's file: one rbuild cannot read is not its error.
            _ if Path::new(BUILDKIT_CONFIG).exists() => {
                Ok(Self::from_file(Path::new(BUILDKIT_CONFIG)).unwrap_or_default())
            }
            _ => Ok(RegistryOptions::default()),
        }
    }

    /// Read a config file.
    pub fn from_file(path: &Path) -> Result<RegistryOptions, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|e| RegistryError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_toml(&text).map_err(|reason| RegistryError::Config {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Parse the TOML text of a config file.
    pub fn from_toml(text: &str) -> Result<RegistryOptions, String> {
        let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
        Ok(RegistryOptions {
            hosts: f.registry,
            ..Default::default()
        })
    }

    fn endpoint(&self, host: &str, mirror: bool) -> Endpoint {
        let cfg = self.hosts.get(host).cloned().unwrap_or_default();
        let flagged = self.insecure.iter().any(|h| h == host);
        // Docker's insecure registries (loopback always is one): HTTPS
        // without verification, then plain HTTP.
        let insecure = cfg.insecure || flagged || is_loopback(host);
        let schemes = if cfg.http {
            vec!["http"]
        } else if insecure {
            vec!["https", "http"]
        } else {
            vec!["https"]
        };
        Endpoint {
            host: host.to_string(),
            schemes,
            skip_verify: insecure,
            ca: cfg.ca,
            mirror,
        }
    }

    /// A mirror entry: `host[:port]`, or with a scheme (`http://host:port`)
    /// that fixes the protocol; a trailing `/` is ignored.
    fn mirror(&self, m: &str) -> Endpoint {
        let (scheme, rest) = match m.split_once("://") {
            Some((s @ ("http" | "https"), rest)) => (Some(s), rest),
            _ => (None, m),
        };
        let mut e = self.endpoint(rest.trim_end_matches('/'), true);
        match scheme {
            Some("http") => e.schemes = vec!["http"],
            Some(_) => e.schemes = vec!["https"],
            None => {}
        }
        e
    }

    /// Where to pull from for the registry `domain`: its mirrors, then itself.
    pub fn pull_endpoints(&self, domain: &str) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = self
            .hosts
            .get(domain)
            .map(|c| c.mirrors.iter().map(|m| self.mirror(m)).collect())
            .unwrap_or_default();
        let origin = if domain == super::reference::DEFAULT_DOMAIN {
            "registry-1.docker.io"
        } else {
            domain
        };
        let mut e = self.endpoint(origin, false);
        if origin != domain {
            // Settings written for docker.io apply to its API host.
            let d = self.endpoint(domain, false);
            e.schemes = d.schemes;
            e.skip_verify = d.skip_verify;
            e.ca = d.ca;
        }
        out.push(e);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildkit_shape() {
        let o = RegistryOptions::from_toml(
            r#"
            debug = true
            [worker.oci]
            enabled = true
            [registry."docker.io"]
            mirrors = ["127.0.0.1:5000", "mirror.example.com", "http://10.1.1.1:80/"]
            [registry."mirror.example.com"]
            insecure = true
            [registry."10.0.0.1:5000"]
            http = true
            tlsconfigdir = ["/etc/certs"]
            [[registry."10.0.0.1:5000".keypair]]
            key = "/k.pem"
            cert = "/c.pem"
            "#,
        )
        .unwrap();
        let e = o.pull_endpoints("docker.io");
        assert_eq!(e.len(), 4);
        assert_eq!(e[2].host, "10.1.1.1:80");
        assert_eq!(e[2].schemes, ["http"]);
        assert_eq!(e[0].host, "127.0.0.1:5000");
        assert_eq!(e[0].schemes, ["https", "http"]);
        assert!(e[0].skip_verify);
        assert!(e[0].mirror);
        assert_eq!(e[1].host, "mirror.example.com");
        assert!(e[1].skip_verify);
        assert_eq!(e[3].host, "registry-1.docker.io");
        assert_eq!(e[3].schemes, ["https"]);
        assert!(!e[3].mirror);
        assert_eq!(o.pull_endpoints("10.0.0.1:5000")[0].schemes, ["http"]);
        assert_eq!(o.pull_endpoints("example.com")[0].schemes, ["https"]);
        assert_eq!(
            o.pull_endpoints("localhost:5000")[0].schemes,
            ["https", "http"]
        );
        assert_eq!(o.pull_endpoints("[::1]:5000")[0].schemes, ["https", "http"]);
        let mut o = o;
        o.insecure = vec!["build.example:5000".into()];
        let e = &o.pull_endpoints("build.example:5000")[0];
        assert_eq!(e.schemes, ["https", "http"]);
        assert!(e.skip_verify);
        assert_eq!(o.pull_endpoints("build.example")[0].schemes, ["https"]);
    }

    #[test]
    fn refuses_unknown_keys() {
        let e = RegistryOptions::from_toml("[registry.\"x\"]\nmirror = [\"a\"]\n").unwrap_err();
        assert!(e.contains("unknown field `mirror`"), "{e}");
    }
}
