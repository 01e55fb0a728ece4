//! `RUN --mount=...` values: CSV fields of `key=value`, BuildKit's keys and rules.

use super::ast::{Mount, MountType, Sharing};
use super::suggest::with_suggestion;

/// Split a CSV record (fields separated by `,`, optionally double-quoted).
pub fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if at_start => {
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            cur.push('"');
                        }
                        Some('"') => break,
                        Some(c) => cur.push(c),
                        None => {
                            return Err(format!("extraneous or missing \" in quoted-field: {s}"));
                        }
                    }
                }
                at_start = false;
            }
            ',' => {
                fields.push(std::mem::take(&mut cur));
                at_start = true;
            }
            c => {
                cur.push(c);
                at_start = false;
            }
        }
    }
    fields.push(cur);
    Ok(fields)
}

const MOUNT_KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" => Ok(true),
        "0" | "f" | "false" => Ok(false),
        _ => Err(format!("invalid value for {key}: {v}")),
    }
}

/// Parse a size such as `64m`, `1g`, `1024` (binary units, as Docker's RAMInBytes).
pub fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit
        .to_ascii_lowercase()
        .trim_end_matches('b')
        .trim_end_matches('i')
    {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return None,
    };
    Some((n * mult as f64) as u64)
}

/// Parse one `--mount` value (already expanded).
pub fn parse_mount(value: &str) -> Result<Mount, String> {
    parse_mount_fields(csv_fields(value).map_err(|e| format!("failed to parse csv mounts: {e}"))?)
}

/// Parse a `--mount` value already split into `key[=value]` fields.
pub fn parse_mount_fields(fields: Vec<String>) -> Result<Mount, String> {
    let mut m = Mount {
        kind: MountType::Bind,
        from: None,
        source: None,
        target: None,
        readonly: false,
        size: None,
        id: None,
        sharing: None,
        required: false,
        env: None,
        mode: None,
        uid: None,
        gid: None,
    };
    let mut ro_auto = true;
    for field in fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        match value {
            None => flag_field(&mut m, &key, &field, &mut ro_auto)?,
            Some(value) => value_field(&mut m, &key, value, &field, &mut ro_auto)?,
        }
    }
    check_mount(m, ro_auto)
}

/// A field without a value (`ro`, `rw`, `required`).
fn flag_field(m: &mut Mount, key: &str, field: &str, ro_auto: &mut bool) -> Result<(), String> {
    match key {
        "readonly" | "ro" => {
            m.readonly = true;
            *ro_auto = false;
        }
        "readwrite" | "rw" => {
            m.readonly = false;
            *ro_auto = false;
        }
        "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => m.required = true,
        "required" => {
            return Err(format!(
                "unexpected key '{key}' for mount type '{}'",
                kind_name(m.kind)
            ));
        }
        _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
    }
    Ok(())
}

/// A `key=value` field.
fn value_field(
    m: &mut Mount,
    key: &str,
    value: String,
    field: &str,
    ro_auto: &mut bool,
) -> Result<(), String> {
    match key {
        "type" => {
            m.kind = match value.to_ascii_lowercase().as_str() {
                "bind" => MountType::Bind,
                "cache" => MountType::Cache,
                "tmpfs" => MountType::Tmpfs,
                "secret" => MountType::Secret,
                "ssh" => MountType::Ssh,
                _ => {
                    return Err(with_suggestion(
                        format!("unsupported mount type \"{value}\""),
                        &value,
                        &["bind", "cache", "tmpfs", "secret", "ssh"],
                    ));
                }
            }
        }
        "from" => m.from = Some(value),
        "source" | "src" => m.source = Some(value),
        "target" | "dst" | "destination" => m.target = Some(value),
        "readonly" | "ro" => {
            m.readonly = parse_bool(key, &value)?;
            *ro_auto = false;
        }
        "readwrite" | "rw" => {
            m.readonly = !parse_bool(key, &value)?;
            *ro_auto = false;
        }
        "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
            m.required = parse_bool(key, &value)?
        }
        "required" => {
            return Err(format!(
                "unexpected key '{key}' for mount type '{}'",
                kind_name(m.kind)
            ));
        }
        "size" if m.kind == MountType::Tmpfs => {
            m.size = Some(parse_size(&value).ok_or(format!("invalid value for {key}: {value}"))?)
        }
        "size" => {
            return Err(format!(
                "unexpected key '{key}' for mount type '{}'",
                kind_name(m.kind)
            ));
        }
        "id" => m.id = Some(value),
        "sharing" => {
            m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                "shared" => Sharing::Shared,
                "private" => Sharing::Private,
                "locked" => Sharing::Locked,
                _ => {
                    return Err(with_suggestion(
                        format!("unsupported sharing value \"{value}\""),
                        &value,
                        &["shared", "private", "locked"],
                    ));
                }
            })
        }
        "mode" => {
            m.mode = Some(
                u32::from_str_radix(&value, 8)
                    .map_err(|_| format!("invalid value {value} for mode"))?,
            )
        }
        "uid" => {
            m.uid = Some(
                value
                    .parse()
                    .map_err(|_| format!("invalid value {value} for uid"))?,
            )
        }
        "gid" => {
            m.gid = Some(
                value
                    .parse()
                    .map_err(|_| format!("invalid value {value} for gid"))?,
            )
        }
        "env" => m.env = Some(value),
        _ => {
            return Err(with_suggestion(
                format!("unexpected key '{key}' in '{field}'"),
                key,
                &MOUNT_KEYS,
            ));
        }
    }
    Ok(())
}

