//! Where `RUN --mount`s land: a missing or relative `target` is resolved
//! against the step's working directory, as BuildKit does; `/` is refused.

use super::{Mount, MountType};
use crate::ops::op::OpError;
use crate::ops::op::Source;

/// Join `workdir` and `target` and clean the result (`..` stops at `/`).
fn clean_join(workdir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let joined = if target.starts_with('/') {
        target.to_string()
    } else {
        format!("/{workdir}/{target}")
    };
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// BuildKit's `path.Clean` of a cache mount's target, its default cache id.
fn clean_id(target: &str) -> String {
    if target.starts_with('/') {
        return clean_join("/", target);
    }
    let c = clean_join("/", target);
    match c.trim_start_matches('/') {
        "" => ".".into(),
        rel => rel.into(),
    }
}

/// The mounts of a RUN step with absolute targets; secret and ssh mounts
/// keep theirs (they have their own defaults).
pub fn resolve(
    mounts: &[(Mount, Option<Source>)],
    workdir: &str,
) -> Result<Vec<(Mount, Option<Source>)>, OpError> {
    let mut out = Vec::with_capacity(mounts.len());
    for (m, src) in mounts {
        let mut m = m.clone();
        if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
            let raw = m.target.clone().unwrap_or_default();
            if m.kind == MountType::Cache && m.id.is_none() {
                m.id = Some(clean_id(&raw));
            }
            let target = clean_join(workdir, &raw);
            if target == "/" {
                return Err(OpError::Invalid(format!(
                    "invalid mount target \"{target}\""
                )));
            }
            m.target = Some(target);
        }
        out.push((m, src.clone()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::mounts::parse_mount;

    fn target(spec: &str, wd: &str) -> Result<String, String> {
        let m = parse_mount(spec).map_err(|e| e.to_string())?;
        resolve(&[(m, None)], wd)
            .map(|v| v[0].0.target.clone().unwrap_or_default())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn missing_or_relative_target_uses_workdir() {
        assert_eq!(target("type=bind,source=x", "/src").unwrap(), "/src");
        assert_eq!(target("type=cache", "/w/").unwrap(), "/w");
        assert_eq!(target("type=tmpfs,target=sub", "/w").unwrap(), "/w/sub");
        assert_eq!(target("type=bind,target=/abs/../x", "/w").unwrap(), "/x");
        assert_eq!(
            target("type=bind", "/").unwrap_err(),
            "invalid mount target \"/\""
        );
        assert_eq!(
            target("type=cache,target=..", "/a").unwrap_err(),
            "invalid mount target \"/\""
        );
    }

    #[test]
    fn cache_id_defaults_to_the_written_target() {
        let m = parse_mount("type=cache,target=rel/").unwrap();
        let r = resolve(&[(m, None)], "/w").unwrap();
        assert_eq!(r[0].0.id.as_deref(), Some("rel"));
        assert_eq!(r[0].0.target.as_deref(), Some("/w/rel"));
    }
}
