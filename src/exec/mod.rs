//! RUN steps: each runs in its own namespaces on an overlay of the parent
//! layers (see [`sandbox`]); the overlay's upper directory becomes the layer.

pub mod attach;
pub mod binfmt;
pub mod caps;
pub mod copydiff;
pub mod emulate;
pub mod extra;
pub mod init;
pub mod mounts;
pub mod network;
pub mod rootfs;
pub mod sandbox;
pub mod seccomp;
pub mod snapshot;
pub mod spec;
pub mod syscall;

use spec::{Network, SandboxSpec};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Nothing rbuild's caller left open reaches a child (a step, slirp4netns):
/// every descriptor above 2 becomes close-on-exec (close_range, or one by
/// one from /proc/self/fd on kernels before 5.11).
pub fn cloexec_inherited() {
    // SAFETY: raw close_range (no glibc wrapper needed); only marks descriptors close-on-exec.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return;
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD on a descriptor number; a stale one (the listing's own) fails harmlessly.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// Errors running a step.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The command failed.
    #[error("exit code {code}{}", if tail.is_empty() { String::new() } else { format!("; last lines of output:\n{}", tail.join("\n")) })]
    Failed {
        /// Exit code (128+N for signal N).
        code: i32,
        /// Last lines of output.
        tail: Vec<String>,
    },
    /// The sandbox could not be set up or run.
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// The step's network could not be set up.
    #[error(transparent)]
    Network(#[from] network::NetworkError),
    /// The step was killed: its build was cancelled.
    #[error("killed: the build was cancelled")]
    Cancelled,
}

/// Directories of one run inside the store's temp space.
pub struct RunDirs {
    /// Holds everything; removed when dropped.
    pub tmp: tempfile::TempDir,
}

impl RunDirs {
    /// The upper directory (the step's changes).
    pub fn upper(&self) -> PathBuf {
        self.tmp.path().join("upper")
    }
}

/// Run the sandbox helper for `spec`; every output line goes to `on_line`.
/// The full output is also written to `log_path`. When `stop` turns true
/// (polled a few times a second), the helper is killed, and with it the
/// step's processes (their parent-death signal).
pub fn run_sandboxed(
    spec: &SandboxSpec,
    log_path: &Path,
    mut on_line: impl FnMut(String) + Send,
    stop: &dyn Fn() -> bool,
) -> Result<(), ExecError> {
    let exe =
        std::env::current_exe().map_err(|e| ExecError::Sandbox(format!("locating rbuild: {e}")))?;
    let rootless = !rustix::process::geteuid().is_root();
    let slirp_bin = match spec.network {
        Network::Slirp => {
            network::check_tun(rootless)?;
            Some(network::slirp4netns_path()?)
        }
        Network::None | Network::Host => None,
    };
    let sync = slirp_bin
        .as_ref()
        .map(|_| network::Pipe::new())
        .transpose()?;
    let mut spec = spec.clone();
    let mut cmd = Command::new(exe);
    cmd.arg("__sandbox")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = &sync {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&p.write);
        spec.sync_fd = Some(fd);
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure only calls fcntl (async-signal-safe).
        unsafe { cmd.pre_exec(move || network::keep_across_exec(fd)) };
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| ExecError::Sandbox(format!("starting the sandbox: {e}")))?;
    let sync = sync.map(|p| p.read); // our copy of the write end closes here
    let mut input = serde_json::to_vec(&spec).expect("serialise sandbox spec");
    input.push(b'\n');
    let mut stdin = child.stdin.take();
    if let Some(s) = stdin.as_mut() {
        let _ = s.write_all(&input);
    }
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let mut readers = Vec::new();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stream).split(b'\n').map_while(Result::ok) {
                let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
            }
        }));
    }
    drop(tx);
    let (slirp, net_err) = match (&slirp_bin, &sync) {
        (Some(bin), Some(sync)) => attach_network(bin, sync, child.id(), rootless, stdin.as_mut()),
        _ => (None, None),
    };
    drop(stdin);
    let mut log = std::fs::File::create(log_path).ok();
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut killed = false;
    let poll = std::time::Duration::from_millis(200);
    let mut polled = std::time::Instant::now();
    loop {
        let next = rx.recv_timeout(poll);
        // Polled on time even while lines keep coming.
        if !killed && polled.elapsed() >= poll {
            polled = std::time::Instant::now();
            if stop() {
                killed = true;
                let _ = child.kill();
            }
        }
        let line = match next {
            Ok(l) => l,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if let Some(f) = log.as_mut() {
            let _ = writeln!(f, "{line}");
        }
        if tail.len() == 20 {
            tail.pop_front();
        }
        tail.push_back(line.clone());
        on_line(line);
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child
        .wait()
        .map_err(|e| ExecError::Sandbox(format!("waiting: {e}")))?;
    drop(slirp);
    if let Some(e) = net_err {
        return Err(e.into());
    }
    if killed {
        return Err(ExecError::Cancelled);
    }
    let code = status
        .code()
        .unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0));
    if code == 0 {
        Ok(())
    } else {
        Err(ExecError::Failed {
            code,
            tail: tail.into_iter().collect(),
        })
    }
}

