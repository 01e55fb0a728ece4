//! What the sandbox does for `rbuild run` beyond a RUN step: the helper
//! forwards the signals it receives to the container's PID 1, the command
//! keeps its caller's streams (or a terminal, as its controlling terminal),
//! and with `--init` a small init stays PID 1, reaping every orphan and
//! passing signals on to the command, as `docker run --init` (tini) does.

use std::sync::atomic::{AtomicI32, Ordering};

/// The process the helper forwards signals to.
static TARGET: AtomicI32 = AtomicI32::new(0);

/// The signals `rbuild run` passes on: everything a user or a supervisor sends to stop,
/// reload or poke a process. SIGCHLD, SIGPIPE, SIGURG and the job-control
/// signals stay with their receiver (as Docker's sig-proxy does), SIGKILL
/// and SIGSTOP cannot be caught.
pub const FORWARDED: [libc::c_int; 10] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGWINCH,
    libc::SIGCONT,
    libc::SIGPWR,
];

extern "C" fn forward(sig: libc::c_int) {
    let pid = TARGET.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// In the helper, once the container's PID 1 exists (`pid`, as the helper
/// sees it): pass every signal it may be sent on to it.
pub fn forward_signals_to(pid: libc::pid_t) {
    TARGET.store(pid, Ordering::Relaxed);
    // Every signal that can be caught and is not the helper's own business
    // (a STOPSIGNAL may be any of them, real-time ones included).
    let own = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGCHLD,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGILL,
        libc::SIGTRAP,
        libc::SIGSYS,
        libc::SIGABRT,
        libc::SIGPIPE,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGTSTP,
    ];
    for sig in (1..=libc::SIGRTMAX()).filter(|s| !own.contains(s)) {
        // SAFETY: installing a handler that only calls kill; SA_RESTART so
        // waitpid resumes.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// A session of the command's own; with `tty`, standard input (a terminal)
/// becomes its controlling terminal.
pub fn own_session(tty: bool) {
    // SAFETY: setsid in a process that is not a group leader; TIOCSCTTY on
    // stdin.
    unsafe {
        if libc::setsid() < 0 {
            super::mounts::fail("setsid");
        }
        if tty && libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
            super::mounts::fail("making the terminal the controlling terminal");
        }
    }
}

/// `rbuild run -t`, in the container after pivot_root: a terminal from the
/// container's own devpts (so the command sees `/dev/pts/0`), owned by the
/// container's user. Its master goes to rbuild over the control socket;
/// once rbuild says it has set the window size (a byte back), the slave
/// becomes stdin, stdout and stderr.
pub fn make_terminal(control: i32, uid: u32, gid: u32) {
    let ptmx = super::mounts::cstr("/dev/ptmx");
    // SAFETY: opening the container's ptmx and its slave; plain ioctls and
    // fchown on descriptors we own.
    let (master, slave) = unsafe {
        let m = libc::open(
            ptmx.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if m < 0 {
            super::mounts::fail("opening /dev/ptmx");
        }
        let unlock: libc::c_int = 0;
        let mut n: libc::c_int = 0;
        if libc::ioctl(m, libc::TIOCSPTLCK, &unlock) != 0
            || libc::ioctl(m, libc::TIOCGPTN, &mut n) != 0
        {
            super::mounts::fail("unlocking the terminal");
        }
        let path = super::mounts::cstr(format!("/dev/pts/{n}"));
        let s = libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if s < 0 {
            super::mounts::fail("opening the terminal");
        }
        if libc::fchown(s, uid, gid) != 0 {
            super::mounts::fail("giving the terminal to the container's user");
        }
        (m, s)
    };
    if send_fd(control, master).is_err() {
        super::mounts::fail("passing the terminal to rbuild");
    }
    if super::network::read_byte(control, -1).is_none() {
        std::process::exit(125);
    }
    // SAFETY: the slave becomes the three streams; our copies close.
    unsafe {
        for fd in 0..3 {
            if libc::dup2(slave, fd) < 0 {
                super::mounts::fail("using the terminal");
            }
        }
        libc::close(slave);
        libc::close(master);
    }
}

/// Send descriptor `fd` over the Unix socket `sock` (SCM_RIGHTS, with one
/// byte of data).
fn send_fd(sock: i32, fd: i32) -> std::io::Result<()> {
    // SAFETY: a msghdr over valid local buffers sized with CMSG_SPACE.
    unsafe {
        let mut byte = [b't'];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let space = libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) as usize;
        let mut buf = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = buf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>(), fd);
        if libc::sendmsg(sock, &msg, 0) != 1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Receive a descriptor sent by [`make_terminal`] on `sock`.
pub fn recv_fd(sock: i32) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: a msghdr over valid local buffers; the received descriptor is
    // owned by the result.
    unsafe {
        let mut byte = [0u8];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let space = libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) as usize;
        let mut buf = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = buf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let n = loop {
            let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break n;
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if n == 0 || cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the container sent no terminal",
            ));
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>());
        Ok(std::os::fd::OwnedFd::from_raw_fd(fd))
    }
}

fn all_signals() -> libc::sigset_t {
    // SAFETY: filling a zeroed sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        // Faults are the process's own, never forwarded.
        for s in [
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGFPE,
            libc::SIGILL,
            libc::SIGTRAP,
            libc::SIGSYS,
            libc::SIGABRT,
        ] {
            libc::sigdelset(&mut set, s);
        }
        set
    }
}

/// `--init`: fork. The child returns (and execs the command, in a process
/// group of its own that is the terminal's foreground group when `tty`);
/// this process stays PID 1: it reaps every process that ends, passes the
/// signals it gets on to the command, and exits as the command did.
pub fn fork_init(tty: bool) {
    let set = all_signals();
    // SAFETY: blocking signals, then fork in a single-threaded process.
    let child = unsafe {
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::fork()
    };
    if child < 0 {
        super::mounts::fail("fork (init)");
    }
    if child == 0 {
        // SAFETY: own process group, the terminal's foreground (SIGTTOU
        // ignored meanwhile), then the signal mask cleared for the command.
        unsafe {
            libc::setpgid(0, 0);
            if tty {
                libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                libc::tcsetpgrp(0, libc::getpid());
                libc::signal(libc::SIGTTOU, libc::SIG_DFL);
            }
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
        return;
    }
    // SAFETY: closing our copies of the streams: only the command uses them.
    unsafe {
        for fd in 0..3 {
            libc::close(fd);
        }
    }
    loop {
        // SAFETY: waiting for one of the blocked signals.
        let sig = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::sigwaitinfo(&set, &mut info)
        };
        if sig < 0 {
            continue;
        }
        if sig != libc::SIGCHLD {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child, sig) };
            continue;
        }
        loop {
            let mut status = 0;
            // SAFETY: reaping any ended child, without blocking.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    128 + libc::WTERMSIG(status)
                };
                // Our end takes every other process of the container with it.
                std::process::exit(code);
            }
        }
    }
}
