//! The sandbox helper: `rbuild __sandbox` reads a [`SandboxSpec`] on stdin
//! and, single-threaded, creates mount, pid, ipc and uts namespaces (and a
//! network namespace unless `--network=host`), assembles an overlay of the
//! parent layers with a fresh upper directory, mounts /proc, /dev and /sys
//! and the step's mounts ([`super::rootfs`], [`super::extra`]), pivots into
//! it, drops to Docker's default capabilities with no_new_privs, switches
//! user, installs Docker's seccomp profile ([`super::seccomp`]) and execs
//! the command as PID 1 of its pid namespace, in a session of its own, with
//! /dev/null as stdin and no other inherited descriptor — so every process
//! of the step dies with it, and it dies with rbuild.

use super::caps;
use super::extra;
use super::mounts::{self, cstr, fail};
use super::rootfs::{self, Rootfs};
use super::seccomp;
use super::spec::{ContainerOptions, ContainerSpec, Network, SandboxSpec, Stdio};
use super::syscall::{self, Linux, Syscall};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Entry point of `rbuild __sandbox [--control-fd=N]`. Never returns.
/// The spec and the network's go-ahead come on the control descriptor:
/// stdin for RUN steps, another one for `rbuild run`, whose stdin is the
/// container's.
pub fn sandbox_main() -> ! {
    super::cloexec_inherited();
    let control = std::env::args()
        .nth(2)
        .and_then(|a| a.strip_prefix("--control-fd=")?.parse::<i32>().ok())
        .unwrap_or(0);
    // One line: the descriptor stays open to say when the step's network is ready.
    let Ok(input) = super::network::read_spec_line_from(control) else {
        fail("reading the sandbox spec");
    };
    let ContainerSpec {
        base: spec,
        options,
    } = match serde_json::from_slice(&input) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rbuild sandbox: bad spec: {e}");
            std::process::exit(125);
        }
    };
    // Die with rbuild (and do not start when it is already gone).
    let parent = rustix::process::getppid();
    if Linux.kill_with_parent().is_err() {
        fail("setting the parent-death signal");
    }
    if rustix::process::getppid() != parent {
        std::process::exit(125);
    }
    let seccomp = compile_seccomp();
    let euid = rustix::process::geteuid().as_raw();
    let egid = rustix::process::getegid().as_raw();
    let rootless = syscall::enter_namespaces(&Linux, spec.network == Network::Host, euid, egid)
        .unwrap_or_else(|e| {
            eprintln!("rbuild sandbox: {e}");
            std::process::exit(125);
        });
    if let Some(fd) = spec.sync_fd {
        // rbuild now attaches slirp4netns to our network namespace.
        super::network::notify(fd);
    }
    // The child's way to see that this helper is gone: the hangup of a
    // pipe whose write end only the helper holds (close-on-exec on both).
    let mut fds = [0; 2];
    // SAFETY: pipe2 into a valid array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        fail("pipe");
    }
    // SAFETY: fresh descriptors we own.
    let (alive_r, alive_w) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fork in a single-threaded process; the child becomes PID 1.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail("fork");
    }
    if pid > 0 {
        drop(alive_r);
        if options.forward_signals {
            super::init::forward_signals_to(pid);
        }
        // `rbuild run` blocks the signals it forwards, and so did we until
        // now: what came meanwhile is passed on from here.
        clear_signal_mask();
        let status = wait_for(pid);
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else if libc::WIFSIGNALED(status) {
            128 + libc::WTERMSIG(status)
        } else {
            125
        };
        drop(alive_w);
        std::process::exit(code);
    }
    drop(alive_w);
    clear_signal_mask();
    die_with_helper(&alive_r);
    run_child(&spec, &options, control, rootless, &alive_r, &seccomp)
}

/// Unblock every signal (this process is single-threaded).
fn clear_signal_mask() {
    // SAFETY: setting this process's signal mask to an empty set.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}

/// Wait for our child `pid` (through interruptions); its wait status.
fn wait_for(pid: libc::pid_t) -> libc::c_int {
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child into a valid int.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return status;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            fail("waiting for the step");
        }
    }
}

