//! Platforms (`linux/amd64`, `linux/arm64/v8`) and the predefined build args.

use serde::Serialize;

/// An OS/architecture/variant triple.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
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

    /// Parse `os/arch[/variant]`, `os` (this machine's architecture) or
    /// `arch` (linux assumed), normalised as containerd's `platforms.Parse`
    /// then `platforms.Normalize` do. Also `arch/variant` for a known
    /// architecture (`arm/v7`, `arm64/v8`), which containerd would read as
    /// an OS named after the architecture.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let bad = || format!("invalid platform \"{s}\": expected os/arch[/variant]");
        let ok = |c: &str| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-'))
        };
        if parts.len() > 3 {
            return Err(bad());
        }
        if let Some(part) = parts.iter().find(|p| !ok(p)) {
            // containerd's message, as BuildKit reports it.
            return Err(format!(
                "\"{part}\" is an invalid component of \"{s}\": platform specifier component must match \"^[A-Za-z0-9_.-]+$\": invalid argument"
            ));
        }
        let host = Platform::host();
        let (os, arch, variant) = match parts.as_slice() {
            [os] if is_known_os(os) => (*os, host.arch.as_str(), host.variant.as_str()),
            [arch] if is_known_arch(arch) => ("linux", *arch, ""),
            [one] => {
                return Err(format!(
                    "invalid platform \"{s}\": unknown operating system or architecture \"{one}\""
                ));
            }
            [arch, v] if is_known_arch(arch) && !is_known_os(arch) => ("linux", *arch, *v),
            [os, arch] => (*os, *arch, ""),
            [os, arch, v] => (*os, *arch, *v),
            _ => return Err(bad()),
        };
        let (arch, variant) =
            normalise_arch(&arch.to_ascii_lowercase(), &variant.to_ascii_lowercase());
        Ok(Platform {
            os: normalise_os(os),
            arch,
            variant,
        })
    }

    /// This platform as the OCI `platform` object of an index entry.
    pub fn to_oci_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"architecture": self.arch, "os": self.os});
        if !self.variant.is_empty() {
            v["variant"] = serde_json::Value::String(self.variant.clone());
        }
        v
    }

    /// The platform of an OCI `platform` object (an index entry's, or an
    /// image config's `os`/`architecture`/`variant`), normalised.
    pub fn from_oci(os: &str, arch: &str, variant: &str) -> Platform {
        let (arch, variant) =
            normalise_arch(&arch.to_ascii_lowercase(), &variant.to_ascii_lowercase());
        Platform {
            os: normalise_os(os),
            arch,
            variant,
        }
    }

    /// `linux_arm64`, `linux_arm_v7`: BuildKit's folder name for this
    /// platform in a multi-platform `type=local` export.
    pub fn folder_name(&self) -> String {
        self.to_string().replace('/', "_")
    }
}

/// An operating system name (containerd's `isKnownOS`, the common ones).
fn is_known_os(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "linux" | "windows" | "darwin" | "freebsd" | "netbsd" | "openbsd" | "solaris" | "macos"
    )
}

/// containerd's `normalizeOS`: lower case, `macos` = `darwin`.
fn normalise_os(os: &str) -> String {
    match os.to_ascii_lowercase().as_str() {
        "macos" => "darwin".to_string(),
        other => other.to_string(),
    }
}

/// An architecture name, so `arm/v7` reads as arch/variant.
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
            | "ppc64"
            | "s390x"
            | "riscv64"
            | "loong64"
            | "mips64le"
            | "mips64"
            | "mipsle"
            | "mips"
    )
}

/// containerd's `normalizeArch`: `x86_64` = `amd64` (variant `v1`
/// dropped), `aarch64` = `arm64` (variant `v8` implied and dropped, `9` =
/// `v9`), `arm` without a variant = `arm/v7`, `armhf` = `arm/v7`, `armel`
/// = `arm/v6`, `i386` = `386` (no variant).
fn normalise_arch(arch: &str, variant: &str) -> (String, String) {
    let (a, v) = match (arch, variant) {
        ("i386", _) => ("386", ""),
        ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64", ""),
        ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v),
        ("aarch64" | "arm64", "8" | "v8" | "v8.0") => ("arm64", ""),
        ("aarch64" | "arm64", "9" | "9.0" | "v9.0") => ("arm64", "v9"),
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
        assert_eq!(n("linux/arm64/v8.0"), "linux/arm64");
        assert_eq!(n("linux/arm64/9"), "linux/arm64/v9");
        assert_eq!(n("linux/i386/v2"), "linux/386");
        assert_eq!(n("linux/arm/5"), "linux/arm/v5");
        assert_eq!(n("linux"), Platform::host().to_string());
        assert_eq!(n("linux/riscv64"), "linux/riscv64");
        assert!(Platform::parse("nonsense").is_err());
        assert!(Platform::parse("linux/amd64/v2/x").is_err());
        assert!(Platform::parse("linux/am d64").is_err());
        assert_eq!(
            Platform::parse("linux/arm64").unwrap().folder_name(),
            "linux_arm64"
        );
        assert_eq!(
            Platform::from_oci("linux", "arm64", "v8").to_string(),
            "linux/arm64"
        );
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
