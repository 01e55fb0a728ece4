//! The step's root filesystem and its system mounts: /dev with Docker's
//! default devices only, /proc with Docker's masked and read-only paths, and
//! a read-only /sys. Every mount is `nodev` except the bind mounts of the
//! allowed device nodes themselves, so a node made with mknod inside the
//! step (in /tmp, in /dev, in a cache) cannot be opened.

use super::mounts::{self, NODEV, NOEXEC, NOSUID, RDONLY, STRICTATIME, open_below};
use crate::fsroot::Root;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// The devices a step sees, as Docker's default: bind mounts of the host's
/// nodes.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Docker's masked paths (moby `oci/defaults.go`): directories get an empty
/// read-only tmpfs, files /dev/null.
const MASKED: [&str; 12] = [
    "proc/asound",
    "proc/acpi",
    "proc/interrupts",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
const READONLY: [&str; 5] = ["bus", "fs", "irq", "sys", "sysrq-trigger"];

/// The assembled root filesystem: mount targets are created and opened
/// inside it ([`crate::fsroot::Root`]: symlinks re-rooted, `..` clamped),
/// never through the host's resolution of a path.
pub struct Rootfs {
    root: Root,
}

fn or_fail<T>(r: std::io::Result<T>, what: &dyn Fn() -> String) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            eprintln!("rbuild sandbox: {}: {e}", what());
            std::process::exit(125);
        }
    }
}

impl Rootfs {
    /// The root filesystem mounted at `path` (a host path rbuild chose).
    pub fn new(path: &Path) -> Rootfs {
        Rootfs {
            root: or_fail(Root::open(path), &|| format!("opening {}", path.display())),
        }
    }

    /// A directory inside the root (created if missing), as an `O_PATH`
    /// descriptor.
    pub fn dir(&self, rel: &str) -> OwnedFd {
        or_fail(self.root.mkdir_all(rel, 0o755), &|| {
            format!("creating the mount point {rel}")
        })
    }

    /// An existing path inside the root, following symlinks inside it, as
    /// an `O_PATH` descriptor.
    pub fn open(&self, rel: &str) -> OwnedFd {
        or_fail(self.root.open_path(rel, true), &|| format!("opening {rel}"))
    }

    /// A file inside the root (created empty if missing) as a descriptor.
    pub fn file(&self, rel: &str) -> OwnedFd {
        or_fail(self.root.ensure_file(rel), &|| {
            format!("creating the mount point {rel}")
        })
    }
}

/// Create `name` below `dir` (a directory, or an empty file; one that
/// exists is fine) and open it; None when that fails.
fn create_below(dir: BorrowedFd, name: &str, directory: bool) -> Option<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let made = if directory {
        rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o755))
    } else {
        let flags =
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o666)).map(drop)
    };
    match made {
        Ok(()) | Err(rustix::io::Errno::EXIST) => open_below(dir, name),
        Err(_) => None,
    }
}

/// A symlink `name` -> `target` below `dir` (one already there is kept).
fn symlink_below(dir: BorrowedFd, target: &str, name: &str) {
    match rustix::fs::symlinkat(target, dir, name) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => {
            eprintln!("rbuild sandbox: linking /dev/{name}: {e}");
            std::process::exit(125);
        }
    }
}

/// /dev: a `nodev` tmpfs holding bind mounts of the allowed host devices,
/// a private devpts and /dev/shm.
pub fn setup_dev(root: &Rootfs) {
    let target = root.dir("dev");
    let dev = mounts::mount_new(
        "tmpfs",
        &[("mode", "755"), ("size", "65536k")],
        NOSUID | NODEV | STRICTATIME,
        target.as_fd(),
        &|| "/dev".into(),
    );
    for n in DEVICES {
        let host = mounts::open_host(&Path::new("/dev").join(n));
        let Some(t) = create_below(dev.as_fd(), n, false) else {
            mounts::fail(&format!("creating /dev/{n}"));
        };
        mounts::bind(host.as_fd(), t.as_fd(), NOSUID | NOEXEC, &|| {
            format!("/dev/{n}")
        });
    }
    if let Some(pts) = create_below(dev.as_fd(), "pts", true) {
        mounts::mount_new(
            "devpts",
            &[("ptmxmode", "0666"), ("mode", "0620")],
            NOSUID | NOEXEC,
            pts.as_fd(),
            &|| "/dev/pts".into(),
        );
    }
    symlink_below(dev.as_fd(), "pts/ptmx", "ptmx");
    if let Some(shm) = create_below(dev.as_fd(), "shm", true) {
        mounts::mount_new(
            "tmpfs",
            &[("mode", "1777"), ("size", "65536k")],
            NOSUID | NODEV | NOEXEC,
            shm.as_fd(),
            &|| "/dev/shm".into(),
        );
    }
    for (l, t) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink_below(dev.as_fd(), t, l);
    }
}