/// Docker's default profile for this architecture and Docker's default
/// capabilities, compiled before anything is mounted.
fn compile_seccomp() -> Vec<seccompiler::BpfProgram> {
    let Some((arch, go_arch)) = seccomp::native_arch() else {
        eprintln!(
            "rbuild sandbox: no seccomp profile for {}; RUN needs x86_64 or aarch64",
            std::env::consts::ARCH
        );
        std::process::exit(125);
    };
    let cx = seccomp::Context {
        arch: go_arch,
        has_cap: &caps::in_bounding_set,
        kernel: seccomp::kernel_version(),
    };
    match seccomp::compile(&cx, arch) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rbuild sandbox: {e}");
            std::process::exit(125);
        }
    }
}

/// Arm PDEATHSIG (again: a credential change clears it), then make sure
/// the helper did not die before it was armed.
fn die_with_helper(alive: &OwnedFd) {
    if Linux.kill_with_parent().is_err() {
        fail("setting the parent-death signal");
    }
    let mut p = libc::pollfd {
        fd: alive.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one valid pollfd, no wait.
    let r = unsafe { libc::poll(&mut p, 1, 0) };
    if r != 0 {
        // Readable or hung up: the write end is gone, so is the helper.
        std::process::exit(125);
    }
}

fn run_child(
    spec: &SandboxSpec,
    options: &ContainerOptions,
    control: i32,
    rootless: bool,
    alive: &OwnedFd,
    seccomp_filter: &[seccompiler::BpfProgram],
) -> ! {
    mounts::mount("", Path::new("/"), "", libc::MS_REC | libc::MS_PRIVATE, "");
    mount_root(spec, options, rootless);
    let root = &spec.rootfs;
    if spec.network == Network::None {
        // Bring up loopback: 127.0.0.1 works inside, nothing else exists.
        loopback_up();
    }
    let rootfs = Rootfs::new(root);
    rootfs::setup_proc(&rootfs);
    rootfs::setup_dev(&rootfs);
    rootfs::setup_sys(&rootfs);
    if let Some(emulator) = &spec.emulator {
        let inside = super::emulate::EMULATOR_PATH.trim_start_matches('/');
        extra::bind_file(&rootfs, &emulator.path, inside);
    }
    extra::bind_file(&rootfs, &spec.hosts_file, "etc/hosts");
    if let Some(resolv) = &spec.resolv_conf {
        extra::bind_file(&rootfs, resolv, "etc/resolv.conf");
    }
    for m in &spec.mounts {
        extra::extra_mount(&rootfs, m, &spec.empty_lower);
    }
    if options.readonly_root {
        // The working directory first (inside the root), as Docker makes it.
        drop(rootfs.dir(&spec.cwd));
        // Only the root's own mount: /proc, /dev, volumes keep theirs.
        let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NODEV;
        mounts::mount("", root, "", flags, "");
    }
    if Linux.sethostname(&spec.hostname).is_err() {
        fail("setting the hostname");
    }
    // pivot_root(".", ".") then detach the old root: no directory left behind.
    if std::env::set_current_dir(root).is_err() {
        fail("entering the root filesystem");
    }
    let dot = cstr(".");
    // SAFETY: raw pivot_root syscall with valid paths.
    if unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } != 0 {
        fail("pivot_root");
    }
    // SAFETY: valid path.
    if unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) } != 0 {
        fail("detaching the old root");
    }
    // From here on the process's root is the step's root: paths resolve
    // inside it.
    let _ = std::env::set_current_dir("/");
    if std::fs::create_dir_all(&spec.cwd).is_err() || std::env::set_current_dir(&spec.cwd).is_err()
    {
        fail(&format!("entering the working directory {}", spec.cwd));
    }
    if let Some(line) = spec.emulator.as_ref().and_then(|e| e.binfmt.as_ref())
        && let Err(e) = super::binfmt::register_private(line, rootless)
    {
        eprintln!(
            "rbuild sandbox: warning: no binfmt_misc of the step's own ({e}): only its first program runs emulated"
        );
    }
    if options.stdio == Stdio::Tty {
        // The container's own terminal, from its own /dev/pts.
        super::init::make_terminal(control, spec.uid, spec.gid);
    }
    become_user(spec, rootless);
    die_with_helper(alive);
    // The go-ahead comes on stdin, before it becomes /dev/null.
    if spec.network == Network::Slirp && !super::network::wait_for_go_on(control) {
        eprintln!("rbuild sandbox: the step's network could not be set up");
        std::process::exit(125);
    }
    match options.stdio {
        Stdio::Null => detach_terminal(),
        Stdio::Inherit | Stdio::Tty => super::init::own_session(options.stdio == Stdio::Tty),
    }
    if control != 0 {
        // SAFETY: closing the control descriptor, which nothing uses any more.
        unsafe { libc::close(control) };
    }
    if Linux.set_no_new_privs().is_err() {
        fail("setting no_new_privs");
    }
    set_rlimits();
    let argv = match &spec.emulator {
        Some(_) => super::emulate::emulated_argv(&spec.argv, &spec.env),
        None => spec.argv.clone(),
    };
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]).env_clear();
    for kv in &spec.env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    // Last, right before exec.
    if let Err(e) = seccomp::install(seccomp_filter) {
        eprintln!("rbuild sandbox: {e}");
        std::process::exit(125);
    }
    if options.init {
        super::init::fork_init(options.stdio == Stdio::Tty);
    }
    use std::os::unix::process::CommandExt;
    let err = cmd.exec();
    eprintln!("rbuild sandbox: cannot run {:?}: {err}", spec.argv[0]);
    // Docker's codes: 127 when the command is not there, 126 when it cannot
    // be run (not executable, a directory, no interpreter...).
    std::process::exit(if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    });
}

