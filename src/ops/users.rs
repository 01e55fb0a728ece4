//! `user[:group]` to numeric ids through the image's /etc/passwd and /etc/group.

use crate::layer::view::MergedView;

/// Why a user or group could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
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

/// `USER` ids, as a process would run: without a group, the user's primary group.
pub fn user_ids(view: &MergedView, spec: &str) -> Result<(u32, u32), UserError> {
    if spec.is_empty() {
        return Ok((0, 0));
    }
    match spec.split_once(':') {
        Some((u, g)) => Ok((user_id(view, u)?.0, group_id(view, g)?)),
        None => {
            let (uid, primary) = user_id(view, spec)?;
            Ok((uid, primary.unwrap_or(0)))
        }
    }
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
}
