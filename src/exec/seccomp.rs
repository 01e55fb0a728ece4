//! Docker's default seccomp profile for RUN steps.
//!
//! The profile is our transcription of moby/profiles `seccomp/default.json`
//! (`seccomp_default.json` next to this file). As Docker does, each entry's
//! `includes`/`excludes` are evaluated against the native architecture, the
//! step's bounding capability set (Docker's default set, so everything gated
//! on CAP_SYS_ADMIN — mount, unshare, setns, clone with namespace flags — is
//! denied) and the running kernel; what remains is compiled to BPF with
//! `seccompiler` and installed right before exec.
//!
//! seccompiler gives one filter a single match action, so the profile becomes
//! one filter per action: the allow list (default EPERM) first, then one
//! filter per errno action (clone3 → ENOSYS). The kernel runs every filter
//! and, between equal actions, the most recently installed one decides, so
//! clone3 gets ENOSYS (glibc then falls back to clone) as under Docker.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The profile, as a JSON data file in Docker's format.
const PROFILE: &str = include_str!("seccomp_default.json");

/// Errors building or installing the filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The embedded profile does not parse.
    #[error("src/exec/seccomp_default.json: {0}")]
    Profile(#[from] serde_json::Error),
    /// An entry of the profile uses something we cannot express.
    #[error("src/exec/seccomp_default.json: {0}")]
    Unsupported(String),
    /// seccompiler refused the filter.
    #[error("compiling the seccomp filter: {0}")]
    Compile(seccompiler::Error),
    /// The kernel refused the filter.
    #[error("installing the seccomp filter: {0}")]
    Install(seccompiler::Error),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_errno_ret: u32,
    syscalls: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    names: Vec<String>,
    action: String,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<Arg>,
    includes: Option<Filter>,
    excludes: Option<Filter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u8,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    caps: Vec<String>,
    min_kernel: Option<String>,
}

/// What the profile is evaluated against.
pub struct Context<'a> {
    /// Docker's (Go) name of the native architecture: `amd64`, `arm64`.
    pub arch: &'a str,
    /// Whether the step's bounding set holds a capability (`CAP_…`).
    pub has_cap: &'a dyn Fn(&str) -> bool,
    /// The running kernel's (major, minor).
    pub kernel: (u32, u32),
}

