//! Step locks: `locks/<key hex>`, an exclusive `flock` held while the step
//! of that key runs. Another build (a thread of this process, or another
//! process on the same store, such as the children of `rbuild serve`) that
//! reaches the same key waits for it, then finds the step's record and
//! takes it from the store instead of running it again.
//!
//! No deadlock: a step holds only its own lock, and only while it runs;
//! everything it waits for (its parent, the stages it copies or mounts
//! from) has a key that is an input of its own, so the keys waited on form
//! a DAG. The kernel drops a flock when its holder dies, so a killed build
//! never blocks the others: the first waiter then runs the step itself.

use super::{Result, Store, StoreError, io_err};
use crate::digest::Digest;
use rustix::fs::{FlockOperation, flock};
use std::fs::File;

/// A held step lock (released when dropped, or when the process dies).
#[derive(Debug)]
pub struct StepLock {
    _file: File,
}

impl Store {
    /// Take the lock of step `key`. When another build holds it,
    /// `on_wait` is called once, then this blocks until it is released.
    /// The bool says whether we waited.
    pub fn lock_step(&self, key: &Digest, on_wait: impl FnOnce()) -> Result<(StepLock, bool)> {
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
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok((StepLock { _file: file }, false)),
            Err(rustix::io::Errno::WOULDBLOCK) => {}
            Err(e) => return Err(locking(e)),
        }
        on_wait();
        loop {
            match flock(&file, FlockOperation::LockExclusive) {
                Ok(()) => return Ok((StepLock { _file: file }, true)),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(locking(e)),
            }
        }
    }

    /// With `$RBUILD_MAX_RUNS=N` (set by `rbuild serve --max-runs`), take
    /// one of N RUN slots shared by every build on this store, waiting
    /// (`on_wait` called once) while all are taken. None without a limit.
    pub fn run_slot(&self, on_wait: impl FnOnce()) -> Result<Option<StepLock>> {
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
                    _file: files.swap_remove(i),
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
