//! A real `rbuild serve` process and real clients, for the tests of
//! concurrent builds through one server.
#![allow(dead_code)]

use crate::common::Env;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `rbuild serve`, killed at drop.
pub struct Serve {
    pub child: Child,
    pub addr: String,
}

impl Serve {
    /// Start a server on `env`'s store listening on `listen`.
    pub fn start(env: &Env, listen: &str, extra: &[&str]) -> Serve {
        Self::start_env(env, listen, extra, &[])
    }

    /// As [`Serve::start`], with environment variables for the server and
    /// for the client's health check (e.g. `RBUILD_SERVER_CA`).
    pub fn start_env(env: &Env, listen: &str, extra: &[&str], vars: &[(&str, &str)]) -> Serve {
        let child = Command::new(assert_cmd::cargo::cargo_bin("rbuild"))
            .args(["serve", "--listen", listen])
            .args(extra)
            .env("RBUILD_ROOT", env.root())
            .env("RBUILD_OFFLINE", "1")
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rbuild serve");
        let s = Serve {
            child,
            addr: listen.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while s.get("/healthz", None).as_deref() != Some("ok\n") {
            assert!(
                Instant::now() < deadline,
                "server on {listen} did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    /// A GET through the library's client; None when refused or down.
    pub fn get(&self, path: &str, token: Option<&str>) -> Option<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let c = rbuild::server::client::Client::new(&self.addr, token.map(String::from)).ok()?;
        rt.block_on(c.get_text(path)).ok()
    }

    /// The server's metrics.
    pub fn metrics(&self) -> String {
        self.get("/metrics", None).expect("metrics")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rbuild build --progress plain [--server S] ARGS CTX` as a command.
pub fn build_cmd(env: &Env, server: Option<&str>, args: &[&str], ctx: &Path) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("rbuild"));
    c.env("RBUILD_ROOT", env.root())
        .env("RBUILD_OFFLINE", "1")
        .env_remove("RBUILD_SERVER_TOKEN")
        .args(["build", "--progress", "plain"]);
    if let Some(s) = server {
        c.args(["--server", s]);
    }
    c.args(args).arg(ctx);
    c
}

/// Run a build; (success, stderr, stdout).
pub fn build(env: &Env, server: Option<&str>, args: &[&str], ctx: &Path) -> (bool, String, String) {
    let out = build_cmd(env, server, args, ctx)
        .output()
        .expect("rbuild build");
    text(out)
}

/// An output as (success, stderr, stdout).
pub fn text(out: Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A metric's value.
pub fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

/// How many times `needle` occurs in all of `texts`.
pub fn count(texts: &[&str], needle: &str) -> usize {
    texts.iter().map(|t| t.matches(needle).count()).sum()
}
