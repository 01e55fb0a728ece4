//! Starting the sandbox helper for `rbuild run`: unlike a RUN step, the
//! command gets the caller's streams (or a terminal) as they are, so the
//! spec and the network's go-ahead travel on a control pipe of their own
//! (`rbuild __sandbox --control-fd=N`), and the helper sits in a process
//! group of its own: a terminal's Ctrl-C reaches rbuild, which decides what
//! the container gets.

use super::ExecError;
use super::network::{self, Slirp};
use super::spec::{ContainerSpec, Network};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// A running container: the sandbox helper (its PID 1 is the helper's
/// child) and, on the default network, its slirp4netns.
pub struct Container {
    child: Child,
    slirp: Option<Slirp>,
    /// rbuild's end of the control socket, kept with a terminal.
    control: Option<std::os::unix::net::UnixStream>,
}

impl Container {
    /// The helper's process id: signals sent to it reach the container's
    /// PID 1 (the spec asks the helper to forward them).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// With [`Stdio::Tty`](super::spec::Stdio::Tty): the master side of the
    /// container's terminal. The command starts once [`Self::terminal_ready`]
    /// is called (after the window size is set).
    pub fn terminal(&mut self) -> Result<OwnedFd, ExecError> {
        let c = self
            .control
            .as_ref()
            .ok_or_else(|| ExecError::Sandbox("no terminal was asked for".into()))?;
        super::init::recv_fd(c.as_raw_fd())
            .map_err(|e| ExecError::Sandbox(format!("receiving the container's terminal: {e}")))
    }

    /// Let the command start on its terminal.
    pub fn terminal_ready(&mut self) {
        if let Some(mut c) = self.control.take() {
            let _ = c.write_all(&[network::GO]);
        }
    }

    /// Wait for the container to end: its exit code (128+N for signal N;
    /// 125 when the sandbox could not be set up).
    pub fn wait(mut self) -> Result<i32, ExecError> {
        let status = self
            .child
            .wait()
            .map_err(|e| ExecError::Sandbox(format!("waiting: {e}")))?;
        drop(self.slirp.take());
        Ok(status
            .code()
            .unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)))
    }
}

/// Start the container `spec` with these streams.
pub fn spawn(
    spec: &ContainerSpec,
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
) -> Result<Container, ExecError> {
    let exe =
        std::env::current_exe().map_err(|e| ExecError::Sandbox(format!("locating rbuild: {e}")))?;
    let rootless = !rustix::process::geteuid().is_root();
    let slirp_bin = match spec.base.network {
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
    // A socket: with a terminal, its master comes back on it.
    let (ours, theirs) =
        std::os::unix::net::UnixStream::pair().map_err(network::NetworkError::Pipe)?;
    let mut spec = spec.clone();
    let control_fd = theirs.as_raw_fd();
    let sync_fd = sync.as_ref().map(|p| p.write.as_raw_fd());
    spec.base.sync_fd = sync_fd;
    let mut cmd = Command::new(exe);
    cmd.arg("__sandbox")
        .arg(format!("--control-fd={control_fd}"))
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    // SAFETY: the closure only calls fcntl (async-signal-safe).
    unsafe {
        cmd.pre_exec(move || {
            network::keep_across_exec(control_fd)?;
            if let Some(fd) = sync_fd {
                network::keep_across_exec(fd)?;
            }
            Ok(())
        })
    };
    let child = cmd
        .spawn()
        .map_err(|e| ExecError::Sandbox(format!("starting the sandbox: {e}")))?;
    drop(theirs);
    let sync: Option<OwnedFd> = sync.map(|p| p.read); // our copy of the write end closes here
    let mut control = ours;
    let mut input = serde_json::to_vec(&spec).expect("serialise container spec");
    input.push(b'\n');
    let _ = control.write_all(&input);
    let mut container = Container {
        child,
        slirp: None,
        control: None,
    };
    if let (Some(bin), Some(sync)) = (&slirp_bin, &sync) {
        // End of file: the helper failed first and says why on stderr.
        if network::read_byte(sync.as_raw_fd(), -1).is_some() {
            match Slirp::start(bin, container.child.id(), rootless) {
                Ok(s) => {
                    container.slirp = Some(s);
                    let _ = control.write_all(&[network::GO]);
                }
                Err(e) => {
                    drop(control);
                    let _ = container.child.wait();
                    return Err(e.into());
                }
            }
        }
    }
    if spec.options.stdio == super::spec::Stdio::Tty {
        container.control = Some(control);
    }
    Ok(container)
}
