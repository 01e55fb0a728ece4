//! Running one client's build: wait for a slot (telling the client its
//! queue position), assemble its context, run `rbuild build` on it as a
//! child process of the server (same store, same code path as a local
//! build), and stream its output back as frames.

use super::Server;
use super::wire::{BuildRequest, Frame};
use crate::progress::Event;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc::Sender;

/// `rbuild build` flags a client may pass (as `--name=value` or `--name`).
/// Flags naming paths (outputs, `--iidfile`, `--metadata-file`) must use
/// the client's placeholders ([`super::outputs`]); `-f` and `--secret`
/// are set by the server.
const ALLOWED: &[&str] = &[
    "--tag",
    "--build-arg",
    "--target",
    "--no-cache",
    "--label",
    "--platform",
    "--push",
    "--quiet",
    "--explain",
    "--pull",
    "--insecure-registry",
    "--allow",
];

/// Check a client's flags; the first refused one.
pub fn check_args(args: &[String]) -> Result<(), String> {
    for a in args {
        let (name, value) = a.split_once('=').unwrap_or((a.as_str(), ""));
        match super::outputs::check(name, value) {
            Some(r) => r?,
            None if ALLOWED.contains(&name) => {}
            None => return Err(format!("flag {name} is not accepted through --server")),
        }
    }
    Ok(())
}

/// Run a build, sending its frames to `tx` (dropped by the server when the
/// client goes away, which cancels the build).
pub async fn run(server: Arc<Server>, req: BuildRequest, tx: Sender<String>) {
    let id = server.metrics.begin();
    server
        .metrics
        .describe(id, &super::metrics::describe_args(&req.args));
    let code = match run_inner(&server, id, req, &tx).await {
        Ok(code) => code,
        Err(Outcome::Cancelled) => {
            server.metrics.cancelled.fetch_add(1, Relaxed);
            server.metrics.set_state(id, "cancelled");
            return;
        }
        Err(Outcome::Error(e)) => {
            let _ = tx.send(Frame::Err(format!("error: {e}")).encode()).await;
            1
        }
    };
    let (counter, state) = match code {
        0 => (&server.metrics.succeeded, "succeeded".to_string()),
        c => (&server.metrics.failed, format!("failed ({c})")),
    };
    counter.fetch_add(1, Relaxed);
    server.metrics.set_state(id, &state);
    let _ = tx.send(Frame::Exit(code).encode()).await;
}

enum Outcome {
    Cancelled,
    Error(String),
}

async fn run_inner(
    server: &Arc<Server>,
    id: u64,
    req: BuildRequest,
    tx: &Sender<String>,
) -> Result<i32, Outcome> {
    check_args(&req.args).map_err(Outcome::Error)?;
    let position = server.metrics.queued.fetch_add(1, Relaxed) as usize + 1;
    if server.slots.available_permits() == 0 {
        let _ = tx.send(Frame::Queued(position).encode()).await;
    }
    let permit = tokio::select! {
        p = server.slots.clone().acquire_owned() => p,
        _ = tx.closed() => {
            server.metrics.queued.fetch_sub(1, Relaxed);
            return Err(Outcome::Cancelled);
        }
    };
    server.metrics.queued.fetch_sub(1, Relaxed);
    let Ok(_permit) = permit else {
        return Err(Outcome::Cancelled);
    };
    server.metrics.running.fetch_add(1, Relaxed);
    server.metrics.set_state(id, "running");
    let r = build_in_dir(server, id, req, tx).await;
    server.metrics.running.fetch_sub(1, Relaxed);
    r
}

async fn build_in_dir(
    server: &Arc<Server>,
    id: u64,
    req: BuildRequest,
    tx: &Sender<String>,
) -> Result<i32, Outcome> {
    let err = |e: &dyn std::fmt::Display| Outcome::Error(e.to_string());
    let work = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(server.cache.work_dir())
        .map_err(|e| err(&e))?;
    let ctx = work.path().join("context");
    let dockerfile = work.path().join(
        super::context_sync::safe_rel(&req.dockerfile_name)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_owned()))
            .unwrap_or_else(|| "Dockerfile".into()),
    );
    std::fs::create_dir(&ctx).map_err(|e| err(&e))?;
    std::fs::write(&dockerfile, &req.dockerfile).map_err(|e| err(&e))?;
    let files = req.files;
    let s2 = server.clone();
    let ctx2 = ctx.clone();
    tokio::task::spawn_blocking(move || s2.cache.assemble(&ctx2, &files))
        .await
        .map_err(|e| err(&e))?
        .map_err(|e| err(&e))?;
    // This very binary, even if its file was replaced since the server started.
    let (args, slots) = super::outputs::rewrite(&req.args, work.path());
    let mut cmd = tokio::process::Command::new("/proc/self/exe");
    cmd.arg("build").arg("--progress=rawjson").args(&args);
    cmd.arg(format!("--file={}", dockerfile.display()));
    if let Some(n) = server.limits.max_runs {
        cmd.env("RBUILD_MAX_RUNS", n.to_string());
    }
    // Secrets reach the build through its environment only: never a file.
    for (i, (sid, value)) in req.secrets.iter().enumerate() {
        let var = format!("RBUILD_SERVE_SECRET_{i}");
        cmd.env(
            &var,
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(value),
        );
        cmd.arg(format!("--secret=id={sid},env={var}"));
    }
    cmd.arg(&ctx)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| err(&e))?;
    let stdout = child.stdout.take().map(|o| BufReader::new(o).lines());
    let stderr = child.stderr.take().map(|o| BufReader::new(o).lines());
    let (Some(out), Some(errs)) = (stdout, stderr) else {
        return Err(err(&"no pipes to the build"));
    };
    let mut pipes = Pipes {
        out,
        errs,
        out_open: true,
        err_open: true,
    };
    if stream(server, id, &mut pipes, tx).await.is_err() {
        // The client is gone: its build stops, unless others wait for a
        // step it may be running (then it goes on until none waits).
        linger(server.clone(), child, pipes, work);
        return Err(Outcome::Cancelled);
    }
    let status = child.wait().await.map_err(|e| err(&e))?;
    let code = status.code().unwrap_or(1);
    if code == 0 {
        match super::outputs::send_back(&slots, tx).await {
            Ok(()) => {}
            Err(super::outputs::SendError::Gone) => return Err(Outcome::Cancelled),
            Err(super::outputs::SendError::Io(e)) => return Err(Outcome::Error(e)),
        }
    }
    Ok(code)
}

