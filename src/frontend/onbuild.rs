//! ONBUILD triggers and the stages they read: a trigger such as
//! `COPY --from=build ...` runs in the child build and names the child's
//! stages, as in BuildKit, so those stages are dependencies of the stage
//! whose base carries the trigger.

use super::ast::{Dockerfile, Instruction, InstructionKind};
use super::error::{FrontendError, Result};
use super::lower::{BaseEnv, Source};
use super::position::Span;

/// The `--from` / mount `from=` names a trigger instruction reads.
fn refs_of(instr: &Instruction, out: &mut Vec<String>) {
    match &instr.kind {
        InstructionKind::Copy(c) => out.extend(c.from.clone()),
        InstructionKind::Run(r) => out.extend(r.mounts.iter().filter_map(|m| m.from.clone())),
        _ => {}
    }
}

/// The stage names (or indexes) read by trigger texts as an image config
/// stores them (`COPY --from=build /a /b`). Unparsable triggers read nothing
/// here; running them reports the error.
pub fn trigger_refs(triggers: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    if triggers.is_empty() {
        return out;
    }
    let text = format!("FROM scratch\n{}\n", triggers.join("\n"));
    if let Ok((df, _)) = super::parse_dockerfile(&text) {
        for st in &df.stages {
            for i in &st.instructions {
                refs_of(i, &mut out);
            }
        }
    }
    out
}

/// The names read by the ONBUILD instructions of a stage.
pub fn stage_trigger_refs(instructions: &[Instruction]) -> Vec<String> {
    let mut out = Vec::new();
    for i in instructions {
        if let InstructionKind::Onbuild { trigger, .. } = &i.kind {
            refs_of(trigger, &mut out);
        }
    }
    out
}

/// The names read by trigger instructions themselves.
pub fn stage_trigger_refs_of(triggers: &[Instruction]) -> Vec<String> {
    let mut out = Vec::new();
    for i in triggers {
        refs_of(i, &mut out);
    }
    out
}

/// The ONBUILD triggers of a stage's base, as instructions of the stage
/// (placed at its FROM): an image's from its config, a stage's from its
/// ONBUILD instructions. They run first, in this build, as BuildKit does,
/// so the solver never parses.
pub fn base_triggers(
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

/// The index of the stage `name` refers to (a name, case-insensitive, or an
/// index), among `names` (`(lower-case name, index)`) and `count` stages.
pub fn stage_index(name: &str, names: &[(String, usize)], count: usize) -> Option<usize> {
    if let Ok(i) = name.parse::<usize>() {
        return (i < count).then_some(i);
    }
    let lower = name.to_ascii_lowercase();
    names.iter().find(|(n, _)| *n == lower).map(|(_, i)| *i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_copy_from_and_mount_from_in_triggers() {
        let refs = trigger_refs(&[
            "COPY --from=build /out /app".into(),
            "RUN --mount=from=deps,target=/d true".into(),
            "RUN echo".into(),
        ]);
        assert_eq!(refs, ["build", "deps"]);
        let names = vec![("build".to_string(), 0)];
        assert_eq!(stage_index("Build", &names, 2), Some(0));
        assert_eq!(stage_index("1", &names, 2), Some(1));
        assert_eq!(stage_index("alpine", &names, 2), None);
    }
}
