//! The store every build of the server shares: one [`Store`] (so one
//! in-process table of steps in flight, and the `--max-runs` RUN slots)
//! while any build runs; closed when none does, so that `rbuild prune`
//! (which holds the store alone) can run between builds.

use crate::cache::inflight::RunSlots;
use crate::cache::{LockMode, Store, StoreError};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

/// Opens the store for the first running build and hands the same one to
/// the others.
pub struct SharedStore {
    root: PathBuf,
    run_slots: Option<Arc<RunSlots>>,
    open: Mutex<Weak<Store>>,
}

impl SharedStore {
    /// The store at `root`; `max_runs`: RUN steps at once over all builds.
    pub fn new(root: PathBuf, max_runs: Option<usize>) -> SharedStore {
        SharedStore {
            root,
            run_slots: max_runs.filter(|n| *n > 0).map(RunSlots::new),
            open: Mutex::new(Weak::new()),
        }
    }

    /// The store the running builds use, opened if none runs (blocks while
    /// a prune holds it alone: call it on a blocking thread).
    pub fn get(&self) -> Result<Arc<Store>, StoreError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = open.upgrade() {
            return Ok(s);
        }
        let store = Arc::new(Store::open(&self.root, LockMode::Shared)?);
        if let Some(slots) = &self.run_slots {
            store.set_run_slots(slots.clone());
        }
        *open = Arc::downgrade(&store);
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_at_once_share_one_store_which_closes_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let shared = SharedStore::new(dir.path().to_path_buf(), Some(2));
        let a = shared.get().unwrap();
        let b = shared.get().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        // Closed: another process may now hold the store alone.
        let alone = Store::open(dir.path(), LockMode::Exclusive).unwrap();
        drop(alone);
        shared.get().unwrap();
    }
}