/// Mask `rel` (below the mount `base`): an empty read-only tmpfs over a
/// directory, /dev/null over anything else.
fn mask(base: BorrowedFd, rel: &str, what: &str) {
    let mut dir: Option<OwnedFd> = None;
    let mut parts = rel.split('/').peekable();
    while let Some(part) = parts.next() {
        let at = dir.as_ref().map(|d| d.as_fd()).unwrap_or(base);
        let Some(fd) = open_below(at, part) else {
            return;
        };
        if parts.peek().is_none() {
            // SAFETY: fstat into a zeroed struct on a valid fd.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: valid fd and buffer.
            if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
                return;
            }
            match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => {
                    mounts::mount_new(
                        "tmpfs",
                        &[("size", "0"), ("mode", "755")],
                        RDONLY | NOSUID | NODEV | NOEXEC,
                        fd.as_fd(),
                        &|| what.into(),
                    );
                }
                libc::S_IFLNK => {}
                _ => {
                    let null = mounts::open_host(Path::new("/dev/null"));
                    mounts::bind(null.as_fd(), fd.as_fd(), RDONLY | NOSUID | NOEXEC, &|| {
                        what.into()
                    });
                }
            }
            return;
        }
        dir = Some(fd);
    }
}

/// A new /proc for the step's pid namespace, with Docker's read-only and
/// masked paths.
pub fn setup_proc(root: &Rootfs) {
    let target = root.dir("proc");
    let proc_root = mounts::mount_new(
        "proc",
        &[],
        NOSUID | NODEV | NOEXEC,
        target.as_fd(),
        &|| "/proc".into(),
    );
    for ro in READONLY {
        if let Some(p) = open_below(proc_root.as_fd(), ro) {
            mounts::bind(
                p.as_fd(),
                p.as_fd(),
                RDONLY | NOSUID | NODEV | NOEXEC,
                &|| format!("/proc/{ro}"),
            );
        }
    }
    for m in MASKED {
        if let Some(rel) = m.strip_prefix("proc/") {
            mask(proc_root.as_fd(), rel, &format!("/{m}"));
        }
    }
}

/// A read-only /sys in every step (created when the image lacks it):
/// sysfs, or the host's /sys bound read-only where sysfs cannot be mounted
/// (rootless with the host's network); then Docker's masks.
pub fn setup_sys(root: &Rootfs) {
    let target = root.dir("sys");
    let attrs = RDONLY | NOSUID | NODEV | NOEXEC;
    let sys = match mounts::new_fs("sysfs", &[], attrs) {
        Ok(m) => {
            mounts::attach(m.as_fd(), target.as_fd(), &|| "/sys".into());
            m
        }
        Err(_) => {
            let host = mounts::open_host(Path::new("/sys"));
            let tree = mounts::clone_tree(host.as_fd(), attrs, &|| "/sys".into());
            mounts::attach(tree.as_fd(), target.as_fd(), &|| "/sys".into());
            tree
        }
    };
    let mut masked: Vec<String> = MASKED
        .iter()
        .filter_map(|m| m.strip_prefix("sys/").map(String::from))
        .collect();
    // Newer Docker also masks each CPU's thermal_throttle.
    if let Ok(rd) = std::fs::read_dir("/sys/devices/system/cpu") {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.strip_prefix("cpu")
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            {
                masked.push(format!("devices/system/cpu/{n}/thermal_throttle"));
            }
        }
    }
    for m in masked {
        mask(sys.as_fd(), &m, &format!("/sys/{m}"));
    }
}
