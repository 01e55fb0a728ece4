//! RUN's default network, as rootless BuildKit's: a network namespace of the
//! step's own, with outbound access through `slirp4netns` (user-mode TCP/IP;
//! the step sees `tap0` in 10.0.2.0/24, the gateway 10.0.2.2 and DNS at
//! 10.0.2.3; the host's loopback is not reachable).
//!
//! rbuild and the sandbox helper agree on the namespace in four moves:
//! 1. rbuild writes the [`SandboxSpec`](super::spec::SandboxSpec) as one JSON
//!    line on the helper's stdin ([`read_spec_line`]).
//! 2. The helper creates its namespaces and writes one byte on `sync_fd`, a
//!    pipe it inherited from rbuild, then closes it ([`notify`]).
//! 3. rbuild starts slirp4netns on the helper's PID ([`Slirp::start`]) while
//!    the helper goes on mounting, waits until slirp4netns says the network
//!    is configured, then writes [`GO`] on the helper's stdin and closes it.
//! 4. The step's PID 1 reads that byte just before `exec` ([`wait_for_go`]);
//!    end of file instead means the network could not be set up, and the
//!    command does not run.
//!
//! slirp4netns ends with the step: rbuild kills and reaps it, and it also
//! exits by itself when rbuild's end of its `--exit-fd` pipe closes (rbuild
//! killed).

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The byte that lets the step run once its network is up.
pub const GO: u8 = b'g';

/// The step's `/etc/resolv.conf` nameserver: slirp4netns's DNS forwarder.
pub const NAMESERVER: &str = "10.0.2.3";

/// How long slirp4netns may take to configure the namespace.
const READY_TIMEOUT_MS: i32 = 30_000;

/// Errors setting up a step's network.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// slirp4netns is not installed.
    #[error(
        "RUN's default network needs slirp4netns (Debian package slirp4netns), which is not in PATH; install it, or use RUN --network=none or RUN --network=host"
    )]
    Missing,
    /// An ordinary user cannot open the TUN device slirp4netns needs.
    #[error(
        "RUN's default network needs /dev/net/tun, which this user cannot open ({0}); make it mode 0666 as Debian does, or use RUN --network=none or RUN --network=host"
    )]
    NoTun(std::io::Error),
    /// A pipe could not be created.
    #[error("creating a pipe for slirp4netns: {0}")]
    Pipe(std::io::Error),
    /// slirp4netns could not be started.
    #[error("starting {path}: {source}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// slirp4netns exited or timed out before the network was configured.
    #[error("slirp4netns did not set up the step's network{}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    NotReady {
        /// What slirp4netns said.
        stderr: String,
    },
}

/// Where `slirp4netns` is: the first match in `PATH` (or the usual
/// directories when `PATH` is unset).
pub fn slirp4netns_path() -> Result<PathBuf, NetworkError> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join("slirp4netns"))
        .find(|p| is_executable(p))
        .ok_or(NetworkError::Missing)
}

/// As an ordinary user, slirp4netns opens /dev/net/tun with our rights:
/// say so before starting anything when we cannot (root always can).
pub fn check_tun(rootless: bool) -> Result<(), NetworkError> {
    if !rootless {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map(drop)
        .map_err(NetworkError::NoTun)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The step's `/etc/resolv.conf` for the default network: slirp4netns's DNS
/// forwarder, keeping the host's `search` and `options` lines.
pub fn resolv_conf(host: &str) -> String {
    let mut out = format!("nameserver {NAMESERVER}\n");
    for line in host.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first == "search" || first == "options" {
            out.push_str(line.trim());
            out.push('\n');
        }
    }
    out
}

/// Both ends of a pipe, close-on-exec (so concurrent steps never inherit
/// each other's ends).
pub struct Pipe {
    /// Read end.
    pub read: OwnedFd,
    /// Write end.
    pub write: OwnedFd,
}

impl Pipe {
    /// A new pipe.
    pub fn new() -> Result<Pipe, NetworkError> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 fills two descriptors we then own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(NetworkError::Pipe(std::io::Error::last_os_error()));
        }
        // SAFETY: both descriptors were just created and are owned by no one else.
        Ok(unsafe {
            Pipe {
                read: OwnedFd::from_raw_fd(fds[0]),
                write: OwnedFd::from_raw_fd(fds[1]),
            }
        })
    }
}

/// In a forked child before `exec`: let `fd` survive the `exec`.
/// Async-signal-safe (one `fcntl`).
pub fn keep_across_exec(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor number; fails cleanly if it is not open.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Wait up to `timeout_ms` for one byte on `fd`; `None` on end of file,
/// error or timeout.
pub fn read_byte(fd: RawFd, timeout_ms: i32) -> Option<u8> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if r <= 0 {
            return None;
        }
        break;
    }
    let mut b = [0u8; 1];
    loop {
        // SAFETY: reading one byte into a valid buffer.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return (n == 1).then_some(b[0]);
    }
}

