//! Mount primitives of the sandbox helper. Everything past the root
//! filesystem is mounted with the new mount API onto descriptors: a tree is
//! cloned (`open_tree`) or created (`fsopen`/`fsmount`) detached, gets its
//! flags (read-only, nosuid, nodev) on every mount of it, recursively, and
//! only then is attached (`move_mount`) onto a target opened inside the
//! root filesystem. So no mount is ever writable or device-capable for a
//! moment, and no path is resolved twice.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `MOUNT_ATTR_*` of linux/mount.h.
pub const RDONLY: u64 = 0x1;
/// No setuid/setgid/file capabilities honoured.
pub const NOSUID: u64 = 0x2;
/// Device nodes cannot be opened.
pub const NODEV: u64 = 0x4;
/// No exec.
pub const NOEXEC: u64 = 0x8;
/// Strict atime.
pub const STRICTATIME: u64 = 0x20;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;

/// A NUL-terminated copy of a path or string (empty on an interior NUL).
pub fn cstr(s: impl AsRef<std::ffi::OsStr>) -> CString {
    CString::new(s.as_ref().as_bytes()).unwrap_or_default()
}

/// Report the last OS error for `what` and exit with Docker's "could not
/// run" status.
pub fn fail(what: &str) -> ! {
    let err = std::io::Error::last_os_error();
    eprintln!("rbuild sandbox: {what}: {err}");
    std::process::exit(125);
}

fn check(r: libc::c_long, what: &dyn Fn() -> String) -> libc::c_long {
    if r < 0 {
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            eprintln!(
                "rbuild sandbox: {}: RUN needs Linux 5.12 or later (open_tree, move_mount, mount_setattr)",
                what()
            );
            std::process::exit(125);
        }
        fail(&what());
    }
    r
}

/// Classic mount(2), for the root filesystem and the stage overlays (host
/// paths rbuild chose).
pub fn mount(src: &str, target: &Path, fstype: &str, flags: libc::c_ulong, data: &str) {
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

/// Open a host path rbuild chose (`O_PATH`).
pub fn open_host(path: &Path) -> OwnedFd {
    let c = cstr(path);
    // SAFETY: valid path; the fd is owned below.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        fail(&format!("opening {}", path.display()));
    }
    // SAFETY: a fresh descriptor we own.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Open `name` below the directory `dir` without following a final
/// symlink (`O_PATH`); `None` when it does not exist.
pub fn open_below(dir: BorrowedFd, name: &str) -> Option<OwnedFd> {
    let c = cstr(name);
    // SAFETY: valid fd and path; the fd is owned below.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    // SAFETY: a fresh descriptor we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Set `attrs` on every mount of the (detached) tree `tree`.
fn set_attrs(tree: BorrowedFd, attrs: u64, what: &dyn Fn() -> String) {
    if attrs == 0 {
        return;
    }
    let attr = MountAttr {
        attr_set: attrs,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = cstr("");
    // SAFETY: valid fd, empty path with AT_EMPTY_PATH, attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(r, &|| format!("setting mount flags of {}", what()));
}

/// Clone the mount tree at `source` (an `O_PATH` descriptor), recursively,
/// with `attrs` set on every mount of the copy.
pub fn clone_tree(source: BorrowedFd, attrs: u64, what: &dyn Fn() -> String) -> OwnedFd {
    let empty = cstr("");
    // SAFETY: valid fd and empty path with AT_EMPTY_PATH; the fd is owned below.
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            source.as_raw_fd(),
            empty.as_ptr(),
            OPEN_TREE_CLONE
                | libc::O_CLOEXEC as libc::c_uint
                | libc::AT_EMPTY_PATH as libc::c_uint
                | libc::AT_RECURSIVE as libc::c_uint,
        )
    };
    let fd = check(r, &|| format!("cloning the mount {}", what()));
    // SAFETY: a fresh descriptor we own.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    set_attrs(tree.as_fd(), attrs, what);
    tree
}

/// Attach the detached tree `tree` on `target` (an `O_PATH` descriptor).
pub fn attach(tree: BorrowedFd, target: BorrowedFd, what: &dyn Fn() -> String) {
    let empty = cstr("");
    // SAFETY: valid fds and empty paths with the *_EMPTY_PATH flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    check(r, &|| format!("mounting {}", what()));
}

/// Bind `source` (recursively) on `target` with `attrs` on every mount.
pub fn bind(source: BorrowedFd, target: BorrowedFd, attrs: u64, what: &dyn Fn() -> String) {
    let tree = clone_tree(source, attrs, what);
    attach(tree.as_fd(), target, what);
}

/// Create a new filesystem (`fstype` with string `options`) as a detached
/// mount with `attrs`; returns its root.
pub fn new_fs(fstype: &str, options: &[(&str, &str)], attrs: u64) -> std::io::Result<OwnedFd> {
    let t = cstr(fstype);
    // SAFETY: valid string (FSOPEN_CLOEXEC = 1); the fd is owned below.
    let r = unsafe { libc::syscall(libc::SYS_fsopen, t.as_ptr(), 1u32) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    let fs = unsafe { OwnedFd::from_raw_fd(r as i32) };
    for (k, v) in options {
        let (k, v) = (cstr(k), cstr(v));
        // SAFETY: valid fd and strings.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: valid fd; no key or value for CMD_CREATE.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: valid fd; FSMOUNT_CLOEXEC = 1.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            1u32,
            attrs as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// [`new_fs`] attached on `target`; returns the new mount's root.
pub fn mount_new(
    fstype: &str,
    options: &[(&str, &str)],
    attrs: u64,
    target: BorrowedFd,
    what: &dyn Fn() -> String,
) -> OwnedFd {
    match new_fs(fstype, options, attrs) {
        Ok(m) => {
            attach(m.as_fd(), target, what);
            m
        }
        Err(e) => {
            eprintln!("rbuild sandbox: creating {fstype} for {}: {e}", what());
            std::process::exit(125);
        }
    }
}
