//! Target platforms rbuild can build: only the build machine's, until
//! multi-platform builds exist. Anything else is a clear error naming it.

use rbuild::frontend::lower::BuildPlan;
use rbuild::frontend::platform::Platform;
use rbuild::frontend::position::Pos;

fn runnable(p: &Platform, host: &Platform) -> bool {
    p.os == host.os && p.arch == host.arch
}

/// The platform of `--platform VALUE` (one platform, this machine's).
pub fn cli_platform(value: &str, host: &Platform) -> Result<Platform, String> {
    let list: Vec<&str> = value.split(',').map(str::trim).collect();
    if list.len() > 1 {
        return Err(format!(
            "--platform {value}: multi-platform builds are not supported yet; \
             rbuild builds for this machine's platform ({host}) only"
        ));
    }
    let p = Platform::parse(value).map_err(|e| format!("--platform {value}: {e}"))?;
    if !runnable(&p, host) {
        return Err(format!(
            "--platform {value}: building for {p} is not supported yet; \
             rbuild builds for this machine's platform ({host}) only"
        ));
    }
    Ok(p)
}

/// The first stage to build whose `FROM --platform` names another platform.
pub fn check_stages(plan: &BuildPlan, host: &Platform) -> Result<(), (Pos, String)> {
    for &i in &plan.order {
        let st = &plan.stages[i];
        let Some(value) = &st.platform else { continue };
        let p = Platform::parse(value).map_err(|e| {
            (
                st.span.start,
                format!("failed to parse platform {value}: {e}"),
            )
        })?;
        if !runnable(&p, host) {
            return Err((
                st.span.start,
                format!(
                    "FROM --platform={value}: building for {p} is not supported yet; \
                     rbuild builds for this machine's platform ({host}) only"
                ),
            ));
        }
    }
    Ok(())
}
