//! The last step of lowering: each expanded instruction becomes an op
//! ([`crate::ops::Op`]) with a hand-written, position-free definition. This
//! is the only place that knows which op an instruction is; the solver
//! sees ops, keys and dependencies.

use super::ast::{Healthcheck, InstructionKind, Run, SecurityMode};
use super::lower::Source;
use crate::image::config::HealthConfig;
use crate::ops::Op;
use crate::ops::config::{ConfigChange, ConfigOp};
use crate::ops::copy::{CopyOp, InlineFile};
use crate::ops::mounts::Mount;
use crate::ops::run::{RunCommand, RunOp};
use crate::ops::workdir::WorkdirOp;
use std::sync::Arc;

/// What an instruction needs besides itself to become an op.
pub struct OpInputs<'a> {
    /// ARG and ENV values visible to the step.
    pub env: &'a [(String, String)],
    /// Build args in scope.
    pub args_in_scope: &'a [(String, String)],
    /// `COPY --from` resolved.
    pub copy_from: Option<&'a Source>,
    /// RUN mounts with their `from` resolved.
    pub mounts: &'a [(Mount, Option<Source>)],
    /// A CMD came earlier in the stage (ENTRYPOINT keeps it).
    pub cmd_set: bool,
}

fn config(change: ConfigChange) -> Arc<dyn Op> {
    Arc::new(ConfigOp { change })
}

fn pairs(p: &[super::ast::KeyValue]) -> Vec<(String, String)> {
    p.iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect()
}

/// RUN's command: exec form; a lone heredoc as the script; else a shell
/// script with the heredoc bodies appended.
fn run_command(run: &Run) -> RunCommand {
    let cmd = &run.command;
    if cmd.exec_form {
        return RunCommand::Exec(cmd.args.clone());
    }
    let line = cmd.args.join(" ");
    let docs = super::instructions::run_heredoc_files(&cmd.heredocs);
    if docs.len() == 1
        && super::lines::parse_heredoc_word(line.trim())
            .ok()
            .flatten()
            .is_some()
    {
        let content = docs[0].content.clone();
        if content.starts_with("#!") {
            return RunCommand::Script {
                path: format!("/.rbuild-heredoc-{}", docs[0].name),
                content,
            };
        }
        return RunCommand::Shell(content);
    }
    let mut script = line;
    for d in &docs {
        script.push('\n');
        script.push_str(&d.content);
        script.push_str(&d.name);
    }
    RunCommand::Shell(script)
}

fn health(h: &Healthcheck) -> HealthConfig {
    match h {
        Healthcheck::None => HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        },
        Healthcheck::Cmd {
            test,
            interval_ns,
            timeout_ns,
            start_period_ns,
            start_interval_ns,
            retries,
        } => HealthConfig {
            test: test.clone(),
            interval: *interval_ns,
            timeout: *timeout_ns,
            start_period: *start_period_ns,
            start_interval: *start_interval_ns,
            retries: *retries,
        },
    }
}

fn inline(p: &super::ast::SourcesAndDest) -> Vec<InlineFile> {
    p.inline_sources
        .iter()
        .map(|i| InlineFile {
            name: i.name.clone(),
            content: i.content.clone(),
        })
        .collect()
}

