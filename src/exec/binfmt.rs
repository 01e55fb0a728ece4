//! A binfmt_misc handler private to one emulated step (Linux 6.7 and
//! later keep one binfmt_misc instance per user namespace). The step's
//! process, already inside its root, enters a new user namespace that maps
//! every id to itself, mounts its own binfmt_misc on
//! `/proc/sys/fs/binfmt_misc` and registers the emulator bound in its
//! `/dev` with the F flag. Every program the command starts (a shell's
//! children too) then runs under emulation, and the host's kernel
//! configuration is never touched.
//!
//! Runs in the sandbox child, single-threaded, between pivot_root and
//! dropping privileges. A failure (an older kernel) only leaves the step
//! with the emulator running its first program.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};

/// The registration line for the emulator inside the step, made from the
/// line Debian's `qemu-user-static` installs in
/// `/usr/lib/binfmt.d/qemu-ARCH.conf` (its magic and mask), with the
/// interpreter replaced and the F (fix binary) flag. None when the file is
/// missing or not a magic (`M`) rule.
pub fn registration(qemu_arch: &str, interpreter: &str) -> Option<String> {
    let conf = format!("/usr/lib/binfmt.d/qemu-{qemu_arch}.conf");
    let text = std::fs::read_to_string(conf).ok()?;
    let line = text.lines().find(|l| l.starts_with(':'))?;
    // :name:type:offset:magic:mask:interpreter:flags
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 8 || f[2] != "M" {
        return None;
    }
    Some(format!(
        ":{}:M:{}:{}:{}:{interpreter}:F",
        f[1], f[3], f[4], f[5]
    ))
}

/// Enter a user namespace of our own (not when rootless: the sandbox's
/// namespaces are already owned by one), mount a private binfmt_misc and
/// register `line`. Returns what went wrong, if anything.
pub fn register_private(line: &str, rootless: bool) -> Result<(), String> {
    if !rootless {
        enter_identity_user_namespace()?;
        // SAFETY: unshare in the single-threaded sandbox child.
        if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
            return Err(format!("mount namespace: {}", last()));
        }
    }
    let dir = std::path::Path::new("/proc/sys/fs/binfmt_misc");
    let (src, target, fstype) = (c"binfmt_misc", c"/proc/sys/fs/binfmt_misc", c"binfmt_misc");
    // SAFETY: valid NUL-terminated strings.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(format!("mounting binfmt_misc: {}", last()));
    }
    std::fs::write(dir.join("register"), line).map_err(|e| format!("registering: {e}"))?;
    // Read-only from here: the command cannot register handlers of its own
    // (unmounting would drop the one registered).
    let flags = libc::MS_REMOUNT
        | libc::MS_BIND
        | libc::MS_RDONLY
        | libc::MS_NOSUID
        | libc::MS_NODEV
        | libc::MS_NOEXEC;
    // SAFETY: valid NUL-terminated strings.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            target.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(format!("making binfmt_misc read-only: {}", last()));
    }
    Ok(())
}

fn last() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// unshare(CLONE_NEWUSER), then a child left in the parent namespace
/// (with its CAP_SETUID) writes the identity maps of every uid and gid.
fn enter_identity_user_namespace() -> Result<(), String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 into a valid array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", last()));
    }
    // SAFETY: fresh descriptors we own.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let me = std::process::id();
    // SAFETY: fork in a single-threaded process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", last()));
    }
    if pid == 0 {
        drop(w);
        let mut byte = [0u8; 1];
        let ok = std::fs::File::from(r).read_exact(&mut byte).is_ok()
            && ["uid_map", "gid_map"]
                .iter()
                .all(|f| std::fs::write(format!("/proc/{me}/{f}"), "0 0 4294967295\n").is_ok());
        // SAFETY: leave the forked child without running destructors.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    drop(r);
    // SAFETY: unshare in the single-threaded sandbox child.
    let unshared = unsafe { libc::unshare(libc::CLONE_NEWUSER) } == 0;
    let err = last();
    let _ = std::fs::File::from(w).write_all(if unshared { b"1" } else { b"" });
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if !unshared {
        return Err(format!("user namespace: {err}"));
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err("writing the user namespace's id maps".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn registration_takes_debians_magic_with_our_interpreter() {
        let Some(line) = super::registration("aarch64", "/dev/x") else {
            // tests/run_emulated.rs fails clearly without the package.
            assert!(
                std::env::var_os("CI").is_none(),
                "qemu-user-static is missing"
            );
            return;
        };
        assert!(line.starts_with(":qemu-aarch64:M::\\x7f"), "{line}");
        assert!(line.ends_with(":/dev/x:F"), "{line}");
    }
}
