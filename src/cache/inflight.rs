//! Steps in flight in this process, by cache key: builds sharing one
//! [`super::Store`] (those of `rbuild serve`) wait here for a step another
//! of them runs, then take its record, before the step's flock (which
//! serves other processes on the same store). Also the RUN slots a server
//! shares between its builds (`rbuild serve --max-runs`).

use crate::digest::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

/// One key's state: whether a build runs it, and how many wait.
#[derive(Default)]
struct Flight {
    state: Mutex<(bool, usize)>,
    freed: Condvar,
}

/// The steps running, and who waits for them.
#[derive(Default)]
pub struct Flights {
    /// Each key's flight and how many builds hold or wait for it.
    table: Mutex<HashMap<Digest, (Arc<Flight>, usize)>>,
}

/// A key held in [`Flights`]; released when dropped.
pub struct Held {
    flights: Arc<Flights>,
    key: Digest,
    flight: Arc<Flight>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Held({})", self.key)
    }
}

impl Flights {
    /// Hold `key`, waiting while another build of this process holds it
    /// (`on_wait` called once first). The bool says whether we waited.
    pub fn hold(self: &Arc<Self>, key: &Digest, on_wait: impl FnOnce()) -> (Held, bool) {
        let flight = {
            let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
            let e = t.entry(*key).or_default();
            e.1 += 1;
            e.0.clone()
        };
        let mut st = flight.state.lock().unwrap_or_else(|e| e.into_inner());
        let waited = st.0;
        if waited {
            st.1 += 1;
            on_wait();
            while st.0 {
                st = flight.freed.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            st.1 -= 1;
        }
        st.0 = true;
        drop(st);
        let held = Held {
            flights: self.clone(),
            key: *key,
            flight,
        };
        (held, waited)
    }

    /// Whether a build of this process waits for step `key`.
    pub fn awaited(&self, key: &Digest) -> bool {
        let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.get(key)
            .is_some_and(|(f, _)| f.state.lock().map(|s| s.1 > 0).unwrap_or(false))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut t = self.flights.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(mut st) = self.flight.state.lock() {
            st.0 = false;
        }
        self.flight.freed.notify_all();
        if let Some(e) = t.get_mut(&self.key) {
            e.1 -= 1;
            if e.1 == 0 {
                t.remove(&self.key);
            }
        }
    }
}

/// RUN steps running at once over the builds of one server: a counting
/// semaphore for blocking threads.
#[derive(Debug)]
pub struct RunSlots {
    free: Mutex<usize>,
    freed: Condvar,
}

/// A taken RUN slot; given back when dropped.
#[derive(Debug)]
pub struct RunSlot {
    slots: Arc<RunSlots>,
}

impl RunSlots {
    /// `n` slots (at least one).
    pub fn new(n: usize) -> Arc<RunSlots> {
        Arc::new(RunSlots {
            free: Mutex::new(n.max(1)),
            freed: Condvar::new(),
        })
    }

    /// Take a slot, waiting (`on_wait` called once) while none is free.
    pub fn take(self: &Arc<Self>, on_wait: impl FnOnce()) -> RunSlot {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if *free == 0 {
            on_wait();
        }
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        RunSlot {
            slots: self.clone(),
        }
    }
}

impl Drop for RunSlot {
    fn drop(&mut self) {
        if let Ok(mut free) = self.slots.free.lock() {
            *free += 1;
        }
        self.slots.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_second_holder_waits_and_is_seen_waiting() {
        let flights = Arc::new(Flights::default());
        let key = Digest::from_hex(&"cd".repeat(32)).unwrap();
        let (first, waited) = flights.hold(&key, || panic!("free"));
        assert!(!waited && !flights.awaited(&key));
        let f2 = flights.clone();
        let t = std::thread::spawn(move || {
            let (_h, waited) = f2.hold(&key, || {});
            (waited, Instant::now())
        });
        let t0 = Instant::now();
        while !flights.awaited(&key) {
            assert!(t0.elapsed() < Duration::from_secs(5), "never waited");
            std::thread::sleep(Duration::from_millis(10));
        }
        let released = Instant::now();
        drop(first);
        let (waited, got) = t.join().unwrap();
        assert!(waited && got >= released);
        assert!(flights.table.lock().unwrap().is_empty());
    }

    #[test]
    fn run_slots_limit_holders() {
        let slots = RunSlots::new(1);
        let a = slots.take(|| panic!("free"));
        let s2 = slots.clone();
        let t = std::thread::spawn(move || {
            let mut told = false;
            let _b = s2.take(|| told = true);
            told
        });
        std::thread::sleep(Duration::from_millis(100));
        drop(a);
        assert!(t.join().unwrap());
    }
}
