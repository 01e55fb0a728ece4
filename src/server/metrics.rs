//! What the server counts and remembers of builds, and its Prometheus text.

use crate::progress::Event;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Upper bounds (seconds) of the step-duration histogram's buckets.
const BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0];
/// Builds kept for the status page.
const RECENT: usize = 50;
/// Steps kept per build for the status page.
const STEPS: usize = 200;

/// A step as the status page shows it.
#[derive(Debug, Clone)]
pub struct StepView {
    /// Vertex number.
    pub id: usize,
    /// Its name.
    pub name: String,
    /// `running`, `cached`, `done`, `failed`.
    pub state: &'static str,
    /// Seconds taken, when finished.
    pub seconds: Option<f64>,
}

/// A build as the status page shows it.
#[derive(Debug, Clone)]
pub struct BuildView {
    /// Server-side build number.
    pub id: u64,
    /// `queued`, `running`, `succeeded`, `failed (N)`, `cancelled`.
    pub state: String,
    /// When it was received (seconds since the epoch).
    pub started: u64,
    /// Seconds it has taken (so far).
    pub seconds: f64,
    /// Its steps.
    pub steps: Vec<StepView>,
    since: Instant,
}

/// Counters and recent builds, shared by every request.
#[derive(Default)]
pub struct Metrics {
    /// Builds received.
    pub builds: AtomicU64,
    /// Builds that ended successfully.
    pub succeeded: AtomicU64,
    /// Builds that failed.
    pub failed: AtomicU64,
    /// Builds cancelled (client gone, shutdown).
    pub cancelled: AtomicU64,
    /// Builds running now.
    pub running: AtomicU64,
    /// Builds waiting for a slot.
    pub queued: AtomicU64,
    /// Steps taken from the cache.
    pub cache_hits: AtomicU64,
    /// Steps run.
    pub cache_misses: AtomicU64,
    /// Context files uploaded.
    pub uploads: AtomicU64,
    /// Context bytes uploaded.
    pub upload_bytes: AtomicU64,
    hist: Mutex<(Vec<u64>, f64, u64)>,
    recent: Mutex<VecDeque<BuildView>>,
}

impl Metrics {
    /// Record a new build; its number.
    pub fn begin(&self) -> u64 {
        let id = self.builds.fetch_add(1, Relaxed) + 1;
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut r = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        r.push_front(BuildView {
            id,
            state: "queued".into(),
            started,
            seconds: 0.0,
            steps: Vec::new(),
            since: Instant::now(),
        });
        r.truncate(RECENT);
        id
    }

    /// Change a build's state.
    pub fn set_state(&self, id: u64, state: &str) {
        self.with(id, |b| {
            b.state = state.to_string();
            b.seconds = b.since.elapsed().as_secs_f64();
        });
    }

    /// Count a progress event of build `id`.
    pub fn event(&self, id: u64, e: &Event) {
        if let Event::Cached { .. } = e {
            self.cache_hits.fetch_add(1, Relaxed);
        }
        self.with(id, |b| step_view(b, e, self));
    }

    /// Count a step run (a cache miss) and its duration.
    fn observe(&self, seconds: f64) {
        self.cache_misses.fetch_add(1, Relaxed);
        let mut h = self.hist.lock().unwrap_or_else(|e| e.into_inner());
        if h.0.is_empty() {
            h.0 = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.0[i] += 1;
            }
        }
        h.1 += seconds;
        h.2 += 1;
    }

    fn with(&self, id: u64, f: impl FnOnce(&mut BuildView)) {
        let mut r = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = r.iter_mut().find(|b| b.id == id) {
            f(b);
        }
    }

    /// The recent builds, newest first (running ones with their time so far).
    pub fn recent(&self) -> Vec<BuildView> {
        let r = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        r.iter()
            .cloned()
            .map(|mut b| {
                if b.state == "running" || b.state == "queued" {
                    b.seconds = b.since.elapsed().as_secs_f64();
                }
                b
            })
            .collect()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let c = |s: &mut String, name: &str, help: &str, kind: &str, lines: &[(&str, u64)]| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in lines {
                let _ = writeln!(s, "{name}{labels} {v}");
            }
        };
        c(
            &mut s,
            "rbuild_builds_total",
            "Builds by result.",
            "counter",
            &[
                ("{result=\"succeeded\"}", self.succeeded.load(Relaxed)),
                ("{result=\"failed\"}", self.failed.load(Relaxed)),
                ("{result=\"cancelled\"}", self.cancelled.load(Relaxed)),
            ],
        );
        c(
            &mut s,
            "rbuild_builds_running",
            "Builds running now.",
            "gauge",
            &[("", self.running.load(Relaxed))],
        );
        c(
            &mut s,
            "rbuild_queue_length",
            "Builds waiting for a slot.",
            "gauge",
            &[("", self.queued.load(Relaxed))],
        );
        c(
            &mut s,
            "rbuild_steps_total",
            "Build steps by cache result.",
            "counter",
            &[
                ("{cache=\"hit\"}", self.cache_hits.load(Relaxed)),
                ("{cache=\"miss\"}", self.cache_misses.load(Relaxed)),
            ],
        );
        c(
            &mut s,
            "rbuild_context_files_uploaded_total",
            "Context files uploaded.",
            "counter",
            &[("", self.uploads.load(Relaxed))],
        );
        c(
            &mut s,
            "rbuild_context_bytes_uploaded_total",
            "Context bytes uploaded.",
            "counter",
            &[("", self.upload_bytes.load(Relaxed))],
        );
        let h = self.hist.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            s,
            "# HELP rbuild_step_duration_seconds Durations of steps run.\n# TYPE rbuild_step_duration_seconds histogram"
        );
        for (i, b) in BUCKETS.iter().enumerate() {
            let n = h.0.get(i).copied().unwrap_or(0);
            let _ = writeln!(s, "rbuild_step_duration_seconds_bucket{{le=\"{b}\"}} {n}");
        }
        let _ = writeln!(
            s,
            "rbuild_step_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            h.2
        );
        let _ = writeln!(s, "rbuild_step_duration_seconds_sum {}", h.1);
        let _ = writeln!(s, "rbuild_step_duration_seconds_count {}", h.2);
        s
    }
}

/// Update a build's step list with an event.
fn step_view(b: &mut BuildView, e: &Event, m: &Metrics) {
    let find = |b: &mut BuildView, id: usize| b.steps.iter().position(|s| s.id == id);
    match e {
        Event::Started { id, name } if b.steps.len() < STEPS => b.steps.push(StepView {
            id: *id,
            name: name.clone(),
            state: "running",
            seconds: None,
        }),
        Event::Cached { id } => {
            if let Some(i) = find(b, *id) {
                b.steps[i].state = "cached";
            }
        }
        Event::Done { id, seconds } => {
            if let Some(i) = find(b, *id) {
                if b.steps[i].state == "running" {
                    b.steps[i].state = "done";
                    m.observe(*seconds);
                }
                b.steps[i].seconds = Some(*seconds);
            }
        }
        Event::Failed { id, .. } => {
            if let Some(i) = find(b, *id) {
                b.steps[i].state = "failed";
            }
        }
        _ => {}
    }
}