/// The root filesystem: an overlay of the layers with the step's upper
/// directory, or the copy snapshotter's copy bound on itself.
fn mount_root(spec: &SandboxSpec, options: &ContainerOptions, rootless: bool) {
    let lowers: Vec<String> = if spec.lowerdirs.is_empty() {
        vec![spec.empty_lower.to_string_lossy().into_owned()]
    } else {
        spec.lowerdirs
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    };
    let mut opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        spec.upper.display(),
        spec.work.display()
    );
    if rootless {
        opts.push_str(",userxattr");
    }
    if options.discard_upper {
        // Never synced: nothing of it is kept (no sync when it is unmounted).
        opts.push_str(",volatile");
    }
    let root = &spec.rootfs;
    // nodev: a device node made inside the step cannot be opened.
    if spec.copy_rootfs {
        let fd = mounts::open_host(root);
        mounts::bind(fd.as_fd(), fd.as_fd(), mounts::NODEV, &|| "/".into());
    } else {
        mounts::mount("overlay", root, "overlay", libc::MS_NODEV, &opts);
    }
}

/// Groups, group, Docker's capabilities, then the user.
fn become_user(spec: &SandboxSpec, rootless: bool) {
    if let Err(e) = syscall::become_user(&Linux, spec.uid, spec.gid, &spec.groups, rootless) {
        eprintln!("rbuild sandbox: {e}");
        std::process::exit(125);
    }
}

/// A session of its own (no controlling terminal, so no TIOCSTI into the
/// caller's) and /dev/null as stdin instead of the spec pipe.
fn detach_terminal() {
    // SAFETY: setsid in a process that is not a group leader.
    if unsafe { libc::setsid() } < 0 {
        fail("setsid");
    }
    let null = cstr("/dev/null");
    // SAFETY: valid path; dup2 onto stdin, then close the original.
    unsafe {
        let fd = libc::open(null.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 || libc::dup2(fd, 0) < 0 || libc::close(fd) != 0 {
            fail("opening /dev/null as stdin");
        }
    }
}

/// Only ever lower limits (root here cannot raise hard limits): no core
/// dumps landing in layers, and the open-file soft limit at its hard limit.
fn set_rlimits() {
    // SAFETY: get/setrlimit with valid structs.
    unsafe {
        let zero = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::setrlimit(libc::RLIMIT_CORE, &zero) != 0 {
            fail("disabling core dumps");
        }
        let mut nofile = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut nofile) == 0 {
            nofile.rlim_max = nofile.rlim_max.min(1 << 20);
            nofile.rlim_cur = nofile.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &nofile) != 0 {
                fail("setting the open-file limit");
            }
        }
    }
}

fn loopback_up() {
    // SAFETY: ioctl on a datagram socket to set IFF_UP on "lo".
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if fd < 0 {
            return;
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr);
        }
        libc::close(fd);
    }
}
