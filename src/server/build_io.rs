//! The [`BuildIo`] of a build the server runs for a client: its progress
//! events (counted in the metrics, sent as rawjson lines, RUN output
//! within `--max-log`) and its printed lines become frames, in the order
//! the build made them; the client's secrets stay in memory.

use super::Server;
use super::wire::Frame;
use crate::build::io::{BuildIo, Sink};
use crate::progress::Event;
use crate::solver::cancel::Cancel;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedSender;

/// The io of build `id`, sending its frames to `frames`.
pub fn build_io(
    server: &Arc<Server>,
    id: u64,
    frames: UnboundedSender<Frame>,
    secrets: Vec<(String, Vec<u8>)>,
    store: Arc<crate::cache::Store>,
    (files, dockerfile): (&[super::wire::FileEntry], &str),
) -> (BuildIo, Cancel) {
    let budget = Mutex::new(LogBudget::new(server.limits.max_log));
    let (s, tx) = (server.clone(), frames.clone());
    let events = move |e: Event| {
        s.metrics.event(id, &e);
        let line = serde_json::to_string(&e).unwrap_or_default();
        let admit = budget
            .lock()
            .map(|mut b| b.admit(&e, line.len()))
            .unwrap_or(Admit::Yes);
        let _ = match admit {
            Admit::Yes => tx.send(Frame::Err(line)),
            Admit::Notice(n) => tx.send(Frame::Err(n)),
            Admit::No => Ok(()),
        };
    };
    let lines = |frame: fn(String) -> Frame| {
        let tx = frames.clone();
        Sink::new(move |text: &str| {
            for l in text.lines() {
                let _ = tx.send(frame(l.to_string()));
            }
        })
    };
    let cancel = Cancel::default();
    let io = BuildIo {
        events: Some(Arc::new(events)),
        out: lines(Frame::Out),
        err: lines(Frame::Err),
        cancel: cancel.clone(),
        secrets,
        store: Some(store),
        // Copied from the context cache, whose files are checked against
        // their digests.
        context_digests: Some(
            files
                .iter()
                .filter(|f| f.kind == "file")
                .filter_map(|f| Some((f.path.clone(), f.digest.as_deref()?.parse().ok()?)))
                .collect(),
        ),
        build_id: Some(build_id(files, dockerfile)),
    };
    (io, cancel)
}

/// A served build's identity: its Dockerfile and its context files (paths,
/// kinds, digests, links), so that a rebuild of the same inputs finds the
/// notes of its steps (a fresh id each time would write new ones), while
/// only a client holding the same context shares them.
fn build_id(files: &[super::wire::FileEntry], dockerfile: &str) -> String {
    let mut sorted: Vec<&super::wire::FileEntry> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut text = format!("{dockerfile}\0");
    for f in sorted {
        let digest = f.digest.as_deref().unwrap_or("");
        let link = f.link.as_deref().unwrap_or("");
        text.push_str(&format!("{}\0{}\0{digest}\0{link}\0", f.kind, f.path));
    }
    format!("serve|{}", crate::digest::Digest::of(text.as_bytes()))
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

    /// Whether an event goes to the client: log lines while the budget
    /// lasts (then one notice), every other event always.
    fn admit(&mut self, event: &Event, len: usize) -> Admit {
        if !matches!(event, Event::Log { .. }) {
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
    fn a_build_id_follows_the_dockerfile_and_the_files() {
        let file = |path: &str, d: &str| super::super::wire::FileEntry {
            path: path.into(),
            kind: "file".into(),
            mode: 0o644,
            mtime: (0, 0),
            digest: Some(format!("sha256:{}", d.repeat(64))),
            link: None,
        };
        let (a, b) = (file("a", "1"), file("b", "2"));
        let id = build_id(&[a.clone(), b.clone()], "FROM x\n");
        assert_eq!(id, build_id(&[b.clone(), a.clone()], "FROM x\n"));
        assert_ne!(id, build_id(&[a.clone(), file("b", "3")], "FROM x\n"));
        assert_ne!(id, build_id(&[a, b], "FROM y\n"));
    }

    #[test]
    fn log_lines_stop_at_the_budget_with_one_notice() {
        let mut b = LogBudget::new(10);
        let log = Event::Log {
            id: 1,
            line: "x".into(),
        };
        assert!(matches!(b.admit(&log, 8), Admit::Yes));
        assert!(matches!(b.admit(&log, 8), Admit::Notice(_)));
        assert!(matches!(b.admit(&log, 8), Admit::No));
        assert!(matches!(b.admit(&Event::Cached { id: 1 }, 100), Admit::Yes));
    }
}
