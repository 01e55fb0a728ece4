//! Lowering: the AST plus build options to a plan of stages with every
//! variable expanded where Docker expands it, ARG/ENV scoping applied, stage
//! references resolved, and the stages the target needs in build order.

use super::ast::*;
use super::error::{FrontendError, Result};
use super::lint::Linter;
use super::mounts::{csv_fields, parse_mount_fields};
use super::platform::{PROXY_ARGS, Platform, default_args};
use super::position::{Pos, Span};
use super::shell::{Env, Lexer};
use super::stage_refs::{build_order, resolve_from, stage_label};
use super::suggest::closest;
use serde::Serialize;

/// Options of a build that affect the frontend.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `--build-arg K=V`, in order.
    pub build_args: Vec<(String, String)>,
    /// `--target`.
    pub target: Option<String>,
    /// `--platform` (target platform).
    pub target_platform: Platform,
    /// The platform the build runs on.
    pub build_platform: Platform,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            build_args: Vec::new(),
            target: None,
            target_platform: Platform::host(),
            build_platform: Platform::host(),
        }
    }
}

/// Looks up the environment of a base image, if it is known.
pub trait BaseEnv {
    /// The `Env` of `image`'s config, or `None` when it cannot be known now.
    fn env(&self, image: &str) -> Option<Vec<(String, String)>>;
    /// The ONBUILD triggers of `image`'s config (none when unknown).
    fn onbuild(&self, _image: &str) -> Vec<String> {
        Vec::new()
    }
}

/// A `BaseEnv` that knows no images.
pub struct UnknownImages;

impl BaseEnv for UnknownImages {
    fn env(&self, _: &str) -> Option<Vec<(String, String)>> {
        None
    }
}

pub use crate::ops::Source;

/// One instruction after expansion, with the environment it runs in.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// The instruction with variables expanded where Docker expands them.
    pub instruction: Instruction,
    /// ARG and ENV values visible to the step (for RUN's environment).
    pub env: Vec<(String, String)>,
    /// Build args (ARG names) in scope, with values, for cache keys of RUN.
    pub args_in_scope: Vec<(String, String)>,
    /// `COPY --from` resolved.
    pub copy_from: Option<Source>,
    /// RUN mounts, expanded and parsed, with their `from` resolved.
    pub mounts: Vec<(Mount, Option<Source>)>,
    /// An ONBUILD trigger of the stage's base, run before the stage's own steps.
    pub trigger: bool,
    /// The op the solver runs.
    #[serde(skip)]
    pub op: std::sync::Arc<dyn crate::ops::Op>,
}

/// A stage ready for the solver.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStage {
    /// Index in the Dockerfile.
    pub index: usize,
    /// `AS` name.
    pub name: Option<String>,
    /// What it starts from.
    pub base: Source,
    /// `--platform`, expanded.
    pub platform: Option<String>,
    /// Where the FROM is.
    pub span: Span,
    /// The instructions.
    pub steps: Vec<Step>,
    /// Stages this one reads from (base, `--from`, mounts), without duplicates.
    pub deps: Vec<usize>,
}

/// The lowered build.
#[derive(Debug, Clone, Serialize)]
pub struct BuildPlan {
    /// Every stage.
    pub stages: Vec<PlannedStage>,
    /// The stage whose result is the image.
    pub target: usize,
    /// Stages the target needs, dependencies first (the target is last).
    pub order: Vec<usize>,
    /// Global ARG values (after `--build-arg`).
    pub global_args: Vec<(String, String)>,
    /// Build args that no needed stage declared.
    pub unused_build_args: Vec<String>,
}

struct VarEnv<'a>(&'a [(String, String)]);

impl Env for VarEnv<'_> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.0.lookup(name)
    }
}

fn set(env: &mut Vec<(String, String)>, k: &str, v: &str) {
    env.retain(|(key, _)| key != k);
    env.push((k.to_string(), v.to_string()));
}

fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_str())
}