type Lines<T> = tokio::io::Lines<BufReader<T>>;

/// A build child's output.
struct Pipes {
    out: Lines<tokio::process::ChildStdout>,
    errs: Lines<tokio::process::ChildStderr>,
    out_open: bool,
    err_open: bool,
}

/// The steps a build waits for while another build runs them, counted in
/// [`Server::waiting`] while they last.
struct Waits {
    server: Arc<Server>,
    ids: std::collections::HashSet<usize>,
}

impl Waits {
    fn note(&mut self, e: &Event) {
        match e {
            Event::Log { id, line }
                if line.starts_with("waiting for another build") && self.ids.insert(*id) =>
            {
                self.server.waiting.fetch_add(1, Relaxed);
            }
            Event::Cached { id } | Event::Done { id, .. } | Event::Failed { id, .. }
                if self.ids.remove(id) =>
            {
                self.server.waiting.fetch_sub(1, Relaxed);
            }
            _ => {}
        }
    }
}

impl Drop for Waits {
    fn drop(&mut self) {
        self.server.waiting.fetch_sub(self.ids.len(), Relaxed);
    }
}

/// Send the child's output to the client until the child closes it;
/// Err when the client is gone.
async fn stream(
    server: &Arc<Server>,
    id: u64,
    p: &mut Pipes,
    tx: &Sender<String>,
) -> Result<(), ()> {
    let mut log = LogBudget::new(server.limits.max_log);
    let mut waits = Waits {
        server: server.clone(),
        ids: Default::default(),
    };
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    while p.out_open || p.err_open {
        let frame = tokio::select! {
            l = p.out.next_line(), if p.out_open => match l {
                Ok(Some(l)) => Frame::Out(l),
                _ => { p.out_open = false; continue; }
            },
            l = p.errs.next_line(), if p.err_open => match l {
                Ok(Some(l)) => {
                    let event = serde_json::from_str::<Event>(&l).ok();
                    if let Some(e) = &event {
                        server.metrics.event(id, e);
                        waits.note(e);
                    }
                    match log.admit(event.as_ref(), l.len()) {
                        Admit::Yes => Frame::Err(l),
                        Admit::Notice(n) => Frame::Err(n),
                        Admit::No => continue,
                    }
                }
                _ => { p.err_open = false; continue; }
            },
            // A keep-alive line: writing is how a gone client is noticed.
            _ = tick.tick() => Frame::KeepAlive,
        };
        if tx.send(frame.encode()).await.is_err() {
            return Err(());
        }
    }
    Ok(())
}

/// A cancelled build's child: killed at once when no build waits for a
/// step (which it may be running), else left to go on (its output read
/// and dropped, its context kept) until none waits or it ends.
fn linger(
    server: Arc<Server>,
    mut child: tokio::process::Child,
    mut p: Pipes,
    work: tempfile::TempDir,
) {
    tokio::spawn(async move {
        let _work = work;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                l = p.out.next_line(), if p.out_open => p.out_open = matches!(l, Ok(Some(_))),
                l = p.errs.next_line(), if p.err_open => p.err_open = matches!(l, Ok(Some(_))),
                _ = tick.tick() => {
                    if !matches!(child.try_wait(), Ok(None)) {
                        break;
                    }
                    if server.waiting.load(Relaxed) == 0 {
                        let _ = child.start_kill();
                        let _ = child.wait().await;
                        break;
                    }
                }
            }
        }
    });
}

/// How much build log (RUN output) one build may stream to its client.
struct LogBudget {
    left: u64,
    told: bool,
}

enum Admit {
    Yes,
    Notice(String),
    No,
}

impl LogBudget {
    fn new(max: u64) -> Self {
        LogBudget {
            left: max,
            told: false,
        }
    }

    /// Whether a stderr line goes to the client: log lines while the
    /// budget lasts (then one notice), every other event always.
    fn admit(&mut self, event: Option<&Event>, len: usize) -> Admit {
        if !matches!(event, Some(Event::Log { .. }) | None) {
            return Admit::Yes;
        }
        if self.left >= len as u64 {
            self.left -= len as u64;
            return Admit::Yes;
        }
        if std::mem::replace(&mut self.told, true) {
            return Admit::No;
        }
        Admit::Notice(
            "rbuild serve: log limit reached (--max-log); later log lines are not sent".into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_flags_naming_server_paths() {
        assert!(check_args(&["--tag=a:b".into(), "--no-cache".into()]).is_ok());
        assert!(check_args(&["--output=type=registry,name=x".into()]).is_ok());
        for bad in [
            "--file=/etc/passwd",
            "--iidfile=/x",
            "--secret=id=a,src=/etc/shadow",
            "--output=type=local,dest=/root",
            "--output=type=oci,dest=/x",
            "--metadata-file=/m",
        ] {
            assert!(check_args(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