/// The op of an expanded instruction.
pub fn op_of(kind: &InstructionKind, inp: &OpInputs<'_>) -> Arc<dyn Op> {
    match kind {
        InstructionKind::Env { pairs: p } => config(ConfigChange::Env(pairs(p))),
        InstructionKind::Label { pairs: p } => config(ConfigChange::Label(pairs(p))),
        InstructionKind::Arg { args } => config(ConfigChange::Arg(
            args.iter()
                .map(|a| (a.name.clone(), a.default.clone()))
                .collect(),
        )),
        InstructionKind::Expose { ports } => config(ConfigChange::Expose(ports.clone())),
        InstructionKind::Volume { paths } => config(ConfigChange::Volume(paths.clone())),
        InstructionKind::User { user } => config(ConfigChange::User(user.clone())),
        InstructionKind::Stopsignal { signal } => config(ConfigChange::StopSignal(signal.clone())),
        InstructionKind::Shell { shell } => config(ConfigChange::Shell(shell.clone())),
        InstructionKind::Maintainer { name } => config(ConfigChange::Maintainer(name.clone())),
        InstructionKind::Onbuild { expression, .. } => {
            config(ConfigChange::OnBuild(expression.clone()))
        }
        InstructionKind::Cmd(c) => config(ConfigChange::Cmd {
            args: c.args.clone(),
            exec_form: c.exec_form,
        }),
        InstructionKind::Entrypoint(c) => config(ConfigChange::Entrypoint {
            args: c.args.clone(),
            exec_form: c.exec_form,
            keep_cmd: inp.cmd_set,
        }),
        InstructionKind::Healthcheck { health: h } => config(ConfigChange::Healthcheck(health(h))),
        InstructionKind::Workdir { path } => Arc::new(WorkdirOp { path: path.clone() }),
        InstructionKind::Copy(c) => Arc::new(CopyOp {
            add: false,
            sources: c.paths.sources.clone(),
            inline: inline(&c.paths),
            dest: c.paths.dest.clone(),
            chown: c.options.chown.clone(),
            chmod: c.options.chmod.clone(),
            link: c.options.link,
            exclude: c.options.exclude.clone(),
            parents: c.parents,
            from: inp.copy_from.cloned(),
            from_text: c.from.clone(),
            checksum: None,
            unpack: None,
        }),
        InstructionKind::Add(a) => Arc::new(CopyOp {
            add: true,
            sources: a.paths.sources.clone(),
            inline: inline(&a.paths),
            dest: a.paths.dest.clone(),
            chown: a.options.chown.clone(),
            chmod: a.options.chmod.clone(),
            link: a.options.link,
            exclude: a.options.exclude.clone(),
            parents: false,
            from: None,
            from_text: None,
            checksum: a.checksum.clone(),
            unpack: a.unpack,
        }),
        InstructionKind::Run(run) => Arc::new(RunOp {
            command: run_command(run),
            mounts: inp.mounts.to_vec(),
            network: run.network,
            insecure: run.security == Some(SecurityMode::Insecure),
            env: inp.env.to_vec(),
            args_in_scope: inp.args_in_scope.to_vec(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use crate::frontend::lower::{BuildOptions, UnknownImages, lower};

    /// The ops of the last stage of `text`: (kind, definition).
    fn ops(text: &str) -> Vec<(&'static str, String)> {
        let (df, mut linter) = crate::frontend::parse_dockerfile(text).unwrap();
        let plan = lower(&df, &BuildOptions::default(), &UnknownImages, &mut linter).unwrap();
        let st = &plan.stages[plan.target];
        st.steps
            .iter()
            .map(|s| (s.op.kind(), s.op.definition()))
            .collect()
    }

    #[test]
    fn definitions_do_not_depend_on_positions_or_comments() {
        let a =
            ops("FROM scratch\nRUN --mount=type=cache,target=/c make\nONBUILD RUN x\nCOPY a /b\n");
        let b = ops(
            "# a comment\nFROM scratch\n\n\nRUN   --mount=type=cache,target=/c make\n# another\nONBUILD    RUN x\nCOPY a /b\n",
        );
        assert_eq!(a, b);
        assert_eq!(
            a.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            ["RUN", "ONBUILD", "COPY"]
        );
    }

    #[test]
    fn a_stages_onbuild_triggers_run_first_in_the_child() {
        let child = ops("FROM scratch AS base\nONBUILD ENV A=1\nFROM base\nENV B=2\n");
        assert_eq!(
            child,
            [("ENV", "A=1".to_string()), ("ENV", "B=2".to_string())]
        );
    }
}
