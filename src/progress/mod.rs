//! Build progress as a stream of events, rendered as plain lines (CI), JSON
//! lines (`rawjson`, for tools and the build server) or a live terminal view.

mod render;

pub use render::{Mode, spawn_renderer};

use serde::{Deserialize, Serialize};
use std::sync::mpsc;
use std::time::Instant;

/// One progress event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A vertex (build step) started.
    Started {
        /// Vertex number (`#4`).
        id: usize,
        /// `[stage 3/7] COPY src/ ./src/`.
        name: String,
    },
    /// A vertex was satisfied from the cache.
    Cached {
        /// Vertex number.
        id: usize,
    },
    /// A vertex's cache entry came from an imported cache (`--cache-from`,
    /// named by `from`); `Cached` follows. Shown by no renderer: the build
    /// server counts hits by source with it.
    CacheImported {
        /// Vertex number.
        id: usize,
        /// The cache it came from.
        from: String,
    },
    /// Why a vertex could not come from the cache.
    Miss {
        /// Vertex number.
        id: usize,
        /// What changed against the closest earlier build of the step.
        reason: String,
    },
    /// A line of output.
    Log {
        /// Vertex number.
        id: usize,
        /// The text.
        line: String,
    },
    /// A vertex finished.
    Done {
        /// Vertex number.
        id: usize,
        /// Seconds taken.
        seconds: f64,
    },
    /// A vertex failed.
    Failed {
        /// Vertex number.
        id: usize,
        /// The error.
        error: String,
    },
    /// The build finished (successfully or not).
    Finished {
        /// Total seconds.
        seconds: f64,
        /// Vertices taken from the cache.
        cached: usize,
        /// Vertices run.
        executed: usize,
    },
}

/// Sends events; cheap to clone.
#[derive(Clone)]
pub struct Progress {
    tx: Option<mpsc::Sender<Event>>,
    start: Instant,
}

impl Progress {
    /// A sender and its receiver.
    pub fn channel() -> (Progress, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel();
        (
            Progress {
                tx: Some(tx),
                start: Instant::now(),
            },
            rx,
        )
    }

    /// A sender that drops everything.
    pub fn silent() -> Progress {
        Progress {
            tx: None,
            start: Instant::now(),
        }
    }

    /// Send an event.
    pub fn send(&self, e: Event) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(e);
        }
    }

    /// Seconds since the build started.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}
