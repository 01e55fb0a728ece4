//! The sandbox helper: `rbuild __sandbox` reads a [`SandboxSpec`] on stdin
//! and, single-threaded, creates mount, pid, ipc and uts namespaces (and a
//! network namespace unless `--network=host`), assembles an overlay of the
//! parent layers with a fresh upper directory, mounts a new /proc and a
//! minimal /dev, pivots into it, drops to Docker's default capabilities with
//! no_new_privs, switches user and execs the command as PID 1 of its pid
//! namespace — so every process of the step dies with it.

use super::spec::{Network, SandboxSpec};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(s: impl AsRef<std::ffi::OsStr>) -> CString {
    CString::new(s.as_ref().as_bytes()).unwrap_or_default()
}

fn fail(what: &str) -> ! {
    let err = std::io::Error::last_os_error();
    eprintln!("rbuild sandbox: {what}: {err}");
    std::process::exit(125);
}

fn mount(src: &str, target: &Path, fstype: &str, flags: libc::c_ulong, data: &str) {
    let (s, t, f, d) = (cstr(src), cstr(target), cstr(fstype), cstr(data));
    let data_ptr = if data.is_empty() {
        std::ptr::null()
    } else {
        d.as_ptr() as *const libc::c_void
    };
    // SAFETY: all pointers are valid NUL-terminated strings for the call's duration.
    let r = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), flags, data_ptr) };
    if r != 0 {
        fail(&format!("mounting {fstype} on {}", target.display()));
    }
}

/// Docker's default capability set (numbers from linux/capability.h):
/// CHOWN 0, DAC_OVERRIDE 1, FOWNER 3, FSETID 4, KILL 5, SETGID 6, SETUID 7,
/// SETPCAP 8, NET_BIND_SERVICE 10, NET_RAW 13, SYS_CHROOT 18, MKNOD 27,
/// AUDIT_WRITE 29, SETFCAP 31.
const DEFAULT_CAPS: [u32; 14] = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];

fn drop_capabilities(keep_all_for_root: bool) {
    let mut mask: u64 = 0;
    for c in DEFAULT_CAPS {
        mask |= 1u64 << c;
    }
    for cap in 0..64u32 {
        if mask & (1u64 << cap) == 0 {
            // SAFETY: plain prctl; EINVAL for caps the kernel does not know is fine.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        }
    }
    let eff = if keep_all_for_root { mask } else { 0 };
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let h = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let d = [
        Data {
            effective: eff as u32,
            permitted: eff as u32,
            inheritable: 0,
        },
        Data {
            effective: (eff >> 32) as u32,
            permitted: (eff >> 32) as u32,
            inheritable: 0,
        },
    ];
    // SAFETY: capset with a v3 header and two data structs, as the kernel ABI defines.
    let r = unsafe { libc::syscall(libc::SYS_capset, &h as *const Header, d.as_ptr()) };
    if r != 0 {
        fail("setting capabilities");
    }
}

fn mknod_dev(dev: &Path, name: &str, major: u32, minor: u32) {
    let p = cstr(dev.join(name));
    // SAFETY: valid path; creating a character device as root.
    let r = unsafe {
        libc::mknod(
            p.as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(major, minor),
        )
    };
    if r != 0 {
        fail(&format!("creating /dev/{name}"));
    }
    // SAFETY: valid path.
    unsafe { libc::chmod(p.as_ptr(), 0o666) };
}

fn setup_dev(dev: &Path, rootless: bool) {
    mount(
        "tmpfs",
        dev,
        "tmpfs",
        libc::MS_NOSUID | libc::MS_STRICTATIME,
        "mode=755,size=65536k",
    );
    for (n, maj, min) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        if rootless {
            // No mknod in a user namespace: bind the host's device nodes.
            let t = dev.join(n);
            let _ = std::fs::write(&t, b"");
            mount(&format!("/dev/{n}"), &t, "", libc::MS_BIND, "");
        } else {
            mknod_dev(dev, n, maj, min);
        }
    }
    let _ = std::fs::create_dir(dev.join("pts"));
    mount(
        "devpts",
        &dev.join("pts"),
        "devpts",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620",
    );
    let _ = std::os::unix::fs::symlink("pts/ptmx", dev.join("ptmx"));
    let _ = std::fs::create_dir(dev.join("shm"));
    mount(
        "shm",
        &dev.join("shm"),
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "mode=1777,size=65536k",
    );
    for (l, t) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(t, dev.join(l));
    }
}

