//! A Dockerfile's text to the typed AST, with the syntactic build checks.

use super::ast::{Dockerfile, Instruction, InstructionKind, Stage};
use super::error::{FrontendError, Result};
use super::instructions::{Parsed, parse_instruction};
use super::lines::scan;
use super::lint::{CheckConfig, Linter, looks_like_secret};
use super::position::Pos;

/// Parse a Dockerfile. Returns the AST and a linter holding the syntactic findings.
pub fn parse_dockerfile(source: &str) -> Result<(Dockerfile, Linter)> {
    parse_dockerfile_with_checks(source, None)
}

/// Parse a Dockerfile; `checks` (the `BUILDKIT_DOCKERFILE_CHECK` build arg)
/// replaces the `# check=` directive, as in BuildKit.
pub fn parse_dockerfile_with_checks(
    source: &str,
    checks: Option<&str>,
) -> Result<(Dockerfile, Linter)> {
    let (parsed, linter) = parse_dockerfile_linted(source, checks);
    parsed.map(|df| (df, linter))
}

/// Parse a Dockerfile, keeping the checks' findings up to a parse error
/// too (BuildKit shows the warnings of the instructions before the one
/// that fails).
pub fn parse_dockerfile_linted(source: &str, checks: Option<&str>) -> (Result<Dockerfile>, Linter) {
    let mut linter = Linter::default();
    let parsed = parse_into(source, checks, &mut linter);
    (parsed, linter)
}

fn parse_into(source: &str, checks: Option<&str>, linter: &mut Linter) -> Result<Dockerfile> {
    let lines = scan(source)?;
    if let Some(v) = checks {
        linter.config = CheckConfig::parse(v).map_err(|e| {
            FrontendError::new(
                Pos { line: 1, col: 1 },
                format!("failed to parse build-arg:BUILDKIT_DOCKERFILE_CHECK: {e}"),
            )
        })?;
    } else if let Some(d) = lines.directives.iter().find(|d| d.name == "check") {
        linter.config = CheckConfig::parse(&d.value).map_err(|e| {
            FrontendError::new(
                Pos {
                    line: d.line,
                    col: 1,
                },
                e,
            )
        })?;
    }
    for node in &lines.nodes {
        if let Some(cfg) = CheckConfig::from_comments(&node.comments) {
            linter.local.push((node.span.start.line, cfg));
        }
    }
    for w in &lines.warnings {
        linter.report(
            "NoEmptyContinuation",
            Pos {
                line: w.line,
                col: 1,
            },
            "Empty continuation line",
        );
    }
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let (mut upper, mut lower) = (0usize, 0usize);
    for node in &lines.nodes {
        if node.keyword == node.keyword.to_ascii_uppercase() {
            upper += 1;
        } else if node.keyword == node.keyword.to_ascii_lowercase() {
            lower += 1;
        }
    }
    for node in &lines.nodes {
        let mixed_case = (upper >= lower && node.keyword != node.keyword.to_ascii_uppercase())
            || (upper < lower && node.keyword != node.keyword.to_ascii_lowercase());
        if mixed_case {
            let majority = if upper >= lower {
                "uppercase"
            } else {
                "lowercase"
            };
            linter.report(
                "ConsistentInstructionCasing",
                node.span.start,
                format!(
                    "Command '{}' should match the case of the command majority ({majority})",
                    node.keyword
                ),
            );
        }
        match parse_instruction(node)? {
            Parsed::From(mut stage) => {
                stage.index = stages.len();
                check_from(&stage, linter);
                stages.push(stage);
            }
            Parsed::Instruction(instr) => {
                check_instruction(&instr, linter);
                match stages.last_mut() {
                    Some(stage) => stage.instructions.push(instr),
                    None if matches!(instr.kind, InstructionKind::Arg { .. }) => {
                        global_args.push(instr)
                    }
                    None => {
                        return Err(FrontendError::new(
                            instr.span.start,
                            format!(
                                "{} instruction before the first FROM: no build stage in current context",
                                instr.kind.name()
                            ),
                        ));
                    }
                }
            }
        }
    }
    if stages.is_empty() {
        return Err(FrontendError::new(
            Pos { line: 1, col: 1 },
            "dockerfile contains no stages to build",
        ));
    }
    let mut seen: Vec<&str> = Vec::new();
    for stage in &stages {
        check_stage(stage, linter);
        if let Some(name) = stage.name.as_deref() {
            if seen.contains(&name) {
                // BuildKit: a warning, and the last stage of the name is used.
                linter.report(
                    "DuplicateStageName",
                    stage.span.start,
                    format!("Duplicate stage name \"{name}\", stage names should be unique"),
                );
            }
            seen.push(name);
        }
    }
    Ok(Dockerfile {
        directives: lines.directives,
        escape: lines.escape,
        global_args,
        stages,
    })
}

