//! The system calls behind the sandbox's decisions, as a small trait
//! (youki's `Syscall` is the model): [`Linux`] makes them, and tests use a
//! recorder, so which namespaces a step gets, how a rootless user is
//! mapped and in which order credentials drop are tested without root.

use std::io;
use std::path::Path;

/// What the sandbox asks of the kernel.
pub trait Syscall {
    /// `unshare(2)` with `CLONE_*` flags.
    fn unshare(&self, flags: libc::c_int) -> io::Result<()>;
    /// Write a whole file (`/proc/self/uid_map` and friends).
    fn write_file(&self, path: &Path, content: &str) -> io::Result<()>;
    /// `sethostname(2)`.
    fn sethostname(&self, name: &str) -> io::Result<()>;
    /// `PR_SET_NO_NEW_PRIVS`.
    fn set_no_new_privs(&self) -> io::Result<()>;
    /// `PR_SET_PDEATHSIG` with SIGKILL.
    fn kill_with_parent(&self) -> io::Result<()>;
    /// `setgroups(2)`.
    fn setgroups(&self, groups: &[u32]) -> io::Result<()>;
    /// `setgid(2)`.
    fn setgid(&self, gid: u32) -> io::Result<()>;
    /// `setuid(2)`.
    fn setuid(&self, uid: u32) -> io::Result<()>;
    /// Bound the capabilities to Docker's default set.
    fn drop_capabilities(&self) -> io::Result<()>;
}

/// The real calls.
pub struct Linux;

fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Syscall for Linux {
    fn unshare(&self, flags: libc::c_int) -> io::Result<()> {
        // SAFETY: unshare in the single-threaded sandbox helper.
        check(unsafe { libc::unshare(flags) })
    }

    fn write_file(&self, path: &Path, content: &str) -> io::Result<()> {
        std::fs::write(path, content)
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        Ok(rustix::system::sethostname(name.as_bytes())?)
    }

    fn set_no_new_privs(&self) -> io::Result<()> {
        Ok(rustix::thread::set_no_new_privs(true)?)
    }

    fn kill_with_parent(&self) -> io::Result<()> {
        Ok(rustix::process::set_parent_process_death_signal(Some(
            rustix::process::Signal::KILL,
        ))?)
    }

    fn setgroups(&self, groups: &[u32]) -> io::Result<()> {
        // SAFETY: a valid array of gids, as root before exec.
        check(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })
    }

    fn setgid(&self, gid: u32) -> io::Result<()> {
        // SAFETY: plain setgid (the raw call: only this thread exists).
        check(unsafe { libc::setgid(gid) })
    }

    fn setuid(&self, uid: u32) -> io::Result<()> {
        // SAFETY: plain setuid (the raw call: only this thread exists).
        check(unsafe { libc::setuid(uid) })
    }

    fn drop_capabilities(&self) -> io::Result<()> {
        super::caps::drop_capabilities()
    }
}

/// The namespaces of a step: mount, pid, ipc, uts; network unless it uses
/// the host's; user when rbuild is not root.
pub fn namespace_flags(host_network: bool, rootless: bool) -> libc::c_int {
    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if !host_network {
        flags |= libc::CLONE_NEWNET;
    }
    if rootless {
        flags |= libc::CLONE_NEWUSER;
    }
    flags
}

/// Create the step's namespaces; rootless (`euid` not 0), a fresh user
/// namespace where our own user is root, and only it. Returns whether the
/// build is rootless.
pub fn enter_namespaces(
    sys: &dyn Syscall,
    host_network: bool,
    euid: u32,
    egid: u32,
) -> Result<bool, String> {
    let rootless = euid != 0;
    sys.unshare(namespace_flags(host_network, rootless))
        .map_err(|e| format!("creating namespaces: {e}"))?;
    if rootless {
        for (f, v) in [
            ("/proc/self/setgroups", "deny".to_string()),
            ("/proc/self/uid_map", format!("0 {euid} 1\n")),
            ("/proc/self/gid_map", format!("0 {egid} 1\n")),
        ] {
            sys.write_file(Path::new(f), &v)
                .map_err(|e| format!("writing {f}: {e}"))?;
        }
    }
    Ok(rootless)
}

