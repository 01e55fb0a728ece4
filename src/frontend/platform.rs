//! Platforms (`linux/amd64`, `linux/arm64/v8`) and the predefined build args.

use serde::Serialize;

/// An OS/architecture/variant triple.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, ...
    pub arch: String,
    /// `v7`, `v8`, or empty.
    pub variant: String,
}

impl Platform {
    /// The platform this process runs on.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            os: "linux".into(),
            arch: arch.into(),
            variant: String::new(),
        }
    }

    /// Parse `os/arch[/variant]`, or just `arch` (linux assumed).
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let bad = || format!("invalid platform \"{s}\": expected os/arch[/variant]");
        let (os, arch, variant) = match parts.as_slice() {
            [arch] if !arch.is_empty() => ("linux", *arch, ""),
            [os, arch] if !os.is_empty() && !arch.is_empty() => (*os, *arch, ""),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() => (*os, *arch, *v),
            _ => return Err(bad()),
        };
        let (arch, variant) = match (arch.to_ascii_lowercase().as_str(), variant) {
            ("x86_64" | "x86-64", v) => ("amd64".to_string(), v.to_string()),
            ("aarch64", "") => ("arm64".to_string(), String::new()),
            ("arm64", "v8") => ("arm64".to_string(), String::new()),
            (a, v) => (a.to_string(), v.to_string()),
        };
        Ok(Platform {
            os: os.to_ascii_lowercase(),
            arch,
            variant,
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// Proxy variables usable in RUN without an ARG, kept out of history and cache keys.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// BuildKit's predefined platform args for the global scope.
pub fn default_args(
    build: &Platform,
    target: &Platform,
    target_stage: &str,
) -> Vec<(String, String)> {
    [
        ("BUILDPLATFORM", build.to_string()),
        ("BUILDOS", build.os.clone()),
        ("BUILDOSVERSION", String::new()),
        ("BUILDARCH", build.arch.clone()),
        ("BUILDVARIANT", build.variant.clone()),
        ("TARGETPLATFORM", target.to_string()),
        ("TARGETOS", target.os.clone()),
        ("TARGETOSVERSION", String::new()),
        ("TARGETARCH", target.arch.clone()),
        ("TARGETVARIANT", target.variant.clone()),
        ("TARGETSTAGE", target_stage.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::Platform;

    #[test]
    fn parses_and_normalises() {
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(Platform::parse("linux/arm/v7").unwrap().variant, "v7");
        assert_eq!(Platform::parse("linux/aarch64").unwrap().arch, "arm64");
        assert!(Platform::parse("linux/").is_err());
    }
}