/// A running slirp4netns serving one step; killed when dropped, and reaped
/// by a thread of its own: its exit tears down the TUN device, which takes
/// the kernel 10–20 ms that the next step need not wait for.
/// [`reap_all`] waits for every one.
pub struct Slirp {
    child: Option<Child>,
    /// rbuild's end of `--exit-fd`: when rbuild dies, slirp4netns sees the
    /// pipe close and exits.
    _exit: OwnedFd,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Slirp {
    /// Start slirp4netns (`bin`) on the network namespace of process `pid`
    /// (the sandbox helper) and wait until it has configured `tap0`.
    /// `rootless`: the namespace belongs to the helper's user namespace.
    pub fn start(bin: &Path, pid: u32, rootless: bool) -> Result<Slirp, NetworkError> {
        let ready = Pipe::new()?;
        let exit = Pipe::new()?;
        let (ready_w, exit_r) = (ready.write.as_raw_fd(), exit.read.as_raw_fd());
        let mut cmd = Command::new(bin);
        cmd.args([
            "--configure",
            "--mtu=65520",
            "--disable-host-loopback",
            "--enable-sandbox",
            "--enable-seccomp",
        ])
        .arg(format!("--ready-fd={ready_w}"))
        .arg(format!("--exit-fd={exit_r}"));
        if rootless {
            cmd.arg(format!("--userns-path=/proc/{pid}/ns/user"));
        }
        cmd.arg(pid.to_string())
            .arg("tap0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: the closure only calls fcntl and prctl (async-signal-safe).
        unsafe {
            cmd.pre_exec(move || {
                keep_across_exec(ready_w)?;
                keep_across_exec(exit_r)?;
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|source| NetworkError::Spawn {
            path: bin.to_path_buf(),
            source,
        })?;
        drop(ready.write);
        drop(exit.read);
        let stderr = child.stderr.take().map(|mut s| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = (&mut s).take(8192).read_to_end(&mut buf);
                // Drain the rest so slirp4netns never blocks on a full pipe.
                let _ = std::io::copy(&mut s, &mut std::io::sink());
                String::from_utf8_lossy(&buf).trim().to_string()
            })
        });
        let mut slirp = Slirp {
            child: Some(child),
            _exit: exit.write,
            stderr,
        };
        if read_byte(ready.read.as_raw_fd(), READY_TIMEOUT_MS).is_some() {
            return Ok(slirp);
        }
        if let Some(mut c) = slirp.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let stderr = slirp
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Err(NetworkError::NotReady { stderr })
    }
}

/// Reaper threads of killed slirp4netns processes.
static REAPERS: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>> =
    std::sync::Mutex::new(Vec::new());

impl Drop for Slirp {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = child.kill();
        let reaper = std::thread::spawn(move || {
            let _ = child.wait();
        });
        if let Ok(mut r) = REAPERS.lock() {
            r.retain(|h| !h.is_finished());
            r.push(reaper);
        }
    }
}

/// Wait until every slirp4netns rbuild started has exited (before rbuild
/// exits, so none outlives it).
pub fn reap_all() {
    let handles = match REAPERS.lock() {
        Ok(mut r) => std::mem::take(&mut *r),
        Err(_) => return,
    };
    for h in handles {
        let _ = h.join();
    }
}

/// In the sandbox helper: read the spec, one line on stdin (read byte-wise
/// in big chunks; nothing follows the line before [`notify`]).
pub fn read_spec_line() -> std::io::Result<Vec<u8>> {
    read_spec_line_from(0)
}

/// [`read_spec_line`] from descriptor `fd`.
pub fn read_spec_line_from(fd: RawFd) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        // SAFETY: reading into a valid buffer from stdin.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let chunk = &buf[..n as usize];
        if let Some(i) = chunk.iter().position(|&b| b == b'\n') {
            out.extend_from_slice(&chunk[..i]);
            return Ok(out);
        }
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(chunk);
    }
}

/// In the sandbox helper, once its namespaces exist: tell rbuild on `fd`,
/// then close it so the step never inherits it.
pub fn notify(fd: RawFd) {
    // SAFETY: a one-byte write and a close on the descriptor rbuild passed us.
    let ok = unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) == 1 && libc::close(fd) == 0 };
    if !ok {
        super::mounts::fail("telling rbuild the namespaces are ready");
    }
}

/// In the step's PID 1, just before `exec`: whether rbuild says the network
/// is up.
pub fn wait_for_go() -> bool {
    wait_for_go_on(0)
}

/// [`wait_for_go`] on descriptor `fd`.
pub fn wait_for_go_on(fd: RawFd) -> bool {
    read_byte(fd, -1) == Some(GO)
}
