//! Signals to `rbuild run` reach the container. rbuild blocks them before
//! it starts any thread, and one thread takes them with `sigwait`:
//! SIGTERM (stopping rbuild is stopping the container, as `docker stop`)
//! becomes the image's STOPSIGNAL and, when the container is still there
//! after the stop timeout, SIGKILL; SIGWINCH with a terminal resizes it;
//! every other signal of [`crate::exec::init::FORWARDED`] is passed on as
//! it is. A third SIGINT kills the container: a PID 1 without a handler
//! ignores SIGINT, and Ctrl-C must still end the run.
//!
//! Signals go to the sandbox helper through a pidfd (never to a recycled
//! process id); the helper passes them to the container's PID 1.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

/// Errors naming a signal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid signal: {0}")]
pub struct BadSignal(pub String);

/// Parse `SIGTERM`, `TERM`, `15` or `SIGRTMIN+3` (Docker's forms).
pub fn parse_signal(s: &str) -> Result<libc::c_int, BadSignal> {
    let bad = || BadSignal(s.to_string());
    if let Ok(n) = s.parse::<libc::c_int>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let off: libc::c_int = match rest.strip_prefix('+') {
            Some(n) => n.parse().map_err(|_| bad())?,
            None if rest.is_empty() => 0,
            None => return Err(bad()),
        };
        let sig = libc::SIGRTMIN() + off;
        return if sig <= libc::SIGRTMAX() {
            Ok(sig)
        } else {
            Err(bad())
        };
    }
    const NAMES: [(&str, libc::c_int); 31] = [
        ("HUP", libc::SIGHUP),
        ("INT", libc::SIGINT),
        ("QUIT", libc::SIGQUIT),
        ("ILL", libc::SIGILL),
        ("TRAP", libc::SIGTRAP),
        ("ABRT", libc::SIGABRT),
        ("IOT", libc::SIGIOT),
        ("BUS", libc::SIGBUS),
        ("FPE", libc::SIGFPE),
        ("KILL", libc::SIGKILL),
        ("USR1", libc::SIGUSR1),
        ("SEGV", libc::SIGSEGV),
        ("USR2", libc::SIGUSR2),
        ("PIPE", libc::SIGPIPE),
        ("ALRM", libc::SIGALRM),
        ("TERM", libc::SIGTERM),
        ("STKFLT", libc::SIGSTKFLT),
        ("CHLD", libc::SIGCHLD),
        ("CONT", libc::SIGCONT),
        ("STOP", libc::SIGSTOP),
        ("TSTP", libc::SIGTSTP),
        ("TTIN", libc::SIGTTIN),
        ("TTOU", libc::SIGTTOU),
        ("URG", libc::SIGURG),
        ("XCPU", libc::SIGXCPU),
        ("XFSZ", libc::SIGXFSZ),
        ("VTALRM", libc::SIGVTALRM),
        ("PROF", libc::SIGPROF),
        ("WINCH", libc::SIGWINCH),
        ("IO", libc::SIGIO),
        ("PWR", libc::SIGPWR),
    ];
    NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .ok_or_else(bad)
}

/// A process to signal, by pidfd.
#[derive(Clone)]
pub struct Target(Arc<OwnedFd>);

impl Target {
    /// A pidfd for `pid` (a child of ours not yet reaped).
    pub fn open(pid: u32) -> std::io::Result<Target> {
        // SAFETY: raw pidfd_open; the descriptor is owned below.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        Ok(Target(Arc::new(unsafe {
            OwnedFd::from_raw_fd(fd as RawFd)
        })))
    }

    /// Send `sig` (nothing happens once the process is gone).
    pub fn send(&self, sig: libc::c_int) {
        // SAFETY: raw pidfd_send_signal on our pidfd, no siginfo.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }
}

fn forwarded_set() -> libc::sigset_t {
    // SAFETY: building a sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in crate::exec::init::FORWARDED {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Block the forwarded signals in this thread and every thread it starts
/// from now on (children get a clean mask: std resets it at spawn). Call
/// before starting any thread.
pub fn block() {
    let set = forwarded_set();
    // SAFETY: changing this thread's signal mask.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// How the forwarder treats the signals.
pub struct Policy {
    /// What SIGTERM becomes (the image's STOPSIGNAL, or `--stop-signal`).
    pub stop_signal: libc::c_int,
    /// How long after the stop signal the container is killed.
    pub stop_timeout: Duration,
    /// With a terminal: its master, resized on SIGWINCH from this one.
    pub resize: Option<(RawFd, RawFd)>,
}

/// Start the forwarding thread for `target`.
pub fn forward(target: Target, policy: Policy) {
    let set = forwarded_set();
    std::thread::spawn(move || {
        let mut interrupts = 0;
        loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: waiting for one of the blocked signals.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            match sig {
                libc::SIGTERM => {
                    target.send(policy.stop_signal);
                    let (t, timeout) = (target.clone(), policy.stop_timeout);
                    std::thread::spawn(move || {
                        std::thread::sleep(timeout);
                        t.send(libc::SIGKILL);
                    });
                }
                libc::SIGWINCH if policy.resize.is_some() => {
                    if let Some((from, master)) = policy.resize {
                        super::tty::copy_winsize(from, master);
                    }
                }
                libc::SIGINT => {
                    interrupts += 1;
                    if interrupts >= 3 {
                        eprintln!("rbuild run: third interrupt: killing the container");
                        target.send(libc::SIGKILL);
                    } else {
                        target.send(sig);
                    }
                }
                other => target.send(other),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(parse_signal("SIGTERM"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("term"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("9"), Ok(9));
        assert_eq!(parse_signal("SIGRTMIN+3"), Ok(libc::SIGRTMIN() + 3));
        assert!(parse_signal("SIGNOPE").is_err());
        assert!(parse_signal("0").is_err());
    }
}
