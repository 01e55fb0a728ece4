//! Lowering: the AST plus build options to a plan of stages with every
//! variable expanded where Docker expands it, ARG/ENV scoping applied, stage
//! references resolved, and the stages the target needs in build order.

mod stage;

use super::ast::*;
use super::error::{FrontendError, Result};
use super::lint::Linter;
use super::platform::{PROXY_ARGS, Platform, default_args};
use super::position::{Pos, Span};
use super::shell::{Env, Lexer};
use super::stage_refs::build_order;
use super::suggest::closest;
use serde::Serialize;
use stage::Lowering;

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
    /// The context's `.dockerignore` (for the CopyIgnoredFile check).
    pub ignore: Option<std::sync::Arc<crate::context::ignore::IgnoreMatcher>>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            build_args: Vec::new(),
            target: None,
            target_platform: Platform::host(),
            build_platform: Platform::host(),
            ignore: None,
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

/// Variables in order (name, value).
type Vars = Vec<(String, String)>;

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
    let names = stage_names(df)?;
    let target = target_stage(df, opts, &names)?;
    let target_name = df.stages[target]
        .name
        .clone()
        .unwrap_or_else(|| "default".into());
    let (global, declared_global) = global_scope(df, opts, &lex, &target_name)?;
    invalid_default_bases(df, opts, &lex, &target_name, linter);
    let mut l = Lowering {
        df,
        opts,
        images,
        linter,
        lex,
        names,
        global,
        declared_global,
        stage_env: Vec::new(),
        consumed: Vec::new(),
        late_refs: Vec::new(),
    };
    let mut stages: Vec<PlannedStage> = Vec::new();
    for st in &df.stages {
        stages.push(l.stage(st)?);
    }
    let order = build_order(&stages, target, df)?;
    if let Some((_, pos, msg)) = l.late_refs.iter().find(|(i, _, _)| order.contains(i)) {
        return Err(FrontendError::new(*pos, msg.clone()));
    }
    // Build args consumed by the stages that are built, or by the global scope.
    for i in &order {
        for s in &stages[*i].steps {
            if let InstructionKind::Arg { args } = &s.instruction.kind {
                l.consumed.extend(args.iter().map(|a| a.name.clone()));
            }
        }
    }
    let unused_build_args = unused_build_args(opts, &l.consumed, &l.declared_global);
    Ok(BuildPlan {
        stages,
        target,
        order,
        global_args: l.global,
        unused_build_args,
    })
}

/// BuildKit's InvalidDefaultArgInFrom: a base whose name, with the meta
/// ARGs' defaults alone (no `--build-arg`), is empty or not a reference.
fn invalid_default_bases(
    df: &Dockerfile,
    opts: &BuildOptions,
    lex: &Lexer,
    target_name: &str,
    linter: &mut Linter,
) {
    let defaults = BuildOptions {
        build_args: Vec::new(),
        ..opts.clone()
    };
    let Ok((vars, _)) = global_scope(df, &defaults, lex, target_name) else {
        return;
    };
    for st in &df.stages {
        let Ok(exp) = lex.expand_word(&st.base, &VarEnv(&vars)) else {
            return;
        };
        if crate::registry::reference::validate(&exp.result).is_err() {
            linter.report(
                "InvalidDefaultArgInFrom",
                st.span.start,
                format!(
                    "Default value for ARG {} results in empty or invalid base image name",
                    st.base
                ),
            );
        }
    }
}

/// Stage names (lower case) and indexes. A name used twice names its last
/// stage, as in BuildKit (which warns: DuplicateStageName).
fn stage_names(df: &Dockerfile) -> Result<Vec<(String, usize)>> {
    let mut names: Vec<(String, usize)> = Vec::new();
    for st in &df.stages {
        if let Some(n) = &st.name {
            names.retain(|(m, _)| m != n);
            names.push((n.clone(), st.index));
        }
    }
    Ok(names)
}

/// The stage `--target` names (the last one by default).
fn target_stage(df: &Dockerfile, opts: &BuildOptions, names: &[(String, usize)]) -> Result<usize> {
    let Some(t) = &opts.target else {
        return Ok(df.stages.len() - 1);
    };
    names
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
        })
}

/// Global scope: predefined args, then meta ARGs with --build-arg
/// overrides; and the names the meta ARGs declare.
fn global_scope(
    df: &Dockerfile,
    opts: &BuildOptions,
    lex: &Lexer,
    target_name: &str,
) -> Result<(Vars, Vec<String>)> {
    let mut global = default_args(&opts.build_platform, &opts.target_platform, target_name);
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
    Ok((global, declared_global))
}

/// `--build-arg`s nothing consumed (Docker's warning).
fn unused_build_args(opts: &BuildOptions, consumed: &[String], declared: &[String]) -> Vec<String> {
    let predefined = default_args(&opts.build_platform, &opts.target_platform, "");
    opts.build_args
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| {
            !consumed.contains(k)
                && !declared.contains(k)
                && !PROXY_ARGS.contains(&k.as_str())
                && !predefined.iter().any(|(p, _)| p == k)
                && !k.starts_with("BUILDKIT_")
                && k != "SOURCE_DATE_EPOCH"
        })
        .collect()
}