/// Groups, group, Docker's capabilities, then the user (a non-root user
/// loses every capability at setuid: no keep-caps).
pub fn become_user(
    sys: &dyn Syscall,
    uid: u32,
    gid: u32,
    groups: &[u32],
    rootless: bool,
) -> Result<(), String> {
    if rootless && (uid != 0 || gid != 0) {
        return Err(format!(
            "USER {uid}:{gid} needs rbuild to run as root (a rootless build maps only root)"
        ));
    }
    if !rootless {
        sys.setgroups(groups)
            .map_err(|e| format!("setgroups: {e}"))?;
    }
    sys.setgid(gid).map_err(|e| format!("setgid: {e}"))?;
    sys.drop_capabilities()
        .map_err(|e| format!("setting capabilities: {e}"))?;
    if uid != 0 {
        sys.setuid(uid).map_err(|e| format!("setuid: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Records every call; fails the one named in `fail`.
    #[derive(Default)]
    struct Recorder {
        calls: RefCell<Vec<String>>,
        fail: Option<&'static str>,
    }

    impl Recorder {
        fn call(&self, name: &'static str, what: String) -> io::Result<()> {
            self.calls.borrow_mut().push(what);
            if self.fail == Some(name) {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            Ok(())
        }
    }

    impl Syscall for Recorder {
        fn unshare(&self, flags: libc::c_int) -> io::Result<()> {
            self.call("unshare", format!("unshare {flags:#x}"))
        }
        fn write_file(&self, path: &Path, content: &str) -> io::Result<()> {
            self.call("write", format!("write {} {content:?}", path.display()))
        }
        fn sethostname(&self, name: &str) -> io::Result<()> {
            self.call("sethostname", format!("sethostname {name}"))
        }
        fn set_no_new_privs(&self) -> io::Result<()> {
            self.call("nnp", "no_new_privs".into())
        }
        fn kill_with_parent(&self) -> io::Result<()> {
            self.call("pdeathsig", "pdeathsig".into())
        }
        fn setgroups(&self, groups: &[u32]) -> io::Result<()> {
            self.call("setgroups", format!("setgroups {groups:?}"))
        }
        fn setgid(&self, gid: u32) -> io::Result<()> {
            self.call("setgid", format!("setgid {gid}"))
        }
        fn setuid(&self, uid: u32) -> io::Result<()> {
            self.call("setuid", format!("setuid {uid}"))
        }
        fn drop_capabilities(&self) -> io::Result<()> {
            self.call("caps", "caps".into())
        }
    }

    #[test]
    fn a_step_gets_its_own_network_unless_it_uses_the_hosts() {
        let own = namespace_flags(false, false);
        assert!(own & libc::CLONE_NEWNET != 0 && own & libc::CLONE_NEWUSER == 0);
        assert!(namespace_flags(true, false) & libc::CLONE_NEWNET == 0);
        for f in [
            libc::CLONE_NEWNS,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWUTS,
        ] {
            assert!(namespace_flags(true, false) & f != 0);
        }
    }

    #[test]
    fn rootless_maps_only_the_callers_user_to_root() {
        let r = Recorder::default();
        assert!(enter_namespaces(&r, false, 1000, 1001).unwrap());
        let calls = r.calls.borrow();
        assert_eq!(
            calls[0],
            format!("unshare {:#x}", namespace_flags(false, true))
        );
        assert_eq!(
            calls[1..],
            [
                "write /proc/self/setgroups \"deny\"",
                "write /proc/self/uid_map \"0 1000 1\\n\"",
                "write /proc/self/gid_map \"0 1001 1\\n\"",
            ]
        );
        let root = Recorder::default();
        assert!(!enter_namespaces(&root, true, 0, 0).unwrap());
        assert_eq!(root.calls.borrow().len(), 1, "root writes no maps");
    }

    #[test]
    fn credentials_drop_in_order_and_failures_stop_the_step() {
        let r = Recorder::default();
        become_user(&r, 1000, 100, &[100, 10], false).unwrap();
        assert_eq!(
            *r.calls.borrow(),
            ["setgroups [100, 10]", "setgid 100", "caps", "setuid 1000"]
        );
        let root = Recorder::default();
        become_user(&root, 0, 0, &[], false).unwrap();
        assert!(!root.calls.borrow().iter().any(|c| c.starts_with("setuid")));
        let failing = Recorder {
            fail: Some("caps"),
            ..Default::default()
        };
        let e = become_user(&failing, 1000, 100, &[], false).unwrap_err();
        assert!(e.starts_with("setting capabilities"), "{e}");
        assert!(
            !failing
                .calls
                .borrow()
                .iter()
                .any(|c| c.starts_with("setuid"))
        );
        let e = become_user(&Recorder::default(), 1000, 0, &[], true).unwrap_err();
        assert!(e.contains("needs rbuild to run as root"), "{e}");
    }
}
