//! A real `rbuild serve` process for tests (killed at drop), requests to
//! it through the library's client, and its Prometheus text.

use super::Env;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `rbuild serve`.
pub struct Serve {
    /// The process.
    pub child: Child,
    /// Its `--listen` address.
    pub addr: String,
    /// The token clients send.
    pub token: Option<String>,
}

impl Serve {
    /// Start `rbuild serve --listen ADDR EXTRA...` on `env`'s store, with
    /// `vars` set (registry settings), and wait until it answers.
    pub fn start(env: &Env, listen: &str, extra: &[&str], vars: &[(&str, &Path)]) -> Serve {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("rbuild"));
        cmd.args(["serve", "--listen", listen])
            .args(extra)
            .env("RBUILD_ROOT", env.root())
            .env_remove("RBUILD_OFFLINE")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let token = extra
            .iter()
            .position(|a| *a == "--token-file")
            .and_then(|i| std::fs::read_to_string(extra[i + 1]).ok())
            .map(|t| t.trim().to_string());
        let s = Serve {
            child: cmd.spawn().expect("start rbuild serve"),
            addr: listen.to_string(),
            token,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while s.get("/healthz").as_deref() != Some("ok\n") {
            assert!(
                Instant::now() < deadline,
                "server on {listen} did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    /// A request with the server's token: (status, body).
    pub fn request(&self, method: &str, path: &str) -> Option<(u16, String)> {
        self.request_as(self.token.as_deref(), method, path)
    }

    /// A request with `token`: (status, body); None when nobody answers.
    pub fn request_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
    ) -> Option<(u16, String)> {
        use http_body_util::BodyExt as _;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let c = rbuild::server::client::Client::new(&self.addr, token.map(String::from)).ok()?;
        let method = hyper::Method::from_bytes(method.as_bytes()).expect("method");
        rt.block_on(async {
            match c.request(method, path, Default::default()).await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body = r.into_body().collect().await.ok()?.to_bytes();
                    Some((status, String::from_utf8_lossy(&body).into_owned()))
                }
                Err(rbuild::server::client::ClientError::Status { status, body, .. }) => {
                    Some((status.as_u16(), body))
                }
                Err(_) => None,
            }
        })
    }

    /// A GET's body when it succeeds.
    pub fn get(&self, path: &str) -> Option<String> {
        self.request("GET", path)
            .filter(|(s, _)| *s == 200)
            .map(|(_, b)| b)
    }

    /// `/metrics`.
    pub fn metrics(&self) -> String {
        self.get("/metrics").expect("metrics")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A series' value in Prometheus text (`name{labels}` exactly).
pub fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
}

/// Wait until `f` holds (polling), failing with `what` after `secs`.
pub fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
