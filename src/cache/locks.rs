//! Step locks: first the store's in-process table of steps in flight
//! ([`super::inflight`]: builds sharing one `Store`, as those of `rbuild
//! serve`, wait there for each other), then `locks/<key hex>`, an
//! exclusive `flock` held while the step of that key runs (for other
//! processes on the same store). A build that reaches a key held by
//! another waits for it, then finds the step's record and takes it from
//! the store instead of running it again.
//!
//! No deadlock: a step holds only its own lock, and only while it runs;
//! everything it waits for (its parent, the stages it copies or mounts
//! from) has a key that is an input of its own, so the keys waited on form
//! a DAG. The kernel drops a flock when its holder dies, so a killed build
//! never blocks the others: the first waiter then runs the step itself.

use super::inflight::{Held, RunSlot, RunSlots};
use super::{Result, Store, StoreError, io_err};
use crate::digest::Digest;
use rustix::fs::{FlockOperation, flock};
use std::fs::File;
use std::sync::Arc;

/// A held step lock or RUN slot (released when dropped, or when the
/// process dies).
#[derive(Debug)]
pub struct StepLock {
    _file: Option<File>,
    _held: Option<Held>,
    _slot: Option<RunSlot>,
}

impl Store {
    /// Take the lock of step `key`. When another build holds it,
    /// `on_wait` is called once, then this blocks until it is released.
    /// The bool says whether we waited.
    pub fn lock_step(&self, key: &Digest, on_wait: impl FnOnce()) -> Result<(StepLock, bool)> {
        let mut on_wait = Some(on_wait);
        let (held, waited_here) = self.flights.hold(key, || {
            if let Some(w) = on_wait.take() {
                w()
            }
        });
        let dir = self.root.join("locks");
        std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        let path = dir.join(key.hex());
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("opening", &path))?;
        let locking = |e: rustix::io::Errno| StoreError::Io {
            what: "locking",
            path: path.clone(),
            source: e.into(),
        };
        let lock = |file| StepLock {
            _file: Some(file),
            _held: Some(held),
            _slot: None,
        };
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok((lock(file), waited_here)),
            Err(rustix::io::Errno::WOULDBLOCK) => {}
            Err(e) => return Err(locking(e)),
        }
        if let Some(w) = on_wait.take() {
            w()
        }
        loop {
            match flock(&file, FlockOperation::LockExclusive) {
                Ok(()) => return Ok((lock(file), true)),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(locking(e)),
            }
        }
    }

    /// Whether a build of this process waits for step `key`, which
    /// another runs (a cancelled build then finishes the step for it).
    pub fn step_awaited(&self, key: &Digest) -> bool {
        self.flights.awaited(key)
    }

    /// Share `slots` RUN slots between every build on this store (`rbuild
    /// serve --max-runs`); a second call keeps the first's.
    pub fn set_run_slots(&self, slots: Arc<RunSlots>) {
        let _ = self.run_slots.set(slots);
    }

    /// Take one of the RUN slots of [`Store::set_run_slots`], or with
    /// `$RBUILD_MAX_RUNS=N` one of N slots shared by every process on this
    /// store, waiting (`on_wait` called once) while all are taken. None
    /// without a limit.
    pub fn run_slot(&self, on_wait: impl FnOnce()) -> Result<Option<StepLock>> {
        if let Some(slots) = self.run_slots.get() {
            return Ok(Some(StepLock {
                _file: None,
                _held: None,
                _slot: Some(slots.take(on_wait)),
            }));
        }
        let Some(n) = std::env::var("RBUILD_MAX_RUNS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
        else {
            return Ok(None);
        };
        let dir = self.root.join("locks");
        std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        let mut files = Vec::with_capacity(n);
        for i in 0..n {
            let path = dir.join(format!("run-slot-{i}"));
            let f = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(io_err("opening", &path))?;
            files.push(f);
        }
        let mut on_wait = Some(on_wait);
        loop {
            let free = files
                .iter()
                .position(|f| flock(f, FlockOperation::NonBlockingLockExclusive).is_ok());
            if let Some(i) = free {
                return Ok(Some(StepLock {
                    _file: Some(files.swap_remove(i)),
                    _held: None,
                    _slot: None,
                }));
            }
            if let Some(w) = on_wait.take() {
                w();
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Remove the step lock files (prune, which holds the store alone).
    pub(crate) fn clear_step_locks(&self) {
        let _ = super::remove_tree(&self.root.join("locks"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::LockMode;
    use std::sync::Arc;

    #[test]
    fn a_second_taker_waits_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), LockMode::Shared).unwrap());
        let key = Digest::from_hex(&"ab".repeat(32)).unwrap();
        let (first, waited) = store.lock_step(&key, || panic!("free lock")).unwrap();
        assert!(!waited);
        let s2 = store.clone();
        let t = std::thread::spawn(move || {
            let mut told = false;
            let (_l, waited) = s2.lock_step(&key, || told = true).unwrap();
            (told, waited, std::time::Instant::now())
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        let released = std::time::Instant::now();
        drop(first);
        let (told, waited, got) = t.join().unwrap();
        assert!(told && waited && got >= released);
    }
}
