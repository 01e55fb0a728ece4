//! What one server accepts: sizes of requests, context files and build
//! logs, queued builds, and RUN steps run at once across all builds.

use super::wire::{MAX_BLOB, MAX_JSON};

/// The server's limits (`rbuild serve --max-…`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Builds waiting for a slot; more are refused (503) until one starts.
    pub max_queue: usize,
    /// RUN steps running at once over all builds (None: no limit).
    pub max_runs: Option<usize>,
    /// Largest JSON request (a build request lists its context's files).
    pub max_request: usize,
    /// Largest context file.
    pub max_blob: usize,
    /// Largest context of one build (its files' sizes added up).
    pub max_context: u64,
    /// Build log bytes (RUN output) streamed per build; later lines are
    /// dropped, with a notice (the full log stays in the server's store).
    pub max_log: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_queue: 64,
            max_runs: None,
            max_request: MAX_JSON,
            max_blob: MAX_BLOB,
            max_context: 8 << 30,
            max_log: 64 << 20,
        }
    }
}