/// What a mount's type allows, and its defaults.
fn check_mount(mut m: Mount, ro_auto: bool) -> Result<Mount, String> {
    let file_info_allowed = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info_allowed {
        for (set, what) in [
            (m.mode.is_some(), "mode"),
            (m.uid.is_some(), "uid"),
            (m.gid.is_some(), "gid"),
        ] {
            if set {
                return Err(format!(
                    "{what} not allowed for \"{}\" type mounts",
                    kind_name(m.kind)
                ));
            }
        }
    }
    if ro_auto {
        m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    match m.kind {
        MountType::Secret => {
            if m.from.is_some() {
                return Err("secret mount should not have a from".into());
            }
            if m.sharing.is_some() {
                return Err("secret mount should not define sharing".into());
            }
            if m.source.is_none() && m.target.is_none() && m.id.is_none() {
                return Err("invalid secret mount. one of source, target required".into());
            }
            if m.source.is_some() && m.id.is_some() {
                return Err("both source and id can't be set".into());
            }
            // As BuildKit: a secret's source is its id.
            if let Some(src) = m.source.take() {
                m.id = Some(src);
            }
        }
        MountType::Ssh => {
            if m.from.is_some() {
                return Err("ssh mount should not have a from".into());
            }
            if m.sharing.is_some() {
                return Err("ssh mount should not define sharing".into());
            }
            if m.source.is_some() {
                return Err("ssh mount should not have a source".into());
            }
        }
        _ => {}
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(format!(
            "invalid cache sharing set for {} mount",
            kind_name(m.kind)
        ));
    }
    Ok(m)
}

fn kind_name(k: MountType) -> &'static str {
    match k {
        MountType::Bind => "bind",
        MountType::Cache => "cache",
        MountType::Tmpfs => "tmpfs",
        MountType::Secret => "secret",
        MountType::Ssh => "ssh",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cache_mount_with_options() {
        let m =
            parse_mount("type=cache,target=/root/.cache,id=go,sharing=locked,mode=0755,uid=1000")
                .unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert_eq!(m.sharing, Some(Sharing::Locked));
        assert_eq!(m.mode, Some(0o755));
        assert_eq!(m.uid, Some(1000));
        assert!(!m.readonly);
    }

    #[test]
    fn bind_defaults_to_readonly_and_rw_overrides() {
        assert!(parse_mount("target=/src").unwrap().readonly);
        assert!(!parse_mount("type=bind,target=/src,rw").unwrap().readonly);
    }

    #[test]
    fn secret_source_is_its_id() {
        let m = parse_mount("type=secret,source=tok").unwrap();
        assert_eq!((m.id.as_deref(), m.source), (Some("tok"), None));
        assert_eq!(
            parse_mount("type=secret").unwrap_err(),
            "invalid secret mount. one of source, target required"
        );
        assert_eq!(
            parse_mount("type=secret,id=a,source=b").unwrap_err(),
            "both source and id can't be set"
        );
    }

    #[test]
    fn secret_and_errors() {
        let m = parse_mount("type=secret,id=tok,env=TOKEN,required").unwrap();
        assert_eq!(m.env.as_deref(), Some("TOKEN"));
        assert!(m.required);
        assert!(
            parse_mount("type=cahce,target=/x")
                .unwrap_err()
                .contains("did you mean cache")
        );
        assert!(parse_mount("type=bind,target=/x,mode=0700").is_err());
        assert!(parse_mount("type=tmpfs").is_ok());
        assert_eq!(
            parse_mount("type=tmpfs,target=/t,sharing=locked").unwrap_err(),
            "invalid cache sharing set for tmpfs mount"
        );
        assert!(parse_mount("type=bind,target=/x,bogus=1").is_err());
        assert_eq!(
            parse_mount("type=tmpfs,target=/t,size=64m").unwrap().size,
            Some(64 << 20)
        );
    }
}