fn parse_kernel(v: &str) -> (u32, u32) {
    let mut it = v.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Docker's rule: an entry applies when none of its `excludes` and all of
/// its `includes` hold.
fn applies(e: &Entry, cx: &Context) -> bool {
    let excluded = e.excludes.as_ref().is_some_and(|x| {
        x.arches.iter().any(|a| a == cx.arch)
            || x.caps.iter().any(|c| (cx.has_cap)(c))
            || x.min_kernel
                .as_deref()
                .is_some_and(|k| cx.kernel >= parse_kernel(k))
    });
    let included = e.includes.as_ref().is_none_or(|i| {
        (i.arches.is_empty() || i.arches.iter().any(|a| a == cx.arch))
            && i.caps.iter().all(|c| (cx.has_cap)(c))
            && i.min_kernel
                .as_deref()
                .is_none_or(|k| cx.kernel >= parse_kernel(k))
    });
    !excluded && included
}

/// One arg condition in seccompiler's JSON form (64-bit compare, as libseccomp).
fn condition(a: &Arg) -> Result<serde_json::Value, SeccompError> {
    let op = match a.op.as_str() {
        "SCMP_CMP_EQ" => serde_json::json!("eq"),
        "SCMP_CMP_NE" => serde_json::json!("ne"),
        "SCMP_CMP_LT" => serde_json::json!("lt"),
        "SCMP_CMP_LE" => serde_json::json!("le"),
        "SCMP_CMP_GT" => serde_json::json!("gt"),
        "SCMP_CMP_GE" => serde_json::json!("ge"),
        "SCMP_CMP_MASKED_EQ" => {
            return Ok(serde_json::json!({
                "index": a.index, "type": "qword",
                "op": {"masked_eq": a.value}, "val": a.value_two,
            }));
        }
        other => return Err(SeccompError::Unsupported(format!("operator {other}"))),
    };
    Ok(serde_json::json!({"index": a.index, "type": "qword", "op": op, "val": a.value}))
}

/// The rules of one action: syscall name → alternatives (each a list of
/// conditions that must all hold; `None` = unconditional).
type Rules = BTreeMap<String, Option<Vec<Vec<serde_json::Value>>>>;

fn add_rule(rules: &mut Rules, name: &str, conds: Vec<serde_json::Value>) {
    let slot = rules
        .entry(name.to_string())
        .or_insert_with(|| Some(Vec::new()));
    match (slot.as_mut(), conds.is_empty()) {
        (None, _) => {}
        (Some(_), true) => *slot = None,
        (Some(alts), false) => alts.push(conds),
    }
}

/// Names of the profile that seccompiler 0.5's syscall tables (Linux 6.12)
/// lack on an architecture: calls added later (the *xattrat family, 6.13;
/// Docker allows them, here they get the default EPERM) and, on aarch64, the
/// legacy calls its generic ABI never had. They are left out of the filter;
/// a unit test keeps these lists exact.
fn missing(arch: seccompiler::TargetArch) -> &'static [&'static str] {
    const NEWER: [&str; 4] = ["getxattrat", "listxattrat", "removexattrat", "setxattrat"];
    match arch {
        seccompiler::TargetArch::aarch64 => &[
            "access",
            "alarm",
            "arch_prctl",
            "chmod",
            "chown",
            "creat",
            "dup2",
            "epoll_create",
            "epoll_ctl_old",
            "epoll_wait",
            "epoll_wait_old",
            "eventfd",
            "fork",
            "futimesat",
            "get_thread_area",
            "getdents",
            "getpgrp",
            "getxattrat",
            "inotify_init",
            "ioperm",
            "iopl",
            "lchown",
            "link",
            "listxattrat",
            "lstat",
            "mkdir",
            "mknod",
            "modify_ldt",
            "open",
            "pause",
            "pipe",
            "poll",
            "readlink",
            "removexattrat",
            "rename",
            "rmdir",
            "select",
            "set_thread_area",
            "setxattrat",
            "signalfd",
            "stat",
            "symlink",
            "time",
            "unlink",
            "uretprobe",
            "utime",
            "utimes",
            "vfork",
        ],
        _ => &NEWER,
    }
}

fn filter_json(
    rules: &Rules,
    mismatch: serde_json::Value,
    matched: serde_json::Value,
    arch: seccompiler::TargetArch,
) -> serde_json::Value {
    let mut list = Vec::new();
    for (name, alts) in rules {
        if missing(arch).contains(&name.as_str()) {
            continue;
        }
        match alts {
            None => list.push(serde_json::json!({"syscall": name})),
            Some(alts) => {
                for c in alts {
                    list.push(serde_json::json!({"syscall": name, "args": c}));
                }
            }
        }
    }
    serde_json::json!({"f": {"mismatch_action": mismatch, "match_action": matched, "filter": list}})
}

/// Compile the profile for `cx` into BPF programs, in installation order.
pub fn compile(
    cx: &Context,
    arch: seccompiler::TargetArch,
) -> Result<Vec<seccompiler::BpfProgram>, SeccompError> {
    let profile: Profile = serde_json::from_str(PROFILE)?;
    let mut allow = Rules::new();
    let mut errno: BTreeMap<u32, Rules> = BTreeMap::new();
    for e in profile.syscalls.iter().filter(|e| applies(e, cx)) {
        let conds = e
            .args
            .iter()
            .map(condition)
            .collect::<Result<Vec<_>, _>>()?;
        let rules = match e.action.as_str() {
            "SCMP_ACT_ALLOW" => &mut allow,
            "SCMP_ACT_ERRNO" => errno
                .entry(e.errno_ret.unwrap_or(profile.default_errno_ret))
                .or_default(),
            other => return Err(SeccompError::Unsupported(format!("action {other}"))),
        };
        for n in &e.names {
            add_rule(rules, n, conds.clone());
        }
    }
    let mut filters = vec![filter_json(
        &allow,
        serde_json::json!({"errno": profile.default_errno_ret}),
        serde_json::json!("allow"),
        arch,
    )];
    for (n, rules) in &errno {
        filters.push(filter_json(
            rules,
            serde_json::json!("allow"),
            serde_json::json!({"errno": n}),
            arch,
        ));
    }
    filters
        .into_iter()
        .map(|f| {
            let mut map = seccompiler::compile_from_json(f.to_string().as_bytes(), arch)
                .map_err(SeccompError::Compile)?;
            Ok(map.remove("f").unwrap_or_default())
        })
        .collect()
}

