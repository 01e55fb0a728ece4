//! Cancelling a build: a flag its caller sets (`rbuild serve` when the
//! client goes away). The solver stops at the next step boundary; a RUN
//! step that no other build waits for is killed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A build's cancellation flag; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Ask the build to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the build was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
