//! A warm build: `rbuild build --pull` of a project as a child process of
//! the server (its store, a build slot, on the status page and in /metrics
//! like a client's build); and `rbuild pull` of a watched base.

use super::config::Project;
use super::source::Checkout;
use crate::progress::Event;
use crate::server::Server;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tokio::io::{AsyncBufReadExt, BufReader};

/// How a warm build ended.
#[derive(Debug, Default)]
pub struct Built {
    /// The exit code.
    pub code: i32,
    /// Steps from the cache.
    pub cached: usize,
    /// Steps run.
    pub run: usize,
    /// The first error the build reported.
    pub error: Option<String>,
}

/// The `rbuild build` flags of a project.
pub fn build_args(p: &Project, co: &Checkout) -> Vec<String> {
    let mut a = vec![
        "--progress=rawjson".to_string(),
        // Resolve the bases at their registries: a moved tag is pulled.
        "--pull".to_string(),
        format!("--file={}", co.dockerfile.display()),
    ];
    a.extend(p.target.iter().map(|t| format!("--target={t}")));
    a.extend(p.platform.iter().map(|t| format!("--platform={t}")));
    a.extend(
        p.build_args
            .iter()
            .map(|(k, v)| format!("--build-arg={k}={v}")),
    );
    a.extend(p.tags.iter().map(|t| format!("--tag={t}")));
    a.extend(p.cache_to.iter().map(|t| format!("--cache-to={t}")));
    a.extend(p.cache_from.iter().map(|t| format!("--cache-from={t}")));
    a
}

/// Build `p` from `co` as server build `id`, in a build slot.
pub async fn build(server: &Arc<Server>, id: u64, p: &Project, co: &Checkout) -> Built {
    let m = &server.metrics;
    m.queued.fetch_add(1, Relaxed);
    let permit = server.slots.clone().acquire_owned().await;
    m.queued.fetch_sub(1, Relaxed);
    let Ok(_permit) = permit else {
        m.set_state(id, "cancelled");
        m.cancelled.fetch_add(1, Relaxed);
        return Built {
            code: 1,
            error: Some("the server is shutting down".into()),
            ..Built::default()
        };
    };
    m.running.fetch_add(1, Relaxed);
    m.set_state(id, "running");
    let r = run_child(server, id, build_args(p, co), co).await;
    m.running.fetch_sub(1, Relaxed);
    let (counter, state) = match r.code {
        0 => (&m.succeeded, "succeeded".to_string()),
        c => (&m.failed, format!("failed ({c})")),
    };
    counter.fetch_add(1, Relaxed);
    m.set_state(id, &state);
    r
}

async fn run_child(server: &Arc<Server>, id: u64, args: Vec<String>, co: &Checkout) -> Built {
    let mut out = Built {
        code: 1,
        ..Built::default()
    };
    let mut cmd = tokio::process::Command::new("/proc/self/exe");
    cmd.arg("build")
        .args(&args)
        .arg(&co.context)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(n) = server.limits.max_runs {
        cmd.env("RBUILD_MAX_RUNS", n.to_string());
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(format!("starting the build: {e}"));
            return out;
        }
    };
    if let Some(err) = child.stderr.take() {
        let mut lines = BufReader::new(err).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            match serde_json::from_str::<Event>(&l) {
                Ok(e) => {
                    server.metrics.event(id, &e);
                    match e {
                        Event::Finished {
                            cached, executed, ..
                        } => (out.cached, out.run) = (cached, executed),
                        Event::Failed { error, .. } => {
                            out.error.get_or_insert(error);
                        }
                        _ => {}
                    }
                }
                // Not an event: an error printed before or after the build.
                Err(_) if !l.trim().is_empty() => {
                    out.error.get_or_insert(l);
                }
                Err(_) => {}
            }
        }
    }
    out.code = match child.wait().await {
        Ok(s) => s.code().unwrap_or(1),
        Err(e) => {
            out.error.get_or_insert(e.to_string());
            1
        }
    };
    out
}

/// `rbuild pull REFERENCE` into the server's store; the error, if any.
pub async fn pull(reference: &str) -> Result<(), String> {
    let out = tokio::process::Command::new("/proc/self/exe")
        .args(["pull", "--", reference])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("starting rbuild pull: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(err
            .trim()
            .lines()
            .last()
            .unwrap_or("pull failed")
            .to_string())
    }
}
