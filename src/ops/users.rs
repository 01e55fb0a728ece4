//! `user[:group]` to numeric ids through the image's /etc/passwd and /etc/group.

use crate::layer::view::MergedView;

/// Why a user or group could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A `USER` name not in /etc/passwd (runc's message).
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    /// A `USER ...:group` name not in /etc/group (runc's message).
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    /// The name is not in the image.
    #[error("unable to find {kind} {name:?} in the image's {file}")]
    Unknown {
        /// `user` or `group`.
        kind: &'static str,
        /// The name.
        name: String,
        /// Which file was searched.
        file: &'static str,
    },
}

fn lookup(view: &MergedView, file: &'static str, name: &str) -> Option<(u32, u32)> {
    let data = view.read_file(file)?;
    String::from_utf8_lossy(&data).lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 3 && f[0] == name {
            let id = f[2].parse().ok()?;
            let gid = f.get(3).and_then(|g| g.parse().ok()).unwrap_or(id);
            Some((id, gid))
        } else {
            None
        }
    })
}

fn user_id(view: &MergedView, user: &str) -> Result<(u32, Option<u32>), UserError> {
    if let Ok(n) = user.parse::<u32>() {
        return Ok((n, None));
    }
    lookup(view, "/etc/passwd", user)
        .map(|(u, g)| (u, Some(g)))
        .ok_or_else(|| UserError::Unknown {
            kind: "user",
            name: user.into(),
            file: "/etc/passwd",
        })
}

fn group_id(view: &MergedView, group: &str) -> Result<u32, UserError> {
    if let Ok(n) = group.parse::<u32>() {
        return Ok(n);
    }
    lookup(view, "/etc/group", group)
        .map(|(g, _)| g)
        .ok_or_else(|| UserError::Unknown {
            kind: "group",
            name: group.into(),
            file: "/etc/group",
        })
}

/// The home directory of `uid` from /etc/passwd (`/root` for root, else `/`).
pub fn home_dir(view: &MergedView, uid: u32) -> String {
    let from_passwd = view.read_file("/etc/passwd").and_then(|d| {
        String::from_utf8_lossy(&d).lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
        })
    });
    from_passwd.unwrap_or_else(|| if uid == 0 { "/root".into() } else { "/".into() })
}

/// `--chown` ids: without a group, the gid is the uid (Docker's documented rule).
pub fn chown_ids(view: &MergedView, spec: &str) -> Result<(u32, u32), UserError> {
    match spec.split_once(':') {
        Some((u, g)) => Ok((user_id(view, u)?.0, group_id(view, g)?)),
        None => {
            let (uid, _) = user_id(view, spec)?;
            Ok((uid, uid))
        }
    }
}

/// The credentials a `USER` runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (the groups of /etc/group listing the user).
    pub groups: Vec<u32>,
}

/// Rows of a colon-separated file: (name, id, rest...).
fn rows(view: &MergedView, file: &str) -> Vec<Vec<String>> {
    view.read_file(file)
        .map(|d| {
            String::from_utf8_lossy(&d)
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
                .filter(|f| f.len() >= 3)
                .collect()
        })
        .unwrap_or_default()
}

