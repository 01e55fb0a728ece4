//! `--cache-to` and `--cache-from` values (buildx's `type=...,k=v` syntax).

use super::RemoteCacheError;
use crate::layer::compress::Compression;
use std::path::PathBuf;

/// Which steps an export holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheMode {
    /// The final stage's steps (BuildKit's default).
    #[default]
    Min,
    /// Every stage's steps.
    Max,
}

/// Where a cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheTarget {
    /// A registry reference (`ref=REG/NAME:TAG`).
    Registry(String),
    /// An OCI layout directory (`dest=` / `src=`).
    Local(PathBuf),
    /// `--cache-to type=inline`: in the pushed image's config.
    Inline,
}

/// One `--cache-to`.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheTo {
    /// Where to.
    pub target: CacheTarget,
    /// `mode=`.
    pub mode: CacheMode,
    /// `compression=` of layers the store has no blob for yet.
    pub compression: Compression,
    /// `ignore-error=true`: a failed export is a warning.
    pub ignore_error: bool,
}

/// One `--cache-from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheFrom {
    /// Where from.
    pub target: CacheTarget,
}

impl CacheTarget {
    /// How messages name it.
    pub fn describe(&self) -> String {
        match self {
            CacheTarget::Registry(r) => r.clone(),
            CacheTarget::Local(p) => format!("local:{}", p.display()),
            CacheTarget::Inline => "inline".into(),
        }
    }
}

fn fields(flag: &'static str, s: &str) -> Result<Vec<(String, String)>, RemoteCacheError> {
    s.split(',')
        .filter(|f| !f.is_empty())
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| RemoteCacheError::Spec {
                    flag,
                    spec: s.into(),
                    reason: format!("{f:?} is not KEY=VALUE"),
                })
        })
        .collect()
}

fn target(
    flag: &'static str,
    s: &str,
    f: &[(String, String)],
    path_key: &str,
) -> Result<CacheTarget, RemoteCacheError> {
    let get = |k: &str| f.iter().rev().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    let bad = |reason: String| RemoteCacheError::Spec {
        flag,
        spec: s.into(),
        reason,
    };
    match get("type").as_deref().unwrap_or("registry") {
        "registry" => {
            let r = get("ref").ok_or_else(|| bad("type=registry needs ref=REG/NAME:TAG".into()))?;
            crate::registry::reference::validate(&r).map_err(|e| bad(e.to_string()))?;
            Ok(CacheTarget::Registry(r))
        }
        "local" => get(path_key)
            .map(|p| CacheTarget::Local(PathBuf::from(p)))
            .ok_or_else(|| bad(format!("type=local needs {path_key}=DIR"))),
        "inline" if flag == "--cache-to" => Ok(CacheTarget::Inline),
        "inline" => Err(bad(
            "an inline cache is read from its image: --cache-from REF or type=registry,ref=REF"
                .into(),
        )),
        other => Err(bad(format!(
            "unsupported cache type {other:?} (registry, local or inline)"
        ))),
    }
}

/// Parse a `--cache-to` value.
pub fn parse_cache_to(s: &str) -> Result<CacheTo, RemoteCacheError> {
    let flag = "--cache-to";
    let f = fields(flag, s)?;
    let bad = |reason: String| RemoteCacheError::Spec {
        flag,
        spec: s.into(),
        reason,
    };
    let mut to = CacheTo {
        target: target(flag, s, &f, "dest")?,
        mode: CacheMode::Min,
        compression: Compression::default(),
        ignore_error: false,
    };
    for (k, v) in &f {
        match k.as_str() {
            "mode" => {
                to.mode = match v.as_str() {
                    "min" => CacheMode::Min,
                    "max" => CacheMode::Max,
                    _ => return Err(bad(format!("mode={v}: expected min or max"))),
                }
            }
            "compression" => {
                to.compression = match v.as_str() {
                    "gzip" => Compression::default(),
                    "zstd" => Compression::Zstd { level: 3 },
                    "uncompressed" => Compression::None,
                    _ => return Err(bad(format!("compression={v}: expected gzip or zstd"))),
                }
            }
            "ignore-error" => {
                to.ignore_error = v
                    .parse()
                    .map_err(|_| bad(format!("ignore-error={v}: expected true or false")))?
            }
            "type" | "ref" | "dest" => {}
            // buildx options that do not change what is written here.
            "oci-mediatypes" | "image-manifest" | "compression-level" | "force-compression" => {}
            _ => return Err(bad(format!("unknown option {k:?}"))),
        }
    }
    Ok(to)
}

/// Parse a `--cache-from` value; a bare reference is `type=registry,ref=`.
pub fn parse_cache_from(s: &str) -> Result<CacheFrom, RemoteCacheError> {
    let flag = "--cache-from";
    if !s.contains('=') {
        crate::registry::reference::validate(s).map_err(|e| RemoteCacheError::Spec {
            flag,
            spec: s.into(),
            reason: e.to_string(),
        })?;
        return Ok(CacheFrom {
            target: CacheTarget::Registry(s.to_string()),
        });
    }
    let f = fields(flag, s)?;
    Ok(CacheFrom {
        target: target(flag, s, &f, "src")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_syntax() {
        let t = parse_cache_to(
            "type=registry,ref=127.0.0.1:5000/c:1,mode=max,compression=zstd,ignore-error=true",
        )
        .unwrap();
        assert_eq!(t.target, CacheTarget::Registry("127.0.0.1:5000/c:1".into()));
        assert_eq!(t.mode, CacheMode::Max);
        assert_eq!(t.compression.name(), "zstd");
        assert!(t.ignore_error);
        let l = parse_cache_to("type=local,dest=/tmp/c").unwrap();
        assert_eq!(l.target, CacheTarget::Local("/tmp/c".into()));
        assert_eq!(l.mode, CacheMode::Min);
        assert!(parse_cache_to("type=local").is_err());
        assert_eq!(
            parse_cache_to("type=inline").unwrap().target,
            CacheTarget::Inline
        );
        assert!(parse_cache_from("type=inline").is_err());
        assert!(parse_cache_to("type=s3,ref=x").is_err());
        assert!(parse_cache_to("type=registry,ref=a/b,mode=all").is_err());
        assert_eq!(
            parse_cache_from("reg:5000/app:cache").unwrap().target,
            CacheTarget::Registry("reg:5000/app:cache".into())
        );
        assert_eq!(
            parse_cache_from("type=local,src=d").unwrap().target,
            CacheTarget::Local("d".into())
        );
    }
}
