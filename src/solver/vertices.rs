//! Progress vertices: one per stage's FROM and one per step, numbered in
//! build order and named as BuildKit names them (`[stage 2/5] COPY a b`).

use crate::frontend::lower::{BuildPlan, Source};
use std::collections::HashMap;

/// A progress vertex.
pub struct Vertex {
    /// Its number.
    pub id: usize,
    /// What it shows.
    pub name: String,
}

/// The vertices of a plan by (stage, step + 1); step 0 is the FROM.
pub fn vertex_names(plan: &BuildPlan) -> HashMap<(usize, usize), Vertex> {
    let mut out = HashMap::new();
    let mut id = 1;
    for &si in &plan.order {
        let st = &plan.stages[si];
        let label = st.name.clone().unwrap_or_else(|| format!("stage-{si}"));
        let total = st.steps.len() + 1;
        let base = match &st.base {
            Source::Scratch => "scratch".to_string(),
            Source::Stage(i) => plan.stages[*i]
                .name
                .clone()
                .unwrap_or_else(|| i.to_string()),
            Source::Image(r) => r.clone(),
        };
        out.insert(
            (si, 0),
            Vertex {
                id,
                name: format!("[{label} 1/{total}] FROM {base}"),
            },
        );
        id += 1;
        for (k, step) in st.steps.iter().enumerate() {
            let text = step
                .instruction
                .original
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let short: String = text.chars().take(100).collect();
            out.insert(
                (si, k + 1),
                Vertex {
                    id,
                    name: format!("[{label} {}/{total}] {short}", k + 2),
                },
            );
            id += 1;
        }
    }
    out
}