/// As Docker: kernel tunables read-only, sensitive files masked, so root in
/// the step cannot change the host through /proc.
fn protect_proc(proc_dir: &Path) {
    for ro in ["sys", "sysrq-trigger", "irq", "bus", "fs"] {
        let p = proc_dir.join(ro);
        if p.exists() {
            mount(
                &p.to_string_lossy(),
                &p,
                "",
                libc::MS_BIND | libc::MS_REC,
                "",
            );
            remount_ro(&p, true);
        }
    }
    for masked in [
        "kcore",
        "keys",
        "latency_stats",
        "timer_list",
        "timer_stats",
        "sched_debug",
        "acpi",
        "scsi",
    ] {
        let p = proc_dir.join(masked);
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => mount("tmpfs", &p, "tmpfs", libc::MS_RDONLY, "size=0"),
            Ok(_) => mount("/dev/null", &p, "", libc::MS_BIND, ""),
            Err(_) => {}
        }
    }
}

/// Create a mount target (a directory, or a file when the source is one).
fn ensure_target(target: &Path, is_file: bool) {
    if target.exists() {
        return;
    }
    if is_file {
        if let Some(p) = target.parent() {
            let _ = std::fs::create_dir_all(p);
        }
        let _ = std::fs::write(target, b"");
    } else {
        let _ = std::fs::create_dir_all(target);
    }
}

fn inside(root: &Path, container_path: &str) -> std::path::PathBuf {
    let parts = crate::layer::view::clean_components(container_path);
    let mut p = root.to_path_buf();
    for c in parts {
        p.push(c);
    }
    p
}

fn extra_mount(root: &Path, m: &super::spec::ExtraMount, empty: &Path) {
    use super::spec::ExtraMount;
    match m {
        ExtraMount::Bind {
            source,
            target,
            readonly,
        } => {
            let t = inside(root, target);
            ensure_target(&t, source.is_file());
            mount(
                &source.to_string_lossy(),
                &t,
                "",
                libc::MS_BIND | libc::MS_REC,
                "",
            );
            if *readonly {
                remount_ro(&t, true);
            }
        }
        ExtraMount::Layers {
            lowerdirs,
            mountpoint,
            subpath,
            target,
        } => {
            let mut lowers: Vec<String> = lowerdirs
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            lowers.push(empty.to_string_lossy().into_owned());
            mount(
                "overlay",
                mountpoint,
                "overlay",
                libc::MS_RDONLY,
                &format!("lowerdir={}", lowers.join(":")),
            );
            let src = inside(mountpoint, subpath);
            let t = inside(root, target);
            ensure_target(&t, src.is_file());
            mount(
                &src.to_string_lossy(),
                &t,
                "",
                libc::MS_BIND | libc::MS_REC,
                "",
            );
            remount_ro(&t, true);
        }
        ExtraMount::Tmpfs { target, size } => {
            let t = inside(root, target);
            ensure_target(&t, false);
            let data = if *size > 0 {
                format!("size={size}")
            } else {
                String::new()
            };
            mount(
                "tmpfs",
                &t,
                "tmpfs",
                libc::MS_NOSUID | libc::MS_NODEV,
                &data,
            );
        }
    }
}

/// Remount a bind mount read-only, keeping the flags the kernel locks in a
/// user namespace (nosuid, nodev, noexec).
fn remount_ro(target: &Path, recursive: bool) {
    let mut flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
    if recursive {
        flags |= libc::MS_REC;
    }
    let c = cstr(target);
    // SAFETY: statvfs into a zeroed struct with a valid path.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) == 0 {
            if st.f_flag & libc::ST_NOSUID != 0 {
                flags |= libc::MS_NOSUID;
            }
            if st.f_flag & libc::ST_NODEV != 0 {
                flags |= libc::MS_NODEV;
            }
            if st.f_flag & libc::ST_NOEXEC != 0 {
                flags |= libc::MS_NOEXEC;
            }
        }
    }
    mount("", target, "", flags, "");
}

fn bind_file(src: &Path, target: &Path) {
    if !target.exists() {
        if let Some(p) = target.parent() {
            let _ = std::fs::create_dir_all(p);
        }
        let _ = std::fs::write(target, b"");
    }
    mount(&src.to_string_lossy(), target, "", libc::MS_BIND, "");
    remount_ro(target, false);
}