/// `USER` as BuildKit runs it (runc's `GetExecUser`): `uid:gid` in numbers
/// is taken as is; otherwise the user (name, or uid) is looked up in
/// /etc/passwd, a numeric uid not found being allowed with gid 0; an
/// explicit group is looked up in /etc/group (a number not found is
/// allowed); without one, the user's groups in /etc/group are supplementary.
pub fn exec_user(view: &MergedView, spec: &str) -> Result<ExecUser, UserError> {
    if spec.is_empty() {
        // The default user is uid 0, with its groups when the image has them.
        return Ok(exec_user(view, "0").unwrap_or(ExecUser {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
        }));
    }
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let numeric = |s: &str| if s == "root" { Ok(0) } else { s.parse::<u32>() };
    if let (Ok(uid), Some(Ok(gid))) = (numeric(user), group.map(numeric)) {
        return Ok(ExecUser {
            uid,
            gid,
            groups: vec![gid],
        });
    }
    let passwd = rows(view, "/etc/passwd");
    let entry = passwd
        .iter()
        .find(|f| f[0] == user || (user.parse::<u32>().is_ok() && f[2] == user));
    let (uid, mut gid, name) = match entry {
        Some(f) => (
            f[2].parse().map_err(|_| UserError::NoUser(user.into()))?,
            f.get(3).and_then(|g| g.parse().ok()).unwrap_or(0),
            f[0].clone(),
        ),
        None => match user.parse::<u32>() {
            Ok(uid) => (uid, 0, String::new()),
            Err(_) => return Err(UserError::NoUser(user.into())),
        },
    };
    let groups = rows(view, "/etc/group");
    let mut sgids = Vec::new();
    match group {
        Some(g) => match groups.iter().find(|f| f[0] == g || f[2] == g) {
            Some(f) => gid = f[2].parse().map_err(|_| UserError::NoGroup(g.into()))?,
            None => gid = g.parse().map_err(|_| UserError::NoGroup(g.into()))?,
        },
        None => {
            for f in &groups {
                let members = f.get(3).map(String::as_str).unwrap_or("");
                if !name.is_empty()
                    && members.split(',').any(|m| m.trim() == name)
                    && let Ok(id) = f[2].parse()
                {
                    sgids.push(id);
                }
            }
        }
    }
    // The primary group is in the list too (containerd, CVE-2023-25173).
    if !sgids.contains(&gid) {
        sgids.insert(0, gid);
    }
    Ok(ExecUser {
        uid,
        gid,
        groups: sgids,
    })
}

/// `USER` ids, as a process would run (see [`exec_user`]).
pub fn user_ids(view: &MergedView, spec: &str) -> Result<(u32, u32), UserError> {
    exec_user(view, spec).map(|u| (u.uid, u.gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_and_numbers() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(d.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let v = MergedView {
            layers: vec![d.path().to_path_buf()],
        };
        assert_eq!(chown_ids(&v, "app").unwrap(), (1000, 1000));
        assert_eq!(user_ids(&v, "app").unwrap(), (1000, 1001));
        assert_eq!(chown_ids(&v, "app:staff").unwrap(), (1000, 50));
        assert_eq!(chown_ids(&v, "10:11").unwrap(), (10, 11));
        assert_eq!(chown_ids(&v, "7").unwrap(), (7, 7));
        assert!(chown_ids(&v, "nobody").is_err());
    }

    #[test]
    fn exec_user_follows_runc() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nwheel:x:10:root\nstaff:x:50:app,root\n",
        )
        .unwrap();
        let v = MergedView {
            layers: vec![d.path().to_path_buf()],
        };
        let u = |s: &str| exec_user(&v, s).map_err(|e| e.to_string());
        let eu = |uid, gid, groups: &[u32]| ExecUser {
            uid,
            gid,
            groups: groups.to_vec(),
        };
        assert_eq!(u("root"), Ok(eu(0, 0, &[0, 10, 50])));
        assert_eq!(u(""), Ok(eu(0, 0, &[0, 10, 50])));
        assert_eq!(u("1000"), Ok(eu(1000, 1001, &[1001, 50])));
        assert_eq!(u("app:wheel"), Ok(eu(1000, 10, &[10])));
        assert_eq!(u("4242"), Ok(eu(4242, 0, &[0])));
        assert_eq!(u("4242:4343"), Ok(eu(4242, 4343, &[4343])));
        assert_eq!(u("app:777"), Ok(eu(1000, 777, &[777])));
        assert_eq!(
            u("ghost"),
            Err("unable to find user ghost: no matching entries in passwd file".into())
        );
        assert_eq!(
            u("app:ghosts"),
            Err("unable to find group ghosts: no matching entries in group file".into())
        );
    }
}
