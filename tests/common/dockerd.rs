//! A private Docker engine for tests (Debian's docker.io): its own socket,
//! data and exec directories, no bridge and no iptables changes; killed on
//! drop.

use super::require_tool;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running dockerd.
pub struct Dockerd {
    child: Child,
    sock: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dockerd {
    /// Start one and wait until it answers.
    pub fn start() -> Dockerd {
        let dockerd = require_tool("dockerd", "docker.io");
        require_tool("docker", "docker.io");
        let dir = tempfile::Builder::new()
            .prefix("rbd")
            .tempdir_in("/tmp")
            .unwrap();
        let sock = dir.path().join("d.sock");
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let child = Command::new(dockerd)
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

    /// Debian's own CLI on this engine (another `docker` on PATH may demand
    /// buildx).
    pub fn docker(&self) -> Command {
        let mut c = Command::new("/usr/bin/docker");
        c.env("DOCKER_HOST", format!("unix://{}", self.sock.display()));
        c
    }
}
