//! Lowering one stage: its base, its base's ONBUILD triggers, and each
//! instruction expanded in the stage's scope (ARG/ENV as they go) and
//! turned into its op.

use super::{BaseEnv, BuildOptions, PlannedStage, Source, Step, VarEnv, get, set};
use crate::frontend::ast::*;
use crate::frontend::error::{FrontendError, Result};
use crate::frontend::ignored_sources;
use crate::frontend::lint::Linter;
use crate::frontend::mounts::{csv_fields, parse_mount_fields};
use crate::frontend::position::Pos;
use crate::frontend::shell::Lexer;
use crate::frontend::stage_refs::{resolve_from, stage_label};
use crate::frontend::suggest::closest;

/// The state of lowering across stages.
pub(super) struct Lowering<'a> {
    pub(super) df: &'a Dockerfile,
    pub(super) opts: &'a BuildOptions,
    pub(super) images: &'a dyn BaseEnv,
    pub(super) linter: &'a mut Linter,
    pub(super) lex: Lexer,
    pub(super) names: Vec<(String, usize)>,
    pub(super) global: Vec<(String, String)>,
    pub(super) declared_global: Vec<String>,
    /// Each stage's final environment (None when its base's is unknown).
    pub(super) stage_env: Vec<Option<Vec<(String, String)>>>,
    /// Build args some stage consumed.
    pub(super) consumed: Vec<String>,
    /// References to stages defined later: errors when their stage is built.
    pub(super) late_refs: Vec<(usize, Pos, String)>,
}

/// The scope of one stage while its instructions are lowered.
struct StageScope {
    index: usize,
    label: String,
    env: Vec<(String, String)>,
    env_known: bool,
    declared: Vec<String>,
    args_in_scope: Vec<(String, String)>,
    deps: Vec<usize>,
    had_workdir: bool,
    cmd_set: bool,
}

