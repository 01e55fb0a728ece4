//! The RUN op: its definition and key inputs (build args, hostname, bind
//! mount contents), and its execution in the sandbox, whose changes become
//! the layer.

pub mod argv;
pub mod error;
mod step;

use crate::digest::Digest;
use crate::image::ImageState;
use crate::ops::mounts::{Mount, MountType, NetworkMode};
use crate::ops::op::{CacheMap, ExecCtx, Op, OpEnv, OpError, Source, history, now_or_epoch};
pub use argv::RunCommand;

/// BuildKit's sandbox hostname.
pub const DEFAULT_HOSTNAME: &str = "buildkitsandbox";

/// `RUN`, lowered.
#[derive(Debug, Clone)]
pub struct RunOp {
    /// The command.
    pub command: RunCommand,
    /// `--mount`s with their `from` resolved.
    pub mounts: Vec<(Mount, Option<Source>)>,
    /// `--network`.
    pub network: Option<NetworkMode>,
    /// `--security=insecure` was asked for.
    pub insecure: bool,
    /// ARG and ENV values visible to the step (its environment).
    pub env: Vec<(String, String)>,
    /// Build args in scope (in the key and the history).
    pub args_in_scope: Vec<(String, String)>,
}

impl RunOp {
    /// Whether a bind mount reads another stage or an image.
    fn binds_a_result(&self) -> bool {
        self.mounts.iter().any(|(m, s)| {
            m.kind == MountType::Bind && matches!(s, Some(Source::Stage(_) | Source::Image(_)))
        })
    }

    /// The key parts every RUN key has: definition, platform, hostname, args.
    fn base_map(&self, env: &OpEnv<'_>, parent_key: &Digest) -> CacheMap {
        let mut map = CacheMap::new(parent_key, self.kind(), self.definition());
        map.parts.add("platform", env.platform.to_string());
        if env.hostname != DEFAULT_HOSTNAME {
            map.parts.add("hostname", env.hostname.to_string());
        }
        for (k, v) in &self.args_in_scope {
            map.parts.add(format!("arg:{k}"), v.clone());
        }
        map
    }

    /// Add the contents of bind mounts to the key: they are inputs. A
    /// stage's or an image's files are known by its key (`by_content`
    /// false) or, as in BuildKit's content-based cache, by the digest of
    /// the mounted files: a stage rebuilt with the same files there
    /// still gives a cache hit.
    fn bind_inputs(
        &self,
        env: &OpEnv<'_>,
        map: &mut CacheMap,
        by_content: bool,
    ) -> Result<(), OpError> {
        for (m, src) in &self.mounts {
            if m.kind != MountType::Bind {
                continue;
            }
            let target = m.target.clone().unwrap_or_default();
            let source = m.source.clone().unwrap_or_else(|| "/".into());
            match src {
                None => {
                    let ctx = env
                        .context
                        .ok_or_else(|| OpError::Internal("no build context".into()))?;
                    for mut sel in ctx.select(&source)? {
                        let mut all = vec![sel.root.clone()];
                        all.append(&mut sel.children);
                        ctx.digest(&mut all)?;
                        sel.root = all.remove(0);
                        sel.children = all;
                        map.parts.add(
                            format!("bind:{target}"),
                            crate::context::selection_digest(&sel).to_string(),
                        );
                    }
                }
                Some(Source::Scratch) => {}
                Some(s) if by_content => {
                    let view = env.source(s)?.view;
                    map.parts.add(format!("bind:{target}"), "content");
                    crate::ops::copy::select_and_hash(env, Some(&view), &source, &mut map.parts)?;
                }
                Some(s) => {
                    // The key only: the layers are fetched if the step runs.
                    let key = (env.source_key)(s)?;
                    map.parts
                        .add(format!("bind:{target}"), format!("{key}:{source}"));
                }
            }
        }
        Ok(())
    }

    fn created_by(&self, argv: &[String]) -> String {
        let mut created_by = String::from("RUN ");
        if !self.args_in_scope.is_empty() {
            let kv: Vec<String> = self
                .args_in_scope
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            created_by.push_str(&format!("|{} {} ", kv.len(), kv.join(" ")));
        }
        created_by.push_str(&argv.join(" "));
        created_by.push_str(" # buildkit");
        created_by
    }
}

/// A mount as it enters RUN's definition: every field that changes what
/// the step sees, written out here (not the AST's serialisation).
fn mount_definition(m: &Mount) -> serde_json::Value {
    let kind = match m.kind {
        MountType::Bind => "bind",
        MountType::Cache => "cache",
        MountType::Tmpfs => "tmpfs",
        MountType::Secret => "secret",
        MountType::Ssh => "ssh",
    };
    let sharing = m.sharing.map(|s| match s {
        crate::ops::mounts::Sharing::Shared => "shared",
        crate::ops::mounts::Sharing::Private => "private",
        crate::ops::mounts::Sharing::Locked => "locked",
    });
    serde_json::json!({
        "type": kind,
        "from": m.from,
        "source": m.source,
        "target": m.target,
        "readonly": m.readonly,
        "size": m.size,
        "id": m.id,
        "sharing": sharing,
        "required": m.required,
        "env": m.env,
        "mode": m.mode,
        "uid": m.uid,
        "gid": m.gid,
    })
}

impl Op for RunOp {
    fn kind(&self) -> &'static str {
        "RUN"
    }

    fn definition(&self) -> String {
        let network = match self.network {
            None | Some(NetworkMode::Default) => "default",
            Some(NetworkMode::None) => "none",
            Some(NetworkMode::Host) => "host",
        };
        serde_json::json!({
            "command": self.command.definition(),
            "mounts": self.mounts.iter().map(|(m, _)| mount_definition(m)).collect::<Vec<_>>(),
            "network": network,
            "insecure": self.insecure,
        })
        .to_string()
    }

    fn cache_map(&self, env: &OpEnv<'_>, parent_key: &Digest) -> Result<CacheMap, OpError> {
        let mut map = self.base_map(env, parent_key);
        self.bind_inputs(env, &mut map, true)?;
        Ok(map)
    }

    fn definition_key(
        &self,
        env: &OpEnv<'_>,
        parent_key: &Digest,
    ) -> Result<Option<crate::ops::key::KeyParts>, OpError> {
        if !self.binds_a_result() {
            return Ok(None);
        }
        let mut map = self.base_map(env, parent_key);
        map.parts.add("by", "definition");
        self.bind_inputs(env, &mut map, false)?;
        Ok(Some(map.parts))
    }

    fn exec(
        &self,
        env: &OpEnv<'_>,
        parent: &ImageState,
        _map: CacheMap,
        ctx: &ExecCtx<'_>,
    ) -> Result<ImageState, OpError> {
        if env.platform.os != "linux" {
            return Err(OpError::Unsupported(format!(
                "RUN for platform {}: rbuild runs Linux steps only",
                env.platform
            )));
        }
        let (layer, argv) = step::run_layer(env, parent, self, ctx)?;
        let mut state = parent.clone();
        let has = layer.is_some();
        state.layers.extend(layer);
        let created = Some(now_or_epoch(env.epoch));
        history(&mut state.config, created, self.created_by(&argv), has);
        Ok(state)
    }
}
