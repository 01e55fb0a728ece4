//! Config-only ops (ENV, LABEL, ARG, EXPOSE, VOLUME, USER, STOPSIGNAL,
//! SHELL, MAINTAINER, ONBUILD, CMD, ENTRYPOINT, HEALTHCHECK): they change
//! the image config and add a history entry, never the filesystem, so the
//! solver folds them into the config as they come, without a cache record.

use super::op::{CacheMap, ExecCtx, Op, OpEnv, OpError, history, now_or_epoch};
use crate::image::ImageState;
use crate::image::config::{HealthConfig, ImageConfig};
use serde_json::json;

/// What a config-only instruction sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// `ENV k=v ...`.
    Env(Vec<(String, String)>),
    /// `LABEL k=v ...`.
    Label(Vec<(String, String)>),
    /// `ARG name[=value] ...` (the value in force, if any).
    Arg(Vec<(String, Option<String>)>),
    /// `EXPOSE port[/proto] ...`.
    Expose(Vec<String>),
    /// `VOLUME path ...`.
    Volume(Vec<String>),
    /// `USER user[:group]`.
    User(String),
    /// `STOPSIGNAL sig`.
    StopSignal(String),
    /// `SHELL [...]`.
    Shell(Vec<String>),
    /// `MAINTAINER name`.
    Maintainer(String),
    /// `ONBUILD instruction` (its text).
    OnBuild(String),
    /// `CMD`: its words and whether they are the exec form.
    Cmd {
        /// Words.
        args: Vec<String>,
        /// Exec (JSON) form.
        exec_form: bool,
    },
    /// `ENTRYPOINT`: as CMD, and whether a CMD of this stage stays (an
    /// ENTRYPOINT clears the inherited CMD unless the stage set one).
    Entrypoint {
        /// Words.
        args: Vec<String>,
        /// Exec (JSON) form.
        exec_form: bool,
        /// A CMD came earlier in the stage.
        keep_cmd: bool,
    },
    /// `HEALTHCHECK` as the config stores it.
    Healthcheck(HealthConfig),
}

/// A config-only op.
#[derive(Debug, Clone)]
pub struct ConfigOp {
    /// The change.
    pub change: ConfigChange,
}

fn pairs_def(pairs: &[(String, String)]) -> String {
    let v: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    v.join("\n")
}

fn shell_of(cfg: &ImageConfig) -> Vec<String> {
    if cfg.config.shell.is_empty() && cfg.os == "windows" {
        // BuildKit's default shell for Windows.
        vec!["cmd".into(), "/S".into(), "/C".into()]
    } else if cfg.config.shell.is_empty() {
        vec!["/bin/sh".into(), "-c".into()]
    } else {
        cfg.config.shell.clone()
    }
}

fn go_quote_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| crate::quote::go_quote(s)).collect();
    format!("[{}]", items.join(" "))
}

/// BuildKit's split of an EXPOSE port: (ip, host port, container port),
/// `[ip:][host:]container[/proto]`.
pub fn split_port(raw: &str) -> (String, String, String) {
    let parts: Vec<&str> = raw.split(':').collect();
    match parts.as_slice() {
        [c] => (String::new(), String::new(), c.to_string()),
        [h, c] => (String::new(), h.to_string(), c.to_string()),
        [ip, h, c] => (ip.to_string(), h.to_string(), c.to_string()),
        _ => {
            let n = parts.len();
            (
                parts[..n - 2].join(":"),
                parts[n - 2].to_string(),
                parts[n - 1].to_string(),
            )
        }
    }
}

/// `EXPOSE` ports with ranges (`8000-8002/udp`) spelled out; a range ends
/// at 65535 whatever it says, and a bad one is skipped (as Docker's nat).
pub fn expose_ports(ports: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for p in ports {
        // An IP address and a host port are dropped, as BuildKit does.
        let (_, _, container) = split_port(p);
        let p = &container;
        let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
        let proto = proto.to_ascii_lowercase();
        match num.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    for n in a..=b {
                        out.push(format!("{n}/{proto}"));
                    }
                }
            }
            None => out.push(format!("{num}/{proto}")),
        }
    }
    out
}

