//! RUN for another architecture: QEMU user emulation, as BuildKit's
//! executor does it when the kernel has no binfmt_misc handler. The host's
//! static emulator (Debian's `qemu-user-static`) is bound read-only into
//! the step's `/dev` and runs the command; the sandbox around it is the
//! same as for a native step (the emulator is a native process, so the
//! native seccomp filter applies to every system call it makes).
//!
//! With a registered binfmt_misc handler the kernel runs foreign binaries
//! itself (every process, children too) and nothing is bound. rbuild never
//! registers one: that would change the host kernel's configuration.

use super::spec::Emulator;
use std::path::{Path, PathBuf};

/// Where the emulator appears inside the step.
pub const EMULATOR_PATH: &str = "/dev/.rbuild-qemu-emulator";

/// The Debian package that provides the emulators.
pub const PACKAGE: &str = "qemu-user-static";

/// Why a foreign RUN cannot run.
#[derive(Debug, thiserror::Error)]
pub enum EmulateError {
    /// No emulator for the architecture on this machine.
    #[error(
        "RUN for {platform} needs QEMU user emulation, and no emulator for it was found \
         (looked for {binary} in {dirs}): install the Debian package {PACKAGE} \
         (apt-get install {PACKAGE}), or register a binfmt_misc handler for {qemu_arch}"
    )]
    Missing {
        /// The step's platform, `linux/arm64`.
        platform: String,
        /// `qemu-aarch64-static`.
        binary: String,
        /// The directories searched.
        dirs: String,
        /// `aarch64`.
        qemu_arch: String,
    },
    /// An architecture QEMU has no user-mode emulator for.
    #[error("RUN for {0}: no QEMU user emulation exists for this architecture")]
    Unsupported(String),
}

/// QEMU's name of an OCI architecture (and variant).
pub fn qemu_arch(arch: &str) -> Option<&'static str> {
    Some(match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "arm" => "arm",
        "386" => "i386",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64le" => "mips64el",
        "loong64" => "loongarch64",
        _ => return None,
    })
}

/// Whether a step registers the emulator in a binfmt_misc of its own, so
/// that its child processes run emulated too (Linux 6.7 and later);
/// `RBUILD_QEMU_BINFMT=0` turns it off, leaving what older kernels get:
/// the step's first program runs under the emulator, as BuildKit's
/// executor runs it without a host handler.
fn private_binfmt() -> bool {
    std::env::var_os("RBUILD_QEMU_BINFMT").is_none_or(|v| v != "0")
}

/// Whether this machine runs `arch` binaries itself.
fn native(arch: &str) -> bool {
    let host = crate::frontend::platform::Platform::host().arch;
    arch == host || (host == "amd64" && arch == "386") || (host == "arm64" && arch == "arm")
}

/// Whether the kernel has an enabled binfmt_misc handler for `qemu_arch`.
fn binfmt_registered(qemu_arch: &str) -> bool {
    let p = Path::new("/proc/sys/fs/binfmt_misc").join(format!("qemu-{qemu_arch}"));
    std::fs::read_to_string(p).is_ok_and(|s| s.lines().next() == Some("enabled"))
}

/// Directories searched for `qemu-ARCH-static`: `$RBUILD_QEMU_DIR` when
/// set (only there), else `/usr/bin` and `/usr/local/bin`.
fn search_dirs() -> Vec<PathBuf> {
    match std::env::var_os("RBUILD_QEMU_DIR") {
        Some(d) => vec![PathBuf::from(d)],
        None => vec!["/usr/bin".into(), "/usr/local/bin".into()],
    }
}

/// The emulator a RUN on `os/arch[/variant]` needs: none when this
/// machine runs it natively or the kernel has a handler; else the host
/// path of the static emulator to bind into the step.
pub fn emulator_for(os: &str, arch: &str, variant: &str) -> Result<Option<Emulator>, EmulateError> {
    if arch.is_empty() || native(arch) {
        return Ok(None);
    }
    let platform = [os, arch, variant]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    let Some(q) = qemu_arch(arch) else {
        return Err(EmulateError::Unsupported(platform));
    };
    if binfmt_registered(q) {
        return Ok(None);
    }
    let binary = format!("qemu-{q}-static");
    let dirs = search_dirs();
    for d in &dirs {
        let p = d.join(&binary);
        if p.is_file() {
            let binfmt = match private_binfmt() {
                true => super::binfmt::registration(q, EMULATOR_PATH),
                false => None,
            };
            return Ok(Some(Emulator { path: p, binfmt }));
        }
    }
    Err(EmulateError::Missing {
        platform,
        binary,
        dirs: dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        qemu_arch: q.to_string(),
    })
}

/// Inside the step (after pivot_root): the command line that runs `argv`
/// through the emulator bound at [`EMULATOR_PATH`]. A program name without
/// a slash is looked up in the step's `PATH`, as execvp would.
pub fn emulated_argv(argv: &[String], env: &[String]) -> Vec<String> {
    let program = resolve_program(&argv[0], env);
    let mut out = vec![
        EMULATOR_PATH.to_string(),
        "-0".to_string(),
        argv[0].clone(),
        program,
    ];
    out.extend(argv[1..].iter().cloned());
    out
}

fn resolve_program(name: &str, env: &[String]) -> String {
    if name.contains('/') {
        return name.to_string();
    }
    let path = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| format!("{}/{name}", d.trim_end_matches('/')))
        .find(|p| Path::new(p).is_file())
        .unwrap_or_else(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_platforms_need_no_emulator() {
        let host = crate::frontend::platform::Platform::host().arch;
        assert_eq!(emulator_for("linux", &host, "").unwrap(), None);
        assert_eq!(emulator_for("linux", "", "").unwrap(), None);
    }

    #[test]
    fn unknown_architectures_are_named() {
        let e = emulator_for("linux", "vax", "").unwrap_err().to_string();
        assert!(e.contains("linux/vax"), "{e}");
    }

    #[test]
    fn argv_goes_through_the_emulator_keeping_argv0() {
        let argv = vec!["/bin/sh".to_string(), "-c".into(), "true".into()];
        assert_eq!(
            emulated_argv(&argv, &[]),
            [EMULATOR_PATH, "-0", "/bin/sh", "/bin/sh", "-c", "true"]
        );
    }
}