/// The native architecture: seccompiler's and Docker's name for it.
pub fn native_arch() -> Option<(seccompiler::TargetArch, &'static str)> {
    match std::env::consts::ARCH {
        "x86_64" => Some((seccompiler::TargetArch::x86_64, "amd64")),
        "aarch64" => Some((seccompiler::TargetArch::aarch64, "arm64")),
        _ => None,
    }
}

/// The running kernel's (major, minor).
pub fn kernel_version() -> (u32, u32) {
    // SAFETY: uname into a zeroed struct.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return (0, 0);
    }
    // SAFETY: the kernel NUL-terminates release.
    let rel = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) };
    parse_kernel(&rel.to_string_lossy())
}

/// Install the programs (needs no_new_privs or CAP_SYS_ADMIN).
pub fn install(programs: &[seccompiler::BpfProgram]) -> Result<(), SeccompError> {
    for p in programs {
        seccompiler::apply_filter(p).map_err(SeccompError::Install)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker_default(arch: &str) -> Context<'_> {
        Context {
            arch,
            has_cap: &crate::exec::caps::in_bounding_set,
            kernel: (6, 1),
        }
    }

    #[test]
    fn the_profile_compiles_for_both_architectures() {
        for (a, go) in [
            (seccompiler::TargetArch::x86_64, "amd64"),
            (seccompiler::TargetArch::aarch64, "arm64"),
        ] {
            let progs = compile(&docker_default(go), a).expect("compiles");
            assert_eq!(progs.len(), 2, "allow list, then clone3 → ENOSYS");
            assert!(progs.iter().all(|p| !p.is_empty() && p.len() < 4096));
        }
    }

    /// Whether seccompiler knows `name` on `arch` (its tables are private).
    fn known(name: &str, arch: seccompiler::TargetArch) -> bool {
        let probe = serde_json::json!({"p": {
            "mismatch_action": "allow", "match_action": {"errno": 1},
            "filter": [{"syscall": name}],
        }});
        seccompiler::compile_from_json(probe.to_string().as_bytes(), arch).is_ok()
    }

    #[test]
    fn the_lists_of_missing_syscalls_are_exact() {
        let profile: Profile = serde_json::from_str(PROFILE).unwrap();
        for arch in [
            seccompiler::TargetArch::x86_64,
            seccompiler::TargetArch::aarch64,
        ] {
            for e in &profile.syscalls {
                for n in &e.names {
                    assert_eq!(
                        known(n, arch),
                        !missing(arch).contains(&n.as_str()),
                        "{n} on {arch:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn capability_and_arch_conditions_follow_docker() {
        let profile: Profile = serde_json::from_str(PROFILE).unwrap();
        let cx = docker_default("amd64");
        let allowed = |name: &str| {
            profile.syscalls.iter().any(|e| {
                e.action == "SCMP_ACT_ALLOW"
                    && e.args.is_empty()
                    && e.names.iter().any(|n| n == name)
                    && applies(e, &cx)
            })
        };
        assert!(allowed("read") && allowed("chroot") && allowed("arch_prctl"));
        assert!(!allowed("mount") && !allowed("unshare") && !allowed("setns"));
        assert!(allowed("ptrace"), "kernel 6.1 >= 4.8");
        assert!(!allowed("clone"), "only without namespace flags");
        assert!(!allowed("cacheflush"), "arm only");
    }
}