impl ConfigChange {
    /// Apply to `cfg`; the history entry's text.
    fn apply(&self, cfg: &mut ImageConfig) -> String {
        let pairs_text = |p: &[(String, String)]| pairs_def(p).replace('\n', " ");
        match self {
            ConfigChange::Env(pairs) => {
                for (k, v) in pairs {
                    cfg.set_env(k, v);
                }
                format!("ENV {}", pairs_text(pairs))
            }
            ConfigChange::Label(pairs) => {
                for (k, v) in pairs {
                    cfg.config.labels.insert(k.clone(), v.clone());
                }
                format!("LABEL {}", pairs_text(pairs))
            }
            ConfigChange::Arg(args) => {
                let s: Vec<String> = args
                    .iter()
                    .map(|(n, v)| match v {
                        Some(v) => format!("{n}={v}"),
                        None => n.clone(),
                    })
                    .collect();
                format!("ARG {}", s.join(" "))
            }
            ConfigChange::Expose(ports) => {
                // As BuildKit: the history names this instruction's ports,
                // in the order of its (sorted) arguments.
                let ports = expose_ports(ports);
                for p in &ports {
                    cfg.config.exposed_ports.insert(p.clone(), json!({}));
                }
                format!("EXPOSE [{}]", ports.join(" "))
            }
            ConfigChange::Volume(paths) => {
                for p in paths {
                    cfg.config.volumes.insert(p.clone(), json!({}));
                }
                format!("VOLUME [{}]", paths.join(" "))
            }
            ConfigChange::User(user) => {
                cfg.config.user = user.clone();
                format!("USER {user}")
            }
            ConfigChange::StopSignal(signal) => {
                cfg.config.stop_signal = signal.clone();
                format!("STOPSIGNAL {signal}")
            }
            ConfigChange::Shell(shell) => {
                cfg.config.shell = shell.clone();
                format!("SHELL [{}]", shell.join(" "))
            }
            ConfigChange::Maintainer(name) => {
                cfg.author = name.clone();
                format!("MAINTAINER {name}")
            }
            ConfigChange::OnBuild(expression) => {
                cfg.config.on_build.push(expression.clone());
                format!("ONBUILD {expression}")
            }
            ConfigChange::Cmd { args, exec_form } => {
                let args = with_shell(cfg, args, *exec_form);
                let text = format!("CMD {}", go_quote_list(&args));
                cfg.config.cmd = Some(args);
                text
            }
            ConfigChange::Entrypoint {
                args,
                exec_form,
                keep_cmd,
            } => {
                let args = with_shell(cfg, args, *exec_form);
                let text = format!("ENTRYPOINT {}", go_quote_list(&args));
                cfg.config.entrypoint = if args.is_empty() { None } else { Some(args) };
                if !*keep_cmd {
                    cfg.config.cmd = None;
                }
                text
            }
            ConfigChange::Healthcheck(hc) => {
                cfg.config.healthcheck = Some(hc.clone());
                format!("HEALTHCHECK &{{{}}}", go_quote_list(&hc.test))
            }
        }
    }
}

fn with_shell(cfg: &ImageConfig, args: &[String], exec_form: bool) -> Vec<String> {
    if exec_form {
        return args.to_vec();
    }
    let mut v = shell_of(cfg);
    v.extend(args.iter().cloned());
    v
}

