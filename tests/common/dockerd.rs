//! A private Docker engine (Debian's docker.io) for tests: its own data
//! directory, socket and mount namespace, no bridge and no iptables
//! changes, killed on drop.

use super::require_tool;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running dockerd.
pub struct Dockerd {
    child: Child,
    /// Its API socket.
    pub sock: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Dockerd {
    /// Killed at once: its mounts live in its own mount namespace and go
    /// with it (no unmounting here: detaching the mount of one engine was
    /// seen to break containers of another engine running at the time).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dockerd {
    /// Start one and wait (up to 60 s) until it answers.
    pub fn start() -> Dockerd {
        let dockerd = require_tool("dockerd", "docker.io");
        require_tool("docker", "docker.io");
        let unshare = require_tool("unshare", "util-linux");
        let dir = tempfile::Builder::new()
            .prefix("rbd")
            .tempdir_in("/tmp")
            .unwrap();
        let sock = dir.path().join("d.sock");
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        // In a mount namespace of its own: the bind mount dockerd makes of
        // its data root and every container's mounts stay out of the
        // host's table and vanish with the engine.
        let child = Command::new(unshare)
            .args(["--mount", "--propagation", "private"])
            .arg(dockerd)
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("pid"))
            .arg("--host")
            .arg(format!("unix://{}", sock.display()))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-forward=false",
                "--ip-masq=false",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let d = Dockerd { child, sock, dir };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            let ok = d
                .docker()
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return d;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = std::fs::read_to_string(d.dir.path().join("dockerd.log")).unwrap_or_default();
        panic!("dockerd did not start within 60s:\n{log}");
    }

    /// `DOCKER_HOST` for this engine.
    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// Debian's docker CLI (another `docker` on PATH may demand buildx),
    /// talking to this engine.
    pub fn docker(&self) -> Command {
        let mut c = Command::new("/usr/bin/docker");
        c.env("DOCKER_HOST", self.host());
        c
    }
}
