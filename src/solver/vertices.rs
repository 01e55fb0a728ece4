//! Progress vertices: one per stage's FROM and one per step, numbered in
//! build order and named as BuildKit names them (`[stage 2/5] COPY a b`).

use crate::frontend::ast::InstructionKind;
use crate::frontend::lower::{BuildPlan, Source, Step};
use std::collections::HashMap;

/// A progress vertex.
pub struct Vertex {
    /// Its number.
    pub id: usize,
    /// What it shows.
    pub name: String,
    /// Not shown: BuildKit has no vertex for a stage's FROM when the base
    /// is scratch or another stage (its id follows every shown vertex's).
    pub hidden: bool,
}

/// BuildKit's step counter: `[label i/total]`, the index padded to the
/// width of the total.
fn prefix(label: &str, index: usize, total: usize) -> String {
    let width = total.to_string().len();
    format!("[{label} {index:>width$}/{total}]")
}

/// The vertices of a plan by (stage, step + 1); step 0 is the FROM.
/// With `show_all` (rbuild's `--explain`), none is hidden.
pub fn vertex_names(plan: &BuildPlan, show_all: bool) -> HashMap<(usize, usize), Vertex> {
    let mut all = Vec::new();
    for &si in &plan.order {
        let st = &plan.stages[si];
        let label = st.name.clone().unwrap_or_else(|| format!("stage-{si}"));
        // As BuildKit: an image base, ADD, COPY, RUN and WORKDIR are the
        // stage's counted steps, and so is every ONBUILD trigger.
        let from_step = matches!(st.base, Source::Image(_));
        let total = usize::from(from_step) + st.steps.iter().filter(|s| counted(s)).count();
        let base = match &st.base {
            Source::Scratch => "scratch".to_string(),
            Source::Stage(i) => plan.stages[*i]
                .name
                .clone()
                .unwrap_or_else(|| i.to_string()),
            Source::Image(r) => r.clone(),
        };
        let mut index = 0;
        if from_step {
            index += 1;
            let name = format!("{} FROM {base}", prefix(&label, index, total));
            all.push(((si, 0), name, false));
        } else {
            all.push(((si, 0), format!("[{label}] FROM {base}"), true));
        }
        for (k, step) in st.steps.iter().enumerate() {
            let text = step
                .instruction
                .original
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let short: String = text.chars().take(100).collect();
            if !shown(step) {
                all.push(((si, k + 1), format!("[{label}] {short}"), true));
                continue;
            }
            index += 1;
            let name = format!("{} {short}", prefix(&label, index, total));
            all.push(((si, k + 1), name, false));
        }
    }
    let hidden_last = |e: &((usize, usize), String, bool)| e.2 && !show_all;
    let (shown, hidden): (Vec<_>, Vec<_>) = all.into_iter().partition(|e| !hidden_last(e));
    shown
        .into_iter()
        .chain(hidden)
        .enumerate()
        .map(|(i, (at, name, hidden))| {
            let vertex = Vertex {
                id: i + 1,
                name,
                hidden: hidden && !show_all,
            };
            (at, vertex)
        })
        .collect()
}

/// Whether BuildKit counts the step in a stage's total.
fn counted(step: &Step) -> bool {
    step.trigger
        || matches!(
            step.instruction.kind,
            InstructionKind::Add(_)
                | InstructionKind::Copy(_)
                | InstructionKind::Run(_)
                | InstructionKind::Workdir { .. }
        )
}

/// Whether BuildKit shows the step as a vertex: ADD, COPY, RUN, and a
/// WORKDIR other than `/` (which creates nothing); config-only
/// instructions change the image config without one.
fn shown(step: &Step) -> bool {
    match &step.instruction.kind {
        InstructionKind::Add(_) | InstructionKind::Copy(_) | InstructionKind::Run(_) => true,
        InstructionKind::Workdir { path } => !path.trim_matches('/').is_empty(),
        _ => false,
    }
}
