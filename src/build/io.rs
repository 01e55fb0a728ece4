//! What a build talks to besides the store: where its progress events and
//! its printed lines go, its cancellation flag, secrets given in memory,
//! and the store it shares. The CLI's local build uses the process's
//! stdout and stderr ([`BuildIo::local`]); `rbuild serve` runs builds in
//! its own process and sends all of it to the client.

use crate::cache::Store;
use crate::progress::Event;
use crate::solver::cancel::Cancel;
use std::io::Write;
use std::sync::Arc;

/// Where text goes (what a local build prints to stdout or stderr).
#[derive(Clone)]
pub struct Sink(Arc<dyn Fn(&str) + Send + Sync>);

impl Sink {
    /// Text through `f` (called with whole lines or rendered blocks,
    /// each ending with a newline).
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> Sink {
        Sink(Arc::new(f))
    }

    /// The process's standard error.
    pub fn stderr() -> Sink {
        Sink::new(|s| {
            let _ = std::io::stderr().lock().write_all(s.as_bytes());
        })
    }

    /// The process's standard output.
    pub fn stdout() -> Sink {
        Sink::new(|s| {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(s.as_bytes());
            let _ = out.flush();
        })
    }

    /// Write `s` as is (as `eprint!`).
    pub fn text(&self, s: &str) {
        (self.0)(s)
    }

    /// Write `s` and a newline (as `eprintln!`).
    pub fn line(&self, s: impl std::fmt::Display) {
        (self.0)(&format!("{s}\n"))
    }
}

/// Receives a build's progress events (instead of a renderer).
pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// A build's input and output besides its arguments.
#[derive(Clone)]
pub struct BuildIo {
    /// Progress events; None renders them on stderr (`--progress`).
    pub events: Option<EventSink>,
    /// What the build prints to standard output (`-q`'s image ID).
    pub out: Sink,
    /// What the build prints to standard error (warnings, errors, the
    /// image ID and names).
    pub err: Sink,
    /// Set to stop the build at its next step boundary.
    pub cancel: Cancel,
    /// Secrets by id, given in memory (added to `--secret`s).
    pub secrets: Vec<(String, Vec<u8>)>,
    /// The store to use, shared with other builds (None: open the
    /// default store).
    pub store: Option<Arc<Store>>,
    /// Set when the context directory is a throwaway copy whose files'
    /// digests are known (`rbuild serve`'s, from its cache of context
    /// files), by context-relative path: no stat cache is kept for it,
    /// and these files are not read again to be hashed.
    pub context_digests: Option<Vec<(String, crate::digest::Digest)>>,
    /// What identifies the build's steps from one build to the next (for
    /// explained misses and earlier results reused), instead of its
    /// context and Dockerfile paths (`rbuild serve`'s are throwaway).
    pub build_id: Option<String>,
}

impl BuildIo {
    /// The build's identity: [`BuildIo::build_id`], else the context and
    /// Dockerfile paths.
    pub fn build_id_or(&self, context: &std::path::Path, dockerfile: &std::path::Path) -> String {
        self.build_id
            .clone()
            .unwrap_or_else(|| format!("{}|{}", context.display(), dockerfile.display()))
    }

    /// A local build: the process's stdout and stderr, no cancellation.
    pub fn local() -> BuildIo {
        BuildIo {
            events: None,
            out: Sink::stdout(),
            err: Sink::stderr(),
            cancel: Cancel::default(),
            secrets: Vec::new(),
            store: None,
            context_digests: None,
            build_id: None,
        }
    }

    /// Show progress events from `rx` in a thread (join it after the
    /// build): to [`BuildIo::events`] when set, else rendered on stderr.
    pub fn spawn_view(
        &self,
        rx: std::sync::mpsc::Receiver<Event>,
        mode: crate::progress::Mode,
    ) -> std::thread::JoinHandle<()> {
        match &self.events {
            Some(f) => {
                let f = f.clone();
                std::thread::spawn(move || {
                    for e in rx {
                        f(e);
                    }
                })
            }
            None => crate::progress::spawn_renderer(rx, mode),
        }
    }

    /// The `--secret`s given in memory.
    pub fn secret_sources(&self) -> Vec<(String, crate::solver::steps::SecretSource)> {
        use crate::ops::mounts::secrets::{SecretSource, SecretValue};
        self.secrets
            .iter()
            .map(|(id, v)| {
                (
                    id.clone(),
                    SecretSource::Memory(SecretValue(Arc::new(v.clone()))),
                )
            })
            .collect()
    }
}
