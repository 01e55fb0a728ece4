//! A warm build: `rbuild build --pull` of a project run in the server's
//! process (its shared store, a build slot, on the status page and in
//! /metrics like a client's build); and `rbuild pull` of a watched base.

use super::config::Project;
use super::source::Checkout;
use crate::build::io::{BuildIo, Sink};
use crate::progress::Event;
use crate::server::Server;
use std::process::Stdio;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

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
    let r = run_in_process(server, id, build_args(p, co), co).await;
    m.running.fetch_sub(1, Relaxed);
    let (counter, state) = match r.code {
        0 => (&m.succeeded, "succeeded".to_string()),
        c => (&m.failed, format!("failed ({c})")),
    };
    counter.fetch_add(1, Relaxed);
    m.set_state(id, &state);
    r
}

/// Run the build in this process (as a client's: on a blocking thread,
/// on the shared store); its events counted, its first error kept.
async fn run_in_process(
    server: &Arc<Server>,
    id: u64,
    mut args: Vec<String>,
    co: &Checkout,
) -> Built {
    let failed = |e: String| Built {
        code: 1,
        error: Some(e),
        ..Built::default()
    };
    args.push(co.context.display().to_string());
    let s2 = server.clone();
    let store = match tokio::task::spawn_blocking(move || s2.store.get()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return failed(e.to_string()),
        Err(e) => return failed(e.to_string()),
    };
    let seen = Arc::new(Mutex::new(Built::default()));
    let (s2, seen2) = (server.clone(), seen.clone());
    let events = move |e: Event| {
        s2.metrics.event(id, &e);
        let Ok(mut out) = seen2.lock() else { return };
        match e {
            Event::Finished {
                cached, executed, ..
            } => (out.cached, out.run) = (cached, executed),
            Event::Failed { error, .. } => {
                out.error.get_or_insert(error);
            }
            _ => {}
        }
    };
    let seen2 = seen.clone();
    // Not an event: an error printed before or after the build.
    let err = Sink::new(move |text: &str| {
        if let (Some(l), Ok(mut out)) = (text.lines().find(|l| !l.trim().is_empty()), seen2.lock())
        {
            out.error.get_or_insert(l.to_string());
        }
    });
    let io = BuildIo {
        events: Some(Arc::new(events)),
        out: Sink::new(|_| {}),
        err,
        cancel: server.stopping.clone(),
        secrets: Vec::new(),
        store: Some(store),
        context_digests: None,
        build_id: None,
    };
    let build = server.build.clone();
    let code = tokio::task::spawn_blocking(move || build(args, io)).await;
    let mut out = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
    out.code = code.unwrap_or_else(|e| {
        out.error.get_or_insert(e.to_string());
        1
    });
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
