//! Cancelling a build: a flag its caller sets (`rbuild serve` when the
//! client goes away), or the solver itself when a step fails (as BuildKit
//! cancels the rest of a build on its first error, other platforms'
//! solves included). The solver stops at the next step boundary; a RUN
//! step that no other build waits for is killed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A build's cancellation flag; clones share it. A [`Cancel::child`] is
/// cancelled with its parent, and may be cancelled alone.
#[derive(Debug, Clone)]
pub struct Cancel(Vec<Arc<AtomicBool>>);

impl Default for Cancel {
    fn default() -> Self {
        Cancel(vec![Arc::default()])
    }
}

impl Cancel {
    /// Ask the build to stop.
    pub fn cancel(&self) {
        if let Some(own) = self.0.last() {
            own.store(true, Ordering::SeqCst);
        }
    }

    /// Whether the build was asked to stop (here or by a parent).
    pub fn is_cancelled(&self) -> bool {
        self.0.iter().any(|f| f.load(Ordering::SeqCst))
    }

    /// A flag cancelled with this one, whose own cancel leaves this one be.
    pub fn child(&self) -> Cancel {
        let mut flags = self.0.clone();
        flags.push(Arc::default());
        Cancel(flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_follows_its_parent_but_not_the_other_way() {
        let parent = Cancel::default();
        let child = parent.child();
        let grandchild = child.child();
        child.cancel();
        assert!(child.is_cancelled() && grandchild.is_cancelled());
        assert!(!parent.is_cancelled());
        let other = parent.child();
        parent.cancel();
        assert!(other.is_cancelled());
    }
}
