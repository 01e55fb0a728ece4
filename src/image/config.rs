//! The image configuration (OCI image config with Docker's extensions:
//! Healthcheck, OnBuild, Shell), serialised with stable field order.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Docker's default PATH for Linux containers.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A healthcheck in the image config (durations in nanoseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", cmd]`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub test: Vec<String>,
    /// Interval between checks.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: u64,
    /// Timeout of one check.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: u64,
    /// Start period.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: u64,
    /// Interval during the start period.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: u64,
    /// Consecutive failures to be unhealthy.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub retries: u32,
}

/// Docker writes `null` for empty lists and maps (`"OnBuild": null`): read
/// it as the empty value.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}
fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// The runtime part of the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `USER`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub user: String,
    /// `EXPOSE`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    /// `ENV`, as `K=V`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    /// `ENTRYPOINT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `VOLUME`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub volumes: BTreeMap<String, serde_json::Value>,
    /// `WORKDIR`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    /// `LABEL`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// `STOPSIGNAL`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub stop_signal: String,
    /// `HEALTHCHECK`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// `ONBUILD` triggers.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub on_build: Vec<String>,
    /// `SHELL`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub shell: Vec<String>,
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct History {
    /// RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The instruction.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub created_by: String,
    /// `buildkit.dockerfile.v0`-style comment.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub comment: String,
    /// True when the step made no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// `rootfs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Layer diff_ids, bottom first.
    pub diff_ids: Vec<Digest>,
}

/// The image config document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// Creation time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// `MAINTAINER`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub author: String,
    /// CPU architecture.
    pub architecture: String,
    /// Operating system.
    pub os: String,
    /// Architecture variant.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub variant: String,
    /// Runtime config.
    #[serde(default, deserialize_with = "null_default")]
    pub config: RunConfig,
    /// Layers.
    pub rootfs: RootFs,
    /// History.
    #[serde(default, deserialize_with = "null_default")]
    pub history: Vec<History>,
    /// `--cache-to type=inline`: the build cache's records, kept in the
    /// pushed image's config (see docs/cache-format.md). Never inherited:
    /// the solver drops it from a base's config.
    #[serde(
        rename = "rbuild.inline-cache.v1",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub inline_cache: Option<serde_json::Value>,
}

impl ImageConfig {
    /// An empty config for a platform (FROM scratch): as BuildKit's, its
    /// working directory is `/`.
    pub fn scratch(os: &str, arch: &str, variant: &str) -> Self {
        ImageConfig {
            created: None,
            author: String::new(),
            architecture: arch.to_string(),
            os: os.to_string(),
            variant: variant.to_string(),
            config: RunConfig {
                working_dir: "/".into(),
                ..RunConfig::default()
            },
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: Vec::new(),
            },
            history: Vec::new(),
            inline_cache: None,
        }
    }

    /// Environment as pairs.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.config
            .env
            .iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e.clone(), String::new()),
            })
            .collect()
    }

    /// Set an environment variable (replacing an earlier value in place).
    pub fn set_env(&mut self, k: &str, v: &str) {
        let entry = format!("{k}={v}");
        match self
            .config
            .env
            .iter_mut()
            .find(|e| e.split('=').next() == Some(k))
        {
            Some(e) => *e = entry,
            None => self.config.env.push(entry),
        }
    }

    /// Add PATH if the image has none (as BuildKit does for every stage;
    /// not on Windows, whose PATH the OS sets).
    pub fn ensure_path(&mut self) {
        if self.os == "windows" {
            return;
        }
        if !self.config.env.iter().any(|e| e.starts_with("PATH=")) {
            self.config.env.push(format!("PATH={DEFAULT_PATH}"));
        }
    }

    /// Canonical JSON bytes (the config blob).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serialise image config")
    }
}

/// RFC 3339 UTC time for a Unix timestamp (no external time crate needed for this one format).
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86400;
    let rem = secs % 86400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

/// Seconds since the epoch of an RFC 3339 time (`2024-01-02T03:04:05Z`,
/// with optional fraction and `±hh:mm` offset); `None` if malformed.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(rest.as_bytes()[0], b'+' | b'-') => {
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    // Days-from-civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86400 + h * 3600 + mi * 60 + sec - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_back() {
        for t in [0u64, 1_700_000_000, 951_782_400, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t as i64));
        }
        assert_eq!(
            parse_rfc3339("2026-11-26T16:47:32.995785138Z"),
            parse_rfc3339("2026-11-26T16:47:32Z")
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20+01:00"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2023-13-14T23:13:20Z"), None);
    }

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn docker_nulls_read_as_empty() {
        let c: ImageConfig = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","config":{"Env":null,"Cmd":null,"OnBuild":null,"Labels":null,"Volumes":null,"WorkingDir":"/","Entrypoint":null},"rootfs":{"type":"layers","diff_ids":[]},"history":null}"#,
        )
        .unwrap();
        assert!(c.config.on_build.is_empty() && c.config.labels.is_empty() && c.history.is_empty());
        assert_eq!((c.config.cmd, c.config.working_dir.as_str()), (None, "/"));
    }

    #[test]
    fn env_replaces_in_place() {
        let mut c = ImageConfig::scratch("linux", "amd64", "");
        c.set_env("A", "1");
        c.set_env("B", "2");
        c.set_env("A", "3");
        assert_eq!(c.config.env, ["A=3", "B=2"]);
        c.ensure_path();
        assert!(c.config.env[2].starts_with("PATH="));
    }
}
