//! `-v` and `--mount` as Docker parses them on Linux.
//!
//! `-v CTR` is an anonymous volume; `-v SRC:CTR[:OPTS]` binds a host path
//! when `SRC` is absolute (created when missing) and names a volume
//! otherwise; `OPTS` is a comma list of `ro`, `rw`, `nocopy` (and the
//! SELinux and propagation words, accepted and ignored). `--mount` is a
//! comma list of `key=value`: `type=bind|volume|tmpfs` (default volume),
//! `source`/`src`, `target`/`destination`/`dst`, `readonly`/`ro`,
//! `volume-nocopy`, `tmpfs-size` (a tmpfs is mode 1777); a bind source must exist.

use std::path::PathBuf;

/// Where a mount's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A host path.
    Bind {
        /// Absolute host path.
        path: PathBuf,
        /// Create it (as a directory) when missing (`-v`), or fail (`--mount`).
        create: bool,
    },
    /// A volume in the store; `None`: a new anonymous one.
    Volume(Option<String>),
    /// An empty tmpfs.
    Tmpfs {
        /// Size limit in bytes (0: the kernel's default); mode 1777.
        size: u64,
    },
}

/// One mount of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// What is mounted.
    pub source: Source,
    /// Absolute path in the container.
    pub target: String,
    /// Read-only.
    pub readonly: bool,
    /// Volumes: do not fill a new volume from the image.
    pub nocopy: bool,
}

/// A `-v` or `--mount` Docker would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {flag} {value:?}: {reason}")]
pub struct MountError {
    /// `-v` or `--mount`.
    pub flag: &'static str,
    /// As given.
    pub value: String,
    /// Why.
    pub reason: String,
}

fn err(flag: &'static str, value: &str, reason: impl Into<String>) -> MountError {
    MountError {
        flag,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Docker's rule for volume names.
pub fn valid_volume_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn check_target(flag: &'static str, value: &str, target: &str) -> Result<(), MountError> {
    if !target.starts_with('/') {
        return Err(err(
            flag,
            value,
            format!("the container path {target:?} is not absolute"),
        ));
    }
    if target.trim_end_matches('/').is_empty() {
        return Err(err(flag, value, "the container path cannot be '/'"));
    }
    Ok(())
}

fn check_volume_name(flag: &'static str, value: &str, name: &str) -> Result<(), MountError> {
    if valid_volume_name(name) {
        return Ok(());
    }
    Err(err(
        flag,
        value,
        format!(
            "{name:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed; a host directory must be an absolute path"
        ),
    ))
}

/// Parse one `-v`.
pub fn parse_volume_flag(v: &str) -> Result<MountSpec, MountError> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, target, opts) = match parts.as_slice() {
        [t] => (None, *t, ""),
        [s, t] => (Some(*s), *t, ""),
        [s, t, o] => (Some(*s), *t, *o),
        _ => return Err(err("-v", v, "too many colons")),
    };
    check_target("-v", v, target)?;
    let mut spec = MountSpec {
        source: Source::Volume(None),
        target: target.to_string(),
        readonly: false,
        nocopy: false,
    };
    let mut mode_seen = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" | "rw" if mode_seen => return Err(err("-v", v, "ro and rw both given")),
            "ro" | "rw" => {
                mode_seen = true;
                spec.readonly = o == "ro";
            }
            "nocopy" => spec.nocopy = true,
            "z" | "Z" | "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate"
            | "delegated" | "cached" | "consistent" => {}
            other => return Err(err("-v", v, format!("unknown option {other:?}"))),
        }
    }
    match src {
        None => {}
        Some("") => return Err(err("-v", v, "empty source")),
        Some(s) if s.starts_with('/') => {
            spec.source = Source::Bind {
                path: PathBuf::from(s),
                create: true,
            }
        }
        Some(name) => {
            check_volume_name("-v", v, name)?;
            spec.source = Source::Volume(Some(name.to_string()));
        }
    }
    Ok(spec)
}

fn parse_bool(
    flag: &'static str,
    v: &str,
    key: &str,
    val: Option<&str>,
) -> Result<bool, MountError> {
    match val {
        None | Some("1") | Some("true") => Ok(true),
        Some("0") | Some("false") => Ok(false),
        Some(x) => Err(err(flag, v, format!("{key}={x}: expected true or false"))),
    }
}

