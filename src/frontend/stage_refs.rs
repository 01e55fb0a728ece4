//! Stage references of a lowered build: `--from` values resolved to a
//! stage, an image or scratch; stage names in messages; the build order of
//! the stages a target needs (cycles are BuildKit's error).

use super::ast::Dockerfile;
use super::error::{FrontendError, Result};
use super::lower::{PlannedStage, Source};
use super::position::Pos;
use petgraph::graph::{DiGraph, NodeIndex};

/// A stage's name in messages: its name, or `stage-N` as BuildKit's.
pub(super) fn stage_label(st: &super::ast::Stage) -> String {
    st.name
        .clone()
        .unwrap_or_else(|| format!("stage-{}", st.index))
}

/// What `--from=FROM` names: a stage (by name or index), scratch, or an image.
pub(super) fn resolve_from(
    from: &str,
    names: &[(String, usize)],
    count: usize,
    pos: Pos,
) -> Result<Source> {
    if from.contains('$') {
        return Err(FrontendError::new(
            pos,
            "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
        ));
    }
    if let Ok(i) = from.parse::<usize>() {
        if i >= count {
            return Err(FrontendError::new(pos, format!("invalid stage index {i}")));
        }
        return Ok(Source::Stage(i));
    }
    let lower = from.to_ascii_lowercase();
    if let Some((_, i)) = names.iter().find(|(n, _)| *n == lower) {
        return Ok(Source::Stage(*i));
    }
    if lower == "scratch" {
        return Ok(Source::Scratch);
    }
    Ok(Source::Image(from.to_string()))
}

/// Stages needed for `target`, dependencies first; cycles are errors.
pub(super) fn build_order(
    stages: &[PlannedStage],
    target: usize,
    df: &Dockerfile,
) -> Result<Vec<usize>> {
    let mut g: DiGraph<usize, ()> = DiGraph::new();
    let nodes: Vec<NodeIndex> = stages.iter().map(|s| g.add_node(s.index)).collect();
    for s in stages {
        for d in &s.deps {
            g.add_edge(nodes[*d], nodes[s.index], ());
        }
    }
    if let Err(cycle) = petgraph::algo::toposort(&g, None) {
        let i = g[cycle.node_id()];
        let st = &df.stages[i];
        return Err(FrontendError::new(
            st.span.start,
            format!(
                "circular dependency detected on stage: {}",
                st.name.clone().unwrap_or_else(|| i.to_string())
            ),
        ));
    }
    // Reverse reachability from the target, then keep topological order.
    let mut needed = vec![false; stages.len()];
    let mut stack = vec![target];
    while let Some(i) = stack.pop() {
        if needed[i] {
            continue;
        }
        needed[i] = true;
        stack.extend(stages[i].deps.iter().copied());
    }
    let topo = petgraph::algo::toposort(&g, None).unwrap_or_default();
    Ok(topo
        .into_iter()
        .map(|n| g[n])
        .filter(|i| needed[*i])
        .collect())
}