/// Entry point of `rbuild __sandbox`. Never returns.
pub fn sandbox_main() -> ! {
    let Ok(input) = super::network::read_spec_line() else {
        fail("reading the sandbox spec");
    };
    let spec: SandboxSpec = match serde_json::from_slice(&input) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rbuild sandbox: bad spec: {e}");
            std::process::exit(125);
        }
    };
    // Die with rbuild.
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    let mut flags =
        libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if spec.network != Network::Host {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: plain getters.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let rootless = euid != 0;
    if rootless {
        flags |= libc::CLONE_NEWUSER;
    }
    // SAFETY: unshare in a single-threaded process.
    if unsafe { libc::unshare(flags) } != 0 {
        fail("creating namespaces");
    }
    if rootless {
        // A fresh user namespace where our own user is root (and only it).
        for (f, v) in [
            ("/proc/self/setgroups", "deny".to_string()),
            ("/proc/self/uid_map", format!("0 {euid} 1\n")),
            ("/proc/self/gid_map", format!("0 {egid} 1\n")),
        ] {
            if std::fs::write(f, v).is_err() {
                fail(&format!("writing {f}"));
            }
        }
    }
    if let Some(fd) = spec.sync_fd {
        // rbuild now attaches slirp4netns to our network namespace.
        super::network::notify(fd);
    }
    // SAFETY: fork in a single-threaded process; the child becomes PID 1.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail("fork");
    }
    if pid > 0 {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else if libc::WIFSIGNALED(status) {
            128 + libc::WTERMSIG(status)
        } else {
            125
        };
        std::process::exit(code);
    }
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    run_child(&spec, rootless)
}

fn run_child(spec: &SandboxSpec, rootless: bool) -> ! {
    mount("", Path::new("/"), "", libc::MS_REC | libc::MS_PRIVATE, "");
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
    let root = &spec.rootfs;
    if spec.copy_rootfs {
        mount(
            &root.to_string_lossy(),
            root,
            "",
            libc::MS_BIND | libc::MS_REC,
            "",
        );
    } else {
        mount("overlay", root, "overlay", 0, &opts);
    }
    if spec.network == Network::None {
        // Bring up loopback: 127.0.0.1 works inside, nothing else exists.
        loopback_up();
    }
    let proc_dir = root.join("proc");
    let _ = std::fs::create_dir_all(&proc_dir);
    mount(
        "proc",
        &proc_dir,
        "proc",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "",
    );
    protect_proc(&proc_dir);
    let dev = root.join("dev");
    let _ = std::fs::create_dir_all(&dev);
    setup_dev(&dev, rootless);
    let sys = root.join("sys");
    if sys.is_dir() && !rootless {
        mount(
            "sysfs",
            &sys,
            "sysfs",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY,
            "",
        );
    }
    bind_file(&spec.hosts_file, &root.join("etc/hosts"));
    if let Some(resolv) = &spec.resolv_conf {
        bind_file(resolv, &root.join("etc/resolv.conf"));
    }
    for m in &spec.mounts {
        extra_mount(root, m, &spec.empty_lower);
    }
    let host = cstr(&spec.hostname);
    // SAFETY: valid buffer and length.
    if unsafe { libc::sethostname(host.as_ptr(), spec.hostname.len()) } != 0 {
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
    let _ = std::env::set_current_dir("/");
    if std::fs::create_dir_all(&spec.cwd).is_err() || std::env::set_current_dir(&spec.cwd).is_err()
    {
        fail(&format!("entering the working directory {}", spec.cwd));
    }
    if rootless && (spec.uid != 0 || spec.gid != 0) {
        eprintln!(
            "rbuild sandbox: USER {}:{} needs rbuild to run as root (a rootless build maps only root)",
            spec.uid, spec.gid
        );
        std::process::exit(125);
    }
    // SAFETY: setgroups/setgid/setuid as root, before exec.
    unsafe {
        if !rootless && libc::setgroups(spec.groups.len(), spec.groups.as_ptr()) != 0 {
            fail("setgroups");
        }
        if libc::setgid(spec.gid) != 0 {
            fail("setgid");
        }
    }
    if spec.uid == 0 {
        drop_capabilities(true);
    } else {
        // Keep the bounding set minimal; a non-root user gets no capabilities.
        drop_capabilities(true);
        // SAFETY: dropping to the step's user.
        if unsafe { libc::setuid(spec.uid) } != 0 {
            fail("setuid");
        }
    }
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    set_rlimits();
    if spec.network == Network::Slirp && !super::network::wait_for_go() {
        eprintln!("rbuild sandbox: the step's network could not be set up");
        std::process::exit(125);
    }
    let mut cmd = std::process::Command::new(&spec.argv[0]);
    cmd.args(&spec.argv[1..]).env_clear();
    for kv in &spec.env {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    use std::os::unix::process::CommandExt;
    let err = cmd.exec();
    eprintln!("rbuild sandbox: cannot run {:?}: {err}", spec.argv[0]);
    std::process::exit(127);
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
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
        let mut nofile = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut nofile) == 0 {
            nofile.rlim_max = nofile.rlim_max.min(1 << 20);
            nofile.rlim_cur = nofile.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &nofile);
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
