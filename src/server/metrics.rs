//! What the server counts and remembers of builds, and its Prometheus text.

use crate::progress::Event;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A series: name, help, type, (labels, value)s.
type Series<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, u64)]);

/// Upper bounds (seconds) of the step-duration histogram's buckets.
const BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0];
/// Builds kept for the status page.
const RECENT: usize = 50;
/// Steps kept per build for the status page.
const STEPS: usize = 200;
/// Longest build label kept (characters).
const LABEL: usize = 300;
/// How old the measure of the store's size may be.
const STORE_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(3);
/// How long a scrape waits for that measure.
const STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A step as the status page shows it.
#[derive(Debug, Clone)]
pub struct StepView {
    /// Vertex number.
    pub id: usize,
    /// Its name.
    pub name: String,
    /// `running`, `cached`, `done`, `failed`.
    pub state: &'static str,
    /// Where a cached step came from: `local` (this store) or `imported`
    /// (a `--cache-from` cache).
    pub source: Option<&'static str>,
    /// Seconds taken, when finished.
    pub seconds: Option<f64>,
    started: Instant,
}

impl StepView {
    /// Seconds taken, or so far while it runs.
    pub fn seconds_so_far(&self) -> f64 {
        self.seconds
            .unwrap_or_else(|| self.started.elapsed().as_secs_f64())
    }
}

/// A build as the status page shows it.
#[derive(Debug, Clone)]
pub struct BuildView {
    /// Server-side build number.
    pub id: u64,
    /// What it builds (tags, target, build-arg names; or the warm project).
    pub label: String,
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
    /// Of those, from an imported (`--cache-from`) cache.
    pub cache_hits_imported: AtomicU64,
    /// Steps run.
    pub cache_misses: AtomicU64,
    /// Bytes in the store (blobs and snapshots), as last measured.
    pub store_bytes: AtomicU64,
    store_measured: Mutex<Option<Instant>>,
    /// Context files uploaded.
    pub uploads: AtomicU64,
    /// Warm runs that succeeded.
    pub warm_ok: AtomicU64,
    /// Warm runs with a failure.
    pub warm_failed: AtomicU64,
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
            label: String::new(),
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

    /// Say what build `id` builds (shown escaped on the status page).
    pub fn describe(&self, id: u64, label: &str) {
        self.with(id, |b| b.label = label.chars().take(LABEL).collect());
    }

    /// Count a progress event of build `id`.
    pub fn event(&self, id: u64, e: &Event) {
        self.with(id, |b| step_view(b, e, self));
    }

    /// Count a step taken from the cache.
    fn hit(&self, source: &'static str) {
        self.cache_hits.fetch_add(1, Relaxed);
        if source == "imported" {
            self.cache_hits_imported.fetch_add(1, Relaxed);
        }
    }

    /// The store's size, measured again when the last measure is older
    /// than a few seconds (outside the runtime's threads, with a bound on
    /// the wait: a store locked by a prune keeps the last value).
    pub async fn measure_store(&self, root: &std::path::Path) -> u64 {
        let due = {
            let mut at = self
                .store_measured
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let due = at.is_none_or(|t| t.elapsed() > STORE_MAX_AGE);
            if due {
                *at = Some(Instant::now());
            }
            due
        };
        if due {
            let root = root.to_path_buf();
            let job = tokio::task::spawn_blocking(move || {
                crate::cache::Store::open(&root, crate::cache::LockMode::Shared)
                    .ok()
                    .map(|s| s.usage().total())
            });
            if let Ok(Ok(Some(n))) = tokio::time::timeout(STORE_WAIT, job).await {
                self.store_bytes.store(n, Relaxed);
            }
        }
        self.store_bytes.load(Relaxed)
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
        let l = |a: &AtomicU64| a.load(Relaxed);
        let (hits, imported) = (l(&self.cache_hits), l(&self.cache_hits_imported));
        let series: &[Series] = &[
            (
                "rbuild_builds_total",
                "Builds by result.",
                "counter",
                &[
                    ("{result=\"succeeded\"}", l(&self.succeeded)),
                    ("{result=\"failed\"}", l(&self.failed)),
                    ("{result=\"cancelled\"}", l(&self.cancelled)),
                ],
            ),
            (
                "rbuild_builds_running",
                "Builds running now.",
                "gauge",
                &[("", l(&self.running))],
            ),
            (
                "rbuild_queue_length",
                "Builds waiting for a slot.",
                "gauge",
                &[("", l(&self.queued))],
            ),
            (
                "rbuild_steps_total",
                "Build steps by cache result.",
                "counter",
                &[
                    ("{cache=\"hit\"}", hits),
                    ("{cache=\"miss\"}", l(&self.cache_misses)),
                ],
            ),
            (
                "rbuild_cache_steps_total",
                "Cache lookups of steps: hits by where they came from (this store, an imported --cache-from cache), misses (run).",
                "counter",
                &[
                    (
                        "{result=\"hit\",source=\"local\"}",
                        hits - imported.min(hits),
                    ),
                    ("{result=\"hit\",source=\"imported\"}", imported),
                    ("{result=\"miss\",source=\"none\"}", l(&self.cache_misses)),
                ],
            ),
            (
                "rbuild_store_bytes",
                "Bytes in the store (blobs and snapshots).",
                "gauge",
                &[("", l(&self.store_bytes))],
            ),
            (
                "rbuild_warm_runs_total",
                "Warm runs by result.",
                "counter",
                &[
                    ("{result=\"ok\"}", l(&self.warm_ok)),
                    ("{result=\"failed\"}", l(&self.warm_failed)),
                ],
            ),
            (
                "rbuild_context_files_uploaded_total",
                "Context files uploaded.",
                "counter",
                &[("", l(&self.uploads))],
            ),
            (
                "rbuild_context_bytes_uploaded_total",
                "Context bytes uploaded.",
                "counter",
                &[("", l(&self.upload_bytes))],
            ),
        ];
        let mut s = String::new();
        for (name, help, kind, lines) in series {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in *lines {
                let _ = writeln!(s, "{name}{labels} {v}");
            }
        }
        let h = self.hist.lock().unwrap_or_else(|e| e.into_inner());
        let name = "rbuild_step_duration_seconds";
        let _ = writeln!(
            s,
            "# HELP {name} Durations of the steps run (not cached; no FROM).\n# TYPE {name} histogram"
        );
        for (i, b) in BUCKETS.iter().enumerate() {
            let n = h.0.get(i).copied().unwrap_or(0);
            let _ = writeln!(s, "{name}_bucket{{le=\"{b}\"}} {n}");
        }
        let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {}", h.2);
        let _ = writeln!(s, "{name}_sum {}", h.1);
        let _ = writeln!(s, "{name}_count {}", h.2);
        s
    }
}

