//! WORKDIR: sets the working directory and creates it when the image lacks
//! it (owned by the stage's USER, as BuildKit), which makes a layer.

use super::op::{CacheMap, ExecCtx, Op, OpEnv, OpError, history, now_or_epoch, view_of};
use crate::image::ImageState;
use crate::layer::view::{MergedView, clean_components};
use std::path::Path;

/// `WORKDIR path` (expanded; relative to the current one when not absolute).
#[derive(Debug, Clone)]
pub struct WorkdirOp {
    /// The path as written, variables expanded.
    pub path: String,
}

impl Op for WorkdirOp {
    fn kind(&self) -> &'static str {
        "WORKDIR"
    }

    fn definition(&self) -> String {
        serde_json::json!({ "path": self.path }).to_string()
    }

    fn exec(
        &self,
        env: &OpEnv<'_>,
        parent: &ImageState,
        _map: CacheMap,
        _ctx: &ExecCtx<'_>,
    ) -> Result<ImageState, OpError> {
        let mut state = parent.clone();
        let cfg = &mut state.config;
        let wd = if self.path.starts_with('/') {
            self.path.clone()
        } else {
            let cur = if cfg.config.working_dir.is_empty() {
                "/"
            } else {
                cfg.config.working_dir.as_str()
            };
            format!("{}/{}", cur.trim_end_matches('/'), self.path)
        };
        let parts = clean_components(&wd);
        let wd = format!("/{}", parts.join("/"));
        cfg.config.working_dir = wd.clone();
        let mut layer = None;
        if wd != "/" {
            let view = view_of(env.store, parent);
            let owner = super::users::user_ids(&view, &cfg.config.user)?;
            let tmp = env.store.temp_dir("workdir")?;
            let created_time = env.epoch.map(|e| e as i64).unwrap_or(0);
            let resolved = view.resolve(&wd, true);
            if view.lookup_exact(&resolved).is_none() {
                mkdir_all(&view, tmp.path(), &resolved, owner, created_time)?;
            }
            layer = crate::layer::commit::commit_layer(env.store, env.epoch, tmp)?;
        }
        let has_layer = layer.is_some();
        state.layers.extend(layer);
        let created = Some(now_or_epoch(env.epoch));
        history(
            &mut state.config,
            created,
            format!("WORKDIR {wd}"),
            has_layer,
        );
        Ok(state)
    }
}

/// Create `parts` under `out`, each directory as the image has it when it
/// exists there, else 0755 owned by `owner`.
fn mkdir_all(
    view: &MergedView,
    out: &Path,
    parts: &[String],
    owner: (u32, u32),
    t: i64,
) -> Result<(), OpError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| OpError::Io { what, path, source }
    };
    let mut cur = out.to_path_buf();
    let mut created = Vec::new();
    for i in 0..parts.len() {
        cur.push(&parts[i]);
        std::fs::create_dir(&cur).map_err(io("creating", &cur))?;
        let (mode, uid, gid, mt) = match view.lookup_exact(&parts[..=i]) {
            Some((_, m)) if m.is_dir() => (m.mode() & 0o7777, m.uid(), m.gid(), m.mtime()),
            _ => (0o755, owner.0, owner.1, t),
        };
        std::fs::set_permissions(&cur, std::fs::Permissions::from_mode(mode))
            .map_err(io("chmod", &cur))?;
        if rustix::process::geteuid().is_root() || (uid, gid) != (0, 0) {
            std::os::unix::fs::lchown(&cur, Some(uid), Some(gid)).map_err(io("chown", &cur))?;
        }
        created.push((cur.clone(), mt));
    }
    for (p, mt) in created.into_iter().rev() {
        let ft = filetime::FileTime::from_unix_time(mt, 0);
        filetime::set_symlink_file_times(&p, ft, ft).map_err(io("setting the time of", &p))?;
    }
    Ok(())
}