impl Op for ConfigOp {
    fn kind(&self) -> &'static str {
        match &self.change {
            ConfigChange::Env(_) => "ENV",
            ConfigChange::Label(_) => "LABEL",
            ConfigChange::Arg(_) => "ARG",
            ConfigChange::Expose(_) => "EXPOSE",
            ConfigChange::Volume(_) => "VOLUME",
            ConfigChange::User(_) => "USER",
            ConfigChange::StopSignal(_) => "STOPSIGNAL",
            ConfigChange::Shell(_) => "SHELL",
            ConfigChange::Maintainer(_) => "MAINTAINER",
            ConfigChange::OnBuild(_) => "ONBUILD",
            ConfigChange::Cmd { .. } => "CMD",
            ConfigChange::Entrypoint { .. } => "ENTRYPOINT",
            ConfigChange::Healthcheck(_) => "HEALTHCHECK",
        }
    }

    fn definition(&self) -> String {
        match &self.change {
            ConfigChange::Env(p) | ConfigChange::Label(p) => pairs_def(p),
            // The names only, as in BuildKit an ARG's value reaches a key
            // only through the steps that use it (a RUN's args in scope, an
            // expanded COPY source, ENV...): an unused or platform-dependent
            // value (`ARG TARGETARCH`) does not split later steps' keys.
            ConfigChange::Arg(args) => {
                let v: Vec<&str> = args.iter().map(|(n, _)| n.as_str()).collect();
                v.join("\n")
            }
            ConfigChange::Expose(ports) => json!({ "ports": ports }).to_string(),
            ConfigChange::Volume(paths) => json!({ "paths": paths }).to_string(),
            ConfigChange::User(u) => json!({ "user": u }).to_string(),
            ConfigChange::StopSignal(s) => json!({ "signal": s }).to_string(),
            ConfigChange::Shell(s) => json!({ "shell": s }).to_string(),
            ConfigChange::Maintainer(n) => json!({ "name": n }).to_string(),
            ConfigChange::OnBuild(e) => json!({ "trigger": e }).to_string(),
            ConfigChange::Cmd { args, exec_form } => {
                json!({ "command": args, "exec_form": exec_form }).to_string()
            }
            ConfigChange::Entrypoint {
                args,
                exec_form,
                keep_cmd,
            } => {
                json!({ "command": args, "exec_form": exec_form, "keep_cmd": keep_cmd }).to_string()
            }
            ConfigChange::Healthcheck(hc) => json!({
                "test": hc.test,
                "interval": hc.interval,
                "timeout": hc.timeout,
                "start_period": hc.start_period,
                "start_interval": hc.start_interval,
                "retries": hc.retries,
            })
            .to_string(),
        }
    }

    fn makes_layer(&self) -> bool {
        false
    }

    fn exec(
        &self,
        env: &OpEnv<'_>,
        parent: &ImageState,
        _map: CacheMap,
        _ctx: &ExecCtx<'_>,
    ) -> Result<ImageState, OpError> {
        let mut state = parent.clone();
        let text = self.change.apply(&mut state.config);
        let created = env.epoch.map(|e| now_or_epoch(Some(e)));
        history(&mut state.config, created, text, false);
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expose_ranges_stop_at_the_last_port() {
        assert_eq!(
            expose_ports(&["65534-65535/UDP".into()]),
            ["65534/udp", "65535/udp"]
        );
        assert!(expose_ports(&["65535-70000".into()]).is_empty());
        assert!(expose_ports(&["5-3".into()]).is_empty());
        assert_eq!(expose_ports(&["80".into()]), ["80/tcp"]);
    }

    #[test]
    fn entrypoint_clears_an_inherited_cmd_only() {
        let mut cfg = ImageConfig::scratch("linux", "amd64", "");
        cfg.config.cmd = Some(vec!["base".into()]);
        let ep = |keep_cmd| ConfigChange::Entrypoint {
            args: vec!["/e".into()],
            exec_form: true,
            keep_cmd,
        };
        ep(true).apply(&mut cfg);
        assert_eq!(cfg.config.cmd, Some(vec!["base".into()]));
        ep(false).apply(&mut cfg);
        assert_eq!(cfg.config.cmd, None);
    }

    #[test]
    fn definitions_hold_no_positions() {
        let op = ConfigOp {
            change: ConfigChange::OnBuild("RUN make".into()),
        };
        assert_eq!(op.definition(), r#"{"trigger":"RUN make"}"#);
    }
}
