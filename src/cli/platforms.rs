//! `--platform` values: comma lists, repeatable, each platform normalised
//! (containerd's rules) and duplicates dropped; and the `FROM --platform`
//! values of the stages to build, checked before the build starts.

use anyhow::Result;
use rbuild::frontend::lower::BuildPlan;
use rbuild::frontend::platform::{Platform, parse_list};
use rbuild::frontend::position::Pos;

/// The target platforms of every `--platform` flag, in order (none: this
/// machine's, chosen by the caller).
pub fn cli_platforms(values: &[String]) -> Result<Vec<Platform>> {
    let mut out: Vec<Platform> = Vec::new();
    for v in values {
        let list = parse_list(v).map_err(|e| anyhow::anyhow!("--platform {v}: {e}"))?;
        for p in list {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    // Any OS may be a target, as in BuildKit: only a RUN step needs a
    // Linux one (it fails clearly on another).
    Ok(out)
}

/// The first stage to build whose `FROM --platform` is not a platform.
pub fn check_stages(plan: &BuildPlan) -> Result<(), (Pos, String)> {
    for &i in &plan.order {
        let st = &plan.stages[i];
        let Some(value) = &st.platform else { continue };
        if let Err(e) = Platform::parse(value) {
            return Err((
                st.span.start,
                format!("failed to parse platform {value}: {e}"),
            ));
        }
    }
    Ok(())
}