/// Parse one `--mount`.
pub fn parse_mount_flag(v: &str) -> Result<MountSpec, MountError> {
    const F: &str = "--mount";
    let mut kind = "volume";
    let (mut source, mut target): (Option<&str>, Option<&str>) = (None, None);
    let (mut readonly, mut nocopy) = (false, false);
    let mut size = 0u64;
    for field in v.split(',').filter(|f| !f.is_empty()) {
        let (key, val) = match field.split_once('=') {
            Some((k, x)) => (k, Some(x)),
            None => (field, None),
        };
        let need = || val.ok_or_else(|| err(F, v, format!("{key} needs a value")));
        match key.to_ascii_lowercase().as_str() {
            "type" => kind = need()?,
            "source" | "src" => source = Some(need()?),
            "target" | "destination" | "dst" => target = Some(need()?),
            "readonly" | "ro" => readonly = parse_bool(F, v, key, val)?,
            "volume-nocopy" => nocopy = parse_bool(F, v, key, val)?,
            "tmpfs-size" => {
                size = crate::cache::gc::parse_size(need()?)
                    .ok_or_else(|| err(F, v, format!("bad tmpfs-size {:?}", val)))?
            }
            "bind-propagation" | "consistency" | "bind-recursive" | "bind-nonrecursive" => {}
            other => return Err(err(F, v, format!("unknown option {other:?}"))),
        }
    }
    let target = target.ok_or_else(|| err(F, v, "target is required"))?;
    check_target(F, v, target)?;
    let source = match kind {
        "bind" => {
            let s = source.ok_or_else(|| err(F, v, "type=bind needs a source"))?;
            if !s.starts_with('/') {
                return Err(err(
                    F,
                    v,
                    format!("bind source {s:?} is not an absolute path"),
                ));
            }
            Source::Bind {
                path: PathBuf::from(s),
                create: false,
            }
        }
        "volume" => match source {
            None | Some("") => Source::Volume(None),
            Some(name) => {
                check_volume_name(F, v, name)?;
                Source::Volume(Some(name.to_string()))
            }
        },
        "tmpfs" => {
            if source.is_some() {
                return Err(err(F, v, "type=tmpfs takes no source"));
            }
            Source::Tmpfs { size }
        }
        other => {
            return Err(err(
                F,
                v,
                format!("unknown type {other:?} (bind, volume or tmpfs)"),
            ));
        }
    };
    Ok(MountSpec {
        source,
        target: target.to_string(),
        readonly,
        nocopy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_flag_forms() {
        let m = parse_volume_flag("/data").unwrap();
        assert_eq!(
            (m.source, m.target.as_str()),
            (Source::Volume(None), "/data")
        );
        let m = parse_volume_flag("/host/dir:/ctr:ro").unwrap();
        assert_eq!(
            m.source,
            Source::Bind {
                path: "/host/dir".into(),
                create: true
            }
        );
        assert!(m.readonly);
        let m = parse_volume_flag("cache:/var/cache:rw,nocopy").unwrap();
        assert_eq!(m.source, Source::Volume(Some("cache".into())));
        assert!(!m.readonly && m.nocopy);
        for bad in [
            "rel:ctr",
            "/a:/b:bogus",
            "a b:/c",
            "/a:/",
            "/a:/b:ro,rw",
            "/a:/b:c:d",
        ] {
            assert!(parse_volume_flag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mount_flag_forms() {
        let m = parse_mount_flag("type=bind,source=/h,target=/c,readonly").unwrap();
        assert_eq!(
            m.source,
            Source::Bind {
                path: "/h".into(),
                create: false
            }
        );
        assert!(m.readonly);
        let m = parse_mount_flag("src=vol,dst=/c").unwrap();
        assert_eq!(m.source, Source::Volume(Some("vol".into())));
        let m = parse_mount_flag("type=tmpfs,destination=/t,tmpfs-size=1m").unwrap();
        assert_eq!(m.source, Source::Tmpfs { size: 1 << 20 });
        for bad in [
            "type=bind,target=/c",
            "type=bind,src=rel,dst=/c",
            "type=nfs,dst=/c",
            "src=v",
            "type=tmpfs,src=x,dst=/t",
            "dst=/c,bogus=1",
            "type=tmpfs,dst=/t,tmpfs-mode=700",
        ] {
            assert!(parse_mount_flag(bad).is_err(), "{bad}");
        }
    }
}