/// Once the helper (`pid`) says on `sync` that its network namespace exists,
/// start slirp4netns on it and, when it is ready, let the step run (GO on
/// its stdin). End of file on `sync`: the helper failed first and says why
/// on stderr.
fn attach_network(
    bin: &Path,
    sync: &std::os::fd::OwnedFd,
    pid: u32,
    rootless: bool,
    stdin: Option<&mut std::process::ChildStdin>,
) -> (Option<network::Slirp>, Option<network::NetworkError>) {
    if network::read_byte(sync.as_raw_fd(), -1).is_none() {
        return (None, None);
    }
    match network::Slirp::start(bin, pid, rootless) {
        Ok(s) => {
            if let Some(stdin) = stdin {
                let _ = stdin.write_all(&[network::GO]);
            }
            (Some(s), None)
        }
        Err(e) => (None, Some(e)),
    }
}

/// Remove what the sandbox created only as mount points (empty /proc, /dev,
/// /sys, /etc/hosts, /etc/resolv.conf and an /etc made for them) when the
/// image did not have them, so they do not end up in the layer.
pub fn clean_mountpoints(upper: &Path, existed: &dyn Fn(&str) -> bool) {
    for f in ["etc/hosts", "etc/resolv.conf"] {
        let Some(p) = in_upper(upper, f) else {
            continue;
        };
        if !existed(f)
            && std::fs::symlink_metadata(&p)
                .map(|m| m.is_file() && m.len() == 0)
                .unwrap_or(false)
        {
            let _ = std::fs::remove_file(&p);
        }
    }
    if existed("etc") {
        drop_untouched_dir(upper, "etc");
    }
    for d in ["proc", "dev", "sys", "etc"] {
        let p = upper.join(d);
        if !existed(d)
            && std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir())
            && std::fs::read_dir(&p)
                .map(|mut r| r.next().is_none())
                .unwrap_or(false)
        {
            let _ = std::fs::remove_dir(&p);
        }
    }
}

/// A directory of the image that overlayfs copied up only because a mount
/// target was created (and removed) inside it: empty in the upper directory
/// and not opaque, so the step did not change its contents. Dropping it keeps
/// the layer free of the sandbox's traces.
fn drop_untouched_dir(upper: &Path, rel: &str) {
    let Some(p) = in_upper(upper, rel) else {
        return;
    };
    if !std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
        return;
    }
    let empty = std::fs::read_dir(&p)
        .map(|mut r| r.next().is_none())
        .unwrap_or(false);
    let opaque = ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|x| matches!(xattr::get(&p, x), Ok(Some(v)) if v == b"y"));
    if empty && !opaque {
        let _ = std::fs::remove_dir(&p);
    }
}

/// Remove a mount target the sandbox created (and the empty directories it
/// created above it) from the upper directory, unless the image had it.
pub fn clean_created_path(upper: &Path, target: &str, existed: &dyn Fn(&str) -> bool) {
    let mut parts = crate::layer::view::clean_components(target);
    while !parts.is_empty() {
        let rel = parts.join("/");
        if existed(&rel) {
            drop_untouched_dir(upper, &rel);
            return;
        }
        let Some(p) = in_upper(upper, &rel) else {
            return;
        };
        let removed = match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => std::fs::remove_dir(&p).is_ok(),
            Ok(m) if m.is_file() && m.len() == 0 => std::fs::remove_file(&p).is_ok(),
            _ => false,
        };
        if !removed {
            return;
        }
        parts.pop();
    }
}

/// `rel` inside the upper directory, when every directory on the way is a
/// real directory: a step may have left a symlink there (to a host path), and
/// nothing rbuild removes afterwards may be reached through it. The step's
/// processes are gone by then, so nothing changes between check and use.
fn in_upper(upper: &Path, rel: &str) -> Option<PathBuf> {
    let parts = crate::layer::view::clean_components(rel);
    let mut p = upper.to_path_buf();
    for (i, c) in parts.iter().enumerate() {
        p.push(c);
        if i + 1 < parts.len() && !std::fs::symlink_metadata(&p).ok()?.is_dir() {
            return None;
        }
    }
    Some(p)
}
