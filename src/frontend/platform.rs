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
            [arch, v] if is_known_arch(arch) && !v.is_empty() => ("linux", *arch, *v),
            [os, arch] if !os.is_empty() && !arch.is_empty() => (*os, *arch, ""),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() => (*os, *arch, *v),
            _ => return Err(bad()),
        };
        let (arch, variant) =
            normalise_arch(&arch.to_ascii_lowercase(), &variant.to_ascii_lowercase());
        Ok(Platform {
            os: os.to_ascii_lowercase(),
            arch,
            variant,
        })
    }
}

/// An architecture name, so `arm/v7` reads as arch/variant (containerd's
/// `platforms.Parse` does the same for a known architecture first).
fn is_known_arch(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "amd64"
            | "x86_64"
            | "x86-64"
            | "arm64"
            | "aarch64"
            | "arm"
            | "armhf"
            | "armel"
            | "386"
            | "i386"
            | "ppc64le"
            | "s390x"
            | "riscv64"
            | "mips64le"
    )
}

/// containerd's `platforms.Normalize` for an architecture and variant:
/// `x86_64` = `amd64` (variant `v1` dropped), `aarch64` = `arm64` (variant
/// `v8` implied and dropped), `arm` without a variant = `arm/v7`, `armhf` =
/// `arm/v7`, `armel` = `arm/v6`, `i386` = `386`.
fn normalise_arch(arch: &str, variant: &str) -> (String, String) {
    let (a, v) = match (arch, variant) {
        ("i386", v) => ("386", v),
        ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64", ""),
        ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v),
        ("aarch64" | "arm64", "8" | "v8") => ("arm64", ""),
        ("aarch64" | "arm64", v) => ("arm64", v),
        ("armhf", _) => ("arm", "v7"),
        ("armel", _) => ("arm", "v6"),
        ("arm", "" | "7") => ("arm", "v7"),
        ("arm", "5") => ("arm", "v5"),
        ("arm", "6") => ("arm", "v6"),
        ("arm", "8") => ("arm", "v8"),
        (a, v) => (a, v),
    };
    (a.to_string(), v.to_string())
}

/// Parse a `--platform` value: a comma-separated list of platforms, each
/// normalised, duplicates dropped, order kept (as BuildKit's `platforms.Parse`
/// of each element then dedup).
pub fn parse_list(value: &str) -> Result<Vec<Platform>, String> {
    let mut out: Vec<Platform> = Vec::new();
    for item in value.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(format!("invalid platform list \"{value}\": empty element"));
        }
        let p = Platform::parse(item)?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
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

    #[test]
    fn normalises_like_containerd() {
        let n = |s: &str| Platform::parse(s).unwrap().to_string();
        assert_eq!(n("arm64"), "linux/arm64");
        assert_eq!(n("linux/arm64/v8"), "linux/arm64");
        assert_eq!(n("linux/aarch64/8"), "linux/arm64");
        assert_eq!(n("amd64"), "linux/amd64");
        assert_eq!(n("linux/x86_64/v1"), "linux/amd64");
        assert_eq!(n("linux/amd64/v3"), "linux/amd64/v3");
        assert_eq!(n("arm"), "linux/arm/v7");
        assert_eq!(n("arm/v7"), "linux/arm/v7");
        assert_eq!(n("arm64/v8"), "linux/arm64");
        assert_eq!(n("linux/arm/v7"), "linux/arm/v7");
        assert_eq!(n("linux/arm/6"), "linux/arm/v6");
        assert_eq!(n("armhf"), "linux/arm/v7");
        assert_eq!(n("linux/armel"), "linux/arm/v6");
        assert_eq!(n("i386"), "linux/386");
        assert_eq!(n("Linux/AMD64"), "linux/amd64");
    }

    #[test]
    fn parses_comma_lists_and_drops_duplicates() {
        let l = super::parse_list("linux/amd64, arm64,linux/arm64/v8").unwrap();
        let names: Vec<String> = l.iter().map(|p| p.to_string()).collect();
        assert_eq!(names, ["linux/amd64", "linux/arm64"]);
        assert!(super::parse_list("linux/amd64,").is_err());
        assert!(super::parse_list("linux/").is_err());
    }
}