/// Lower a parsed Dockerfile with the given options.
pub fn lower(
    df: &Dockerfile,
    opts: &BuildOptions,
    images: &dyn BaseEnv,
    linter: &mut Linter,
) -> Result<BuildPlan> {
    let lex = Lexer::new(df.escape);
    // Stage names and the target.
    let mut names: Vec<(String, usize)> = Vec::new();
    for st in &df.stages {
        if let Some(n) = &st.name {
            if names.iter().any(|(m, _)| m == n) {
                return Err(FrontendError::new(
                    st.span.start,
                    format!("duplicate stage name \"{n}\""),
                ));
            }
            names.push((n.clone(), st.index));
        }
    }
    let target = match &opts.target {
        None => df.stages.len() - 1,
        Some(t) => names
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(t))
            .map(|(_, i)| *i)
            .ok_or_else(|| {
                let all: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
                let mut msg = format!("target stage \"{t}\" could not be found");
                if let Some(c) = closest(t, &all) {
                    msg.push_str(&format!(" (did you mean {c}?)"));
                }
                FrontendError::new(Pos { line: 1, col: 1 }, msg)
            })?,
    };
    let target_name = df.stages[target]
        .name
        .clone()
        .unwrap_or_else(|| "default".into());

    // Global scope: predefined args, then meta ARGs with --build-arg overrides.
    let mut global = default_args(&opts.build_platform, &opts.target_platform, &target_name);
    for (k, v) in &opts.build_args {
        if global.iter().any(|(g, _)| g == k) {
            set(&mut global, k, v);
        }
    }
    let mut declared_global: Vec<String> = Vec::new();
    for instr in &df.global_args {
        let InstructionKind::Arg { args } = &instr.kind else {
            continue;
        };
        for a in args {
            declared_global.push(a.name.clone());
            let value = match opts.build_args.iter().rev().find(|(k, _)| *k == a.name) {
                Some((_, v)) => Some(v.clone()),
                None => match &a.default {
                    Some(d) => Some(
                        lex.expand(d, &VarEnv(&global))
                            .map_err(|e| FrontendError::new(a.pos, e.to_string()))?,
                    ),
                    None => None,
                },
            };
            if let Some(v) = value {
                set(&mut global, &a.name, &v);
            }
        }
    }

    let mut stages: Vec<PlannedStage> = Vec::new();
    let mut stage_env: Vec<Option<Vec<(String, String)>>> = Vec::new();
    let mut consumed: Vec<String> = Vec::new();
    // References to stages defined later: errors when their stage is built.
    let mut late_refs: Vec<(usize, Pos, String)> = Vec::new();
    for st in &df.stages {
        let exp = lex
            .expand_word(&st.base, &VarEnv(&global))
            .map_err(|e| FrontendError::new(st.span.start, e.to_string()))?;
        for name in &exp.unmatched {
            if !declared_global.contains(name) {
                linter.report(
                    "UndefinedArgInFrom",
                    st.span.start,
                    format!("FROM argument '{name}' is not declared"),
                );
            }
        }
        consumed.extend(exp.matched.iter().cloned());
        let base_name = exp.result;
        if base_name.is_empty() {
            return Err(FrontendError::new(
                st.span.start,
                format!("base name ({}) should not be blank", st.base),
            ));
        }
        let platform = match &st.platform {
            Some(p) => Some(
                lex.expand(p, &VarEnv(&global))
                    .map_err(|e| FrontendError::new(st.span.start, e.to_string()))?,
            ),
            None => None,
        };
        let lower_base = base_name.to_ascii_lowercase();
        let base = if lower_base == "scratch" {
            Source::Scratch
        } else if let Some((_, i)) = names
            .iter()
            .find(|(n, i)| *n == lower_base && *i < st.index)
        {
            Source::Stage(*i)
        } else {
            Source::Image(base_name.clone())
        };
        let mut env: Option<Vec<(String, String)>> = match &base {
            Source::Scratch => Some(Vec::new()),
            Source::Stage(i) => stage_env[*i].clone(),
            Source::Image(r) => images.env(r),
        };
        let env_known = env.is_some();
        let mut env_vec = env.take().unwrap_or_default();
        let mut declared: Vec<String> = Vec::new();
        let mut args_in_scope: Vec<(String, String)> = Vec::new();
        let mut steps = Vec::new();
        let mut deps: Vec<usize> = Vec::new();
        if let Source::Stage(i) = base {
            deps.push(i);
        }
        // Stages read by the base's ONBUILD triggers run in this build.
        let trigger_refs = match &base {
            Source::Image(r) => super::onbuild::trigger_refs(&images.onbuild(r)),
            Source::Stage(i) => super::onbuild::stage_trigger_refs(&df.stages[*i].instructions),
            Source::Scratch => Vec::new(),
        };
        for r in &trigger_refs {
            if let Some(i) = super::onbuild::stage_index(r, &names, df.stages.len()) {
                deps.push(i);
            }
        }
        let mut had_workdir = false;
        let mut cmd_set = false;
        let triggers = base_triggers(df, &base, images, st.span)?;
        let all = triggers
            .iter()
            .map(|t| (t, true))
            .chain(st.instructions.iter().map(|i| (i, false)));
        for (instr, trigger) in all {
            let mut out = instr.clone();
            let mut copy_from = None;
            let mut mounts = Vec::new();
            // ENV and ARG change the environment as they go.
            match &mut out.kind {
                InstructionKind::Env { pairs } => {
                    // Every pair sees the environment from before the
                    // instruction (`ENV a=bye b=$a` gives b the old a).
                    {
                        let mut ctx = ExpandCtx::new(
                            &lex,
                            &env_vec,
                            &declared,
                            env_known,
                            linter,
                            instr.span.start,
                        );
                        for p in pairs.iter_mut() {
                            p.key = ctx.word(&p.key)?;
                            p.value = ctx.word(&p.value)?;
                        }
                    }
                    for p in pairs.iter() {
                        set(&mut env_vec, &p.key, &p.value);
                    }
                }
                InstructionKind::Arg { args } => {
                    for a in args.iter_mut() {
                        let from_cli = opts.build_args.iter().rev().find(|(k, _)| *k == a.name);
                        let value = match (from_cli, &a.default) {
                            (Some((_, v)), _) => Some(v.clone()),
                            (None, Some(d)) => {
                                let mut ctx = ExpandCtx::new(
                                    &lex, &env_vec, &declared, env_known, linter, a.pos,
                                );
                                Some(ctx.word(d)?)
                            }
                            (None, None) => get(&global, &a.name).map(String::from),
                        };
                        if from_cli.is_some() {
                            consumed.push(a.name.clone());
                        }
                        declared.push(a.name.clone());
                        if let Some(v) = &value {
                            set(&mut env_vec, &a.name, v);
                            set(&mut args_in_scope, &a.name, v);
                        }
                        a.default = value;
                    }
                }
                _ => {}
            }
            let mut ctx = ExpandCtx::new(
                &lex,
                &env_vec,
                &declared,
                env_known,
                linter,
                instr.span.start,
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
                    super::add_sources::check_add(add)
                        .map_err(|e| FrontendError::new(instr.span.start, e))?;
                }
                InstructionKind::Copy(copy) => {
                    expand_paths(&mut ctx, &mut copy.paths)?;
                    expand_opt(&mut ctx, &mut copy.options.chown)?;
                    expand_opt(&mut ctx, &mut copy.options.chmod)?;
                    if let Some(from) = &copy.from {
                        let src = resolve_from(from, &names, df.stages.len(), instr.span.start)?;
                        if let Source::Stage(i) = src {
                            if i >= st.index {
                                late_refs.push((
                                    st.index,
                                    instr.span.start,
                                    format!(
                                        "cannot copy from stage \"{from}\", it needs to be defined before current stage \"{}\"",
                                        stage_label(st)
                                    ),
                                ));
                            }
                            deps.push(i);
                        }
                        copy_from = Some(src);
                    }
                }
                InstructionKind::Workdir { path } => {
                    *path = ctx.word(path)?;
                    if !path.starts_with('/') && !had_workdir {
                        ctx.linter.report(
                            "WorkdirRelativePath",
                            instr.span.start,
                            format!("Relative workdir '{path}' can have unexpected results if the base image changes"),
                        );
                    }
                    had_workdir = true;
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
                    *ports = all;
                }
                InstructionKind::Run(run) => {
                    run.mounts.clear();
                    for raw in &run.mounts_raw {
                        let fields = csv_fields(raw).map_err(|e| {
                            FrontendError::new(
                                instr.span.start,
                                format!("failed to parse csv mounts: {e}"),
                            )
                        })?;
                        let mut expanded = Vec::new();
                        for f in fields {
                            match f.split_once('=') {
                                Some((k, v)) => expanded.push(format!("{k}={}", ctx.word(v)?)),
                                None => expanded.push(f),
                            }
                        }
                        let m = parse_mount_fields(expanded)
                            .map_err(|e| FrontendError::new(instr.span.start, e))?;
                        let src = match &m.from {
                            Some(f) if m.kind != MountType::Cache || !f.is_empty() => {
                                let s = resolve_from(f, &names, df.stages.len(), instr.span.start)?;
                                if let Source::Stage(i) = s {
                                    if i >= st.index {
                                        late_refs.push((
                                            st.index,
                                            instr.span.start,
                                            format!(
                                                "cannot mount from stage \"{f}\" to \"{}\", stage needs to be defined before current command",
                                                m.target.as_deref().unwrap_or("")
                                            ),
                                        ));
                                    }
                                    deps.push(i);
                                }
                                Some(s)
                            }
                            _ => None,
                        };
                        run.mounts.push(m.clone());
                        mounts.push((m, src));
                    }
                }
                _ => {}
            }
            let op = super::to_ops::op_of(
                &out.kind,
                &super::to_ops::OpInputs {
                    env: &env_vec,
                    args_in_scope: &args_in_scope,
                    copy_from: copy_from.as_ref(),
                    mounts: &mounts,
                    cmd_set,
                },
            );
            if matches!(out.kind, InstructionKind::Cmd(_)) {
                cmd_set = true;
            }
            if trigger {
                out.original = format!("ONBUILD {}", out.original);
            }
            steps.push(Step {
                instruction: out,
                env: env_vec.clone(),
                args_in_scope: args_in_scope.clone(),
                copy_from,
                mounts,
                trigger,
                op,
            });
        }
        deps.sort_unstable();
        deps.dedup();
        stage_env.push(if env_known { Some(env_vec) } else { None });
        stages.push(PlannedStage {
            index: st.index,
            name: st.name.clone(),
            base,
            platform,
            span: st.span,
            steps,
            deps,
        });
    }

    let order = build_order(&stages, target, df)?;
    if let Some((_, pos, msg)) = late_refs.into_iter().find(|(i, _, _)| order.contains(i)) {
        return Err(FrontendError::new(pos, msg));
    }
    // Build args consumed by the stages that are built, or by the global scope.
    for i in &order {
        for s in &stages[*i].steps {
            if let InstructionKind::Arg { args } = &s.instruction.kind {
                consumed.extend(args.iter().map(|a| a.name.clone()));
            }
        }
    }
    let predefined = default_args(&opts.build_platform, &opts.target_platform, "");
    let unused_build_args = opts
        .build_args
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| {
            !consumed.contains(k)
                && !declared_global.contains(k)
                && !PROXY_ARGS.contains(&k.as_str())
                && !predefined.iter().any(|(p, _)| p == k)
                && !k.starts_with("BUILDKIT_")
                && k != "SOURCE_DATE_EPOCH"
        })
        .collect();
    Ok(BuildPlan {
        stages,
        target,
        order,
        global_args: global,
        unused_build_args,
    })
}