fn check_from(stage: &Stage, linter: &mut Linter) {
    if let (Some(name), Some(written)) = (&stage.name, &stage.name_as_written) {
        if written != name {
            linter.report(
                "StageNameCasing",
                stage.span.start,
                format!("Stage name '{written}' should be lowercase"),
            );
        }
        if name == "scratch" || name == "context" {
            linter.report(
                "ReservedStageName",
                stage.span.start,
                format!("'{name}' is reserved and should not be used as a stage name"),
            );
        }
    }
    if let Some(as_kw) = &stage.as_keyword {
        let kw = &stage.keyword;
        let kw_lower = kw == &kw.to_ascii_lowercase();
        let kw_upper = kw == &kw.to_ascii_uppercase();
        let mismatch = (kw_lower && as_kw != &as_kw.to_ascii_lowercase())
            || (kw_upper && as_kw != &as_kw.to_ascii_uppercase());
        if mismatch {
            linter.report(
                "FromAsCasing",
                stage.span.start,
                format!("'{as_kw}' and '{kw}' keywords' casing do not match"),
            );
        }
    }
}

fn check_instruction(instr: &Instruction, linter: &mut Linter) {
    match &instr.kind {
        InstructionKind::Maintainer { .. } => linter.report(
            "MaintainerDeprecated",
            instr.span.start,
            "Maintainer instruction is deprecated in favor of using label",
        ),
        InstructionKind::Cmd(c) | InstructionKind::Entrypoint(c) if !c.exec_form && !c.args.is_empty() => {
            linter.report(
                "JSONArgsRecommended",
                instr.span.start,
                format!(
                    "JSON arguments recommended for {} to prevent unintended behavior related to OS signals",
                    instr.kind.name()
                ),
            )
        }
        InstructionKind::Env { pairs } => {
            for p in pairs {
                if p.legacy {
                    linter.report(
                        "LegacyKeyValueFormat",
                        instr.span.start,
                        "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format",
                    );
                }
                if looks_like_secret(&p.key) {
                    linter.report(
                        "SecretsUsedInArgOrEnv",
                        p.pos,
                        format!("Do not use ARG or ENV instructions for sensitive data (ENV \"{}\")", p.key),
                    );
                }
            }
        }
        InstructionKind::Label { pairs } if pairs.iter().any(|p| p.legacy) => linter.report(
            "LegacyKeyValueFormat",
            instr.span.start,
            "\"LABEL key=value\" should be used instead of legacy \"LABEL key value\" format",
        ),
        InstructionKind::Arg { args } => {
            for a in args.iter().filter(|a| looks_like_secret(&a.name)) {
                linter.report(
                    "SecretsUsedInArgOrEnv",
                    a.pos,
                    format!("Do not use ARG or ENV instructions for sensitive data (ARG \"{}\")", a.name),
                );
            }
        }
        InstructionKind::Onbuild { trigger, .. } => check_instruction(trigger, linter),
        _ => {}
    }
}

fn check_stage(stage: &Stage, linter: &mut Linter) {
    for name in ["CMD", "ENTRYPOINT", "HEALTHCHECK"] {
        let all: Vec<&Instruction> = stage
            .instructions
            .iter()
            .filter(|i| i.kind.name() == name)
            .collect();
        if all.len() > 1 {
            for i in &all[..all.len() - 1] {
                linter.report(
                    "MultipleInstructionsDisallowed",
                    i.span.start,
                    format!(
                        "Multiple {name} instructions should not be used in the same stage because only the last one will be used"
                    ),
                );
            }
        }
    }
}
