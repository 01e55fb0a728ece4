//! Running one client's build: wait for a slot (telling the client its
//! queue position), assemble its context, run the build in this process
//! on a blocking thread (the server's build entry, the code path of a
//! local build, on the store all builds share), and stream its output
//! back as frames. A client that goes away cancels its build.

use super::Server;
use super::wire::{BuildRequest, Frame};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
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
            // A bare NAME takes its value from the environment: the
            // server's, now that builds run in its process.
            None if matches!(name, "--build-arg" | "--label") && !value.contains('=') => {
                return Err(format!("{name}={value}: NAME=VALUE expected"));
            }
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
    // Removed when this returns: after the build, and its outputs sent.
    let work = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(server.cache.work_dir())
        .map_err(|e| err(&e))?;
    let dockerfile = work.path().join(
        super::context_sync::safe_rel(&req.dockerfile_name)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_owned()))
            .unwrap_or_else(|| "Dockerfile".into()),
    );
    std::fs::write(&dockerfile, &req.dockerfile).map_err(|e| err(&e))?;
    let files = req.files;
    let s2 = server.clone();
    // The context directory, shared with builds of the same context.
    let (context, store, files) = tokio::task::spawn_blocking(move || {
        let context = s2
            .contexts
            .get(&s2.cache, &files)
            .map_err(|e| e.to_string())?;
        let store = s2.store.get().map_err(|e| e.to_string())?;
        Ok::<_, String>((context, store, files))
    })
    .await
    .map_err(|e| err(&e))?
    .map_err(|e| err(&e))?;
    let (args, slots) = super::outputs::rewrite(&req.args, work.path());
    let mut argv = vec!["--progress=rawjson".to_string()];
    argv.extend(args);
    argv.push(format!("--file={}", dockerfile.display()));
    argv.push(context.path().display().to_string());
    let (frames, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (io, cancel) = super::build_io::build_io(
        server,
        id,
        frames,
        req.secrets,
        store,
        (&files, &req.dockerfile),
    );
    // In this process, on a blocking thread: the store, the steps in
    // flight and the RUN slots are the other builds'.
    let build = server.build.clone();
    let running = tokio::task::spawn_blocking(move || build(argv, io));
    let gone = stream(&mut rx, tx).await.is_err();
    if gone {
        // The client is gone: the build stops at its next step; a RUN
        // step no other build waits for is killed.
        cancel.cancel();
        while rx.recv().await.is_some() {}
    }
    let code = running.await.map_err(|e| err(&e));
    // Given back (and older contexts removed) off the async threads.
    let _ = tokio::task::spawn_blocking(move || drop(context)).await;
    let code = code?;
    if gone {
        return Err(Outcome::Cancelled);
    }
    if code == 0 {
        match super::outputs::send_back(&slots, tx).await {
            Ok(()) => {}
            Err(super::outputs::SendError::Gone) => return Err(Outcome::Cancelled),
            Err(super::outputs::SendError::Io(e)) => return Err(Outcome::Error(e)),
        }
    }
    Ok(code)
}

/// Send the build's frames to the client until the build drops its io;
/// Err when the client is gone.
async fn stream(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Frame>,
    tx: &Sender<String>,
) -> Result<(), ()> {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        let frame = tokio::select! {
            f = rx.recv() => match f {
                Some(f) => f,
                None => return Ok(()),
            },
            // A keep-alive line: writing is how a gone client is noticed.
            _ = tick.tick() => Frame::KeepAlive,
        };
        if tx.send(frame.encode()).await.is_err() {
            return Err(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_flags_naming_server_paths() {
        assert!(check_args(&["--tag=a:b".into(), "--no-cache".into()]).is_ok());
        assert!(check_args(&["--build-arg=A=".into(), "--label=k=v".into()]).is_ok());
        assert!(check_args(&["--output=type=registry,name=x".into()]).is_ok());
        for bad in [
            "--file=/etc/passwd",
            "--iidfile=/x",
            "--secret=id=a,src=/etc/shadow",
            "--output=type=local,dest=/root",
            "--output=type=oci,dest=/x",
            "--metadata-file=/m",
            "--build-arg=HOME",
            "--label=PATH",
        ] {
            assert!(check_args(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