impl Lowering<'_> {
    /// What a stage's FROM names, expanded in the global scope.
    fn base(&mut self, st: &Stage) -> Result<(Source, Option<String>)> {
        let exp = self
            .lex
            .expand_word(&st.base, &VarEnv(&self.global))
            .map_err(|e| FrontendError::new(st.span.start, e.to_string()))?;
        self.undeclared_in_from(st, &exp.unmatched);
        self.consumed.extend(exp.matched.iter().cloned());
        let base_name = exp.result;
        if base_name.is_empty() {
            return Err(FrontendError::new(
                st.span.start,
                format!("base name ({}) should not be blank", st.base),
            ));
        }
        let platform = match &st.platform {
            Some(p) => Some(self.stage_platform_value(st, p)?),
            None => None,
        };
        let lower_base = base_name.to_ascii_lowercase();
        let base = if lower_base == "scratch" {
            Source::Scratch
        } else if let Some((_, i)) = self
            .names
            .iter()
            .find(|(n, i)| *n == lower_base && *i < st.index)
        {
            Source::Stage(*i)
        } else {
            Source::Image(base_name.clone())
        };
        Ok((base, platform))
    }

    /// BuildKit's UndefinedArgInFrom: variables of a FROM line not declared
    /// before the first FROM, with the closest declared name.
    fn undeclared_in_from(&mut self, st: &Stage, unmatched: &std::collections::BTreeSet<String>) {
        let keys: Vec<&str> = self.global.iter().map(|(k, _)| k.as_str()).collect();
        for name in unmatched {
            if !self.declared_global.contains(name) {
                let mut msg = format!("FROM argument '{name}' is not declared");
                if let Some(c) = crate::frontend::suggest::closest(name, &keys) {
                    msg.push_str(&format!(" (did you mean {c}?)"));
                }
                self.linter.report("UndefinedArgInFrom", st.span.start, msg);
            }
        }
    }

    /// `FROM --platform=P` expanded in the global scope and checked as
    /// BuildKit checks it: an empty value or an unparsable platform is an
    /// error, with the closest name of an undeclared variable in it.
    fn stage_platform_value(&mut self, st: &Stage, p: &str) -> Result<String> {
        let exp = self
            .lex
            .expand_word(p, &VarEnv(&self.global))
            .map_err(|e| FrontendError::new(st.span.start, e.to_string()))?;
        self.undeclared_in_from(st, &exp.unmatched);
        self.consumed.extend(exp.matched.iter().cloned());
        let keys: Vec<&str> = self.global.iter().map(|(k, _)| k.as_str()).collect();
        let suggest = |msg: String| {
            let hint = exp
                .unmatched
                .iter()
                .find_map(|n| crate::frontend::suggest::closest(n, &keys));
            match hint {
                Some(c) => format!("{msg} (did you mean {c}?)"),
                None => msg,
            }
        };
        if exp.result.is_empty() {
            let msg = suggest(format!("empty platform value from expression {p}"));
            return Err(FrontendError::new(st.span.start, msg));
        }
        let parsed = match crate::frontend::platform::Platform::parse(&exp.result) {
            Ok(parsed) => parsed,
            Err(e) => {
                let msg = suggest(format!("failed to parse platform {p}: {e}"));
                return Err(FrontendError::new(st.span.start, msg));
            }
        };
        let only_target = exp.unmatched.is_empty()
            && exp.matched.len() == 1
            && exp.matched.contains("TARGETPLATFORM");
        if only_target && get(&self.global, "TARGETPLATFORM") == Some(exp.result.as_str()) {
            self.linter.report(
                "RedundantTargetPlatform",
                st.span.start,
                format!("Setting platform to predefined {p} in FROM is redundant as this is the default behavior"),
            );
        }
        // A constant platform is allowed when the stage's name says which.
        let name = st.name.as_deref().unwrap_or("");
        if exp.matched.is_empty()
            && exp.unmatched.is_empty()
            && !name.contains(&parsed.os)
            && !name.contains(&parsed.arch)
        {
            self.linter.report(
                "FromPlatformFlagConstDisallowed",
                st.span.start,
                format!(
                    "FROM --platform flag should not use constant value \"{}\"",
                    exp.result
                ),
            );
        }
        Ok(exp.result)
    }

    /// Lower one stage: its base, its base's ONBUILD triggers, its instructions.
    pub(super) fn stage(&mut self, st: &Stage) -> Result<PlannedStage> {
        let (base, platform) = self.base(st)?;
        let env = match &base {
            Source::Scratch => Some(Vec::new()),
            Source::Stage(i) => self.stage_env[*i].clone(),
            Source::Image(r) => self.images.env(r),
        };
        let mut scope = StageScope {
            index: st.index,
            label: stage_label(st),
            env_known: env.is_some(),
            env: env.unwrap_or_default(),
            declared: Vec::new(),
            args_in_scope: Vec::new(),
            deps: Vec::new(),
            had_workdir: false,
            cmd_set: false,
        };
        if let Source::Stage(i) = base {
            scope.deps.push(i);
        }
        let triggers =
            crate::frontend::onbuild::base_triggers(self.df, &base, self.images, st.span)?;
        // Stages read by the triggers run in this build.
        for r in crate::frontend::onbuild::stage_trigger_refs_of(&triggers) {
            if let Some(i) =
                crate::frontend::onbuild::stage_index(&r, &self.names, self.df.stages.len())
            {
                scope.deps.push(i);
            }
        }
        let all = triggers
            .iter()
            .map(|t| (t, true))
            .chain(st.instructions.iter().map(|i| (i, false)));
        let mut steps = Vec::new();
        for (instr, trigger) in all {
            steps.push(self.step(&mut scope, instr, trigger)?);
        }
        scope.deps.sort_unstable();
        scope.deps.dedup();
        self.stage_env
            .push(scope.env_known.then(|| scope.env.clone()));
        Ok(PlannedStage {
            index: st.index,
            name: st.name.clone(),
            base,
            platform,
            span: st.span,
            steps,
            deps: scope.deps,
        })
    }

    /// ENV and ARG change the stage's environment as they go.
    fn scope_vars(&mut self, sc: &mut StageScope, out: &mut Instruction) -> Result<()> {
        let at = out.span.start;
        match &mut out.kind {
            InstructionKind::Env { pairs } => {
                // Every pair sees the environment from before the
                // instruction (`ENV a=bye b=$a` gives b the old a).
                {
                    let mut ctx = ExpandCtx::new(
                        &self.lex,
                        &sc.env,
                        &sc.declared,
                        sc.env_known,
                        self.linter,
                        at,
                    );
                    for p in pairs.iter_mut() {
                        p.key = ctx.word(&p.key)?;
                        p.value = ctx.word(&p.value)?;
                    }
                }
                for p in pairs.iter() {
                    set(&mut sc.env, &p.key, &p.value);
                }
            }
            InstructionKind::Arg { args } => {
                for a in args.iter_mut() {
                    let from_cli = self
                        .opts
                        .build_args
                        .iter()
                        .rev()
                        .find(|(k, _)| *k == a.name);
                    let value = match (from_cli, &a.default) {
                        (Some((_, v)), _) => Some(v.clone()),
                        (None, Some(d)) => {
                            let mut ctx = ExpandCtx::new(
                                &self.lex,
                                &sc.env,
                                &sc.declared,
                                sc.env_known,
                                self.linter,
                                a.pos,
                            );
                            Some(ctx.word(d)?)
                        }
                        (None, None) => get(&self.global, &a.name).map(String::from),
                    };
                    if from_cli.is_some() {
                        self.consumed.push(a.name.clone());
                    }
                    sc.declared.push(a.name.clone());
                    if let Some(v) = &value {
                        set(&mut sc.env, &a.name, v);
                    }
                    // As BuildKit's history (`RUN |2 a=1 b= ...`): every
                    // ARG, valueless too, at its first declaration's place.
                    let v = value.clone().unwrap_or_default();
                    match sc.args_in_scope.iter_mut().find(|(k, _)| *k == a.name) {
                        Some(kv) => kv.1 = v,
                        None => sc.args_in_scope.push((a.name.clone(), v)),
                    }
                    a.default = value;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A `--from` of the stage `sc`: resolved, a dependency; a later
    /// stage is an error once that stage is built.
    fn stage_ref(
        &mut self,
        sc: &mut StageScope,
        from: &str,
        at: Pos,
        late: String,
    ) -> Result<Source> {
        let src = resolve_from(from, &self.names, self.df.stages.len(), at)?;
        if let Source::Stage(i) = src {
            if i >= sc.index {
                self.late_refs.push((sc.index, at, late));
            }
            sc.deps.push(i);
        }
        Ok(src)
    }

    /// Lower one instruction of a stage to a step with its op.
    fn step(&mut self, sc: &mut StageScope, instr: &Instruction, trigger: bool) -> Result<Step> {
        let mut out = instr.clone();
        let at = instr.span.start;
        self.scope_vars(sc, &mut out)?;
        let copy_from = match &out.kind {
            InstructionKind::Copy(Copy { from: Some(f), .. }) => {
                let late = format!(
                    "cannot copy from stage \"{f}\", it needs to be defined before current stage \"{}\"",
                    sc.label
                );
                Some(self.stage_ref(sc, &f.clone(), at, late)?)
            }
            _ => None,
        };
        let mounts = match &out.kind {
            InstructionKind::Run(run) => self.run_mounts(sc, &run.mounts_raw.clone(), at)?,
            _ => Vec::new(),
        };
        if let InstructionKind::Run(run) = &mut out.kind {
            run.mounts = mounts.iter().map(|(m, _)| m.clone()).collect();
        }
        self.expand(sc, &mut out)?;
        let op = crate::frontend::to_ops::op_of(
            &out.kind,
            &crate::frontend::to_ops::OpInputs {
                env: &sc.env,
                args_in_scope: &sc.args_in_scope,
                copy_from: copy_from.as_ref(),
                mounts: &mounts,
                cmd_set: sc.cmd_set,
            },
        );
        if matches!(out.kind, InstructionKind::Cmd(_)) {
            sc.cmd_set = true;
        }
        if trigger {
            out.original = format!("ONBUILD {}", out.original);
        }
        Ok(Step {
            instruction: out,
            env: sc.env.clone(),
            args_in_scope: sc.args_in_scope.clone(),
            copy_from,
            mounts,
            trigger,
            op,
        })
    }

    /// RUN's `--mount`s: fields expanded, parsed, `from` resolved.
    fn run_mounts(
        &mut self,
        sc: &mut StageScope,
        raws: &[String],
        at: Pos,
    ) -> Result<Vec<(Mount, Option<Source>)>> {
        let mut mounts = Vec::new();
        for raw in raws {
            let fields = csv_fields(raw)
                .map_err(|e| FrontendError::new(at, format!("failed to parse csv mounts: {e}")))?;
            let mut expanded = Vec::new();
            {
                let mut ctx = ExpandCtx::new(
                    &self.lex,
                    &sc.env,
                    &sc.declared,
                    sc.env_known,
                    self.linter,
                    at,
                );
                for f in fields {
                    match f.split_once('=') {
                        Some((k, v)) => expanded.push(format!("{k}={}", ctx.word(v)?)),
                        None => expanded.push(f),
                    }
                }
            }
            let m = parse_mount_fields(expanded).map_err(|e| FrontendError::new(at, e))?;
            let src = match &m.from {
                Some(f) if m.kind != MountType::Cache || !f.is_empty() => {
                    let late = format!(
                        "cannot mount from stage \"{f}\" to \"{}\", stage needs to be defined before current command",
                        m.target.as_deref().unwrap_or("")
                    );
                    Some(self.stage_ref(sc, &f.clone(), at, late)?)
                }
                _ => None,
            };
            mounts.push((m, src));
        }
        Ok(mounts)
    }

    /// Expand the words Docker expands in each instruction.
    fn expand(&mut self, sc: &mut StageScope, out: &mut Instruction) -> Result<()> {
        let at = out.span.start;
        let mut ctx = ExpandCtx::new(
            &self.lex,
            &sc.env,
            &sc.declared,
            sc.env_known,
            self.linter,
            at,
        );
        match &mut out.kind {
            InstructionKind::Label { pairs } => {
                for p in pairs.iter_mut() {
                    p.key = ctx.word(&p.key)?;
                    p.value = ctx.word(&p.value)?;
                }
            }
            InstructionKind::Add(add) => {
                expand_paths(&mut ctx, &mut add.paths)?;
                expand_opt(&mut ctx, &mut add.options.chown)?;
                expand_opt(&mut ctx, &mut add.options.chmod)?;
                expand_opt(&mut ctx, &mut add.checksum)?;
                crate::frontend::add_sources::check_add(add)
                    .map_err(|e| FrontendError::new(at, e))?;
                let ignore = self.opts.ignore.as_deref();
                ignored_sources::check(ignore, true, &add.paths.sources, at, ctx.linter);
            }
            InstructionKind::Copy(copy) => {
                expand_paths(&mut ctx, &mut copy.paths)?;
                expand_opt(&mut ctx, &mut copy.options.chown)?;
                expand_opt(&mut ctx, &mut copy.options.chmod)?;
                if copy.from.is_none() {
                    let ignore = self.opts.ignore.as_deref();
                    ignored_sources::check(ignore, false, &copy.paths.sources, at, ctx.linter);
                }
            }
            InstructionKind::Workdir { path } => {
                *path = ctx.word(path)?;
                if !path.starts_with('/') && !sc.had_workdir {
                    ctx.linter.report(
                        "WorkdirRelativePath",
                        at,
                        format!("Relative workdir '{path}' can have unexpected results if the base image changes"),
                    );
                }
                sc.had_workdir = true;
            }
            InstructionKind::User { user } => *user = ctx.word(user)?,
            InstructionKind::Stopsignal { signal } => *signal = ctx.word(signal)?,
            InstructionKind::Volume { paths } => {
                for p in paths.iter_mut() {
                    *p = ctx.word(p)?;
                }
            }
            InstructionKind::Expose { ports } => {
                let mut all = Vec::new();
                for p in ports.iter() {
                    all.extend(ctx.words(p)?);
                }
                for p in &all {
                    expose_checks(ctx.linter, at, p);
                }
                *ports = all;
            }
            _ => {}
        }
        Ok(())
    }
}

struct ExpandCtx<'a> {
    lex: &'a Lexer,
    env: &'a [(String, String)],
    declared: &'a [String],
    env_known: bool,
    linter: &'a mut Linter,
    pos: Pos,
}

impl<'a> ExpandCtx<'a> {
    fn new(
        lex: &'a Lexer,
        env: &'a [(String, String)],
        declared: &'a [String],
        env_known: bool,
        linter: &'a mut Linter,
        pos: Pos,
    ) -> Self {
        ExpandCtx {
            lex,
            env,
            declared,
            env_known,
            linter,
            pos,
        }
    }
    fn report(&mut self, unmatched: &std::collections::BTreeSet<String>) {
        if !self.env_known {
            return;
        }
        for name in unmatched {
            if self.declared.contains(name) {
                continue;
            }
            let known: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
            let mut msg = format!("Usage of undefined variable '${name}'");
            if let Some(c) = closest(name, &known) {
                msg.push_str(&format!(" (did you mean ${c}?)"));
            }
            self.linter.report("UndefinedVar", self.pos, msg);
        }
    }
    fn word(&mut self, w: &str) -> Result<String> {
        let e = self
            .lex
            .expand_word(w, &VarEnv(self.env))
            .map_err(|e| FrontendError::new(self.pos, e.to_string()))?;
        self.report(&e.unmatched);
        Ok(e.result)
    }
    fn words(&mut self, w: &str) -> Result<Vec<String>> {
        let e = self
            .lex
            .expand_word(w, &VarEnv(self.env))
            .map_err(|e| FrontendError::new(self.pos, e.to_string()))?;
        self.report(&e.unmatched);
        Ok(e.words)
    }
}

fn expand_opt(ctx: &mut ExpandCtx<'_>, v: &mut Option<String>) -> Result<()> {
    if let Some(s) = v {
        *s = ctx.word(s)?;
    }
    Ok(())
}

fn expand_paths(ctx: &mut ExpandCtx<'_>, p: &mut SourcesAndDest) -> Result<()> {
    for s in p.sources.iter_mut() {
        *s = ctx.word(s)?;
    }
    p.dest = ctx.word(&p.dest)?;
    let mut raw = Lexer::new('\\');
    raw.skip_process_quotes = true;
    for inline in p.inline_sources.iter_mut().filter(|i| i.expand) {
        let e = raw
            .expand_word(&inline.content, &VarEnv(ctx.env))
            .map_err(|e| FrontendError::new(ctx.pos, e.to_string()))?;
        ctx.report(&e.unmatched);
        inline.content = e.result;
    }
    Ok(())
}

/// BuildKit's EXPOSE checks: ExposeProtoCasing and ExposeInvalidFormat.
fn expose_checks(linter: &mut Linter, at: Pos, port: &str) {
    let (ip, host, container) = crate::ops::config::split_port(port);
    if let Some((_, proto)) = container.split_once('/')
        && proto != proto.to_ascii_lowercase()
    {
        linter.report(
            "ExposeProtoCasing",
            at,
            format!("Defined protocol '{port}' in EXPOSE instruction should be lowercase"),
        );
    }
    if !ip.is_empty() || !host.is_empty() {
        linter.report(
            "ExposeInvalidFormat",
            at,
            format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{port}'"),
        );
    }
}