/// Whether a vertex is a stage's FROM (`[stage 1/N] FROM base`): loading
/// a base is no cache lookup, so neither a hit nor a miss.
fn is_from(name: &str) -> bool {
    name.split_once("] ")
        .is_some_and(|(_, rest)| rest.starts_with("FROM "))
}

/// Update a build's step list with an event; count hits, misses and
/// durations of the steps run.
fn step_view(b: &mut BuildView, e: &Event, m: &Metrics) {
    let find = |b: &mut BuildView, id: usize| b.steps.iter().position(|s| s.id == id);
    match e {
        Event::Started { id, name } if b.steps.len() < STEPS => b.steps.push(StepView {
            id: *id,
            name: name.clone(),
            state: "running",
            source: None,
            seconds: None,
            started: Instant::now(),
        }),
        Event::CacheImported { id, .. } => {
            if let Some(i) = find(b, *id) {
                b.steps[i].source = Some("imported");
            }
        }
        Event::Cached { id } => {
            if let Some(i) = find(b, *id) {
                let st = &mut b.steps[i];
                st.state = "cached";
                m.hit(st.source.get_or_insert("local"));
            }
        }
        Event::Done { id, seconds } => {
            if let Some(i) = find(b, *id) {
                let st = &mut b.steps[i];
                if st.state == "running" {
                    st.state = "done";
                    if !is_from(&st.name) {
                        m.observe(*seconds);
                    }
                }
                st.seconds = Some(*seconds);
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

/// A label for a client's build from its flags (`--name=value`): its tags,
/// target and build-arg names (values are left out: they may be secret).
pub fn describe_args(args: &[String]) -> String {
    let mut out: Vec<String> = Vec::new();
    for a in args {
        let (flag, v) = a.split_once('=').unwrap_or((a.as_str(), ""));
        match flag {
            "--tag" => out.push(format!("-t {v}")),
            "--target" => out.push(format!("--target {v}")),
            "--build-arg" => out.push(format!(
                "--build-arg {}",
                v.split_once('=').map_or(v, |(k, _)| k)
            )),
            _ => {}
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(m: &Metrics, b: u64, id: usize, name: &str) {
        let name = name.to_string();
        m.event(b, &Event::Started { id, name });
    }

    #[test]
    fn hits_by_source_misses_and_durations() {
        let m = Metrics::default();
        let b = m.begin();
        started(&m, b, 1, "[stage-0 1/4] FROM busybox");
        m.event(
            b,
            &Event::Done {
                id: 1,
                seconds: 0.2,
            },
        );
        started(&m, b, 2, "[stage-0 2/4] RUN a");
        m.event(b, &Event::Cached { id: 2 });
        m.event(
            b,
            &Event::Done {
                id: 2,
                seconds: 0.0,
            },
        );
        started(&m, b, 3, "[stage-0 3/4] RUN b");
        let from = "type=local".to_string();
        m.event(b, &Event::CacheImported { id: 3, from });
        m.event(b, &Event::Cached { id: 3 });
        started(&m, b, 4, "[stage-0 4/4] RUN c");
        m.event(
            b,
            &Event::Done {
                id: 4,
                seconds: 2.0,
            },
        );
        let text = m.render();
        for want in [
            "rbuild_cache_steps_total{result=\"hit\",source=\"local\"} 1",
            "rbuild_cache_steps_total{result=\"hit\",source=\"imported\"} 1",
            "rbuild_cache_steps_total{result=\"miss\",source=\"none\"} 1",
            "rbuild_step_duration_seconds_bucket{le=\"1\"} 0",
            "rbuild_step_duration_seconds_bucket{le=\"5\"} 1",
            "rbuild_step_duration_seconds_sum 2",
            "rbuild_step_duration_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == want), "{want} in\n{text}");
        }
        assert_eq!(
            describe_args(&[
                "--tag=a:b".into(),
                "--build-arg=TOKEN=s3cret".into(),
                "--no-cache".into()
            ]),
            "-t a:b --build-arg TOKEN"
        );
    }
}