/// The ONBUILD triggers of a stage's base, as instructions of the stage
/// (placed at its FROM): an image's from its config, a stage's from its
/// ONBUILD instructions. They run first, in this build, as BuildKit does.
fn base_triggers(
    df: &Dockerfile,
    base: &Source,
    images: &dyn BaseEnv,
    at: Span,
) -> Result<Vec<Instruction>> {
    let mut out: Vec<Instruction> = match base {
        Source::Scratch => Vec::new(),
        Source::Stage(i) => df.stages[*i]
            .instructions
            .iter()
            .filter_map(|i| match &i.kind {
                InstructionKind::Onbuild { trigger, .. } => Some((**trigger).clone()),
                _ => None,
            })
            .collect(),
        Source::Image(r) => {
            let triggers = images.onbuild(r);
            if triggers.is_empty() {
                return Ok(Vec::new());
            }
            let text = format!("FROM scratch\n{}\n", triggers.join("\n"));
            let (parsed, _) = super::parse_dockerfile(&text).map_err(|e| {
                FrontendError::new(
                    at.start,
                    format!("invalid ONBUILD trigger in base image: {}", e.message),
                )
            })?;
            parsed
                .stages
                .into_iter()
                .next()
                .map(|s| s.instructions)
                .unwrap_or_default()
        }
    };
    for i in &mut out {
        i.span = at;
    }
    Ok(out)
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
